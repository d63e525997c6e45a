"""The analysis gate: this call's SLO verdict on the deploying revision and what it does
(docs/rollout.md#the-analysis-gate).

Strategy-independent. The strategy's course says when the gate judges
(Course.analysis_on; BlueGreen: at its promotion gate; Canary: from the first
`analysis` step on) and asks for the verdict once per call
(Course.judge_analysis, which calls `evaluate`). `evaluate` judges the
deploying revision's Serving replicas against the limits and the current
revision (function/analysis.py), keeps `failingSince` through
status.analysis, and rolls back (function/planner/revisions.py) when a Fail
has lasted failureToleranceSeconds. The course then decides what the verdict
means for its own gate (promote on Pass, wait on Inconclusive, ...).
`status_record` is what status.analysis says after the call.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from function.analysis import Figures, Verdict, combine, judge
from function.observe import format_time, read_metrics
from function.planner import revisions
from function.planner.types import (
    REASON_ANALYSIS_FAILED,
    REASON_ANALYSIS_INCONCLUSIVE,
    AnalysisOutcome,
    AnalysisRecord,
    Rollout,
)


def evaluate(rollout: Rollout) -> AnalysisOutcome | None:
    """Judge the deploying revision now; None without spec.strategy.analysis or a deploying
    revision. Called once per call, through Course.judge_analysis, which keeps the
    outcome for the rest of the call. failingSince survives only calls that
    evaluate or carry status.analysis (status_record).

    - Pass: failingSince is cleared.
    - Inconclusive: failingSince is kept as it was (only a Pass clears it).
    - Fail: failingSince is kept, or set to now; once now >= failingSince +
      failureToleranceSeconds the rollout is rolled back (revisions.roll_back:
      failedRevision, Progressing=False reason AnalysisFailed, one Warning
      naming the metric and figures) and rolled_back is True; before that, the
      tolerance's end is a timer. With no current revision (a first deploy)
      there is nothing to roll back to: the Fail is reported and tolerated for
      as long as it lasts.

    Example: failureToleranceSeconds 60, Fail first seen at 10:00:00 ->
    failingSince 10:00:00 and timer 10:01:00; a call at 10:00:40 that still fails
    keeps both; a call at 10:01:00 that still fails rolls back.
    """
    limits = rollout.spec.strategy.analysis
    state, now = rollout.state, rollout.now
    if limits is None or state.deploying is None:
        return None
    deploying = state.deploying
    baseline = figures(rollout, state.current) if state.current is not None else None
    judgement = judge(limits, figures(rollout, deploying), baseline)

    failing_since = carried_failing_since(rollout)
    rolled_back = False
    timers: tuple[datetime, ...] = ()
    if judgement.verdict is Verdict.PASS:
        failing_since = None
    elif judgement.verdict is Verdict.FAIL:
        failing_since = failing_since or now
        tolerance = limits.failure_tolerance_seconds
        ends = failing_since + timedelta(seconds=tolerance)
        if now < ends:
            timers = (ends,)
        elif state.current is not None:
            failed_for = int((now - failing_since).total_seconds())
            revisions.roll_back(state, REASON_ANALYSIS_FAILED,
                                f"Analysis of revision {deploying!r} failed for {failed_for}s "
                                f"(failureToleranceSeconds {tolerance}): {judgement.message}",
                                rollout.events, detail=judgement.message)
            rolled_back = True
    return AnalysisOutcome(
        verdict=judgement.verdict, message=judgement.message, failed=judgement.failed,
        failing_since=failing_since, rolled_back=rolled_back, timers=timers)


def figures(rollout: Rollout, revision: str) -> Figures:
    """The revision's service levels, from the metrics of its Serving replicas."""
    return combine(revision,
                   (read_metrics(r.observed.raw_metrics) for r in rollout.replicas_of(revision)
                    if r.serving),
                   rollout.now, rollout.spec.health_policy.status_ttl_seconds)


def carried_failing_since(rollout: Rollout) -> datetime | None:
    """failingSince as status.analysis has it, if it is about the rollout in flight."""
    prior, state = rollout.prior, rollout.state
    if (prior.analysis is None or state.started
            or prior.deploying_revision != state.deploying):
        return None
    return prior.analysis.failing_since


def status_record(rollout: Rollout, outcome: AnalysisOutcome | None) -> AnalysisRecord | None:
    """status.analysis after this call, given this call's outcome (None: the gate did not
    judge).

    This call's verdict when the gate ran; otherwise the one written before,
    unchanged, as long as no new rollout started (so the verdict that promoted
    or rolled back a revision, or the one a rollout had when it left its gate,
    stays visible); absent without spec.strategy.analysis.
    """
    if rollout.spec.strategy.analysis is None:
        return None
    if outcome is not None:
        return AnalysisRecord(verdict=outcome.verdict.value, message=outcome.message,
                              failing_since=outcome.failing_since, evaluated_time=rollout.now)
    prior = rollout.prior.analysis
    if (prior is None or rollout.state.started or prior.verdict is None
            or prior.message is None):
        return None
    return AnalysisRecord(verdict=prior.verdict, message=prior.message,
                          failing_since=prior.failing_since, evaluated_time=prior.evaluated_time)


def waiting(outcome: AnalysisOutcome, revision: str,
            tolerance_seconds: int) -> tuple[str | None, str]:
    """The Progressing reason (None: the waiting strategy's own) and message while a gate
    waits on this outcome.

    Examples: Inconclusive -> ("AnalysisInconclusive", "analysis of 'v2' is
    inconclusive: v2 has 40 requests ...; waiting for a Pass, or spec.promote:
    v2 to promote it anyway"); a Fail being tolerated -> (None, "analysis of
    'v2' failing since 2026-11-22T10:00:00Z: ...; rolls back at
    2026-11-22T10:01:00Z unless it passes"); a Pass -> (None, "analysis of 'v2'
    passed: ...").
    """
    if outcome.verdict is Verdict.INCONCLUSIVE:
        return (REASON_ANALYSIS_INCONCLUSIVE,
                f"analysis of {revision!r} is inconclusive: {outcome.message}; waiting for "
                f"a Pass, or spec.promote: {revision} to promote it anyway")
    if outcome.verdict is Verdict.FAIL and outcome.failing_since is not None:
        ends = outcome.failing_since + timedelta(seconds=tolerance_seconds)
        return (None, f"analysis of {revision!r} failing since "
                f"{format_time(outcome.failing_since)}: {outcome.message}; rolls back at "
                f"{format_time(ends)} unless it passes")
    return (None, f"analysis of {revision!r} passed: {outcome.message}")
