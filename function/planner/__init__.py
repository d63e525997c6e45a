"""The rollout planner: from spec, prior status and observed state to a Plan.

One call, no memory but the XR's status. plan() reads as the steps it takes,
in one direction; each step lives in the module named for its concern, and
the strategy is asked once, for this call's course
(function/planner/course.py), which answers every question that differs
between strategies. Everything here is pure and deterministic for a given
`now`.
"""

from __future__ import annotations

from datetime import datetime

from function.observe import Observed, PriorStatus
from function.planner import strategies
from function.planner.ledger import in_spec_order
from function.planner.replicas import classify_all, plan_replicas
from function.planner.report import report
from function.planner.revisions import complete, decide_revisions, revision_infos
from function.planner.traffic import route
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
    """Decide this call's replicas, routes and status (docs/rollout.md).

    classify -> revisions -> course -> replicas -> complete -> routes -> report.
    A rollout that completes in this response is routed as completed (its
    revision is current, with no preview or header rule), so completion comes
    before the routes.
    """
    infos = revision_infos(spec, observed)
    replicas = classify_all(spec, observed, infos, now)
    events: list[Event] = []
    on_route = observed.route.backends if observed.route is not None else frozenset()
    state = decide_revisions(spec, prior, replicas, infos, now=now, events=events,
                             routed=on_route)
    rollout = Rollout(spec=spec, prior=prior, state=state, infos=infos,
                      by_revision=group_by_revision(replicas), now=now, events=events,
                      xr_name=xr_name, carried=on_route if spec.route is not None else None)
    course = strategies.for_type(rollout.state.strategy).begin(rollout)
    ledger = plan_replicas(rollout, course, observed)
    if rollout.state.deploying is not None and course.done(ledger):
        complete(rollout.state, rollout.events)
    planned = in_spec_order(spec, list(ledger.kept.values()))
    routes = route(planned, rollout, course)
    return report(rollout, course, ledger, planned, routes)


__all__ = ["Backend", "Plan", "PlannedReplica", "Severity", "plan"]
