"""Properties of the pure core over random valid specs and random observed states.

Hypothesis draws a valid ModelDeployment spec, a prior status (the rollout's memory,
possibly stale or contradictory) and an observed state (replicas in every lifecycle
and health state, endpoints with and without a backend, routes accepted or not), and
runs `FunctionRunner(clock).run` on it. Whatever it draws, the function:

- never raises and never answers a valid spec with a Fatal result;
- is deterministic: the same request twice gives byte-identical responses;
- routes only replicas that are observed Ready, not Failed, not draining, healthy
  (docs/rollout.md: replica states, routes), and desires an endpoint only for a Ready replica;
- keeps the total number of replicas bounded (creates at most what the strategy
  allows) and reports status counts that agree with what it composed;
- never drops a replica that serves, or that is Ready and still carried by an
  observed route, without draining it first (docs/rollout.md#draining);
- counts replicas waiting for an accelerator (Scheduled=False) apart: they are
  not in the total that maxSurge bounds.

Under CI (CI=true) the examples are derandomized, so a run is reproducible.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from crossplane.function import resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from function import naming
from function.fn import FunctionRunner
from function.planner import strategies
from function.spec import BLUE_GREEN, parse_spec
from tests.sim_invariants import check_shape, deterministic_bytes, serving_from_outside
from tests.world import T0, ts

NOW = T0 + timedelta(hours=2)
NAMES = ("v1", "v2", "v3", "v4")

SETTINGS = settings(
    max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "150")),
    deadline=None,
    derandomize=os.environ.get("CI") == "true",
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def ago(seconds: float) -> str:
    return ts(NOW - timedelta(seconds=seconds))


# --- valid specs ----------------------------------------------------------------------------

int_or_percent = st.one_of(st.integers(0, 4), st.integers(0, 100).map(lambda p: f"{p}%"))


@st.composite
def health_checks(draw) -> dict[str, Any] | None:
    if draw(st.booleans()):
        return None
    check: dict[str, Any] = {"path": "/health"}
    for key, values in (("initialDelaySeconds", st.integers(0, 900)),
                        ("intervalSeconds", st.integers(1, 60)),
                        ("port", st.integers(1, 65535))):
        if draw(st.booleans()):
            check[key] = draw(values)
    return check


@st.composite
def specs(draw) -> dict[str, Any]:
    names = list(NAMES[:draw(st.integers(1, len(NAMES)))])
    revisions = []
    for name in names:
        revision: dict[str, Any] = {
            "name": name,
            "model": {"name": f"model-{name}"},
            "engine": {"image": f"engine:{name}"},
        }
        if draw(st.booleans()):
            revision["engine"]["port"] = draw(st.integers(1, 65535))
        check = draw(health_checks())
        if check is not None:
            revision["healthCheck"] = check
        revisions.append(revision)
    spec: dict[str, Any] = {"replicas": draw(st.integers(0, 6)), "revisions": revisions}
    if draw(st.booleans()):
        spec["activeRevision"] = draw(st.sampled_from(names))
    if draw(st.booleans()):
        spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {
            "maxSurge": draw(int_or_percent), "maxUnavailable": draw(int_or_percent)}}
        if draw(st.booleans()):
            spec["strategy"]["rollingUpdate"].update(
                onCapacityShortage=draw(st.sampled_from(["Wait", "Replace"])),
                capacityWaitSeconds=draw(st.integers(0, 600)))
    else:
        spec["strategy"] = {"type": "BlueGreen", "blueGreen": {
            "autoPromote": draw(st.booleans()),
            "promoteDelaySeconds": draw(st.integers(0, 300)),
            "scaleDownDelaySeconds": draw(st.integers(0, 300))}}
    if draw(st.booleans()):
        spec["promote"] = draw(st.sampled_from([*names, "v9"]))
    for key, values in (("progressDeadlineSeconds", st.integers(1, 3600)),
                        ("minReadySeconds", st.integers(0, 120)),
                        ("drainSeconds", st.integers(0, 120))):
        if draw(st.booleans()):
            spec[key] = draw(values)
    if draw(st.integers(0, 3)):
        spec["route"] = {"parentRefs": [{"name": "gw"}], "hostnames": ["a.example.com"]}
        if draw(st.booleans()):
            spec["route"]["preview"] = {"hostnames": ["preview.example.com"]}
    if draw(st.booleans()):
        spec["healthPolicy"] = {
            "cleanupTargetStatuses": draw(st.lists(st.sampled_from(["Unhealthy", "Degraded"]),
                                                   unique=True)),
            "statusTTLSeconds": draw(st.integers(0, 600))}
    return spec


# --- prior status and observed state --------------------------------------------------------

revision_names = st.sampled_from([*NAMES, "old"])  # "old": no longer listed in the spec


@st.composite
def prior_statuses(draw) -> dict[str, Any]:
    status: dict[str, Any] = {}
    for key in ("currentRevision", "deployingRevision", "failedRevision"):
        if draw(st.booleans()):
            status[key] = draw(revision_names)
    if draw(st.booleans()):
        status["phase"] = draw(st.sampled_from(
            ["Stable", "Progressing", "AwaitingPromotion", "Failed"]))
    if draw(st.booleans()):
        status["rolloutStrategy"] = draw(st.sampled_from(["RollingUpdate", "BlueGreen"]))
    for key in ("rolloutStartTime", "lastProgressTime"):
        if draw(st.booleans()):
            status[key] = ago(draw(st.integers(0, 7200)))
    if draw(st.booleans()):
        status["revisions"] = [
            {"name": name, "replicas": draw(st.integers(0, 6)),
             "available": draw(st.integers(0, 6)), "trafficWeight": 0}
            for name in draw(st.lists(revision_names, unique=True, max_size=3))]
    if draw(st.booleans()):
        status["conditions"] = [{"type": "Progressing", "status": draw(
            st.sampled_from(["True", "False"])), "reason": draw(st.sampled_from(
                ["ProgressDeadlineExceeded", "RevisionFailed", "RolloutAborted",
                 "NewRevisionDeploying"]))}]
    return status


@st.composite
def replica_bodies(draw, revision: str, index: int) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": f"qwen-{revision}-{index}"}
    if draw(st.integers(0, 4)):
        metadata["creationTimestamp"] = ago(draw(st.integers(0, 3600)))
    annotations = {}
    if draw(st.integers(0, 3)) == 0:
        annotations[naming.ANNOTATION_DRAINING_SINCE] = ago(draw(st.integers(0, 400)))
        if draw(st.booleans()):
            annotations[naming.ANNOTATION_DRAIN_SECONDS] = str(draw(st.integers(0, 300)))
    if draw(st.booleans()):
        annotations[naming.ANNOTATION_DESIRED_SINCE] = ago(draw(st.integers(0, 3600)))
    if annotations:
        metadata["annotations"] = annotations
    status: dict[str, Any] = {}
    ready = draw(st.sampled_from([None, "True", "True", "False", "Unknown"]))
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": ready,
                                 "lastTransitionTime": ago(draw(st.integers(0, 3600)))}]
    scheduled = draw(st.sampled_from([None, None, "True", "False", "False"]))
    if scheduled is not None:
        condition = {"type": "Scheduled", "status": scheduled, "reason": "InsufficientCapacity"}
        if draw(st.booleans()):
            condition["lastTransitionTime"] = ago(draw(st.integers(0, 3600)))
        status.setdefault("conditions", []).append(condition)
    if draw(st.booleans()):
        status["health"] = {"state": draw(st.sampled_from(["Healthy", "Unhealthy", "Unknown"])),
                            "lastProbeTime": ago(draw(st.integers(0, 900)))}
    if draw(st.integers(0, 6)) == 0:
        status["phase"] = "Failed"
    if draw(st.booleans()):
        status["address"] = {"url": f"http://10.0.0.{index}:8000"}
    body = {"apiVersion": "serving.rollout.dev/v1alpha1", "kind": "ModelReplica",
            "metadata": metadata, "status": status}
    if draw(st.booleans()):
        body["spec"] = {"deployment": "qwen", "revision": revision,
                        "engine": {"image": "x", "port": 8000}}
    return body


@st.composite
def observed_states(draw) -> dict[str, dict[str, Any]]:
    keys = draw(st.lists(st.tuples(revision_names, st.integers(0, 7)), unique=True,
                         max_size=12))
    resources: dict[str, dict[str, Any]] = {}
    for revision, index in keys:
        resources[naming.replica_key(revision, index)] = draw(replica_bodies(revision, index))
        if draw(st.integers(0, 3)):
            endpoint: dict[str, Any] = {"metadata": {"name": f"qwen-{revision}-{index}"}}
            if draw(st.integers(0, 3)):
                endpoint["status"] = {
                    "routing": {"backendName": f"qwen-{revision}-{index}-svc"},
                    "conditions": [{"type": "Ready", "status": "True"}]}
            resources[naming.endpoint_key(revision, index)] = endpoint
    backends = sorted(body["status"]["routing"]["backendName"] for key, body in resources.items()
                      if naming.parse_endpoint_key(key) and "status" in body)
    for key in (naming.ROUTE_KEY, naming.PREVIEW_ROUTE_KEY):
        if draw(st.booleans()):
            accepted = draw(st.sampled_from(["True", "False"]))
            resources[key] = {"status": {"parents": [{"conditions": [
                {"type": "Accepted", "status": accepted}]}]}}
            carried = draw(st.lists(st.sampled_from(backends), unique=True)) if backends else []
            if carried:
                resources[key]["spec"] = {"rules": [{"backendRefs": [
                    {"name": name, "port": 8000, "weight": 1} for name in carried]}]}
    return resources


def request(spec: dict[str, Any], status: dict[str, Any],
            observed: dict[str, dict[str, Any]]) -> fnv1.RunFunctionRequest:
    xr: dict[str, Any] = {"apiVersion": "serving.rollout.dev/v1alpha1",
                          "kind": "ModelDeployment",
                          "metadata": {"name": "qwen", "namespace": "ml-team"}, "spec": spec}
    if status:
        xr["status"] = status
    req = fnv1.RunFunctionRequest(
        observed=fnv1.State(composite=fnv1.Resource(resource=resource.dict_to_struct(xr))))
    for key, body in observed.items():
        req.observed.resources[key].resource.update(body)
    return req


def run(req: fnv1.RunFunctionRequest) -> fnv1.RunFunctionResponse:
    return FunctionRunner(clock=lambda: NOW).run(req)


def desired_dicts(rsp: fnv1.RunFunctionResponse) -> dict[str, dict[str, Any]]:
    return {k: json_format.MessageToDict(r.resource) for k, r in rsp.desired.resources.items()}


def is_ready(body: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in body.get("status", {}).get("conditions", []))


def waits_for_an_accelerator(body: dict[str, Any]) -> bool:
    """Unschedulable: not Ready, Scheduled=False, and not Failed."""
    status = body.get("status", {})
    return not is_ready(body) and status.get("phase") != "Failed" and any(
        c.get("type") == "Scheduled" and c.get("status") == "False"
        for c in status.get("conditions", []))


# --- the properties -------------------------------------------------------------------------


@SETTINGS
@given(specs(), prior_statuses(), observed_states())
def test_never_raises_never_fatal_and_deterministic(spec, status, observed):
    req = request(spec, status, observed)
    rsp = run(req)
    assert check_shape(req, rsp) == "ok", [r.message for r in rsp.results]
    assert deterministic_bytes(rsp) == deterministic_bytes(run(req))


@SETTINGS
@given(specs(), prior_statuses(), observed_states())
def test_routes_and_endpoints_only_for_ready_healthy_replicas(spec, status, observed):
    parsed = parse_spec(spec)
    rsp = run(request(spec, status, observed))
    desired = desired_dicts(rsp)
    by_backend = {
        body["status"]["routing"]["backendName"]: naming.replica_key(
            *naming.parse_endpoint_key(key))
        for key, body in observed.items()
        if naming.parse_endpoint_key(key) and body.get("status", {}).get("routing")}
    for route_key in (naming.ROUTE_KEY, naming.PREVIEW_ROUTE_KEY):
        route = desired.get(route_key)
        if route is None:
            continue
        refs = [ref for rule in route["spec"]["rules"] for ref in rule.get("backendRefs", [])]
        assert all(ref["weight"] > 0 for ref in refs)
        for ref in refs:
            key = by_backend[ref["name"]]
            assert key in desired, f"{route_key} routes to {key}, which is not desired"
            annotations = desired[key]["metadata"].get("annotations", {})
            assert naming.ANNOTATION_DRAINING_SINCE not in annotations, key
            assert serving_from_outside(parsed, observed, key, NOW), (
                f"{route_key} routes to {key}, which cannot serve: {observed[key]}")
    for key in desired:
        parsed_key = naming.parse_endpoint_key(key)
        if parsed_key:
            replica = observed.get(naming.replica_key(*parsed_key))
            assert replica is not None and is_ready(replica), f"{key} for a non-Ready replica"
            assert naming.replica_key(*parsed_key) in desired


@SETTINGS
@given(specs(), prior_statuses(), observed_states())
def test_replicas_are_bounded_and_status_counts_agree(spec, status, observed):
    parsed = parse_spec(spec)
    n = parsed.replicas
    rsp = run(request(spec, status, observed))
    desired = desired_dicts(rsp)
    out = json_format.MessageToDict(rsp.desired.composite.resource)["status"]
    replicas = [k for k in desired if naming.parse_replica_key(k)]
    observed_replicas = [k for k in observed if naming.parse_replica_key(k)]
    created = [k for k in replicas if k not in observed]
    assert len(created) <= 2 * n
    # Replicas waiting for an accelerator hold none: maxSurge bounds the others.
    waiting = {k for k in observed_replicas if waits_for_an_accelerator(observed[k])}
    holding = [k for k in replicas if k not in waiting]
    blue_green = parsed.strategy.type == BLUE_GREEN or status.get("rolloutStrategy") == BLUE_GREEN
    if not blue_green:
        surge = strategies.limits(parsed).surge
        assert len(holding) <= max(len(observed_replicas) - len(waiting), n + surge)
    else:
        assert len(replicas) <= len(observed_replicas) + 2 * n
    counts = out["replicas"]
    assert counts["desired"] == n
    assert counts["total"] + counts["unschedulable"] == len(replicas)
    assert counts["unschedulable"] == len(waiting & set(replicas))
    assert counts["available"] <= counts["ready"] <= counts["total"]
    assert counts["updated"] <= counts["total"] + counts["unschedulable"]
    rows = out.get("revisions", [])
    assert sum(row["replicas"] for row in rows) == len(replicas)
    assert sum(row["trafficWeight"] for row in rows) in (0, 100)
    assert all(row["available"] <= row["replicas"] for row in rows)
    assert out["phase"] in ("Stable", "Progressing", "AwaitingPromotion", "Failed")
    if out.get("deployingRevision") is not None:
        assert out["deployingRevision"] != out.get("currentRevision")


@SETTINGS
@given(specs(), prior_statuses(), observed_states())
def test_nothing_that_serves_is_dropped_without_draining(spec, status, observed):
    spec.setdefault("drainSeconds", 30)
    spec["drainSeconds"] = max(1, spec["drainSeconds"])
    blue_green = spec["strategy"].get("blueGreen")
    if blue_green is not None:
        blue_green["scaleDownDelaySeconds"] = max(1, blue_green["scaleDownDelaySeconds"])
    parsed = parse_spec(spec)
    rsp = run(request(spec, status, observed))
    desired = desired_dicts(rsp)
    for key, body in observed.items():
        if not naming.parse_replica_key(key):
            continue
        if serving_from_outside(parsed, observed, key, NOW):
            assert key in desired, f"{key} served and was dropped without draining"
        # Whatever its health: a routed Ready replica has requests in flight. (A replica
        # already draining may go once its drain ends; status.phase Failed says it never ran.)
        if (is_ready(body) and body["status"].get("phase") != "Failed"
                and naming.ANNOTATION_DRAINING_SINCE not in body["metadata"].get("annotations", {})
                and carried_by_a_route(observed, key)):
            assert key in desired, f"{key} is Ready, routed, and was dropped without draining"


def carried_by_a_route(observed: dict[str, dict[str, Any]], replica_key: str) -> bool:
    parsed = naming.parse_replica_key(replica_key)
    assert parsed is not None
    endpoint = observed.get(naming.endpoint_key(*parsed), {})
    backend = endpoint.get("status", {}).get("routing", {}).get("backendName")
    return backend is not None and any(
        ref["name"] == backend
        for route_key in (naming.ROUTE_KEY, naming.PREVIEW_ROUTE_KEY)
        for rule in observed.get(route_key, {}).get("spec", {}).get("rules", [])
        for ref in rule.get("backendRefs", []))
