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

import os
import subprocess
import sys
from pathlib import Path

from function import naming
from tests import invariants
from tests.fixtures import blue_green, deployment, rolling
from tests.sim import FAMILIES, STRATEGIES, run_campaign, stable_on
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
                                                  "clock-jump", "bad-input"))
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
