"""Replica states (SPEC section 2), classified afresh from observed state on every call."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from function.observe import ObservedEndpoint, ObservedReplica
from function.spec import DEFAULT_WARMUP_SECONDS, HealthCheck, Spec


class Lifecycle(enum.Enum):
    PROVISIONING = "Provisioning"
    RUNNING = "Running"
    FAILED = "Failed"


class Health(enum.Enum):
    NOT_CHECKED = "NotChecked"
    HEALTHY = "Healthy"
    UNHEALTHY = "Unhealthy"
    DEGRADED = "Degraded"


# Who goes first when replicas must go: lower ranks first.
_REMOVAL_RANK_RUNNING = {
    Health.UNHEALTHY: 2,
    Health.DEGRADED: 3,
    Health.NOT_CHECKED: 4,
    Health.HEALTHY: 5,
}


@dataclass(frozen=True)
class Replica:
    observed: ObservedReplica
    lifecycle: Lifecycle
    health: Health
    draining_since: datetime | None
    available: bool
    serving: bool
    backend_name: str | None  # what the replica's endpoint publishes for routes
    born: datetime
    ready_since: datetime | None
    next_change: datetime | None  # when time alone will change this classification

    @property
    def key(self) -> str:
        return self.observed.key

    @property
    def revision(self) -> str:
        return self.observed.revision

    @property
    def index(self) -> int:
        return self.observed.index

    @property
    def running(self) -> bool:
        return self.lifecycle is Lifecycle.RUNNING

    @property
    def draining(self) -> bool:
        return self.draining_since is not None

    def removal_rank(self) -> tuple[int, int]:
        """Sort key for removal: Failed, Provisioning, then Running by health; newest first."""
        if self.lifecycle is Lifecycle.FAILED:
            rank = 0
        elif self.lifecycle is Lifecycle.PROVISIONING:
            rank = 1
        else:
            rank = _REMOVAL_RANK_RUNNING[self.health]
        return (rank, -self.index)


def warmup_budget(health_check: HealthCheck | None) -> int:
    return DEFAULT_WARMUP_SECONDS if health_check is None else health_check.initial_delay_seconds


def stale_after(spec: Spec, health_check: HealthCheck | None) -> int:
    interval = health_check.interval_seconds if health_check else 10
    return max(spec.health_policy.status_ttl_seconds, 3 * interval)


def classify(
    observed: ObservedReplica,
    endpoint: ObservedEndpoint | None,
    spec: Spec,
    health_check: HealthCheck | None,
    now: datetime,
) -> Replica:
    """Lifecycle, health, availability and serving state of one observed replica."""
    born = observed.created or observed.desired_since or now
    ready = observed.ready
    changes: list[datetime] = []

    if observed.failed:
        lifecycle = Lifecycle.FAILED
    elif observed.is_ready:
        lifecycle = Lifecycle.RUNNING
    elif observed.malformed:
        # Unreadable status says nothing about the replica: never time it out for that.
        lifecycle = Lifecycle.PROVISIONING
    else:
        # Counted from the later of creation and the last Ready transition, so a
        # replica that lost readiness gets a fresh warm-up budget before it is Failed.
        since = born
        if ready is not None and ready.last_transition_time and ready.last_transition_time > since:
            since = ready.last_transition_time
        deadline = since + timedelta(seconds=warmup_budget(health_check))
        if now >= deadline:
            lifecycle = Lifecycle.FAILED
        else:
            lifecycle = Lifecycle.PROVISIONING
            changes.append(deadline)

    health = Health.NOT_CHECKED
    ready_since = None
    if lifecycle is Lifecycle.RUNNING:
        ready_since = (ready.last_transition_time if ready else None) or born
        health = _health(observed, spec, health_check, now, changes)

    draining_since = observed.draining_since
    available = False
    if lifecycle is Lifecycle.RUNNING and draining_since is None:
        healthy_enough = (
            health in (Health.HEALTHY, Health.DEGRADED)
            if health_check is not None
            else health is not Health.UNHEALTHY
        )
        if healthy_enough and ready_since is not None:
            min_ready_end = ready_since + timedelta(seconds=spec.min_ready_seconds)
            if now >= min_ready_end:
                available = True
            else:
                changes.append(min_ready_end)

    backend_name = endpoint.backend_name if endpoint is not None else None
    serving = available and backend_name is not None
    return Replica(
        observed=observed,
        lifecycle=lifecycle,
        health=health,
        draining_since=draining_since,
        available=available,
        serving=serving,
        backend_name=backend_name,
        born=born,
        ready_since=ready_since,
        next_change=min(changes) if changes else None,
    )


def _health(
    observed: ObservedReplica,
    spec: Spec,
    health_check: HealthCheck | None,
    now: datetime,
    changes: list[datetime],
) -> Health:
    data = observed.health
    if data is None or data.state not in ("Healthy", "Unhealthy"):
        return Health.NOT_CHECKED
    if data.last_probe_time is not None:
        stale_at = data.last_probe_time + timedelta(seconds=stale_after(spec, health_check))
        if now >= stale_at:
            return Health.DEGRADED
        if "Degraded" in spec.health_policy.cleanup_target_statuses:
            changes.append(stale_at)
    return Health.HEALTHY if data.state == "Healthy" else Health.UNHEALTHY
