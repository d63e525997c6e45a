"""Whole BlueGreen rollouts replayed call by call.

The rules: docs/rollout.md#bluegreen, #rollback, #draining and #routes.
"""

from __future__ import annotations

from datetime import datetime

from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function import naming
from tests import invariants
from tests.fixtures import blue_green, deployment, rolling
from tests.world import Fate, World


def stable_on(world: World, revision: str, n: int) -> bool:
    return (world.status.get("phase") == "Stable"
            and world.status.get("currentRevision") == revision
            and world.replicas() == world.replicas(revision)
            and len(world.replicas(revision)) == n)


def revisions_routed(step, key=naming.ROUTE_KEY) -> set[str]:
    return {naming.parse_replica_key(k)[0] for k in invariants.routed_replicas(step, key)}


def bootstrapped(spec: dict, **kw) -> World:
    world = World(spec=spec, **kw)
    world.run_until(lambda w: stable_on(w, "v1", spec["replicas"]), check=invariants.check)
    return world


def check_blue_green(world: World, step) -> None:
    """Blue keeps N serving and alone takes main traffic until promotion."""
    invariants.check(world, step)
    if step.fatal:
        return
    n = world.spec["replicas"]
    current = step.status.get("currentRevision")
    routed = revisions_routed(step)
    assert routed <= {current}, f"main route carries {routed}, current is {current}"
    if step.status.get("deployingRevision"):
        assert len(invariants.routed_replicas(step)) >= n, "blue lost capacity before promotion"


def test_manual_promotion_waits_for_spec_promote():
    world = bootstrapped(deployment(3, ("v1", "v2"), active="v1", strategy=blue_green(),
                                    preview=True))
    world.spec["activeRevision"] = "v2"
    first = world.step()
    check_blue_green(world, first)
    assert len([k for k in first.desired if k.startswith("replica-v2")]) == 3
    world.run_until(lambda w: w.status.get("phase") == "AwaitingPromotion",
                    check=check_blue_green)
    step = world.history[-1]
    progressing = next(c for c in step.response.conditions if c.type == "Progressing")
    assert progressing.reason == "AwaitingPromotion"
    assert revisions_routed(step, naming.PREVIEW_ROUTE_KEY) == {"v2"}
    assert step.desired[naming.PREVIEW_ROUTE_KEY]["metadata"]["name"] == "qwen-preview"
    # It keeps waiting: no timer is needed without autoPromote.
    for _ in range(30):
        step = world.step()
        check_blue_green(world, step)
        assert step.status["phase"] == "AwaitingPromotion"
    world.spec["promote"] = "v2"
    promoted = world.step()
    invariants.check(world, promoted)
    assert promoted.status["currentRevision"] == "v2"
    assert "deployingRevision" not in promoted.status
    assert revisions_routed(promoted) == {"v2"}
    assert naming.PREVIEW_ROUTE_KEY not in promoted.desired
    assert any("Promoted" in r.message for r in promoted.response.results)
    # Blue drains for scaleDownDelaySeconds (30), then is removed.
    blue = [k for k in promoted.desired if k.startswith("replica-v1")]
    assert len(blue) == 3
    for key in blue:
        annotations = promoted.desired[key]["metadata"]["annotations"]
        assert annotations[naming.ANNOTATION_DRAIN_SECONDS] == "30"
    world.run_until(lambda w: stable_on(w, "v2", 3), check=invariants.check)
    removed = [(when, key) for when, key, _ in world.deleted if key.startswith("replica-v1")]
    assert all((when - promoted.now).total_seconds() >= 30 for when, _ in removed)


def test_promote_naming_another_revision_is_ignored_and_reported_once():
    world = bootstrapped(deployment(2, ("v1", "v2"), active="v1", strategy=blue_green()))
    world.spec["activeRevision"] = "v2"
    world.spec["promote"] = "v9"
    world.run_until(lambda w: w.status.get("phase") == "AwaitingPromotion",
                    check=check_blue_green)
    for _ in range(10):
        check_blue_green(world, world.step())
    reports = [r for s in world.history for r in s.response.results if "'v9'" in r.message]
    assert len(reports) == 1 and reports[0].severity == fnv1.SEVERITY_WARNING
    assert world.status["currentRevision"] == "v1"


def test_auto_promotion_soaks_for_the_delay_and_a_flap_restarts_it():
    flapped = {"done": False}

    def fate(rev: str, index: int) -> Fate:
        if rev == "v2" and index == 0 and not flapped["done"]:
            flapped["done"] = True
            return Fate(warmup=30, flap_after=60, flap_for=30)  # Ready, then briefly not
        return Fate(warmup=30)

    world = bootstrapped(deployment(2, ("v1", "v2"), active="v1",
                                    strategy=blue_green(auto=True, delay=120)),
                         fate_for=fate)
    world.spec["activeRevision"] = "v2"
    world.run_until(lambda w: w.status.get("currentRevision") == "v2", check=check_blue_green)
    promoted = world.history[-1]
    # The replacement of the flapping replica became Ready last; the soak counts from then.
    replicas = {k: v for k, v in promoted.observed.items() if k.startswith("replica-v2")}
    last_ready = max(
        datetime.fromisoformat(c["lastTransitionTime"])
        for body in replicas.values() for c in body["status"]["conditions"]
        if c["type"] == "Ready" and c["status"] == "True")
    waited = (promoted.now - last_ready).total_seconds()
    assert 120 <= waited <= 130
    awaiting = [s for s in world.history if s.status.get("phase") == "AwaitingPromotion"]
    assert awaiting and all(s.response.meta.ttl.seconds <= 120 for s in awaiting)


def test_green_never_ready_rolls_back_with_blue_serving_throughout():
    world = bootstrapped(deployment(3, ("v1", "v2"), active="v1", strategy=blue_green(),
                                    progressDeadlineSeconds=400),
                         fate_for=lambda rev, i: Fate(never_ready=rev == "v2"))
    world.spec["activeRevision"] = "v2"
    world.run_until(lambda w: w.status.get("failedRevision") == "v2", check=check_blue_green)
    last = world.history[-1]
    assert last.status["phase"] == "Failed"
    assert revisions_routed(last) == {"v1"}
    world.run_until(lambda w: not w.replicas("v2"), check=check_blue_green)
    assert len(world.replicas("v1")) == 3


def test_promotion_then_immediate_revert_reclaims_draining_blue():
    world = bootstrapped(deployment(3, ("v1", "v2"), active="v1",
                                    strategy=blue_green(scale_down=300)))
    world.spec["activeRevision"] = "v2"
    world.run_until(lambda w: w.status.get("phase") == "AwaitingPromotion",
                    check=check_blue_green)
    world.spec["promote"] = "v2"
    promoted = world.step()
    assert promoted.status["currentRevision"] == "v2"
    blue = sorted(k for k in promoted.desired if k.startswith("replica-v1"))
    # Revert at once: v1 is deployed again as green, from blue's draining replicas.
    world.spec["activeRevision"] = "v1"
    world.spec["promote"] = "v1"
    revert = world.step()
    check_blue_green(world, revert)
    assert revert.status["deployingRevision"] == "v1"
    assert sorted(k for k in revert.desired if k.startswith("replica-v1")) == blue
    for key in blue:
        assert naming.ANNOTATION_DRAINING_SINCE not in revert.desired[key]["metadata"][
            "annotations"]
    world.run_until(lambda w: stable_on(w, "v1", 3), check=check_blue_green)
    created = [k for s in world.history[-50:] for k in s.desired
               if k.startswith("replica-v1") and k not in blue]
    assert not created


def test_switching_to_rolling_update_mid_rollout_finishes_with_the_strategy_it_started():
    world = bootstrapped(deployment(3, ("v1", "v2"), active="v1", strategy=blue_green()))
    world.spec["activeRevision"] = "v2"
    world.run_until(lambda w: len(w.replicas("v2")) == 3, check=check_blue_green)
    world.spec["strategy"] = rolling()
    step = world.step()
    check_blue_green(world, step)
    assert step.status["rolloutStrategy"] == "BlueGreen"
    world.spec["promote"] = "v2"
    world.run_until(lambda w: stable_on(w, "v2", 3), check=invariants.check)
    # The next rollout uses the new strategy.
    world.spec["revisions"].append({**world.spec["revisions"][0], "name": "v3"})
    world.spec["activeRevision"] = "v3"
    step = world.step()
    assert step.status["rolloutStrategy"] == "RollingUpdate"
    assert len([k for k in step.desired if k.startswith("replica-v3")]) == 1


def test_rolling_update_preview_route_carries_the_deploying_revision():
    world = bootstrapped(deployment(2, ("v1", "v2"), active="v1", preview=True))
    world.spec["activeRevision"] = "v2"
    world.run_until(lambda w: bool(revisions_routed(w.history[-1], naming.PREVIEW_ROUTE_KEY)),
                    check=invariants.check)
    step = world.history[-1]
    assert revisions_routed(step, naming.PREVIEW_ROUTE_KEY) == {"v2"}
    assert "v1" in revisions_routed(step)


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
