"""A seeded, reproducible campaign of closed-loop rollouts against the function over gRPC.

Each scenario is one ModelDeployment played from bootstrap through a rollout to a
settled state by tests/world.py (Crossplane and the platform), while the function
runs behind two real gRPC servers (tests/sim_server.py) on a simulated clock. The
scenario injects faults, all drawn from one seeded random stream, so a scenario is
reproduced exactly by its campaign seed and index:

- replica faults, drawn once per replica as its `Fate`: warm-up of random length,
  failure to start, never Ready, crash after serving, a readiness flap, health
  turning Unhealthy, health data going stale, the endpoint publishing its
  backendName late; a broken revision, every replica of which fails;
- platform faults: routes accepted late;
- Crossplane faults: the XR status wiped (lost status), a response applied late
  (the next call sees the previous observed state again), clock jumps of minutes to
  hours, a user writing an invalid spec for a few calls (Fatal; nothing applied).

After every call the invariants of tests/invariants.py and tests/sim_invariants.py
are checked, and every request goes to both servers, started with different
PYTHONHASHSEED values, whose responses must be byte-identical. Scenario families
cross every strategy with plain rollouts, pre-emption, abort, rollback (never Ready,
crash before available), scale changes, lost status, late apply, clock jumps, bad
input, a chaos mix, `replicas: 0` (from the start, or set with the rollout), and a
disturbed first deploy (pre-empted, also in the call in which its first backend is
published; broken and held there, perhaps losing its status; its status lost while
it warms up); each family also states what the settled deployment must look like.

A smaller set of wall-clock scenarios plays the same World against the real
`function` console script in a subprocess, with instant warm-up.
"""

from __future__ import annotations

import copy
import math
import random
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from typing import Any

from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function import naming
from function.planner import strategies
from function.spec import SET_WEIGHT
from tests import fixtures
from tests.grpc_harness import Client, RealServer, WallClockCaller
from tests.invariants import Violation, spec_of
from tests.sim_invariants import (
    RolloutBudget,
    SimChecker,
    backend_published,
    deterministic_bytes,
    serving_from_outside,
)
from tests.sim_server import TwinServers
from tests.world import Fate, ServiceLevel, Step, World


def canary(steps: list[dict[str, Any]], surge: int | str = "25%", unavailable: int | str = 0,
           header: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"steps": steps, "maxSurge": surge, "maxUnavailable": unavailable}
    if header:
        body["headerRoute"] = {"name": "x-canary", "value": "true"}
    return {"type": "Canary", "canary": body}


def short_of_gpus(strategy: dict[str, Any], action: str, wait: int = 30) -> dict[str, Any]:
    """`strategy` with onCapacityShortage `action` after `wait` seconds
    (docs/rollout.md#capacity-shortage)."""
    body = copy.deepcopy(strategy)
    block = body["canary"] if body["type"] == "Canary" else body.setdefault("rollingUpdate", {})
    block.update({"onCapacityShortage": action, "capacityWaitSeconds": wait})
    return body


def gated(strategy: dict[str, Any]) -> dict[str, Any]:
    """`strategy` with the analysis gate of docs/rollout.md#the-analysis-gate (`ANALYSIS`)."""
    return {**copy.deepcopy(strategy), "analysis": dict(ANALYSIS)}


# The gate of the service-level strategies; ServiceLevel draws are judged against it.
ANALYSIS: dict[str, Any] = {"minRequests": 100, "maxErrorRate": 0.01, "maxTTFTP95Seconds": 2,
                            "maxRatioToBaseline": 1.5, "failureToleranceSeconds": 60}

CANARY_TIMED = canary([{"setWeight": 20}, {"pause": {"durationSeconds": 60}},
                       {"setWeight": 60}, {"pause": {"durationSeconds": 30}}])

STRATEGIES: dict[str, dict[str, Any]] = {
    "rolling-25%/0": fixtures.rolling("25%", 0),
    "rolling-0/1": fixtures.rolling(0, 1),
    "rolling-100%/0": fixtures.rolling("100%", 0),
    "rolling-0/50%": fixtures.rolling(0, "50%"),
    "bluegreen-manual": fixtures.blue_green(auto=False, scale_down=30),
    "bluegreen-auto-soak": fixtures.blue_green(auto=True, delay=90, scale_down=60),
    "canary-manual": canary([{"setWeight": 0}, {"pause": {}}, {"setWeight": 50},
                             {"pause": {"durationSeconds": 45}}], surge=1, unavailable=1,
                            header=True),
    "canary-steps": canary([{"setWeight": 10}, {"setWeight": 25}, {"setWeight": 50},
                            {"setWeight": 100}], surge=0, unavailable="50%"),
    # Tight accelerator pools (TIGHT_POOLS): N or N + 1 GPUs. rolling-1/1, bluegreen-auto
    # and canary-timed (EXTRA_STRATEGIES) play in the grid this way.
    "rolling-1/0-replace-tight": short_of_gpus(fixtures.rolling(1, 0), "Replace"),
    "rolling-1/1-wait-tight": short_of_gpus(fixtures.rolling(1, 1), "Wait"),
    "canary-timed-replace-tight": short_of_gpus(CANARY_TIMED, "Replace", wait=20),
    "bluegreen-tight": fixtures.blue_green(auto=True, delay=0, scale_down=20),
    # Service levels drawn per revision (SERVICE_LEVELS), judged by the gate.
    "canary-analysis": gated(canary([{"setWeight": 20}, {"analysis": {"durationSeconds": 60}},
                                     {"setWeight": 50}, {"analysis": {"durationSeconds": 30}}],
                                    surge=1, unavailable=0)),
    "bluegreen-analysis": gated(fixtures.blue_green(auto=False, scale_down=20)),
}
TIGHT_POOLS = frozenset(name for name in STRATEGIES if name.endswith("-tight"))
ANALYSED = frozenset(name for name in STRATEGIES if name.endswith("-analysis"))

# Strategies outside the default grid, chosen with --strategy: the grid plays them on
# a tight pool (above), which keeps the CI campaign within its time.
EXTRA_STRATEGIES: dict[str, dict[str, Any]] = {
    "rolling-1/1": fixtures.rolling(1, 1),
    "bluegreen-auto": fixtures.blue_green(auto=True, delay=0, scale_down=20),
    "canary-timed": CANARY_TIMED,
}
ALL_STRATEGIES = {**STRATEGIES, **EXTRA_STRATEGIES}

FAMILIES = (
    "plain",
    "preempt",
    "abort",
    "rollback-never-ready",
    "rollback-crash",
    "scale",
    "lost-status",
    "late-apply",
    "clock-jump",
    "bad-input",
    "chaos",
    "zero",
    "first-deploy",
)
FIRST_DEPLOY_MODES = ("preempt", "preempt-at-backend", "broken", "broken-lost-status",
                      "lost-status")

FAULT_KINDS = (
    "warmup", "start-failure", "never-ready", "crash", "flap", "unhealthy", "stale-health",
    "backend-late", "route-late", "lost-status", "late-apply", "clock-jump", "bad-input",
    "broken-revision", "zero-replicas", "first-deploy-preempt",
    *(f"service-{kind}" for kind in ("good", "slow", "erroring", "flapping", "stale")),
)
DISRUPTIVE = ("start-failure", "never-ready", "crash", "flap", "unhealthy")

# A user's bad edits: each makes the spec invalid (docs/rollout.md#bad-input).
BAD_EDITS: tuple[tuple[str, Callable[[dict[str, Any]], None]], ...] = (
    ("negative replicas", lambda s: s.__setitem__("replicas", -1)),
    ("fractional replicas", lambda s: s.__setitem__("replicas", 2.5)),
    ("unknown strategy", lambda s: s.__setitem__("strategy", {"type": "Canary"})),
    ("unlisted activeRevision", lambda s: s.__setitem__("activeRevision", "v9")),
    ("duplicate revision", lambda s: s["revisions"].append(copy.deepcopy(s["revisions"][0]))),
    ("bad percent", lambda s: s.__setitem__("strategy", fixtures.rolling("25", 0))),
    ("health check without path", lambda s: s["revisions"][-1].__setitem__(
        "healthCheck", {"port": 8000})),
)

# Service levels drawn per revision for the ANALYSED strategies, against ANALYSIS and a
# good baseline: slow has twice the baseline's TTFT p95 (> maxRatioToBaseline), erroring
# a 5% error rate (> maxErrorRate); flapping is good and erroring by turns, FLAP_PERIOD
# seconds each (longer than failureToleranceSeconds); stale stops publishing metrics.
SERVICE_KINDS = ("good", "slow", "erroring", "flapping", "stale")
BAD_SERVICE = ("slow", "erroring")
GOOD = ServiceLevel(requests=600, error_rate=0.005, ttft_p95=0.5, itl_p95=0.03)
SLOW = ServiceLevel(requests=600, error_rate=0.002, ttft_p95=1.0, itl_p95=0.03)
ERRORING = ServiceLevel(requests=600, error_rate=0.05, ttft_p95=0.5, itl_p95=0.03)
FLAP_PERIOD = 120.0

REPEAT_EVERY = 10  # every tenth request is also sent again to the same server
OPERATOR_DELAY_MAX = 180.0  # the longest a person takes to approve a waiting BlueGreen
REVISIONS = ("v1", "v2", "v3")


@dataclass(frozen=True)
class ScenarioSpec:
    seed: int
    index: int
    strategy: str
    family: str

    @property
    def name(self) -> str:
        return f"#{self.index} {self.strategy} {self.family}"


def plan_campaign(seed: int, count: int, *, strategies: Iterable[str] | None = None,
                  families: Iterable[str] | None = None) -> list[ScenarioSpec]:
    """`count` scenarios; the first len(strategies)*len(families) cover every pair once."""
    strategy_names = list(strategies or STRATEGIES)
    family_names = list(families or FAMILIES)
    grid = [(s, f) for f in family_names for s in strategy_names]
    random.Random(f"order:{seed}").shuffle(grid)
    return [ScenarioSpec(seed, i, *grid[i % len(grid)]) for i in range(count)]


@dataclass
class ScenarioResult:
    spec: ScenarioSpec
    calls: int = 0
    recalls: int = 0
    sim_seconds: float = 0.0
    faults: Counter = field(default_factory=Counter)
    checks: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)
    worst_ratio: float = 0.0  # longest rollout / its bound
    violation: str | None = None
    violation_call: int | None = None
    final: dict[str, Any] = field(default_factory=dict)


class Scenario:
    """One deployment, played to a settled state while faults are injected."""

    def __init__(self, spec: ScenarioSpec, caller: Callable[
            [fnv1.RunFunctionRequest, datetime],
            tuple[fnv1.RunFunctionResponse, fnv1.RunFunctionResponse]]) -> None:
        self.spec = spec
        self.caller = caller
        self.rng = random.Random(f"{spec.seed}/{spec.index}/{spec.strategy}/{spec.family}")
        self.result = ScenarioResult(spec)
        rng = self.rng
        family = spec.family
        strategy = ALL_STRATEGIES[spec.strategy]
        self.blue_green = strategy["type"] == "BlueGreen"
        self.canary = strategy["type"] == "Canary"
        self.auto = self.blue_green and strategy["blueGreen"]["autoPromote"]
        self.tight = spec.strategy in TIGHT_POOLS
        self.analysed = spec.strategy in ANALYSED
        shortage = (strategy.get("canary") or strategy.get("rollingUpdate") or {})
        self.capacity_wait = float(shortage.get("capacityWaitSeconds", 0)) if self.tight else 0.0
        self.replace = shortage.get("onCapacityShortage") == "Replace"

        self.n = rng.randint(1, 5)
        self.dt_max = float(rng.choice([10, 20, 30]))
        health = {name: rng.random() < 0.8 for name in REVISIONS}
        # Budgets under a minute make the TTL follow the warm-up of new replicas
        # (docs/rollout.md#status-and-conditions).
        initial_delay = rng.choice([30, 45, 180, 300, 600])
        # Revisions without a health check have the default 600 s warm-up budget.
        self.warmup_budget = initial_delay if all(health.values()) else 600
        self.warmup_max = min(0.5 * initial_delay, 240.0)
        self.backend_lag_max = float(rng.choice([0, 15, 45]))
        route_lag = float(rng.choice([0, 0, 30]))
        self.min_ready = rng.choice([0, 0, 20])
        # drainSeconds 0 is left out: tests/invariants.py check 4 counts a replica that is
        # deleted in the same response that takes it out of the route as undrained.
        self.drain = rng.choice([5, 10, 30])
        if family == "rollback-crash":
            self.min_ready = rng.choice([30, 60])
        drain_max = max(self.drain, strategy.get("blueGreen", {}).get("scaleDownDelaySeconds", 0))
        # On a tight pool a replica may wait capacityWaitSeconds for the GPU a trade frees.
        self.wave = (self.warmup_max + self.backend_lag_max + self.min_ready + drain_max
                     + 5 * self.dt_max + self.capacity_wait)
        deadline = max(600, math.ceil(1.5 * self.wave / 60) * 60)
        if family.startswith("rollback"):
            deadline = rng.choice([300, 600, deadline])
        self.deadline = deadline
        if self.blue_green and not self.auto:
            awaiting = OPERATOR_DELAY_MAX + self.dt_max
            if self.analysed:  # a Fail tolerated, a flap's bad half, before the operator
                awaiting += FLAP_PERIOD * 2 + ANALYSIS["failureToleranceSeconds"]
        elif self.blue_green:
            awaiting = strategy["blueGreen"]["promoteDelaySeconds"] + self.dt_max
        elif self.canary:
            # Timed pauses, the operator at a manual one, a call's delay per step.
            steps = strategy["canary"]["steps"]
            awaiting = sum((step["pause"].get("durationSeconds", OPERATOR_DELAY_MAX)
                            if "pause" in step else 0) + self.dt_max for step in steps)
            # An analysis step: its duration, a Fail tolerated, a flap's bad half, then
            # the operator at an Inconclusive end.
            awaiting += sum(step["analysis"]["durationSeconds"] + FLAP_PERIOD * 2
                            + ANALYSIS["failureToleranceSeconds"] + OPERATOR_DELAY_MAX
                            for step in steps if "analysis" in step)
        else:
            awaiting = 0.0
        self.awaiting = awaiting
        interval = max(deadline, self.warmup_budget + self.warmup_max + self.backend_lag_max
                       + self.min_ready + drain_max + 5 * self.dt_max) + self.capacity_wait
        self.budget = RolloutBudget(interval=interval, awaiting=awaiting, dt_max=self.dt_max)
        self.checker = SimChecker(self.budget)

        spec_body = fixtures.deployment(
            self.n, REVISIONS, active="v1", strategy=strategy,
            preview=rng.random() < 0.5 or self.analysed, route=rng.random() < 0.9,
            progressDeadlineSeconds=deadline, minReadySeconds=self.min_ready,
            drainSeconds=self.drain)
        spec_body["revisions"] = [
            fixtures.revision(name, health=health[name], initial_delay=initial_delay)
            for name in REVISIONS]
        self.fault_budget = rng.randint(1, 4) if family == "chaos" else 0
        self.world = World(spec=spec_body, fate_for=self.fate, call=self.call,
                           route_accept_lag=route_lag)
        if route_lag:
            self.fault("route-late")
        self.approve_at: datetime | None = None
        self.required: set[int] = set()  # calls at which a family's action is still due
        self.disruptive_drawn = 0
        # Drawn last, so that the draws above are the same in every family.
        self.zero_from_start = family == "zero" and rng.random() < 0.5
        self.first_mode = rng.choice(FIRST_DEPLOY_MODES) if family == "first-deploy" else ""
        # A tight pool has N (or N + 1) accelerators, N following spec.replicas: scaling
        # the deployment is buying or selling the capacity (tests/world.py).
        self.spare_gpus = rng.choice([0, 1]) if self.tight else None
        self.strikes_after_scheduling: dict[str, float] = {}  # replica key -> seconds
        self.pool_blocked = False
        self.follow_pool()
        # Per-revision service levels; the current revision of every rollout (v1) is good.
        self.levels: dict[str, str] = {}
        if self.analysed:
            self.levels = {"v1": "good", **{name: rng.choice(SERVICE_KINDS)
                                            for name in REVISIONS[1:]}}
            self.stale_after = {name: rng.uniform(30, 300) for name in REVISIONS}
            for kind in self.levels.values():
                self.fault(f"service-{kind}")
        self.checker.service_levels = dict(self.levels)

    # --- faults ---------------------------------------------------------------------------

    def fault(self, kind: str) -> None:
        self.result.faults[kind] += 1

    def fate(self, revision: str, index: int) -> Fate:
        rng = self.rng
        family = self.spec.family
        warmup = rng.uniform(1, self.warmup_max)
        self.fault("warmup")
        if revision == "v1" and self.first_mode.startswith("broken"):
            # The revision itself is broken: every replica of it, replacements too.
            self.fault("broken-revision")
            if rng.random() < 0.5:
                return Fate(never_ready=True)
            return Fate(warmup=warmup, start_failure=True)
        if revision == "v2" and family == "rollback-never-ready":
            if rng.random() < 0.5:
                self.fault("never-ready")
                return Fate(never_ready=True)
            self.fault("start-failure")
            return Fate(warmup=warmup, start_failure=True)
        if revision == "v2" and family == "rollback-crash":
            self.fault("crash")
            return Fate(warmup=warmup, crash_after=rng.uniform(1, self.min_ready - 10))
        fate = Fate(warmup=warmup)
        if self.levels:
            self.serve_as(fate, self.levels[revision], self.stale_after[revision])
        if self.backend_lag_max and rng.random() < 0.5:
            fate.backend_lag = rng.uniform(1, self.backend_lag_max)
            self.fault("backend-late")
        if rng.random() < 0.15:
            fate.stale_after = rng.uniform(10, 400)
            self.fault("stale-health")
        if self.fault_budget > 0 and rng.random() < 0.35:
            self.fault_budget -= 1
            # Cycled, so that a few chaos scenarios already cover every kind.
            kind = DISRUPTIVE[(self.spec.index + self.disruptive_drawn) % len(DISRUPTIVE)]
            self.disruptive_drawn += 1
            self.fault(kind)
            strikes = {"crash": "crash_after", "flap": "flap_after", "unhealthy":
                       "unhealthy_after"}
            if kind == "start-failure":
                fate.start_failure = True
            elif kind == "never-ready":
                fate.never_ready = True
            elif kind == "crash":
                fate.crash_after = rng.uniform(5, 600)
            elif kind == "flap":
                fate.flap_after = rng.uniform(5, 300)
                fate.flap_for = rng.uniform(5, 1.2 * self.warmup_budget)
            else:
                fate.unhealthy_after = rng.uniform(5, 600)
            # The fault strikes after warm-up and its delay; a flap lasts flap_for; a
            # replica not Ready is Failed a warm-up budget later.
            after = (getattr(fate, strikes[kind]) or 0.0) if kind in strikes else 0.0
            lasts = fate.flap_for if kind == "flap" else 0.0
            delay = fate.warmup + after + lasts + self.warmup_budget
            self.checker.note_disruptive(self.world.now + timedelta(seconds=delay))
            if self.spare_gpus is not None:
                # Warm-up starts when the replica gets a GPU, which may be much later.
                self.strikes_after_scheduling[naming.replica_key(revision, index)] = delay
        return fate

    @staticmethod
    def serve_as(fate: Fate, kind: str, stale_after: float) -> None:
        """Give a replica the service level of its revision (SERVICE_KINDS)."""
        if kind == "flapping":
            fate.service, fate.service_alt = GOOD, ERRORING
            fate.service_period = FLAP_PERIOD
        elif kind == "stale":
            fate.service, fate.metrics_stale_after = GOOD, stale_after
        else:
            fate.service = {"good": GOOD, "slow": SLOW, "erroring": ERRORING}[kind]

    def follow_pool(self) -> None:
        """A tight pool: spec.replicas accelerators plus the spare drawn, kept as they were
        while the spec is invalid (bad input)."""
        n = self.world.spec.get("replicas")
        if self.spare_gpus is not None and isinstance(n, int) and n >= 0:
            self.world.gpus = n + self.spare_gpus

    # --- calls ----------------------------------------------------------------------------

    def call(self, req: fnv1.RunFunctionRequest, now: datetime) -> fnv1.RunFunctionResponse:
        """Every request goes to both twin servers (different PYTHONHASHSEED): their
        responses must be byte-identical (docs/rollout.md#revisions)."""
        rsp, twin = self.caller(req, now)
        self.result.calls += 1
        self.result.recalls += 1
        if deterministic_bytes(rsp) != deterministic_bytes(twin):
            seeds = getattr(self.caller, "hash_seeds", ("?", "?"))
            raise Violation(f"servers started with PYTHONHASHSEED={seeds[0]} and {seeds[1]} "
                            "answered the same request differently")
        self.checker.count("determinism-across-hash-seeds")
        first = getattr(self.caller, "servers", [None])[0]
        if first is not None and self.result.calls % REPEAT_EVERY == 0:
            # Both twins see the same calls; a server that kept state between calls
            # would answer a repeated request differently.
            self.result.recalls += 1
            if deterministic_bytes(first(req, now)) != deterministic_bytes(rsp):
                raise Violation("the same request twice to one server gave different responses")
            self.checker.count("determinism-same-server")
        return rsp

    def step(self, *, dt: float | None = None, apply: bool = True) -> Step:
        if dt is None:
            dt = round(self.rng.uniform(1, self.dt_max), 1)
        self.follow_pool()
        record = self.world.step(dt, apply=apply)
        for key, delay in list(self.strikes_after_scheduling.items()):
            lived = self.world.lives.get(key)
            if lived is None or lived.scheduled_at is not None:
                del self.strikes_after_scheduling[key]
            if lived is not None and lived.scheduled_at is not None:
                self.checker.note_disturbed_until(lived.scheduled_at + timedelta(seconds=delay))
        self.checker.after_call(self.world, record)
        self.operator()
        return record

    def operator(self) -> None:
        """A person who approves a BlueGreen rollout or a manual canary pause some time
        after it waits for them."""
        world = self.world
        status = world.status
        if not (self.blue_green or self.canary) or self.auto \
                or status.get("phase") != "AwaitingPromotion":
            self.approve_at = None
            return
        deploying = status.get("deployingRevision")
        if world.spec.get("promote") == deploying:
            return
        if self.approve_at is None:
            self.approve_at = world.now + timedelta(seconds=self.rng.uniform(0, OPERATOR_DELAY_MAX))
        if world.now >= self.approve_at:
            world.spec["promote"] = deploying
            self.approve_at = None

    # --- settling -------------------------------------------------------------------------

    def settled(self) -> bool:
        world = self.world
        status = world.status
        current = status.get("currentRevision")
        if status.get("phase") not in ("Stable", "Failed") or status.get("deployingRevision"):
            return False
        if not current or world.spec.get("activeRevision") not in (current,
                                                                   status.get("failedRevision")):
            return False
        n = world.spec["replicas"]
        keys = world.replicas()
        if len(keys) != n or world.replicas(current) != keys:
            return False
        spec = spec_of(world.spec)
        return all(serving_from_outside(spec, world.composed, k, world.now) for k in keys)

    def run_until_settled(self, *, disturb: Callable[[int], None] | None = None,
                          limit: int = 3000) -> None:
        for i in range(limit):
            if disturb is not None:
                disturb(i)
            else:
                self.step()
            if self.settled() and not self.required:
                for _ in range(3):  # settled stays settled, and quiet
                    self.step()
                if self.settled():
                    return
                if self.spec.family != "chaos":  # in chaos a replica may break later
                    raise Violation(f"a settled deployment moved again: {self.world.status}")
        raise Violation(f"not settled after {limit} calls: status {self.world.status}")

    # --- the scenario ---------------------------------------------------------------------

    def run(self) -> ScenarioResult:
        try:
            self.play()
        except Violation as violation:
            self.result.violation = str(violation)
            self.result.violation_call = self.result.calls
        except Exception as error:  # anything else is a broken scenario, reported the same
            self.result.violation = f"{type(error).__name__}: {error}\n{traceback.format_exc()}"
            self.result.violation_call = self.result.calls
        finally:
            self.checker.close(self.world)
            self.result.checks = self.checker.checks
            for ended in self.checker.ended:
                self.result.outcomes[ended.outcome] += 1
                if ended.bound:
                    self.result.worst_ratio = max(self.result.worst_ratio,
                                                  ended.seconds / ended.bound)
            self.result.sim_seconds = (self.world.now - self.world.history[0].now).total_seconds(
            ) if self.world.history else 0.0
            self.result.final = {k: self.world.status.get(k) for k in (
                "phase", "currentRevision", "deployingRevision", "failedRevision")}
        return self.result

    def play(self) -> None:
        family = self.spec.family
        chaos = family == "chaos"
        if family == "first-deploy":
            self.play_first_deploy()
            self.check_outcome()
            return
        if self.zero_from_start:
            self.world.spec["replicas"] = 0
            self.fault("zero-replicas")
        # Bootstrap v1 (a first deploy is a rollout too).
        self.run_until_settled(disturb=self.chaos_step if chaos else None)
        if self.world.status.get("currentRevision") != "v1":
            raise Violation(f"bootstrap settled on {self.world.status}")
        if family == "lost-status":  # once while stable, too
            self.lose_status()
            self.step()
        # Roll out v2, disturbed as the family says.
        self.world.spec["activeRevision"] = "v2"
        # Green at full size needs N more accelerators than blue holds.
        self.pool_blocked = (self.blue_green and self.spare_gpus is not None
                             and self.world.spec["replicas"] > self.spare_gpus)
        if family == "zero" and not self.zero_from_start:
            self.world.spec["replicas"] = 0  # in the same edit
            self.fault("zero-replicas")
        disturb = self.disturbance()
        self.run_until_settled(disturb=disturb)
        if family == "zero" and self.rng.random() < 0.5:
            self.world.spec["replicas"] = self.rng.randint(1, 4)
            self.run_until_settled()
        self.check_outcome()

    def play_first_deploy(self) -> None:
        """A first deploy of v1, disturbed: pre-empted by v2 (at a drawn call, or in the
        call in which v1's first backend is published); broken (every v1 replica fails,
        replacements too), held there, perhaps with the status lost, then replaced by v2;
        or its status lost while it warms up. It settles on v2."""
        mode = self.first_mode
        world = self.world
        rng = self.rng
        if mode.startswith("preempt"):
            at = rng.randint(0, 8)
            self.required.add(-1)

            def preempt(i: int) -> None:
                if -1 in self.required and (
                        i == at if mode == "preempt" else self.backend_published("v1")):
                    world.spec["activeRevision"] = "v2"
                    self.fault("first-deploy-preempt")
                    self.required.discard(-1)
                self.step()
            self.run_until_settled(disturb=preempt)
            return
        if mode == "lost-status":
            at = rng.randint(1, 6)
            self.required.add(at)

            def lose(i: int) -> None:
                if i == at:
                    self.lose_status()
                    self.required.discard(at)
                self.step()
            self.run_until_settled(disturb=lose)
            world.spec["activeRevision"] = "v2"
            self.run_until_settled()
            return
        # Broken: the failing first deploy comes to rest (README: reported once, phase
        # Failed, failed replicas replaced) and holds there through failure cycles.
        self.run_until(lambda: (self.checker.at_rest or "").startswith("failing-first-deploy"),
                       what="a failing first deploy")
        cycle = self.warmup_budget + 2 * self.dt_max  # a replica fails within a cycle
        lose_at = world.now + timedelta(seconds=rng.uniform(0, cycle)) \
            if mode == "broken-lost-status" else None
        until = world.now + timedelta(seconds=2 * cycle)
        rest_by: datetime | None = None  # after the status is lost, at rest again by then
        while world.now < until or lose_at is not None or rest_by is not None:
            if lose_at is not None and world.now >= lose_at:
                self.lose_status()
                lose_at = None
                # Replacements no longer fail together: the progress deadline (from
                # the restart) may be what reports it (docs/rollout.md#rollback).
                rest_by = world.now + timedelta(seconds=self.deadline + cycle)
                until = max(until, rest_by)
            self.step()
            if (self.checker.at_rest or "").startswith("failing-first-deploy"):
                rest_by = None
            elif rest_by is not None and world.now > rest_by:
                raise Violation(f"a broken first deploy whose status was lost did not report "
                                f"its failure again within {self.deadline + cycle:.0f}s: "
                                f"{world.status}")
        world.spec["activeRevision"] = "v2"
        self.run_until_settled()

    def backend_published(self, revision: str) -> bool:
        """Whether an endpoint of `revision` publishes a backendName in the world now."""
        return any(backend_published(self.world.composed, *parsed)
                   for key in self.world.composed
                   if (parsed := naming.parse_endpoint_key(key)) and parsed[0] == revision)

    def run_until(self, done: Callable[[], bool], *, what: str, limit: int = 3000) -> None:
        for _ in range(limit):
            self.step()
            if done():
                return
        raise Violation(f"{what} not reached after {limit} calls: {self.world.status}")

    def lose_status(self) -> None:
        self.world.status = {}
        self.checker.note_status_lost(self.world.now)
        self.fault("lost-status")

    def bad_input(self, calls: int) -> None:
        saved = copy.deepcopy(self.world.spec)
        what, edit = self.rng.choice(BAD_EDITS)
        edit(self.world.spec)
        self.fault("bad-input")
        for _ in range(calls):
            record = self.step()
            if not record.fatal:
                raise Violation(f"a bad spec ({what}) was not Fatal")
        self.world.spec = saved

    def jump(self) -> None:
        seconds = float(self.rng.choice([120, 600, 1800, 3600, 4 * 3600]))
        self.fault("clock-jump")
        self.checker.note_jump(seconds)
        self.step(dt=seconds)

    def late(self) -> None:
        self.fault("late-apply")
        self.step(apply=False)

    def chaos_step(self, i: int) -> None:
        roll = self.rng.random()
        if roll < 0.08:
            self.late()
        elif roll < 0.09:
            self.lose_status()
            self.step()
        elif roll < 0.105:
            self.jump()
        elif roll < 0.11:
            self.bad_input(self.rng.randint(1, 2))
        else:
            self.step()

    def disturbance(self) -> Callable[[int], None] | None:
        rng = self.rng
        family = self.spec.family
        world = self.world
        at = rng.randint(1, 12)
        required = self.required
        if family in ("preempt", "abort"):
            # Mid-rollout, activeRevision moves on to v3 (pre-emption) or back to v1.
            revision = "v3" if family == "preempt" else "v1"
            required.add(at)

            def switch(i: int) -> None:
                if i == at:
                    world.spec["activeRevision"] = revision
                    required.discard(i)
                self.step()
            return switch
        if family == "scale":
            sizes = {at: rng.choice([m for m in range(0, 7) if m != self.n])}
            if rng.random() < 0.5:
                sizes[at + rng.randint(2, 15)] = rng.randint(1, 6)
            required.update(sizes)

            def scale(i: int) -> None:
                if i in sizes:
                    world.spec["replicas"] = sizes[i]
                    required.discard(i)
                self.step()
            return scale
        if family == "lost-status":
            lost = {at} | ({at + rng.randint(2, 20)} if rng.random() < 0.4 else set())
            required.update(lost)

            def lose(i: int) -> None:
                if i in lost:
                    self.lose_status()
                    required.discard(i)
                self.step()
            return lose
        if family == "late-apply":
            def late(i: int) -> None:
                if rng.random() < 0.3:
                    self.late()
                else:
                    self.step()
            return late
        if family == "clock-jump":
            jumps = {at} | ({at + rng.randint(1, 10)} if rng.random() < 0.5 else set())
            required.update(jumps)
            # Half the time a jump comes right after the call that recorded progress
            # instead, so the gap starts from the freshest lastProgressTime.
            after_progress = rng.random() < 0.5

            def jump(i: int) -> None:
                before = self.world.status.get("lastProgressTime")
                if i in jumps:
                    self.jump()
                    jumps.discard(i)
                    required.discard(i)
                else:
                    self.step()
                progressed = self.world.status.get("lastProgressTime") not in (None, before)
                if after_progress and progressed and jumps and i > 0:
                    moved = min(jumps)  # the next jump comes now
                    jumps.discard(moved)
                    required.discard(moved)
                    jumps.add(i + 1)
                    required.add(i + 1)
            return jump
        if family == "bad-input":
            required.add(at)

            def bad(i: int) -> None:
                if i == at:
                    self.bad_input(rng.randint(1, 3))
                    required.discard(i)
                else:
                    self.step()
            return bad
        if family == "chaos":
            action = rng.choice(["none", "preempt", "abort", "scale"])
            if action != "none":
                required.add(at)

            def chaos(i: int) -> None:
                required.discard(i)
                if i == at and action == "preempt":
                    world.spec["activeRevision"] = "v3"
                elif i == at and action == "abort":
                    world.spec["activeRevision"] = "v1"
                elif i == at and action == "scale":
                    world.spec["replicas"] = rng.randint(0, 6)
                self.chaos_step(i)
            return chaos
        return None

    # --- what the settled deployment must look like -----------------------------------------

    def check_outcome(self) -> None:
        family = self.spec.family
        status = self.world.status
        current, failed = status.get("currentRevision"), status.get("failedRevision")
        messages = [r.message for s in self.world.history for r in s.response.results]
        rolled_back = any("rolled back" in m for m in messages)
        expected: dict[str, tuple[str | None, str | None]] = {
            "plain": ("v2", None), "late-apply": ("v2", None), "bad-input": ("v2", None),
            "lost-status": ("v2", None), "scale": ("v2", None), "preempt": ("v3", None),
            "abort": ("v1", None), "rollback-never-ready": ("v1", "v2"),
            "rollback-crash": ("v1", "v2"), "zero": ("v2", None), "first-deploy": ("v2", None),
        }
        bad = {name for name, kind in self.levels.items() if kind in (*BAD_SERVICE, "flapping")}
        if family in expected:
            want_current, want_failed = expected[family]
            # A revision the gate may fail, or a BlueGreen green that finds no GPU, may be
            # rolled back; the settled deployment is then on the revision before it.
            may_fail = bad | ({want_current} if self.tight and self.blue_green else set())
            if failed in may_fail and failed != want_failed and current in ("v1", want_current):
                want_current, want_failed = current, failed
                rolled_back = False
            if self.blue_green and self.tight and family == "plain" and self.pool_blocked:
                want_current, want_failed = "v1", "v2"
                if not any("unschedulable" in m for m in messages if "rolled back" in m):
                    raise Violation("a BlueGreen rollout short of GPUs was not rolled back "
                                    f"naming the unschedulable replicas: {messages}")
                self.checker.count("bluegreen-tight-rolls-back")
                rolled_back = False
            if (current, failed) != (want_current, want_failed):
                raise Violation(f"{family} settled on current={current!r} failed={failed!r}, "
                                f"expected current={want_current!r} failed={want_failed!r}")
            rolled_back = rolled_back and any(
                "rolled back" in m and not any(f"Analysis of revision '{b}'" in m for b in bad)
                for m in messages)
            if want_failed is None and rolled_back:
                raise Violation(f"{family} rolled back: "
                                f"{[m for m in messages if 'rolled back' in m]}")
        elif family == "clock-jump" and (current, failed) not in (("v2", None), ("v1", "v2")) \
                and not (failed in bad and current == "v1"):
            raise Violation(f"clock-jump settled on current={current!r} failed={failed!r}")
        self.checker.count("settled-outcome")
        if family == "plain" and not self.pool_blocked and failed is None:
            ended = [e for e in self.checker.ended if e.revision == "v2"]
            limit = self.plain_bound()
            if not ended or ended[-1].outcome != "completed" or ended[-1].seconds > limit:
                raise Violation(f"plain rollout of v2: {ended[-1] if ended else None}; "
                                f"fault-free bound {limit:.0f}s")
            self.checker.count("plain-rollout-bound")

    def plain_bound(self) -> float:
        """How long a rollout with only soft faults may take (see SimChecker docs).

        RollingUpdate replaces at least max(surge, unavailable) replicas per wave, and a
        wave is: the new replicas warm up (w), publish a backend (L), pass
        minReadySeconds (m), the old ones drain (R), with a call's delay (dt) between
        each of these, so the rollout takes at most ceil(N / per_wave) waves of
        w + L + m + R + 5 dt. BlueGreen creates green at full size at once and
        waits at the gate at most A.
        """
        n = self.world.spec["replicas"]
        strategy = spec_of(self.world.spec).strategy
        if self.replace:
            # No deadlock: on N GPUs every replica may wait capacityWaitSeconds for one
            # old replica to be traded (drained), one trade at a time
            # (docs/rollout.md#capacity-shortage).
            steps = strategy.canary.steps if self.canary and strategy.canary else ()
            weights = sum(1 for step in steps if step.kind == SET_WEIGHT)
            return (weights + max(n, 1)) * self.wave + self.awaiting + 2 * self.dt_max
        if self.canary:
            # Each setWeight step is a wave, the promotion as many as RollingUpdate's.
            limits = strategies.limits(spec_of(self.world.spec))
            per_wave = max(1, min(n, max(limits.surge, limits.unavailable))) if n else 1
            assert strategy.canary is not None  # a canary scenario has its steps
            weights = sum(1 for step in strategy.canary.steps if step.kind == SET_WEIGHT)
            return ((weights + math.ceil(max(n, 1) / per_wave)) * self.wave + self.awaiting
                    + 2 * self.dt_max)
        if self.blue_green:
            return (self.warmup_max + self.backend_lag_max + self.min_ready + self.awaiting
                    + 5 * self.dt_max)
        limits = strategies.limits(spec_of(self.world.spec))
        per_wave = max(1, min(n, max(limits.surge, limits.unavailable))) if n else 1
        waves = math.ceil(n / per_wave) if n else 1
        return waves * self.wave + 2 * self.dt_max


# --- running a campaign -------------------------------------------------------------------


@dataclass
class Summary:
    seed: int
    scenarios: int = 0
    calls: int = 0
    recalls: int = 0
    sim_hours: float = 0.0
    faults: Counter = field(default_factory=Counter)
    checks: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)
    worst_ratio: float = 0.0
    violations: list[str] = field(default_factory=list)
    wallclock_scenarios: int = 0
    wallclock_calls: int = 0
    seconds: float = 0.0
    flags: str = ""  # the strategy and family filters, to re-run a scenario alone
    hash_seeds: list[tuple[int, int]] = field(default_factory=list)  # per batch of scenarios

    def add(self, result: ScenarioResult) -> None:
        self.scenarios += 1
        self.calls += result.calls
        self.recalls += result.recalls
        self.sim_hours += result.sim_seconds / 3600
        self.faults.update(result.faults)
        self.checks.update(result.checks)
        self.outcomes.update(result.outcomes)
        self.worst_ratio = max(self.worst_ratio, result.worst_ratio)
        if result.violation:
            spec = result.spec
            self.violations.append(
                f"{spec.name} (reproduce: scripts/campaign.py --seed {spec.seed}{self.flags} "
                f"--only {spec.index}), call {result.violation_call}: {result.violation}")

    def render(self) -> str:
        lines = [
            f"campaign seed {self.seed}: {self.scenarios} simulated scenarios "
            f"(+{self.wallclock_scenarios} wall-clock against the console script) "
            f"in {self.seconds:.1f}s",
            f"calls: {self.calls} over gRPC (+{self.recalls} repeated, to the twin server "
            f"with another PYTHONHASHSEED or the same one, +{self.wallclock_calls} "
            "wall-clock), "
            f"{self.sim_hours:.1f} simulated hours",
            "twin servers' PYTHONHASHSEED: " + ", ".join(
                f"{a}/{b}" for a, b in self.hash_seeds),
            "faults injected:",
            *(f"  {kind:<16} {self.faults.get(kind, 0)}" for kind in FAULT_KINDS),
            "rollouts ended: " + ", ".join(
                f"{k} {v}" for k, v in sorted(self.outcomes.items())),
            f"longest rollout / its bound: {self.worst_ratio:.2f}",
            f"invariant checks: {sum(self.checks.values())}",
            *(f"  {name:<34} {count}" for name, count in sorted(self.checks.items())),
            f"violations: {len(self.violations)}",
            *(f"  {v}" for v in self.violations),
        ]
        return "\n".join(lines)


def hash_seeds(seed: int, batch: int) -> tuple[int, int]:
    """Two different PYTHONHASHSEED values for a batch's twin servers, from the seed."""
    rng = random.Random(f"hash:{seed}/{batch}")
    first = rng.randrange(1, 2**32 - 1)
    return first, first + 1 + rng.randrange(2**20)


def run_batch(specs: list[ScenarioSpec], seeds: tuple[int, int] = (1, 2)
              ) -> list[ScenarioResult]:
    """Run scenarios one after another against one pair of twin servers."""
    results = []
    with TwinServers(seeds) as caller:
        for spec in specs:
            results.append(Scenario(spec, caller).run())
    return results


def run_campaign(seed: int, count: int, *, jobs: int = 1, wallclock: bool = True,
                 only: Iterable[int] | None = None, strategies: Iterable[str] | None = None,
                 families: Iterable[str] | None = None,
                 progress: Callable[[ScenarioResult], None] | None = None) -> Summary:
    """Plan and run a campaign; `only` re-runs the scenarios of these indices."""
    started = time.perf_counter()
    strategies = list(strategies) if strategies else None
    families = list(families) if families else None
    specs = plan_campaign(seed, count, strategies=strategies, families=families)
    if only is not None:
        wanted = set(only)
        specs = [s for s in plan_campaign(seed, max(wanted) + 1, strategies=strategies,
                                          families=families) if s.index in wanted]
    summary = Summary(seed, flags="".join(
        [*(f" --strategy {name}" for name in strategies or []),
         *(f" --family {name}" for name in families or [])]))
    jobs = max(1, min(jobs, len(specs)))
    batches = [specs[i::jobs] for i in range(jobs)]
    seeds = [hash_seeds(seed, i) for i in range(len(batches))]
    summary.hash_seeds = seeds
    if len(batches) == 1:
        results = run_batch(batches[0], seeds[0])
    else:
        with ProcessPoolExecutor(len(batches), mp_context=get_context("spawn")) as pool:
            results = [r for batch in pool.map(run_batch, batches, seeds) for r in batch]
    for result in sorted(results, key=lambda r: r.spec.index):
        summary.add(result)
        if progress is not None:
            progress(result)
    if wallclock and only is None:
        run_wallclock(summary)
    summary.seconds = time.perf_counter() - started
    return summary


# --- wall-clock scenarios against the console script ------------------------------------------


def instant(revision: str, index: int) -> Fate:
    return Fate(warmup=0.0)


def wall_step(world: World, checker: SimChecker, summary: Summary, *, apply: bool = True) -> Step:
    time.sleep(0.1)  # drains of one second end within a handful of calls
    world.now = datetime.now(UTC)
    record = world.step(0.0, apply=apply)
    summary.wallclock_calls += 1
    checker.after_call(world, record)
    return record


def wall_until(world: World, checker: SimChecker, summary: Summary,
               done: Callable[[World], bool], limit: int = 100) -> None:
    for _ in range(limit):
        wall_step(world, checker, summary)
        if done(world):
            return
    raise Violation(f"not reached in {limit} wall-clock calls: {world.status}")


def stable_on(revision: str, n: int) -> Callable[[World], bool]:
    def done(world: World) -> bool:
        return (world.status.get("phase") == "Stable"
                and world.status.get("currentRevision") == revision
                and world.replicas() == world.replicas(revision)
                and len(world.replicas(revision)) == n)
    return done


def run_wallclock(summary: Summary) -> None:
    """Bootstrap, roll, promote, bad input and lost status against `function --insecure`."""
    budget = RolloutBudget(interval=1800 + 600, awaiting=60, dt_max=5)
    scenarios: list[tuple[str, Callable[[World, SimChecker], None]]] = []

    def rolling_rollout(world: World, checker: SimChecker) -> None:
        wall_until(world, checker, summary, stable_on("v1", 3))
        world.spec["activeRevision"] = "v2"
        wall_until(world, checker, summary, stable_on("v2", 3))

    def blue_green_promotion(world: World, checker: SimChecker) -> None:
        world.spec["strategy"] = fixtures.blue_green(scale_down=1)
        wall_until(world, checker, summary, stable_on("v1", 3))
        world.spec["activeRevision"] = "v2"
        wall_until(world, checker, summary,
                   lambda w: w.status.get("phase") == "AwaitingPromotion")
        for _ in range(3):  # it waits for the person
            wall_step(world, checker, summary)
            if world.status.get("phase") != "AwaitingPromotion":
                raise Violation("a manual BlueGreen rollout did not wait for spec.promote")
        world.spec["promote"] = "v2"
        wall_until(world, checker, summary, stable_on("v2", 3))

    def bad_input_and_lost_status(world: World, checker: SimChecker) -> None:
        wall_until(world, checker, summary, stable_on("v1", 3))
        before = dict(world.composed)
        world.spec["replicas"] = -1
        record = wall_step(world, checker, summary)
        if not record.fatal or set(world.composed) != set(before):
            raise Violation("a bad spec against the console script was not a harmless Fatal")
        world.spec["replicas"] = 3
        world.status = {}
        record = wall_step(world, checker, summary)
        if record.status.get("currentRevision") != "v1" or not set(before) <= set(record.desired):
            raise Violation(f"lost status against the console script: {record.status}")
        again = wall_step(world, checker, summary)
        twice = wall_step(world, checker, summary)
        if again.desired != twice.desired:
            raise Violation("a stable deployment's desired state changed between two calls")

    scenarios = [("rolling", rolling_rollout), ("blue-green", blue_green_promotion),
                 ("bad-input-lost-status", bad_input_and_lost_status)]
    with RealServer(["--insecure"]) as server, Client(server.address) as client:
        client.wait_ready()
        for name, play in scenarios:
            spec = fixtures.deployment(3, ("v1", "v2"), active="v1", drainSeconds=1)
            world = World(spec=spec, fate_for=instant, call=WallClockCaller(client),
                          now=datetime.now(UTC))
            checker = SimChecker(budget)
            summary.wallclock_scenarios += 1
            try:
                play(world, checker)
                if not server.alive():
                    raise Violation("the console script died")
            except Violation as violation:
                summary.violations.append(f"wall-clock {name}: {violation}")
            summary.checks.update(checker.checks)
