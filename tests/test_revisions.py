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
