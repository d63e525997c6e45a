"""Transport faults against the real `function` console script in a subprocess.

Crossplane talks to the function over gRPC, with mTLS from a mounted certificates
directory. Whatever the transport does (a client that cancels or disconnects
mid-call, many calls at once, a request over the message size limit, garbage on the
port, a handshake without a client certificate), the server answers cleanly or
refuses cleanly, and after every fault it still answers a normal call.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from tests.fixtures import deployment
from tests.grpc_harness import Client, RealServer, make_certificates
from tests.world import Fate, World

MEGABYTE = 1024 * 1024


def stable_world(replicas: int = 3) -> World:
    world = World(spec=deployment(replicas, ("v1",)), fate_for=lambda r, i: Fate(warmup=5))
    world.run_until(lambda w: w.status.get("phase") == "Stable")
    return world


def normal_request() -> fnv1.RunFunctionRequest:
    return stable_world().request()


def big_request(megabytes: float) -> fnv1.RunFunctionRequest:
    """A stable deployment plus a large resource an earlier pipeline step observed."""
    req = normal_request()
    blob = "x" * 64 * 1024
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "data": {f"k{i}": blob for i in range(int(megabytes * 16))}}
    req.observed.resources["big-configmap"].resource.update(body)
    return req


def slow_request(replicas: int = 3000) -> fnv1.RunFunctionRequest:
    """A request with thousands of replicas: long enough to be cancelled mid-call."""
    world = World(spec=deployment(replicas, ("v1",)))
    req = world.request()
    for i in range(replicas):
        req.observed.resources[f"replica-v1-{i}"].resource.update({
            "metadata": {"name": f"qwen-v1-{i}", "creationTimestamp": "2026-11-22T09:00:00Z"},
            "status": {"conditions": [{"type": "Ready", "status": "True",
                                       "lastTransitionTime": "2026-11-22T09:05:00Z"}],
                       "health": {"state": "Healthy", "lastProbeTime": "2026-11-22T10:00:00Z"}},
        })
    return req


def answers(client: Client) -> None:
    rsp = client.run(normal_request(), timeout=30)
    assert not [r for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    assert len([k for k in rsp.desired.resources if k.startswith("replica-")]) == 3


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[RealServer]:
    with RealServer(["--insecure"], log_dir=tmp_path_factory.mktemp("logs")) as real:
        yield real


@pytest.fixture
def client(server: RealServer) -> Iterator[Client]:
    with Client(server.address) as c:
        c.wait_ready()
        yield c
    assert server.alive(), server.log()


def test_a_normal_call(client):
    answers(client)


def test_a_cancelled_call_leaves_the_server_serving(client):
    req = slow_request()
    for delay in (0.0, 0.05, 0.2):
        future = client.stub.RunFunction.future(req, timeout=60)
        time.sleep(delay)
        future.cancel()
        with pytest.raises((grpc.FutureCancelledError, grpc.RpcError)):
            future.result()
    answers(client)


def test_a_client_that_disconnects_mid_call_leaves_the_server_serving(server, client):
    req = slow_request()
    for _ in range(3):
        leaving = Client(server.address)
        future = leaving.stub.RunFunction.future(req, timeout=60)
        time.sleep(0.05)
        leaving.close()  # the connection goes away with the call in flight
        with pytest.raises((grpc.FutureCancelledError, grpc.RpcError)):
            future.result()
    answers(client)


def test_a_deadline_that_expires_mid_call_leaves_the_server_serving(client):
    with pytest.raises(grpc.RpcError) as error:
        client.run(slow_request(), timeout=0.01)
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    answers(client)


def test_many_concurrent_calls_get_identical_answers(server, client):
    req = normal_request()
    clients = [Client(server.address) for _ in range(4)]
    try:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            responses = list(pool.map(lambda i: clients[i % 4].run(req, timeout=60),
                                      range(96)))
    finally:
        for c in clients:
            c.close()
    desired = {rsp.desired.SerializeToString(deterministic=True) for rsp in responses}
    assert len(desired) == 1, "a stable deployment got different answers under load"
    answers(client)


def test_garbage_on_the_port_leaves_the_server_serving(server, client):
    host, port = server.address.split(":")
    for payload in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x00" * 1000,
                    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 64, b""):
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            with contextlib.suppress(OSError):
                sock.recv(1024)
    answers(client)


def test_a_request_nested_deeper_than_protobuf_parses_is_refused_cleanly(client):
    req = normal_request()
    value: dict = {"leaf": 1}
    for _ in range(150):
        value = {"n": value}
    req.observed.resources["deep"].resource.update(value)
    try:
        rsp = client.run(req, timeout=30)
    except grpc.RpcError as error:
        assert error.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT,
                                grpc.StatusCode.UNKNOWN), error
    else:
        assert not [r for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    answers(client)


def test_a_request_over_the_receive_limit_is_refused_and_the_server_keeps_serving(tmp_path):
    req = big_request(6)
    assert req.ByteSize() > 4 * MEGABYTE
    with RealServer(["--insecure", "--max-recv-message-size", "4"], log_dir=tmp_path) as real, \
            Client(real.address) as client:
        client.wait_ready()
        with pytest.raises(grpc.RpcError) as error:
            client.run(req, timeout=30)
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        answers(client)


def test_the_default_flags_accept_a_request_over_4mb(tmp_path):
    req = big_request(6)
    with RealServer(["--insecure"], log_dir=tmp_path) as real, \
            Client(real.address) as client:
        client.wait_ready()
        rsp = client.run(req, timeout=60)
        assert "big-configmap" not in rsp.desired.resources  # observed only, not ours
        assert len([k for k in rsp.desired.resources if k.startswith("replica-")]) == 3
        answers(client)
        assert real.alive(), real.log()


# --- TLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> dict[str, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command line is needed to make certificates")
    return make_certificates(tmp_path_factory.mktemp("certs"))


def mtls_credentials(certs: dict[str, Path], *, client_cert: bool = True
                     ) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=certs["ca"].read_bytes(),
        private_key=certs["client_key"].read_bytes() if client_cert else None,
        certificate_chain=certs["client_crt"].read_bytes() if client_cert else None,
    )


def test_mtls_with_a_certificates_directory_as_crossplane_mounts_it(certificates, tmp_path):
    args = ["--tls-certs-dir", str(certificates["server_dir"])]
    with RealServer(args, log_dir=tmp_path) as real:
        with Client(real.address, mtls_credentials(certificates)) as client:
            client.wait_ready()
            answers(client)
        # Without a client certificate, or without TLS, the server refuses the caller.
        with Client(real.address, mtls_credentials(certificates, client_cert=False),
                    timeout=5) as anonymous, pytest.raises(grpc.RpcError) as error:
            anonymous.run(normal_request(), timeout=5)
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        with Client(real.address, timeout=5) as plain, pytest.raises(grpc.RpcError) as error:
            plain.run(normal_request(), timeout=5)
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        assert real.alive(), real.log()
        with Client(real.address, mtls_credentials(certificates)) as client:
            answers(client)


def test_insecure_with_a_certificates_directory_serves_plaintext_on_one_port(
        certificates, tmp_path):
    args = ["--insecure", "--tls-certs-dir", str(certificates["server_dir"])]
    with RealServer(args, log_dir=tmp_path) as real:
        with Client(real.address) as client:
            client.wait_ready()
            answers(client)
        with Client(real.address, mtls_credentials(certificates), timeout=5) as tls, \
                pytest.raises(grpc.RpcError):
            tls.run(normal_request(), timeout=5)
        assert real.alive(), real.log()
        with Client(real.address) as client:
            answers(client)
