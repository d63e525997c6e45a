"""The function on a simulated clock, served from a process of its own.

    python -m tests.sim_server        # prints "listening <port>", serves until stdin closes

Each call carries the simulated time in its `x-sim-now` metadata (ISO 8601); the
server sets its clock to it and runs `function.fn.FunctionRunner`. Started twice with
different PYTHONHASHSEED values (`TwinServers`), it shows that the function's
responses do not depend on the process's string hashing: the campaign sends every
request to both and compares the bytes.

With SIM_SERVER_MUTATION=set-ordered-backends in its environment the server reorders
every route's backendRefs by iterating a set of their names, as a function that
forgot to sort would: the test that the twin comparison catches what it is for.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

import grpc
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1
from google.protobuf import json_format

from function.fn import FunctionRunner

ROOT = Path(__file__).resolve().parent.parent
NOW_HEADER = "x-sim-now"
MEGABYTE = 1024 * 1024
OPTIONS = [("grpc.max_send_message_length", 64 * MEGABYTE),
           ("grpc.max_receive_message_length", 64 * MEGABYTE)]


class _Clock:
    def __init__(self) -> None:
        self.now = datetime.fromisoformat("2026-11-22T10:00:00+00:00")

    def __call__(self) -> datetime:
        return self.now


def _set_ordered_backends(rsp: fnv1.RunFunctionResponse) -> None:
    """The mutation: each route rule's backendRefs in the iteration order of a set."""
    for key in ("route", "preview-route"):
        if key not in rsp.desired.resources:
            continue
        route = json_format.MessageToDict(rsp.desired.resources[key].resource)
        for rule in route.get("spec", {}).get("rules", []):
            refs = {ref["name"]: ref for ref in rule.get("backendRefs", [])}
            rule["backendRefs"] = [refs[name] for name in set(refs)]
        rsp.desired.resources[key].resource.Clear()
        rsp.desired.resources[key].resource.update(route)


class _Servicer(grpcv1.FunctionRunnerServiceServicer):
    """FunctionRunner with its clock set from each call's metadata. Calls are served one
    at a time (the clock is shared), which is how the campaign makes them."""

    def __init__(self) -> None:
        self.clock = _Clock()
        self.runner = FunctionRunner(clock=self.clock)
        self.mutate = os.environ.get("SIM_SERVER_MUTATION") == "set-ordered-backends"

    async def RunFunction(self, req: fnv1.RunFunctionRequest,
                          context: grpc.aio.ServicerContext) -> fnv1.RunFunctionResponse:
        for key, value in context.invocation_metadata() or ():
            if key == NOW_HEADER:
                self.clock.now = datetime.fromisoformat(value)
        rsp = self.runner.run(req)
        if self.mutate:
            _set_ordered_backends(rsp)
        return rsp


async def _serve() -> None:
    server = grpc.aio.server(options=OPTIONS)
    grpcv1.add_FunctionRunnerServiceServicer_to_server(_Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"listening {port}", flush=True)
    # Serve until the parent closes our stdin (or dies).
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop(grace=None)


class SimServer:
    """One `python -m tests.sim_server` child with the given PYTHONHASHSEED, and a client."""

    def __init__(self, hash_seed: int) -> None:
        self.hash_seed = hash_seed
        env = {**os.environ, "PYTHONHASHSEED": str(hash_seed), "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.sim_server"], cwd=ROOT, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.process.stdout is not None
        line = self._first_line(60.0)
        if not line.startswith("listening "):
            self.close()
            raise RuntimeError(f"tests.sim_server did not start: {line!r}")
        self.channel = grpc.insecure_channel(f"127.0.0.1:{int(line.split()[1])}",
                                             options=OPTIONS)
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.stub = grpcv1.FunctionRunnerServiceStub(self.channel)

    def _first_line(self, timeout: float) -> str:
        got: list[str] = []
        reader = threading.Thread(target=lambda: got.append(self.process.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(timeout)
        return got[0].strip() if got else ""

    def __call__(self, req: fnv1.RunFunctionRequest, now: datetime) -> fnv1.RunFunctionResponse:
        return self.start(req, now).result()

    def start(self, req: fnv1.RunFunctionRequest, now: datetime) -> grpc.Future:
        """Send the request; the returned future gives the response."""
        return self.stub.RunFunction.future(req, timeout=60,
                                            metadata=[(NOW_HEADER, now.isoformat())])

    def close(self) -> None:
        if getattr(self, "channel", None) is not None:
            self.channel.close()
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class TwinServers:
    """Two SimServers whose processes hash strings differently; a call goes to both.

    `__call__` returns the first server's response and the second's, for the caller
    to compare."""

    def __init__(self, hash_seeds: tuple[int, int]) -> None:
        if hash_seeds[0] == hash_seeds[1]:
            raise ValueError("twin servers need different PYTHONHASHSEED values")
        self.hash_seeds = hash_seeds
        self.servers: list[SimServer] = []
        try:
            for seed in hash_seeds:
                self.servers.append(SimServer(seed))
        except BaseException:
            self.close()
            raise

    def __call__(self, req: fnv1.RunFunctionRequest, now: datetime
                 ) -> tuple[fnv1.RunFunctionResponse, fnv1.RunFunctionResponse]:
        first, second = (server.start(req, now) for server in self.servers)
        return first.result(), second.result()

    def close(self) -> None:
        for server in self.servers:
            server.close()

    def __enter__(self) -> TwinServers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    asyncio.run(_serve())
