"""Forward TCP connections across a network namespace boundary through a Unix socket.

The control plane of scripts/cluster.sh listens only on the loopback interface
of its own network namespace. A Unix socket lives in the file system, which both
namespaces share, so two forwarders join them: one inside the namespace
(listen on a Unix socket, connect to the API server's loopback port) and one
outside (listen on the host's loopback, connect to the Unix socket).

    python scripts/netns-bridge.py --listen unix:/path/api.sock --connect tcp:127.0.0.1:6443
    python scripts/netns-bridge.py --listen tcp:127.0.0.1:16443 --connect unix:/path/api.sock

Only loopback TCP addresses are accepted, on either side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def parse(address: str) -> tuple[str, str, int]:
    """'tcp:HOST:PORT' or 'unix:PATH' -> (kind, host-or-path, port)."""
    kind, _, rest = address.partition(":")
    if kind == "unix" and rest:
        return "unix", rest, 0
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        if host not in LOOPBACK:
            raise SystemExit(f"netns-bridge: {address}: only loopback addresses are allowed")
        return "tcp", host, int(port)
    raise SystemExit(f"netns-bridge: {address}: expected tcp:HOST:PORT or unix:PATH")


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def serve(listen: str, connect: str) -> None:
    lkind, lhost, lport = parse(listen)
    ckind, chost, cport = parse(connect)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if ckind == "unix":
                up_reader, up_writer = await asyncio.open_unix_connection(chost)
            else:
                up_reader, up_writer = await asyncio.open_connection(chost, cport)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    if lkind == "unix":
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lhost)
        server = await asyncio.start_unix_server(handle, lhost)
    else:
        server = await asyncio.start_server(handle, lhost, lport)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--connect", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.listen, args.connect))


if __name__ == "__main__":
    main()
