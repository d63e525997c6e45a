"""The rollout planner: from spec, prior status and observed state to a Plan.

One call, no memory but the XR's status: decide the revisions, then which
replicas to keep, drain, drop and create, then what may take traffic and what
to report (docs/rollout.md: #revisions, #strategies, #draining, #routes,
#status-and-conditions). Everything here is pure and deterministic for a
given `now`.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from function import naming, rollout
from function.classify import Classifier, Health, Lifecycle, Replica
from function.observe import Observed, PriorStatus, get, to_plain
from function.spec import (
    BLUE_GREEN,
    DEFAULT_PORT,
    ROLLING_UPDATE,
    STRATEGY_TYPES,
    HealthCheck,
    InvalidSpec,
    Revision,
    Spec,
    parse_health_check,
)

PHASE_STABLE = "Stable"
PHASE_PROGRESSING = "Progressing"
PHASE_AWAITING_PROMOTION = "AwaitingPromotion"
PHASE_FAILED = "Failed"

REASON_DEPLOYING = "NewRevisionDeploying"
REASON_AWAITING_PROMOTION = "AwaitingPromotion"
REASON_COMPLETE = "RolloutComplete"
REASON_DEADLINE = "ProgressDeadlineExceeded"
REASON_REVISION_FAILED = "RevisionFailed"
REASON_ABORTED = "RolloutAborted"
STICKY_FALSE_REASONS = (REASON_DEADLINE, REASON_REVISION_FAILED, REASON_ABORTED)

DEFAULT_TTL_SECONDS = 60


class Severity(enum.Enum):
    NORMAL = "Normal"
    WARNING = "Warning"


@dataclass(frozen=True)
class Event:
    severity: Severity
    message: str


@dataclass(frozen=True)
class ConditionOut:
    type: str
    status: bool
    reason: str
    message: str = ""


@dataclass(frozen=True)
class RevisionInfo:
    """What the planner needs of a revision, listed in the spec or only observed."""

    name: str
    template: Revision | None  # None: missing from spec.revisions, cannot be rebuilt
    port: int
    health_check: HealthCheck | None
    template_hash: str | None


@dataclass(slots=True)
class PlannedReplica:
    key: str
    name: str
    revision: str
    index: int
    replica: Replica | None  # None for a replica created by this call
    desired_since: datetime
    draining_since: datetime | None = None
    drain_seconds: int | None = None
    main_routed: bool = False
    preview_routed: bool = False

    @property
    def draining(self) -> bool:
        return self.draining_since is not None

    @property
    def observed_ready(self) -> bool:
        return self.replica is not None and self.replica.observed_ready

    @property
    def has_endpoint(self) -> bool:
        return self.observed_ready


@dataclass(slots=True)  # one per routed replica: slotted for a cheap __init__
class Backend:
    name: str
    port: int
    weight: int
    revision: str


@dataclass(frozen=True)
class RevisionRow:
    name: str
    replicas: int
    available: int
    traffic_weight: int


@dataclass(frozen=True)
class ReplicaCounts:
    desired: int
    total: int
    ready: int
    available: int
    updated: int


@dataclass
class Plan:
    replicas: list[PlannedReplica]
    revisions: dict[str, RevisionInfo]
    main_backends: list[Backend] | None  # None: no route is composed
    preview_backends: list[Backend] | None
    current_revision: str | None
    deploying_revision: str | None
    failed_revision: str | None
    phase: str
    rollout_strategy: str | None
    rollout_start_time: datetime | None
    last_progress_time: datetime | None
    counts: ReplicaCounts
    rows: list[RevisionRow]
    conditions: list[ConditionOut]
    events: list[Event] = field(default_factory=list)
    ttl_seconds: int = DEFAULT_TTL_SECONDS
    available: bool = False


# --- revisions ---------------------------------------------------------------------------


def revision_infos(spec: Spec, observed: Observed) -> dict[str, RevisionInfo]:
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
            and float(raw_port).is_integer() and 1 <= raw_port <= 65535):
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
    content: dict = {"model": rev.model, "engine": rev.engine}
    if rev.health_check is not None:
        content["healthCheck"] = rev.health_check.as_dict()
    return content


def infer_current(replicas: Iterable[Replica], spec: Spec, routed: frozenset[str]) -> str:
    """The revision with the most available replicas; ties go to the later listed one.

    Before the listing decides a tie, the observed main route does: the revision
    it carries more of was serving, so a green awaiting promotion is never
    promoted by a lost status. A revision no longer listed loses every tie: it
    cannot be rebuilt.
    """
    available: dict[str, int] = defaultdict(int)
    carried: dict[str, int] = defaultdict(int)
    for replica in replicas:
        available[replica.revision] += 1 if replica.available else 0
        carried[replica.revision] += 1 if replica.backend_name in routed else 0
    listed = {rev.name for rev in spec.revisions}
    return max(available, key=lambda name: (
        available[name], carried[name], name in listed, spec.revision_order(name), name))


@dataclass
class RevisionState:
    """The revision state machine's registers for this call (docs/rollout.md#revisions)."""

    current: str | None
    deploying: str | None
    failed: str | None
    strategy: str
    rollout_start: datetime | None
    last_progress: datetime | None
    started: bool = False
    aborted: bool = False
    rolled_back: str | None = None  # the reason, when this call rolls back
    failing_first_deploy: str | None = None  # the reason, when a first deploy is failing
    promoted: bool = False
    completed: bool = False
    retired_current: str | None = None  # blue, retired by promotion in this call


def decide_revisions(
    spec: Spec, prior: PriorStatus, replicas: list[Replica], now: datetime, events: list[Event],
    routed: frozenset[str] = frozenset(),
) -> RevisionState:
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
        events.append(Event(Severity.WARNING,
            f"status.currentRevision was lost; inferred {state.current!r} from the observed "
            "replicas (the revision with the most available replicas)"))
    if state.failed is not None and state.failed != target:
        state.failed = None

    def start(reason: str) -> None:
        state.deploying = target
        state.strategy = spec.strategy.type
        state.rollout_start = state.last_progress = now
        state.started = True
        events.append(Event(Severity.NORMAL, reason))

    if state.current is None:
        if state.deploying is None:
            start(f"Deploying revision {target!r} ({spec.replicas} replicas)")
        elif state.deploying != target:
            previous = state.deploying
            start(f"Revision {target!r} pre-empts the deployment of {previous!r}")
    elif target == state.current:
        if state.deploying is not None:
            events.append(Event(Severity.NORMAL,
                f"Rollout of {state.deploying!r} aborted: activeRevision is back to "
                f"{state.current!r}"))
            state.deploying = None
            state.aborted = True
    elif target == state.failed:
        if state.deploying is not None and state.deploying != target:
            state.deploying = None
            state.aborted = True
    elif state.deploying != target:
        if state.deploying is None:
            start(f"Rolling out revision {target!r} to replace {state.current!r} "
                  f"({spec.strategy.type})")
        else:
            previous = state.deploying
            start(f"Revision {target!r} pre-empts the rollout of {previous!r}; "
                  f"{previous!r} is retired")
    return state


# --- the planner ---------------------------------------------------------------------------


@dataclass
class _Book:
    """Decisions under construction: replicas kept, by key."""

    spec: Spec
    now: datetime
    xr_name: str
    taken: dict[str, set[int]] = field(default_factory=dict)  # indices observed, by revision
    kept: dict[str, PlannedReplica] = field(default_factory=dict)

    def keep(self, replica: Replica) -> PlannedReplica:
        observed = replica.observed
        planned = PlannedReplica(
            key=replica.key,
            name=naming.replica_name(self.xr_name, replica.revision, replica.index),
            revision=replica.revision,
            index=replica.index,
            replica=replica,
            desired_since=observed.desired_since or observed.created or self.now,
            draining_since=replica.draining_since,
            drain_seconds=observed.drain_seconds if replica.draining else None,
        )
        self.kept[replica.key] = planned
        return planned

    def drain(self, replica: Replica, seconds: int) -> None:
        """Out of every route now; deleted once the delay has passed."""
        planned = self.keep(replica)
        if planned.draining_since is None:
            planned.draining_since = self.now
            planned.drain_seconds = seconds
        elif planned.drain_seconds is None:
            planned.drain_seconds = seconds

    def retire(self, replica: Replica, seconds: int) -> None:
        """Remove a replica: drain it if it can carry traffic, else drop it at once.

        A replica whose status cannot be read is kept as it is: unknown data is
        never a reason to delete.
        """
        if replica.observed.malformed and not replica.draining:
            self.keep(replica)
        elif replica.draining or replica.available:
            self.drain(replica, seconds)
        # not Available: carries no traffic, dropped (its key leaves desired state)

    def reclaim(self, replica: Replica) -> None:
        planned = self.keep(replica)
        planned.draining_since = None
        planned.drain_seconds = None


def plan(spec: Spec, prior: PriorStatus, observed: Observed, xr_name: str,
         now: datetime) -> Plan:
    infos = revision_infos(spec, observed)
    replicas = classify_all(spec, observed, infos, now)
    events: list[Event] = []
    report_in_place_edits(replicas, infos, events)

    routed = observed.route.backends if observed.route is not None else frozenset()
    state = decide_revisions(spec, prior, replicas, now, events, routed)
    by_revision: dict[str, list[Replica]] = defaultdict(list)
    for replica in replicas:
        by_revision[replica.revision].append(replica)

    n = spec.replicas
    surge, unavailable = rollout.surge_and_unavailable(spec.strategy, n)
    deadline_timer = promote_timer = None
    awaiting = False
    green_ready_at = None

    if state.deploying is not None:
        d_replicas = by_revision.get(state.deploying, [])
        d_serving = sum(1 for r in d_replicas if r.serving)
        awaiting = (state.strategy == BLUE_GREEN and state.current is not None
                    and d_serving >= n)
        track_progress(state, prior, d_replicas, awaiting, now)
        if awaiting:
            ready_times = [r.ready_since for r in d_replicas if r.serving and r.ready_since]
            green_ready_at = max(ready_times) if ready_times else now
            promote_by = green_ready_at + timedelta(seconds=spec.strategy.promote_delay_seconds)
            approved = spec.promote == state.deploying
            auto = spec.strategy.auto_promote and now >= promote_by
            if approved or auto:
                promote(state, events, "approved by spec.promote" if approved else
                        f"green was fully available for {spec.strategy.promote_delay_seconds}s")
                awaiting = False
            elif spec.strategy.auto_promote:
                promote_timer = promote_by
        elif d_serving >= n:
            pass  # serves in full and completes below: a late call is no reason to roll back
        else:
            failure = rollout_failure(spec, state, d_replicas, now)
            if failure is None:
                assert state.last_progress is not None  # set by track_progress
                deadline_timer = state.last_progress + timedelta(
                    seconds=spec.progress_deadline_seconds)
            else:
                message = failure_message(state, failure, d_replicas, xr_name)
                if state.current is not None:
                    roll_back(state, failure, message, events)
                else:
                    state.failing_first_deploy = failure
                    if prior.phase != PHASE_FAILED:
                        events.append(Event(Severity.WARNING, f"{message}; there is no earlier "
                                            "revision to return to, so failed replicas keep "
                                            "being replaced"))

    book = _Book(spec=spec, now=now, xr_name=xr_name, taken=observed_indices(observed))
    decide_replicas(book, spec, state, by_revision, infos, surge, unavailable)

    if state.deploying is not None and (state.strategy == ROLLING_UPDATE
                                        or state.current is None):
        complete_if_done(book, state, events, n)

    return finish(spec, prior, state, book, infos, events, unavailable, awaiting,
                  [t for t in (deadline_timer, promote_timer) if t is not None])


def classify_all(spec: Spec, observed: Observed, infos: dict[str, RevisionInfo],
                 now: datetime) -> list[Replica]:
    """Every observed replica classified, with one Classifier per revision."""
    classifiers = {name: Classifier(spec, info.health_check, now)
                   for name, info in infos.items()}
    endpoints = observed.endpoints
    return [classifiers[o.revision].classify(o, endpoints.get((o.revision, o.index)))
            for o in observed.replicas]


def report_in_place_edits(replicas: list[Replica], infos: dict[str, RevisionInfo],
                          events: list[Event]) -> None:
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
    if d_replicas and all(r.lifecycle is Lifecycle.FAILED for r in d_replicas):
        return REASON_REVISION_FAILED
    assert state.last_progress is not None
    if now >= state.last_progress + timedelta(seconds=spec.progress_deadline_seconds):
        return REASON_DEADLINE
    return None


def failure_message(state: RevisionState, reason: str, d_replicas: list[Replica],
                    xr_name: str) -> str:
    if reason == REASON_REVISION_FAILED:
        cause = failure_cause(d_replicas, xr_name)
        return f"Every replica of revision {state.deploying!r} failed{cause}"
    return (f"Revision {state.deploying!r} made no progress since "
            f"{state.last_progress.isoformat() if state.last_progress else 'its start'}")


def failure_cause(replicas: list[Replica], xr_name: str) -> str:
    """What the lowest-indexed failed replica says of itself, if any says anything."""
    for replica in sorted(replicas, key=lambda r: r.index):
        if replica.observed.message:
            name = naming.replica_name(xr_name, replica.revision, replica.index)
            return f" ({name}: {replica.observed.message})"
    return ""


def roll_back(state: RevisionState, reason: str, message: str, events: list[Event]) -> None:
    events.append(Event(Severity.WARNING,
        f"{message}; rolled back to {state.current!r}. "
        f"{state.deploying!r} will not be retried until activeRevision changes."))
    state.failed = state.deploying
    state.deploying = None
    state.rolled_back = reason


def promote(state: RevisionState, events: list[Event], why: str) -> None:
    events.append(Event(Severity.NORMAL,
        f"Promoted revision {state.deploying!r} ({why}); {state.current!r} scales down"))
    state.retired_current = state.current
    state.current = state.deploying
    state.deploying = None
    state.promoted = True


def complete_if_done(book: _Book, state: RevisionState, events: list[Event], n: int) -> None:
    """RollingUpdate (and any first deploy) is done when D serves N and no old replica is routed."""
    deploying = state.deploying
    serving = 0
    for planned in book.kept.values():
        if planned.draining or planned.replica is None:
            continue
        if planned.revision != deploying:
            return
        serving += 1 if planned.replica.serving else 0
    if serving < n:
        return
    events.append(Event(Severity.NORMAL, f"Revision {deploying!r} is rolled out"
                        + (f", replacing {state.current!r}" if state.current else "")))
    state.current = deploying
    state.deploying = None
    state.completed = True
    state.failing_first_deploy = None


# --- replicas --------------------------------------------------------------------------------


def decide_replicas(book: _Book, spec: Spec, state: RevisionState,
                    by_revision: dict[str, list[Replica]], infos: dict[str, RevisionInfo],
                    surge: int, unavailable: int) -> None:
    n = spec.replicas
    rolling = state.strategy == ROLLING_UPDATE
    if state.deploying is not None and state.strategy == BLUE_GREEN and state.current is not None:
        wanted = {state.current: n, state.deploying: n}
    else:
        wanted = {(state.deploying or state.current or spec.active_revision): n}

    new_serving = 0
    gated: list[Replica] = []
    live: dict[str, int] = {}
    for name, count in wanted.items():
        live[name], serving, evicted = keep_wanted(book, spec, by_revision.get(name, []), count)
        if rolling or name == state.current:  # green carries no main traffic before promotion
            new_serving += serving
        gated.extend(evicted)

    # Everything else retires: the revision that just failed and, under BlueGreen,
    # anything not wanted go at once; under RollingUpdate, Serving old replicas
    # still carry traffic and drain only as the wanted revision's capacity allows.
    old = [r for name, rs in by_revision.items() if name not in wanted for r in rs]
    for replica in old:
        if replica.draining or not replica.serving or replica.revision == state.failed \
                or not rolling:
            delay = (spec.strategy.scale_down_delay_seconds
                     if replica.revision == state.retired_current else spec.drain_seconds)
            book.retire(replica, delay)
        else:
            gated.append(replica)
    allowed = rollout.serving_to_drain(serving_old=len(gated), serving_new=new_serving,
                                       replicas=n, unavailable=unavailable)
    current = state.current
    gated.sort(key=lambda r: (r.revision == current, r.removal_rank()))
    for position, replica in enumerate(gated):
        if position < allowed:
            book.drain(replica, spec.drain_seconds)
        else:
            book.keep(replica)

    expire_drains(book)

    total = len(book.kept)
    for name, count in wanted.items():
        info = infos.get(name)
        if info is None or info.template is None:
            continue  # a revision missing from the spec cannot be rebuilt
        create = rollout.replicas_to_create(wanted=count, alive=live[name], total=total,
                                            capacity_limit=capacity_limit(state, name, n, surge))
        total += create_replicas(book, name, create)


def capacity_limit(state: RevisionState, revision: str, n: int, surge: int) -> int | None:
    """How many replicas may hold capacity before `revision` can grow (None: no limit).

    RollingUpdate: N + maxSurge. BlueGreen: green waits until blue and whatever
    still drains fit in 2N, so a pre-empted green frees its GPUs first; blue
    itself is always kept at N.
    """
    if state.strategy == ROLLING_UPDATE:
        return n + surge
    if revision == state.deploying and state.current is not None:
        return 2 * n
    return None


def keep_wanted(book: _Book, spec: Spec, replicas: list[Replica],
                wanted: int) -> tuple[int, int, list[Replica]]:
    """Keep up to `wanted` live replicas of a wanted revision.

    Failed replicas are dropped, health-evicted ones replaced, extras scaled in by
    removal priority, and Draining ones reclaimed before anything new is created.
    Returns how many replicas are kept live, how many of them Serve, and the
    evicted replicas that still Serve: those leave only as their replacements'
    capacity allows.
    """
    # Members compared by identity, read once: Health.value and Lifecycle.FAILED
    # are each slower to read in Python 3.11 than the rest of a replica's test.
    cleanup = tuple(h for h in Health if h.value in spec.health_policy.cleanup_target_statuses)
    failed = Lifecycle.FAILED
    alive: list[Replica] = []
    reclaimable: list[Replica] = []
    evicted_serving: list[Replica] = []
    for replica in replicas:
        if replica.lifecycle is failed:
            continue
        evicted = replica.running and replica.health in cleanup
        if evicted and replica.serving:
            evicted_serving.append(replica)
        elif evicted:
            book.retire(replica, spec.drain_seconds)
        elif replica.draining:
            if replica.running:
                reclaimable.append(replica)
            else:
                continue
        else:
            alive.append(replica)

    alive.sort(key=Replica.removal_rank)
    extra = len(alive) - wanted
    for replica in alive[:max(0, extra)]:
        book.retire(replica, spec.drain_seconds)
    alive = alive[max(0, extra):]
    for replica in alive:
        book.keep(replica)

    shortfall = wanted - len(alive)
    reclaimable.sort(key=Replica.removal_rank, reverse=True)
    reclaimed = reclaimable[:max(0, shortfall)]
    for replica in reclaimed:
        book.reclaim(replica)
    for replica in reclaimable[len(reclaimed):]:
        book.retire(replica, spec.drain_seconds)
    # Reclaimed replicas were Draining when classified, so none of them Serves yet.
    serving = sum(1 for replica in alive if replica.serving)
    return len(alive) + len(reclaimed), serving, evicted_serving


def expire_drains(book: _Book) -> None:
    for key in [k for k, p in book.kept.items() if p.draining]:
        planned = book.kept[key]
        assert planned.draining_since is not None
        delay = planned.drain_seconds if planned.drain_seconds is not None else 0
        replica = planned.replica
        unreadable = replica is not None and replica.observed.malformed
        if (replica is None or (not replica.running and not unreadable)
                or book.now >= planned.draining_since + timedelta(seconds=delay)):
            del book.kept[key]


def observed_indices(observed: Observed) -> dict[str, set[int]]:
    """Indices still held by an observed replica or endpoint: never reused while observed."""
    taken: dict[str, set[int]] = defaultdict(set)
    for replica in observed.replicas:
        taken[replica.revision].add(replica.index)
    for revision, index in observed.endpoints:
        taken[revision].add(index)
    return taken


def create_replicas(book: _Book, revision: str, count: int) -> int:
    """Create count replicas with the lowest indices no observed replica or endpoint holds."""
    taken = book.taken.get(revision, set()) | {p.index for p in book.kept.values()
                                               if p.revision == revision}
    index = 0
    created = 0
    while created < count and index <= naming.MAX_INDEX:
        if index not in taken:
            key = naming.replica_key(revision, index)
            book.kept[key] = PlannedReplica(
                key=key,
                name=naming.replica_name(book.xr_name, revision, index),
                revision=revision,
                index=index,
                replica=None,
                desired_since=book.now,
            )
            created += 1
        index += 1
    return created


# --- traffic, status, conditions ---------------------------------------------------------------


def finish(spec: Spec, prior: PriorStatus, state: RevisionState, book: _Book,
           infos: dict[str, RevisionInfo], events: list[Event], unavailable: int,
           awaiting: bool, timers: list[datetime]) -> Plan:
    n = spec.replicas
    planned = in_spec_order(spec, list(book.kept.values()))
    main, preview = route_replicas(planned, state, infos)
    route = spec.route
    main_backends = main if route is not None else None
    preview_backends = preview if (route is not None and route.preview is not None
                                   and state.deploying is not None) else None

    weights: dict[str, int] = defaultdict(int)
    for b in main:
        weights[b.revision] += b.weight
    percentages = rollout.traffic_percentages(weights)
    tally = Tally.of(planned, state.deploying or state.current)
    timers.extend(tally.next_changes)
    rows = [RevisionRow(name=name, replicas=replicas, available=available,
                        traffic_weight=percentages.get(name, 0))
            for name, (replicas, available) in tally.by_revision.items()]
    counts = ReplicaCounts(desired=n, total=len(planned), ready=tally.ready,
                           available=tally.available, updated=tally.updated)

    serving = tally.serving
    needed = rollout.minimum_serving(n, unavailable)
    available = serving >= needed
    phase = decide_phase(state, awaiting)
    conditions = [
        ConditionOut("Available", available,
                     "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                     f"{serving} of {n} replicas serving; at least {needed} required"),
        progressing_condition(spec, prior, state, phase, events),
        routed_condition(spec, main, planned),
    ]

    ttl = DEFAULT_TTL_SECONDS
    if timers:
        seconds = (min(timers) - book.now).total_seconds()
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
        events=events,
        ttl_seconds=ttl,
        available=available,
    )


def in_spec_order(spec: Spec, kept: list[PlannedReplica]) -> list[PlannedReplica]:
    """Listed revisions in spec order, then unlisted ones by name; by index within each."""
    order = {name: (spec.revision_order(name), name) for name in {p.revision for p in kept}}
    return sorted(kept, key=lambda p: (order[p.revision], p.index))


def route_replicas(planned: list[PlannedReplica], state: RevisionState,
                   infos: dict[str, RevisionInfo]) -> tuple[list[Backend], list[Backend]]:
    """Mark what each route carries; its backends in planned order (main, preview).

    A replica is routed when it Serves and is not draining: on the main route
    under RollingUpdate or when it is of the current revision, on the preview
    route when it is of the deploying revision.
    """
    rolling = state.strategy == ROLLING_UPDATE
    current, deploying = state.current, state.deploying
    ports = {name: info.port for name, info in infos.items()}
    main: list[Backend] = []
    preview: list[Backend] = []
    for p in planned:
        replica = p.replica
        serving = replica is not None and replica.serving and p.draining_since is None
        p.main_routed = serving and (rolling or p.revision == current)
        p.preview_routed = serving and p.revision == deploying
        if serving:
            assert replica is not None and replica.backend_name is not None
            made = Backend(replica.backend_name, ports[p.revision], 1, p.revision)
            if p.main_routed:
                main.append(made)
            if p.preview_routed:
                preview.append(made)
    return main, preview


@dataclass
class Tally:
    """What the status reports of the planned replicas, counted in one pass."""

    ready: int = 0  # observed Ready
    available: int = 0  # Available and not draining
    serving: int = 0  # Serving and not draining
    updated: int = 0  # of the target revision and not draining
    by_revision: dict[str, tuple[int, int]] = field(default_factory=dict)  # (replicas, available)
    next_changes: list[datetime] = field(default_factory=list)  # when time alone changes one

    @classmethod
    def of(cls, planned: list[PlannedReplica], target: str | None) -> Tally:
        tally = cls()
        timers = tally.next_changes
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
                continue
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
    if state.rolled_back or state.failing_first_deploy:
        return PHASE_FAILED
    if state.deploying is not None:
        return PHASE_AWAITING_PROMOTION if awaiting else PHASE_PROGRESSING
    if state.failed is not None:
        return PHASE_FAILED
    return PHASE_STABLE


def progressing_condition(spec: Spec, prior: PriorStatus, state: RevisionState, phase: str,
                          events: list[Event]) -> ConditionOut:
    if state.rolled_back:
        return ConditionOut("Progressing", False, state.rolled_back,
                            f"rolled back to {state.current!r}; {state.failed!r} failed")
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
    if phase == PHASE_AWAITING_PROMOTION:
        message = f"revision {state.deploying!r} is fully available and awaits promotion"
        if spec.promote is not None and spec.promote != state.deploying:
            note = (f"spec.promote names {spec.promote!r}, not the deploying revision "
                    f"{state.deploying!r}; it is ignored")
            message = f"{message}; {note}"
            previous = prior.progressing.message if prior.progressing else None
            if not previous or note not in previous:
                events.append(Event(Severity.WARNING, note))
        return ConditionOut("Progressing", True, REASON_AWAITING_PROMOTION, message)
    if phase == PHASE_PROGRESSING:
        return ConditionOut("Progressing", True, REASON_DEPLOYING,
                            f"rolling out revision {state.deploying!r} ({state.strategy})")
    if state.aborted:
        return ConditionOut("Progressing", False, REASON_ABORTED,
                            f"rollout aborted; serving {state.current!r}")
    if not (state.completed or state.promoted):
        carried = prior.progressing
        if carried and carried.status == "False" and carried.reason in STICKY_FALSE_REASONS:
            return ConditionOut("Progressing", False, carried.reason, carried.message or "")
    return ConditionOut("Progressing", True, REASON_COMPLETE,
                        f"revision {state.current!r} is rolled out")


def routed_condition(spec: Spec, main: list[Backend],
                     planned: list[PlannedReplica]) -> ConditionOut:
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
