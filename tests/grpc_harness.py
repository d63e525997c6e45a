"""Real gRPC around the function: an in-process server on a simulated clock, and the
`function` console script as a subprocess.

The in-process server hosts `function.fn.FunctionRunner(clock=...)` on a grpc.aio
server in a background thread, bound to a loopback port, so every request and
response crosses a real gRPC channel (serialization, HTTP/2, message limits) while
time is whatever the simulation says. The subprocess server is the shipped command
line, exactly as Crossplane runs it, on the wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1

from function.fn import FunctionRunner

ROOT = Path(__file__).resolve().parent.parent
MEGABYTE = 1024 * 1024
CLIENT_OPTIONS = [
    ("grpc.max_send_message_length", 64 * MEGABYTE),
    ("grpc.max_receive_message_length", 64 * MEGABYTE),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def console_script() -> list[str]:
    """The installed `function` command beside this interpreter, else `python -m function.main`."""
    found = shutil.which("function", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "function.main"]


class SimClock:
    """The time the function sees: set by the simulation before each call."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class InProcessServer:
    """FunctionRunner(clock) served by grpc.aio on 127.0.0.1, in a background thread."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="sim-grpc", daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            server = grpc.aio.server()
            grpcv1.add_FunctionRunnerServiceServicer_to_server(
                FunctionRunner(clock=self.clock), server)
            self.port = server.add_insecure_port("127.0.0.1:0")
            self._loop.run_until_complete(server.start())
        except BaseException as error:  # handed to the thread that starts the server
            self._error = error
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(server.stop(grace=None))
        self._loop.close()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> InProcessServer:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        if not self.port:
            raise RuntimeError("the in-process gRPC server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)


class Client:
    """A RunFunction client over a real channel, with the SDK's generated stub."""

    def __init__(self, address: str, credentials: grpc.ChannelCredentials | None = None,
                 *, target_name: str | None = None, timeout: float = 60.0) -> None:
        options: list[tuple[str, int | str]] = list(CLIENT_OPTIONS)
        if target_name:
            options.append(("grpc.ssl_target_name_override", target_name))
        if credentials is None:
            self.channel = grpc.insecure_channel(address, options=options)
        else:
            self.channel = grpc.secure_channel(address, credentials, options=options)
        self.stub = grpcv1.FunctionRunnerServiceStub(self.channel)
        self.timeout = timeout

    def run(self, req: fnv1.RunFunctionRequest, *, timeout: float | None = None
            ) -> fnv1.RunFunctionResponse:
        return self.stub.RunFunction(req, timeout=timeout or self.timeout)

    def wait_ready(self, timeout: float = 30.0) -> None:
        grpc.channel_ready_future(self.channel).result(timeout=timeout)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SimCaller:
    """The World's `call` hook: set the simulated clock, then call over gRPC."""

    def __init__(self, clock: SimClock, client: Client) -> None:
        self.clock = clock
        self.client = client
        self.calls = 0

    def __call__(self, req: fnv1.RunFunctionRequest, now: datetime) -> fnv1.RunFunctionResponse:
        self.clock.now = now
        self.calls += 1
        return self.client.run(req)


@contextlib.contextmanager
def simulated() -> Iterator[SimCaller]:
    """An in-process server on a simulated clock, and a caller for World.call."""
    clock = SimClock()
    with InProcessServer(clock) as server, Client(server.address) as client:
        client.wait_ready()
        yield SimCaller(clock, client)


# --- the real command line ---------------------------------------------------------------


@dataclass
class RealServer:
    """`function --address 127.0.0.1:<port> <args>` as a child process, logging to a file."""

    args: list[str] = field(default_factory=lambda: ["--insecure"])
    log_dir: Path | None = None
    port: int = 0
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, wait: float = 30.0) -> RealServer:
        self.port = self.port or free_port()
        command = [*console_script(), "--address", self.address, *self.args]
        log_dir = self.log_dir or Path(os.environ.get("TMPDIR", "/tmp"))
        self.log_path = log_dir / f"function-{self.port}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"function exited with {self.process.returncode}:\n"
                                   f"{self.log()}")
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.2)
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"function did not listen on {self.address}:\n{self.log()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> RealServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class WallClockCaller:
    """The World's `call` hook for a real server, which reads the system clock itself."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.calls = 0

    def __call__(self, req: fnv1.RunFunctionRequest, now: datetime) -> fnv1.RunFunctionResponse:
        self.calls += 1
        return self.client.run(req)


# --- certificates, as Crossplane mounts them (tls.crt, tls.key, ca.crt) ---------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, made
    with the openssl command line. Returns the paths; the server's directory holds
    tls.crt, tls.key and ca.crt as the SDK's --tls-certs-dir expects."""
    directory.mkdir(parents=True, exist_ok=True)
    server_dir = directory / "server"
    server_dir.mkdir(exist_ok=True)
    days = "2"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", days,
             "-subj", "/CN=test-ca", "-keyout", "ca.key", "-out", "ca.crt",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    for name, subject, extensions in (
        ("server", "/CN=function-model-rollout",
         "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"),
        ("client", "/CN=crossplane", "extendedKeyUsage=clientAuth\n"),
    ):
        (directory / f"{name}.ext").write_text(extensions)
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=directory)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", days, "-extfile", f"{name}.ext",
                 "-out", f"{name}.crt", cwd=directory)
    (server_dir / "tls.crt").write_bytes((directory / "server.crt").read_bytes())
    (server_dir / "tls.key").write_bytes((directory / "server.key").read_bytes())
    (server_dir / "ca.crt").write_bytes((directory / "ca.crt").read_bytes())
    return {
        "server_dir": server_dir,
        "ca": directory / "ca.crt",
        "client_crt": directory / "client.crt",
        "client_key": directory / "client.key",
    }
