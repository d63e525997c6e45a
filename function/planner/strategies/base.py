"""The interface every rollout strategy implements, called at the planner's decision points.

The shared planner (function/planner/) runs the same steps for every strategy
and asks the strategy only what differs between them, the way Argo Rollouts
dispatches once to rollout/canary.go or rollout/bluegreen.go:

- limits: maxSurge and maxUnavailable resolved against N;
- at_gate / pass_gate: is the rollout at a deliberate wait (a promotion gate,
  a pause) rather than moving replicas, and may it move on;
- analysis_on: does the SLO gate (function/planner/analysis_gate.py) judge
  the deploying revision on this call;
- targets: how many replicas each wanted revision should have, and whether a
  revision sheds replicas beyond its target gradually (drains_gradually: only
  as the availability rule allows, as the canary's current revision does);
- capacity_limit: how many replicas may hold capacity before a revision grows;
- capacity_policy: what a capacity shortage of the deploying revision does
  (onCapacityShortage and capacityWaitSeconds), or None: it waits;
- holds_old_capacity: whether old replicas that serve stay routed and drain
  only as the availability rule allows (else they retire at once);
- on_main_route: which revisions the main route may carry;
- weigh: the integer weights of the main route's backends;
- done: whether the deploying revision is fully rolled out;
- progress: the Progressing condition's reason and message while it moves
  or waits for approval;
- header_rule and status: a header-matched rule and status fields of its own.

Defaults gives the answers most strategies share; a strategy overrides the rest.
"""

from __future__ import annotations

from typing import Any, Protocol

from function.classify import Replica
from function.planner.ledger import Ledger
from function.planner.types import Backend, Gate, HeaderRule, RevisionState, Rollout
from function.spec import Spec


class Strategy(Protocol):
    """A rollout strategy: stateless, one instance serves every call."""

    name: str
    holds_old_capacity: bool

    def limits(self, spec: Spec) -> tuple[int, int]:
        """(surge, unavailable) resolved against spec.replicas."""
        ...

    def at_gate(self, rollout: Rollout, deploying: list[Replica]) -> bool:
        """Whether the rollout has reached a deliberate wait (reaching it is progress)."""
        ...

    def pass_gate(self, rollout: Rollout, deploying: list[Replica]) -> Gate:
        """At the gate: promote, move on, or wait (and until when)."""
        ...

    def analysis_on(self, rollout: Rollout, deploying: list[Replica]) -> bool:
        """Whether spec.strategy.analysis judges the deploying revision on this call.

        When True, the planner runs the analysis gate before at_gate's answer is
        acted on, so a lasting Fail rolls back wherever the rollout stands;
        pass_gate reads the same outcome from analysis_gate.evaluate.
        """
        ...

    def targets(self, rollout: Rollout) -> dict[str, int]:
        """Replicas each wanted revision should have; every other revision retires."""
        ...

    def drains_gradually(self, rollout: Rollout, revision: str) -> bool:
        """Whether `revision`'s Serving replicas beyond its target drain only as allowed."""
        ...

    def capacity_limit(self, rollout: Rollout, revision: str) -> int | None:
        """How many replicas may hold capacity before `revision` grows (None: no limit)."""
        ...

    def capacity_policy(self, rollout: Rollout) -> tuple[str, int] | None:
        """(onCapacityShortage, capacityWaitSeconds) for a deploying revision whose replicas
        wait for an accelerator; None when the strategy never trades a serving replica
        for one (docs/rollout.md#capacity-shortage)."""
        ...

    def on_main_route(self, state: RevisionState, revision: str) -> bool:
        """Whether the main route may carry `revision`'s Serving replicas."""
        ...

    def weigh(self, rollout: Rollout, main: list[Backend]) -> None:
        """Set the main route's backend weights (each starts at 1)."""
        ...

    def done(self, rollout: Rollout, ledger: Ledger) -> bool:
        """Whether the deploying revision is fully rolled out by this call's plan."""
        ...

    def progress(self, rollout: Rollout, awaiting: bool) -> tuple[str, str]:
        """The Progressing reason and message while the rollout moves (or awaits approval)."""
        ...

    def header_rule(self, rollout: Rollout) -> HeaderRule | None:
        """A second main-route rule matching a header, or None."""
        ...

    def status(self, rollout: Rollout) -> dict[str, Any]:
        """Status fields of the strategy's own (e.g. status.canary); {} for none."""
        ...


class Defaults:
    """The answers most strategies share: no gate, no SLO gate, no header rule, weight 1 each."""

    def at_gate(self, rollout: Rollout, deploying: list[Replica]) -> bool:
        """Never at a gate: the rollout moves on without approval."""
        return False

    def pass_gate(self, rollout: Rollout, deploying: list[Replica]) -> Gate:
        """Nothing to wait for: not awaiting, no timers."""
        return Gate()

    def analysis_on(self, rollout: Rollout, deploying: list[Replica]) -> bool:
        """No gate for the SLO gate to hold."""
        return False

    def drains_gradually(self, rollout: Rollout, revision: str) -> bool:
        """A wanted revision's Serving replicas beyond its target retire at once (a scale-in)."""
        return False

    def weigh(self, rollout: Rollout, main: list[Backend]) -> None:
        """Weights stay 1 each: traffic follows serving capacity."""

    def header_rule(self, rollout: Rollout) -> HeaderRule | None:
        """No header rule."""
        return None

    def status(self, rollout: Rollout) -> dict[str, Any]:
        """No status fields of the strategy's own."""
        return {}
