"""Canary analysis steps gated on service levels, replayed call by call
(docs/rollout.md#the-analysis-gate, #canary).

The current revision publishes good metrics from production traffic; the
canary's depend on its fate. Steps: [setWeight 25, analysis 300 s, setWeight 50].
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tests.fixtures import deployment
from tests.test_analysis_replay import ANALYSIS, GOOD, SLOW
from tests.test_canary_replay import canary, check_canary, progressing, stable_on
from tests.world import Fate, Step, World

STEPS = [{"setWeight": 25}, {"analysis": {"durationSeconds": 300}}, {"setWeight": 50}]


def started(canary_fate: Fate, **analysis: Any) -> World:
    strategy = canary(STEPS)
    strategy["analysis"] = {**ANALYSIS, **analysis}
    spec = deployment(4, ("v1", "v2"), active="v1", strategy=strategy)

    def fate(revision: str, index: int) -> Fate:
        return canary_fate if revision == "v2" else Fate(warmup=30, service=GOOD)

    world = World(spec=spec, fate_for=fate)
    world.run_until(lambda w: stable_on(w, "v1", 4), check=check_canary)
    world.spec["activeRevision"] = "v2"
    return world


def analysis_of(step: Step) -> dict[str, Any]:
    return step.status.get("analysis", {})


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_canary_twice_as_slow_as_the_baseline_rolls_back_after_the_tolerance_not_before():
    world = started(Fate(warmup=30, service=SLOW))
    world.run_until(lambda w: w.status.get("failedRevision") == "v2", check=check_canary)
    failing = [s for s in world.history if analysis_of(s).get("verdict") == "Fail"]
    since = at(analysis_of(failing[0])["failingSince"])
    for step in failing[:-1]:
        assert step.status["deployingRevision"] == "v2", "not before the tolerance"
        assert step.now < since + timedelta(seconds=60)
        assert step.now + timedelta(seconds=step.response.meta.ttl.seconds) \
            <= since + timedelta(seconds=60), "called back by the tolerance's end"
    rolled_back = world.history[-1]
    assert rolled_back is failing[-1]
    assert rolled_back.now >= since + timedelta(seconds=60)
    assert progressing(rolled_back).reason == "AnalysisFailed"
    warnings = [r.message for s in world.history for r in s.response.results
                if "Analysis of revision" in r.message]
    assert len(warnings) == 1
    assert "TTFT" in warnings[0] and "baseline" in warnings[0], warnings[0]
    world.run_until(lambda w: w.replicas() == w.replicas("v1") and len(w.replicas()) == 4,
                    check=check_canary)


def test_a_good_canary_passes_the_analysis_step_only_after_its_duration():
    world = started(Fate(warmup=30, service=GOOD))
    world.run_until(lambda w: w.status.get("canary", {}).get("step") == 1, check=check_canary)
    analysis_started = at(world.status["canary"]["stepStartTime"])
    world.run_until(lambda w: w.status.get("canary", {}).get("step") == 2, check=check_canary)
    step = world.history[-1]
    assert step.now >= analysis_started + timedelta(seconds=300)
    assert analysis_of(step)["verdict"] == "Pass"
    world.run_until(lambda w: stable_on(w, "v2", 4), check=check_canary)
    assert not any(r.severity == 2 for s in world.history for r in s.response.results
                   if "Analysis" in r.message)


def test_a_canary_with_no_traffic_to_judge_waits_for_a_human_then_is_promoted():
    world = started(Fate(warmup=30))  # publishes no metrics: nothing to judge
    world.run_until(lambda w: w.status.get("phase") == "AwaitingPromotion", check=check_canary)
    step = world.history[-1]
    assert step.status["canary"]["step"] == 1
    assert progressing(step).reason == "AnalysisInconclusive"
    assert analysis_of(step)["verdict"] == "Inconclusive"
    for _ in range(30):
        waiting = world.step()
        check_canary(world, waiting)
        assert waiting.status["phase"] == "AwaitingPromotion"
    world.spec["promote"] = "v2"
    world.run_until(lambda w: stable_on(w, "v2", 4), check=check_canary)


def test_before_the_first_analysis_step_nothing_is_judged():
    world = started(Fate(warmup=30, service=SLOW))
    world.run_until(lambda w: w.status.get("canary", {}).get("weight") == 25,
                    check=check_canary)
    assert all(not analysis_of(s) for s in world.history)
