"""The gRPC adapter: read the request, run the pure core, write the response."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import grpc
from crossplane.function import logging, response
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1

from function import response_size
from function.observe import get, read_observed, read_prior_status, to_plain
from function.planner import plan
from function.spec import InvalidSpec, parse_input, parse_spec
from function.writer import write_composed

Clock = Callable[[], datetime]

def system_clock() -> datetime:
    """The wall clock, in UTC: the one clock the function reads outside tests."""
    return datetime.now(UTC)


@contextlib.contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Hold off Python's cyclic garbage collector for the length of one call.

    A call allocates a few objects per observed resource (tens of thousands at
    thousands of replicas), enough to trigger full collections, each of which
    walks every object in the process: measured, a sixth of a call at 1000
    replicas, and more as the heap grows. What a call allocates holds no
    reference cycles and is freed by reference counting when the call returns;
    anything else waits for the next collection after it. The collector is left
    as it was found, so a caller that disabled it keeps it disabled.
    """
    enabled = gc.isenabled()
    if enabled:
        gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class FunctionRunner(grpcv1.FunctionRunnerServiceServicer):
    """Serves RunFunction: one stateless rollout decision per call."""

    def __init__(self, clock: Clock = system_clock) -> None:
        self.clock = clock
        self.log = logging.get_logger()

    async def RunFunction(
        self, req: fnv1.RunFunctionRequest, _: grpc.aio.ServicerContext | None = None
    ) -> fnv1.RunFunctionResponse:
        """The gRPC method: one stateless rollout decision."""
        return self.run(req)

    def run(self, req: fnv1.RunFunctionRequest) -> fnv1.RunFunctionResponse:
        """The response to req; any error is one Fatal result, never a gRPC error."""
        rsp = response.to(req)
        try:
            with cyclic_gc_paused():
                respond(req, rsp, self.clock())
        except InvalidSpec as error:
            rsp = response.to(req)
            response.fatal(rsp, f"invalid {error}")
        except Exception as error:
            self.log.exception("RunFunction failed", tag=req.meta.tag)
            rsp = response.to(req)
            response.fatal(rsp, f"internal error: {type(error).__name__}: {error}")
        return response_size.bounded(req, rsp)


def respond(req: fnv1.RunFunctionRequest, rsp: fnv1.RunFunctionResponse, now: datetime) -> None:
    """Read the request, plan at `now`, write the plan into rsp (raises InvalidSpec)."""
    xr = req.observed.composite.resource
    name = get(get(xr, "metadata"), "name")
    if not isinstance(name, str) or not name:
        raise InvalidSpec("metadata.name", "is required")
    spec = parse_spec(to_plain(get(xr, "spec")) if "spec" in xr else None)
    fn_input = parse_input(to_plain(req.input) if req.HasField("input") else None)
    prior = read_prior_status(get(xr, "status"))
    observed = read_observed((key, r.resource) for key, r in req.observed.resources.items())

    result = plan(spec, prior, observed, name, now)
    write_composed(rsp, spec, result, observed, fn_input, name)
