"""The replica ledger: the replicas one call keeps, drains, drops and creates, by key.

A Ledger is filled by function/planner/replicas.py; its methods say what
keeping, draining, retiring and reclaiming a replica means, and the functions
below read it: drains that have ended, fresh indices, the order replicas are
written in, and whether a revision is fully rolled out.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from function import naming
from function.classify import Replica
from function.observe import Observed
from function.planner.types import PlannedReplica
from function.spec import Spec


@dataclass
class Ledger:
    """Decisions under construction: replicas kept, by key."""

    spec: Spec
    now: datetime
    xr_name: str
    taken: dict[str, set[int]] = field(default_factory=dict)  # indices observed, by revision
    kept: dict[str, PlannedReplica] = field(default_factory=dict)
    # Backend names an observed route (main or preview) carries: requests in flight.
    routed: frozenset[str] = frozenset()
    # The old replica drained beyond the availability rule to free an accelerator, if any.
    traded: Replica | None = None

    def keep(self, replica: Replica) -> PlannedReplica:
        """Keep an observed replica as it is (draining ones keep draining)."""
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
        """Remove a replica: drain it if it may have requests in flight, else drop it at once.

        It may when it is Available, or Ready and carried by an observed route
        whatever its health: an Unhealthy replica routed a moment ago still
        streams the responses it started (docs/rollout.md#draining). A replica
        that is not Ready carries no traffic and is dropped (its key leaves
        desired state). One whose status cannot be read is kept as it is:
        unknown data is never a reason to delete.
        """
        if replica.observed.malformed and not replica.draining:
            self.keep(replica)
        elif (replica.draining or replica.available
              or (replica.observed_ready and replica.backend_name in self.routed)):
            self.drain(replica, seconds)

    def reclaim(self, replica: Replica) -> None:
        """Keep a draining replica that is needed again: it stops draining."""
        planned = self.keep(replica)
        planned.draining_since = None
        planned.drain_seconds = None


def fully_rolled_out(ledger: Ledger, deploying: str | None, n: int) -> bool:
    """The deploying revision serves N and no other replica is kept but draining ones."""
    serving = 0
    for planned in ledger.kept.values():
        if planned.draining or planned.replica is None:
            continue
        if planned.revision != deploying:
            return False
        serving += 1 if planned.replica.serving else 0
    return serving >= n


def carries(carried: frozenset[str] | None, replica: Replica) -> bool:
    """Whether the observed main route carries the replica (None: no route, count it)."""
    return carried is None or replica.backend_name in carried


def expire_drains(ledger: Ledger) -> None:
    """Drop draining replicas whose drain delay has passed, or that stopped running.

    A replica whose status cannot be read keeps draining until its delay ends.
    """
    for key in [k for k, p in ledger.kept.items() if p.draining]:
        planned = ledger.kept[key]
        assert planned.draining_since is not None
        delay = planned.drain_seconds if planned.drain_seconds is not None else 0
        replica = planned.replica
        unreadable = replica is not None and replica.observed.malformed
        if (replica is None or (not replica.running and not unreadable)
                or ledger.now >= planned.draining_since + timedelta(seconds=delay)):
            del ledger.kept[key]


def observed_indices(observed: Observed) -> dict[str, set[int]]:
    """Indices still held by an observed replica or endpoint: never reused while observed."""
    taken: dict[str, set[int]] = defaultdict(set)
    for replica in observed.replicas:
        taken[replica.revision].add(replica.index)
    for revision, index in observed.endpoints:
        taken[revision].add(index)
    return taken


def create_replicas(ledger: Ledger, revision: str, count: int) -> int:
    """Create count replicas with the lowest indices no observed replica or endpoint holds."""
    taken = ledger.taken.get(revision, set()) | {p.index for p in ledger.kept.values()
                                               if p.revision == revision}
    index = 0
    created = 0
    while created < count and index <= naming.MAX_INDEX:
        if index not in taken:
            key = naming.replica_key(revision, index)
            ledger.kept[key] = PlannedReplica(
                key=key,
                name=naming.replica_name(ledger.xr_name, revision, index),
                revision=revision,
                index=index,
                replica=None,
                desired_since=ledger.now,
            )
            created += 1
        index += 1
    return created


def in_spec_order(spec: Spec, kept: list[PlannedReplica]) -> list[PlannedReplica]:
    """Listed revisions in spec order, then unlisted ones by name; by index within each."""
    order = {name: (spec.revision_order(name), name) for name in {p.revision for p in kept}}
    return sorted(kept, key=lambda p: (order[p.revision], p.index))
