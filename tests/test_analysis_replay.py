"""BlueGreen promotion gated on service levels, replayed call by call (docs/rollout.md#bluegreen,
#the-analysis-gate).

Replicas publish status.metrics as a metrics adapter would (tests/world.py
ServiceLevel): blue from production traffic on the main route, green from the
preview route only.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function import naming
from function.planner import strategies
from function.planner.strategies.rolling_update import (
    RollingUpdateCourse,
    RollingUpdateStrategy,
)
from tests import invariants
from tests.fixtures import blue_green, deployment, rolling
from tests.world import Fate, ServiceLevel, Step, World

GOOD = ServiceLevel(requests=600, error_rate=0.005, ttft_p95=0.5, itl_p95=0.03)
ERRORING = ServiceLevel(requests=600, error_rate=0.05, ttft_p95=0.5, itl_p95=0.03)
SLOW = ServiceLevel(requests=600, error_rate=0.002, ttft_p95=1.0, itl_p95=0.03)  # 2x blue

ANALYSIS = {"minRequests": 100, "maxErrorRate": 0.01, "maxTTFTP95Seconds": 2,
            "maxRatioToBaseline": 1.5, "failureToleranceSeconds": 60}


def analysed(auto: bool = False, preview: bool = True, **analysis: Any) -> dict[str, Any]:
    strategy = blue_green(auto=auto)
    strategy["analysis"] = {**ANALYSIS, **analysis}
    return deployment(3, ("v1", "v2"), active="v1", strategy=strategy, preview=preview)


def fates(green: Fate) -> Any:
    def fate(revision: str, index: int) -> Fate:
        return green if revision == "v2" else Fate(warmup=30, service=GOOD)
    return fate


def started(spec: dict[str, Any], green: Fate) -> World:
    """Stable on v1 (with its metrics), then v2 made active."""
    world = World(spec=spec, fate_for=fates(green))
    world.run_until(lambda w: w.status.get("phase") == "Stable", check=check)
    world.spec["activeRevision"] = "v2"
    return world


def check(world: World, step: Step) -> None:
    """The contract's invariants, and green never on the main route before promotion."""
    invariants.check(world, step)
    if step.fatal:
        return
    current = step.status.get("currentRevision")
    main = {naming.parse_replica_key(k)[0] for k in invariants.routed_replicas(step)}
    assert main <= {current}, f"main route carries {main}, current is {current}"


def progressing(step: Step) -> fnv1.Condition:
    return next(c for c in step.response.conditions if c.type == "Progressing")


def analysis_of(step: Step) -> dict[str, Any]:
    return step.status.get("analysis", {})


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_bad_green_never_reaches_the_main_route_and_rolls_back_after_the_tolerance():
    world = started(analysed(auto=True), Fate(warmup=30, service=ERRORING))
    world.run_until(lambda w: w.status.get("failedRevision") == "v2", check=check)
    gate = [s for s in world.history if analysis_of(s)]
    failing = [s for s in gate if analysis_of(s)["verdict"] == "Fail"]
    rolled_back = world.history[-1]
    # Tolerated from the first Fail for failureToleranceSeconds, not a call less.
    since = at(analysis_of(failing[0])["failingSince"])
    assert since == failing[0].now
    for step in failing[:-1]:
        assert step.status["phase"] == "AwaitingPromotion"
        assert step.status["deployingRevision"] == "v2"
        assert at(analysis_of(step)["failingSince"]) == since
        assert step.now < since + timedelta(seconds=60)
        # The next call comes no later than the tolerance's end.
        assert step.now + timedelta(seconds=step.response.meta.ttl.seconds) \
            <= since + timedelta(seconds=60)
        assert "rolls back at" in progressing(step).message
    assert rolled_back is failing[-1]
    assert rolled_back.now == since + timedelta(seconds=60)
    # One Warning naming the metric and the figures; Progressing=False AnalysisFailed.
    warnings = [r.message for s in world.history for r in s.response.results
                if r.severity == fnv1.SEVERITY_WARNING]
    assert len(warnings) == 1
    assert "error rate 5% over 1800 requests > 1% (baseline 0.5%)" in warnings[0]
    assert "failed for 60s" in warnings[0] and "rolled back to 'v1'" in warnings[0]
    assert progressing(rolled_back).status == fnv1.STATUS_CONDITION_FALSE
    assert progressing(rolled_back).reason == "AnalysisFailed"
    assert "error rate 5%" in progressing(rolled_back).message
    assert rolled_back.status["phase"] == "Failed"
    assert rolled_back.status["currentRevision"] == "v1"
    assert not any("Promoted" in r.message for s in world.history for r in s.response.results)
    # Green goes; blue stays at N; the failure stays reported, the verdict visible.
    world.run_until(lambda w: not w.replicas("v2"), check=check)
    for _ in range(10):
        step = world.step()
        check(world, step)
        assert progressing(step).reason == "AnalysisFailed"
        assert analysis_of(step)["verdict"] == "Fail"
    assert len(world.replicas("v1")) == 3


def test_approval_does_not_override_a_fail():
    world = started(analysed(), Fate(warmup=30, service=SLOW))
    world.run_until(lambda w: analysis_of(w.history[-1]).get("verdict") == "Fail", check=check)
    world.spec["promote"] = "v2"
    world.run_until(lambda w: w.status.get("failedRevision") == "v2", check=check)
    warning = world.history[-1].response.results[0].message
    assert "TTFT p95 1s over 1800 requests > 1.5 x baseline 0.5s (0.75s)" in warning
    assert world.status["currentRevision"] == "v1"


def test_a_good_green_is_promoted_only_on_pass():
    # 1500 requests are needed: green has them only once all three serve the preview route.
    world = started(analysed(auto=True, minRequests=1500), Fate(warmup=30, service=GOOD))
    world.run_until(lambda w: w.status.get("currentRevision") == "v2", check=check)
    promoted = world.history[-1]
    gate = [s for s in world.history if s.status.get("phase") == "AwaitingPromotion"]
    assert gate, "green was promoted without waiting for enough traffic"
    assert all(analysis_of(s)["verdict"] == "Inconclusive" for s in gate)
    assert progressing(gate[0]).reason == "AnalysisInconclusive"
    assert analysis_of(promoted)["verdict"] == "Pass"
    assert "failingSince" not in analysis_of(promoted)
    assert analysis_of(promoted)["evaluatedTime"] == promoted.status["lastProgressTime"] \
        or at(analysis_of(promoted)["evaluatedTime"]) == promoted.now
    (event,) = [r.message for r in promoted.response.results if "Promoted" in r.message]
    assert "analysis passed: v2 error rate 0.5% over 1800 requests" in event
    world.run_until(lambda w: not w.replicas("v1"), check=check)
    # The verdict that promoted v2 stays visible until the next rollout.
    assert world.status["analysis"]["verdict"] == "Pass"


def test_a_passing_green_still_waits_for_approval_without_auto_promote():
    world = started(analysed(), Fate(warmup=30, service=GOOD))
    world.run_until(lambda w: analysis_of(w.history[-1]).get("verdict") == "Pass", check=check)
    for _ in range(10):
        step = world.step()
        check(world, step)
        assert step.status["phase"] == "AwaitingPromotion"
        assert progressing(step).reason == "AwaitingPromotion"
        assert "analysis of 'v2' passed" in progressing(step).message
    world.spec["promote"] = "v2"
    promoted = world.step()
    assert promoted.status["currentRevision"] == "v2"


def test_an_inconclusive_green_waits_and_is_promoted_on_approval():
    # No preview route: green takes no traffic at all, so nothing can be judged.
    world = started(analysed(auto=True, preview=False), Fate(warmup=30, service=GOOD))
    world.run_until(lambda w: w.status.get("phase") == "AwaitingPromotion", check=check)
    for _ in range(200):  # far past the progress deadline: waiting at the gate is no failure
        step = world.step()
        check(world, step)
        assert step.status["phase"] == "AwaitingPromotion"
        assert analysis_of(step)["verdict"] == "Inconclusive"
        assert "v2 has 0 requests from 3 of 3 serving replicas" in analysis_of(step)["message"]
        assert progressing(step).reason == "AnalysisInconclusive"
        assert "spec.promote: v2" in progressing(step).message
        assert step.response.meta.ttl.seconds == 60
    assert not any(s.response.results for s in world.history[-200:])
    world.spec["promote"] = "v2"
    promoted = world.step()
    check(world, promoted)
    assert promoted.status["currentRevision"] == "v2"
    (event,) = [r.message for r in promoted.response.results]
    assert "approved by spec.promote, over an inconclusive analysis" in event


def test_a_fail_shorter_than_the_tolerance_is_forgiven_on_pass():
    # Green errs for 40 s, serves well for 40 s, errs again...: no Fail lasts 60 s.
    flapping = Fate(warmup=30, service=ERRORING, service_alt=GOOD, service_period=40)
    world = started(analysed(), flapping)
    world.run_until(lambda w: len(w.history) > 80, check=check)
    verdicts = [analysis_of(s).get("verdict") for s in world.history]
    assert "Fail" in verdicts and "Pass" in verdicts
    assert "failedRevision" not in world.status
    for step in world.history:
        record = analysis_of(step)
        if record.get("verdict") == "Pass":
            assert "failingSince" not in record
        if record.get("verdict") == "Fail":
            assert step.now - at(record["failingSince"]) < timedelta(seconds=60)


def test_stale_metrics_are_inconclusive_and_keep_a_failure_running():
    # Green errs, then its adapter stops publishing: stale figures judge nothing,
    # and prove no recovery either, so the Fail's clock keeps running.
    world = started(analysed(failureToleranceSeconds=300),
                    Fate(warmup=30, service=ERRORING, metrics_stale_after=40))
    world.run_until(lambda w: analysis_of(w.history[-1]).get("verdict") == "Fail", check=check)
    since = analysis_of(world.history[-1])["failingSince"]
    world.run_until(lambda w: analysis_of(w.history[-1]).get("verdict") == "Inconclusive",
                    check=check)
    step = world.history[-1]
    assert "no usable metrics" in analysis_of(step)["message"]
    assert analysis_of(step)["failingSince"] == since
    assert step.status["deployingRevision"] == "v2"


def test_without_analysis_no_status_analysis_is_written():
    spec = deployment(3, ("v1", "v2"), active="v1", strategy=blue_green(auto=True),
                      preview=True)
    world = started(spec, Fate(warmup=30, service=ERRORING))
    world.run_until(lambda w: w.status.get("currentRevision") == "v2", check=check)
    assert not any("analysis" in s.status for s in world.history)


def test_a_new_rollout_drops_the_previous_verdict():
    world = started(analysed(auto=True), Fate(warmup=30, service=ERRORING))
    world.run_until(lambda w: w.status.get("failedRevision") == "v2", check=check)
    assert world.status["analysis"]["verdict"] == "Fail"
    world.spec["revisions"].append({**world.spec["revisions"][0], "name": "v3"})
    world.spec["activeRevision"] = "v3"
    step = world.step()
    assert step.status["deployingRevision"] == "v3"
    assert "analysis" not in step.status


def test_an_approval_given_early_promotes_over_the_first_inconclusive_verdict():
    # Green has served no preview traffic when it first reaches the gate, so the
    # verdict then is Inconclusive, which an approval overrides: approve after
    # reading status.analysis to have the gate judge green first.
    world = started(analysed(), Fate(warmup=30, service=SLOW))
    world.spec["promote"] = "v2"
    world.run_until(lambda w: w.status.get("currentRevision") == "v2", check=check)
    promoted = world.history[-1]
    assert analysis_of(promoted)["verdict"] == "Inconclusive"
    assert "v2 has 0 requests" in analysis_of(promoted)["message"]


class JudgedCourse(RollingUpdateCourse):
    """A RollingUpdate course with the SLO gate on for every call of a rollout, as a canary
    turns it on from its first analysis step: the gate works for any strategy that asks."""

    def analysis_on(self, deploying: Any) -> bool:
        return True


class JudgedRollingUpdate(RollingUpdateStrategy):
    def course_for(self, rollout: Any, limits: Any) -> JudgedCourse:
        return JudgedCourse(rollout, limits)


def test_any_strategy_turning_the_gate_on_gets_its_verdict_timers_and_rollback(monkeypatch):
    monkeypatch.setitem(strategies.REGISTRY, "RollingUpdate", JudgedRollingUpdate())
    spec = deployment(3, ("v1", "v2"), active="v1",
                      strategy={**rolling(surge=1), "analysis": dict(ANALYSIS)})
    world = started(spec, Fate(warmup=30, service=ERRORING))
    world.run_until(lambda w: w.status.get("failedRevision") == "v2", check=invariants.check)
    failing = [s for s in world.history if analysis_of(s).get("verdict") == "Fail"]
    since = at(analysis_of(failing[0])["failingSince"])
    assert failing[-1].now == since + timedelta(seconds=60)
    for step in failing[:-1]:
        assert step.now + timedelta(seconds=step.response.meta.ttl.seconds) \
            <= since + timedelta(seconds=60)
    warnings = [r.message for s in world.history for r in s.response.results
                if r.severity == fnv1.SEVERITY_WARNING]
    assert len(warnings) == 1 and "v2 error rate 5%" in warnings[0]
    assert progressing(world.history[-1]).reason == "AnalysisFailed"
    world.run_until(lambda w: not w.replicas("v2"), check=invariants.check)
    assert len(world.replicas("v1")) == 3
