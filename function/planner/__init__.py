"""The rollout planner: from spec, prior status and observed state to a Plan.

One call, no memory but the XR's status. plan() reads as the steps it takes;
each step lives in the module named for its concern, and the strategy
(function/planner/strategies/) is asked only what differs between strategies.
Everything here is pure and deterministic for a given `now`.
"""

from __future__ import annotations

from datetime import datetime

from function.observe import Observed, PriorStatus
from function.planner import strategies
from function.planner.ledger import Ledger, classify_all, observed_indices, plan_replicas
from function.planner.progress import complete, judge_progress
from function.planner.report import report
from function.planner.revisions import decide_revisions, report_in_place_edits, revision_infos
from function.planner.types import (
    Backend,
    Event,
    Plan,
    PlannedReplica,
    Rollout,
    Severity,
    group_by_revision,
)
from function.spec import Spec


def plan(spec: Spec, prior: PriorStatus, observed: Observed, xr_name: str,
         now: datetime) -> Plan:
    """Decide this call's replicas, routes and status (docs/rollout.md)."""
    infos = revision_infos(spec, observed)
    replicas = classify_all(spec, observed, infos, now)
    events: list[Event] = []
    report_in_place_edits(replicas, infos, events)

    on_route = observed.route.backends if observed.route is not None else frozenset()
    state = decide_revisions(spec, prior, replicas, now, events, on_route)
    strategy = strategies.for_type(state.strategy)
    rollout = Rollout(spec=spec, prior=prior, state=state, infos=infos,
                      by_revision=group_by_revision(replicas), now=now, events=events,
                      xr_name=xr_name, carried=on_route if spec.route is not None else None)
    rollout.surge, rollout.unavailable = strategy.limits(spec)

    gate = judge_progress(rollout, strategy)
    preview = observed.preview_route.backends if observed.preview_route is not None else None
    ledger = Ledger(spec=spec, now=now, xr_name=xr_name, taken=observed_indices(observed),
                    routed=on_route | preview if preview else on_route)
    plan_replicas(ledger, rollout, strategy)
    if state.deploying is not None and strategy.done(rollout, ledger):
        complete(state, events)
    return report(rollout, strategy, ledger, gate)


__all__ = ["Backend", "Plan", "PlannedReplica", "Severity", "plan"]
