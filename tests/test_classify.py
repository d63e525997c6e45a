"""Replica states (docs/rollout.md#replica-states) from observed state, with an injected clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from function.classify import Classifier, Health, Lifecycle, Replica
from function.observe import read_endpoint, read_replica
from function.spec import parse_spec
from tests.fixtures import deployment
from tests.world import T0, ts

NOW = T0 + timedelta(hours=1)


def classify(observed, endpoint, spec, health_check, now) -> Replica:
    """One replica classified as the planner does it: by its revision's Classifier."""
    return Classifier(spec, health_check, now).classify(observed, endpoint)


def replica(*, age: float = 3600, ready: str | None = None, ready_for: float | None = None,
            health: str | None = None, probe_age: float = 5, phase: str | None = None,
            draining: bool = False, index: int = 0, scheduled: str | None = None,
            scheduled_for: float | None = None) -> dict[str, Any]:
    """scheduled: the Scheduled condition's status; scheduled_for: seconds since its last
    transition (None: no lastTransitionTime)."""
    body: dict[str, Any] = {
        "metadata": {"creationTimestamp": ts(NOW - timedelta(seconds=age))},
        "status": {},
    }
    conditions = []
    if ready is not None:
        conditions.append({
            "type": "Ready", "status": ready,
            "lastTransitionTime": ts(NOW - timedelta(seconds=ready_for if ready_for is not None
                                                     else age)),
        })
    if scheduled is not None:
        condition = {"type": "Scheduled", "status": scheduled}
        if scheduled == "False":
            condition["reason"] = "InsufficientCapacity"
        if scheduled_for is not None:
            condition["lastTransitionTime"] = ts(NOW - timedelta(seconds=scheduled_for))
        conditions.append(condition)
    if conditions:
        body["status"]["conditions"] = conditions
    if health is not None:
        body["status"]["health"] = {"state": health,
                                    "lastProbeTime": ts(NOW - timedelta(seconds=probe_age))}
    if phase is not None:
        body["status"]["phase"] = phase
    if draining:
        body["metadata"]["annotations"] = {
            "serving.rollout.dev/draining-since": ts(NOW - timedelta(seconds=5))}
    return body


ENDPOINT = {"status": {"routing": {"backendName": "qwen-v1-0-svc"}}}


def run(body: dict[str, Any], *, health_check: bool = True, endpoint: dict | None = ENDPOINT,
        **spec_extra: Any):
    spec_source = deployment(3, ("v1",), **spec_extra)
    if not health_check:
        del spec_source["revisions"][0]["healthCheck"]
    spec = parse_spec(spec_source)
    observed = read_replica("replica-v1-0", "v1", 0, body)
    ep = read_endpoint("endpoint-v1-0", "v1", 0, endpoint) if endpoint is not None else None
    return classify(observed, ep, spec, spec.revisions[0].health_check, NOW)


@pytest.mark.parametrize(
    ("body", "health_check", "lifecycle", "health", "available"),
    [
        # Provisioning: not Ready and younger than the warm-up budget (600 s).
        (replica(age=100), True, Lifecycle.PROVISIONING, Health.NOT_CHECKED, False),
        (replica(age=100, ready="False"), True, Lifecycle.PROVISIONING, Health.NOT_CHECKED, False),
        # Failed: past the warm-up budget without Ready, or status.phase Failed.
        (replica(age=700), True, Lifecycle.FAILED, Health.NOT_CHECKED, False),
        (replica(age=30, phase="Failed"), True, Lifecycle.FAILED, Health.NOT_CHECKED, False),
        # Lost readiness: the budget counts from the later of creation and the transition.
        (replica(age=5000, ready="False", ready_for=100), True, Lifecycle.PROVISIONING,
         Health.NOT_CHECKED, False),
        (replica(age=5000, ready="False", ready_for=601), True, Lifecycle.FAILED,
         Health.NOT_CHECKED, False),
        # Running with health.
        (replica(ready="True", health="Healthy"), True, Lifecycle.RUNNING, Health.HEALTHY, True),
        (replica(ready="True", health="Unhealthy"), True, Lifecycle.RUNNING, Health.UNHEALTHY,
         False),
        # Stale data (older than max(120, 3 * 10)) is Degraded: stale, not bad; still available.
        (replica(ready="True", health="Healthy", probe_age=121), True, Lifecycle.RUNNING,
         Health.DEGRADED, True),
        (replica(ready="True", health="Unhealthy", probe_age=121), True, Lifecycle.RUNNING,
         Health.DEGRADED, True),
        # With a health check, NotChecked is still warming up: not available, not failed.
        (replica(ready="True"), True, Lifecycle.RUNNING, Health.NOT_CHECKED, False),
        # Without a health check, readiness alone decides, unless health says Unhealthy.
        (replica(ready="True"), False, Lifecycle.RUNNING, Health.NOT_CHECKED, True),
        (replica(ready="True", health="Unhealthy"), False, Lifecycle.RUNNING, Health.UNHEALTHY,
         False),
        # Draining replicas are never available.
        (replica(ready="True", health="Healthy", draining=True), True, Lifecycle.RUNNING,
         Health.HEALTHY, False),
    ],
)
def test_lifecycle_health_and_availability(body, health_check, lifecycle, health, available):
    classified = run(body, health_check=health_check)
    assert classified.lifecycle is lifecycle
    assert classified.health is health
    assert classified.available is available
    assert classified.serving is available  # the endpoint publishes a backend


def test_warmup_budget_comes_from_the_health_check():
    spec = deployment(3, ("v1",))
    spec["revisions"][0]["healthCheck"]["initialDelaySeconds"] = 60
    body = replica(age=61)
    parsed = parse_spec(spec)
    observed = read_replica("replica-v1-0", "v1", 0, body)
    assert classify(observed, None, parsed, parsed.revisions[0].health_check,
                    NOW).lifecycle is Lifecycle.FAILED


def test_min_ready_seconds_delays_availability_and_sets_a_timer():
    classified = run(replica(ready="True", health="Healthy", ready_for=20), minReadySeconds=30)
    assert classified.lifecycle is Lifecycle.RUNNING and not classified.available
    assert classified.next_change == NOW + timedelta(seconds=10)
    assert run(replica(ready="True", health="Healthy", ready_for=30),
               minReadySeconds=30).available


def test_serving_needs_the_endpoint_to_publish_a_backend():
    assert not run(replica(ready="True", health="Healthy"), endpoint=None).serving
    assert not run(replica(ready="True", health="Healthy"), endpoint={"status": {}}).serving
    assert run(replica(ready="True", health="Healthy")).serving


def test_provisioning_replica_times_out_at_the_end_of_its_budget():
    classified = run(replica(age=100))
    assert classified.next_change == NOW + timedelta(seconds=500)


def test_removal_priority():
    bodies = {
        "failed": replica(phase="Failed", index=0),
        "provisioning": replica(age=10),
        "unhealthy": replica(ready="True", health="Unhealthy"),
        "degraded": replica(ready="True", health="Healthy", probe_age=500),
        "not-checked": replica(ready="True"),
        "healthy": replica(ready="True", health="Healthy"),
    }
    spec = parse_spec(deployment(3, ("v1",)))
    ranked = []
    for position, (name, body) in enumerate(bodies.items()):
        observed = read_replica(f"replica-v1-{position}", "v1", position, body)
        ranked.append((classify(observed, None, spec, spec.revisions[0].health_check,
                                NOW).removal_rank(), name))
    assert [name for _, name in sorted(ranked)] == list(bodies)


def test_ties_remove_the_newest_first():
    spec = parse_spec(deployment(3, ("v1",)))
    ranks = []
    for index in (0, 7, 3):
        observed = read_replica(f"replica-v1-{index}", "v1", index,
                                replica(ready="True", health="Healthy"))
        ranks.append((classify(observed, None, spec, spec.revisions[0].health_check,
                               NOW).removal_rank(), index))
    assert [index for _, index in sorted(ranks)] == [7, 3, 0]


# --- Unschedulable: not Ready and Scheduled=False (docs/rollout.md#capacity-shortage) -------


def run_both(body: dict[str, Any], **spec_extra: Any):
    """classify of the body read from a dict (careful reader) and from a Struct (fast reader)."""
    from crossplane.function import resource

    from_dict = run(body, **spec_extra)
    spec = parse_spec(deployment(3, ("v1",), **spec_extra))
    observed = read_replica("replica-v1-0", "v1", 0, resource.dict_to_struct(body))
    from_struct = classify(observed, read_endpoint("endpoint-v1-0", "v1", 0, ENDPOINT), spec,
                           spec.revisions[0].health_check, NOW)
    assert (from_struct.lifecycle, from_struct.health, from_struct.available,
            from_struct.next_change) == (from_dict.lifecycle, from_dict.health,
                                         from_dict.available, from_dict.next_change)
    return from_dict


@pytest.mark.parametrize(
    ("body", "lifecycle", "next_change"),
    [
        # Waiting for an accelerator, long past the 600 s warm-up budget: never Failed.
        (replica(age=5000, ready="False", scheduled="False", scheduled_for=5000),
         Lifecycle.UNSCHEDULABLE, None),
        # ...with no Ready condition at all, or without a lastTransitionTime.
        (replica(age=5000, scheduled="False", scheduled_for=5000), Lifecycle.UNSCHEDULABLE,
         None),
        (replica(age=5000, ready="False", scheduled="False"), Lifecycle.UNSCHEDULABLE, None),
        (replica(age=5, scheduled="False"), Lifecycle.UNSCHEDULABLE, None),
        # Ready wins over a Scheduled=False left behind: it runs.
        (replica(ready="True", health="Healthy", scheduled="False", scheduled_for=10),
         Lifecycle.RUNNING, None),
        (replica(ready="True", health="Healthy", scheduled="False"), Lifecycle.RUNNING, None),
        # status.phase Failed says it cannot start, whatever the scheduler says.
        (replica(age=30, phase="Failed", scheduled="False", scheduled_for=30), Lifecycle.FAILED,
         None),
        # Scheduled 100 s ago after waiting 4900 s: the budget runs from scheduling.
        (replica(age=5000, ready="False", scheduled="True", scheduled_for=100),
         Lifecycle.PROVISIONING, NOW + timedelta(seconds=500)),
        (replica(age=5000, ready="False", scheduled="True", scheduled_for=601),
         Lifecycle.FAILED, None),
        # Scheduled at creation (the usual case): the budget runs from creation.
        (replica(age=100, ready="False", scheduled="True", scheduled_for=100),
         Lifecycle.PROVISIONING, NOW + timedelta(seconds=500)),
        # Scheduled=True without a lastTransitionTime: creation and Ready decide, as before.
        (replica(age=700, ready="False", scheduled="True"), Lifecycle.FAILED, None),
        (replica(age=5000, ready="False", ready_for=100, scheduled="True"),
         Lifecycle.PROVISIONING, NOW + timedelta(seconds=500)),
        # A Scheduled condition of any other status (Unknown) is not a shortage.
        (replica(age=100, ready="False", scheduled="Unknown", scheduled_for=100),
         Lifecycle.PROVISIONING, NOW + timedelta(seconds=500)),
    ],
)
def test_unschedulable_replicas(body, lifecycle, next_change):
    classified = run_both(body)
    assert classified.lifecycle is lifecycle
    assert classified.next_change == next_change
    if lifecycle is Lifecycle.UNSCHEDULABLE:
        assert not classified.available and not classified.serving
        assert classified.health is Health.NOT_CHECKED


def test_the_reason_and_the_wait_are_read_from_the_scheduled_condition():
    from function.planner.capacity import describe, unschedulable_since

    waiting = run_both(replica(age=300, ready="False", scheduled="False", scheduled_for=200))
    assert unschedulable_since(waiting) == NOW - timedelta(seconds=200)
    assert describe([waiting], "qwen") == (
        "1 replica unschedulable (InsufficientCapacity: qwen-v1-0)")
    # Without a lastTransitionTime it has waited since it exists.
    waiting = run_both(replica(age=300, ready="False", scheduled="False"))
    assert unschedulable_since(waiting) == NOW - timedelta(seconds=300)


def test_unschedulable_replicas_go_first():
    spec = parse_spec(deployment(3, ("v1",)))
    ranked = []
    for index, body in enumerate([replica(phase="Failed"),
                                  replica(age=5000, scheduled="False", scheduled_for=5000),
                                  replica(age=10)]):
        observed = read_replica(f"replica-v1-{index}", "v1", index, body)
        ranked.append((classify(observed, None, spec, spec.revisions[0].health_check,
                                NOW).removal_rank(), index))
    assert [index for _, index in sorted(ranked)] == [1, 0, 2]


def test_a_malformed_status_with_scheduled_false_is_unknown_and_holds_its_place():
    body = replica(age=5000, ready="False", scheduled="False", scheduled_for=5000)
    body["status"]["health"] = "broken"
    classified = run(body)
    assert classified.observed.malformed
    assert classified.lifecycle is Lifecycle.PROVISIONING and classified.next_change is None
