"""BlueGreen: green at full size beside blue, promoted in one response (docs/rollout.md#bluegreen).

Green (the deploying revision) is created at full size within 2N replicas and
is never on the main route before promotion (only on the preview route). The
gate: green has N Serving replicas, then spec.promote names it, or autoPromote
and promoteDelaySeconds have passed since the last green replica became Ready.
With spec.strategy.analysis set, green
is promoted only on an analysis Pass (docs/rollout.md#the-analysis-gate). Blue then drains
for scaleDownDelaySeconds. A first deploy (no blue) is
deployed at full size and completes when it serves in full.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from function.analysis import Verdict
from function.classify import Replica, serves_in_full
from function.planner import analysis_gate
from function.planner.course import Course, Passage, deploying_message
from function.planner.ledger import Ledger, fully_rolled_out
from function.planner.strategies.base import StrategyBase
from function.planner.types import (
    REASON_AWAITING_PROMOTION,
    REASON_DEPLOYING,
    Gate,
    Limits,
    RevisionState,
    Rollout,
    Routes,
)
from function.spec import BLUE_GREEN

APPROVED = "approved by spec.promote"


class BlueGreenStrategy(StrategyBase):
    """The BlueGreen strategy: rollingUpdate's limits, and a BlueGreenCourse."""

    name = BLUE_GREEN

    def course_for(self, rollout: Rollout, limits: Limits) -> Course:
        """A BlueGreenCourse."""
        return BlueGreenCourse(rollout, limits)


class BlueGreenCourse(Course):
    """One call of a BlueGreen rollout: green at N beside blue, promoted at its gate."""

    holds_old_capacity = False  # blue keeps N; anything else was never on the main route

    def reach_gate(self, deploying: list[Replica]) -> bool:
        """Green serves in full beside blue: only promotion is left."""
        if self.rollout.state.current is None:
            return False
        return serves_in_full(deploying, self.rollout.n)

    def analysis_on(self, deploying: list[Replica]) -> bool:
        """Green is judged once it serves in full: at the promotion gate."""
        return self.reach_gate(deploying)

    def pass_gate(self, deploying: list[Replica]) -> Passage:
        """Promote on approval or after the soak; with spec.strategy.analysis, only on Pass.

        The analysis gate judges green on every call at the gate (its metrics come
        from preview traffic): Inconclusive waits unless spec.promote names green,
        a Fail waits and rolls back once it has lasted failureToleranceSeconds.
        """
        rollout = self.rollout
        spec, state = rollout.spec, rollout.state
        delay = spec.strategy.promote_delay_seconds
        promote_by = soak_start(state, deploying) + timedelta(seconds=delay)
        approved = rollout.approved
        auto = spec.strategy.auto_promote and rollout.now >= promote_by
        why = APPROVED if approved else f"green was fully available for {delay}s"
        if spec.strategy.analysis is None:
            if approved or auto:
                return Passage(Gate(), promote_because=why)
            return Passage(Gate(awaiting=True,
                                timers=(promote_by,) if spec.strategy.auto_promote else ()))

        outcome = self.judge_analysis()  # as judged this call (analysis_on)
        assert outcome is not None and not outcome.rolled_back  # else not at the gate now
        passed = outcome.verdict is Verdict.PASS
        if (passed and (approved or auto)) or (
                approved and outcome.verdict is Verdict.INCONCLUSIVE):
            verdict = "analysis passed" if passed else "over an inconclusive analysis"
            return Passage(Gate(), promote_because=f"{why}, {verdict}: {outcome.message}")
        return Passage(Gate(awaiting=True, timers=(promote_by,)
                            if spec.strategy.auto_promote and not auto else ()))

    def targets(self) -> dict[str, int]:
        """Blue and green at N each; otherwise the one revision there is, at N."""
        state, n = self.rollout.state, self.rollout.n
        if state.deploying is not None and state.current is not None:
            return {state.current: n, state.deploying: n}
        return {(state.deploying or state.current or self.rollout.spec.active_revision): n}

    def capacity_limit(self, revision: str) -> int | None:
        """Green waits until blue and whatever still drains fit in 2N; blue is kept at N.

        So a pre-empted green frees its GPUs before the next green grows.
        """
        state = self.rollout.state
        if revision == state.deploying and state.current is not None:
            return 2 * self.rollout.n
        return None

    def on_main_route(self, revision: str) -> bool:
        """Only the current revision (blue) is on the main route; green is previewed."""
        return revision == self.rollout.state.current

    def done(self, ledger: Ledger) -> bool:
        """A first deploy completes when it serves in full; a rollout by promotion."""
        state = self.rollout.state
        return state.current is None and fully_rolled_out(ledger, state.deploying,
                                                          self.rollout.n)

    def progressing(self, awaiting: bool, routes: Routes) -> tuple[str, str]:
        """Green awaiting promotion (and the analysis it waits on), or green growing."""
        state, outcome = self.rollout.state, self.analysis
        if awaiting and outcome is not None and state.deploying is not None:
            analysis = self.rollout.spec.strategy.analysis
            tolerance = analysis.failure_tolerance_seconds if analysis is not None else 0
            reason, message = analysis_gate.waiting(outcome, state.deploying, tolerance)
            return (reason or REASON_AWAITING_PROMOTION,
                    f"revision {state.deploying!r} is fully available; {message}")
        if awaiting:
            return (REASON_AWAITING_PROMOTION,
                    f"revision {state.deploying!r} is fully available and awaits promotion")
        return REASON_DEPLOYING, deploying_message(state)


def soak_start(state: RevisionState, d_replicas: list[Replica]) -> datetime:
    """When green became fully available: the last serving green replica's Ready time.

    With no Ready time to go by (N = 0, or Ready times not published) the gate is
    taken to have held since the call that first saw it hold, which
    track_progress recorded as progress: a time that does not move, so an
    automatic promotion's soak ends. Example: N = 0, promoteDelaySeconds 15,
    the gate first held at 10:00:10 -> promoted by the first call at or after
    10:00:25.
    """
    ready_times = [r.ready_since for r in d_replicas if r.serving and r.ready_since]
    if ready_times:
        return max(ready_times)
    assert state.last_progress is not None  # set by track_progress
    return state.last_progress
