"""What the planner decides, and the registers it decides them in.

Plain data shared by every step of the planner (function/planner/__init__.py):
the planned replicas and backends, the revision registers of this call, the
report's rows and conditions, and the Plan that function/compose.py writes.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from function.analysis import Verdict
from function.classify import Replica
from function.observe import PriorStatus
from function.spec import HealthCheck, Revision, Spec

PHASE_STABLE = "Stable"
PHASE_PROGRESSING = "Progressing"
PHASE_AWAITING_PROMOTION = "AwaitingPromotion"
PHASE_FAILED = "Failed"

REASON_DEPLOYING = "NewRevisionDeploying"
REASON_CANARY_STEP = "CanaryStep"
REASON_AWAITING_PROMOTION = "AwaitingPromotion"
REASON_COMPLETE = "RolloutComplete"
REASON_DEADLINE = "ProgressDeadlineExceeded"
REASON_REVISION_FAILED = "RevisionFailed"
REASON_ABORTED = "RolloutAborted"
REASON_ANALYSIS_FAILED = "AnalysisFailed"
REASON_ANALYSIS_INCONCLUSIVE = "AnalysisInconclusive"
STICKY_FALSE_REASONS = (REASON_DEADLINE, REASON_REVISION_FAILED, REASON_ABORTED,
                        REASON_ANALYSIS_FAILED)

DEFAULT_TTL_SECONDS = 60


class Severity(enum.Enum):
    """A Kubernetes event's type: Normal, or Warning for what a user should look at."""

    NORMAL = "Normal"
    WARNING = "Warning"


@dataclass(frozen=True)
class Event:
    """One result the response carries: an event on the XR, emitted on transitions only."""

    severity: Severity
    message: str


@dataclass(frozen=True)
class ConditionOut:
    """A condition the function sets on the XR: Available, Progressing or Routed."""

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
    """A replica this call keeps or creates, with its drain and routing decided.

    replica is what was observed of it (None when this call creates it).
    desired_since is when it was first desired: the start of its warm-up budget
    until Crossplane reports a creation time. draining_since and drain_seconds are
    set once it is chosen for removal while Running (docs/rollout.md#draining).
    """

    key: str
    name: str
    revision: str
    index: int
    replica: Replica | None  # None for a replica created by this call
    desired_since: datetime
    draining_since: datetime | None = None
    drain_seconds: int | None = None

    @property
    def draining(self) -> bool:
        """Whether it drains: out of every route, waiting for its drain to end."""
        return self.draining_since is not None

    @property
    def observed_ready(self) -> bool:
        """Whether it was observed Ready=True (False for a replica this call creates)."""
        return self.replica is not None and self.replica.observed_ready

    @property
    def has_endpoint(self) -> bool:
        """Whether it gets an endpoint: exactly while observed Ready (docs/rollout.md#routes)."""
        return self.observed_ready


@dataclass(slots=True)  # one per routed replica: slotted for a cheap __init__
class Backend:
    """One backendRef of a route: an endpoint's published backendName, the engine port,
    and an integer weight (1 each, or the canary's weights, docs/rollout.md#canary).
    """

    name: str
    port: int
    weight: int
    revision: str


@dataclass(frozen=True)
class HeaderRule:
    """Requests with header `name: value` (exact) go to these backends only."""

    name: str
    value: str
    backends: list[Backend]


@dataclass(frozen=True)
class RevisionRow:
    """One row of status.revisions: a revision's replicas, how many are Available, and
    its share of the main route's weight in percent (0 to 100).
    """

    name: str
    replicas: int
    available: int
    traffic_weight: int


@dataclass(frozen=True)
class ReplicaCounts:
    """status.replicas, counts across every revision.

    desired is N; ready counts observed Ready replicas, available the Available
    ones, updated those of the target revision that are not draining.
    """

    desired: int
    total: int  # replicas that hold an accelerator: every planned one but Unschedulable ones
    ready: int
    available: int
    updated: int
    unschedulable: int = 0  # planned replicas waiting for an accelerator


@dataclass(frozen=True)
class AnalysisRecord:
    """status.analysis: the analysis gate's latest verdict (docs/rollout.md#the-analysis-gate)."""

    verdict: str
    message: str
    failing_since: datetime | None
    evaluated_time: datetime | None


@dataclass
class Plan:
    """Everything one call decided, as function/compose.py and function/writer.py write it.

    replicas in the order they are written; main_backends and preview_backends
    None when that route is not composed; phase, conditions and events as
    docs/rollout.md#status-and-conditions describes them; ttl_seconds: the
    response's TTL, the seconds until the next timer fires rounded up, within
    1..DEFAULT_TTL_SECONDS (0.2 s to go -> 1; 75 s or no timer -> 60).
    """

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
    header_rule: HeaderRule | None = None  # a second main-route rule, to the canary only
    extra_status: dict[str, Any] = field(default_factory=dict)  # the strategy's own fields
    analysis: AnalysisRecord | None = None  # None: status.analysis is not written
    transitions: tuple[Transition, ...] = ()  # the changes of revision state decided


# Transition kinds: the changes of revision state one call can decide (revisions.py).
STARTED = "started"
PREEMPTED = "preempted"
ABORTED = "aborted"
PROMOTED = "promoted"
COMPLETED = "completed"
ROLLED_BACK = "rolled_back"
FAILED = "failed"  # a first deploy reported failing: there is nothing to roll back to


@dataclass(frozen=True)
class Transition:
    """One change of revision state decided by this call, as logs and metrics report it.

    kind: one of the kinds above; revision: the revision it concerns (the one
    started, retired, promoted, completed, rolled back or failing); reason: a
    rollback's or failure's Progressing reason (ProgressDeadlineExceeded,
    RevisionFailed, AnalysisFailed), else None.
    """

    kind: str
    revision: str
    reason: str | None = None


@dataclass
class RevisionState:
    """The revision state machine's registers for this call (docs/rollout.md#revisions).

    Changed by function/planner/revisions.py, which records each change of C, D
    or F in transitions; the progress rules (function/planner/progress.py, a
    canary reaching a step) move last_progress.
    """

    current: str | None  # C: status.currentRevision, fully rolled out and serving
    deploying: str | None  # D: status.deployingRevision, being rolled out
    failed: str | None  # F: status.failedRevision, not retried while it is the target
    strategy: str  # the strategy the rollout in flight started with (status.rolloutStrategy)
    rollout_start: datetime | None  # status.rolloutStartTime
    last_progress: datetime | None  # status.lastProgressTime: the progress deadline's start
    started: bool = False  # this call started a rollout (D = T)
    aborted: bool = False  # this call cleared D without completing it
    rolled_back: str | None = None  # the reason, when this call rolls back
    failing_first_deploy: str | None = None  # the reason, when a first deploy is failing
    promoted: bool = False  # this call promoted D (BlueGreen)
    completed: bool = False  # this call completed the rollout (C = D)
    retired_current: str | None = None  # blue, retired by promotion in this call
    rollback_detail: str | None = None  # what the Progressing condition adds to a rollback
    transitions: list[Transition] = field(default_factory=list)  # in the order decided


@dataclass
class Rollout:
    """One call's facts, read by every step of the planner and by the strategy's course.

    Everything here is known before the strategy is asked: the spec, the status
    written before, the revision registers of this call (state: the only part a
    step changes, and only through function/planner/revisions.py), the
    classified replicas by revision, and the events so far. carried: the
    backend names the observed main route carries now, or None when no route
    is composed (then every Serving replica counts as carrying traffic).
    """

    spec: Spec
    prior: PriorStatus
    state: RevisionState
    infos: dict[str, RevisionInfo]
    by_revision: dict[str, list[Replica]]
    now: datetime
    events: list[Event]
    xr_name: str
    carried: frozenset[str] | None

    @property
    def n(self) -> int:
        """N: spec.replicas."""
        return self.spec.replicas

    @property
    def approved(self) -> bool:
        """Whether spec.promote names the deploying revision: the approval that passes a
        BlueGreen gate, every manual canary pause and an inconclusive analysis.
        """
        return self.state.deploying is not None and self.spec.promote == self.state.deploying

    def replicas_of(self, revision: str | None) -> list[Replica]:
        """The observed replicas of `revision`; [] for None or a revision with none."""
        return self.by_revision.get(revision or "", [])


@dataclass(frozen=True)
class Limits:
    """maxSurge and maxUnavailable resolved against N (function/planner/arithmetic.py
    resolve_limits): how far the total may grow, and how many may be unavailable.
    """

    surge: int
    unavailable: int


@dataclass(frozen=True)
class CapacityPolicy:
    """What a capacity shortage of the growing revision does (docs/rollout.md#capacity-shortage).

    on_shortage: Wait or Replace; wait_seconds: how long a replica waits for an
    accelerator before Replace trades a serving replica for one.
    """

    on_shortage: str
    wait_seconds: int


@dataclass(frozen=True)
class Routes:
    """What the routes step decided: each route's backends, weighed, and the header rule.

    main and preview are in planned order; main is [] when nothing is routed and
    preview [] when no replica is on it (whether a route is composed at all is
    the Plan's to say). canary_weight: the percentage of the main route's weight
    on a canary (0 to 100), which status.canary.weight reports; 0 for other
    strategies.
    """

    main: list[Backend]
    preview: list[Backend]
    header_rule: HeaderRule | None = None
    canary_weight: int = 0


def group_by_revision(replicas: list[Replica]) -> dict[str, list[Replica]]:
    """The replicas by revision name, each list in the order given.

    [v1-0, v2-0, v1-1] -> {"v1": [v1-0, v1-1], "v2": [v2-0]}; a revision with no
    replica is absent (Rollout.replicas_of reads it as []).
    """
    by_revision: dict[str, list[Replica]] = defaultdict(list)
    for replica in replicas:
        by_revision[replica.revision].append(replica)
    return by_revision


@dataclass(frozen=True)
class Gate:
    """Where the rollout stands at its gates, before replicas are planned.

    awaiting: the rollout waits for approval (phase AwaitingPromotion);
    timers: when time alone changes the decision (a soak or deadline ending).
    """

    awaiting: bool = False
    timers: tuple[datetime, ...] = ()


@dataclass(frozen=True)
class AnalysisOutcome:
    """What the analysis gate decided on this call (function/planner/analysis_gate.py).

    verdict and message: this call's Judgement; failed: the metrics that
    failed; failing_since: when the gate started failing (kept until a Pass);
    rolled_back: this call rolled the deploying revision back for it; timers:
    the end of the failure tolerance while a Fail is tolerated.
    """

    verdict: Verdict
    message: str
    failed: tuple[str, ...] = ()
    failing_since: datetime | None = None
    rolled_back: bool = False
    timers: tuple[datetime, ...] = ()
