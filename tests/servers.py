"""Real gRPC servers for tests: in-process with an injected clock, or the console script."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import grpc
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1

from function.fn import FunctionRunner
from function.main import grpc_options

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def in_process_server(clock: Callable[[], datetime], max_message_mb: int = 4) -> Iterator[str]:
    """FunctionRunner(clock) on a real grpc.aio server on loopback, in a background thread."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict = {}

    async def serve() -> None:
        server = grpc.aio.server(options=grpc_options(max_message_mb, None))
        grpcv1.add_FunctionRunnerServiceServicer_to_server(FunctionRunner(clock=clock), server)
        server.add_insecure_port(address)
        await server.start()
        holder["stop"] = stop = asyncio.Event()
        started.set()
        await stop.wait()
        await server.stop(0)

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield address
    finally:
        loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(10)
        loop.close()


def console_script() -> list[str]:
    found = shutil.which("function", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "function.main"]


@contextlib.contextmanager
def subprocess_server(*args: str) -> Iterator[str]:
    """The `function` console script as Crossplane would run it, on a free loopback port."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    process = subprocess.Popen(
        [*console_script(), "--address", address, *args],
        cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"function exited: {process.stdout.read().decode()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("function did not listen within 30 s")
        yield address
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
