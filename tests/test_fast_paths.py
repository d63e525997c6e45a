"""The fast paths give what the straightforward paths give, byte for byte.

RunFunction reads observed Structs straight from their fields
(function/observe.py), and writes desired replicas and endpoints as copies of a
template per revision with only their own fields set (writer.write_composed). Every
response here is compared with a reference built the plain way: observed
resources converted to dicts with json_format and read through the Mapping
protocol, the desired bodies composed as dicts (compose() below, from
function/compose.py's bodies) and each
converted with json_format. The desired state must serialise to the same bytes,
and the whole response must be equal.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from crossplane.function import resource, response
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from google.protobuf import json_format, struct_pb2
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from function import fn, naming, writer
from function import naming as _naming
from function.compose import (
    DesiredResource,
    endpoint_body,
    endpoint_ready,
    replica_body,
    replica_labels,
    route_resources,
    status,
)
from function.observe import (
    find_condition,
    get,
    read_endpoint,
    read_metrics,
    read_observed,
    read_prior_status,
    read_replica,
    read_route,
    to_plain,
)
from function.planner import plan
from function.spec import parse_input, parse_spec
from tests.fixtures import blue_green, deployment, rolling
from tests.world import T0, Fate, World, ts


def _benchmark() -> Any:
    path = Path(__file__).resolve().parent.parent / "scripts" / "benchmark.py"
    spec = importlib.util.spec_from_file_location("benchmark_script", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("benchmark_script", module)
    spec.loader.exec_module(module)
    return module


benchmark = _benchmark()


# --- the reference: dicts in, json_format out --------------------------------------------


def plain(message: Any) -> Any:
    return json_format.MessageToDict(message)


def compose(spec: Any, plan_: Any, observed: Any, fn_input: Any,
            xr_name: str) -> tuple[list[DesiredResource], dict[str, Any]]:
    """The plan as desired resources and XR status, every body built as a dict: each
    planned replica, then its endpoint while it is observed Ready, then the routes.
    """
    resources: list[DesiredResource] = []
    templates: dict[str, dict[str, Any]] = {}
    for planned in plan_.replicas:
        labels = replica_labels(plan_, planned, xr_name)
        resources.append(DesiredResource(
            key=planned.key,
            body=replica_body(plan_, planned, xr_name, fn_input, labels, templates),
            ready=planned.observed_ready))
        if planned.has_endpoint:
            resources.append(DesiredResource(
                key=_naming.endpoint_key(planned.revision, planned.index),
                body=endpoint_body(plan_, planned, labels, fn_input),
                ready=endpoint_ready(observed, planned)))
    resources.extend(route_resources(spec, plan_, observed, xr_name))
    return resources, status(plan_)


def reference(req: fnv1.RunFunctionRequest, now: datetime) -> fnv1.RunFunctionResponse:
    """RunFunction without the fast paths: what the optimised response must equal."""
    rsp = response.to(req)
    xr = plain(req.observed.composite.resource)
    name = xr["metadata"]["name"]
    spec = parse_spec(to_plain(xr["spec"]))
    fn_input = parse_input(to_plain(plain(req.input)) if req.HasField("input") else None)
    prior = read_prior_status(xr.get("status"))
    observed = read_observed((key, plain(r.resource)) for key, r in req.observed.resources.items())
    result = plan(spec, prior, observed, name, now)
    resources, composed_status = compose(spec, result, observed, fn_input, name)

    for desired in resources:
        target = rsp.desired.resources[desired.key]
        merge(target.resource, desired.body)
        target.ready = fnv1.READY_TRUE if desired.ready else fnv1.READY_FALSE
    merge(rsp.desired.composite.resource.get_or_create_struct("status"), composed_status)
    writer.write_verdict(rsp, result)  # readiness, conditions, results, TTL: no fast path there
    return rsp


def merge(target: struct_pb2.Struct, body: dict[str, Any]) -> None:
    """Struct.update(body): each top-level value replaced, through json_format."""
    for key, value in body.items():
        target.fields[key].Clear()
        json_format.ParseDict(value, target.fields[key])


def assert_same(req: fnv1.RunFunctionRequest, now: datetime) -> fnv1.RunFunctionResponse:
    fast = fn.FunctionRunner(clock=lambda: now).run(req)
    assert not any(r.severity == fnv1.SEVERITY_FATAL for r in fast.results), fast.results
    slow = reference(req, now)
    assert (fast.desired.SerializeToString(deterministic=True)
            == slow.desired.SerializeToString(deterministic=True))
    assert fast == slow
    return fast


def replay(world: World) -> World:
    """Compare the fast and the reference response on every call the world makes."""
    world.call = assert_same
    return world


def stable_on(revision: str):
    def done(world: World) -> bool:
        return (world.status.get("phase") == "Stable"
                and world.status.get("currentRevision") == revision
                and world.replicas() == world.replicas(revision))
    return done


# --- whole responses ----------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 7, 40])
def test_the_benchmark_request(n):
    assert_same(benchmark.build_request(n), benchmark.NOW)


def test_a_whole_rolling_update_replayed():
    world = replay(World(spec=deployment(5, ("v1", "v2"), active="v1",
                                         strategy=rolling("40%", 1))))
    world.run_until(stable_on("v1"))
    world.spec["activeRevision"] = "v2"
    calls = world.run_until(stable_on("v2"))
    assert calls > 3
    kinds = {key.split("-")[0] for step in world.history for key in step.desired}
    assert kinds == {"replica", "endpoint", "route"}
    assert any(naming.ANNOTATION_DRAINING_SINCE in body["metadata"].get("annotations", {})
               for step in world.history for body in step.desired.values())


def test_a_blue_green_rollout_with_a_preview_route_replayed():
    world = replay(World(spec=deployment(3, ("v1", "v2"), active="v1", preview=True,
                                         strategy=blue_green(auto=True, scale_down=20))))
    world.run_until(stable_on("v1"))
    world.spec["activeRevision"] = "v2"
    world.run_until(stable_on("v2"))
    assert any(naming.PREVIEW_ROUTE_KEY in step.desired for step in world.history)


def test_replicas_that_fail_crash_turn_unhealthy_or_go_stale_replayed():
    def fate(revision: str, index: int) -> Fate:
        if revision == "v2" and index == 1:
            return Fate(warmup=40, crash_after=60)
        if revision == "v2" and index == 2:
            return Fate(warmup=30, unhealthy_after=50)
        if revision == "v1" and index == 3:
            return Fate(warmup=20, stale_after=30)
        return Fate(warmup=20 + 7 * index, backend_lag=10 * (index % 2))

    world = replay(World(spec=deployment(4, ("v1", "v2"), active="v1", drainSeconds=20,
                                         healthPolicy={"statusTTLSeconds": 30}),
                         fate_for=fate))
    world.run_until(stable_on("v1"))
    world.spec["activeRevision"] = "v2"
    for _ in range(40):
        world.step(15)


def test_a_rollout_on_a_pool_with_no_spare_accelerator_replayed():
    strategy = rolling(1, 0)
    strategy["rollingUpdate"].update(onCapacityShortage="Replace", capacityWaitSeconds=30)
    world = replay(World(spec=deployment(3, ("v1", "v2"), active="v1", strategy=strategy),
                         gpus=3, fate_for=lambda revision, index: Fate(warmup=40)))
    world.run_until(stable_on("v1"))
    world.spec["activeRevision"] = "v2"
    world.run_until(stable_on("v2"))
    assert any(world.history[i].status["replicas"]["unschedulable"]
               for i in range(len(world.history)))


def test_a_revision_removed_from_the_spec_keeps_its_replicas_spec():
    world = replay(World(spec=deployment(3, ("v1", "v2"), active="v1")))
    world.run_until(stable_on("v1"))
    world.spec["activeRevision"] = "v2"
    world.step()
    world.step()
    world.spec["revisions"] = [r for r in world.spec["revisions"] if r["name"] == "v2"]
    world.run_until(stable_on("v2"))


def test_no_route_a_custom_input_and_resources_an_earlier_step_desired():
    world = World(spec=deployment(3, ("v1", "v2"), active="v1", route=False))
    world.run_until(stable_on("v1"))
    world.spec["activeRevision"] = "v2"
    world.step()
    world.step()
    req = world.request()
    req.input.update({"apiVersion": "fn.rollout.dev/v1beta1", "kind": "Input",
                      "replica": {"apiVersion": "example.org/v1", "kind": "Replica"},
                      "endpoint": {"kind": "Endpoint"}})
    earlier = req.desired.resources
    earlier["from-earlier-step"].resource.update({"apiVersion": "v1", "kind": "ConfigMap"})
    earlier["replica-v1-0"].resource.update({"kept": {"by": "earlier"}, "spec": {"x": 1}})
    earlier["endpoint-v1-1"].resource.update({"metadata": {"name": "other"}})
    rsp = assert_same(req, world.now)
    assert "from-earlier-step" in rsp.desired.resources
    assert rsp.desired.resources["replica-v1-0"].resource["kept"]["by"] == "earlier"
    assert rsp.desired.resources["replica-v1-1"].resource["kind"] == "Replica"


def test_duplicate_dicts_and_every_value_type_are_written_as_struct_update_writes_them():
    shared = {"a": [1, 2.5, True, None, "x", {"b": {}}, []], "c": {}}
    body = {"one": shared, "two": shared, "three": [shared, shared], "t": True, "f": False,
            "n": None, "i": 3, "big": 2**60, "s": "", "e": {}, "l": [], "nested": [[1], [[]]]}
    expected = struct_pb2.Struct()
    expected.update(body)
    target = struct_pb2.Struct()
    target.update({"one": "replaced", "untouched": 1})
    expected_merged = struct_pb2.Struct()
    expected_merged.update({"one": "replaced", "untouched": 1})
    expected_merged.update(body)
    writer.StructWriter().update(target, body)
    assert target == expected_merged
    fresh = struct_pb2.Struct()
    writer.StructWriter().update(fresh, body)
    assert fresh.SerializeToString(deterministic=True) == expected.SerializeToString(
        deterministic=True)


flat_objects = st.lists(
    st.dictionaries(st.sampled_from(["name", "port", "weight"]),
                    st.none() | st.booleans() | st.integers(0, 2) | st.floats(0, 2)
                    | st.sampled_from(["", "a", "b"]) | st.just({"x": 1}) | st.just([1]),
                    max_size=3),
    max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.lists(flat_objects, min_size=1, max_size=3))
@example([[{"port": 1}, {"port": True}, {"port": 1.0}, {"port": False}, {"port": 0}]])
@example([[{"name": "a", "port": 1}, {"name": "b", "port": 1}, {"name": "b", "port": {"x": 1}},
           {"name": "b", "port": 1}, {"port": 1}, {"name": None, "port": 1}]])
def test_lists_of_alike_objects_are_written_as_struct_update_writes_them(lists):
    body = {f"l{i}": objects for i, objects in enumerate(lists)}
    expected = struct_pb2.Struct()
    expected.update(body)
    written = struct_pb2.Struct()
    writer.StructWriter().update(written, body)
    assert written == expected
    assert written.SerializeToString(deterministic=True) == expected.SerializeToString(
        deterministic=True)


# --- observed values read straight from Structs -------------------------------------------


def struct(body: dict[str, Any]) -> struct_pb2.Struct:
    return resource.dict_to_struct(body)


def same_replica(body: dict[str, Any]) -> Any:
    """read_replica of the Struct equals read_replica of its dict; the former is returned."""
    from_struct = read_replica("replica-v1-0", "v1", 0, struct(body))
    from_dict = read_replica("replica-v1-0", "v1", 0, plain(struct(body)))
    assert to_plain(from_struct.raw_spec) == to_plain(from_dict.raw_spec)
    assert read_metrics(from_struct.raw_metrics) == read_metrics(from_dict.raw_metrics)
    assert (dataclasses.replace(from_struct, raw_spec=None, raw_metrics=None)
            == dataclasses.replace(from_dict, raw_spec=None, raw_metrics=None))
    return from_struct


def good_replica() -> dict[str, Any]:
    return {
        "apiVersion": "serving.rollout.dev/v1alpha1",
        "kind": "ModelReplica",
        "metadata": {
            "name": "qwen-v1-0",
            "creationTimestamp": ts(T0),
            "labels": {naming.LABEL_TEMPLATE_HASH: "abc"},
            "annotations": {naming.ANNOTATION_DESIRED_SINCE: ts(T0),
                            naming.ANNOTATION_DRAINING_SINCE: ts(T0 + timedelta(minutes=1)),
                            naming.ANNOTATION_DRAIN_SECONDS: "30"},
        },
        "spec": {"engine": {"port": 8000}},
        "status": {
            "conditions": [{"type": "Synced", "status": "True"},
                           {"type": "Ready", "status": "True", "reason": "Up", "message": "ok",
                            "lastTransitionTime": ts(T0)},
                           {"type": "Scheduled", "status": "True", "reason": "Bound",
                            "lastTransitionTime": ts(T0)}],
            "health": {"state": "Healthy", "lastProbeTime": ts(T0), "consecutiveFailures": 0},
            "phase": "Running",
            "message": "serving",
            "address": {"url": "http://10.0.0.1:8000"},
            "metrics": {"windowSeconds": 60, "observedTime": ts(T0), "requests": 900,
                        "errors": 3, "ttftP95Seconds": 0.8, "itlP95Seconds": 0.04},
        },
    }


WRONG = [1, 2.5, True, False, None, "", "text", [], [1, "x"], {}, {"a": 1}, [{}], [None],
         [{"type": "Ready", "status": 5}]]

PATHS = [
    ("metadata",), ("metadata", "creationTimestamp"), ("metadata", "labels"),
    ("metadata", "labels", naming.LABEL_TEMPLATE_HASH), ("metadata", "annotations"),
    ("metadata", "annotations", naming.ANNOTATION_DESIRED_SINCE),
    ("metadata", "annotations", naming.ANNOTATION_DRAINING_SINCE),
    ("metadata", "annotations", naming.ANNOTATION_DRAIN_SECONDS),
    ("status",), ("status", "conditions"), ("status", "conditions", 0),
    ("status", "conditions", 1), ("status", "conditions", 1, "type"),
    ("status", "conditions", 1, "status"), ("status", "conditions", 1, "reason"),
    ("status", "conditions", 1, "lastTransitionTime"), ("status", "conditions", 2),
    ("status", "conditions", 2, "type"), ("status", "conditions", 2, "status"),
    ("status", "conditions", 2, "reason"), ("status", "conditions", 2, "lastTransitionTime"),
    ("status", "health"),
    ("status", "health", "state"), ("status", "health", "lastProbeTime"),
    ("status", "health", "consecutiveFailures"), ("status", "phase"), ("status", "message"),
    ("status", "address"), ("status", "address", "url"), ("status", "metrics"),
    ("status", "metrics", "requests"), ("status", "metrics", "observedTime"),
    ("status", "metrics", "ttftP95Seconds"), ("spec",),
]


def put(body: Any, path: tuple, value: Any) -> None:
    for step in path[:-1]:
        body = body[step]
    if isinstance(path[-1], int) != isinstance(body, list):
        raise TypeError(f"{path} does not fit {body!r}")
    body[path[-1]] = value


@pytest.mark.parametrize("path", PATHS, ids=lambda p: ".".join(map(str, p)))
def test_a_wrong_type_anywhere_in_a_replica_reads_as_it_does_from_a_dict(path):
    good = same_replica(good_replica())
    assert good.ready is not None and good.ready.reason == "Up" and good.health is not None
    assert good.scheduled is not None and good.scheduled.reason == "Bound"
    assert not good.malformed and good.drain_seconds == 30 and good.url
    assert read_metrics(good.raw_metrics) is not None
    for value in WRONG:
        body = good_replica()
        put(body, path, value)
        same_replica(body)


@pytest.mark.parametrize("value", [1, True, [], ["x"], {"a": "b"}])
def test_wrong_types_read_as_unknown_in_the_fast_path(value):
    body = good_replica()
    for path in [("metadata", "creationTimestamp"), ("status", "address", "url"),
                 ("status", "health", "state"), ("status", "message"),
                 ("metadata", "labels", naming.LABEL_TEMPLATE_HASH)]:
        put(body, path, value)
    read = same_replica(body)
    assert read.created is None and read.url is None
    assert read.template_hash is None
    assert read.health is not None and read.health.state is None
    if isinstance(value, dict):
        return
    broken = good_replica()
    put(broken, ("status", "health"), value)
    read = same_replica(broken)
    assert read.health is None and read.malformed
    put(broken, ("status",), value)
    read = same_replica(broken)
    assert read.ready is None and read.health is None and read.url is None and read.malformed


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.sampled_from(
        ["", "True", "Ready", "Failed", "Healthy", ts(T0), "2026-13-99", "30"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["type", "status", "reason", "message", "lastTransitionTime", "url",
                         "state", "lastProbeTime", "consecutiveFailures", "x"]),
        children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(PATHS), json_values), max_size=4))
def test_any_damage_reads_the_same_from_a_struct_and_from_a_dict(damage):
    body = good_replica()
    for path, value in damage:
        try:
            put(body, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier damage removed the parent
    same_replica(body)
    as_struct, as_dict = struct(body), plain(struct(body))
    assert read_endpoint("e", "v1", 0, as_struct) == read_endpoint("e", "v1", 0, as_dict)
    assert read_route(as_struct) == read_route(as_dict)
    assert (find_condition(get(as_struct, "status"), "Ready")
            == find_condition(get(as_dict, "status"), "Ready"))
    assert read_prior_status(get(as_struct, "status")) == read_prior_status(
        get(as_dict, "status"))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=3), json_values | st.floats(allow_nan=False)
                       | st.just(float("inf")) | st.integers(-2**60, 2**60), max_size=5))
def test_to_plain_reads_a_struct_as_its_mapping_protocol_does(body):
    as_struct = struct(body)
    # repr: 1 and 1.0 are equal, but to_plain must give the int
    assert repr(to_plain(as_struct)) == repr(to_plain(plain_mapping(as_struct)))
    deep: dict[str, Any] = {"leaf": 1.0}
    for level in range(45):  # past to_plain's depth bound of 64, in dicts and lists
        deep = {"d": deep} if level % 3 else {"l": [deep, 2.0]}
    deep_struct = struct_pb2.Struct()
    deep_struct.update(deep)  # json_format refuses this depth; Struct.update does not
    assert repr(to_plain(deep_struct)) == repr(to_plain(plain_mapping(deep_struct)))


def plain_mapping(value: Any) -> Any:
    """A Struct's values through its Mapping/Sequence protocol, as dicts and lists."""
    if isinstance(value, str):
        return value
    if isinstance(value, struct_pb2.Struct):
        return {key: plain_mapping(value[key]) for key in value}
    if isinstance(value, struct_pb2.ListValue):
        return [plain_mapping(item) for item in value]
    return value


def test_get_reads_a_struct_as_its_mapping_protocol_does():
    body = struct({"s": "x", "e": "", "n": 2, "z": 0, "b": False, "null": None, "l": [1],
                   "d": {"k": "v"}, "empty": {}})
    for key in ["s", "e", "n", "z", "b", "null", "l", "d", "empty", "missing"]:
        expected = body[key] if key in body else None  # noqa: SIM401 (the Mapping protocol)
        assert get(body, key) == expected
        assert type(get(body, key)) is type(expected)
    body.fields["unset"].Clear()  # a Value with no kind: JSON cannot say this
    with pytest.raises(ValueError, match="Value not set"):
        get(body, "unset")
    assert get(body["l"], "x") is None and get("text", "x") is None
