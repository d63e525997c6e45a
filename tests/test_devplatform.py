"""The example platform's decisions (devplatform.model), without a cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from devplatform import model

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
S = model.Settings(gpus=2, warmup_seconds=8, endpoint_delay_seconds=0.5,
                   requests_per_second=90)


def replica(name: str, created: datetime = T0, *, revision: str = "v1",
            status: dict[str, Any] | None = None, annotations: dict[str, str] | None = None,
            interval: int = 10) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ml", "creationTimestamp": model.fmt(created),
                     "labels": {model.LABEL_DEPLOYMENT: "qwen", model.LABEL_REVISION: revision},
                     "annotations": annotations or {}},
        "spec": {"engine": {"port": 8000, "resources": {"gpus": 1}},
                 "healthCheck": {"path": "/health", "intervalSeconds": interval}},
        "status": status or {},
    }


def merged(obj: dict[str, Any], status: dict[str, Any] | None) -> dict[str, Any]:
    """obj after a merge patch of its status (conditions are lists: replaced whole)."""
    assert status is not None
    out = dict(obj)
    out["status"] = {**obj.get("status", {}), **status}
    return out


def step(obj: dict[str, Any], now: datetime, world: model.World | None = None,
         scheduled: bool = True, rps: float = 0.0) -> dict[str, Any] | None:
    return model.replica_status(obj, world or model.World(), scheduled, rps, S, now)


def cond(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    c = model.condition(obj, kind)
    assert c is not None
    return dict(c)


def test_replicas_past_the_gpu_pool_report_scheduled_false_until_gpus_free() -> None:
    rs = [replica(f"r{i}", T0 + timedelta(seconds=i)) for i in range(3)]
    placed = model.schedule(rs, gpus=2)
    assert placed == {("ml", "r0"), ("ml", "r1")}
    pending = merged(rs[2], step(rs[2], T0, scheduled=False))
    assert cond(pending, "Scheduled")["status"] == "False"
    assert cond(pending, "Scheduled")["reason"] == "InsufficientCapacity"
    assert step(pending, T0 + timedelta(seconds=5), scheduled=False) is None
    # r0 fails: its GPU goes to r2.
    rs[0]["status"] = {"phase": "Failed"}
    rs[1] = merged(rs[1], step(rs[1], T0))
    assert model.schedule([rs[0], rs[1], pending], gpus=2) == {("ml", "r1"), ("ml", "r2")}


def test_a_replica_warms_up_then_is_ready_healthy_and_addressable() -> None:
    r = merged(replica("r0"), step(replica("r0"), T0))
    assert r["status"]["phase"] == "Loading"
    assert cond(r, "Ready")["status"] == "False"
    assert step(r, T0 + timedelta(seconds=7)) is None
    r = merged(r, step(r, T0 + timedelta(seconds=8)))
    assert r["status"]["phase"] == "Running"
    assert cond(r, "Ready") | {"lastTransitionTime": None} == {
        "type": "Ready", "status": "True", "reason": "Serving", "message": "engine is serving",
        "lastTransitionTime": None}
    assert cond(r, "Ready")["lastTransitionTime"] == model.fmt(T0 + timedelta(seconds=8))
    assert cond(r, "Scheduled")["lastTransitionTime"] == model.fmt(T0)
    assert r["status"]["health"]["state"] == "Healthy"
    assert r["status"]["address"]["url"] == "http://r0.ml.svc:8000"


def test_warm_up_per_deployment_by_annotation() -> None:
    world = model.World(deployments={("ml", "qwen"): {"metadata": {
        "name": "qwen", "namespace": "ml",
        "annotations": {model.ANNOTATION_WARMUP: "2"}}}})
    r = merged(replica("r0"), step(replica("r0"), T0, world))
    assert step(r, T0 + timedelta(seconds=1), world) is None
    assert step(r, T0 + timedelta(seconds=2), world)["phase"] == "Running"  # type: ignore[index]


def test_faults_injected_on_the_deployment_apply_to_one_revision() -> None:
    world = model.World(deployments={("ml", "qwen"): {"metadata": {
        "name": "qwen", "namespace": "ml",
        "annotations": {model.ANNOTATION_INJECT: "v2=never-ready,v3=fail-start"}}}})
    ok = merged(replica("a"), step(replica("a"), T0, world))
    never = replica("b", revision="v2")
    never = merged(never, step(never, T0, world))
    failing = replica("c", revision="v3")
    failing = merged(failing, step(failing, T0, world))
    later = T0 + timedelta(minutes=30)
    assert step(ok, later, world)["phase"] == "Running"  # type: ignore[index]
    assert step(never, later, world) is None
    failed = merged(failing, step(failing, T0 + timedelta(seconds=2), world))
    assert failed["status"]["phase"] == "Failed"
    assert "out of memory" in failed["status"]["message"]
    assert step(failed, later, world) is None


def test_unhealthy_and_crash_faults_by_replica_annotation() -> None:
    sick = replica("a", annotations={model.ANNOTATION_INJECT: "unhealthy"})
    sick = merged(sick, step(sick, T0))
    sick = merged(sick, step(sick, T0 + timedelta(seconds=8)))
    sick = merged(sick, step(sick, T0 + timedelta(seconds=9)))
    assert sick["status"]["health"]["state"] == "Unhealthy"
    crash = replica("b", annotations={model.ANNOTATION_INJECT: "crash"})
    crash = merged(crash, step(crash, T0))
    crash = merged(crash, step(crash, T0 + timedelta(seconds=8)))
    crash = merged(crash, step(crash, T0 + timedelta(seconds=13)))
    assert cond(crash, "Ready")["status"] == "False"
    assert cond(crash, "Ready")["reason"] == "Crashed"
    # It warms up again from the crash.
    assert step(crash, T0 + timedelta(seconds=20)) is None
    assert step(crash, T0 + timedelta(seconds=21))["phase"] == "Running"  # type: ignore[index]


def ready_replica(settings: model.Settings) -> dict[str, Any]:
    r = replica("r0")
    r = merged(r, model.replica_status(r, model.World(), True, 0.0, settings, T0))
    return merged(r, model.replica_status(r, model.World(), True, 0.0, settings,
                                          T0 + timedelta(seconds=8)))


def test_interval_probes_refresh_last_probe_time_every_interval() -> None:
    s = model.Settings(warmup_seconds=8, metrics=False)
    r = ready_replica(s)
    writes = []
    for second in range(9, 69):
        now = T0 + timedelta(seconds=second)
        out = model.replica_status(r, model.World(), True, 0.0, s, now)
        if out is not None:
            writes.append(second)
            r = merged(r, out)
    assert writes == [18, 28, 38, 48, 58, 68]


def test_on_change_probes_write_only_changes_and_heartbeats() -> None:
    s = model.Settings(warmup_seconds=8, metrics=False, probe_mode="on-change",
                       heartbeat_seconds=30)
    r = ready_replica(s)
    writes = []
    for second in range(9, 69):
        now = T0 + timedelta(seconds=second)
        out = model.replica_status(r, model.World(), True, 0.0, s, now)
        if out is not None:
            writes.append(second)
            r = merged(r, out)
    assert writes == [38, 68]
    r["metadata"]["annotations"][model.ANNOTATION_INJECT] = "unhealthy"
    out = model.replica_status(r, model.World(), True, 0.0, s, T0 + timedelta(seconds=69))
    assert out is not None
    assert out["health"]["state"] == "Unhealthy"


def endpoint(name: str, replica_name: str, backend: bool = True) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ml",
                         "creationTimestamp": model.fmt(T0)},
            "spec": {"replica": replica_name},
            "status": {"routing": {"backendName": name}} if backend else {}}


def test_endpoints_publish_their_backend_after_the_delay_once() -> None:
    e = endpoint("e0", "r0", backend=False)
    assert model.endpoint_status(e, S, T0) is None
    out = model.endpoint_status(e, S, T0 + timedelta(seconds=1))
    assert out is not None
    assert out["routing"] == {"backendName": "e0"}
    assert model.endpoint_status(merged(e, out), S, T0 + timedelta(seconds=2)) is None


def test_routes_are_accepted_at_their_generation_and_carry_traffic_by_weight() -> None:
    route: dict[str, Any] = {
        "metadata": {"name": "qwen", "namespace": "ml", "generation": 3},
        "spec": {"parentRefs": [{"name": "gw"}],
                 "rules": [{"backendRefs": [{"name": "e0", "weight": 1},
                                            {"name": "e1", "weight": 2}]}]},
    }
    world = model.World(endpoints=[endpoint("e0", "r0"), endpoint("e1", "r1")], routes=[route])
    assert model.traffic(world, 90) == {}  # not accepted yet: no traffic
    out = model.route_status(route, T0)
    assert out is not None
    accepted = out["parents"][0]["conditions"][0]
    assert (accepted["type"], accepted["status"], accepted["observedGeneration"]) == (
        "Accepted", "True", 3)
    route["status"] = out
    assert model.route_status(route, T0 + timedelta(seconds=5)) is None
    assert model.traffic(world, 90) == {("ml", "r0"): 30.0, ("ml", "r1"): 60.0}
    route["metadata"]["generation"] = 4
    again = model.route_status(route, T0 + timedelta(seconds=6))
    assert again is not None
    assert again["parents"][0]["conditions"][0]["observedGeneration"] == 4


def test_metrics_follow_traffic_every_window_and_a_draining_replica_serves_none() -> None:
    r = ready_replica(S)
    assert r["status"]["metrics"]["requests"] == 0
    out = model.replica_status(r, model.World(), True, 45.0, S, T0 + timedelta(seconds=9))
    assert out is not None
    m = out["metrics"]
    assert (m["windowSeconds"], m["requests"], m["errors"]) == (30, 1350, 0)
    assert m["observedTime"] == model.fmt(T0 + timedelta(seconds=9))
    r = merged(r, out)
    # Same traffic: nothing until the window has passed (the probe at 18 s aside).
    assert "metrics" not in (model.replica_status(
        r, model.World(), True, 45.4, S, T0 + timedelta(seconds=18)) or {})
    later = model.replica_status(r, model.World(), True, 45.0, S, T0 + timedelta(seconds=39))
    assert later is not None
    assert later["metrics"]["observedTime"] == model.fmt(T0 + timedelta(seconds=39))
    r["metadata"]["annotations"][model.ANNOTATION_DRAINING] = model.fmt(T0)
    out = model.replica_status(r, model.World(), True, 45.0, S, T0 + timedelta(seconds=11))
    assert out is not None
    assert out["metrics"]["requests"] == 0


def test_error_and_latency_faults_show_in_metrics() -> None:
    r = ready_replica(S)
    r["metadata"]["annotations"][model.ANNOTATION_INJECT] = "errors"
    m = model.replica_status(r, model.World(), True, 10.0, S, T0 + timedelta(seconds=9))
    assert m is not None
    assert (m["metrics"]["requests"], m["metrics"]["errors"]) == (300, 60)
    r["metadata"]["annotations"][model.ANNOTATION_INJECT] = "slow"
    m = model.replica_status(r, model.World(), True, 10.0, S, T0 + timedelta(seconds=9))
    assert m is not None
    assert m["metrics"]["ttftP95Seconds"] == 0.75
