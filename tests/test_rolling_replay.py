"""Whole RollingUpdate rollouts replayed call by call (docs/rollout.md#rollingupdate).

Every call's desired state becomes the next call's observed state; after each
call the invariants of tests/invariants.py are checked.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function import naming
from tests import invariants
from tests.fixtures import deployment, rolling
from tests.world import Fate, World


def stable_on(world: World, revision: str, n: int) -> bool:
    return (world.status.get("phase") == "Stable"
            and world.status.get("currentRevision") == revision
            and "deployingRevision" not in world.status
            and world.replicas() == world.replicas(revision)
            and len(world.replicas(revision)) == n)


def bootstrapped(spec: dict, **kw) -> World:
    world = World(spec=spec, **kw)
    world.run_until(lambda w: w.status.get("phase") == "Stable", check=invariants.check)
    return world


def messages(world: World) -> list[str]:
    return [r.message for step in world.history for r in step.response.results]


def test_bootstrap_deploys_full_size_at_once_and_becomes_stable():
    world = World(spec=deployment(3, ("v1",)))
    first = world.step()
    assert sorted(k for k in first.desired if k.startswith("replica-")) == [
        "replica-v1-0", "replica-v1-1", "replica-v1-2"]
    assert first.status["deployingRevision"] == "v1"
    assert "currentRevision" not in first.status
    world.run_until(lambda w: stable_on(w, "v1", 3), check=invariants.check)
    assert world.status["currentRevision"] == "v1"
    conditions = {c["type"]: c for c in world.status["conditions"]}
    assert conditions["Available"]["status"] == "True"
    assert conditions["Routed"]["status"] == "True"


def test_v1_to_v2_completes_one_surge_replica_at_a_time():
    world = bootstrapped(deployment(3, ("v1", "v2"), active="v1"))
    world.spec["activeRevision"] = "v2"
    started = world.step()
    assert started.status["deployingRevision"] == "v2"
    assert started.status["phase"] == "Progressing"
    # 25% of 3 rounds up to one surge replica.
    assert [k for k in started.desired if k.startswith("replica-v2")] == ["replica-v2-0"]
    world.run_until(lambda w: stable_on(w, "v2", 3), check=invariants.check)
    assert any("rolled out" in m for m in messages(world))
    assert world.status["revisions"] == [
        {"name": "v2", "replicas": 3, "available": 3, "trafficWeight": 100}]


def test_traffic_follows_available_capacity_during_the_rollout():
    world = bootstrapped(deployment(4, ("v1", "v2"), active="v1"))
    world.spec["activeRevision"] = "v2"
    seen_mixed = False
    for _ in range(200):
        step = world.step()
        invariants.check(world, step)
        rows = {row["name"]: row for row in step.status.get("revisions", [])}
        if "v1" in rows and "v2" in rows and rows["v2"]["trafficWeight"] > 0:
            routed = invariants.routed_replicas(step)
            v2_share = sum(1 for k in routed if "-v2-" in k) * 100 / len(routed)
            assert abs(rows["v2"]["trafficWeight"] - v2_share) <= 1
            seen_mixed = True
        if stable_on(world, "v2", 4):
            break
    assert seen_mixed and stable_on(world, "v2", 4)


def test_preemption_retires_the_preempted_revision_and_rolls_out_the_new_one():
    spec = deployment(3, ("v1", "v2", "v3"), active="v1")
    world = bootstrapped(spec)
    world.spec["activeRevision"] = "v2"
    world.run_until(lambda w: len(invariants.routed_replicas(w.history[-1])) > 0
                    and any("-v2-" in k for k in invariants.routed_replicas(w.history[-1])),
                    check=invariants.check)
    world.spec["activeRevision"] = "v3"
    step = world.step()
    invariants.check(world, step)
    assert step.status["deployingRevision"] == "v3"
    assert any("pre-empts" in r.message for r in step.response.results)
    world.run_until(lambda w: stable_on(w, "v3", 3), check=invariants.check)
    assert not world.replicas("v2")


def test_abort_returns_to_the_current_revision_and_removes_the_deploying_one():
    world = bootstrapped(deployment(3, ("v1", "v2"), active="v1"))
    world.spec["activeRevision"] = "v2"
    world.run_until(lambda w: len(w.replicas("v2")) >= 2, check=invariants.check)
    world.spec["activeRevision"] = "v1"
    step = world.step()
    invariants.check(world, step)
    assert "deployingRevision" not in step.status
    progressing = next(c for c in step.response.conditions if c.type == "Progressing")
    assert progressing.reason == "RolloutAborted"
    world.run_until(lambda w: stable_on(w, "v1", 3), check=invariants.check)


def test_never_ready_revision_rolls_back_at_the_progress_deadline():
    fates = {"v2": Fate(never_ready=True)}
    world = bootstrapped(deployment(3, ("v1", "v2"), active="v1", progressDeadlineSeconds=300),
                         fate_for=lambda rev, i: fates.get(rev, Fate()))
    world.spec["activeRevision"] = "v2"
    start = world.now
    world.run_until(lambda w: w.status.get("failedRevision") == "v2", check=invariants.check)
    elapsed = (world.history[-1].now - start).total_seconds()
    assert 300 <= elapsed <= 320
    last = world.history[-1]
    assert last.status["phase"] == "Failed"
    progressing = next(c for c in last.response.conditions if c.type == "Progressing")
    assert (progressing.status, progressing.reason) == (
        fnv1.STATUS_CONDITION_FALSE, "ProgressDeadlineExceeded")
    warnings = [r for r in last.response.results if r.severity == fnv1.SEVERITY_WARNING]
    assert len(warnings) == 1 and "rolled back" in warnings[0].message
    world.run_until(lambda w: not w.replicas("v2"), check=invariants.check)
    # Stays on v1 at full size and does not retry v2 while activeRevision is v2.
    for _ in range(60):
        step = world.step()
        invariants.check(world, step)
        assert not [k for k in step.desired if k.startswith("replica-v2")]
    assert len(world.replicas("v1")) == 3 and world.status["phase"] == "Failed"
    # Setting activeRevision back to v1 clears the failure; to v2 again retries it.
    world.spec["activeRevision"] = "v1"
    step = world.step()
    assert "failedRevision" not in step.status and step.status["phase"] == "Stable"


def test_crashing_revision_rolls_back_when_every_replica_failed():
    fates = {"v2": Fate(warmup=30, start_failure=True)}
    world = bootstrapped(deployment(2, ("v1", "v2"), active="v1"),
                         fate_for=lambda rev, i: fates.get(rev, Fate()))
    world.spec["activeRevision"] = "v2"
    world.run_until(lambda w: w.status.get("failedRevision") == "v2", check=invariants.check)
    last = world.history[-1]
    progressing = next(c for c in last.response.conditions if c.type == "Progressing")
    assert progressing.reason == "RevisionFailed"
    # The warning says why, in the replica's own words (status.message of a Failed replica).
    warnings = [r.message for r in last.response.results if r.severity == fnv1.SEVERITY_WARNING]
    assert warnings == ["Every replica of revision 'v2' failed (qwen-v2-0: engine exited: CUDA "
                        "out of memory); rolled back to 'v1'. 'v2' will not be retried until "
                        "activeRevision changes."]
    world.run_until(lambda w: stable_on(w, "v1", 2) or (
        w.status.get("phase") == "Failed" and w.replicas() == w.replicas("v1")),
        check=invariants.check)
    assert len(world.replicas("v1")) == 2


def test_scaling_up_during_a_rollout_is_honoured():
    world = bootstrapped(deployment(3, ("v1", "v2"), active="v1"))
    world.spec["activeRevision"] = "v2"
    world.run_until(lambda w: len(w.replicas("v2")) >= 2, check=invariants.check)
    world.spec["replicas"] = 6
    world.run_until(lambda w: stable_on(w, "v2", 6), check=invariants.check)


def test_scaling_down_during_a_rollout_is_honoured():
    world = bootstrapped(deployment(6, ("v1", "v2"), active="v1"))
    world.spec["activeRevision"] = "v2"
    world.run_until(lambda w: len(w.replicas("v2")) >= 2, check=invariants.check)
    world.spec["replicas"] = 2
    world.run_until(lambda w: stable_on(w, "v2", 2), check=invariants.check)


def test_status_wiped_mid_rollout_is_inferred_and_the_rollout_continues():
    world = bootstrapped(deployment(3, ("v1", "v2"), active="v1"))
    world.spec["activeRevision"] = "v2"
    world.run_until(lambda w: len(w.replicas("v2")) >= 2, check=invariants.check)
    before = set(world.replicas())
    world.status = {}
    step = world.step()
    invariants.check(world, step)
    # Nothing is deleted because the memory was lost.
    assert before <= set(k for k in step.desired if k.startswith("replica-"))
    assert any("inferred" in r.message for r in step.response.results)
    assert step.status["currentRevision"] == "v1"
    world.run_until(lambda w: stable_on(w, "v2", 3), check=invariants.check)


def test_surge_zero_unavailable_one_replaces_in_place():
    world = bootstrapped(deployment(3, ("v1", "v2"), active="v1", strategy=rolling(0, 1)))
    world.spec["activeRevision"] = "v2"
    world.run_until(lambda w: stable_on(w, "v2", 3), check=invariants.check)
    peak = max(sum(1 for k in s.desired if k.startswith("replica-")) for s in world.history)
    assert peak <= 3


def test_full_surge_creates_the_whole_new_revision_at_once():
    world = bootstrapped(deployment(4, ("v1", "v2"), active="v1", strategy=rolling("100%", 0)))
    world.spec["activeRevision"] = "v2"
    step = world.step()
    assert len([k for k in step.desired if k.startswith("replica-v2")]) == 4
    world.run_until(lambda w: stable_on(w, "v2", 4), check=invariants.check)


def test_single_replica_rolls_with_surge_and_never_drops_service():
    world = bootstrapped(deployment(1, ("v1", "v2"), active="v1"))
    world.spec["activeRevision"] = "v2"
    start = len(world.history)
    world.run_until(lambda w: stable_on(w, "v2", 1), check=invariants.check)
    for step in world.history[start:]:
        assert len(invariants.routed_replicas(step)) >= 1


def test_zero_replicas_rolls_out_to_nothing():
    world = bootstrapped(deployment(0, ("v1", "v2"), active="v1"))
    assert world.replicas() == []
    world.spec["activeRevision"] = "v2"
    world.run_until(lambda w: w.status.get("currentRevision") == "v2", check=invariants.check)
    assert world.replicas() == []


def test_nothing_routed_is_deleted_before_drain_seconds():
    world = bootstrapped(deployment(3, ("v1", "v2"), active="v1", drainSeconds=45))
    world.spec["activeRevision"] = "v2"
    world.run_until(lambda w: stable_on(w, "v2", 3), dt=5, check=invariants.check)
    drained = [(when, key, body) for when, key, body in world.deleted if "-v1-" in key
               and key.startswith("replica-")]
    assert len(drained) == 3
    for when, _key, body in drained:
        since = body["metadata"]["annotations"]["serving.rollout.dev/draining-since"]
        assert (when - datetime.fromisoformat(since)).total_seconds() >= 45


def test_unhealthy_replicas_are_replaced_with_fresh_indices():
    state = {"sick": {"replica-v1-1"}}

    def fate(rev: str, index: int) -> Fate:
        return Fate(unhealthy_after=30) if f"replica-{rev}-{index}" in state["sick"] else Fate()

    world = World(spec=deployment(3, ("v1",)), fate_for=fate)
    world.run_until(lambda w: "replica-v1-1" not in w.composed and len(w.replicas()) == 3,
                    check=invariants.check)
    assert "replica-v1-3" in world.composed


def drained(step) -> list[str]:
    """Replicas this call's desired state marks Draining."""
    return sorted(k for k, body in step.desired.items() if k.startswith("replica-")
                  and naming.ANNOTATION_DRAINING_SINCE in body["metadata"].get("annotations", {}))


def test_an_unhealthy_routed_replica_drains_for_drain_seconds():
    sick = {"replica-v1-1"}
    world = World(spec=deployment(3, ("v1",), drainSeconds=45),
                  fate_for=lambda revision, index: Fate(
                      warmup=30, unhealthy_after=60 if f"replica-{revision}-{index}" in sick
                      else None))
    world.run_until(lambda w: "replica-v1-1" not in w.composed and len(w.replicas()) == 3,
                    dt=5, check=invariants.check)
    unrouted = next(step for step in world.history
                    if "replica-v1-1" in step.desired
                    and drained(step) == ["replica-v1-1"])
    previous = world.history[world.history.index(unrouted) - 1]
    assert "replica-v1-1" in invariants.routed_replicas(previous)
    assert "replica-v1-1" not in invariants.routed_replicas(unrouted)
    annotations = unrouted.desired["replica-v1-1"]["metadata"]["annotations"]
    assert annotations[naming.ANNOTATION_DRAIN_SECONDS] == "45"
    # Its replacement does not wait for the drain: maxSurge allows a fourth replica.
    assert "replica-v1-3" in unrouted.desired
    (when, _, body), = [d for d in world.deleted if d[1] == "replica-v1-1"]
    since = datetime.fromisoformat(
        body["metadata"]["annotations"][naming.ANNOTATION_DRAINING_SINCE])
    assert since == unrouted.now
    assert when - since >= timedelta(seconds=45)


def test_an_unhealthy_replica_no_route_carries_goes_at_once():
    world = World(spec=deployment(3, ("v1",), route=False, drainSeconds=45),
                  fate_for=lambda revision, index: Fate(
                      warmup=30, unhealthy_after=60 if index == 1 else None))
    world.run_until(lambda w: "replica-v1-1" not in w.composed, dt=5, check=invariants.check)
    last = world.history[-1]
    assert not drained(last), "no route carried it: nothing in flight to wait for"


def test_the_ttl_covers_the_warm_up_of_replicas_created_by_the_same_response():
    spec = deployment(2, ("v1",))
    spec["revisions"][0]["healthCheck"]["initialDelaySeconds"] = 30
    world = World(spec=spec, fate_for=lambda rev, i: Fate(never_ready=True))
    first = world.step()
    assert any(k.startswith("replica-") for k in first.desired)
    assert first.response.meta.ttl.seconds == 30
