"""Malformed requests never do harm (docs/rollout.md#bad-input).

Start from real requests (a stable deployment, a RollingUpdate half way, a BlueGreen
rollout waiting for promotion, each with a resource an earlier pipeline step
desired) and break them: wrong types anywhere in the spec, the status, the
metadata, the Input or an observed resource; missing fields; huge numbers, NaN and
infinities; unicode; deep nesting; huge lists. Whatever the damage:

- the function returns (an exception never escapes);
- the response is either valid or exactly one Fatal result, and a Fatal response
  carries the request's desired state unchanged, so Crossplane deletes nothing;
- a Fatal names the bad field (the validator caught it), never "internal error";
- a broken status or broken observed resource is unknown data, never a Fatal, and
  never a reason to drop a replica: every replica that serves is still desired,
  and so is a replica whose own observed body was broken, if the same request
  unbroken kept it.
"""

from __future__ import annotations

import copy
import math
import os
from datetime import timedelta
from functools import cache
from typing import Any

import pytest
from crossplane.function import resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from function import naming
from function.fn import FunctionRunner
from function.spec import parse_spec
from tests.fixtures import blue_green, deployment
from tests.sim_invariants import check_shape, serving_from_outside
from tests.world import Fate, World

SETTINGS = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")),
    deadline=None,
    derandomize=os.environ.get("CI") == "true",
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)


# --- real requests to break ------------------------------------------------------------------


def fates(revision: str, index: int) -> Fate:
    return Fate(warmup=30 + 15 * index, backend_lag=10 * (index % 2))


@cache
def snapshots() -> dict[str, tuple[World, bytes]]:
    """name -> (world, serialized request) at interesting moments of real rollouts."""
    out: dict[str, tuple[World, bytes]] = {}

    stable = World(spec=deployment(3, ("v1", "v2"), active="v1"), fate_for=fates)
    stable.run_until(lambda w: w.status.get("phase") == "Stable")
    out["stable"] = (stable, stable.request().SerializeToString())

    rolling = World(spec=deployment(4, ("v1", "v2"), active="v1", drainSeconds=60),
                    fate_for=fates)
    rolling.run_until(lambda w: w.status.get("phase") == "Stable")
    rolling.spec["activeRevision"] = "v2"
    rolling.run_until(lambda w: any(
        naming.ANNOTATION_DRAINING_SINCE in b["metadata"].get("annotations", {})
        for b in w.composed.values()) and len(w.replicas("v2")) >= 2)
    out["rolling"] = (rolling, rolling.request().SerializeToString())

    waiting = World(spec=deployment(2, ("v1", "v2"), active="v1", preview=True,
                                    strategy=blue_green()), fate_for=fates)
    waiting.run_until(lambda w: w.status.get("phase") == "Stable")
    waiting.spec["activeRevision"] = "v2"
    waiting.run_until(lambda w: w.status.get("phase") == "AwaitingPromotion")
    out["awaiting"] = (waiting, waiting.request().SerializeToString())
    return out


def baseline(name: str) -> tuple[World, fnv1.RunFunctionRequest]:
    world, raw = snapshots()[name]
    req = fnv1.RunFunctionRequest()
    req.ParseFromString(raw)
    req.desired.resources["from-earlier-step"].resource.update(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep-me"}})
    req.input.update({"apiVersion": "fn.rollout.dev/v1beta1", "kind": "Input"})
    return world, req


def run(world: World, req: fnv1.RunFunctionRequest) -> fnv1.RunFunctionResponse:
    return FunctionRunner(clock=lambda: world.now).run(req)


def as_dict(struct) -> dict[str, Any]:
    return resource.struct_to_dict(struct)


def replace_struct(target, body: dict[str, Any]) -> None:
    target.Clear()
    target.update(body)


# --- garbage ---------------------------------------------------------------------------------


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for i in range(depth):
        value = {"n": value} if i % 2 else [value]
    return value


scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(-(10**15), 10**15),
    st.sampled_from([1e300, -1e300, 2.0**53 + 1, 10.0**20, -0.0, 0.5, 1e-300]),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.text(max_size=40),
    st.sampled_from(["", "\u202eRTL", "\x00nul", "😀" * 10, "v1\n", "Z" * 300, "25%", "-1",
                     "2026-11-22T10:00:00Z", "not-a-time", "True", "Failed", "Healthy"]),
)
garbage = st.one_of(
    scalars,
    st.lists(scalars, max_size=5),
    st.dictionaries(st.text(max_size=10), scalars, max_size=4),
    st.integers(5, 120).map(nested),
    st.sampled_from([list(range(20_000)), ["x"] * 5_000, {"k" * 200: "v" * 70_000}]),
)


def paths(body: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a dict/list body (keys and indices), bounded."""
    out = [prefix]
    if len(out) > 400:
        return out
    if isinstance(body, dict):
        for key, value in body.items():
            out.extend(paths(value, (*prefix, key)))
    elif isinstance(body, list):
        for i, value in enumerate(body[:8]):
            out.extend(paths(value, (*prefix, i)))
    return out


def apply(body: Any, path: tuple, action: str, value: Any) -> tuple[Any, str]:
    """body with the node at path replaced, deleted, or given an extra key; and what kind
    of damage that was: "type" (a value of another JSON type), "value" (same type),
    "delete" or "extra" (an unknown field added)."""
    if not path:
        if action == "replace" and isinstance(value, dict):
            return value, "value"
        return body, "none"
    parent = body
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if action == "delete":
        del parent[last]
        return body, "delete"
    if action == "extra" and isinstance(parent[last], dict):
        parent[last]["unexpected\u00e9"] = value
        return body, "extra"
    before = parent.get(last) if isinstance(parent, dict) else parent[last]
    parent[last] = value
    if value is None:
        return body, "delete"
    same = before is not None and (isinstance(before, bool) == isinstance(value, bool)
            and any(isinstance(before, t) and isinstance(value, t)
                    for t in (str, dict, list, int | float)))
    return body, "value" if same else "type"


@st.composite
def breakages(draw) -> tuple[str, str, tuple, str, Any]:
    snapshot = draw(st.sampled_from(["rolling", "awaiting", "stable"]))
    _, req = baseline(snapshot)
    target = draw(st.sampled_from(["replica", "spec", "status", "replica", "endpoint",
                                   "metadata", "replica", "route", "input"]))
    if target in ("replica", "endpoint", "route"):
        keys = sorted(k for k in req.observed.resources
                      if k.startswith(target) or (target == "route" and "route" in k))
        key = draw(st.sampled_from(keys))
        body = as_dict(req.observed.resources[key].resource)
    else:
        key = target
        xr = as_dict(req.observed.composite.resource)
        body = as_dict(req.input) if target == "input" else xr.get(target, {})
    candidates = paths(body)
    if target == "replica" and draw(st.integers(0, 4)):  # mostly what the function reads
        candidates = [p for p in candidates if p[:1] in (("status",), ("metadata",))]
    path = draw(st.sampled_from(candidates))
    action = draw(st.sampled_from(["replace", "replace", "delete", "extra"])) if path \
        else "replace"
    value = draw(garbage)
    return snapshot, key, path, action, value


def broken_request(snapshot: str, key: str, path: tuple, action: str, value: Any
                   ) -> tuple[World, fnv1.RunFunctionRequest, fnv1.RunFunctionRequest, str]:
    """(world, original request, broken request, kind of damage)."""
    world, req = baseline(snapshot)
    original = copy.deepcopy(req)
    if key in ("spec", "status", "metadata"):
        xr = as_dict(req.observed.composite.resource)
        xr[key], damage = apply(copy.deepcopy(xr.get(key, {})), path, action, value)
        replace_struct(req.observed.composite.resource, xr)
    elif key == "input":
        body, damage = apply(as_dict(req.input), path, action, value)
        replace_struct(req.input, body)
    else:
        body, damage = apply(as_dict(req.observed.resources[key].resource), path, action, value)
        replace_struct(req.observed.resources[key].resource, body)
    return world, original, req, damage


def observed_dicts(req: fnv1.RunFunctionRequest) -> dict[str, dict[str, Any]]:
    return {k: json_format.MessageToDict(r.resource) for k, r in req.observed.resources.items()}


def check_harmless(world: World, original: fnv1.RunFunctionRequest,
                   broken: fnv1.RunFunctionRequest, key: str, damage: str
                   ) -> fnv1.RunFunctionResponse:
    rsp = run(world, broken)  # must not raise
    kind = check_shape(broken, rsp)
    messages = [r.message for r in rsp.results]
    if kind == "fatal":
        assert key in ("spec", "metadata", "input"), f"broken {key} gave a Fatal: {messages}"
        assert messages[0].startswith("invalid "), f"not caught by validation: {messages}"
        return rsp
    if key in ("spec", "metadata", "input"):
        return rsp
    spec = parse_spec(world.spec)
    before = observed_dicts(original)
    unbroken = run(world, original)
    desired = set(rsp.desired.resources)
    # A broken status or observed resource: everything that served still serves or
    # drains (docs/rollout.md#revisions, #bad-input).
    for other in before:
        if other != key and naming.parse_replica_key(other) and serving_from_outside(
                spec, before, other, world.now):
            assert other in desired, f"{other} served and was dropped after {key} broke"
    if damage == "extra":  # an unknown field changes nothing at all
        assert rsp.desired.SerializeToString(deterministic=True) == \
            unbroken.desired.SerializeToString(deterministic=True), f"unknown field in {key}"
    if damage == "type" and naming.parse_replica_key(key) and key in unbroken.desired.resources:
        assert key in desired, f"{key} was dropped because its observed state is malformed"
    return rsp


@SETTINGS
@given(breakages())
def test_broken_requests_do_no_harm(breakage):
    key = breakage[1]
    world, original, broken, damage = broken_request(*breakage)
    check_harmless(world, original, broken, key, damage)


# --- named cases -----------------------------------------------------------------------------


NAMED = [
    ("spec", ("replicas",), "replace", math.nan),
    ("spec", ("replicas",), "replace", math.inf),
    ("spec", ("replicas",), "replace", 1e300),
    ("spec", ("drainSeconds",), "replace", -math.inf),
    ("spec", ("progressDeadlineSeconds",), "replace", 2.0**63),
    ("spec", ("activeRevision",), "replace", ["v1"]),
    ("spec", ("activeRevision",), "replace", "v1\u0000"),
    ("spec", ("strategy",), "replace", "BlueGreen"),
    ("spec", ("revisions",), "replace", {"v1": {}}),
    ("spec", ("revisions", 0, "name"), "replace", "\u03bd1"),  # Greek nu
    ("spec", ("revisions", 0, "name"), "replace", "😀"),
    ("spec", ("revisions", 0, "model"), "replace", nested(200)),
    ("spec", ("revisions", 0, "engine", "args"), "replace", list(range(100_000))),
    ("spec", ("revisions", 0, "engine", "image"), "replace", "x" * 1_000_000),
    ("spec", ("revisions",), "replace", [{"name": f"r{i}"} for i in range(10_000)]),
    ("spec", ("route", "hostnames"), "replace", ["h"] * 100_000),
    ("spec", ("revisions", 0), "delete", None),
    ("spec", ("revisions", 0, "healthCheck", "path"), "delete", None),
    ("metadata", ("name",), "replace", 42),
    ("metadata", ("name",), "delete", None),
    ("input", ("replica",), "replace", "ModelReplica"),
    ("input", ("endpoint",), "replace", {"kind": ["x"]}),
    ("status", ("currentRevision",), "replace", math.nan),
    ("status", ("deployingRevision",), "replace", {"name": "v2"}),
    ("status", ("lastProgressTime",), "replace", "9999-99-99T99:99:99Z"),
    ("status", ("rolloutStartTime",), "replace", "0001-01-01T00:00:00Z"),
    ("status", ("revisions",), "replace", [{"name": "v1", "available": math.inf}] * 1000),
    ("status", ("conditions",), "replace", nested(120)),
    ("status", ("phase",), "replace", list(range(50_000))),
]


@pytest.mark.parametrize("snapshot", ["stable", "rolling", "awaiting"])
@pytest.mark.parametrize(("key", "path", "action", "value"), NAMED,
                         ids=[f"{c[0]}.{'.'.join(map(str, c[1]))}-{i}"
                              for i, c in enumerate(NAMED)])
def test_named_breakages_do_no_harm(snapshot, key, path, action, value):
    world, original, broken, damage = broken_request(snapshot, key, path, action, value)
    rsp = check_harmless(world, original, broken, key, damage)
    if key == "spec" and not (action == "delete" and path == ("revisions", 0)):
        assert [r.severity for r in rsp.results] == [fnv1.SEVERITY_FATAL]


def replica_keys(req: fnv1.RunFunctionRequest) -> list[str]:
    return sorted(k for k in req.observed.resources if naming.parse_replica_key(k))


# One field of an observed replica given a value of the wrong type (the rest intact).
BROKEN_OBSERVED = [
    (("status",), "Ready"),
    (("status", "conditions"), "yes"),
    (("status", "conditions"), nested(120)),
    (("status", "conditions", 0), "Ready"),
    (("status", "conditions", 0, "status"), 1),
    (("status", "conditions", 0, "type"), ["Ready"]),
    (("status", "conditions", 0, "lastTransitionTime"), math.nan),
    (("status", "health"), ["Healthy"]),
    (("status", "health", "state"), 1),
    (("status", "health", "lastProbeTime"), math.inf),
    (("status", "address"), 7),
    (("status", "phase"), ["Failed"]),
    (("metadata",), "broken"),
    (("metadata", "creationTimestamp"), 1700000000),
    (("metadata", "annotations"), ["x"]),
    (("metadata", "annotations", naming.ANNOTATION_DESIRED_SINCE), {"t": 1}),
    (("spec",), nested(151)),
]


def has_parent(body: Any, path: tuple) -> bool:
    node = body
    for step in path[:-1]:
        inside = (step in node if isinstance(node, dict)
                  else isinstance(node, list) and isinstance(step, int) and step < len(node))
        if not inside:
            return False
        node = node[step]
    return isinstance(node, dict | list)


@pytest.mark.parametrize("snapshot", ["stable", "rolling", "awaiting"])
@pytest.mark.parametrize(("path", "value"), BROKEN_OBSERVED,
                         ids=[".".join(map(str, p)) for p, _ in BROKEN_OBSERVED])
def test_a_broken_observed_replica_is_unknown_data_never_a_reason_to_delete(
        snapshot, path, value):
    _, req = baseline(snapshot)
    broke = 0
    for key in replica_keys(req):
        if not has_parent(as_dict(req.observed.resources[key].resource), path):
            continue
        world, original, broken, damage = broken_request(snapshot, key, path, "replace", value)
        assert damage == "type"
        rsp = check_harmless(world, original, broken, key, damage)
        assert not [r for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
        broke += 1
    assert broke


def test_thousands_of_broken_observed_resources_are_answered_quickly():
    world, req = baseline("rolling")
    for i in range(3000):
        req.observed.resources[f"replica-v9-{i}"].resource.update(
            {"status": {"conditions": "x" * 100, "health": [i]}, "metadata": {"name": i}})
        req.observed.resources[f"endpoint-v9-{i}"].resource.update({"status": [1, 2, 3]})
    import time
    started = time.perf_counter()
    rsp = run(world, req)
    assert time.perf_counter() - started < 20
    assert check_shape(req, rsp) == "ok"
    assert set(replica_keys(req)) - {f"replica-v9-{i}" for i in range(3000)} <= set(
        rsp.desired.resources)


def test_time_far_in_the_future_or_past_does_no_harm():
    for shift in (timedelta(days=3650), timedelta(days=-3650)):
        world, req = baseline("rolling")
        rsp = FunctionRunner(clock=lambda shift=shift, world=world: world.now + shift).run(req)
        assert check_shape(req, rsp) == "ok", [r.message for r in rsp.results]
