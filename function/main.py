"""The function's command line: the SDK's standard options, served over gRPC."""

import click
from crossplane.function import cli as sdkcli
from crossplane.function import logging, runtime

from function import fn, response_size

MEGABYTE = 1024 * 1024


def grpc_options(max_recv_message_size: int, max_send_message_size: int | None) -> list:
    """gRPC server options for the message size limits, given in MB."""
    send = max_send_message_size if max_send_message_size is not None else max_recv_message_size
    return [
        ("grpc.max_receive_message_length", max_recv_message_size * MEGABYTE),
        ("grpc.max_send_message_length", send * MEGABYTE),
    ]


# Thousands of observed replicas make requests larger than gRPC's usual 4 MB.
DEFAULT_MAX_MESSAGE_MB = 64


@click.command(context_settings={"default_map": {
    "max_recv_message_size": DEFAULT_MAX_MESSAGE_MB}})
@sdkcli.standard_options
@click.option(
    "--max-response-bytes", type=click.IntRange(min=1),
    default=response_size.CROSSPLANE_RECEIVE_LIMIT, show_default=True,
    help="Largest response sent; past it the function answers with a Fatal result that says "
         "so. The default is what Crossplane's function client accepts.")
def cli(  # noqa: PLR0913, PLR0917 -- one parameter per command-line option
    debug: bool,
    address: str,
    tls_certs_dir: str | None,
    insecure: bool,
    max_recv_message_size: int,
    max_send_message_size: int | None,
    max_response_bytes: int,
) -> None:
    """Serve function-model-rollout over gRPC."""
    response_size.configure(max_response_bytes)
    logging.configure(level=logging.Level.DEBUG if debug else logging.Level.INFO)
    # The SDK opens a TLS and a plain listener on the same port when given both
    # --insecure and a certificates directory; the second bind fails. --insecure
    # wins, as its help text promises.
    # With neither, serve() refuses to start with a message saying so.
    creds = None if insecure or tls_certs_dir is None else runtime.load_credentials(tls_certs_dir)
    runtime.serve(
        fn.FunctionRunner(),
        address,
        creds=creds,
        insecure=insecure,
        options=grpc_options(max_recv_message_size, max_send_message_size),
    )


if __name__ == "__main__":
    cli()
