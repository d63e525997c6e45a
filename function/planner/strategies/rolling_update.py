"""RollingUpdate: Kubernetes semantics, availability first (docs/rollout.md#rollingupdate).

New replicas are created while the total holding capacity is below
N + maxSurge; old replicas that serve drain only while
serving(old) + serving(new) - 1 >= N - maxUnavailable; every routed backend
has weight 1, so traffic follows serving capacity. There is no gate: the
rollout is done when the deploying revision serves N and nothing else is kept
but draining replicas.
"""

from __future__ import annotations

from function.planner.course import Course
from function.planner.ledger import Ledger, fully_rolled_out
from function.planner.strategies.base import StrategyBase
from function.planner.types import CapacityPolicy, Limits, Rollout
from function.spec import ROLLING_UPDATE


class RollingUpdateStrategy(StrategyBase):
    """The RollingUpdate strategy: rollingUpdate's limits, and a RollingUpdateCourse."""

    name = ROLLING_UPDATE

    def course_for(self, rollout: Rollout, limits: Limits) -> Course:
        """A RollingUpdateCourse."""
        return RollingUpdateCourse(rollout, limits)


class RollingUpdateCourse(Course):
    """One call of a RollingUpdate: the target revision at N, C and D both routed."""

    holds_old_capacity = True

    def targets(self) -> dict[str, int]:
        """N of the deploying revision, else of the current one (else the active one)."""
        state = self.rollout.state
        return {(state.deploying or state.current or self.rollout.spec.active_revision):
                self.rollout.n}

    def capacity_policy(self) -> CapacityPolicy | None:
        """rollingUpdate's onCapacityShortage and capacityWaitSeconds."""
        rolling = self.rollout.spec.strategy
        return CapacityPolicy(rolling.on_capacity_shortage, rolling.capacity_wait_seconds)

    def on_main_route(self, revision: str) -> bool:
        """The current and the deploying revision share the main route."""
        state = self.rollout.state
        return revision in (state.current, state.deploying)

    def done(self, ledger: Ledger) -> bool:
        """The deploying revision serves N and no other replica is kept but draining ones."""
        return fully_rolled_out(ledger, self.rollout.state.deploying, self.rollout.n)
