"""Progress and failure of the deploying revision, judged once per call.

Like the Kubernetes deployment controller's progress.go: is the deploying
revision making progress, has it reached its gate, has it failed (every
replica Failed, or no progress for progressDeadlineSeconds)?
`judge` asks the strategy's course the questions that differ between
strategies (has it reached its gate, is the analysis gate on, may it pass)
and applies what follows through function/planner/revisions.py: a rollback, a
promotion, a failing first deploy (docs/rollout.md#rollback).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from function import naming
from function.classify import Replica, all_failed, serves_in_full
from function.observe import PriorStatus
from function.planner import capacity, revisions
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
    from function.planner.course import Course


def judge(rollout: Rollout, course: Course) -> Gate:
    """Before any replica is planned: has the deploying revision progressed, failed, or
    reached its gate? Rolls back, promotes or reports a failing first deploy.

    In order: the course moves to its gate (course.reach_gate: a canary through
    every step that is done), progress is tracked, the SLO gate judges where the
    course says it is on (a Fail that lasted its tolerance rolls back), then the
    course passes its gate (a promotion), or a revision that serves in full
    stands, or the failure rules apply. Returns the gate: awaiting approval, and
    the timers that will change it (the progress deadline, a soak's end).
    """
    state, spec = rollout.state, rollout.spec
    if state.deploying is None:
        return Gate()
    d_replicas = rollout.replicas_of(state.deploying)
    at_gate = course.reach_gate(d_replicas)
    track_progress(state, rollout.prior, d_replicas, at_gate, rollout.now)
    if course.analysis_on(d_replicas):
        course.judge_analysis()
    if course.analysis is not None and course.analysis.rolled_back:
        return Gate()  # by the SLO gate, judged here or in reaching the gate
    if at_gate:
        passage = course.pass_gate(d_replicas)
        if passage.promote_because is not None:
            revisions.promote(state, rollout.events, passage.promote_because)
        return passage.gate
    if serves_in_full(d_replicas, rollout.n):
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
        revisions.roll_back(state, failure, message, rollout.events)
    else:
        revisions.fail_first_deploy(state, failure,
                                    message if rollout.prior.phase != PHASE_FAILED else None,
                                    rollout.events)
    return Gate()


def ignored_promote(rollout: Rollout, gate: Gate) -> str:
    """"; <note>" while the rollout awaits approval and spec.promote names another revision
    than the deploying one, else "".

    The note is also a Warning, once: not again while the previous Progressing
    message already carries it.
    """
    spec, state, prior = rollout.spec, rollout.state, rollout.prior
    if (not gate.awaiting or state.deploying is None or state.rolled_back
            or state.failing_first_deploy or spec.promote is None or rollout.approved):
        return ""
    note = (f"spec.promote names {spec.promote!r}, not the deploying revision "
            f"{state.deploying!r}; it is ignored")
    previous = prior.progressing.message if prior.progressing else None
    if not previous or note not in previous:
        rollout.events.append(Event(Severity.WARNING, note))
    return f"; {note}"


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
    if all_failed(d_replicas):
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
