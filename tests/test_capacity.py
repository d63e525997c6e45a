"""Rollouts on a cluster with no spare accelerator, replayed call by call.

The world's accelerator pool (World.gpus) hands a GPU to a waiting replica,
oldest first, whenever one is free; a replica holds it until it is deleted, and
publishes Scheduled=False (InsufficientCapacity) until it has one
(docs/rollout.md#capacity-shortage). After each call the invariants of
tests/invariants.py are checked, among them: no replica waiting for an
accelerator is replaced, and the replicas holding one never exceed N + maxSurge.
"""

from __future__ import annotations

import itertools

from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function import naming
from tests import invariants
from tests.fixtures import blue_green, deployment, rolling
from tests.test_rolling_replay import stable_on
from tests.world import Fate, Step, World


def on_tight_pool(n: int, gpus: int, strategy: dict, **extra) -> World:
    """v1 stable at N on a pool of `gpus` accelerators; activeRevision still v1."""
    world = World(spec=deployment(n, ("v1", "v2"), active="v1", strategy=strategy, **extra),
                  gpus=gpus, fate_for=lambda revision, index: Fate(warmup=60))
    world.run_until(lambda w: stable_on(w, "v1", n), check=invariants.check)
    assert world.gpus_held() == n
    return world


def replace(surge: int | str = 1, unavailable: int | str = 0, wait: int = 60) -> dict:
    strategy = rolling(surge, unavailable)
    strategy["rollingUpdate"].update(onCapacityShortage="Replace", capacityWaitSeconds=wait)
    return strategy


def progressing(step: Step) -> fnv1.Condition:
    return next(c for c in step.response.conditions if c.type == "Progressing")


def serving(step: Step) -> int:
    """Replicas the main route carries after this call."""
    return len(invariants.routed_replicas(step))


def new_serving(step: Step) -> int:
    return sum(1 for key in invariants.routed_replicas(step) if key.startswith("replica-v2"))


def draining(step: Step) -> list[str]:
    return sorted(k for k, body in step.desired.items() if naming.parse_replica_key(k)
                  and naming.ANNOTATION_DRAINING_SINCE in body["metadata"].get("annotations", {}))


def ttl_seconds(step: Step) -> float:
    return step.response.meta.ttl.ToTimedelta().total_seconds()


def test_wait_names_the_shortage_and_rolls_back_at_the_deadline():
    world = on_tight_pool(3, 3, rolling(1, 0), progressDeadlineSeconds=600)
    world.spec["activeRevision"] = "v2"
    start = world.now
    started = world.step()
    invariants.check(world, started)
    assert [k for k in started.desired if k.startswith("replica-v2")] == ["replica-v2-0"]

    waiting = world.step()
    invariants.check(world, waiting)
    message = progressing(waiting).message
    assert "1 replica unschedulable (InsufficientCapacity: qwen-v2-0)" in message
    assert "waiting for capacity (onCapacityShortage Wait)" in message
    assert "rolls back at 2026-11-22T" in message
    # qwen-v2-0 holds no accelerator, so it is not in the total: the next one is created
    # (and counts until it is seen waiting too).
    assert "replica-v2-1" in waiting.desired
    assert waiting.status["replicas"]["unschedulable"] == 1
    assert waiting.status["replicas"]["total"] == 4

    world.run_until(lambda w: w.status.get("failedRevision") == "v2", check=invariants.check)
    rolled_back = world.history[-1]
    assert 600 <= (rolled_back.now - start).total_seconds() <= 620
    condition = progressing(rolled_back)
    assert (condition.status, condition.reason) == (
        fnv1.STATUS_CONDITION_FALSE, "ProgressDeadlineExceeded")
    assert "unschedulable (InsufficientCapacity: qwen-v2-0, qwen-v2-1, qwen-v2-2)" in (
        condition.message)
    warnings = [r.message for r in rolled_back.response.results
                if r.severity == fnv1.SEVERITY_WARNING]
    assert len(warnings) == 1
    assert "made no progress" in warnings[0] and "InsufficientCapacity" in warnings[0]
    assert "rolled back to 'v1'" in warnings[0]
    # Nothing was traded: v1 served in full the whole time, and v2 is gone at once.
    assert all(serving(step) == 3 for step in world.history if step.now >= start)
    assert not [k for k in rolled_back.desired if k.startswith("replica-v2")]
    invariants.check(world, world.step())
    assert world.status["phase"] == "Failed" and world.status["currentRevision"] == "v1"
    assert world.replicas() == world.replicas("v1") and len(world.replicas()) == 3


def test_wait_goes_on_as_usual_once_capacity_appears():
    world = on_tight_pool(3, 3, rolling(1, 0))
    world.spec["activeRevision"] = "v2"
    for _ in range(12):
        invariants.check(world, world.step())
    assert world.unschedulable() == ["replica-v2-0", "replica-v2-1", "replica-v2-2"]
    world.gpus = 4  # an accelerator is freed elsewhere in the cluster
    world.run_until(lambda w: stable_on(w, "v2", 3), check=invariants.check)
    # The replicas that waited are the ones that serve: none was replaced.
    assert world.replicas("v2") == ["replica-v2-0", "replica-v2-1", "replica-v2-2"]
    assert all(serving(step) >= 3 for step in world.history[-30:])


def test_replace_completes_trading_one_replica_of_headroom_at_a_time():
    world = on_tight_pool(3, 3, replace(wait=60), progressDeadlineSeconds=900)
    world.spec["activeRevision"] = "v2"
    start = len(world.history)
    world.run_until(lambda w: stable_on(w, "v2", 3), check=invariants.check, limit=400)
    rollout = world.history[start:]
    # Serving never below N - unav - 1 = 2, and it did go there: headroom was traded.
    assert min(serving(step) for step in rollout) == 2
    # At most one replica drains at a time (each drain is a trade: the pool has no spare
    # accelerator), and each waits for the accelerator freed before to serve.
    assert max(len(draining(step)) for step in rollout) == 1
    traded = [step for step in rollout if "to free its accelerator" in progressing(step).message]
    assert len(traded) == 3
    assert "qwen-v1-" in progressing(traded[0]).message
    assert "trading one replica of headroom" in progressing(traded[0]).message
    first_wait = (traded[0].now - rollout[0].now).total_seconds()
    assert 60 <= first_wait <= 80, "Replace acts after capacityWaitSeconds, not before"
    for before, after in itertools.pairwise(traded):
        assert new_serving(after) > new_serving(before), "the next trade waits for v2 to grow"
    # The replicas that waited are the ones that took the freed accelerators.
    assert world.replicas("v2") == ["replica-v2-0", "replica-v2-1", "replica-v2-2"]
    assert not any("rolled back" in r.message for s in rollout for r in s.response.results)


def test_replace_waits_capacity_wait_seconds_and_asks_to_be_called_then():
    world = on_tight_pool(3, 3, replace(wait=120))
    world.spec["activeRevision"] = "v2"
    world.step(30)
    step = world.step(30)  # qwen-v2-0 has waited 30 s
    assert "onCapacityShortage Replace frees an accelerator from" in progressing(step).message
    assert ttl_seconds(step) <= 90
    assert not draining(step)


def test_an_unschedulable_replica_past_its_warm_up_budget_is_kept_not_replaced():
    spec = deployment(2, ("v1", "v2"), active="v1", strategy=rolling(1, 0),
                      progressDeadlineSeconds=3600)
    for revision in spec["revisions"]:
        revision["healthCheck"]["initialDelaySeconds"] = 120
    world = World(spec=spec, gpus=2, fate_for=lambda revision, index: Fate(warmup=100))
    world.run_until(lambda w: stable_on(w, "v1", 2), check=invariants.check)
    world.spec["activeRevision"] = "v2"
    for _ in range(60):  # 600 s: five warm-up budgets
        invariants.check(world, world.step())
    assert world.unschedulable() == ["replica-v2-0", "replica-v2-1"]
    assert world.replicas("v2") == ["replica-v2-0", "replica-v2-1"]
    assert world.status["phase"] == "Progressing"
    # Once scheduled, its whole budget runs from then: 100 s of warm-up is within 120.
    world.gpus = 3
    world.run_until(lambda w: stable_on(w, "v2", 2), check=invariants.check)
    assert not any(key.startswith("replica-v2") for _, key, _ in world.deleted)


def test_blue_green_waits_for_capacity_and_says_so():
    world = on_tight_pool(2, 3, blue_green(), progressDeadlineSeconds=300)
    world.spec["activeRevision"] = "v2"
    world.step()
    step = world.step()
    invariants.check(world, step)
    message = progressing(step).message
    assert "1 replica unschedulable (InsufficientCapacity: qwen-v2-1)" in message
    assert "waiting for capacity (BlueGreen trades no serving replica" in message
    world.run_until(lambda w: w.status.get("failedRevision") == "v2", check=invariants.check)
    assert all(serving(step) == 2 for step in world.history[-30:])
