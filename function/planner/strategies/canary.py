"""Canary: traffic to the new revision in explicit steps, then full promotion.

docs/rollout.md#canary. Let w be the weight of the last setWeight step reached
(0 before the first). At weight w the canary (the deploying revision D) should
have c(w) replicas and the current revision C s(w) (function/planner/arithmetic.py
canary_targets); replicas move between targets under the RollingUpdate rules
with canary.maxSurge / canary.maxUnavailable: creation never takes the total
past N + surge, and C's Serving replicas beyond s(w) drain only while
Serving(C) + Serving(D) - 1 >= N - unav. On the main route D's backends carry
w percent (never more than its share of Serving capacity) and C's the rest.

Steps, each done when:
- setWeight w: D has c(w) Serving replicas, C is down to s(w), and the route
  (as written by the previous response) carries w;
- pause {durationSeconds: d}: d seconds after the step started;
- pause {}: spec.promote names D (one approval passes every manual pause);
- analysis {durationSeconds: d}: d seconds have passed and the SLO gate passes.

After the last step D is promoted: its target is N, C retires as under
RollingUpdate, and the weight is 100 capped by D's share of Serving capacity,
until D serves N and C has left the route. The progress deadline runs only
while a setWeight step or the promotion moves replicas, never during a pause
or an analysis. A first deploy (no current revision) has no steps: it is
deployed at full size and completes when it serves in full.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from function.analysis import Verdict
from function.classify import Lifecycle, Replica, all_failed
from function.observe import format_time
from function.planner import analysis_gate, arithmetic
from function.planner.course import Course, Passage, deploying_message
from function.planner.ledger import Ledger, fully_rolled_out
from function.planner.strategies.base import StrategyBase
from function.planner.types import (
    REASON_AWAITING_PROMOTION,
    REASON_CANARY_STEP,
    REASON_DEPLOYING,
    Backend,
    CapacityPolicy,
    Gate,
    HeaderRule,
    Limits,
    Rollout,
    Routes,
)
from function.spec import (
    ANALYSIS,
    CANARY,
    PAUSE,
    REPLACE,
    SET_WEIGHT,
    Canary,
    CanaryStep,
    Spec,
)

NO_STEPS = Canary(steps=())


@dataclass
class StepPosition:
    """Where the canary stands among its steps in one call.

    step: the index of the step in force (len(steps): the final promotion);
    step_start: when that step started; weight: w, the weight of the last
    setWeight step reached (100 in promotion).
    """

    steps: tuple[CanaryStep, ...]
    step: int
    step_start: datetime
    weight: int

    @property
    def promoting(self) -> bool:
        """Past the last step: the canary is promoted to N."""
        return self.step >= len(self.steps)

    @property
    def in_force(self) -> CanaryStep | None:
        """The step in force; None in promotion."""
        return None if self.promoting else self.steps[self.step]

    @property
    def ends_at(self) -> datetime:
        """When the step in force has lasted its duration: a timed pause is then done, an
        analysis step may pass. pause 600s started 10:02:40 -> 10:12:40; a step
        without a duration (setWeight, analysis of 0 s) ends as it starts.
        """
        step = self.in_force
        duration = step.duration_seconds if step is not None else None
        return self.step_start + timedelta(seconds=duration or 0)

    def advance(self, now: datetime) -> None:
        """Move to the next step, starting now."""
        self.step += 1
        self.step_start = now
        self.weight = weight_reached(self.steps, self.step)


def canary_spec(spec: Spec) -> Canary:
    """spec.strategy.canary; none (no steps) when a canary in flight lost its block."""
    return spec.strategy.canary or NO_STEPS


def weight_reached(steps: tuple[CanaryStep, ...], step: int) -> int:
    """w at step index `step`: the last setWeight at or before it; 100 past the end.

    steps [setWeight 10, pause, setWeight 50, pause {}]:
        step 0 -> 10, step 1 -> 10, step 2 -> 50, step 3 -> 50, step 4 -> 100
    """
    if step >= len(steps):
        return 100
    for candidate in reversed(steps[:step + 1]):
        if candidate.kind == SET_WEIGHT and candidate.weight is not None:
            return candidate.weight
    return 0


def describe(step: CanaryStep | None) -> str:
    """A step as the Progressing message names it: `setWeight 50`, `pause 600s`, `pause`."""
    if step is None:
        return "promotion"
    if step.kind == SET_WEIGHT:
        return f"setWeight {step.weight}"
    if step.kind == PAUSE:
        return "pause" if step.duration_seconds is None else f"pause {step.duration_seconds}s"
    return f"analysis {step.duration_seconds or 0}s"


def resume(rollout: Rollout) -> StepPosition:
    """The step in force as the previous response left it (clamped to the steps); the
    first step, starting now, for a rollout that starts in this call.
    """
    steps = canary_spec(rollout.spec).steps
    prior, state = rollout.prior, rollout.state
    remembered = prior.canary if (not state.started
                                  and prior.deploying_revision == state.deploying) else None
    step, start = 0, rollout.now
    if remembered is not None and remembered.step is not None and remembered.step >= 0:
        step = min(remembered.step, len(steps))
        start = remembered.step_start_time or rollout.now
    return StepPosition(steps=steps, step=step, step_start=start,
                        weight=weight_reached(steps, step))


class CanaryStrategy(StrategyBase):
    """The Canary strategy: canary's own limits, and a CanaryCourse."""

    name = CANARY

    def limits(self, spec: Spec) -> Limits:
        """canary.maxSurge / canary.maxUnavailable (rollingUpdate's if the block is gone)."""
        canary = spec.strategy.canary
        if canary is None:
            return super().limits(spec)
        surge, unavailable = arithmetic.resolve_limits(canary.max_surge, canary.max_unavailable,
                                                       spec.replicas)
        return Limits(surge=surge, unavailable=unavailable)

    def course_for(self, rollout: Rollout, limits: Limits) -> Course:
        """A CanaryCourse."""
        return CanaryCourse(rollout, limits)


class CanaryCourse(Course):
    """One call of a canary: its steps, the replicas and weights they call for."""

    holds_old_capacity = True

    def __init__(self, rollout: Rollout, limits: Limits) -> None:
        super().__init__(rollout, limits)
        # Where the canary stands, once reach_gate resumed it; None when there are no
        # steps in this call (nothing deploying, or a first deploy).
        self.position: StepPosition | None = None
        # (step, (canary, current)): replica_targets at that step, worked out once per step.
        self._targets_at: tuple[int, tuple[int, int]] | None = None

    # --- the steps ----------------------------------------------------------------------

    def reach_gate(self, deploying: list[Replica]) -> bool:
        """Move through every step that is done; True while a pause or analysis holds.

        Reaching a new step is progress: the deadline restarts from it. An
        analysis step consults the SLO gate, which may roll the canary back; when
        every replica of the canary has failed, the shared rollback rule applies
        whatever step is in force.
        """
        rollout = self.rollout
        state = rollout.state
        if state.current is None or state.deploying is None:
            return False  # a first deploy: full size at once, no steps
        position = self.position = resume(rollout)
        while not position.promoting and self.step_done(position, deploying):
            position.advance(rollout.now)
            state.last_progress = rollout.now
        if state.deploying is None:  # rolled back by the analysis gate in an analysis step
            return False
        if all_failed(deploying):
            return False
        step = position.in_force
        return step is not None and step.kind in (PAUSE, ANALYSIS)

    def step_done(self, position: StepPosition, deploying: list[Replica]) -> bool:
        """Whether the step in force is done (docs/rollout.md#canary)."""
        step = position.in_force
        assert step is not None
        if step.kind == SET_WEIGHT:
            return self.weight_set(position, deploying)
        if step.kind == PAUSE:
            if step.duration_seconds is None:
                return self.rollout.approved
            return self.rollout.now >= position.ends_at
        # analysis: held for its duration, then done on a Pass (an Inconclusive
        # verdict waits for approval; approval never overrides a Fail).
        if self.rollout.now < position.ends_at:
            return False
        approved = self.rollout.approved
        outcome = self.judge_analysis()
        if outcome is None:  # the rollout in flight lost its strategy.analysis: approval
            return approved
        if outcome.rolled_back:
            return False
        return outcome.verdict is Verdict.PASS or (
            outcome.verdict is Verdict.INCONCLUSIVE and approved)

    def weight_set(self, position: StepPosition, deploying: list[Replica]) -> bool:
        """A setWeight step is done: the canary serves c(w), the current revision is down
        to s(w), and the route the previous response wrote carries w.

        Or as much as it can: with no current replica left to route the canary
        carries everything, and with N = 0 there is nothing to route at all.
        """
        rollout = self.rollout
        canary, current = self.replica_targets(position)
        serving = sum(1 for r in deploying if r.serving and not r.draining)
        current_replicas = rollout.replicas_of(rollout.state.current)
        kept = sum(1 for r in current_replicas if not r.draining)
        current_serving = sum(1 for r in current_replicas if r.serving and not r.draining)
        prior = rollout.prior.canary
        routed = prior.weight if prior is not None and prior.weight is not None else 0
        carried = (routed == position.weight or rollout.n == 0
                   or (current_serving == 0 and routed == 100))
        return serving >= canary and kept <= current and carried

    def analysis_on(self, deploying: list[Replica]) -> bool:
        """From the first analysis step on (the promotion included), every call judges."""
        position = self.position
        if position is None:
            return False
        first = next((i for i, step in enumerate(position.steps) if step.kind == ANALYSIS),
                     None)
        return first is not None and position.step >= first

    def pass_gate(self, deploying: list[Replica]) -> Passage:
        """A manual pause awaits approval; a timed pause or an analysis step waits for its
        end; an analysis step past its end and not done waits (Inconclusive: for
        approval; a Fail: out its tolerance, whose end is the analysis' timer).
        """
        position = self.position
        assert position is not None
        step = position.in_force
        assert step is not None
        if step.kind == PAUSE and step.duration_seconds is None:
            return Passage(Gate(awaiting=True))
        ends = position.ends_at
        if self.rollout.now < ends:
            return Passage(Gate(timers=(ends,)))
        outcome = self.judge_analysis()
        return Passage(Gate(awaiting=outcome is None or outcome.verdict is Verdict.INCONCLUSIVE))

    # --- replicas -----------------------------------------------------------------------

    def replica_targets(self, position: StepPosition) -> tuple[int, int]:
        """(canary, current) at the step in force; in promotion (N, 0).

        When c(w) + s(w) would not fit in N + surge (maxSurge 0), the current
        revision yields: its target is N + surge - c(w), so the canary can start
        once a current replica drains within maxUnavailable.
        """
        if self._targets_at is not None and self._targets_at[0] == position.step:
            return self._targets_at[1]
        targets = self._replica_targets(position)
        self._targets_at = (position.step, targets)
        return targets

    def _replica_targets(self, position: StepPosition) -> tuple[int, int]:
        rollout = self.rollout
        n = rollout.n
        if position.promoting:
            return n, 0
        canary, current = arithmetic.canary_targets(n, position.weight)
        current = min(current, n + self.limits.surge - canary)
        policy = self.capacity_policy()
        if policy.on_shortage == REPLACE:
            # Under onCapacityShortage Replace the current revision never grows
            # back during a canary, but to replace a failed replica: a replica
            # traded for an accelerator is not reclaimed, nor re-created to wait
            # for the accelerator the canary took.
            holding = failed = 0
            for replica in rollout.replicas_of(rollout.state.current):
                if replica.lifecycle is Lifecycle.FAILED:
                    failed += 1
                elif not replica.draining and replica.lifecycle is not Lifecycle.UNSCHEDULABLE:
                    holding += 1
            current = min(current, holding + failed)
        return canary, max(0, current)

    def targets(self) -> dict[str, int]:
        """c(w) for the canary and s(w) for the current revision; in promotion the canary
        at N (the current revision retires as under RollingUpdate).
        """
        rollout = self.rollout
        state, position = rollout.state, self.position
        if position is None or state.deploying is None or state.current is None:
            return {(state.deploying or state.current or rollout.spec.active_revision):
                    rollout.n}
        canary, current = self.replica_targets(position)
        if position.promoting:
            return {state.deploying: canary}
        return {state.current: current, state.deploying: canary}

    def drains_gradually(self, revision: str) -> bool:
        """Both sides shed replicas only as the availability rule allows: the current
        revision as the canary grows, the canary when its weight goes down (steps
        restarted after lost status, or edited, or N scaled in).
        """
        state = self.rollout.state
        return self.position is not None and revision in (state.current, state.deploying)

    def capacity_policy(self) -> CapacityPolicy:
        """canary's onCapacityShortage and capacityWaitSeconds (rollingUpdate's if the block
        is gone).
        """
        strategy = self.rollout.spec.strategy
        canary = strategy.canary
        if canary is None:  # a canary in flight whose block was removed: the rolling rules
            return CapacityPolicy(strategy.on_capacity_shortage, strategy.capacity_wait_seconds)
        return CapacityPolicy(canary.on_capacity_shortage, canary.capacity_wait_seconds)

    def done(self, ledger: Ledger) -> bool:
        """Only in promotion (or a first deploy): the canary serves N and nothing else is
        kept but draining replicas.
        """
        position = self.position
        if position is not None and not position.promoting:
            return False
        return fully_rolled_out(ledger, self.rollout.state.deploying, self.rollout.n)

    # --- traffic ------------------------------------------------------------------------

    def on_main_route(self, revision: str) -> bool:
        """The current and the canary revision share the main route, by weight."""
        state = self.rollout.state
        return revision in (state.current, state.deploying)

    def routes(self, main: list[Backend], preview: list[Backend]) -> Routes:
        """Give the canary w percent of the main route, capped by its Serving share, and
        the header rule to the canary alone.

        Backends whose weight comes to 0 leave the rule (the canary at weight 0
        is reached through the header rule only).
        """
        rollout = self.rollout
        position, deploying = self.position, rollout.state.deploying
        if position is None or deploying is None:
            return Routes(main=main, preview=preview)
        canary = [b for b in main if b.revision == deploying]
        current = [b for b in main if b.revision != deploying]
        target, _ = self.replica_targets(position)
        weight = arithmetic.capped_canary_weight(position.weight, len(canary), rollout.n, target)
        current_weight, canary_weight = arithmetic.canary_backend_weights(
            weight, len(current), len(canary))
        weighed = [Backend(b.name, b.port,
                           canary_weight if b.revision == deploying else current_weight,
                           b.revision) for b in main]
        header = canary_spec(rollout.spec).header_route
        header_rule = None
        if header is not None and canary:
            header_rule = HeaderRule(header.name, header.value,
                                     [Backend(b.name, b.port, 1, b.revision) for b in canary])
        return Routes(main=[b for b in weighed if b.weight > 0], preview=preview,
                      header_rule=header_rule,
                      canary_weight=0 if not canary else 100 if not current else weight)

    # --- the report ---------------------------------------------------------------------

    def progressing(self, awaiting: bool, routes: Routes) -> tuple[str, str]:
        """The step in force, the weight routed and the canary's replicas serving, and what
        the step waits for: `step 1/4 pause 600s: 10% routed, 1 of 1 canary replicas serving`.
        """
        rollout = self.rollout
        state, position = rollout.state, self.position
        if position is None:
            return REASON_DEPLOYING, deploying_message(state)
        serving = sum(1 for r in rollout.replicas_of(state.deploying)
                      if r.serving and not r.draining)
        target, _ = self.replica_targets(position)
        where = f"{routes.canary_weight}% routed, {serving} of {target} canary replicas serving"
        if position.promoting:
            return REASON_CANARY_STEP, f"promoting {state.deploying!r}: {where}"
        step = position.in_force
        assert step is not None
        at = f"step {position.step}/{len(position.steps)} {describe(step)}"
        outcome = self.analysis
        analysis = rollout.spec.strategy.analysis
        judged = ""
        if outcome is not None and analysis is not None and state.deploying is not None:
            reason, judged = analysis_gate.waiting(outcome, state.deploying,
                                                   analysis.failure_tolerance_seconds)
            if awaiting and reason is not None:
                return reason, f"{at}: {where}; {judged}"
            judged = f"; {judged}"
        if awaiting:
            return (REASON_AWAITING_PROMOTION, f"{at}: {where}; awaiting approval: set "
                    f"spec.promote to {state.deploying!r}")
        return REASON_CANARY_STEP, f"{at}: {where}{judged}"

    def status(self, routes: Routes) -> dict[str, Any]:
        """status.canary: the step in force, when it started, the weight routed."""
        position = self.position
        if position is None or self.rollout.state.deploying is None:
            return {}
        return {"canary": {"step": position.step,
                           "stepStartTime": format_time(position.step_start),
                           "weight": routes.canary_weight}}
