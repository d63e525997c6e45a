"""The replicas step: which replicas to keep, drain, drop and create in this call.

Shared by every strategy: the strategy's course says what each revision should
have, how many replicas may hold capacity, and whether old replicas that serve
drain only as the availability rule allows (docs/rollout.md#rollingupdate);
this module does the keeping, draining, reclaiming and index choosing, into a
Ledger (function/planner/ledger.py).
"""

from __future__ import annotations

from datetime import datetime

from function.classify import Classifier, Health, Lifecycle, Replica
from function.observe import Observed
from function.planner import arithmetic, capacity
from function.planner.course import Course
from function.planner.ledger import (
    Ledger,
    carries,
    create_replicas,
    expire_drains,
    observed_indices,
)
from function.planner.types import RevisionInfo, Rollout
from function.spec import Spec


def classify_all(spec: Spec, observed: Observed, infos: dict[str, RevisionInfo],
                 now: datetime) -> list[Replica]:
    """Every observed replica classified, with one Classifier per revision."""
    classifiers = {name: Classifier(spec, info.health_check, now)
                   for name, info in infos.items()}
    endpoints = observed.endpoints
    return [classifiers[o.revision].classify(o, endpoints.get((o.revision, o.index)))
            for o in observed.replicas]


def plan_replicas(rollout: Rollout, course: Course, observed: Observed) -> Ledger:
    """Keep, drain, drop and create replicas for this call; the Ledger of what is kept.

    The course names the wanted revisions and their sizes. Everything else
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
    on_route = observed.route.backends if observed.route is not None else frozenset()
    preview = observed.preview_route.backends if observed.preview_route is not None else None
    ledger = Ledger(spec=rollout.spec, now=rollout.now, xr_name=rollout.xr_name,
                    taken=observed_indices(observed),
                    routed=on_route | preview if preview else on_route)
    spec = rollout.spec
    wanted = course.targets()

    new_serving = 0
    gated: list[Replica] = []
    live: dict[str, int] = {}
    for name, count in wanted.items():
        live[name], serving, evicted = keep_wanted(
            ledger, spec, rollout.replicas_of(name), count,
            gradually=course.drains_gradually(name))
        if course.on_main_route(name):  # green carries no main traffic yet
            new_serving += serving
        gated.extend(evicted)
    gated.extend(_retire_unwanted(ledger, rollout, course, wanted))
    _drain_gated(ledger, rollout, course, gated, new_serving)
    expire_drains(ledger)
    _create_wanted(ledger, rollout, course, wanted, live)
    return ledger


def _retire_unwanted(ledger: Ledger, rollout: Rollout, course: Course,
                     wanted: dict[str, int]) -> list[Replica]:
    """Retire the replicas of revisions the strategy does not want; return those held.

    Held (left to the availability rule): Serving ones the observed main route
    carries, under a strategy that holds old capacity, of any revision but the
    one that just failed. Every other one retires now (Ledger.retire): a drain
    lasts scaleDownDelaySeconds for blue (the current revision a promotion
    retired in this call), drainSeconds for the rest.
    """
    spec, state = rollout.spec, rollout.state
    holds = course.holds_old_capacity
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


def _drain_gated(ledger: Ledger, rollout: Rollout, course: Course, gated: list[Replica],
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
                                          replicas=rollout.n,
                                          unavailable=course.limits.unavailable)
    # Under a capacity shortage, one more may go to free its accelerator: an old
    # replica that serves or, when none is left beyond its target, one that a
    # revision shrinking gradually keeps (the canary's current revision at s(w)).
    # Looked for only when Replace may act now: most calls skip the pass over kept replicas.
    spare: list[Replica] = []
    traded = 0
    if capacity.replace_due(rollout, course):
        growing = capacity.growing(rollout)  # never trades its own replicas
        spare = sorted((p.replica for p in ledger.kept.values()
                        if p.replica is not None and p.draining_since is None
                        and p.replica.serving and p.revision != growing
                        and course.drains_gradually(p.revision)),
                       key=Replica.removal_rank)
        traded = capacity.headroom_to_trade(ledger, rollout, course, len(gated) + len(spare),
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


def _create_wanted(ledger: Ledger, rollout: Rollout, course: Course, wanted: dict[str, int],
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
            capacity_limit=course.capacity_limit(name))
        total += create_replicas(ledger, name, create)


def keep_wanted(ledger: Ledger, spec: Spec, replicas: list[Replica], wanted: int,
                gradually: bool = False) -> tuple[int, int, list[Replica]]:
    """Keep up to `wanted` live replicas of a wanted revision.

    Failed replicas are dropped, health-evicted ones replaced, extras scaled in by
    removal priority, and Draining ones reclaimed before anything new is created.
    Returns how many replicas are kept live, how many of them Serve, and the
    replicas that still Serve but should go: evicted ones, and with `gradually`
    the extras too. Those leave only as the availability rule allows.

    With `gradually` (a revision shrinking under the availability rule, as the
    canary's current revision does) the extras that do not serve go first,
    whatever their health: they carry no traffic, so the availability rule does
    not hold them (docs/rollout.md#rollingupdate). Three Serving Degraded
    replicas and one Healthy still inside minReadySeconds, target 3 -> the
    Healthy one goes now, the three keep serving. A plain scale-in keeps the
    removal priority alone, health first.
    """
    alive, reclaimable, evicted_serving = _sort_out(ledger, spec, replicas)
    alive.sort(key=_serving_last if gradually else Replica.removal_rank)
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


def _serving_last(replica: Replica) -> tuple[bool, tuple[int, bool, int]]:
    """Sort key for a gradual scale-in: replicas that do not serve first, then by removal
    priority."""
    return replica.serving, replica.removal_rank()


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


