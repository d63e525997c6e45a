"""Whole RunFunction responses over a real gRPC channel, table-driven.

The rules: docs/rollout.md#resources-and-fields, #routes and #status-and-conditions.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from crossplane.function import resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from google.protobuf import json_format

from tests.fixtures import deployment
from tests.grpc_harness import Client, InProcessServer, RealServer, SimClock
from tests.world import T0, ts

NOW = T0 + timedelta(minutes=30)
EARLIER = ts(T0)
RECENT = ts(NOW - timedelta(seconds=60))
HASH = "81c3666476"  # template hash of fixtures.revision("v1"), pinned on purpose


@pytest.fixture(scope="module")
def stub():
    with InProcessServer(SimClock(NOW)) as server, Client(server.address) as client:
        yield client.stub


def xr(status: dict | None = None, **spec_extra: Any) -> dict[str, Any]:
    body = {
        "apiVersion": "serving.rollout.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "qwen", "namespace": "ml-team"},
        "spec": deployment(2, ("v1",), **spec_extra),
    }
    if status:
        body["status"] = status
    return body


def replica_obs(index: int, *, ready: bool, created: str = EARLIER) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [{"type": "Ready", "status": str(ready),
                                              "lastTransitionTime": created}]}
    if ready:
        status["health"] = {"state": "Healthy", "lastProbeTime": ts(NOW)}
        status["address"] = {"url": f"http://10.0.0.{index}:8000"}
    return {
        "apiVersion": "serving.rollout.dev/v1alpha1", "kind": "ModelReplica",
        "metadata": {"name": f"qwen-v1-{index}", "creationTimestamp": created,
                     "labels": {"serving.rollout.dev/template-hash": HASH}},
        "status": status,
    }


def endpoint_obs(index: int) -> dict[str, Any]:
    return {"apiVersion": "serving.rollout.dev/v1alpha1", "kind": "ModelEndpoint",
            "metadata": {"name": f"qwen-v1-{index}"},
            "status": {"routing": {"backendName": f"qwen-v1-{index}-svc"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}


ROUTE_OBS = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "qwen"},
             "status": {"parents": [{"conditions": [{"type": "Accepted", "status": "True"}]}]}}

REPLICA_SPEC = {
    "deployment": "qwen",
    "revision": "v1",
    "model": {"name": "Qwen/Qwen3-8B", "uri": "hf://Qwen/Qwen3-8B"},
    "engine": {"image": "vllm/vllm-openai:v1", "resources": {"gpus": 1.0}, "port": 8000.0},
    "healthCheck": {"path": "/health", "port": 8000.0, "intervalSeconds": 10.0,
                    "timeoutSeconds": 5.0, "initialDelaySeconds": 600.0,
                    "failureThreshold": 3.0, "expectedStatus": 200.0},
}


def labels(index: int) -> dict[str, str]:
    return {"serving.rollout.dev/deployment": "qwen", "serving.rollout.dev/revision": "v1",
            "serving.rollout.dev/replica-index": str(index),
            "serving.rollout.dev/template-hash": HASH}


def replica_desired(index: int, since: str, ready: bool) -> dict[str, Any]:
    return {"resource": {
        "apiVersion": "serving.rollout.dev/v1alpha1", "kind": "ModelReplica",
        "metadata": {
            "name": f"qwen-v1-{index}",
            "labels": labels(index),
            "annotations": {"serving.rollout.dev/desired-since": since},
        },
        "spec": REPLICA_SPEC,
    }, "ready": "READY_TRUE" if ready else "READY_FALSE"}


def endpoint_desired(index: int, ready: bool) -> dict[str, Any]:
    return {"resource": {
        "apiVersion": "serving.rollout.dev/v1alpha1", "kind": "ModelEndpoint",
        "metadata": {
            "name": f"qwen-v1-{index}",
            "labels": labels(index),
        },
        "spec": {"replica": f"qwen-v1-{index}", "revision": "v1", "port": 8000.0,
                 "url": f"http://10.0.0.{index}:8000"},
    }, "ready": "READY_TRUE" if ready else "READY_FALSE"}


def route_desired(backends: list[int], ready: bool) -> dict[str, Any]:
    rule: dict[str, Any] = {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}
    if backends:
        rule["backendRefs"] = [{"name": f"qwen-v1-{i}-svc", "port": 8000.0, "weight": 1.0}
                               for i in backends]
    return {"resource": {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "qwen", "labels": {"serving.rollout.dev/deployment": "qwen"}},
        "spec": {"parentRefs": [{"name": "inference-gateway", "namespace": "gateway-system"}],
                 "hostnames": ["qwen.example.com"], "rules": [rule]},
    }, "ready": "READY_TRUE" if ready else "READY_FALSE"}


def condition(kind: str, status: bool, reason: str, message: str) -> dict[str, Any]:
    return {"type": kind, "status": "STATUS_CONDITION_TRUE" if status else
            "STATUS_CONDITION_FALSE", "reason": reason, "message": message,
            "target": "TARGET_COMPOSITE"}


STABLE_STATUS = {"currentRevision": "v1", "phase": "Stable",
                 "revisions": [{"name": "v1", "replicas": 2, "available": 2,
                                "trafficWeight": 100}],
                 "conditions": [{"type": "Progressing", "status": "True",
                                 "reason": "RolloutComplete"}]}

CASES = {
    "fresh: full size at once, route with no backends, Routed False": (
        xr(), {},
        {
            "meta": {"ttl": "60s"},
            "desired": {
                "composite": {"resource": {"status": {
                    "phase": "Progressing", "deployingRevision": "v1",
                    "rolloutStrategy": "RollingUpdate",
                    "rolloutStartTime": ts(NOW), "lastProgressTime": ts(NOW),
                    "replicas": {"desired": 2.0, "total": 2.0, "ready": 0.0, "available": 0.0,
                                 "updated": 2.0, "unschedulable": 0.0},
                    "revisions": [{"name": "v1", "replicas": 2.0, "available": 0.0,
                                   "trafficWeight": 0.0}],
                }}, "ready": "READY_FALSE"},
                "resources": {
                    "replica-v1-0": replica_desired(0, ts(NOW), False),
                    "replica-v1-1": replica_desired(1, ts(NOW), False),
                    "route": route_desired([], False),
                },
            },
            "results": [{"severity": "SEVERITY_NORMAL",
                         "message": "Deploying revision 'v1' (2 replicas)",
                         "target": "TARGET_COMPOSITE"}],
            "conditions": [
                condition("Available", False, "MinimumReplicasUnavailable",
                          "0 of 2 replicas serving; at least 2 required"),
                condition("Progressing", True, "NewRevisionDeploying",
                          "rolling out revision 'v1' (RollingUpdate)"),
                condition("Routed", False, "NoServingEndpoints",
                          "no replica may take traffic yet (replicas: 2 creating)"),
            ],
        },
    ),
    "one Ready replica: its endpoint only, no backend until it publishes one": (
        xr({"deployingRevision": "v1", "phase": "Progressing",
            "rolloutStrategy": "RollingUpdate", "rolloutStartTime": EARLIER,
            "lastProgressTime": EARLIER}),
        {"replica-v1-0": replica_obs(0, ready=True),
         "replica-v1-1": replica_obs(1, ready=False, created=RECENT)},
        {
            "meta": {"ttl": "60s"},
            "desired": {
                "composite": {"resource": {"status": {
                    "phase": "Progressing", "deployingRevision": "v1",
                    "rolloutStrategy": "RollingUpdate",
                    "rolloutStartTime": EARLIER, "lastProgressTime": ts(NOW),
                    "replicas": {"desired": 2.0, "total": 2.0, "ready": 1.0, "available": 1.0,
                                 "updated": 2.0, "unschedulable": 0.0},
                    "revisions": [{"name": "v1", "replicas": 2.0, "available": 1.0,
                                   "trafficWeight": 0.0}],
                }}, "ready": "READY_FALSE"},
                "resources": {
                    "replica-v1-0": replica_desired(0, EARLIER, True),
                    "endpoint-v1-0": endpoint_desired(0, False),
                    "replica-v1-1": replica_desired(1, RECENT, False),
                    "route": route_desired([], False),
                },
            },
            "conditions": [
                condition("Available", False, "MinimumReplicasUnavailable",
                          "0 of 2 replicas serving; at least 2 required"),
                condition("Progressing", True, "NewRevisionDeploying",
                          "rolling out revision 'v1' (RollingUpdate)"),
                condition("Routed", False, "NoServingEndpoints",
                          "no replica may take traffic yet (replicas: 1 available without a "
                          "published backend, 1 provisioning)"),
            ],
        },
    ),
    "stable: every endpoint routed, weights 1, XR ready, no results": (
        xr(STABLE_STATUS),
        {"replica-v1-0": replica_obs(0, ready=True), "replica-v1-1": replica_obs(1, ready=True),
         "endpoint-v1-0": endpoint_obs(0), "endpoint-v1-1": endpoint_obs(1), "route": ROUTE_OBS},
        {
            "meta": {"ttl": "60s"},
            "desired": {
                "composite": {"resource": {"status": {
                    "phase": "Stable", "currentRevision": "v1",
                    "replicas": {"desired": 2.0, "total": 2.0, "ready": 2.0, "available": 2.0,
                                 "updated": 2.0, "unschedulable": 0.0},
                    "revisions": [{"name": "v1", "replicas": 2.0, "available": 2.0,
                                   "trafficWeight": 100.0}],
                }}, "ready": "READY_TRUE"},
                "resources": {
                    "replica-v1-0": replica_desired(0, EARLIER, True),
                    "endpoint-v1-0": endpoint_desired(0, True),
                    "replica-v1-1": replica_desired(1, EARLIER, True),
                    "endpoint-v1-1": endpoint_desired(1, True),
                    "route": route_desired([0, 1], True),
                },
            },
            "conditions": [
                condition("Available", True, "MinimumReplicasAvailable",
                          "2 of 2 replicas serving; at least 2 required"),
                condition("Progressing", True, "RolloutComplete", "revision 'v1' is rolled out"),
                condition("Routed", True, "BackendsRouted", "the main route carries 2 backends"),
            ],
        },
    ),
}


def request(xr_body: dict[str, Any],
            observed: dict[str, dict[str, Any]]) -> fnv1.RunFunctionRequest:
    req = fnv1.RunFunctionRequest(meta=fnv1.RequestMeta(tag="t"))
    req.observed.composite.resource.update(xr_body)
    for key, body in observed.items():
        req.observed.resources[key].resource.update(body)
    return req


@pytest.mark.parametrize("case", list(CASES))
def test_whole_response(stub, case):
    xr_body, observed, expected = CASES[case]
    rsp = stub.RunFunction(request(xr_body, observed))
    got = json_format.MessageToDict(rsp)
    expected = {"meta": {"tag": "t", **expected["meta"]}, "context": {}, **{
        k: v for k, v in expected.items() if k != "meta"}}
    assert got == expected


def test_resources_from_earlier_pipeline_steps_are_kept(stub):
    req = request(xr(), {})
    req.desired.resources["config"].resource.update(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "from-step-one"}})
    req.desired.composite.resource.update({"status": {"fromStepOne": "yes"}})
    rsp = stub.RunFunction(req)
    assert resource.struct_to_dict(rsp.desired.resources["config"].resource)["metadata"] == {
        "name": "from-step-one"}
    status = resource.struct_to_dict(rsp.desired.composite.resource)["status"]
    assert status["fromStepOne"] == "yes" and status["phase"] == "Progressing"


def test_input_sets_the_composed_kinds(stub):
    req = request(xr(), {})
    req.input.update({"apiVersion": "fn.rollout.dev/v1beta1", "kind": "Input",
                      "replica": {"apiVersion": "ml.example.org/v1", "kind": "Replica"},
                      "endpoint": {"apiVersion": "ml.example.org/v1", "kind": "Endpoint"}})
    rsp = stub.RunFunction(req)
    body = resource.struct_to_dict(rsp.desired.resources["replica-v1-0"].resource)
    assert (body["apiVersion"], body["kind"]) == ("ml.example.org/v1", "Replica")


def test_ttl_follows_the_nearest_pending_timer(stub):
    status = {**STABLE_STATUS}
    observed = {"replica-v1-0": replica_obs(0, ready=True),
                "replica-v1-1": replica_obs(1, ready=False),
                "endpoint-v1-0": endpoint_obs(0)}
    # replica-v1-1 was created 30 min ago but lost readiness 9.5 min ago: 30 s of budget left.
    observed["replica-v1-1"]["status"]["conditions"][0]["lastTransitionTime"] = ts(
        NOW - timedelta(seconds=570))
    rsp = stub.RunFunction(request(xr(status), observed))
    assert rsp.meta.ttl.seconds == 30


def test_no_route_configured_means_no_route_and_routed_false(stub):
    body = xr()
    del body["spec"]["route"]
    rsp = stub.RunFunction(request(body, {}))
    assert "route" not in rsp.desired.resources
    routed = next(c for c in rsp.conditions if c.type == "Routed")
    assert routed.reason == "RouteNotConfigured"


def test_the_console_script_serves_insecurely():
    with RealServer(["--insecure"]) as server, Client(server.address) as client:
        rsp = client.run(request(xr(), {}), timeout=20)
    assert len([k for k in rsp.desired.resources if k.startswith("replica-")]) == 2


def test_the_console_script_with_insecure_and_a_certs_dir_serves_one_plain_port(tmp_path):
    with RealServer(["--insecure", "--tls-certs-dir", str(tmp_path)]) as server, \
            Client(server.address) as client:
        rsp = client.run(request(xr(), {}), timeout=20)
    assert rsp.desired.resources
