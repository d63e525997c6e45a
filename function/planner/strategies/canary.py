"""Canary: traffic to the new revision in explicit steps, then full promotion.

docs/rollout.md#canary. Let w be the weight of the last setWeight step reached
(0 before the first). At weight w the canary (the deploying revision D) should
have c(w) replicas and the current revision C s(w) (function/rollout.py
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

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from function import rollout as arithmetic
from function.analysis import Verdict
from function.classify import Lifecycle, Replica
from function.observe import format_time
from function.planner import analysis_gate
from function.planner.ledger import Ledger, fully_rolled_out
from function.planner.strategies.base import Defaults
from function.planner.types import (
    REASON_AWAITING_PROMOTION,
    REASON_CANARY_STEP,
    REASON_DEPLOYING,
    Backend,
    Gate,
    HeaderRule,
    RevisionState,
    Rollout,
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
class CanaryProgress:
    """Where the canary stands in this call.

    step: the index of the step in force (len(steps): the final promotion);
    weight: w, the weight of the last setWeight step reached (100 in promotion);
    routed: the weight this response routes (set when the route is weighed).
    """

    steps: tuple[CanaryStep, ...]
    step: int
    step_start: datetime
    weight: int
    routed: int = 0
    header_backends: list[Backend] = field(default_factory=list)
    # (step, targets): replica_targets of this call, asked by several steps of the plan.
    targets_at: tuple[int, tuple[int, int]] | None = None

    @property
    def promoting(self) -> bool:
        return self.step >= len(self.steps)

    @property
    def in_force(self) -> CanaryStep | None:
        return None if self.promoting else self.steps[self.step]


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


class CanaryStrategy(Defaults):
    """The Canary strategy (its methods implement strategies/base.py's Strategy)."""

    name = CANARY
    holds_old_capacity = True

    def limits(self, spec: Spec) -> tuple[int, int]:
        """canary.maxSurge / canary.maxUnavailable (rollingUpdate's if the block is gone)."""
        return arithmetic.surge_and_unavailable(spec.strategy, spec.replicas)

    # --- the steps ----------------------------------------------------------------------

    def at_gate(self, rollout: Rollout, deploying: list[Replica]) -> bool:
        """Move through every step that is done; True while a pause or analysis holds.

        Reaching a new step is progress: the deadline restarts from it. When
        every replica of the canary has failed, the shared rollback rule
        applies whatever step is in force.
        """
        state = rollout.state
        if state.current is None or state.deploying is None:
            return False  # a first deploy: full size at once, no steps
        progress = self.resume(rollout)
        rollout.progress = progress
        while not progress.promoting and self.step_done(rollout, progress, deploying):
            progress.step += 1
            progress.step_start = rollout.now
            progress.weight = weight_reached(progress.steps, progress.step)
            state.last_progress = rollout.now
        if state.deploying is None:  # rolled back by the analysis gate in an analysis step
            return False
        if deploying and all(r.lifecycle is Lifecycle.FAILED for r in deploying):
            return False
        step = progress.in_force
        return step is not None and step.kind in (PAUSE, ANALYSIS)

    def resume(self, rollout: Rollout) -> CanaryProgress:
        """The step in force as the previous response left it (clamped to the steps)."""
        steps = canary_spec(rollout.spec).steps
        prior, state = rollout.prior, rollout.state
        remembered = prior.canary if (not state.started
                                      and prior.deploying_revision == state.deploying) else None
        step, start = 0, rollout.now
        if remembered is not None and remembered.step is not None and remembered.step >= 0:
            step = min(remembered.step, len(steps))
            start = remembered.step_start_time or rollout.now
        return CanaryProgress(steps=steps, step=step, step_start=start,
                              weight=weight_reached(steps, step))

    def step_done(self, rollout: Rollout, progress: CanaryProgress,
                  deploying: list[Replica]) -> bool:
        step = progress.in_force
        assert step is not None
        now = rollout.now
        if step.kind == SET_WEIGHT:
            canary, current = self.replica_targets(rollout, progress)
            serving = sum(1 for r in deploying if r.serving and not r.draining)
            current_replicas = rollout.replicas_of(rollout.state.current)
            kept = sum(1 for r in current_replicas if not r.draining)
            current_serving = sum(1 for r in current_replicas if r.serving and not r.draining)
            prior = rollout.prior.canary
            routed = prior.weight if prior is not None and prior.weight is not None else 0
            # The route carries w, or as much as it can: with no current replica
            # left to route the canary carries everything, and with N = 0 there
            # is nothing to route at all.
            carried = (routed == progress.weight or rollout.n == 0
                       or (current_serving == 0 and routed == 100))
            return serving >= canary and kept <= current and carried
        if step.kind == PAUSE:
            if step.duration_seconds is None:
                return rollout.spec.promote == rollout.state.deploying
            return now >= progress.step_start + timedelta(seconds=step.duration_seconds)
        # analysis: held for its duration, then done on a Pass (an Inconclusive
        # verdict waits for approval; approval never overrides a Fail).
        if now < progress.step_start + timedelta(seconds=step.duration_seconds or 0):
            return False
        approved = rollout.spec.promote == rollout.state.deploying
        outcome = analysis_gate.evaluate(rollout)
        if outcome is None:  # the rollout in flight lost its strategy.analysis: approval
            return approved
        if outcome.rolled_back:
            return False
        return outcome.verdict is Verdict.PASS or (
            outcome.verdict is Verdict.INCONCLUSIVE and approved)

    def analysis_on(self, rollout: Rollout, deploying: list[Replica]) -> bool:
        """From the first analysis step on (the promotion included), every call judges."""
        progress: CanaryProgress | None = rollout.progress
        if progress is None:
            return False
        first = next((i for i, step in enumerate(progress.steps) if step.kind == ANALYSIS),
                     None)
        return first is not None and progress.step >= first

    def pass_gate(self, rollout: Rollout, deploying: list[Replica]) -> Gate:
        progress: CanaryProgress = rollout.progress
        step = progress.in_force
        assert step is not None
        if step.kind == PAUSE and step.duration_seconds is None:
            return Gate(awaiting=True)
        ends = progress.step_start + timedelta(seconds=step.duration_seconds or 0)
        if rollout.now < ends:
            return Gate(timers=(ends,))
        # An analysis step past its duration and not done: Inconclusive waits for
        # approval; a Fail waits out its tolerance (its end is the gate's timer).
        outcome = analysis_gate.evaluate(rollout)
        return Gate(awaiting=outcome is None or outcome.verdict is Verdict.INCONCLUSIVE)

    # --- replicas -----------------------------------------------------------------------

    def replica_targets(self, rollout: Rollout, progress: CanaryProgress) -> tuple[int, int]:
        """(canary, current) at the step in force; in promotion (N, 0).

        When c(w) + s(w) would not fit in N + surge (maxSurge 0), the current
        revision yields: its target is N + surge - c(w), so the canary can start
        once a current replica drains within maxUnavailable.
        """
        if progress.targets_at is not None and progress.targets_at[0] == progress.step:
            return progress.targets_at[1]
        targets = self._replica_targets(rollout, progress)
        progress.targets_at = (progress.step, targets)
        return targets

    def _replica_targets(self, rollout: Rollout, progress: CanaryProgress) -> tuple[int, int]:
        n = rollout.n
        if progress.promoting:
            return n, 0
        canary, current = arithmetic.canary_targets(n, progress.weight)
        current = min(current, n + rollout.surge - canary)
        policy = self.capacity_policy(rollout)
        if policy is not None and policy[0] == REPLACE:
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

    def targets(self, rollout: Rollout) -> dict[str, int]:
        state, progress = rollout.state, rollout.progress
        if progress is None or state.deploying is None or state.current is None:
            return {(state.deploying or state.current or rollout.spec.active_revision): rollout.n}
        canary, current = self.replica_targets(rollout, progress)
        if progress.promoting:
            return {state.deploying: canary}  # the current revision retires as under 4.1
        return {state.current: current, state.deploying: canary}

    def drains_gradually(self, rollout: Rollout, revision: str) -> bool:
        # Both sides shed replicas only as the availability rule allows: the
        # current revision as the canary grows, the canary when its weight goes
        # down (steps restarted after lost status, or edited, or N scaled in).
        state = rollout.state
        return rollout.progress is not None and revision in (state.current, state.deploying)

    def capacity_limit(self, rollout: Rollout, revision: str) -> int | None:
        return rollout.n + rollout.surge

    def capacity_policy(self, rollout: Rollout) -> tuple[str, int] | None:
        canary = rollout.spec.strategy.canary
        if canary is None:  # a canary in flight whose block was removed: the rolling rules
            return (rollout.spec.strategy.on_capacity_shortage,
                    rollout.spec.strategy.capacity_wait_seconds)
        return canary.on_capacity_shortage, canary.capacity_wait_seconds

    def done(self, rollout: Rollout, ledger: Ledger) -> bool:
        progress = rollout.progress
        if progress is not None and not progress.promoting:
            return False
        return fully_rolled_out(ledger, rollout.state.deploying, rollout.n)

    # --- traffic ------------------------------------------------------------------------

    def on_main_route(self, state: RevisionState, revision: str) -> bool:
        return revision == state.current or revision == state.deploying

    def weigh(self, rollout: Rollout, main: list[Backend]) -> None:
        """Give the canary w percent of the main route, capped by its Serving share.

        Backends whose weight comes to 0 leave the rule (the canary at weight 0
        is reached through the header rule only).
        """
        progress: CanaryProgress | None = rollout.progress
        deploying = rollout.state.deploying
        if progress is None or deploying is None:
            return
        canary = [b for b in main if b.revision == deploying]
        current = [b for b in main if b.revision != deploying]
        if rollout.spec.strategy.canary and rollout.spec.strategy.canary.header_route:
            progress.header_backends = [Backend(b.name, b.port, 1, b.revision) for b in canary]
        target, _ = self.replica_targets(rollout, progress)
        weight = arithmetic.capped_canary_weight(progress.weight, len(canary), rollout.n, target)
        current_weight, canary_weight = arithmetic.canary_backend_weights(
            weight, len(current), len(canary))
        progress.routed = (0 if not canary else 100 if not current else weight)
        weighed = [Backend(b.name, b.port,
                           canary_weight if b.revision == deploying else current_weight,
                           b.revision) for b in main]
        main[:] = [b for b in weighed if b.weight > 0]

    def header_rule(self, rollout: Rollout) -> HeaderRule | None:
        progress: CanaryProgress | None = rollout.progress
        header = canary_spec(rollout.spec).header_route
        if progress is None or header is None or rollout.state.deploying is None \
                or not progress.header_backends:
            return None
        return HeaderRule(header.name, header.value, progress.header_backends)

    # --- the report ---------------------------------------------------------------------

    def progress(self, rollout: Rollout, awaiting: bool) -> tuple[str, str]:
        state, progress = rollout.state, rollout.progress
        if progress is None:
            return (REASON_DEPLOYING,
                    f"rolling out revision {state.deploying!r} ({state.strategy})")
        serving = sum(1 for r in rollout.replicas_of(state.deploying)
                      if r.serving and not r.draining)
        target, _ = self.replica_targets(rollout, progress)
        where = (f"{progress.routed}% routed, {serving} of {target} canary replicas serving")
        if progress.promoting:
            return REASON_CANARY_STEP, f"promoting {state.deploying!r}: {where}"
        step = progress.in_force
        assert step is not None
        position = f"step {progress.step}/{len(progress.steps)} {describe(step)}"
        outcome = rollout.analysis
        analysis = rollout.spec.strategy.analysis
        judged = ""
        if outcome is not None and analysis is not None and state.deploying is not None:
            reason, judged = analysis_gate.waiting(outcome, state.deploying,
                                                   analysis.failure_tolerance_seconds)
            if awaiting and reason is not None:
                return reason, f"{position}: {where}; {judged}"
            judged = f"; {judged}"
        if awaiting:
            return (REASON_AWAITING_PROMOTION, f"{position}: {where}; awaiting approval: set "
                    f"spec.promote to {state.deploying!r}")
        return REASON_CANARY_STEP, f"{position}: {where}{judged}"

    def status(self, rollout: Rollout) -> dict[str, Any]:
        progress: CanaryProgress | None = rollout.progress
        if progress is None or rollout.state.deploying is None:
            return {}
        return {"canary": {"step": progress.step,
                           "stepStartTime": format_time(progress.step_start),
                           "weight": progress.routed}}
