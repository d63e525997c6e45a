"""The closed-loop campaign in CI, and the reproductions of what it found.

`test_every_strategy_and_family` runs one bounded campaign (tests/sim.py): every
strategy crossed with every scenario family once, against the function behind a
real gRPC server on a simulated clock, with seeded faults, plus the wall-clock
scenarios against the `function` console script. Every call is checked against
the invariants of tests/invariants.py and tests/sim_invariants.py. The seed is
fixed so CI is reproducible; scripts/campaign.py runs other seeds and --long.

The tests after it replay, in a few calls each, the violations the campaign found,
so each stays visible on its own.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

from function import naming
from tests import fixtures, invariants
from tests.fixtures import blue_green, deployment, rolling
from tests.sim import FAMILIES, STRATEGIES, canary, run_campaign, short_of_gpus, stable_on
from tests.sim_invariants import deterministic_bytes
from tests.sim_server import TwinServers
from tests.world import Fate, World

ROOT = Path(__file__).resolve().parent.parent
CI_SEED = 20261122


def test_every_strategy_and_family():
    summary = run_campaign(CI_SEED, len(STRATEGIES) * len(FAMILIES),
                           jobs=min(2, os.cpu_count() or 1), wallclock=True)
    print(summary.render())
    assert summary.scenarios == len(STRATEGIES) * len(FAMILIES)
    assert summary.wallclock_scenarios == 3
    assert sum(summary.checks.values()) > 5 * summary.calls
    assert all(summary.faults[kind] for kind in ("warmup", "start-failure", "never-ready",
                                                  "crash", "stale-health", "backend-late",
                                                  "route-late", "lost-status", "late-apply",
                                                  "clock-jump", "bad-input", "broken-revision",
                                                  "zero-replicas", "first-deploy-preempt"))
    assert not summary.violations, summary.render()


def test_a_campaign_is_reproducible_and_a_scenario_reruns_alone():
    first = run_campaign(7, 5, wallclock=False)
    second = run_campaign(7, 5, wallclock=False)
    alone = run_campaign(7, 5, wallclock=False, only=[3])
    assert (first.calls, first.faults, first.checks, first.outcomes) == (
        second.calls, second.faults, second.checks, second.outcomes)
    assert alone.scenarios == 1 and 0 < alone.calls < first.calls


def test_the_campaign_script(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "campaign.py"), "--seed", "3", "--scenarios",
         "1", "--strategy", "rolling-25%/0", "--family", "plain", "--no-wallclock",
         "--jobs", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    for line in ("campaign seed 3: 1 simulated scenarios", "faults injected:",
                 "invariant checks:", "violations: 0"):
        assert line in done.stdout, done.stdout


# --- what the campaign found ------------------------------------------------------------------


settled_on = stable_on  # the campaign's own notion of a settled rollout


def main_route_revisions(step) -> set[str]:
    return {(naming.parse_replica_key(k) or ("",))[0] for k in invariants.routed_replicas(step)}


def test_lost_status_while_blue_green_awaits_promotion_does_not_promote_green():
    """Campaign: --seed 1 --only 29 (bluegreen-manual lost-status).

    Blue and green both have N available replicas while green waits for spec.promote.
    The status is lost; inferring the current revision from the most available
    replicas (ties: the later listed) picks green, which then takes the main route and
    blue drains, without spec.promote (docs/rollout.md#bluegreen: green is never in the main route
    before promotion; 3.2: never act on missing state)."""
    world = World(spec=deployment(2, ("v1", "v2"), active="v1", strategy=blue_green()))
    world.run_until(settled_on("v1", 2), check=invariants.check)
    world.spec["activeRevision"] = "v2"
    world.run_until(lambda w: w.status.get("phase") == "AwaitingPromotion",
                    check=invariants.check)
    world.status = {}
    step = world.step()
    assert main_route_revisions(step) == {"v1"}, (
        f"green took the main route without spec.promote: {step.status}")


def test_blue_green_pre_emption_keeps_at_most_two_n_replicas():
    """Campaign: --seed 1 --only 60 (bluegreen-manual preempt).

    While green (v2) is deploying, activeRevision moves to v3: v3 is created at full
    size at once while v2's available replicas still drain, so blue + draining green +
    new green exceed the 2N that tests/invariants.py check 3 allows under BlueGreen."""
    world = World(spec=deployment(3, ("v1", "v2", "v3"), active="v1", strategy=blue_green()))
    world.run_until(settled_on("v1", 3), check=invariants.check)
    world.spec["activeRevision"] = "v2"
    world.run_until(lambda w: w.status.get("phase") == "AwaitingPromotion",
                    check=invariants.check)
    world.spec["activeRevision"] = "v3"
    step = world.step()
    replicas = [k for k in step.desired if naming.parse_replica_key(k)]
    assert len(replicas) <= 2 * 3, f"{len(replicas)} replicas desired: {sorted(replicas)}"


def test_a_revision_that_serves_fully_is_not_rolled_back_after_a_reconcile_gap():
    """Campaign: --seed 1 --family clock-jump --only 27 (rolling-1/1 clock-jump).

    v2's last replica becomes Available (progress is recorded) while its endpoint has
    not yet published a backendName. No call comes for longer than
    progressDeadlineSeconds (controller restart, clock jump); meanwhile the backend
    is published. The next call sees N Serving v2 replicas and nothing old routed, so
    the strategy says done, but the deadline is checked first and v2 is rolled back
    (docs/rollout.md#rollback). A Kubernetes Deployment checks completion first."""
    def fate(revision: str, index: int) -> Fate:
        return Fate(warmup=30, backend_lag=40 if revision == "v2" else 0)

    world = World(spec=deployment(1, ("v1", "v2"), active="v1", strategy=rolling(1, 0),
                                  progressDeadlineSeconds=600, drainSeconds=10),
                  fate_for=fate)
    world.run_until(settled_on("v1", 1), check=invariants.check)
    world.spec["activeRevision"] = "v2"
    world.run_until(lambda w: any(row["name"] == "v2" and row["available"] == 1
                                  for row in w.status.get("revisions", [])))
    world.step(dt=3600)  # the gap
    step = world.step()
    assert step.status.get("failedRevision") != "v2", [r.message for r in step.response.results]
    world.run_until(settled_on("v2", 1), check=invariants.check)


def twin_differences(mutation: str | None) -> tuple[int, int]:
    """Roll four replicas out behind twin servers (PYTHONHASHSEED 1 and 2), comparing
    every response; returns (calls, calls whose responses differed)."""
    env = {"SIM_SERVER_MUTATION": mutation} if mutation else {}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with TwinServers((1, 2)) as twins:
            differed = 0

            def call(req, now):
                nonlocal differed
                first, second = twins(req, now)
                differed += deterministic_bytes(first) != deterministic_bytes(second)
                return first

            world = World(spec=deployment(4, ("v1",)), fate_for=lambda r, i: Fate(warmup=5),
                          call=call)
            calls = world.run_until(settled_on("v1", 4))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return calls, differed


def test_twin_servers_catch_a_response_that_follows_string_hashing():
    """The campaign's determinism check sends each request to two servers started with
    different PYTHONHASHSEED values. A function that lists backends in the order of a
    set is caught; the function as it is answers both alike."""
    calls, differed = twin_differences("set-ordered-backends")
    assert differed > 0, f"{calls} calls, none told the twins apart"
    calls, differed = twin_differences(None)
    assert differed == 0, f"{differed} of {calls} responses differed between hash seeds"


def test_a_failing_first_deploy_keeps_the_reason_it_was_reported_with():
    """Campaign: --seed 1 --only 24 (bluegreen-auto-soak first-deploy, broken).

    One revision whose replicas never become Ready, progressDeadlineSeconds 600:
    at 600 s every replica failed (Progressing False/RevisionFailed, one Warning).
    The Progressing reason flipped to ProgressDeadlineExceeded while the replacement
    warmed up past the deadline and back at its failure, every cycle, while nothing
    changed in kind (docs/rollout.md#status-and-conditions; README: a failing first deployment is
    reported once and
    stays reported)."""
    world = World(spec=deployment(1, ("v1",), progressDeadlineSeconds=600),
                  fate_for=lambda revision, index: Fate(never_ready=True))
    reasons = []
    for _ in range(200):
        step = world.step(dt=10)
        if step.status.get("phase") == "Failed":
            reasons.append(next(c.reason for c in step.response.conditions
                                if c.type == "Progressing"))
    changes = sum(1 for a, b in itertools.pairwise(reasons) if a != b)
    assert changes == 0, f"the reason changed {changes} times: {sorted(set(reasons))}"


def test_a_canary_at_one_replica_without_surge_completes_or_rolls_back():
    """Campaign: --seed 1 --strategy canary-timed --strategy canary-manual --strategy
    canary-steps --only 15 (canary-steps preempt).

    N = 1, maxSurge 0, maxUnavailable 50% (so 1): to create the canary the current
    revision's only replica drains. The canary then serves alone and carries 100%, so
    the step 'setWeight: 10' (done when the route carries 10) was never done, and the
    progress deadline never rolled it back: Progressing forever (docs/rollout.md#rollback,
    #canary)."""
    strategy = canary([{"setWeight": 10}, {"setWeight": 100}], surge=0, unavailable="50%")
    world = World(spec=deployment(1, ("v1", "v2"), active="v1", strategy=strategy,
                                  progressDeadlineSeconds=600),
                  fate_for=lambda revision, index: Fate(warmup=30))
    world.run_until(settled_on("v1", 1), check=invariants.check)
    world.spec["activeRevision"] = "v2"
    world.run_until(lambda w: not w.status.get("deployingRevision"), limit=150,
                    check=invariants.check)


def test_scaling_in_keeps_the_replicas_that_serve():
    """Campaign: --seed 9 --only 151 (rolling-0/1 scale).

    Four replicas, maxSurge 0 / maxUnavailable 1, minReadySeconds 20: replica 3 has
    served since 30 s, replicas 0-2 became Ready at 30 s and are not Available before
    50 s. At 40 s replicas goes to 2: the removal priority (ties: the highest index)
    drains replica 3, the only one serving, and keeps 0 and 1; the main route is
    empty although N - maxUnavailable = 1 (docs/rollout.md#rollingupdate: availability first; a
    Kubernetes
    ReplicaSet removes the pods Ready for less time first)."""
    world = World(spec=deployment(4, ("v1",), strategy=rolling(0, 1), minReadySeconds=20),
                  fate_for=lambda revision, index: Fate(warmup=5 if index == 3 else 30))
    for _ in range(4):
        world.step(dt=10)
    world.spec["replicas"] = 2
    step = world.step(dt=10)
    invariants.check(world, step)
    annotations = step.desired["replica-v1-3"]["metadata"].get("annotations", {})
    assert "serving.rollout.dev/draining-since" not in annotations, "the serving replica stays"


def routed_count(step) -> int:
    return len(invariants.routed_replicas(step))


def test_a_canary_restarting_its_steps_keeps_the_availability_floor():
    """Campaign: canary-timed lost-status (--strategy canary-timed --family lost-status).

    N = 5, maxSurge 25%, maxUnavailable 0, steps [setWeight 20, pause 60, setWeight 40,
    pause 600]: at setWeight 40 the canary serves c(40) = 2 and the current revision
    s(40) = 3, 5 routed. The status is lost; v1 (3 available) is inferred as current and
    the steps start again at setWeight 20 (README), whose c(20) = 1. The same response
    drains a serving canary replica while v1's fourth replica is only being created:
    4 routed, below N - maxUnavailable = 5 (docs/rollout.md#rollingupdate, #canary: moving between
    targets follows
    the availability rule; tests/invariants.py check 2)."""
    strategy = canary([{"setWeight": 20}, {"pause": {"durationSeconds": 60}},
                       {"setWeight": 40}, {"pause": {"durationSeconds": 600}}])
    world = World(spec=deployment(5, ("v1", "v2"), active="v1", strategy=strategy),
                  fate_for=lambda revision, index: Fate(warmup=20))
    world.run_until(settled_on("v1", 5), check=invariants.check)
    world.spec["activeRevision"] = "v2"
    world.run_until(lambda w: (w.status.get("canary") or {}).get("step") == 3,
                    check=invariants.check)
    world.step()
    assert routed_count(world.history[-1]) == 5
    world.status = {}
    step = world.step()
    assert step.status.get("currentRevision") == "v1"
    assert routed_count(step) >= 5, (
        f"{routed_count(step)} routed: {sorted(invariants.routed_replicas(step))}")


def test_an_aborted_canary_on_a_full_pool_returns_its_accelerator():
    """Campaign: a canary on a tight pool under Replace, aborted
    (--strategy canary-timed-replace-tight --family abort).

    N = 2 on exactly 2 GPUs, Canary [setWeight 50, pause 600] with maxSurge 1,
    maxUnavailable 0, onCapacityShortage Replace, capacityWaitSeconds 20. The canary
    replica waits for a GPU; after 20 s a v1 replica is traded (drained) and the canary
    takes its GPU and serves. activeRevision goes back to v1 (abort): v1 wants its second
    replica back, which waits for a GPU, while the canary's replica, now an orphan,
    drains only as the availability rule allows: 1 + 1 serving = N - maxUnavailable, so
    it never does. The deployment says Stable on v1 while the orphan keeps its GPU and
    a share of the main route, for ever (docs/rollout.md#capacity-shortage: no deadlock under
    Replace;
    README: an orphan drains first)."""
    strategy = short_of_gpus(canary([{"setWeight": 50}, {"pause": {"durationSeconds": 600}}],
                                    surge=1, unavailable=0), "Replace", wait=20)
    world = World(spec=deployment(2, ("v1", "v2"), active="v1", strategy=strategy),
                  fate_for=lambda revision, index: Fate(warmup=20), gpus=2)
    world.run_until(settled_on("v1", 2), check=invariants.check)
    world.spec["activeRevision"] = "v2"
    world.run_until(lambda w: (w.status.get("canary") or {}).get("step") == 1,
                    check=invariants.check)
    world.spec["activeRevision"] = "v1"
    world.run_until(settled_on("v1", 2), limit=200, check=invariants.check)


def test_a_rollout_on_a_full_pool_that_loses_its_status_does_not_deadlock():
    """Campaign: --seed 20261122 --only 15 (rolling-1/0-replace-tight chaos).

    N = 3 on exactly 3 GPUs, RollingUpdate maxSurge 1, maxUnavailable 0,
    onCapacityShortage Replace. Mid-rollout v2 has two replicas serving and one waiting
    for a GPU, v1 one serving (the others were traded). The status is lost: v2, with
    the most available replicas, is inferred current and the deployment says Stable;
    v1's serving replica is old capacity the availability rule keeps (2 + 1 = N), and
    with nothing deploying nothing trades it, so v2's third replica waits for the GPU
    v1 holds, for ever (docs/rollout.md#capacity-shortage: no deadlock under Replace; README: old
    capacity
    drains as its replacement serves)."""
    strategy = short_of_gpus(fixtures.rolling(1, 0), "Replace", wait=20)
    world = World(spec=deployment(3, ("v1", "v2"), active="v1", strategy=strategy),
                  fate_for=lambda revision, index: Fate(warmup=20), gpus=3)
    world.run_until(settled_on("v1", 3), check=invariants.check)
    world.spec["activeRevision"] = "v2"

    def two_thirds(w: World) -> bool:
        rows = {row["name"]: row for row in w.status.get("revisions", [])}
        return (rows.get("v1", {}).get("available") == 1
                and rows.get("v2", {}).get("available") == 2 and w.unschedulable() != [])
    world.run_until(two_thirds, check=invariants.check)
    world.status = {}
    world.run_until(settled_on("v2", 3), limit=200, check=invariants.check)
