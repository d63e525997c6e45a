"""Revision rules, draining and results on transitions only.

The rules: docs/rollout.md#revisions, #draining and #status-and-conditions.
"""

from __future__ import annotations

from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function import naming
from tests import invariants
from tests.fixtures import deployment
from tests.world import Fate, World


def stable(world: World) -> bool:
    return world.status.get("phase") == "Stable"


def results(step) -> list[str]:
    return [r.message for r in step.response.results]


def test_steady_state_reports_nothing_and_changes_nothing():
    world = World(spec=deployment(3, ("v1",)))
    world.run_until(stable, check=invariants.check)
    first = world.step()
    for _ in range(20):
        step = world.step()
        invariants.check(world, step)
        assert results(step) == []
        assert step.desired == first.desired
        assert step.status == first.status


def test_editing_a_revision_in_place_updates_replicas_without_a_rollout_and_warns_once():
    world = World(spec=deployment(3, ("v1",)))
    world.run_until(stable, check=invariants.check)
    keys = world.replicas()
    world.spec["revisions"][0]["engine"]["image"] = "vllm/vllm-openai:v0.12.0"
    step = world.step()
    warnings = [r for r in step.response.results if r.severity == fnv1.SEVERITY_WARNING]
    assert len(warnings) == 1 and "edited in place" in warnings[0].message
    assert sorted(k for k in step.desired if k.startswith("replica-")) == keys
    for key in keys:
        assert step.desired[key]["spec"]["engine"]["image"] == "vllm/vllm-openai:v0.12.0"
    hashes = {step.desired[k]["metadata"]["labels"][naming.LABEL_TEMPLATE_HASH] for k in keys}
    assert len(hashes) == 1 and step.status["phase"] == "Stable"
    assert results(world.step()) == []


def test_a_revision_missing_from_the_spec_keeps_its_replicas_spec_until_it_is_an_orphan():
    world = World(spec=deployment(3, ("v1", "v2"), active="v1"))
    world.run_until(stable, check=invariants.check)
    v1_spec = world.composed["replica-v1-0"]["spec"]
    world.spec["revisions"] = [r for r in world.spec["revisions"] if r["name"] != "v1"]
    world.spec["activeRevision"] = "v2"
    step = world.step()
    invariants.check(world, step)
    assert step.status["currentRevision"] == "v1"
    for key in world.replicas("v1"):
        assert step.desired[key]["spec"] == v1_spec
    world.run_until(lambda w: stable(w) and w.replicas() == w.replicas("v2"),
                    check=invariants.check)


def test_status_lost_with_only_replicas_of_an_unlisted_revision_deletes_nothing():
    world = World(spec=deployment(2, ("v1", "v2"), active="v1"))
    world.run_until(stable, check=invariants.check)
    world.spec["revisions"] = [r for r in world.spec["revisions"] if r["name"] != "v1"]
    world.spec["activeRevision"] = "v2"
    world.status = {}
    step = world.step()
    assert {"replica-v1-0", "replica-v1-1"} <= set(step.desired)
    assert step.status["currentRevision"] == "v1" and step.status["deployingRevision"] == "v2"


def test_scale_in_drains_by_removal_priority_and_scale_up_reclaims_draining_replicas():
    world = World(spec=deployment(4, ("v1",), drainSeconds=300))
    world.run_until(stable, check=invariants.check)
    world.spec["replicas"] = 2
    step = world.step()
    invariants.check(world, step)
    draining = sorted(k for k, body in step.desired.items() if k.startswith("replica-")
                      and naming.ANNOTATION_DRAINING_SINCE in body["metadata"]["annotations"])
    assert draining == ["replica-v1-2", "replica-v1-3"]  # newest first
    assert len(invariants.routed_replicas(step)) == 2
    world.spec["replicas"] = 4
    step = world.step()
    invariants.check(world, step)
    assert sorted(k for k in step.desired if k.startswith("replica-")) == [
        "replica-v1-0", "replica-v1-1", "replica-v1-2", "replica-v1-3"]
    for key in ("replica-v1-2", "replica-v1-3"):
        assert naming.ANNOTATION_DRAINING_SINCE not in step.desired[key]["metadata"][
            "annotations"]


def test_draining_ends_after_drain_seconds_and_sets_the_ttl():
    world = World(spec=deployment(2, ("v1",), drainSeconds=45))
    world.run_until(stable, check=invariants.check)
    world.spec["replicas"] = 1
    step = world.step(dt=0)
    assert step.response.meta.ttl.seconds == 45
    world.advance(44)
    assert "replica-v1-1" in world.step(dt=0).desired
    world.advance(1)
    step = world.step(dt=0)
    assert "replica-v1-1" not in step.desired and "endpoint-v1-1" not in step.desired


def test_a_failing_first_deploy_keeps_replacing_and_reports_once():
    world = World(spec=deployment(2, ("v1",), progressDeadlineSeconds=200),
                  fate_for=lambda rev, i: Fate(never_ready=True))
    failing = world.run_until(lambda w: w.status.get("phase") == "Failed",
                              check=invariants.check)
    assert failing
    for _ in range(120):
        step = world.step()
        invariants.check(world, step)
        assert step.status["deployingRevision"] == "v1"
        assert len([k for k in step.desired if k.startswith("replica-")]) == 2
    warnings = [m for s in world.history for m in results(s) if "no earlier revision" in m]
    assert len(warnings) == 1
    assert "failedRevision" not in world.status


def test_degraded_replicas_are_replaced_only_when_the_policy_says_so():
    def fate(rev: str, index: int) -> Fate:
        return Fate(stale_after=20) if index == 0 else Fate()

    keep = World(spec=deployment(2, ("v1",)), fate_for=fate)
    keep.run_until(stable, check=invariants.check)
    for _ in range(30):
        invariants.check(keep, keep.step())
    assert "replica-v1-0" in keep.composed

    evict = World(spec=deployment(2, ("v1",), healthPolicy={
        "cleanupTargetStatuses": ["Unhealthy", "Degraded"]}), fate_for=fate)
    evict.run_until(lambda w: "replica-v1-0" not in w.composed and stable(w),
                    check=invariants.check)


def test_provisioning_replicas_are_never_evicted_for_health():
    world = World(spec=deployment(1, ("v1",)), fate_for=lambda r, i: Fate(warmup=300))
    world.composed_snapshot = None
    for _ in range(20):
        step = world.step()
        invariants.check(world, step)
        assert "replica-v1-0" in step.desired


# --- first deploys: nothing to roll back to (docs/rollout.md#revisions, #rollback) ---------


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
