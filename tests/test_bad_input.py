"""Bad input: one Fatal result naming the field; nothing else changes.

The rules: docs/rollout.md#bad-input.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from crossplane.function import resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function.fn import FunctionRunner
from tests.fixtures import deployment
from tests.world import T0, World


def mutate(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    spec = deployment(3, ("v1", "v2"), active="v1")
    change(spec)
    return spec


def set_path(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        node: Any = spec
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return change


def canary(steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"type": "Canary", "canary": {"steps": steps, **extra}}


CASES = [
    (set_path("replicas", -1), "spec.replicas", "between 0 and 10000"),
    (set_path("replicas", 2.5), "spec.replicas", "integer"),
    (set_path("replicas", "3"), "spec.replicas", "integer"),
    (set_path("replicas", True), "spec.replicas", "integer"),
    (set_path("replicas", 10001), "spec.replicas", "10000"),
    (set_path("activeRevision", "v9"), "spec.activeRevision", "not listed"),
    (set_path("revisions.1.name", "v1"), "spec.revisions[1].name", "duplicate"),
    (set_path("revisions.0.name", "V1"), "spec.revisions[0].name", "DNS-1123"),
    (set_path("revisions.0.name", "a" * 31), "spec.revisions[0].name", "DNS-1123"),
    (set_path("revisions.0.name", "-v1"), "spec.revisions[0].name", "DNS-1123"),
    (set_path("revisions", []), "spec.revisions", "at least one"),
    (set_path("revisions", [{"name": f"r{i}"} for i in range(33)]), "spec.revisions", "at most 32"),
    (set_path("revisions", "v1"), "spec.revisions", "list"),
    (set_path("revisions.0.healthCheck", {"port": 8000}), "spec.revisions[0].healthCheck.path",
     "required"),
    (set_path("revisions.0.healthCheck.intervalSeconds", 0),
     "spec.revisions[0].healthCheck.intervalSeconds", "between 1"),
    (set_path("revisions.0.healthCheck.expectedStatus", 600),
     "spec.revisions[0].healthCheck.expectedStatus", "between 100 and 599"),
    (set_path("revisions.0.healthCheck.failureThreshold", 0),
     "spec.revisions[0].healthCheck.failureThreshold", "between 1"),
    (set_path("revisions.0.healthCheck.initialDelaySeconds", -5),
     "spec.revisions[0].healthCheck.initialDelaySeconds", "between 0"),
    (set_path("revisions.0.engine.port", 70000), "spec.revisions[0].engine.port", "65535"),
    (set_path("revisions.0.engine", []), "spec.revisions[0].engine", "object"),
    (set_path("strategy.type", "Recreate"), "spec.strategy.type",
     "RollingUpdate, BlueGreen, Canary"),
    (set_path("strategy.rollingUpdate.onCapacityShortage", "Evict"),
     "spec.strategy.rollingUpdate.onCapacityShortage", "Wait, Replace"),
    (set_path("strategy.rollingUpdate.capacityWaitSeconds", -1),
     "spec.strategy.rollingUpdate.capacityWaitSeconds", "between 0"),
    (set_path("strategy", {"type": "Canary"}), "spec.strategy.canary.steps", "required"),
    (set_path("strategy", canary([])), "spec.strategy.canary.steps", "at least one"),
    (set_path("strategy", canary([{"setWeight": 5}] * 33)), "spec.strategy.canary.steps",
     "at most 32"),
    (set_path("strategy", canary([{"setWeight": 10}, {"pause": {}},
                                  {"setWeight": 20, "pause": {}}])),
     "spec.strategy.canary.steps[2]", "exactly one of setWeight, pause, analysis"),
    (set_path("strategy", canary([{"setWeight": 10}, {}])),
     "spec.strategy.canary.steps[1]", "exactly one of"),
    (set_path("strategy", canary([{"setWeight": 101}])),
     "spec.strategy.canary.steps[0].setWeight", "between 0 and 100"),
    (set_path("strategy", canary([{"setWeight": -1}])),
     "spec.strategy.canary.steps[0].setWeight", "between 0 and 100"),
    (set_path("strategy", canary([{"setWeight": 12.5}])),
     "spec.strategy.canary.steps[0].setWeight", "integer"),
    (set_path("strategy", canary([{"setWeight": "10%"}])),
     "spec.strategy.canary.steps[0].setWeight", "integer"),
    (set_path("strategy", canary([{"pause": {"durationSeconds": -1}}])),
     "spec.strategy.canary.steps[0].pause.durationSeconds", "between 0"),
    (set_path("strategy", canary([{"pause": 600}])),
     "spec.strategy.canary.steps[0].pause", "object"),
    (set_path("strategy", canary([{"setWeight": 10}, {"analysis": {"durationSeconds": 60}}])),
     "spec.strategy.canary.steps[1]", "spec.strategy.analysis is not set"),
    (set_path("strategy", canary([{"setWeight": 10}], headerRoute={"name": "x canary",
                                                                   "value": "1"})),
     "spec.strategy.canary.headerRoute.name", "HTTP header name"),
    (set_path("strategy", canary([{"setWeight": 10}], headerRoute={"name": "x-c:",
                                                                   "value": "1"})),
     "spec.strategy.canary.headerRoute.name", "HTTP header name"),
    (set_path("strategy", canary([{"setWeight": 10}], headerRoute={"name": "x-canary"})),
     "spec.strategy.canary.headerRoute.value", "required"),
    (set_path("strategy", canary([{"setWeight": 10}], maxSurge="25")),
     "spec.strategy.canary.maxSurge", "percentage"),
    (set_path("strategy", canary([{"setWeight": 10}], onCapacityShortage="replace")),
     "spec.strategy.canary.onCapacityShortage", "Wait, Replace"),
    # Validated under every strategy type, not only Canary.
    (set_path("strategy", {"type": "RollingUpdate", "canary": {"steps": [{"setWeight": 200}]}}),
     "spec.strategy.canary.steps[0].setWeight", "between 0 and 100"),
    (set_path("strategy.analysis.maxErrorRate", 1.5), "spec.strategy.analysis.maxErrorRate",
     "at most 1"),
    (set_path("strategy.analysis.maxErrorRate", True), "spec.strategy.analysis.maxErrorRate",
     "number"),
    (set_path("strategy.analysis.minRequests", 10.5), "spec.strategy.analysis.minRequests",
     "integer"),
    (set_path("strategy.analysis.maxTTFTP95Seconds", 0),
     "spec.strategy.analysis.maxTTFTP95Seconds", "greater than 0"),
    (set_path("strategy.analysis.maxITLP95Seconds", -0.1),
     "spec.strategy.analysis.maxITLP95Seconds", "greater than 0"),
    (set_path("strategy.analysis.maxRatioToBaseline", 0.9),
     "spec.strategy.analysis.maxRatioToBaseline", "at least 1"),
    (set_path("strategy.analysis.failureToleranceSeconds", -1),
     "spec.strategy.analysis.failureToleranceSeconds", "between 0"),
    (set_path("route.timeouts", {"request": "30"}), "spec.route.timeouts.request",
     "Gateway API duration"),
    (set_path("route.timeouts", {"backendRequest": "1d"}), "spec.route.timeouts.backendRequest",
     "Gateway API duration"),
    (set_path("route.timeouts", {"request": 30}), "spec.route.timeouts.request", "string"),
    (set_path("strategy.rollingUpdate.maxSurge", "25"), "spec.strategy.rollingUpdate.maxSurge",
     "percentage"),
    (set_path("strategy.rollingUpdate.maxSurge", "x%"), "spec.strategy.rollingUpdate.maxSurge",
     "percentage"),
    (set_path("strategy.rollingUpdate.maxUnavailable", "150%"),
     "spec.strategy.rollingUpdate.maxUnavailable", "at most 100%"),
    (set_path("strategy.rollingUpdate.maxUnavailable", -1),
     "spec.strategy.rollingUpdate.maxUnavailable", "between 0"),
    (set_path("strategy.blueGreen.autoPromote", "yes"), "spec.strategy.blueGreen.autoPromote",
     "true or false"),
    (set_path("strategy.blueGreen.promoteDelaySeconds", -1),
     "spec.strategy.blueGreen.promoteDelaySeconds", "between 0"),
    (set_path("progressDeadlineSeconds", 0), "spec.progressDeadlineSeconds", "between 1"),
    (set_path("minReadySeconds", 1.5), "spec.minReadySeconds", "integer"),
    (set_path("drainSeconds", -30), "spec.drainSeconds", "between 0"),
    (set_path("promote", 2), "spec.promote", "string"),
    (set_path("route.parentRefs", []), "spec.route.parentRefs", "at least one"),
    (set_path("route.pathPrefix", "api"), "spec.route.pathPrefix", "start with '/'"),
    # Gateway API's HTTPRoute takes at most 16 hostnames: more could never be composed.
    (set_path("route.hostnames", [f"h{i}.example.com" for i in range(17)]),
     "spec.route.hostnames", "at most 16"),
    (set_path("route.hostnames", ["Qwen.example.com"]), "spec.route.hostnames[0]",
     "not a hostname"),
    (set_path("route.preview", {"hostnames": ["qwen.example.com:80"]}),
     "spec.route.preview.hostnames[0]", "not a hostname"),
    (set_path("route.parentRefs", [{"namespace": "gateway-system"}]),
     "spec.route.parentRefs[0].name", "required"),
    (set_path("route.timeouts", {"request": "10s", "backendRequest": "1m"}),
     "spec.route.timeouts.backendRequest", "no longer than request"),
    (set_path("healthPolicy.cleanupTargetStatuses", ["Unhealthy", "Unhealthy"]),
     "spec.healthPolicy.cleanupTargetStatuses[1]", "twice"),
    (set_path("healthPolicy.cleanupTargetStatuses", ["Unhealthy", "Degraded", "Unhealthy"]),
     "spec.healthPolicy.cleanupTargetStatuses", "at most 2"),
    # activeRevision and promote name revisions: the same DNS-1123 label rule.
    (set_path("activeRevision", "V1"), "spec.activeRevision", "DNS-1123"),
    (set_path("promote", "v" * 31), "spec.promote", "DNS-1123"),
    (set_path("promote", "v2_beta"), "spec.promote", "DNS-1123"),
    (set_path("healthPolicy.cleanupTargetStatuses", ["Healthy"]),
     "spec.healthPolicy.cleanupTargetStatuses[0]", "Unhealthy, Degraded"),
    (set_path("revisions.0.model", {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {
        "j": {"k": {"l": {"m": {"n": {"o": {"p": {"q": {"r": 1}}}}}}}}}}}}}}}}}}),
     "spec.revisions[0].model", "nested deeper"),
]


def request_for(spec: Any, *, with_observed: bool = True) -> fnv1.RunFunctionRequest:
    world = World(spec=deployment(3, ("v1", "v2"), active="v1"))
    for _ in range(8):
        world.step()
    req = world.request()
    xr = resource.struct_to_dict(req.observed.composite.resource)
    xr["spec"] = spec
    req.observed.composite.resource.Clear()
    req.observed.composite.resource.update(xr)
    # Resources an earlier pipeline step desired must survive a Fatal untouched.
    req.desired.resources["from-earlier-step"].resource.update(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep-me"}})
    if not with_observed:
        req.observed.ClearField("resources")
    return req


@pytest.mark.parametrize(("change", "field", "problem"), CASES,
                         ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_bad_spec_is_one_fatal_result_naming_the_field(change, field, problem):
    req = request_for(mutate(change))
    before = copy.deepcopy(req.desired)
    rsp = FunctionRunner(clock=lambda: T0).run(req)
    assert len(rsp.results) == 1
    result = rsp.results[0]
    assert result.severity == fnv1.SEVERITY_FATAL
    assert field in result.message and problem in result.message, result.message
    # Crossplane applies nothing from a fatal response; it also carries nothing new.
    assert rsp.desired == before
    assert not rsp.conditions


def test_missing_spec_is_fatal():
    req = request_for(None)
    req.observed.composite.resource["spec"] = None
    rsp = FunctionRunner(clock=lambda: T0).run(req)
    assert [r.severity for r in rsp.results] == [fnv1.SEVERITY_FATAL]
    assert "spec" in rsp.results[0].message


def test_bad_input_kind_is_fatal():
    req = request_for(deployment())
    req.input.update({"apiVersion": "fn.rollout.dev/v1beta1", "kind": "Input",
                      "replica": {"apiVersion": 3}})
    rsp = FunctionRunner(clock=lambda: T0).run(req)
    assert [r.severity for r in rsp.results] == [fnv1.SEVERITY_FATAL]
    assert "input.replica.apiVersion" in rsp.results[0].message


def test_an_unexpected_exception_becomes_a_fatal_result_not_a_grpc_error():
    def broken_clock():
        raise RuntimeError("clock is broken")

    req = request_for(deployment())
    rsp = FunctionRunner(clock=broken_clock).run(req)
    assert [r.severity for r in rsp.results] == [fnv1.SEVERITY_FATAL]
    assert "clock is broken" in rsp.results[0].message
    assert "from-earlier-step" in rsp.desired.resources


@pytest.mark.parametrize("garbage", [
    {"status": "Ready"},
    {"status": {"conditions": "yes"}},
    {"status": {"conditions": [{"type": "Ready", "status": 1}]}},
    {"status": {"health": ["Healthy"], "address": 7}},
    {"metadata": {"creationTimestamp": "yesterday", "annotations": ["x"]}},
    {"metadata": "broken"},
])
def test_malformed_observed_replica_is_unknown_data_never_a_reason_to_delete(garbage):
    world = World(spec=deployment(3, ("v1",)))
    world.run_until(lambda w: w.status.get("phase") == "Stable")
    for _ in range(80):  # well past the warm-up budget
        world.step(dt=10)
    body = world.composed["replica-v1-1"]
    for key, value in garbage.items():
        body[key] = value
    rsp = FunctionRunner(clock=lambda: world.now).run(world.request())
    assert not [r for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    assert {"replica-v1-0", "replica-v1-1", "replica-v1-2"} <= set(rsp.desired.resources)


def test_malformed_status_is_treated_as_lost_and_nothing_is_deleted():
    world = World(spec=deployment(3, ("v1",)))
    world.run_until(lambda w: w.status.get("phase") == "Stable")
    world.status = {"currentRevision": 7, "revisions": "many", "conditions": {"a": 1}}
    step = world.step()
    assert not step.fatal
    assert step.status["currentRevision"] == "v1"
    assert len([k for k in step.desired if k.startswith("replica-")]) == 3
