"""The replica ledger: which replicas to keep, drain, drop and create.

Shared by every strategy: the strategy says what each revision should have,
how many replicas may hold capacity, and whether old replicas that serve
drain only as the availability rule allows (docs/rollout.md#rollingupdate);
the ledger does the keeping, draining, reclaiming and index choosing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from function import naming
from function import rollout as arithmetic
from function.classify import Classifier, Health, Lifecycle, Replica
from function.observe import Observed
from function.planner import capacity
from function.planner.types import PlannedReplica, RevisionInfo, Rollout
from function.spec import Spec

if TYPE_CHECKING:
    from function.planner.strategies.base import Strategy


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


def classify_all(spec: Spec, observed: Observed, infos: dict[str, RevisionInfo],
                 now: datetime) -> list[Replica]:
    """Every observed replica classified, with one Classifier per revision."""
    classifiers = {name: Classifier(spec, info.health_check, now)
                   for name, info in infos.items()}
    endpoints = observed.endpoints
    return [classifiers[o.revision].classify(o, endpoints.get((o.revision, o.index)))
            for o in observed.replicas]


def plan_replicas(ledger: Ledger, rollout: Rollout, strategy: Strategy) -> None:
    """Keep, drain, drop and create replicas for this call.

    The strategy names the wanted revisions and their sizes. Everything else
    retires: the revision that just failed goes at once; under a strategy that
    holds old capacity, old replicas that serve and that the observed main
    route carries drain only as the wanted revisions' serving capacity allows
    (serving_to_drain), and under a capacity shortage one more may go to free
    its accelerator (capacity.headroom_to_trade); any other retires at once. A
    Serving orphan that the route does not carry takes no traffic and is never
    newly routed. New replicas are created within the strategy's capacity
    limit, counting every replica that holds an accelerator (not Unschedulable
    ones).
    """
    spec, state = rollout.spec, rollout.state
    wanted = strategy.targets(rollout)

    new_serving = 0
    gated: list[Replica] = []
    live: dict[str, int] = {}
    for name, count in wanted.items():
        live[name], serving, evicted = keep_wanted(
            ledger, spec, rollout.replicas_of(name), count,
            gradually=strategy.drains_gradually(rollout, name))
        if strategy.on_main_route(state, name):  # green carries no main traffic yet
            new_serving += serving
        gated.extend(evicted)
    gated.extend(_retire_unwanted(ledger, rollout, strategy, wanted))
    _drain_gated(ledger, rollout, strategy, gated, new_serving)
    expire_drains(ledger)
    _create_wanted(ledger, rollout, strategy, wanted, live)


def _retire_unwanted(ledger: Ledger, rollout: Rollout, strategy: Strategy,
                     wanted: dict[str, int]) -> list[Replica]:
    """Retire the replicas of revisions the strategy does not want; return those held.

    Held (left to the availability rule): Serving ones the observed main route
    carries, under a strategy that holds old capacity, of any revision but the
    one that just failed. Every other one retires now (Ledger.retire): a drain
    lasts scaleDownDelaySeconds for blue (the current revision a promotion
    retired in this call), drainSeconds for the rest.
    """
    spec, state = rollout.spec, rollout.state
    holds = strategy.holds_old_capacity
    carried = rollout.carried
    gated: list[Replica] = []
    for name, replicas in rollout.by_revision.items():
        if name in wanted:
            continue
        for replica in replicas:
            if replica.draining or not replica.serving or name == state.failed \
                    or not holds or not carries(carried, replica):
                delay = (spec.strategy.scale_down_delay_seconds
                         if name == state.retired_current else spec.drain_seconds)
                ledger.retire(replica, delay)
            else:
                gated.append(replica)
    return gated


def _drain_gated(ledger: Ledger, rollout: Rollout, strategy: Strategy, gated: list[Replica],
                 new_serving: int) -> None:
    """Drain the held replicas the availability rule allows, plus one traded under a
    capacity shortage; keep the rest.

    allowed = serving_to_drain(held, new_serving). Held replicas of other
    revisions go before the current revision's, each by removal priority.
    Example: 3 held, allowed 1, one traded -> the first two drain (the second
    is ledger.traded), the third is kept.
    """
    spec = rollout.spec
    allowed = arithmetic.serving_to_drain(serving_old=len(gated), serving_new=new_serving,
                                          replicas=rollout.n, unavailable=rollout.unavailable)
    # Under a capacity shortage, one more may go to free its accelerator: an old
    # replica that serves or, when none is left beyond its target, one that a
    # revision shrinking gradually keeps (the canary's current revision at s(w)).
    # Looked for only when Replace may act now: most calls skip the pass over kept replicas.
    spare: list[Replica] = []
    traded = 0
    if capacity.replace_due(rollout, strategy):
        growing = capacity.growing(rollout)  # never trades its own replicas
        spare = sorted((p.replica for p in ledger.kept.values()
                        if p.replica is not None and p.draining_since is None
                        and p.replica.serving and p.revision != growing
                        and strategy.drains_gradually(rollout, p.revision)),
                       key=Replica.removal_rank)
        traded = capacity.headroom_to_trade(ledger, rollout, strategy, len(gated) + len(spare),
                                            new_serving - len(spare))
    current = rollout.state.current
    gated.sort(key=lambda r: (r.revision == current, r.removal_rank()))
    for position, replica in enumerate(gated):
        if position < allowed + traded:
            ledger.drain(replica, spec.drain_seconds)
            if position >= allowed:
                ledger.traded = replica
        else:
            ledger.keep(replica)
    if traded and len(gated) < allowed + traded and spare:
        ledger.drain(spare[0], spec.drain_seconds)
        ledger.traded = spare[0]


def _create_wanted(ledger: Ledger, rollout: Rollout, strategy: Strategy, wanted: dict[str, int],
                   live: dict[str, int]) -> None:
    """Create the replicas each wanted revision lacks, within the strategy's capacity limit.

    The total counts every kept replica that holds an accelerator and grows
    with each creation, so revisions earlier in `wanted` are served first.
    """
    # Unschedulable replicas hold no accelerator: not part of the total maxSurge bounds.
    unschedulable = Lifecycle.UNSCHEDULABLE
    total = sum(1 for p in ledger.kept.values()
                if p.replica is None or p.replica.lifecycle is not unschedulable)
    for name, count in wanted.items():
        info = rollout.infos.get(name)
        if info is None or info.template is None:
            continue  # a revision missing from the spec cannot be rebuilt
        create = arithmetic.replicas_to_create(
            wanted=count, alive=live[name], total=total,
            capacity_limit=strategy.capacity_limit(rollout, name))
        total += create_replicas(ledger, name, create)


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


def keep_wanted(ledger: Ledger, spec: Spec, replicas: list[Replica], wanted: int,
                gradually: bool = False) -> tuple[int, int, list[Replica]]:
    """Keep up to `wanted` live replicas of a wanted revision.

    Failed replicas are dropped, health-evicted ones replaced, extras scaled in by
    removal priority, and Draining ones reclaimed before anything new is created.
    Returns how many replicas are kept live, how many of them Serve, and the
    replicas that still Serve but should go: evicted ones, and with `gradually`
    the extras too. Those leave only as the availability rule allows.
    """
    alive, reclaimable, evicted_serving = _sort_out(ledger, spec, replicas)
    alive.sort(key=Replica.removal_rank)
    extra = len(alive) - wanted
    for replica in alive[:max(0, extra)]:
        if gradually and replica.serving:
            evicted_serving.append(replica)
        else:
            ledger.retire(replica, spec.drain_seconds)
    alive = alive[max(0, extra):]
    for replica in alive:
        ledger.keep(replica)

    shortfall = wanted - len(alive)
    reclaimable.sort(key=Replica.removal_rank, reverse=True)
    reclaimed = reclaimable[:max(0, shortfall)]
    for replica in reclaimed:
        ledger.reclaim(replica)
    for replica in reclaimable[len(reclaimed):]:
        ledger.retire(replica, spec.drain_seconds)
    # Reclaimed replicas were Draining when classified, so none of them Serves yet.
    serving = sum(1 for replica in alive if replica.serving)
    return len(alive) + len(reclaimed), serving, evicted_serving


def _sort_out(ledger: Ledger, spec: Spec,
              replicas: list[Replica]) -> tuple[list[Replica], list[Replica], list[Replica]]:
    """A wanted revision's replicas as (alive, reclaimable, evicted and Serving).

    Failed replicas are left out (dropped), and so are Draining ones that stopped
    running; health-evicted ones that do not Serve retire at once. Evicted: Running
    with a health in healthPolicy.cleanupTargetStatuses.
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
            ledger.retire(replica, spec.drain_seconds)
        elif replica.draining:
            if replica.running:
                reclaimable.append(replica)
        else:
            alive.append(replica)
    return alive, reclaimable, evicted_serving


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
