"""The gRPC adapter: read the request, run the pure core, write the response."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import grpc
from crossplane.function import logging, response
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1
from google.protobuf import struct_pb2

from function import naming, response_size
from function.compose import (
    endpoint_body,
    endpoint_ready,
    replica_annotations,
    replica_body,
    replica_labels,
    route_resources,
)
from function.compose import status as composed_status
from function.observe import Observed, get, read_observed, read_prior_status, to_plain
from function.plan import Plan, Severity, plan
from function.spec import Input, InvalidSpec, Spec, parse_input, parse_spec

Clock = Callable[[], datetime]

_SEVERITY = {Severity.NORMAL: fnv1.SEVERITY_NORMAL, Severity.WARNING: fnv1.SEVERITY_WARNING}


def system_clock() -> datetime:
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
        return self.run(req)

    def run(self, req: fnv1.RunFunctionRequest) -> fnv1.RunFunctionResponse:
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


def from_template(body: struct_pb2.Struct, template: struct_pb2.Struct, name: str,
                  index: int) -> Any:
    """body = template, renamed and re-indexed; returns body's metadata fields."""
    body.CopyFrom(template)
    metadata = body.fields["metadata"].struct_value.fields
    metadata["name"].string_value = name
    metadata["labels"].struct_value.fields[naming.LABEL_INDEX].string_value = str(index)
    return metadata


def write_composed(rsp: fnv1.RunFunctionResponse, spec: Spec, result: Plan, observed: Observed,
                   fn_input: Input, xr_name: str) -> None:
    """Write what compose(spec, result, observed, fn_input, xr_name) gives into rsp, quicker.

    All replicas of a revision listed in the spec have the same body but for the
    name, the replica-index label and the annotations; their endpoints differ in
    name, index label, spec.replica and spec.url. The first replica and endpoint
    of each revision are written from their dict bodies and kept as templates;
    every other one is a copy of its template (one C call) with only those fields
    set. Replicas of revisions missing from the spec and keys an earlier pipeline
    step already desired (merged into, not replaced) take the dict path.
    """
    resources = rsp.desired.resources
    earlier = frozenset(resources)
    writer = StructWriter()
    spec_dicts: dict[str, dict[str, Any]] = {}
    replica_templates: dict[str, struct_pb2.Struct] = {}
    endpoint_templates: dict[str, struct_pb2.Struct] = {}
    for planned in result.replicas:
        revision = planned.revision
        # Replicas of a revision gone from the spec keep their own observed spec: no template.
        templated = result.revisions[revision].template is not None
        key = planned.key
        fresh = key not in earlier  # an earlier step's body is merged into, not replaced
        target = resources[key]
        template = replica_templates.get(revision) if fresh else None
        if template is not None:
            metadata = from_template(target.resource, template, planned.name, planned.index)
            annotations = metadata["annotations"].struct_value.fields  # none in the template
            for name, text in replica_annotations(planned).items():
                annotations[name].string_value = text
            label_dict = None
        else:
            label_dict = replica_labels(result, planned, xr_name)
            writer.update(target.resource,
                          replica_body(result, planned, xr_name, fn_input, label_dict, spec_dicts))
            if templated and fresh:
                template = replica_templates[revision] = _copy(target.resource)
                # Annotations differ per replica (draining ones have more): each sets its own.
                metadata = template.fields["metadata"].struct_value.fields
                metadata["annotations"].struct_value.Clear()
        target.ready = fnv1.READY_TRUE if planned.observed_ready else fnv1.READY_FALSE

        if not planned.has_endpoint:
            continue
        key = naming.endpoint_key(revision, planned.index)
        fresh = key not in earlier
        target = resources[key]
        template = endpoint_templates.get(revision) if fresh else None
        url = planned.replica.observed.url if planned.replica is not None else None
        if template is not None:
            body = target.resource
            from_template(body, template, planned.name, planned.index)
            endpoint_spec = body.fields["spec"].struct_value.fields
            endpoint_spec["replica"].string_value = planned.name
            if url:
                endpoint_spec["url"].string_value = url
            elif "url" in endpoint_spec:
                del endpoint_spec["url"]
        else:
            if label_dict is None:
                label_dict = replica_labels(result, planned, xr_name)
            writer.update(target.resource, endpoint_body(result, planned, label_dict, fn_input))
            if templated and fresh:
                endpoint_templates[revision] = _copy(target.resource)
        target.ready = fnv1.READY_TRUE if endpoint_ready(observed, planned) else fnv1.READY_FALSE

    for desired in route_resources(spec, result, observed, xr_name):
        target = resources[desired.key]
        writer.update(target.resource, desired.body)
        target.ready = fnv1.READY_TRUE if desired.ready else fnv1.READY_FALSE
    write_outcome(rsp, result, composed_status(result))


def _copy(struct: struct_pb2.Struct) -> struct_pb2.Struct:
    copy = struct_pb2.Struct()
    copy.CopyFrom(struct)
    return copy


def write_outcome(rsp: fnv1.RunFunctionResponse, result: Plan, status: dict[str, Any]) -> None:
    """The XR's status, then write_verdict."""
    StructWriter().update(rsp.desired.composite.resource.get_or_create_struct("status"), status)
    write_verdict(rsp, result)


def write_verdict(rsp: fnv1.RunFunctionResponse, result: Plan) -> None:
    """The XR's readiness, conditions, results and TTL."""
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


_SCALARS = frozenset({str, int, float, bool})


class StructWriter:
    """Struct.update(dict), with each dict met again copied from where it was first written.

    The result is what Struct.update gives. Composed bodies share dicts: every
    replica of a revision has the same spec dict, and a replica's labels are
    its endpoint's. Building a Struct from a dict costs a Python call per value;
    CopyFrom of the Struct already built costs one C call, ten times less.
    Identity stands for equality because no dict changes while a writer is in
    use, and nothing it wrote is written again.
    """

    def __init__(self) -> None:
        self._built: dict[int, tuple[Mapping[str, Any], struct_pb2.Struct]] = {}

    def update(self, target: struct_pb2.Struct, body: Mapping[str, Any]) -> None:
        fields = target.fields
        for key, value in body.items():
            kind = type(value)
            if kind is str:
                fields[key].string_value = value
            elif kind is dict:
                self._struct(fields[key], value)
            elif kind is int or kind is float:
                fields[key].number_value = value
            elif kind is list:
                self._list(fields[key].list_value, value)
            elif kind is bool:
                fields[key].bool_value = value
            elif value is None:
                fields[key].null_value = struct_pb2.NULL_VALUE
            else:
                target[key] = value  # anything else exactly as Struct.update has it

    def _struct(self, target: struct_pb2.Value, value: dict[str, Any]) -> None:
        built = self._built.get(id(value))
        struct = target.struct_value
        if built is not None and built[0] is value:
            struct.CopyFrom(built[1])
            return
        struct.Clear()  # also sets the kind for an empty dict, as Struct.update does
        self.update(struct, value)
        self._built[id(value)] = (value, struct)

    def _list(self, target: struct_pb2.ListValue, values: list[Any]) -> None:
        """Like Struct.update's, with each flat object written as a copy of the one before.

        A route carries one {name, port, weight} per serving replica: copying
        the previous one and setting the values that differ (its name) saves a
        fifth of the work of writing each from scratch.
        """
        target.Clear()
        add = target.values.add
        like: tuple[dict[str, Any], struct_pb2.Struct] | None = None  # last flat object written
        for value in values:
            kind = type(value)
            if kind is str:
                add().string_value = value
            elif kind is dict:
                if like is not None and value.keys() == like[0].keys():
                    previous, previous_struct = like
                    struct = add().struct_value
                    struct.CopyFrom(previous_struct)
                    for key, item in value.items():
                        if item != previous[key] or type(item) is not type(previous[key]):
                            self.update(struct, {key: item})
                elif all(type(item) in _SCALARS for item in value.values()):
                    element = add()
                    self._struct(element, value)
                    like = (value, element.struct_value)
                else:
                    self._struct(add(), value)
            elif kind is int or kind is float:
                add().number_value = value
            else:
                target.append(value)  # lists, bools, None and the rest, as Struct.update
