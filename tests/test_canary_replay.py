"""Whole Canary rollouts replayed call by call (docs/rollout.md#canary).

Every call is checked against the shared invariants (tests/invariants.py) and
the canary's own: the canary never gets more of the main route than its share
of Serving capacity, and the header rule reaches the canary only.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest

from function import naming
from tests import invariants
from tests.fixtures import deployment
from tests.test_rolling_replay import stable_on
from tests.world import Fate, Step, World

STEPS = [{"setWeight": 10}, {"pause": {"durationSeconds": 600}}, {"setWeight": 50},
         {"pause": {}}]


def canary(steps: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {"type": "Canary", "canary": {"steps": steps if steps is not None else STEPS,
                                         **extra}}


def revision_of(key: str) -> str:
    parsed = naming.parse_replica_key(key)
    assert parsed is not None
    return parsed[0]


def rules(step: Step) -> list[dict[str, Any]]:
    return step.desired.get(naming.ROUTE_KEY, {}).get("spec", {}).get("rules", [])


def main_weights(step: Step) -> dict[str, int]:
    """Weight per revision on the main (first) rule."""
    by_backend = {f"{body['metadata']['name']}-svc": key for key, body in step.observed.items()
                  if naming.parse_replica_key(key)}
    weights: dict[str, int] = {}
    for ref in (rules(step)[0].get("backendRefs", []) if rules(step) else []):
        revision = revision_of(by_backend[ref["name"]])
        weights[revision] = weights.get(revision, 0) + int(ref["weight"])
    return weights


def check_canary(world: World, step: Step) -> None:
    """The shared invariants, and the canary's share never beyond its Serving share."""
    invariants.check(world, step)
    if step.fatal or not rules(step):
        return
    deploying = step.status.get("deployingRevision")
    weights = main_weights(step)
    total = sum(weights.values())
    if deploying and total and len(weights) > 1:
        routed = [k for k in invariants.routed_replicas(step) if revision_of(k) == deploying]
        share = Fraction(weights.get(deploying, 0), total)
        assert share <= Fraction(len(set(routed)), world.spec["replicas"]), (
            f"canary share {share} beyond its serving share")
    for rule in rules(step)[1:]:
        assert rule["matches"][0]["headers"][0]["name"] == "x-canary"
        names = {ref["name"] for ref in rule.get("backendRefs", [])}
        assert all(f"-{deploying}-" in name for name in names), "header rule beyond the canary"


def progressing(step: Step):
    return next(c for c in step.response.conditions if c.type == "Progressing")


def bootstrapped(n: int = 4, steps: list[dict[str, Any]] | None = None, **kw: Any) -> World:
    strategy = canary(steps, **kw.pop("canary_extra", {}))
    world = World(spec=deployment(n, ("v1", "v2", "v3"), active="v1", strategy=strategy, **kw))
    world.run_until(lambda w: stable_on(w, "v1", n), check=check_canary)
    return world


def until_step(world: World, index: int, *, phase: str | None = None) -> Step:
    world.run_until(lambda w: w.status.get("canary", {}).get("step") == index
                    and (phase is None or w.status.get("phase") == phase), check=check_canary)
    return world.history[-1]


def test_steps_move_traffic_and_replicas_and_the_manual_pause_waits_for_approval():
    world = bootstrapped(4, canary_extra={"headerRoute": {"name": "x-canary", "value": "true"}})
    world.spec["activeRevision"] = "v2"
    started = world.step()
    check_canary(world, started)
    assert started.status["canary"] == {"step": 0, "weight": 0,
                                        "stepStartTime": started.status["rolloutStartTime"]}
    assert progressing(started).reason == "CanaryStep"
    # setWeight 10 at N = 4: one canary replica beside all four current ones, 10% routed.
    step = until_step(world, 1)
    assert len(world.replicas("v2")) == 1 and len(world.replicas("v1")) == 4
    assert main_weights(step) == {"v1": 36, "v2": 4}
    assert step.status["canary"]["weight"] == 10
    assert progressing(step).message == (
        "step 1/4 pause 600s: 10% routed, 1 of 1 canary replicas serving")
    # The timed pause holds for its whole duration, asking to be called back in time.
    start = datetime.fromisoformat(step.status["canary"]["stepStartTime"])
    step = until_step(world, 2)
    assert step.now - start >= timedelta(seconds=600)
    # setWeight 50: two and two, half the traffic, then the manual pause waits.
    step = until_step(world, 3, phase="AwaitingPromotion")
    assert main_weights(step) == {"v1": 2, "v2": 2}
    assert sorted(world.replicas("v2")) == ["replica-v2-0", "replica-v2-1"]
    assert progressing(step).reason == "AwaitingPromotion"
    for _ in range(20):
        waiting = world.step()
        check_canary(world, waiting)
        assert waiting.status["phase"] == "AwaitingPromotion"
        assert waiting.status["canary"]["step"] == 3
    world.spec["promote"] = "v2"
    world.run_until(lambda w: stable_on(w, "v2", 4), check=check_canary)
    assert "canary" not in world.status
    assert len(rules(world.history[-1])) == 1, "the header rule goes with the rollout"


@pytest.mark.parametrize("abort_at", [0, 1, 2, 3])
def test_an_abort_at_any_step_sends_all_traffic_back_to_the_current_revision(abort_at):
    world = bootstrapped(4)
    world.spec["activeRevision"] = "v2"
    until_step(world, abort_at)
    world.spec["activeRevision"] = "v1"
    aborted = world.step()
    check_canary(world, aborted)
    assert progressing(aborted).reason == "RolloutAborted"
    assert "canary" not in aborted.status
    world.run_until(lambda w: stable_on(w, "v1", 4), check=check_canary)
    assert main_weights(world.history[-1]) == {"v1": 4}


def test_preemption_retires_the_canary_and_starts_the_new_revision_at_step_zero():
    world = bootstrapped(4)
    world.spec["activeRevision"] = "v2"
    until_step(world, 2)
    world.spec["activeRevision"] = "v3"
    preempted = world.step()
    check_canary(world, preempted)
    assert preempted.status["deployingRevision"] == "v3"
    assert preempted.status["canary"]["step"] == 0
    world.spec["promote"] = "v3"
    world.run_until(lambda w: stable_on(w, "v3", 4), check=check_canary)


def test_a_canary_that_never_becomes_ready_rolls_back_at_the_deadline():
    world = bootstrapped(3, progressDeadlineSeconds=300)
    world.fate_for = lambda rev, i: Fate(never_ready=True) if rev == "v2" else Fate()
    world.spec["activeRevision"] = "v2"
    world.run_until(lambda w: w.status.get("phase") == "Failed", check=check_canary)
    step = world.history[-1]
    assert progressing(step).reason == "ProgressDeadlineExceeded"
    assert step.status["failedRevision"] == "v2"
    world.run_until(lambda w: stable_on(w, "v1", 3) or (
        w.status.get("phase") == "Failed" and w.replicas() == w.replicas("v1")),
        check=check_canary)


def test_the_deadline_does_not_run_during_a_pause():
    world = bootstrapped(2, steps=[{"setWeight": 50}, {"pause": {"durationSeconds": 900}}],
                        progressDeadlineSeconds=300)
    world.spec["activeRevision"] = "v2"
    world.run_until(lambda w: stable_on(w, "v2", 2), check=check_canary)
    assert not any("rolled back" in r.message for s in world.history
                   for r in s.response.results)


def test_a_crashing_canary_is_rolled_back_as_a_failed_revision():
    world = bootstrapped(3)
    world.fate_for = lambda rev, i: (Fate(warmup=20, start_failure=True) if rev == "v2"
                                     else Fate())
    world.spec["activeRevision"] = "v2"
    world.run_until(lambda w: w.status.get("phase") == "Failed", check=check_canary)
    assert progressing(world.history[-1]).reason == "RevisionFailed"
    world.run_until(lambda w: w.replicas() == w.replicas("v1") and len(w.replicas()) == 3,
                    check=check_canary)


def test_editing_the_steps_mid_rollout_keeps_the_index_and_past_the_end_promotes():
    world = bootstrapped(4)
    world.spec["activeRevision"] = "v2"
    until_step(world, 3, phase="AwaitingPromotion")
    world.spec["strategy"]["canary"]["steps"] = [{"setWeight": 25}, {"setWeight": 75}]
    step = world.step()
    check_canary(world, step)
    assert step.status["canary"]["step"] == 2  # clamped: past the end is promotion
    assert progressing(step).message.startswith("promoting 'v2'")
    world.run_until(lambda w: stable_on(w, "v2", 4), check=check_canary)


def test_scaling_mid_canary_recomputes_the_targets():
    world = bootstrapped(4)
    world.spec["activeRevision"] = "v2"
    until_step(world, 3, phase="AwaitingPromotion")
    world.spec["replicas"] = 10
    world.run_until(lambda w: len([k for k in w.replicas("v2")]) == 5
                    and len(w.replicas("v1")) == 5
                    and main_weights(w.history[-1]) == {"v1": 5, "v2": 5}, check=check_canary)
    world.spec["promote"] = "v2"
    world.run_until(lambda w: stable_on(w, "v2", 10), check=check_canary)


def test_status_lost_mid_canary_deletes_nothing_and_restarts_the_steps():
    world = bootstrapped(4)
    world.spec["activeRevision"] = "v2"
    until_step(world, 1)  # 10%: v1 has four available replicas, the canary one
    before = set(world.replicas())
    world.status = {}
    step = world.step()
    check_canary(world, step)
    assert before <= {k for k in step.desired if naming.parse_replica_key(k)}
    assert step.status["currentRevision"] == "v1"
    assert step.status["canary"]["step"] == 0
    world.spec["promote"] = "v2"
    world.run_until(lambda w: stable_on(w, "v2", 4), check=check_canary)


def test_status_lost_at_an_even_split_infers_the_later_listed_revision():
    world = bootstrapped(4)
    world.spec["activeRevision"] = "v2"
    until_step(world, 3, phase="AwaitingPromotion")  # 2 and 2, equal weights
    before = set(world.replicas())
    world.status = {}
    step = world.step()
    check_canary(world, step)
    assert before <= {k for k in step.desired if naming.parse_replica_key(k)}
    assert step.status["currentRevision"] == "v2"
    world.run_until(lambda w: stable_on(w, "v2", 4), check=check_canary)


def test_a_first_deploy_has_no_steps():
    world = World(spec=deployment(3, ("v1",), strategy=canary()))
    first = world.step()
    assert len(world.replicas("v1")) == 3
    assert "canary" not in first.status
    world.run_until(lambda w: stable_on(w, "v1", 3), check=check_canary)


def test_zero_replicas_runs_through_the_steps_to_nothing():
    world = bootstrapped(0, steps=[{"setWeight": 50}, {"pause": {"durationSeconds": 30}}])
    world.spec["activeRevision"] = "v2"
    world.run_until(lambda w: stable_on(w, "v2", 0), limit=20, check=check_canary)


def test_route_timeouts_are_copied_to_every_rule():
    world = bootstrapped(2, canary_extra={"headerRoute": {"name": "x-canary", "value": "1"}})
    world.spec["route"]["timeouts"] = {"request": "0s", "backendRequest": "300s"}
    world.spec["activeRevision"] = "v2"
    step = until_step(world, 1)
    assert len(rules(step)) == 2
    assert all(rule["timeouts"] == {"request": "0s", "backendRequest": "300s"}
               for rule in rules(step))


def test_a_canary_on_a_cluster_with_no_spare_gpu_completes_with_replace():
    spec = deployment(3, ("v1", "v2"), active="v1", progressDeadlineSeconds=900, strategy=canary(
        [{"setWeight": 34}, {"pause": {"durationSeconds": 60}}, {"setWeight": 67}],
        onCapacityShortage="Replace", capacityWaitSeconds=60))
    world = World(spec=spec, gpus=3)
    world.run_until(lambda w: stable_on(w, "v1", 3), check=check_canary)
    world.spec["activeRevision"] = "v2"
    start = len(world.history)
    world.run_until(lambda w: stable_on(w, "v2", 3), check=check_canary, limit=400)
    rollout = world.history[start:]
    assert any("trading one replica of headroom" in progressing(s).message for s in rollout)
    served = [len(invariants.routed_replicas(s)) for s in rollout]
    assert min(served) >= 2, "never below N - unav - 1"
    assert not any("rolled back" in r.message for s in rollout for r in s.response.results)


def test_a_canary_that_waits_for_a_gpu_rolls_back_at_the_deadline_saying_why():
    spec = deployment(3, ("v1", "v2"), active="v1", progressDeadlineSeconds=300,
                      strategy=canary([{"setWeight": 34}, {"pause": {}}]))
    world = World(spec=spec, gpus=3)
    world.run_until(lambda w: stable_on(w, "v1", 3), check=check_canary)
    world.spec["activeRevision"] = "v2"
    waiting = world.step()
    waiting = world.step()
    assert "unschedulable" in progressing(waiting).message
    world.run_until(lambda w: w.status.get("phase") == "Failed", check=check_canary)
    assert "InsufficientCapacity" in progressing(world.history[-1]).message


def test_scaling_in_mid_canary_retires_the_current_replica_that_does_not_serve_first():
    # docs/rollout.md#rollingupdate: old replicas that do not serve go first and are not
    # limited by the availability rule. Mid-canary at 10% with N = 4 (c = 1, s = 4), the
    # current revision's replicas 0-2 serve on stale probes (Degraded) and replica 3 is
    # Healthy again after a readiness flap, but still inside minReadySeconds (not
    # Serving); then N goes 4 -> 3, so s = 3.
    world = bootstrapped(4, [{"setWeight": 10}, {"pause": {}}], minReadySeconds=60)
    world.spec["activeRevision"] = "v2"
    until_step(world, 1, phase="AwaitingPromotion")
    for index in range(3):  # probes stopped 110 s ago: Degraded within 10 s
        lived = world.lives[naming.replica_key("v1", index)]
        assert lived.ready_at is not None
        since_ready = (world.now - lived.ready_at).total_seconds()
        lived.fate = Fate(**{**lived.fate.__dict__, "stale_after": since_ready - 110})
    flapping = world.lives[naming.replica_key("v1", 3)]
    assert flapping.ready_at is not None
    flapping.fate = Fate(**{**flapping.fate.__dict__, "flap_for": 20.0,
                            "flap_after": (world.now - flapping.ready_at).total_seconds()})
    for _ in range(4):  # 40 s: replica 3 back for 20 s, the others Degraded
        check_canary(world, world.step())
    for index in range(3):  # the scene as described: stale probes, still serving
        body = world.composed[naming.replica_key("v1", index)]
        probed = datetime.fromisoformat(body["status"]["health"]["lastProbeTime"])
        assert world.now - probed > timedelta(seconds=120)
    ready = next(c for c in world.composed[naming.replica_key("v1", 3)]["status"]["conditions"]
                 if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert world.now - datetime.fromisoformat(ready["lastTransitionTime"]) < timedelta(seconds=60)
    world.spec["replicas"] = 3
    step = world.step()
    check_canary(world, step)
    current = sorted(k for k in step.desired if k.startswith("replica-v1-"))
    assert current == ["replica-v1-0", "replica-v1-1", "replica-v1-2"], (
        "the current revision kept a replica that does not serve beyond s(w) = 3")
    for key in current:
        assert naming.ANNOTATION_DRAINING_SINCE not in step.desired[key]["metadata"].get(
            "annotations", {}), f"{key} serves and was drained instead"
