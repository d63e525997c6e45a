"""More promises of docs/rollout.md, checked from the outside after every call of a closed loop.

tests/invariants.py checks routing, capacity, draining and status arithmetic. This
module adds what a long, faulty campaign needs on top:

- determinism: the same request gives byte-identical responses, also from servers
  that hash strings differently (docs/rollout.md#revisions; the comparison is made in tests/sim.py);
- the shape of every response: a Fatal is exactly one result and carries the
  request's desired state unchanged (docs/rollout.md#bad-input); conditions, composite readiness and
  TTL as docs/rollout.md#status-and-conditions says;
- composed resource consistency: endpoints only beside their replicas, readiness
  copied from observed, fresh indices (docs/rollout.md#resources-and-fields, #routes);
- the rollout's memory: phase, revisions and the progress deadline (docs/rollout.md#revisions,
#rollback);
- promotion gates (docs/rollout.md#bluegreen): manual promotion waits for spec.promote, automatic
  promotion fires on time;
- lost status never deletes what serves and infers as current only a revision with
  the most available replicas, at least one (docs/rollout.md#revisions); a first deploy makes a
  revision current only when it serves N; a revision with N serving replicas is
  never rolled back;
- no revision other than current and deploying is newly routed (docs/rollout.md#revisions);
- the TTL is no longer than the nearest timer, the warm-up of replicas the same
  response creates included (docs/rollout.md#replica-states, #status-and-conditions);
- results only on transitions, and a Warning not again until something changed;
  phase and Progressing do not flap while the world is unchanged in kind
  (docs/rollout.md#status-and-conditions);
- every rollout ends within a stated bound (see `RolloutBudget`), and after the last
  disturbance the deployment comes to rest within a bound and stays there.

Each check reads only what a user could see: the request, the response and the
world's own record of what it did.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from google.protobuf import json_format

from function import naming
from function.spec import ANALYSIS, BLUE_GREEN, CANARY, PAUSE, SET_WEIGHT, InvalidSpec, Spec
from tests import invariants
from tests.invariants import Violation
from tests.world import Step, World

PHASES = ("Stable", "Progressing", "AwaitingPromotion", "Failed")
CONDITION_TYPES = ["Available", "Progressing", "Routed"]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- reading requests and responses from the outside -----------------------------------


def request_xr(step: Step) -> dict[str, Any]:
    """The observed XR of a step's request as a dict, converted once per step."""
    cached = step.__dict__.get("_request_xr")
    if cached is None:
        cached = json_format.MessageToDict(step.request.observed.composite.resource)
        step.__dict__["_request_xr"] = cached
    return cached


def prior_status(step: Step) -> dict[str, Any]:
    status = request_xr(step).get("status")
    return status if isinstance(status, dict) else {}


def request_spec(step: Step) -> Any:
    return request_xr(step).get("spec")


def parsed_spec(raw: Any) -> Spec | None:
    try:
        return invariants.spec_of(raw)
    except InvalidSpec:
        return None


def _time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def ready_since(body: dict[str, Any]) -> datetime | None:
    """lastTransitionTime of a Ready=True condition, else None (not Ready)."""
    for c in body.get("status", {}).get("conditions", []) or []:
        if c.get("type") == "Ready" and c.get("status") == "True":
            return _time(c.get("lastTransitionTime")) or EPOCH
    return None


def backend_published(observed: dict[str, dict[str, Any]], revision: str, index: int) -> bool:
    endpoint = observed.get(naming.endpoint_key(revision, index), {})
    return bool(endpoint.get("status", {}).get("routing", {}).get("backendName"))


def serving_from_outside(spec: Spec, observed: dict[str, dict[str, Any]], key: str,
                         now: datetime) -> bool:
    """docs/rollout.md#replica-states 'Serving', judged from observed state only: Available (below)
    and its
    endpoint publishes a backendName."""
    parsed = naming.parse_replica_key(key)
    return (parsed is not None and available_from_outside(spec, observed, key, now)
            and backend_published(observed, *parsed))


def warmup_budget(spec: Spec, revision: str) -> int:
    """docs/rollout.md#replica-states: healthCheck.initialDelaySeconds, or 600 s without a health
    check."""
    listed = spec.revision(revision)
    check = listed.health_check if listed is not None else None
    return check.initial_delay_seconds if check is not None else 600


def available_from_outside(spec: Spec, observed: dict[str, dict[str, Any]], key: str,
                           now: datetime) -> bool:
    """docs/rollout.md#replica-states 'Available', judged from observed state only: Ready for
    minReadySeconds,
    not Failed, not Draining, healthy enough (Healthy or Degraded with a health check;
    not Unhealthy without one)."""
    body = observed.get(key)
    parsed = naming.parse_replica_key(key)
    if body is None or parsed is None:
        return False
    status = body.get("status", {})
    if not isinstance(status, dict) or status.get("phase") == "Failed":
        return False
    since = ready_since(body)
    if since is None:
        return False
    metadata = body.get("metadata", {})
    annotations = metadata.get("annotations", {}) or {}
    if since is EPOCH:  # Ready without a transition time: counted from birth
        since = (_time(metadata.get("creationTimestamp"))
                 or _time(annotations.get(naming.ANNOTATION_DESIRED_SINCE)) or now)
    if now < since + timedelta(seconds=spec.min_ready_seconds):
        return False
    if naming.ANNOTATION_DRAINING_SINCE in annotations:
        return False
    revision = spec.revision(parsed[0])
    health_check = revision.health_check if revision is not None else None
    health = status.get("health")
    state = health.get("state") if isinstance(health, dict) else None
    if isinstance(health, dict) and state in ("Healthy", "Unhealthy"):
        interval = health_check.interval_seconds if health_check is not None else 10
        stale = max(spec.health_policy.status_ttl_seconds, 3 * interval)
        probe = _time(health.get("lastProbeTime"))
        if probe is not None and now >= probe + timedelta(seconds=stale):
            state = "Degraded"
    else:
        state = "NotChecked"
    if health_check is not None and state not in ("Healthy", "Degraded"):
        return False
    return not (health_check is None and state == "Unhealthy")


def revision_counts(spec: Spec, step: Step) -> dict[str, tuple[int, int]]:
    """(available, serving) replicas per revision in the observed state, from outside;
    computed once per step (several checks read it)."""
    cached = step.__dict__.get("_revision_counts")
    if cached is not None and cached[0] is spec:
        return cached[1]
    counts: dict[str, tuple[int, int]] = {}
    for key in step.observed:
        parsed = naming.parse_replica_key(key)
        if parsed is None:
            continue
        available, serving = counts.get(parsed[0], (0, 0))
        if available_from_outside(spec, step.observed, key, step.now):
            available += 1
            serving += 1 if backend_published(step.observed, *parsed) else 0
        counts[parsed[0]] = (available, serving)
    step.__dict__["_revision_counts"] = (spec, counts)
    return counts


def outside_timers(spec: Spec, step: Step) -> list[tuple[float, str]]:
    """The timers of docs/rollout.md#status-and-conditions a user can see pending after this
    response, as (seconds from
    now, what): the warm-up of every desired replica not yet Ready, counted from the
    later of its creation and its last Ready transition, or from now for a replica this
    response creates (docs/rollout.md#replica-states: first desired); minReadySeconds of a Ready
    replica that
    stays in service; the drain of every draining replica; the progress deadline while
    the deploying revision does not serve in full; only those still in the future."""
    now = step.now
    timers: list[tuple[float, str]] = []

    def add(when: datetime, what: str) -> None:
        seconds = (when - now).total_seconds()
        if seconds > 0:
            timers.append((seconds, what))

    for key, body in step.desired.items():
        parsed = naming.parse_replica_key(key)
        if parsed is None:
            continue
        annotations = body.get("metadata", {}).get("annotations", {}) or {}
        draining = _time(annotations.get(naming.ANNOTATION_DRAINING_SINCE))
        if draining is not None:
            add(draining + timedelta(seconds=int(annotations.get(
                naming.ANNOTATION_DRAIN_SECONDS, "0"))), f"drain of {key}")
            continue
        observed = step.observed.get(key)
        budget = timedelta(seconds=warmup_budget(spec, parsed[0]))
        if observed is None:
            since = _time(annotations.get(naming.ANNOTATION_DESIRED_SINCE)) or now
            add(since + budget, f"warm-up of {key}, created by this response")
            continue
        status = observed.get("status", {})
        if isinstance(status, dict) and status.get("phase") == "Failed":
            continue
        ready = ready_since(observed)
        born = _time(observed.get("metadata", {}).get("creationTimestamp")) or now
        if ready is None:
            # docs/rollout.md#replica-states, #capacity-shortage: from the later of creation, the
            # last Ready transition and
            # scheduling; an Unschedulable replica's budget has not started.
            conditions = status.get("conditions", []) or []
            if any(c.get("type") == "Scheduled" and c.get("status") == "False"
                   for c in conditions):
                continue
            since = born
            for c in conditions:
                moved = (_time(c.get("lastTransitionTime"))
                         if c.get("type") in ("Ready", "Scheduled") else None)
                if moved is not None and moved > since:
                    since = moved
            add(since + budget, f"warm-up of {key}")
        elif spec.min_ready_seconds:
            started = born if ready is EPOCH else ready
            end = started + timedelta(seconds=spec.min_ready_seconds)
            ok = available_from_outside(spec, step.observed, key, end)
            if ok:
                add(end, f"minReadySeconds of {key}")
    deploying = step.status.get("deployingRevision")
    progress = _time(step.status.get("lastProgressTime"))
    # A canary's deadline pauses during its pauses: not judged from outside.
    if deploying and step.status.get("phase") == "Progressing" and progress is not None \
            and step.status.get("rolloutStrategy") != CANARY:
        serving = sum(1 for k in step.observed
                      if (naming.parse_replica_key(k) or ("",))[0] == deploying
                      and serving_from_outside(spec, step.observed, k, now))
        if serving < spec.replicas:
            add(progress + timedelta(seconds=spec.progress_deadline_seconds),
                "progress deadline")
    return timers


def normalized(message: str) -> str:
    """A result's message without what changes from one occurrence to the next of the
    same news: parenthesised detail (a replica's name and message), numbers, times."""
    message = re.sub(r"\([^()]*\)", "", message)
    return re.sub(r"\b\d[\d:.TZ+-]*\b", "#", message)


def condition_status(condition: fnv1.Condition) -> str:
    return {fnv1.STATUS_CONDITION_TRUE: "True",
            fnv1.STATUS_CONDITION_FALSE: "False"}.get(condition.status, "Unknown")


def main_backends(step: Step) -> list[str]:
    return invariants._backends(step.desired, naming.ROUTE_KEY)


def main_rule_weights(step: Step) -> dict[str, int]:
    """Weight per revision in the main route's rule without a header match."""
    route = step.desired.get(naming.ROUTE_KEY)
    by_backend = invariants._endpoint_by_backend(step.observed)
    weights: Counter = Counter()
    for rule in (route or {}).get("spec", {}).get("rules", []):
        if any(match.get("headers") for match in rule.get("matches", [])):
            continue
        for ref in rule.get("backendRefs", []):
            revision = (naming.parse_replica_key(by_backend.get(ref["name"], "")) or ("",))[0]
            weights[revision] += int(ref.get("weight", 1))
    return dict(weights)


def current_routes(step: Step) -> bool:
    """Whether the current revision has something to route (its status.revisions row has
    a traffic weight), as the function reports it with or without a route composed."""
    current = step.status.get("currentRevision")
    return any(row.get("name") == current and row.get("trafficWeight")
               for row in step.status.get("revisions", []))


def result_messages(step: Step) -> list[str]:
    return [r.message for r in step.response.results]


# --- one response on its own -------------------------------------------------------------


def check_shape(req: fnv1.RunFunctionRequest, rsp: fnv1.RunFunctionResponse) -> str:
    """A response is either exactly one Fatal carrying the request's desired state, or a
    valid response; returns "fatal" or "ok"."""
    fatal = [r for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    if fatal:
        if len(rsp.results) != 1:
            raise Violation(f"a Fatal response has {len(rsp.results)} results, not one")
        if not fatal[0].message:
            raise Violation("a Fatal result without a message")
        want = req.desired.SerializeToString(deterministic=True)
        got = rsp.desired.SerializeToString(deterministic=True)
        if want != got:
            raise Violation("a Fatal response changed the desired state it was given")
        return "fatal"
    types = [c.type for c in rsp.conditions]
    if types != CONDITION_TYPES:
        raise Violation(f"conditions {types}, expected {CONDITION_TYPES}")
    available = next(c for c in rsp.conditions if c.type == "Available")
    want_ready = (fnv1.READY_TRUE if available.status == fnv1.STATUS_CONDITION_TRUE
                  else fnv1.READY_FALSE)
    if rsp.desired.composite.ready != want_ready:
        raise Violation("desired.composite.ready does not follow the Available condition")
    ttl = rsp.meta.ttl.seconds
    if not 1 <= ttl <= 60:
        raise Violation(f"TTL {ttl}s is outside 1..60")
    for key in req.desired.resources:
        if key not in rsp.desired.resources:
            raise Violation(f"{key}, desired by an earlier pipeline step, was dropped")
    return "ok"


def deterministic_bytes(rsp: fnv1.RunFunctionResponse) -> bytes:
    return rsp.SerializeToString(deterministic=True)


# --- the bound on a rollout's length -----------------------------------------------------


@dataclass(frozen=True)
class RolloutBudget:
    """The longest a rollout may take, from the scenario's parameters.

    Let P = progressDeadlineSeconds, W = the warm-up budget (initialDelaySeconds),
    w = the longest warm-up any healthy replica of the scenario takes (< W), L = the
    longest backend and route publication lag, m = minReadySeconds, R = the longest
    drain delay (drainSeconds, scaleDownDelaySeconds), dt = the longest gap between
    two calls, and A = the longest wait at a promotion gate (the operator's approval
    delay for manual BlueGreen, promoteDelaySeconds for automatic; 0 for
    RollingUpdate), each plus dt for the call that notices.

    A 'gain' is a deploying replica becoming Available. Between two gains at most
    I = max(P, W + w + L + m + R + 5 dt) passes: with C set the progress deadline
    rolls back after P (docs/rollout.md#rollback); a first deploy has no C and cannot roll back, but
    then the only reason for no gain is a replica that breaks, which is Failed after
    W, replaced at once or after a drain R, and the replacement serves w + L + m
    later. A wait at the promotion gate is exempt from the deadline (docs/rollout.md#bluegreen) and
    lasts at most A; there is at most one per gain. So a rollout ends (completes,
    rolls back, or is replaced by a newer one) within

        (G + 1) * (I + A) + J + (k + 3) * dt

    where G bounds the gains: N_total (the replicas ever wanted: N at the start plus
    every scale-up) plus 2 for every disruptive fault injected while the rollout ran
    (a broken replica's replacement gains once; a flap loses and regains once), J is
    the time the clock jumped beyond dt, and k counts calls whose response was not
    applied (late apply, Fatal). Time spent as a failing first deploy is a
    documented wait (README) and is not counted. Every replica's fate is drawn once and faults are
    budgeted per scenario, so G is finite and the bound is checked after every call.
    """

    interval: float  # I
    awaiting: float  # A
    dt_max: float

    def bound(self, gains: int, jumped: float, unapplied: int) -> float:
        return ((gains + 1) * (self.interval + self.awaiting) + jumped
                + (unapplied + 3) * self.dt_max)


@dataclass
class RolloutTrack:
    revision: str
    start_time: str | None
    started: datetime
    n_total: int
    last_n: int
    disruptive: int = 0
    jumped: float = 0.0
    unapplied: int = 0
    calls: int = 0
    resting: float = 0.0  # seconds spent as a failing first deploy, a documented wait

    def gains(self) -> int:
        return self.n_total + 2 * self.disruptive


@dataclass
class EndedRollout:
    revision: str
    outcome: str  # completed | rolled-back | aborted | pre-empted | restarted | open
    seconds: float
    bound: float
    calls: int


# --- the checker for one closed loop ---------------------------------------------------


@dataclass
class SimChecker:
    """Every invariant, after every call of one World; counts what it checked."""

    budget: RolloutBudget
    checks: Counter = field(default_factory=Counter)
    track: RolloutTrack | None = None
    ended: list[EndedRollout] = field(default_factory=list)
    ever_current: set[str] = field(default_factory=set)
    last_applied: Step | None = None
    previous: Step | None = None
    pending_disruptive: int = 0
    pending_jump: float = 0.0
    # Liveness: when the world last changed other than by the function's own doing.
    pending_disturbance: bool = False
    calm_since: datetime | None = None
    disturbed_until: datetime | None = None
    at_rest: str | None = None  # the previous response's rest state, if any
    # Flapping: the (phase, Progressing) values seen while the world stays the same in kind.
    stretch: tuple[str, str] | None = None
    stretch_seen: list[tuple[str, str, str]] = field(default_factory=list)
    # Warnings said since the last transition, by normalized message.
    warning_epoch: int = 0
    warned: dict[str, int] = field(default_factory=dict)
    awaiting_since: tuple[str, datetime] | None = None
    # Service level drawn per revision (tests/sim.py SERVICE_KINDS); empty: none drawn.
    service_levels: dict[str, str] = field(default_factory=dict)
    # Replicas per revision a response kept after dropping one that waited for a GPU.
    dropped_waiting: dict[str, int] = field(default_factory=dict)

    def count(self, name: str) -> None:
        self.checks[name] += 1

    # Told by the scenario -----------------------------------------------------------

    def note_status_lost(self, now: datetime) -> None:
        self.pending_disturbance = True
        if self.track is not None:
            self.end_track({}, now)

    def note_disruptive(self, until: datetime | None = None) -> None:
        """A disruptive fault was injected; it counts for the rollout running after the
        next call (fates are drawn while a response is applied). `until`: the latest
        time its effect can start (a crash long after Ready); the deployment is not
        expected to be at rest before then."""
        self.pending_disruptive += 1
        self.pending_disturbance = True
        if until is not None and (self.disturbed_until is None or until > self.disturbed_until):
            self.disturbed_until = until

    def note_disturbed_until(self, until: datetime) -> None:
        """A disruptive fault already noted can strike as late as `until` (a replica that
        waited for an accelerator starts its life late)."""
        if self.disturbed_until is None or until > self.disturbed_until:
            self.disturbed_until = until

    def note_jump(self, seconds: float) -> None:
        """The clock jumps by `seconds` after the next call."""
        self.pending_jump += max(0.0, seconds - self.budget.dt_max)

    # After every call ---------------------------------------------------------------

    def after_call(self, world: World, step: Step) -> None:
        spec = parsed_spec(world.spec)
        kind = check_shape(step.request, step.response)
        self.count("response-shape")
        disturbed = self.disturbed(step)
        if kind == "fatal":
            if spec is not None:
                raise Violation(f"a valid spec got a Fatal: {result_messages(step)}")
            self.count("fatal-only-for-bad-spec")
        else:
            if spec is None:
                raise Violation("an invalid spec was accepted")
            invariants.check(world, step)
            self.count("spec-invariants")
            self.check_resources(spec, step)
            self.check_memory(spec, step)
            self.check_gates(spec, world, step)
            self.check_lost_status(spec, step)
            self.check_rollback(spec, step)
            self.check_quiet(step)
            self.check_orphans_not_routed(step)
            self.check_canary_share(spec, step)
            self.check_canary_steps(spec, step)
            self.check_service_levels(spec, step)
            self.check_no_churn(step, disturbed)
            self.check_ttl(spec, step)
            self.check_warnings_once(step, disturbed)
            self.check_no_flap(spec, step, disturbed)
            self.check_rest(spec, step, disturbed)
        self.check_rollout_ends(world, step, spec)
        if step.applied:
            self.last_applied = step
            current = step.status.get("currentRevision")
            if current:
                self.ever_current.add(current)
        self.previous = step

    def check_resources(self, spec: Spec, step: Step) -> None:
        replicas = {k: v for k, v in step.desired.items() if naming.parse_replica_key(k)}
        held = {naming.parse_endpoint_key(k) for k in step.observed
                if naming.parse_endpoint_key(k)}
        for key, body in replicas.items():
            revision, index = naming.parse_replica_key(key) or ("", 0)
            observed = step.observed.get(key)
            want = fnv1.READY_TRUE if observed and ready_since(observed) else fnv1.READY_FALSE
            if step.response.desired.resources[key].ready != want:
                raise Violation(f"{key} readiness does not follow its observed Ready condition")
            if observed is None and (revision, index) in held:
                raise Violation(f"{key} reuses an index still held by an observed endpoint")
            labels = body["metadata"].get("labels", {})
            if labels.get(naming.LABEL_REVISION) != revision or \
                    labels.get(naming.LABEL_INDEX) != str(index):
                raise Violation(f"{key} labels do not name its revision and index")
            if len(body["metadata"]["name"]) > naming.MAX_NAME:
                raise Violation(f"{key} name is longer than {naming.MAX_NAME}")
        for key, body in step.desired.items():
            parsed = naming.parse_endpoint_key(key)
            if not parsed:
                continue
            replica_key = naming.replica_key(*parsed)
            if replica_key not in replicas:
                raise Violation(f"{key} is desired without its replica")
            if body["spec"].get("replica") != replicas[replica_key]["metadata"]["name"]:
                raise Violation(f"{key} names another replica")
            url = step.observed.get(replica_key, {}).get("status", {}).get("address", {})
            if isinstance(url, dict) and url.get("url") and body["spec"].get("url") != url["url"]:
                raise Violation(f"{key} url differs from its replica's address")
        preview = step.desired.get(naming.PREVIEW_ROUTE_KEY)
        if preview is not None and not step.status.get("deployingRevision"):
            raise Violation("a preview route is composed while nothing is deploying")
        if spec.route is None and naming.ROUTE_KEY in step.desired:
            raise Violation("a route is composed without spec.route")
        routed = next(c for c in step.response.conditions if c.type == "Routed")
        if spec.route is not None and (routed.status == fnv1.STATUS_CONDITION_TRUE) != bool(
                main_backends(step)):
            raise Violation("the Routed condition does not follow the main route's backends")
        self.count("composed-resources")

    def check_memory(self, spec: Spec, step: Step) -> None:
        status = step.status
        phase = status.get("phase")
        current = status.get("currentRevision")
        deploying = status.get("deployingRevision")
        failed = status.get("failedRevision")
        if phase not in PHASES:
            raise Violation(f"phase {phase!r}")
        if deploying is not None and deploying == current:
            raise Violation(f"deploying and current are both {deploying!r}")
        if phase == "Stable" and (deploying or not current):
            raise Violation(f"phase Stable with current={current!r} deploying={deploying!r}")
        if phase in ("Progressing", "AwaitingPromotion") and not deploying:
            raise Violation(f"phase {phase} without a deploying revision")
        if phase == "AwaitingPromotion" and spec.strategy.type not in (BLUE_GREEN, CANARY) \
                and status.get("rolloutStrategy") not in (BLUE_GREEN, CANARY):
            raise Violation("AwaitingPromotion under RollingUpdate")
        if failed is not None and failed == current:
            raise Violation(f"failed and current are both {failed!r}")
        if status["replicas"]["desired"] != spec.replicas:
            raise Violation("status.replicas.desired is not spec.replicas")
        counts = status["replicas"]
        if not counts["available"] <= counts["total"] or not counts["ready"] <= counts["total"]:
            raise Violation(f"status.replicas counts are inconsistent: {counts}")
        # docs/rollout.md#rollback: no progress for progressDeadlineSeconds rolls back (with a C to
        # return to).
        progress = _time(status.get("lastProgressTime"))
        if deploying and current and phase == "Progressing" and progress is not None \
                and step.now >= progress + timedelta(seconds=spec.progress_deadline_seconds):
            raise Violation(f"{deploying!r} made no progress since {progress} "
                            f"(deadline {spec.progress_deadline_seconds}s) and was not rolled back")
        self.count("rollout-memory")

    def check_gates(self, spec: Spec, world: World, step: Step) -> None:
        if spec.strategy.type != BLUE_GREEN:
            return
        prior = prior_status(step)
        status = step.status
        current = status.get("currentRevision")
        promoted_now = (prior.get("deployingRevision") == current
                        and prior.get("currentRevision") not in (None, current))
        if (promoted_now and prior.get("rolloutStrategy", BLUE_GREEN) == BLUE_GREEN
                and not spec.strategy.auto_promote and spec.promote != current):
            raise Violation(f"{current!r} was promoted without spec.promote")
        # The main route carries only revisions that were current before or are approved.
        approved = set(self.ever_current) | {spec.promote} | (
            {current} if promoted_now and spec.strategy.auto_promote else set())
        if not self.ever_current:
            approved |= {current}  # a first deploy has nothing to promote over
        routed = {(naming.parse_replica_key(k) or ("",))[0]
                  for k in invariants.routed_replicas(step)}
        if spec.strategy.auto_promote:
            approved |= {current}
        unapproved = routed - approved
        if unapproved:
            raise Violation(f"main route carries {sorted(unapproved)}, never promoted "
                            f"(current before: {sorted(self.ever_current)})")
        # Automatic promotion fires on time (docs/rollout.md#bluegreen).
        deploying = status.get("deployingRevision")
        if spec.strategy.auto_promote and status.get("phase") == "AwaitingPromotion":
            times = [t for key, body in step.observed.items()
                     if (naming.parse_replica_key(key) or ("",))[0] == deploying
                     and (t := ready_since(body)) is not None]
            if times and spec.replicas > 0:
                due = max(times) + timedelta(seconds=spec.strategy.promote_delay_seconds)
                if step.now >= due:
                    raise Violation(f"auto-promotion of {deploying!r} was due at {due}")
            elif spec.replicas == 0:
                # No green replica needs to be Ready: the soak runs from when green reached
                # the gate with this spec (docs/rollout.md#bluegreen: with N = 0 the gate's first
                # half
                # holds; README: the delay runs from the call that first saw the gate).
                key = f"{deploying} {request_spec(step)}"
                if self.awaiting_since is None or self.awaiting_since[0] != key:
                    self.awaiting_since = (key, step.now)
                due = self.awaiting_since[1] + timedelta(
                    seconds=spec.strategy.promote_delay_seconds)
                if step.now >= due:
                    raise Violation(f"auto-promotion of {deploying!r} with 0 replicas was due "
                                    f"at {due} (awaiting since {self.awaiting_since[1]})")
        self.count("promotion-gate")

    def check_lost_status(self, spec: Spec, step: Step) -> None:
        """docs/rollout.md#revisions: a revision becomes current only by serving N (completion) or,
        with the status lost, by having the most available replicas, at least one;
        and nothing that serves is deleted while the status is missing."""
        prior = prior_status(step)
        current = step.status.get("currentRevision")
        if prior.get("currentRevision"):
            return
        counts = revision_counts(spec, step)
        available, serving = counts.get(current or "", (0, 0))
        completed = current == spec.active_revision and serving >= spec.replicas
        if prior.get("deployingRevision"):
            if current and not completed:
                raise Violation(f"the first deploy of {prior['deployingRevision']!r} made "
                                f"{current!r} current with {serving} of {spec.replicas} "
                                "replicas serving")
            self.count("first-deploy-completes-serving")
            return
        best = max((a for a, _ in counts.values()), default=0)
        if current and not completed and (available == 0 or available < best):
            raise Violation(f"with the status lost, {current!r} was inferred as current with "
                            f"{available} available replicas (most available: {best}; "
                            f"{dict(counts)}): phase {step.status.get('phase')}")
        self.count("lost-status-infers-an-available-revision")
        for key in step.observed:
            if naming.parse_replica_key(key) and key not in step.desired \
                    and serving_from_outside(spec, step.observed, key, step.now):
                raise Violation(f"{key} served and was deleted while the status was missing")
        self.count("lost-status-deletes-nothing")

    def check_rollback(self, spec: Spec, step: Step) -> None:
        """A revision serving N is not rolled back, but by the analysis gate
        (docs/rollout.md#the-analysis-gate:
        a Fail that lasts failureToleranceSeconds rolls back whatever serves)."""
        prior = prior_status(step)
        failed = step.status.get("failedRevision")
        if not failed or prior.get("failedRevision") == failed \
                or prior.get("deployingRevision") != failed:
            return
        progressing = next(c for c in step.response.conditions if c.type == "Progressing")
        if progressing.reason == "AnalysisFailed":
            return
        serving = [k for k in step.observed
                   if (naming.parse_replica_key(k) or ("",))[0] == failed
                   and serving_from_outside(spec, step.observed, k, step.now)]
        if len(serving) >= spec.replicas > 0:
            raise Violation(f"rolled back {failed!r} although {len(serving)} of its replicas "
                            f"were serving (N={spec.replicas}): {result_messages(step)}")
        self.count("no-rollback-of-a-serving-revision")

    def check_quiet(self, step: Step) -> None:
        """Results only on transitions: nothing to say when nothing changed."""
        previous = self.previous
        prior = prior_status(step)
        if previous is None or not prior or previous.fatal:
            return
        same_registers = all(prior.get(k) == step.status.get(k) for k in
                             ("phase", "currentRevision", "deployingRevision", "failedRevision"))
        if not same_registers or request_spec(step) != request_spec(previous):
            return
        if step.response.results:
            raise Violation(f"results without a transition: {result_messages(step)}")
        self.count("results-only-on-transitions")

    # --- liveness, flapping and repetition ----------------------------------------------

    def disturbed(self, step: Step) -> bool:
        """Whether the world changed by more than the function's own doing and time before
        this call: the user edited the spec, the status was lost, the clock jumped, the
        previous response was not applied (late apply, Fatal), or a disruptive fault is
        still due to strike. Resets the liveness clock."""
        previous = self.previous
        disturbed = self.pending_disturbance or previous is None or not previous.applied \
            or not step.applied
        self.pending_disturbance = False
        gap = (step.now - previous.now).total_seconds() if previous is not None else 0.0
        if previous is not None and request_spec(step) != request_spec(previous):
            disturbed = True
        if gap > self.budget.dt_max + 1e-6:
            disturbed = True
            # A fault's moments count from when the platform noticed the replica Ready,
            # which a jump delays: what was still due is due that much later.
            if self.disturbed_until is not None and previous is not None \
                    and self.disturbed_until > previous.now:
                self.disturbed_until += timedelta(seconds=gap)
        if self.disturbed_until is not None and step.now <= self.disturbed_until:
            disturbed = True
        if disturbed:
            self.calm_since = step.now
        return disturbed

    def check_warnings_once(self, step: Step, disturbed: bool) -> None:
        """docs/rollout.md#status-and-conditions, README 'a failing first deployment is reported
        once': a Warning is not
        said again until something changed: the spec, the status (lost), or the
        revisions the status records (current, deploying, failed)."""
        prior = prior_status(step)
        registers = ("currentRevision", "deployingRevision", "failedRevision")
        if disturbed or any(prior.get(k) != step.status.get(k) for k in registers):
            self.warning_epoch += 1
        if not step.applied:
            return  # Crossplane dropped the response; its events may come again
        for result in step.response.results:
            if result.severity != fnv1.SEVERITY_WARNING:
                continue
            said = normalized(result.message)
            if self.warned.get(said) == self.warning_epoch:
                raise Violation(f"Warning repeated without a transition: {result.message!r}")
            self.warned[said] = self.warning_epoch
        self.count("warnings-once-per-transition")

    def check_no_flap(self, spec: Spec, step: Step, disturbed: bool) -> None:
        """While the world stays the same in kind (the same spec, the same number of
        available and serving replicas of each revision, no disturbance), phase and the
        Progressing condition move on but never return to a value they left."""
        progressing = next(c for c in step.response.conditions if c.type == "Progressing")
        value = (str(step.status.get("phase")), condition_status(progressing),
                 progressing.reason)
        kind = (json.dumps(request_spec(step), sort_keys=True),
                json.dumps(sorted(revision_counts(spec, step).items())))
        if disturbed or kind != self.stretch or not self.stretch_seen:
            self.stretch = kind
            self.stretch_seen = [value]
            return
        if value != self.stretch_seen[-1]:
            if value in self.stretch_seen:
                raise Violation(f"phase/Progressing flapped back to {value} "
                                f"(went {' -> '.join('/'.join(v) for v in self.stretch_seen)})"
                                " while the observed world was unchanged in kind")
            self.stretch_seen.append(value)
        self.count("no-flap-while-unchanged")

    def rest_state(self, spec: Spec, step: Step) -> str | None:
        """The states a deployment may stay in without anything more happening: Stable on
        the active revision, Failed on a failed active revision (or a failing first
        deploy, README), or a manual BlueGreen awaiting spec.promote."""
        status = step.status
        phase = status.get("phase")
        current = status.get("currentRevision")
        deploying = status.get("deployingRevision")
        failed = status.get("failedRevision")
        target = spec.active_revision
        progressing = next(c for c in step.response.conditions if c.type == "Progressing")
        available = next(c for c in step.response.conditions if c.type == "Available")
        # At rest, the current revision has its N replicas, all observed, none waiting
        # for an accelerator: a replica still to come may need an old one drained or,
        # under Replace, traded for its accelerator (README), which moves Available.
        whole = sum(1 for key, body in step.desired.items()
                    if (naming.parse_replica_key(key) or ("",))[0] == current
                    and naming.ANNOTATION_DRAINING_SINCE not in
                    (body.get("metadata", {}).get("annotations", {}) or {})
                    and key in step.observed
                    and not invariants.unschedulable(step.observed[key])) == spec.replicas
        if phase == "Stable" and not deploying and current == target and whole \
                and available.status == fnv1.STATUS_CONDITION_TRUE:
            return "stable"
        if phase == "Failed" and not deploying and current and failed == target:
            return "failed"
        if phase == "Failed" and not current and deploying == target \
                and progressing.status == fnv1.STATUS_CONDITION_FALSE:
            return "failing-first-deploy"
        failing = (status.get("analysis") or {}).get("failingSince")
        if phase == "AwaitingPromotion" and deploying == target and spec.promote != deploying \
                and not (spec.strategy.type == BLUE_GREEN and spec.strategy.auto_promote) \
                and not failing:
            # Manual BlueGreen, or a canary's manual pause; a Fail being tolerated is no
            # rest: it rolls back at the tolerance's end (docs/rollout.md#the-analysis-gate).
            return "awaiting-approval"
        return None

    def liveness_bound(self, spec: Spec) -> float:
        """After the last disturbance the deployment is at rest within the bound of one
        rollout of N replicas (see RolloutBudget)."""
        return self.budget.bound(spec.replicas, 0.0, 0)

    def check_rest(self, spec: Spec, step: Step, disturbed: bool) -> None:
        """Liveness: within `liveness_bound` of the last disturbance the deployment is at
        rest (`rest_state`), and once at rest it holds: phase, revisions and Progressing
        stay as they are until something disturbs it, but for a failing first deploy
        whose deploying revision now has an available replica."""
        rest = self.rest_state(spec, step)
        progressing = next(c for c in step.response.conditions if c.type == "Progressing")
        state = (step.status.get("phase"), step.status.get("currentRevision"),
                 step.status.get("deployingRevision"), step.status.get("failedRevision"),
                 condition_status(progressing), progressing.reason)
        previous, self.at_rest = self.at_rest, (f"{rest} {state}" if rest else None)
        if previous is not None and spec.strategy.analysis is not None \
                and previous.startswith("awaiting-approval"):
            # docs/rollout.md#the-analysis-gate: the gate's verdict moves with the metrics the
            # replicas publish
            # while the deployment waits for approval (AnalysisInconclusive, then
            # AwaitingPromotion on a Pass, or a Fail tolerated that then rolls back).
            previous = self.at_rest
        if previous is not None and not disturbed and self.previous is not None \
                and previous != self.at_rest:
            deploying = self.previous.status.get("deployingRevision")
            recovered = previous.startswith("failing-first-deploy") and deploying and \
                revision_counts(spec, step).get(deploying, (0, 0))[0] > 0
            if not recovered:
                raise Violation(f"left its rest state without a disturbance: {previous} "
                                f"-> {self.at_rest or state}")
        self.count("rest-holds")
        assert self.calm_since is not None
        calm = (step.now - self.calm_since).total_seconds()
        if rest is None and calm > self.liveness_bound(spec):
            raise Violation(f"not at rest {calm:.0f}s after the last disturbance (bound "
                            f"{self.liveness_bound(spec):.0f}s): phase {state[0]}, current "
                            f"{state[1]}, deploying {state[2]}, failed {state[3]}, "
                            f"Progressing {state[4]}/{state[5]}")
        self.count("at-rest-after-disturbance")

    # --- routes, timers, lost status ----------------------------------------------------

    def check_orphans_not_routed(self, step: Step) -> None:
        """docs/rollout.md#revisions: a revision other than the response's current and deploying
        ones is
        never newly added to a route: the main route may keep a backend of it only if
        the observed main route carries it; the preview route carries D only."""
        keep = {step.status.get("currentRevision"), step.status.get("deployingRevision")}
        carried = set(invariants._backends(step.observed, naming.ROUTE_KEY))
        by_backend = invariants._endpoint_by_backend(step.observed)
        for name in main_backends(step):
            revision = (naming.parse_replica_key(by_backend.get(name, "")) or ("",))[0]
            if revision not in keep and name not in carried:
                raise Violation(f"the main route newly carries {name} of {revision!r}, "
                                f"neither current nor deploying ({sorted(filter(None, keep))})")
        for name in invariants._backends(step.desired, naming.PREVIEW_ROUTE_KEY):
            revision = (naming.parse_replica_key(by_backend.get(name, "")) or ("",))[0]
            if revision != step.status.get("deployingRevision"):
                raise Violation(f"the preview route carries {name} of {revision!r}, "
                                "not the deploying revision")
        self.count("orphans-never-newly-routed")

    def check_canary_share(self, spec: Spec, step: Step) -> None:
        """docs/rollout.md#canary: a canary's share of the main route's weight (the rule without a
        header match) is never more than its share of Serving capacity,
        Serving(D) / N, unless the current revision has nothing to route; the same
        holds for the weight reported in status.canary."""
        status = step.status
        deploying, current = status.get("deployingRevision"), status.get("currentRevision")
        if status.get("rolloutStrategy") != CANARY or not deploying or not current \
                or not spec.replicas:
            return
        weights = main_rule_weights(step)
        total = sum(weights.values())
        serving = revision_counts(spec, step).get(deploying, (0, 0))[1]
        if total and weights.get(current) and \
                weights.get(deploying, 0) * spec.replicas > serving * total:
            raise Violation(
                f"canary {deploying!r} carries {weights.get(deploying, 0)} of {total} of "
                f"the main route's weight with {serving} of {spec.replicas} replicas "
                f"serving ({weights})")
        if current_routes(step):  # with or without a route composed
            reported = (status.get("canary") or {}).get("weight", 0)
            if reported * spec.replicas > 100 * serving:
                raise Violation(f"status.canary.weight {reported} with {serving} of "
                                f"{spec.replicas} canary replicas serving")
            self.count("canary-share-within-capacity")

    def check_canary_steps(self, spec: Spec, step: Step) -> None:
        """docs/rollout.md#canary: every step holds for its duration. status.canary.weight never
        exceeds
        the weight of the last setWeight reached (before promotion); the step index
        never passes a timed pause or an analysis step before stepStartTime +
        durationSeconds, nor a manual pause without spec.promote naming the canary; and
        during a timed pause the weight stays at least what it started with, but for
        the cap of the canary's Serving capacity."""
        status = step.status
        now_canary = status.get("canary")
        deploying = status.get("deployingRevision")
        if status.get("rolloutStrategy") != CANARY or not isinstance(now_canary, dict) \
                or spec.strategy.canary is None or not deploying:
            return
        steps = spec.strategy.canary.steps
        index, weight = int(now_canary.get("step", 0)), now_canary.get("weight", 0)
        if index < len(steps) and current_routes(step):
            # (Unless the current revision has nothing to route: the canary carries all.)
            reached = [s.weight for s in steps[:index + 1] if s.kind == SET_WEIGHT]
            cap = reached[-1] if reached else 0
            if weight > (cap or 0):
                raise Violation(f"status.canary.weight {weight} at step {index}, past the last "
                                f"setWeight reached ({cap})")
            self.count("canary-weight-within-step")
        prior = prior_status(step)
        before = prior.get("canary")
        earlier = self.last_applied
        if not isinstance(before, dict) or prior.get("deployingRevision") != deploying \
                or prior.get("rolloutStartTime") != status.get("rolloutStartTime") \
                or earlier is None or request_spec(earlier) != request_spec(step):
            return  # another rollout, or steps edited (the index is clamped)
        old = int(before.get("step", 0))
        started = _time(before.get("stepStartTime")) or step.now
        for k in range(old, min(index, len(steps))):
            held = steps[k]
            if held.kind not in (PAUSE, ANALYSIS):
                continue
            since = started if k == old else step.now
            if held.kind == PAUSE and held.duration_seconds is None:
                if spec.promote != deploying:
                    raise Violation(f"step {k} (manual pause) passed without spec.promote")
            elif step.now < since + timedelta(seconds=held.duration_seconds or 0):
                raise Violation(f"step {k} ({held.kind} {held.duration_seconds}s from {since}) "
                                f"passed at {step.now} (now step {index})")
        self.count("canary-steps-held")
        # From the call that enters the pause on, against the previous response's weight.
        pause_start = _time(now_canary.get("stepStartTime")) or step.now
        pause = steps[index].duration_seconds if old <= index < len(steps) \
            and steps[index].kind == PAUSE else None
        if pause is not None and step.now < pause_start + timedelta(seconds=pause):
            serving = revision_counts(spec, step).get(deploying, (0, 0))[1]
            share = 100 * serving // spec.replicas if spec.replicas else 100
            held_weight = before.get("weight", 0)
            if weight < min(held_weight, share):
                raise Violation(f"a timed pause (step {index}) started at weight "
                                f"{held_weight} routes {weight} with {serving} of "
                                f"{spec.replicas} canary replicas serving")
            self.count("canary-pause-holds-weight")

    def check_service_levels(self, spec: Spec, step: Step) -> None:
        """docs/rollout.md#the-analysis-gate, with the service levels the scenario drew per
        revision: a bad
        revision (slow or erroring throughout) never completes a rollout over a current
        revision without spec.promote naming it, and a good one (or one whose metrics
        go stale) is never rolled back for analysis (Progressing reason AnalysisFailed)."""
        if not self.service_levels:
            return
        prior = prior_status(step)
        status = step.status
        deploying = prior.get("deployingRevision")
        before = prior.get("currentRevision")
        if deploying and before and before != deploying \
                and status.get("currentRevision") == deploying:
            if self.service_levels.get(deploying) in ("slow", "erroring") \
                    and spec.promote != deploying:
                raise Violation(f"{deploying!r} ({self.service_levels[deploying]}) completed "
                                f"without approval: {status.get('analysis')}")
            self.count("bad-service-never-completes-unapproved")
        progressing = next(c for c in step.response.conditions if c.type == "Progressing")
        failed = status.get("failedRevision")
        if progressing.reason == "AnalysisFailed" and failed \
                and self.service_levels.get(failed) in ("good", "stale"):
            raise Violation(f"{failed!r} ({self.service_levels[failed]}) was rolled back for "
                            f"analysis: {progressing.message}")
        self.count("good-service-never-fails-analysis")

    def check_no_churn(self, step: Step, disturbed: bool) -> None:
        """docs/rollout.md#capacity-shortage: a replica waiting for an accelerator is never dropped
        and replaced by a
        fresh index while its revision still wants it: not in the same response
        (as tests/invariants.py check 8), nor across two: a response that drops a
        waiting replica of a revision and the next one, with nothing disturbed in
        between, that gives the revision more replicas than the first kept."""
        counts: Counter = Counter()
        for key, body in step.desired.items():
            parsed = naming.parse_replica_key(key)
            annotations = body.get("metadata", {}).get("annotations", {}) or {}
            if parsed and naming.ANNOTATION_DRAINING_SINCE not in annotations:
                counts[parsed[0]] += 1
        kept, self.dropped_waiting = self.dropped_waiting, {}
        if not disturbed and step.applied:
            for revision, before in kept.items():
                created = [k for k in step.desired if k not in step.observed
                           and (naming.parse_replica_key(k) or ("",))[0] == revision]
                if created and counts[revision] > before:
                    raise Violation(f"a waiting replica of {revision!r} was dropped, and the "
                                    f"next response created {sorted(created)}")
            self.count("no-churn-across-calls")
        if not step.applied:
            return
        for key, body in step.observed.items():
            parsed = naming.parse_replica_key(key)
            if parsed and key not in step.desired and invariants.unschedulable(body):
                created = [k for k in step.desired if k not in step.observed
                           and (naming.parse_replica_key(k) or ("",))[0] == parsed[0]]
                if created:
                    raise Violation(f"{key} waits for an accelerator and was dropped for "
                                    f"{sorted(created)} in the same response")
                self.dropped_waiting[parsed[0]] = counts[parsed[0]]

    def check_ttl(self, spec: Spec, step: Step) -> None:
        """docs/rollout.md#status-and-conditions: the TTL is no longer than the time to the nearest
        pending timer
        (`outside_timers`), the warm-up of replicas this very response creates included."""
        timers = outside_timers(spec, step)
        if not timers:
            return
        seconds, what = min(timers)
        allowed = max(1, math.ceil(seconds - 1e-6))
        ttl = step.response.meta.ttl.seconds
        if ttl > allowed:
            raise Violation(f"TTL {ttl}s, but the {what} ends in {seconds:.1f}s")
        self.count("ttl-within-nearest-timer")
        if any(naming.parse_replica_key(k) and k not in step.observed for k in step.desired):
            self.count("ttl-of-creating-responses")

    def check_rollout_ends(self, world: World, step: Step, spec: Spec | None) -> None:
        status = world.status  # what Crossplane persisted after this call
        deploying = status.get("deployingRevision")
        key = (deploying, status.get("rolloutStartTime"))
        n = spec.replicas if spec is not None else (self.track.last_n if self.track else 0)
        track = self.track
        if track is not None and (track.revision, track.start_time) != key:
            self.end_track(status, step.now)
            track = None
        if track is None and deploying:
            self.track = track = RolloutTrack(revision=deploying,
                                              start_time=status.get("rolloutStartTime"),
                                              started=step.now, n_total=n, last_n=n)
        pending_disruptive, pending_jump = self.pending_disruptive, self.pending_jump
        self.pending_disruptive, self.pending_jump = 0, 0.0
        if track is None:
            return
        track.disruptive += pending_disruptive
        track.jumped += pending_jump
        track.calls += 1
        if n > track.last_n:
            track.n_total += n - track.last_n
        track.last_n = n
        if not step.applied:
            track.unapplied += 1
        if (self.at_rest or "").startswith("failing-first-deploy") and self.previous is not None:
            track.resting += (step.now - self.previous.now).total_seconds()
        elapsed = (step.now - track.started).total_seconds() - track.resting
        bound = self.budget.bound(track.gains(), track.jumped, track.unapplied)
        if elapsed > bound:
            raise Violation(f"the rollout of {track.revision!r} has run {elapsed:.0f}s, past "
                            f"its bound of {bound:.0f}s (gains {track.gains()}, "
                            f"jumped {track.jumped:.0f}s, resting {track.resting:.0f}s)")
        self.count("rollout-ends-within-bound")

    def end_track(self, status: dict[str, Any], now: datetime) -> None:
        track = self.track
        assert track is not None
        if status.get("currentRevision") == track.revision:
            outcome = "completed"
        elif status.get("failedRevision") == track.revision:
            outcome = "rolled-back"
        elif not status:
            outcome = "restarted"
        elif status.get("deployingRevision"):
            outcome = "pre-empted"
        else:
            outcome = "aborted"
        self.ended.append(EndedRollout(
            revision=track.revision, outcome=outcome,
            seconds=(now - track.started).total_seconds(),
            bound=self.budget.bound(track.gains(), track.jumped, track.unapplied),
            calls=track.calls))
        self.track = None

    def close(self, world: World) -> None:
        """End the scenario: a rollout still running is recorded as open, as of the last
        call that was checked."""
        if self.track is not None:
            track = self.track
            last = self.previous.now if self.previous is not None else world.now
            self.ended.append(EndedRollout(
                revision=track.revision, outcome="open",
                seconds=(last - track.started).total_seconds(),
                bound=self.budget.bound(track.gains(), track.jumped, track.unapplied),
                calls=track.calls))
            self.track = None
