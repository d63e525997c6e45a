"""The course: what a strategy decides for one call, as one typed object.

The way Argo Rollouts dispatches once to rollout/canary.go or
rollout/bluegreen.go, the planner (function/planner/__init__.py) looks the
strategy up once per call and asks it to begin (function/planner/strategies/):
the strategy answers with a Course, one subclass per strategy, that owns
everything the strategy decides in this call and that the planner's later
steps read, in this order:

- the gate, judged as the course begins (function/planner/progress.py judge):
  how the course reaches its gate (a canary moves through its steps), whether
  the SLO gate judges, whether the gate passes (a promotion), and the timers
  that change it;
- replicas: the target of each wanted revision, which revisions shed
  replicas only as the availability rule allows, the capacity limit and the
  capacity policy (function/planner/replicas.py, capacity.py);
- done: whether the deploying revision is rolled out by this call's replicas;
- routes: which revisions the main route may carry, their weights and the
  header rule, returned as Routes (function/planner/traffic.py);
- the report: the Progressing reason and message, and status fields of its own.

Changes of revision state never happen here: a course decides, and
function/planner/revisions.py changes the registers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from function.classify import Replica
from function.planner import analysis_gate
from function.planner.ledger import Ledger
from function.planner.types import (
    REASON_DEPLOYING,
    AnalysisOutcome,
    Backend,
    CapacityPolicy,
    Gate,
    Limits,
    RevisionState,
    Rollout,
    Routes,
)


@dataclass(frozen=True)
class Passage:
    """What a course decides at its gate: the gate as it stands, and why it promotes
    (the promotion's event text), or None when it does not promote in this call.
    """

    gate: Gate
    promote_because: str | None = None


class Course:
    """What one strategy decides for one call; one subclass per strategy.

    Built by a strategy's begin (function/planner/strategies/base.py), which
    judges its gate before returning it; the planner's steps then ask it, in
    order, for replicas, done, routes and the report. The defaults below are
    the answers most strategies share.
    """

    # Whether old replicas that serve stay routed and drain only as the availability
    # rule allows (else they retire at once).
    holds_old_capacity: ClassVar[bool] = True

    def __init__(self, rollout: Rollout, limits: Limits) -> None:
        self.rollout = rollout
        self.limits = limits  # maxSurge / maxUnavailable resolved against N
        self.gate = Gate()  # where the rollout stands at its gate, once begin judged it
        self.analysis: AnalysisOutcome | None = None  # this call's SLO verdict, once judged
        self.promote_note = ""  # "; spec.promote names ..., it is ignored", or ""

    # --- the gate: asked by progress.judge ----------------------------------------------

    def reach_gate(self, deploying: list[Replica]) -> bool:
        """Move to the gate; whether the rollout is at a deliberate wait (reaching it is
        progress). By default there is no gate.
        """
        return False

    def analysis_on(self, deploying: list[Replica]) -> bool:
        """Whether spec.strategy.analysis judges the deploying revision in this call."""
        return False

    def pass_gate(self, deploying: list[Replica]) -> Passage:
        """At the gate: promote, move on, or wait (and until when)."""
        return Passage(Gate())

    def judge_analysis(self) -> AnalysisOutcome | None:
        """This call's SLO verdict, judged on first asking (analysis_gate.evaluate, which
        rolls back once a Fail has lasted its tolerance) and the same thereafter.
        """
        if self.analysis is None:
            self.analysis = analysis_gate.evaluate(self.rollout)
        return self.analysis

    # --- replicas: asked by replicas.plan_replicas ------------------------------------------

    def targets(self) -> dict[str, int]:
        """Replicas each wanted revision should have; every other revision retires."""
        raise NotImplementedError

    def drains_gradually(self, revision: str) -> bool:
        """Whether `revision`'s Serving replicas beyond its target drain only as the
        availability rule allows. By default they retire at once (a scale-in).
        """
        return False

    def capacity_limit(self, revision: str) -> int | None:
        """How many replicas may hold capacity before `revision` grows (None: no limit).
        By default N + surge.
        """
        return self.rollout.n + self.limits.surge

    def capacity_policy(self) -> CapacityPolicy | None:
        """What a shortage of accelerators for the growing revision does; None when the
        strategy never trades a serving replica for one (it waits).
        """
        return None

    # --- routes: asked by traffic.route ---------------------------------------------------

    def on_main_route(self, revision: str) -> bool:
        """Whether the main route may carry `revision`'s Serving replicas."""
        raise NotImplementedError

    def routes(self, main: list[Backend], preview: list[Backend]) -> Routes:
        """The routes, given the backends each may carry (weight 1 each): by default as
        they are, traffic following serving capacity.
        """
        return Routes(main=main, preview=preview)

    # --- done and the report ----------------------------------------------------------------

    def done(self, ledger: Ledger) -> bool:
        """Whether the deploying revision is fully rolled out by this call's replicas."""
        raise NotImplementedError

    def progressing(self, awaiting: bool, routes: Routes) -> tuple[str, str]:
        """The Progressing reason and message while the rollout moves (or awaits approval)."""
        return REASON_DEPLOYING, deploying_message(self.rollout.state)

    def status(self, routes: Routes) -> dict[str, Any]:
        """Status fields of the strategy's own (status.canary); {} for none."""
        return {}


def deploying_message(state: RevisionState) -> str:
    """The Progressing message of a rollout moving replicas with nothing more to say:
    "rolling out revision 'v2' (RollingUpdate)".
    """
    return f"rolling out revision {state.deploying!r} ({state.strategy})"
