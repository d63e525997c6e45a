"""The strategy interface: asked once per call, a strategy answers with its course.

Each strategy module (rolling_update.py, blue_green.py, canary.py) holds the
strategy, registered by type name (function/planner/strategies/__init__.py),
and its Course (function/planner/course.py), which owns what the strategy
decides in one call.
"""

from __future__ import annotations

from typing import Protocol

from function.planner import arithmetic, progress
from function.planner.course import Course
from function.planner.types import Limits, Rollout
from function.spec import Spec


class Strategy(Protocol):
    """A rollout strategy: stateless, one instance serves every call."""

    name: str

    def limits(self, spec: Spec) -> Limits:
        """maxSurge and maxUnavailable of this strategy, resolved against spec.replicas."""
        ...

    def begin(self, rollout: Rollout) -> Course:
        """This call's course, its gate judged."""
        ...


class StrategyBase:
    """What the strategies share: the limits of spec.strategy.rollingUpdate, and begin."""

    def limits(self, spec: Spec) -> Limits:
        """rollingUpdate's maxSurge and maxUnavailable, resolved against N
        (function/planner/arithmetic.py resolve_limits).
        """
        strategy = spec.strategy
        surge, unavailable = arithmetic.resolve_limits(strategy.max_surge,
                                                       strategy.max_unavailable, spec.replicas)
        return Limits(surge=surge, unavailable=unavailable)

    def begin(self, rollout: Rollout) -> Course:
        """This call's course (course_for), with its gate judged (progress.judge) and a
        spec.promote that names another revision noted.
        """
        course = self.course_for(rollout, self.limits(rollout.spec))
        course.gate = progress.judge(rollout, course)
        course.promote_note = progress.ignored_promote(rollout, course.gate)
        return course

    def course_for(self, rollout: Rollout, limits: Limits) -> Course:
        """The strategy's own course for this call, before its gate is judged."""
        raise NotImplementedError
