"""The report: status rows and counts, phase, conditions, TTL, as one Plan."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from function.classify import Health, Lifecycle, Replica, warmup_budget
from function.planner import arithmetic, capacity
from function.planner.analysis_gate import status_record
from function.planner.course import Course
from function.planner.ledger import Ledger
from function.planner.types import (
    DEFAULT_TTL_SECONDS,
    PHASE_AWAITING_PROMOTION,
    PHASE_FAILED,
    PHASE_PROGRESSING,
    PHASE_STABLE,
    REASON_ABORTED,
    REASON_COMPLETE,
    REASON_REVISION_FAILED,
    STICKY_FALSE_REASONS,
    Backend,
    ConditionOut,
    Plan,
    PlannedReplica,
    ReplicaCounts,
    RevisionRow,
    RevisionState,
    Rollout,
    Routes,
)
from function.spec import Spec


def report(rollout: Rollout, course: Course, ledger: Ledger, planned: list[PlannedReplica],
           routes: Routes) -> Plan:
    """The Plan: planned replicas in order, routes, status rows and counts, conditions, TTL.

    Only formats what the earlier steps decided: the revision registers, the
    course (its gate, analysis and messages), the ledger and the routes.
    """
    spec, state, infos = rollout.spec, rollout.state, rollout.infos
    n = spec.replicas
    main = routes.main
    route = spec.route
    main_backends = main if route is not None else None
    preview_backends = routes.preview if (route is not None and route.preview is not None
                                          and state.deploying is not None) else None

    weights: dict[str, int] = defaultdict(int)
    for b in main:
        weights[b.revision] += b.weight
    percentages = arithmetic.traffic_percentages(weights)
    warmups = {name: timedelta(seconds=warmup_budget(info.health_check))
               for name, info in infos.items()}
    tally = Tally.of(planned, state.deploying or state.current, warmups)
    timers = [*course.gate.timers, *tally.next_changes, *capacity.timers(rollout, course)]
    if course.analysis is not None:
        timers.extend(course.analysis.timers)  # a Fail being tolerated ends
    rows = [RevisionRow(name=name, replicas=replicas, available=available,
                        traffic_weight=percentages.get(name, 0))
            for name, (replicas, available) in tally.by_revision.items()]
    waiting = tally.unschedulable
    counts = ReplicaCounts(desired=n, total=len(planned) - len(waiting), ready=tally.ready,
                           available=tally.available, updated=tally.updated,
                           unschedulable=len(waiting))

    serving = tally.serving
    needed = arithmetic.minimum_serving(n, course.limits.unavailable)
    available = serving >= needed
    phase = decide_phase(state, course.gate.awaiting)
    conditions = [
        ConditionOut("Available", available,
                     "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                     f"{serving} of {n} replicas serving; at least {needed} required"),
        progressing_condition(rollout, course, routes, phase,
                              capacity.note(rollout, course, ledger, waiting, serving)),
        routed_condition(spec, main, planned),
    ]

    ttl = DEFAULT_TTL_SECONDS
    if timers:
        seconds = (min(timers) - rollout.now).total_seconds()
        ttl = max(1, min(DEFAULT_TTL_SECONDS, int(-(-seconds // 1))))

    return Plan(
        replicas=planned,
        revisions=infos,
        main_backends=main_backends,
        preview_backends=preview_backends,
        current_revision=state.current,
        deploying_revision=state.deploying,
        failed_revision=state.failed,
        phase=phase,
        rollout_strategy=state.strategy if state.deploying else None,
        rollout_start_time=state.rollout_start,
        last_progress_time=state.last_progress,
        counts=counts,
        rows=rows,
        conditions=conditions,
        events=rollout.events,
        ttl_seconds=ttl,
        available=available,
        header_rule=routes.header_rule,
        extra_status=course.status(routes),
        analysis=status_record(rollout, course.analysis),
        transitions=tuple(state.transitions),
    )


@dataclass
class Tally:
    """What the status reports of the planned replicas, counted in one pass."""

    ready: int = 0  # observed Ready
    available: int = 0  # Available and not draining
    serving: int = 0  # Serving and not draining
    updated: int = 0  # of the target revision and not draining
    unschedulable: list[Replica] = field(default_factory=list)  # waiting for an accelerator
    by_revision: dict[str, tuple[int, int]] = field(default_factory=dict)  # (replicas, available)
    next_changes: list[datetime] = field(default_factory=list)  # when time alone changes one

    @classmethod
    def of(cls, planned: list[PlannedReplica], target: str | None,
           warmups: dict[str, timedelta]) -> Tally:
        """Count the planned replicas; `warmups` is each revision's warm-up budget.

        A replica created by this very response has no classification yet, but
        its warm-up budget already runs (from first desired), so its expiry is a
        timer too: initialDelaySeconds 30 -> the creating response asks to be
        called again within 30 s, not the default 60.
        """
        tally = cls()
        timers = tally.next_changes
        unschedulable = Lifecycle.UNSCHEDULABLE
        replicas: dict[str, int] = defaultdict(int)
        available: dict[str, int] = defaultdict(int)
        for p in planned:
            revision = p.revision
            replicas[revision] += 1
            replica = p.replica
            if replica is not None and replica.observed_ready:
                tally.ready += 1
            if p.draining_since is not None:
                timers.append(p.draining_since + timedelta(seconds=p.drain_seconds or 0))
                continue
            if revision == target:
                tally.updated += 1
            if replica is None:
                timers.append(p.desired_since + warmups[revision])
                continue
            if replica.lifecycle is unschedulable:
                tally.unschedulable.append(replica)
            if replica.available:
                tally.available += 1
                available[revision] += 1
            if replica.serving:
                tally.serving += 1
            if replica.next_change is not None:
                timers.append(replica.next_change)
        tally.by_revision = {name: (count, available[name]) for name, count in replicas.items()}
        return tally


def decide_phase(state: RevisionState, awaiting: bool) -> str:
    """status.phase: Failed on a rollback or a failing first deploy; AwaitingPromotion
    or Progressing while a revision deploys; Failed while activeRevision still
    names the failed revision; else Stable.
    """
    if state.rolled_back or state.failing_first_deploy:
        return PHASE_FAILED
    if state.deploying is not None:
        return PHASE_AWAITING_PROMOTION if awaiting else PHASE_PROGRESSING
    if state.failed is not None:
        return PHASE_FAILED
    return PHASE_STABLE


def progressing_condition(rollout: Rollout, course: Course, routes: Routes, phase: str,
                          shortage: str = "") -> ConditionOut:
    """Where the rollout stands: advancing (True) or stopped by a failure or abort (False).

    A False reason (deadline, failed revision, failed analysis, abort) sticks on
    the calls after it until a new rollout completes, so the reason a rollout
    stopped stays visible while the deployment serves its current revision.
    shortage: what a True message adds about replicas waiting for an
    accelerator (capacity.note); a rollback names those of the failed revision,
    and a rollback by the analysis gate the figures that failed.
    """
    stopped = _failed_condition(rollout, phase)
    if stopped is not None:
        return stopped
    state, prior = rollout.state, rollout.prior
    if phase == PHASE_AWAITING_PROMOTION:
        reason, message = course.progressing(True, routes)
        return ConditionOut("Progressing", True, reason,
                            message + course.promote_note + shortage)
    if phase == PHASE_PROGRESSING:
        reason, message = course.progressing(False, routes)
        return ConditionOut("Progressing", True, reason, message + shortage)
    if state.aborted:
        return ConditionOut("Progressing", False, REASON_ABORTED,
                            f"rollout aborted; serving {state.current!r}")
    carried = prior.progressing
    if (not (state.completed or state.promoted) and carried and carried.status == "False"
            and carried.reason in STICKY_FALSE_REASONS):
        return ConditionOut("Progressing", False, carried.reason, carried.message or "")
    return ConditionOut("Progressing", True, REASON_COMPLETE,
                        f"revision {state.current!r} is rolled out{shortage}")


def _failed_condition(rollout: Rollout, phase: str) -> ConditionOut | None:
    """Progressing=False for a rollback, a failing first deploy or phase Failed; else None.

    A rollback names the failed revision's unschedulable replicas and, after a
    Fail of the analysis gate, the figures that failed. While phase is Failed
    the reason that stopped the rollout stays (RevisionFailed when it is lost).
    """
    prior, state = rollout.prior, rollout.state
    if state.rolled_back:
        waited = capacity.describe(capacity.unschedulable(rollout.replicas_of(state.failed)),
                                   rollout.xr_name)
        detail = f": {state.rollback_detail}" if state.rollback_detail else ""
        return ConditionOut("Progressing", False, state.rolled_back,
                            f"rolled back to {state.current!r}; {state.failed!r} failed"
                            + (f" ({waited})" if waited else "") + detail)
    if state.failing_first_deploy:
        return ConditionOut("Progressing", False, state.failing_first_deploy,
                            f"revision {state.deploying!r} is failing and there is no earlier "
                            "revision to return to")
    if phase == PHASE_FAILED:
        carried = prior.progressing
        reason = (carried.reason if carried and carried.reason in STICKY_FALSE_REASONS
                  else REASON_REVISION_FAILED)
        return ConditionOut("Progressing", False, reason,
                            f"revision {state.failed!r} failed to roll out; staying on "
                            f"{state.current!r} until activeRevision changes")
    return None


def routed_condition(spec: Spec, main: list[Backend],
                     planned: list[PlannedReplica]) -> ConditionOut:
    """The Routed condition: True when the main route has a backendRef; when False, why
    (no spec.route, or what the planned replicas are doing: `1 creating, 2 provisioning`).
    """
    if spec.route is None:
        return ConditionOut("Routed", False, "RouteNotConfigured",
                            "spec.route is not set; no HTTPRoute is composed")
    if main:
        return ConditionOut("Routed", True, "BackendsRouted",
                            f"the main route carries {len(main)} backends")
    states: dict[str, int] = defaultdict(int)
    for p in planned:
        if p.replica is None:
            states["creating"] += 1
        elif p.draining:
            states["draining"] += 1
        elif p.replica.available:
            states["available without a published backend"] += 1
        elif p.replica.lifecycle is Lifecycle.RUNNING and p.replica.health is Health.NOT_CHECKED:
            states["awaiting a health check"] += 1
        else:
            states[p.replica.lifecycle.value.lower()] += 1
    detail = ", ".join(f"{count} {what}" for what, count in sorted(states.items())) or "none"
    return ConditionOut("Routed", False, "NoServingEndpoints",
                        f"no replica may take traffic yet (replicas: {detail})")
