"""Replica states, classified afresh from observed state on every call.

The states are defined in docs/rollout.md#replica-states.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from function.observe import ObservedEndpoint, ObservedReplica
from function.spec import DEFAULT_WARMUP_SECONDS, HealthCheck, Spec


class Lifecycle(enum.Enum):
    """Where a replica is in its life (docs/rollout.md#replica-states)."""

    PROVISIONING = "Provisioning"
    RUNNING = "Running"
    FAILED = "Failed"
    UNSCHEDULABLE = "Unschedulable"  # waits for an accelerator: holds none


class Health(enum.Enum):
    """What the replica's prober says, meaningful only while it runs."""

    NOT_CHECKED = "NotChecked"
    HEALTHY = "Healthy"
    UNHEALTHY = "Unhealthy"
    DEGRADED = "Degraded"


# The members, as module globals: in Python 3.11 reading `Lifecycle.RUNNING` off
# the class costs as much as a dict lookup, and classify compares several per replica.
_PROVISIONING, _RUNNING, _FAILED = Lifecycle.PROVISIONING, Lifecycle.RUNNING, Lifecycle.FAILED
_UNSCHEDULABLE = Lifecycle.UNSCHEDULABLE
_NOT_CHECKED, _HEALTHY, _UNHEALTHY, _DEGRADED = (
    Health.NOT_CHECKED, Health.HEALTHY, Health.UNHEALTHY, Health.DEGRADED)

# Who goes first when replicas must go: lower ranks first.
_REMOVAL_RANK_RUNNING = {
    _UNHEALTHY: 2,
    _DEGRADED: 3,
    _NOT_CHECKED: 4,
    _HEALTHY: 5,
}


# Not frozen: a frozen dataclass's __init__ sets every field through
# object.__setattr__, which made building the Replica the largest cost of
# classifying one. Treat it as read-only all the same: it is a fact about one call.
@dataclass(slots=True)
class Replica:
    """One observed replica, classified.

    key, revision, index, observed_ready, running and draining repeat what
    observed, lifecycle and draining_since say: the planner reads them several
    times per replica, and plain attributes cost a fraction of properties at
    thousands of replicas.
    """

    observed: ObservedReplica
    key: str
    revision: str
    index: int
    observed_ready: bool  # observed.is_ready
    lifecycle: Lifecycle
    running: bool  # lifecycle is RUNNING
    health: Health
    draining_since: datetime | None
    draining: bool  # draining_since is not None
    available: bool
    serving: bool  # available and backend_name is not None
    backend_name: str | None  # what the replica's endpoint publishes for routes
    born: datetime
    ready_since: datetime | None
    next_change: datetime | None  # when time alone will change this classification

    def removal_rank(self) -> tuple[int, bool, int]:
        """Sort key for removal: Unschedulable, Failed, Provisioning, Running by health;
        among equals, one that does not serve yet first, then the newest
        (docs/rollout.md#replica-states).

        Availability first: of two Healthy Running replicas, one still inside
        minReadySeconds (or without a published backend) carries no traffic and
        goes before one that serves, as a Kubernetes ReplicaSet removes the pods
        Ready for the shortest time first. Healthy replicas 0-2 not serving yet
        and 3 serving, scaling 4 -> 2: 2 and 1 go, 3 stays.
        """
        lifecycle = self.lifecycle
        if lifecycle is _FAILED:
            rank = 0
        elif lifecycle is _UNSCHEDULABLE:
            rank = -1
        elif lifecycle is _PROVISIONING:
            rank = 1
        else:
            rank = _REMOVAL_RANK_RUNNING[self.health]
        return (rank, self.serving, -self.index)


def warmup_budget(health_check: HealthCheck | None) -> int:
    """Seconds a replica may take to become Ready: initialDelaySeconds, else 600."""
    return DEFAULT_WARMUP_SECONDS if health_check is None else health_check.initial_delay_seconds


def stale_after(spec: Spec, health_check: HealthCheck | None) -> int:
    """Seconds after which health data is stale: max(statusTTLSeconds, 3 * interval).

    statusTTLSeconds 120, intervalSeconds 10 -> 120; intervalSeconds 60 -> 180.
    """
    interval = health_check.interval_seconds if health_check else 10
    return max(spec.health_policy.status_ttl_seconds, 3 * interval)


class Classifier:
    """Classifies the replicas of one revision at one `now`.

    The durations and policy it needs are the same for every replica of a
    revision, so they are worked out once here rather than once per replica.
    """

    def __init__(self, spec: Spec, health_check: HealthCheck | None, now: datetime) -> None:
        self.now = now
        self.checked = health_check is not None
        self.warmup = timedelta(seconds=warmup_budget(health_check))
        self.stale = timedelta(seconds=stale_after(spec, health_check))
        self.min_ready = timedelta(seconds=spec.min_ready_seconds)
        # Only then does a probe going stale change what the planner does.
        self.watch_stale = "Degraded" in spec.health_policy.cleanup_target_statuses

    def classify(self, observed: ObservedReplica, endpoint: ObservedEndpoint | None) -> Replica:
        """One replica's lifecycle, health, Available and Serving at this call's `now`."""
        now = self.now
        born = observed.created or observed.desired_since or now
        ready = observed.ready
        is_ready = observed.is_ready
        draining_since = observed.draining_since
        changes: list[datetime] = []

        if observed.failed:
            lifecycle = _FAILED
        elif is_ready:
            lifecycle = _RUNNING
        elif observed.malformed:
            # Unreadable status says nothing about the replica: never time it out for that.
            lifecycle = _PROVISIONING
        elif (scheduled := observed.scheduled) is not None and scheduled.status == "False":
            # No accelerator yet, so its warm-up budget has not started: never Failed for
            # waiting (docs/rollout.md#capacity-shortage).
            lifecycle = _UNSCHEDULABLE
        else:
            # Counted from the latest of creation, the last Ready transition and the
            # Scheduled transition: a replica that lost readiness gets a fresh warm-up
            # budget before it is Failed, and one that waited for an accelerator gets
            # its whole budget from when it was scheduled.
            since = born
            if (ready is not None and ready.last_transition_time
                    and ready.last_transition_time > since):
                since = ready.last_transition_time
            if (scheduled is not None and scheduled.last_transition_time
                    and scheduled.last_transition_time > since):
                since = scheduled.last_transition_time
            deadline = since + self.warmup
            if now >= deadline:
                lifecycle = _FAILED
            else:
                lifecycle = _PROVISIONING
                changes.append(deadline)

        health = _NOT_CHECKED
        ready_since = None
        available = False
        if lifecycle is _RUNNING:
            ready_since = (ready.last_transition_time if ready else None) or born
            health = self.health(observed, changes)
            if draining_since is None:
                available = self.available_after_min_ready(health, ready_since, changes)

        backend_name = endpoint.backend_name if endpoint is not None else None
        return Replica(
            observed=observed,
            key=observed.key,
            revision=observed.revision,
            index=observed.index,
            observed_ready=is_ready,
            lifecycle=lifecycle,
            running=lifecycle is _RUNNING,
            health=health,
            draining_since=draining_since,
            draining=draining_since is not None,
            available=available,
            serving=available and backend_name is not None,
            backend_name=backend_name,
            born=born,
            ready_since=ready_since,
            next_change=min(changes) if changes else None,
        )

    def health(self, observed: ObservedReplica, changes: list[datetime]) -> Health:
        """Healthy or Unhealthy as probed, Degraded once the probe is stale, else NotChecked.

        When a stale probe matters (Degraded is cleaned up), the moment it goes
        stale is added to `changes`, so the TTL brings the next call then.
        """
        data = observed.health
        if data is None or data.state not in ("Healthy", "Unhealthy"):
            return _NOT_CHECKED
        if data.last_probe_time is not None:
            stale_at = data.last_probe_time + self.stale
            if self.now >= stale_at:
                return _DEGRADED
            if self.watch_stale:
                changes.append(stale_at)
        return _HEALTHY if data.state == "Healthy" else _UNHEALTHY

    def available_after_min_ready(self, health: Health, ready_since: datetime,
                                  changes: list[datetime]) -> bool:
        """A Running, non-draining replica healthy enough and Ready for minReadySeconds."""
        healthy_enough = (
            health in (_HEALTHY, _DEGRADED)
            if self.checked
            else health is not _UNHEALTHY
        )
        if not healthy_enough:
            return False
        min_ready_end = ready_since + self.min_ready
        if self.now >= min_ready_end:
            return True
        changes.append(min_ready_end)
        return False


# --- a revision's replicas, counted -------------------------------------------------------


def serving_count(replicas: list[Replica]) -> int:
    """How many of the replicas are Serving (docs/rollout.md#replica-states)."""
    return sum(1 for r in replicas if r.serving)


def serves_in_full(replicas: list[Replica], n: int) -> bool:
    """Whether a revision's replicas serve N: its BlueGreen gate, and the end of a rollout
    that no deadline may roll back any more (3 of them serving, N = 3 -> True).
    """
    return serving_count(replicas) >= n


def all_failed(replicas: list[Replica]) -> bool:
    """Every replica of the revision that exists is Failed, and there is at least one
    (docs/rollout.md#rollback): [] -> False; [Failed, Provisioning] -> False.
    """
    return bool(replicas) and all(r.lifecycle is _FAILED for r in replicas)
