"""Progress, rollback, promotion and completion of the deploying revision.

Like the Kubernetes deployment controller's progress.go and rollback.go: is
the deploying revision making progress, has it failed (every replica Failed,
or no progress for progressDeadlineSeconds), and the transitions that end a
rollout: roll back, promote, complete (docs/rollout.md#rollback).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from function import naming
from function.classify import Lifecycle, Replica
from function.observe import PriorStatus
from function.planner import analysis_gate, capacity
from function.planner.types import (
    PHASE_AWAITING_PROMOTION,
    PHASE_FAILED,
    REASON_DEADLINE,
    REASON_REVISION_FAILED,
    Event,
    Gate,
    RevisionInfo,
    RevisionState,
    Rollout,
    Severity,
)
from function.spec import Spec

if TYPE_CHECKING:
    from function.planner.strategies.base import Strategy


def judge_progress(rollout: Rollout, strategy: Strategy) -> Gate:
    """Before any replica is planned: has the deploying revision progressed, failed, or
    reached its gate? Rolls back, promotes or reports a failing first deploy in place.

    Where the strategy says the SLO gate is on, it judges first, and a Fail that
    lasted its tolerance rolls back here (function/planner/analysis_gate.py).
    Returns the gate's verdict (awaiting approval, and the timers that will change
    it: the progress deadline or a soak's end).
    """
    state, spec = rollout.state, rollout.spec
    if state.deploying is None:
        return Gate()
    d_replicas = rollout.replicas_of(state.deploying)
    at_gate = strategy.at_gate(rollout, d_replicas)
    track_progress(state, rollout.prior, d_replicas, at_gate, rollout.now)
    if strategy.analysis_on(rollout, d_replicas):
        analysis_gate.evaluate(rollout)
    if rollout.analysis is not None and rollout.analysis.rolled_back:
        return Gate()  # by the SLO gate, judged here or by the strategy's own step
    if at_gate:
        return strategy.pass_gate(rollout, d_replicas)
    if sum(1 for r in d_replicas if r.serving) >= rollout.n:
        return Gate()  # serves in full and completes: a late call is no reason to roll back
    # A first deploy that is already failing keeps the reason it was reported
    # with: its replacements failing again, or the deadline still passed, is the
    # same failure, not a new one.
    failure = (first_deploy_still_failing(rollout.prior, state, d_replicas, rollout.infos)
               or rollout_failure(spec, state, d_replicas, rollout.now))
    if failure is None:
        assert state.last_progress is not None  # set by track_progress
        return Gate(timers=(state.last_progress
                            + timedelta(seconds=spec.progress_deadline_seconds),))
    message = failure_message(state, failure, d_replicas, rollout.xr_name)
    if state.current is not None:
        roll_back(state, failure, message, rollout.events)
    else:
        state.failing_first_deploy = failure
        if rollout.prior.phase != PHASE_FAILED:
            rollout.events.append(Event(Severity.WARNING, f"{message}; there is no earlier "
                                        "revision to return to, so failed replicas keep "
                                        "being replaced"))
    return Gate()


def track_progress(state: RevisionState, prior: PriorStatus, d_replicas: list[Replica],
                   awaiting: bool, now: datetime) -> None:
    """Progress is a new deploying replica becoming Available, or reaching the gate."""
    if state.last_progress is None:
        state.last_progress = now
    if state.rollout_start is None:
        state.rollout_start = state.last_progress
    if state.started:
        return
    available = sum(1 for r in d_replicas if r.available)
    row = prior.revisions.get(state.deploying or "")
    before = row.available if row is not None and row.available is not None else 0
    if available > before or (awaiting and prior.phase != PHASE_AWAITING_PROMOTION):
        state.last_progress = now


def rollout_failure(spec: Spec, state: RevisionState, d_replicas: list[Replica],
                    now: datetime) -> str | None:
    """Why the deploying revision rolls back now, or None (docs/rollout.md#rollback).

    RevisionFailed when every replica of it that exists has Failed (at least one);
    ProgressDeadlineExceeded once progressDeadlineSeconds have passed since the
    last progress: deadline 600 s, last progress 10:00:00 -> from 10:10:00 on.
    """
    if d_replicas and all(r.lifecycle is Lifecycle.FAILED for r in d_replicas):
        return REASON_REVISION_FAILED
    assert state.last_progress is not None
    if now >= state.last_progress + timedelta(seconds=spec.progress_deadline_seconds):
        return REASON_DEADLINE
    return None


def first_deploy_still_failing(prior: PriorStatus, state: RevisionState,
                               d_replicas: list[Replica],
                               infos: dict[str, RevisionInfo]) -> str | None:
    """The reason a failing first deploy stays reported, or None once it recovers.

    A first deploy has nothing to roll back to, so its failed replicas keep
    being replaced; while the replacements warm up no replica is Failed, yet
    nothing has recovered either. The failure therefore stays reported (phase
    Failed, the same Progressing reason, no new Warning) until a replica of the
    revision is Available, a new rollout starts, or the revision is edited in
    place (its observed replicas carry another template hash).
    """
    carried = prior.progressing
    if (state.started or state.current is not None or prior.phase != PHASE_FAILED
            or prior.deploying_revision != state.deploying or carried is None
            or carried.reason not in (REASON_REVISION_FAILED, REASON_DEADLINE)):
        return None
    info = infos.get(state.deploying or "")
    expected = info.template_hash if info is not None else None
    for replica in d_replicas:
        if replica.available:
            return None
        observed_hash = replica.observed.template_hash
        if expected is not None and observed_hash is not None and observed_hash != expected:
            return None
    return carried.reason


def failure_message(state: RevisionState, reason: str, d_replicas: list[Replica],
                    xr_name: str) -> str:
    """The rollback Warning's text: for RevisionFailed, what the lowest-indexed failed
    replica says; for a deadline, since when nothing progressed and which replicas
    wait for an accelerator.
    """
    if reason == REASON_REVISION_FAILED:
        cause = failure_cause(d_replicas, xr_name)
        return f"Every replica of revision {state.deploying!r} failed{cause}"
    waited = capacity.describe(capacity.unschedulable(d_replicas), xr_name)
    return (f"Revision {state.deploying!r} made no progress since "
            f"{state.last_progress.isoformat() if state.last_progress else 'its start'}"
            + (f" ({waited})" if waited else ""))


def failure_cause(replicas: list[Replica], xr_name: str) -> str:
    """What the lowest-indexed failed replica says of itself, if any says anything."""
    for replica in sorted(replicas, key=lambda r: r.index):
        if replica.observed.message:
            name = naming.replica_name(xr_name, replica.revision, replica.index)
            return f" ({name}: {replica.observed.message})"
    return ""


def roll_back(state: RevisionState, reason: str, message: str, events: list[Event]) -> None:
    """Roll the deploying revision back: it becomes the failed one and is cleared, and
    one Warning says it is not retried until activeRevision changes.
    """
    events.append(Event(Severity.WARNING,
        f"{message}; rolled back to {state.current!r}. "
        f"{state.deploying!r} will not be retried until activeRevision changes."))
    state.failed = state.deploying
    state.deploying = None
    state.rolled_back = reason


def promote(state: RevisionState, events: list[Event], why: str) -> None:
    """Promote the deploying revision: it becomes current, the current one retires
    (blue, under BlueGreen), and one Normal event says why.
    """
    events.append(Event(Severity.NORMAL,
        f"Promoted revision {state.deploying!r} ({why}); {state.current!r} scales down"))
    state.retired_current = state.current
    state.current = state.deploying
    state.deploying = None
    state.promoted = True


def complete(state: RevisionState, events: list[Event]) -> None:
    """The deploying revision is rolled out: it becomes current, in this very response."""
    deploying = state.deploying
    events.append(Event(Severity.NORMAL, f"Revision {deploying!r} is rolled out"
                        + (f", replacing {state.current!r}" if state.current else "")))
    state.current = deploying
    state.deploying = None
    state.completed = True
    state.failing_first_deploy = None
