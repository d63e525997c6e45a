"""The gRPC adapter: read the request, run the pure core, write the response."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import grpc
from crossplane.function import logging, response
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1

from function.compose import Composition, compose
from function.observe import get, read_observed, read_prior_status, to_plain
from function.plan import Plan, Severity, plan
from function.spec import InvalidSpec, parse_input, parse_spec

Clock = Callable[[], datetime]

_SEVERITY = {Severity.NORMAL: fnv1.SEVERITY_NORMAL, Severity.WARNING: fnv1.SEVERITY_WARNING}


def system_clock() -> datetime:
    return datetime.now(UTC)


class FunctionRunner(grpcv1.FunctionRunnerServiceServicer):
    """Serves RunFunction: one stateless rollout decision per call."""

    def __init__(self, clock: Clock = system_clock) -> None:
        self.clock = clock
        self.log = logging.get_logger()

    async def RunFunction(
        self, req: fnv1.RunFunctionRequest, _: grpc.aio.ServicerContext | None = None
    ) -> fnv1.RunFunctionResponse:
        return self.run(req)

    def run(self, req: fnv1.RunFunctionRequest) -> fnv1.RunFunctionResponse:
        rsp = response.to(req)
        try:
            respond(req, rsp, self.clock())
        except InvalidSpec as error:
            rsp = response.to(req)
            response.fatal(rsp, f"invalid {error}")
        except Exception as error:
            self.log.exception("RunFunction failed", tag=req.meta.tag)
            rsp = response.to(req)
            response.fatal(rsp, f"internal error: {type(error).__name__}: {error}")
        return rsp


def respond(req: fnv1.RunFunctionRequest, rsp: fnv1.RunFunctionResponse, now: datetime) -> None:
    xr = req.observed.composite.resource
    name = get(get(xr, "metadata"), "name")
    if not isinstance(name, str) or not name:
        raise InvalidSpec("metadata.name", "is required")
    spec = parse_spec(to_plain(get(xr, "spec")) if "spec" in xr else None)
    fn_input = parse_input(to_plain(req.input) if req.HasField("input") else None)
    prior = read_prior_status(get(xr, "status"))
    observed = read_observed((key, r.resource) for key, r in req.observed.resources.items())

    result = plan(spec, prior, observed, name, now)
    write(rsp, result, compose(spec, result, observed, fn_input, name))


def write(rsp: fnv1.RunFunctionResponse, result: Plan, composition: Composition) -> None:
    for desired in composition.resources:
        target = rsp.desired.resources[desired.key]
        target.resource.update(desired.body)
        target.ready = fnv1.READY_TRUE if desired.ready else fnv1.READY_FALSE

    rsp.desired.composite.resource.get_or_create_struct("status").update(composition.status)
    rsp.desired.composite.ready = fnv1.READY_TRUE if result.available else fnv1.READY_FALSE

    for condition in result.conditions:
        rsp.conditions.append(fnv1.Condition(
            type=condition.type,
            status=fnv1.STATUS_CONDITION_TRUE if condition.status
            else fnv1.STATUS_CONDITION_FALSE,
            reason=condition.reason,
            message=condition.message,
            target=fnv1.TARGET_COMPOSITE,
        ))
    for event in result.events:
        rsp.results.append(fnv1.Result(severity=_SEVERITY[event.severity],
                                       message=event.message, target=fnv1.TARGET_COMPOSITE))
    rsp.meta.ttl.FromSeconds(result.ttl_seconds)
