"""Rollout defects a randomized campaign found, each replayed as a user would meet it.

Each test drives the closed-loop world to the situation described and asserts
what the contract promises there (docs/rollout.md): a zero-size blue-green
rollout completes, a failing first deploy is reported once and stays Failed,
an abandoned revision is never newly routed, the TTL covers the warm-up of
replicas created by the same response, and lost status never promotes a
revision that serves nothing.
"""

from __future__ import annotations

from function import naming
from tests import invariants
from tests.fixtures import blue_green, deployment
from tests.world import Fate, World


def results(step) -> list[str]:
    return [r.message for r in step.response.results]


def test_blue_green_auto_promote_completes_a_deployment_scaled_to_zero():
    world = World(spec=deployment(0, ("v1", "v2"), active="v1",
                                  strategy=blue_green(auto=True, delay=15)))
    world.run_until(lambda w: w.status.get("phase") == "Stable", check=invariants.check)
    world.spec["activeRevision"] = "v2"
    # With no green replica the gate's first half holds at once; the soak is
    # measured from when it first held, so 15 s later it promotes.
    calls = world.run_until(lambda w: w.status.get("currentRevision") == "v2",
                            dt=5, limit=10, check=invariants.check)
    assert calls <= 5
    assert world.status["phase"] == "Stable"
    assert "deployingRevision" not in world.status


def test_a_failing_first_deploy_stays_failed_and_is_reported_once_while_replacements_fail():
    world = World(spec=deployment(2, ("v1",)),
                  fate_for=lambda rev, i: Fate(warmup=20, start_failure=True))
    world.run_until(lambda w: w.status.get("phase") == "Failed", check=invariants.check)
    for _ in range(30):
        step = world.step()
        invariants.check(world, step)
        assert step.status["phase"] == "Failed"
        progressing = next(c for c in step.response.conditions if c.type == "Progressing")
        assert progressing.reason == "RevisionFailed"
        assert len([k for k in step.desired if k.startswith("replica-")]) == 2
    warnings = [m for s in world.history for m in results(s) if "failed" in m]
    assert len(warnings) == 1, warnings


def test_a_failing_first_deploy_recovers_when_a_replacement_becomes_available():
    broken = {"yes": True}

    def fate(rev: str, index: int) -> Fate:
        return Fate(warmup=20, start_failure=broken["yes"])

    world = World(spec=deployment(2, ("v1",)), fate_for=fate)
    world.run_until(lambda w: w.status.get("phase") == "Failed", check=invariants.check)
    broken["yes"] = False
    world.run_until(lambda w: w.status.get("phase") == "Stable", check=invariants.check)
    assert world.status["currentRevision"] == "v1"


def test_a_preempted_first_deploy_is_never_newly_added_to_the_main_route():
    # v1's replicas become Ready and their endpoints publish backends; v2
    # pre-empts in the very call that first sees those backends.
    world = World(spec=deployment(2, ("v1", "v2"), active="v1"),
                  fate_for=lambda rev, i: Fate(warmup=30) if rev == "v1" else Fate(warmup=120))
    world.run_until(lambda w: all(
        "status" in w.composed.get(naming.endpoint_key("v1", i), {}) for i in range(2)),
        dt=5, check=invariants.check)
    world.spec["activeRevision"] = "v2"
    for _ in range(60):
        step = world.step(dt=5)
        invariants.check(world, step)
        routed = {naming.parse_replica_key(k)[0] for k in invariants.routed_replicas(step)}
        assert "v1" not in routed, "the abandoned v1 was newly routed"
        if step.status.get("phase") == "Stable":
            break
    assert world.status["currentRevision"] == "v2"


def test_the_ttl_covers_the_warm_up_of_replicas_created_by_the_same_response():
    spec = deployment(2, ("v1",))
    spec["revisions"][0]["healthCheck"]["initialDelaySeconds"] = 30
    world = World(spec=spec, fate_for=lambda rev, i: Fate(never_ready=True))
    first = world.step()
    assert any(k.startswith("replica-") for k in first.desired)
    assert first.response.meta.ttl.seconds == 30


def test_status_lost_during_a_first_deploy_never_promotes_a_revision_serving_nothing():
    world = World(spec=deployment(2, ("v1",)), fate_for=lambda rev, i: Fate(warmup=300))
    for _ in range(3):
        invariants.check(world, world.step())
    world.status = {}
    step = world.step()
    invariants.check(world, step)
    assert "currentRevision" not in step.status
    assert step.status["deployingRevision"] == "v1"
    assert step.status["phase"] == "Progressing"
    assert {k for k in step.desired if k.startswith("replica-")} == {
        "replica-v1-0", "replica-v1-1"}
    world.run_until(lambda w: w.status.get("phase") == "Stable", check=invariants.check)


def test_status_lost_during_a_broken_first_deploy_reports_the_failure():
    world = World(spec=deployment(2, ("v1",)),
                  fate_for=lambda rev, i: Fate(warmup=20, start_failure=True))
    invariants.check(world, world.step())
    world.status = {}
    world.run_until(lambda w: w.status.get("phase") == "Failed", check=invariants.check)
    assert "currentRevision" not in world.status
    assert any("failed" in m for s in world.history for m in results(s))


def test_a_failing_first_deploy_keeps_the_reason_it_was_reported_with():
    # Never Ready for the deadline, then replacements that fail to start: one
    # failure, reported once, with one reason throughout.
    spec = deployment(2, ("v1",), progressDeadlineSeconds=60)
    spec["revisions"][0]["healthCheck"]["initialDelaySeconds"] = 30
    world = World(spec=spec, fate_for=lambda rev, i: Fate(warmup=40, start_failure=True))
    world.run_until(lambda w: w.status.get("phase") == "Failed", check=invariants.check)
    reasons = set()
    for _ in range(40):
        step = world.step()
        invariants.check(world, step)
        assert step.status["phase"] == "Failed"
        reasons.add(next(c for c in step.response.conditions if c.type == "Progressing").reason)
    assert len(reasons) == 1, reasons
    warnings = [m for s in world.history for m in results(s) if "failed" in m or "progress" in m]
    assert len(warnings) == 1, warnings
