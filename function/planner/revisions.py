"""The revision state machine: which revision is current, deploying, failed.

Every change of the revision registers lives here, so the state machine reads
in one place (docs/rollout.md#revisions):

- decide_revisions, once per call from the spec, the status written before
  and the classified replicas: bootstrap, lost status, start, pre-emption,
  abort, a failed revision kept out;
- roll_back, promote, complete and fail_first_deploy, applied where the
  planner decides them (function/planner/progress.py, the strategies' courses,
  function/planner/__init__.py).

Each change adds its event, and a Transition that logs and metrics report.
Nothing here decides *when*: that is the progress rules' and the strategies'.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from function import naming
from function.classify import Replica
from function.observe import Observed, PriorStatus, get, to_plain
from function.planner.types import (
    ABORTED,
    COMPLETED,
    FAILED,
    PREEMPTED,
    PROMOTED,
    ROLLED_BACK,
    STARTED,
    Event,
    RevisionInfo,
    RevisionState,
    Severity,
    Transition,
)
from function.spec import (
    DEFAULT_PORT,
    STRATEGY_TYPES,
    InvalidSpec,
    Revision,
    Spec,
    parse_health_check,
)

MAX_PORT = 65535  # the largest TCP port, as the API's Port type bounds it


def revision_infos(spec: Spec, observed: Observed) -> dict[str, RevisionInfo]:
    """Every revision the call deals with: the listed ones, then those only observed."""
    infos = {
        rev.name: RevisionInfo(
            name=rev.name,
            template=rev,
            port=rev.port,
            health_check=rev.health_check,
            template_hash=naming.template_hash(revision_content(rev)),
        )
        for rev in spec.revisions
    }
    for replica in observed.replicas:
        if replica.revision not in infos:
            infos[replica.revision] = unlisted_revision(replica.revision, replica.raw_spec)
    return infos


def unlisted_revision(name: str, raw_spec: object) -> RevisionInfo:
    """A revision gone from spec.revisions, known only from a replica's observed spec."""
    port = DEFAULT_PORT
    raw_port = get(get(raw_spec, "engine"), "port")
    if (isinstance(raw_port, int | float) and not isinstance(raw_port, bool)
            and float(raw_port).is_integer() and 1 <= raw_port <= MAX_PORT):
        port = int(raw_port)
    health_check = None
    raw_check = get(raw_spec, "healthCheck")
    if raw_check is not None:
        try:
            health_check = parse_health_check(to_plain(raw_check), "healthCheck", port)
        except InvalidSpec:
            health_check = None
    return RevisionInfo(name=name, template=None, port=port, health_check=health_check,
                        template_hash=None)


def revision_content(rev: Revision) -> dict:
    """What a replica of the revision runs, copied to its spec and hashed into its label."""
    content: dict = {"model": rev.model, "engine": rev.engine}
    if rev.health_check is not None:
        content["healthCheck"] = rev.health_check.as_dict()
    return content


def infer_current(replicas: Iterable[Replica], spec: Spec,
                  routed: frozenset[str]) -> str | None:
    """The revision with the most available replicas, or None when none is available.

    Ties go first to the revision the observed main route carries more of (it
    was serving, so a green awaiting promotion is never promoted by a lost
    status), then to the later listed one; a revision no longer listed loses
    every tie: it cannot be rebuilt. A revision with no available replica was
    never shown to serve, so it is never inferred as current: with none
    available anywhere the active revision continues as a first deploy.
    """
    available: dict[str, int] = defaultdict(int)
    carried: dict[str, int] = defaultdict(int)
    for replica in replicas:
        available[replica.revision] += 1 if replica.available else 0
        carried[replica.revision] += 1 if replica.backend_name in routed else 0
    if not any(available.values()):
        return None
    listed = {rev.name for rev in spec.revisions}
    return max(available, key=lambda name: (
        available[name], carried[name], name in listed, spec.revision_order(name), name))


def decide_revisions(  # noqa: PLR0913 -- the revisions step's inputs, each read here
    spec: Spec, prior: PriorStatus, replicas: list[Replica], infos: dict[str, RevisionInfo], *,
    now: datetime, events: list[Event], routed: frozenset[str] = frozenset(),
) -> RevisionState:
    """The revision registers of this call: C, D, F and what changed (docs/rollout.md#revisions).

    A revision edited in place is reported first (a Warning per revision), then:
    bootstrap and lost status (C inferred from the replicas; routed: the
    backends the observed main route carries, for ties), start and
    pre-emption, abort, a failed revision. Each transition adds its event.
    """
    report_in_place_edits(replicas, infos, events)
    target = spec.active_revision
    current, deploying, failed = (
        prior.current_revision,
        prior.deploying_revision,
        prior.failed_revision,
    )
    pinned = prior.rollout_strategy if prior.rollout_strategy in STRATEGY_TYPES else None
    state = RevisionState(
        current=current,
        deploying=deploying,
        failed=failed,
        strategy=(pinned if deploying and pinned else spec.strategy.type),
        rollout_start=prior.rollout_start_time,
        last_progress=prior.last_progress_time,
    )

    if state.current is None and state.deploying is None and replicas:
        state.current = infer_current(replicas, spec, routed)
        if state.current is not None:
            events.append(Event(Severity.WARNING,
                f"status.currentRevision was lost; inferred {state.current!r} from the "
                "observed replicas (the revision with the most available replicas)"))
    if state.failed is not None and state.failed != target:
        state.failed = None
    _transition(state, spec, now, events)
    return state


def _transition(state: RevisionState, spec: Spec, now: datetime, events: list[Event]) -> None:
    """Move the registers toward the target T = spec.activeRevision, once C is settled.

    No C: T deploys as a first deploy (pre-empting another one). T = C: abort any
    D. T = F: stay on C, dropping a D that is not T. Else T starts, pre-empting D.
    docs/rollout.md#revisions, rules 1 and 4 to 6.
    """
    target = spec.active_revision
    if state.current is None:
        if state.deploying is None:
            _start(state, spec, now, events,
                   f"Deploying revision {target!r} ({spec.replicas} replicas)")
        elif state.deploying != target:
            _start(state, spec, now, events,
                   f"Revision {target!r} pre-empts the deployment of {state.deploying!r}")
    elif target == state.current:
        if state.deploying is not None:
            events.append(Event(Severity.NORMAL,
                f"Rollout of {state.deploying!r} aborted: activeRevision is back to "
                f"{state.current!r}"))
            _abort(state)
    elif target == state.failed:
        if state.deploying is not None and state.deploying != target:
            _abort(state)
    elif state.deploying is None:
        _start(state, spec, now, events,
               f"Rolling out revision {target!r} to replace {state.current!r} "
               f"({spec.strategy.type})")
    elif state.deploying != target:
        previous = state.deploying
        _start(state, spec, now, events,
               f"Revision {target!r} pre-empts the rollout of {previous!r}; "
               f"{previous!r} is retired")


def _start(state: RevisionState, spec: Spec, now: datetime, events: list[Event],
           reason: str) -> None:
    """Start rolling out T with this call's strategy: D = T, rolloutStartTime =
    lastProgressTime = now, and one Normal event saying `reason`.
    """
    if state.deploying is not None:
        state.transitions.append(Transition(PREEMPTED, state.deploying))
    state.deploying = spec.active_revision
    state.strategy = spec.strategy.type
    state.rollout_start = state.last_progress = now
    state.started = True
    state.transitions.append(Transition(STARTED, state.deploying))
    events.append(Event(Severity.NORMAL, reason))


def _abort(state: RevisionState) -> None:
    """Clear the deploying revision: its replicas become orphans (docs/rollout.md#revisions)."""
    assert state.deploying is not None
    state.transitions.append(Transition(ABORTED, state.deploying))
    state.deploying = None
    state.aborted = True


def report_in_place_edits(replicas: list[Replica], infos: dict[str, RevisionInfo],
                          events: list[Event]) -> None:
    """One Warning per revision whose observed replicas carry another template hash."""
    expected = {name: info.template_hash for name, info in infos.items()}
    edited = sorted({
        r.revision for r in replicas
        if r.observed.template_hash is not None
        and expected[r.revision] is not None
        and r.observed.template_hash != expected[r.revision]
    })
    for name in edited:
        events.append(Event(Severity.WARNING,
            f"Revision {name!r} was edited in place; its replicas are updated in place "
            "without a rollout. Add a new revision to roll out a change safely."))


def roll_back(state: RevisionState, reason: str, message: str, events: list[Event],
              detail: str | None = None) -> None:
    """Roll the deploying revision back: it becomes the failed one and is cleared, and
    one Warning says it is not retried until activeRevision changes.

    reason is the Progressing reason (ProgressDeadlineExceeded, RevisionFailed,
    AnalysisFailed); detail what the Progressing message adds (the figures that
    failed an analysis).
    """
    assert state.deploying is not None
    events.append(Event(Severity.WARNING,
        f"{message}; rolled back to {state.current!r}. "
        f"{state.deploying!r} will not be retried until activeRevision changes."))
    state.transitions.append(Transition(ROLLED_BACK, state.deploying, reason))
    state.failed = state.deploying
    state.deploying = None
    state.rolled_back = reason
    if detail is not None:
        state.rollback_detail = detail


def fail_first_deploy(state: RevisionState, reason: str, message: str | None,
                      events: list[Event]) -> None:
    """Report a failing first deploy: there is no earlier revision to return to, so its
    failed replicas keep being replaced. message: the Warning's text, or None when
    the failure was reported already (no second Warning).
    """
    assert state.deploying is not None
    state.failing_first_deploy = reason
    if message is not None:
        state.transitions.append(Transition(FAILED, state.deploying, reason))
        events.append(Event(Severity.WARNING, f"{message}; there is no earlier revision to "
                            "return to, so failed replicas keep being replaced"))


def promote(state: RevisionState, events: list[Event], why: str) -> None:
    """Promote the deploying revision: it becomes current, the current one retires
    (blue, under BlueGreen), and one Normal event says why.
    """
    assert state.deploying is not None
    events.append(Event(Severity.NORMAL,
        f"Promoted revision {state.deploying!r} ({why}); {state.current!r} scales down"))
    state.transitions.append(Transition(PROMOTED, state.deploying))
    state.retired_current = state.current
    state.current = state.deploying
    state.deploying = None
    state.promoted = True


def complete(state: RevisionState, events: list[Event]) -> None:
    """The deploying revision is rolled out: it becomes current, in this very response."""
    deploying = state.deploying
    assert deploying is not None
    events.append(Event(Severity.NORMAL, f"Revision {deploying!r} is rolled out"
                        + (f", replacing {state.current!r}" if state.current else "")))
    state.transitions.append(Transition(COMPLETED, deploying))
    state.current = deploying
    state.deploying = None
    state.completed = True
    state.failing_first_deploy = None
