"""Capacity shortage: replicas waiting for an accelerator, and what a rollout does about them.

A replica observed not Ready with `Scheduled=False` is Unschedulable
(function/classify.py): it holds no accelerator, so it does not count toward
the total that maxSurge bounds, it is never timed out into Failed while it
waits, and it goes first when replicas must go. What the rollout does about
a deploying revision that waits is the strategy's capacity policy
(docs/rollout.md#capacity-shortage):

- Wait: nothing else changes. The Progressing message names the replicas
  that wait and why; the progress deadline rolls back if capacity never
  appears.
- Replace: once a replica of the deploying revision has waited
  capacityWaitSeconds, one old replica that serves drains beyond the
  availability rule, so that its accelerator is freed for the new revision
  (serving_to_trade in function/planner/arithmetic.py says how many, at most one).
- No policy (BlueGreen: green needs N accelerators beside blue): wait.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from function import naming
from function.classify import Lifecycle, Replica
from function.observe import format_time
from function.planner import arithmetic
from function.planner.course import Course
from function.planner.ledger import Ledger
from function.planner.types import Rollout
from function.spec import REPLACE, WAIT

# How many replicas a message names per reason; the rest are counted.
NAMED_PER_REASON = 3


def unschedulable(replicas: Iterable[Replica]) -> list[Replica]:
    """The replicas waiting for an accelerator."""
    return [r for r in replicas if r.lifecycle is Lifecycle.UNSCHEDULABLE]


def unschedulable_since(replica: Replica) -> datetime:
    """When the replica started waiting: its Scheduled condition's lastTransitionTime.

    Without one, its creation (or first desired) time: a replica waits for an
    accelerator from the moment it exists.
    """
    scheduled = replica.observed.scheduled
    if scheduled is not None and scheduled.last_transition_time is not None:
        return scheduled.last_transition_time
    return replica.born


def describe(replicas: list[Replica], xr_name: str) -> str:
    """The replicas that wait for an accelerator, by reason, for a message ("" when none).

    The lowest indices of each reason are named, the rest counted, so the
    message stays short at any size:

        1 replica unschedulable (InsufficientCapacity: qwen-v2-0)
        5 replicas unschedulable (InsufficientCapacity: qwen-v2-0, qwen-v2-1, qwen-v2-2
        and 1 more; Unschedulable: qwen-v2-4)
    """
    if not replicas:
        return ""
    by_reason: dict[str, list[Replica]] = defaultdict(list)
    for replica in replicas:
        scheduled = replica.observed.scheduled
        reason = (scheduled.reason if scheduled is not None else None) or "no reason given"
        by_reason[reason].append(replica)
    parts = []
    for reason in sorted(by_reason):
        waiting = sorted(by_reason[reason], key=lambda r: (r.revision, r.index))
        named = ", ".join(naming.replica_name(xr_name, r.revision, r.index)
                          for r in waiting[:NAMED_PER_REASON])
        more = len(waiting) - NAMED_PER_REASON
        parts.append(f"{reason}: {named}" + (f" and {more} more" if more > 0 else ""))
    count = len(replicas)
    return f"{count} replica{'' if count == 1 else 's'} unschedulable ({'; '.join(parts)})"


def growing(rollout: Rollout) -> str | None:
    """The revision that takes freed accelerators: the deploying one, else the current one.

    After an abort, pre-emption or rollback the current revision grows back to
    N while the abandoned revision's replicas still hold accelerators: under
    Replace those are traded as a deploying revision's would be, so a full
    pool never leaves the current revision waiting behind an orphan.
    """
    return rollout.state.deploying or rollout.state.current


def replace_at(rollout: Rollout, course: Course) -> datetime | None:
    """When Replace may first act: a replica of the growing revision has waited
    capacityWaitSeconds. None when the policy is not Replace or none of them waits.

    capacityWaitSeconds 120, qwen-v2-0 Unschedulable since 10:00:00 and
    qwen-v2-1 since 10:01:00 -> 10:02:00.
    """
    policy = course.capacity_policy()
    deploying = growing(rollout)
    if policy is None or policy.on_shortage != REPLACE or deploying is None:
        return None
    waiting = unschedulable(rollout.replicas_of(deploying))
    if not waiting:
        return None
    return min(unschedulable_since(r) for r in waiting) + timedelta(seconds=policy.wait_seconds)


def replace_due(rollout: Rollout, course: Course) -> bool:
    """Whether Replace may act on this call: replace_at has come."""
    acts_at = replace_at(rollout, course)
    return acts_at is not None and rollout.now >= acts_at


def timers(rollout: Rollout, course: Course) -> tuple[datetime, ...]:
    """The moment Replace may act, while it is still to come."""
    acts_at = replace_at(rollout, course)
    return (acts_at,) if acts_at is not None and acts_at > rollout.now else ()


def headroom_to_trade(ledger: Ledger, rollout: Rollout, course: Course,
                      serving_old: int, serving_new: int) -> int:
    """How many old replicas that serve drain beyond the availability rule now: 0 or 1.

    One, under Replace, when a replica of the deploying revision has waited
    capacityWaitSeconds, no accelerator is already on its way (no replica is
    Draining, and every replica of the deploying revision that holds one
    serves: the capacity freed before serves), and the availability rule
    drains nothing this call; serving_to_trade keeps Serving at or above
    N - unav - 1.
    """
    if not replace_due(rollout, course):
        return 0
    if any(planned.draining for planned in ledger.kept.values()):
        return 0
    for replica in rollout.replicas_of(growing(rollout)):
        lifecycle = replica.lifecycle
        if (lifecycle is not Lifecycle.UNSCHEDULABLE and lifecycle is not Lifecycle.FAILED
                and not replica.serving and not replica.draining):
            return 0
    return arithmetic.serving_to_trade(serving_old=serving_old, serving_new=serving_new,
                                       replicas=rollout.n,
                                       unavailable=course.limits.unavailable)


def note(rollout: Rollout, course: Course, ledger: Ledger, waiting: list[Replica],
         serving: int) -> str:
    """What the Progressing message says of replicas that wait for an accelerator ("" if none).

    waiting: the planned replicas that are Unschedulable. When the deploying
    revision waits, the note also says what the rollout does about it.
    """
    described = describe(waiting, rollout.xr_name)
    deploying = growing(rollout)
    if not described or deploying is None or not any(r.revision == deploying for r in waiting):
        return f"; {described}" if described else ""
    policy = course.capacity_policy()
    if policy is None:
        return (f"; {described}; waiting for capacity ({rollout.state.strategy} trades no "
                f"serving replica for an accelerator){_rolls_back(rollout)}")
    if policy.on_shortage == WAIT:
        return (f"; {described}; waiting for capacity (onCapacityShortage Wait)"
                f"{_rolls_back(rollout)}")
    return _replace_note(rollout, course, ledger, serving, described)


def _rolls_back(rollout: Rollout) -> str:
    """"; without progress it rolls back at <lastProgressTime + progressDeadlineSeconds>".

    "" before any progress time is known. Example: last progress 10:00:00,
    deadline 600 -> "; without progress it rolls back at 2026-11-22T10:10:00Z".
    """
    deadline = rollout.state.last_progress
    if deadline is None:
        return ""
    deadline += timedelta(seconds=rollout.spec.progress_deadline_seconds)
    return f"; without progress it rolls back at {format_time(deadline)}"


def _replace_note(rollout: Rollout, course: Course, ledger: Ledger, serving: int,
                  described: str) -> str:
    """note's text under onCapacityShortage Replace: what is traded now, or what it waits for.

    In order: a replica drains in this plan; one replica of headroom is already
    traded (serving < N - unav); Replace acts only from replace_at on; no
    earlier revision serves, so nothing can be traded; else the accelerator
    freed last must serve before the next trade.
    """
    deploying = growing(rollout)
    traded = ledger.traded
    if traded is not None:
        name = naming.replica_name(rollout.xr_name, traded.revision, traded.index)
        return (f"; {described}; onCapacityShortage Replace: {name} drains to free its "
                f"accelerator, trading one replica of headroom")
    minimum = arithmetic.minimum_serving(rollout.n, course.limits.unavailable)
    if serving < minimum:
        return (f"; {described}; onCapacityShortage Replace: one replica of headroom is "
                f"traded for an accelerator ({serving} serving, {minimum} otherwise required)")
    acts_at = replace_at(rollout, course)
    if acts_at is not None and rollout.now < acts_at:
        return (f"; {described}; onCapacityShortage Replace frees an accelerator from "
                f"{format_time(acts_at)}")
    if not any(r.serving for name, replicas in rollout.by_revision.items() if name != deploying
               for r in replicas):
        return (f"; {described}; waiting for capacity (no replica of an earlier revision "
                f"serves, so none can be traded){_rolls_back(rollout)}")
    return (f"; {described}; onCapacityShortage Replace: waiting for the accelerator being "
            f"freed to serve before trading another")
