"""RollingUpdate: Kubernetes semantics, availability first (docs/rollout.md#rollingupdate).

New replicas are created while the total holding capacity is below
N + maxSurge; old replicas that serve drain only while
serving(old) + serving(new) - 1 >= N - maxUnavailable; every routed backend
has weight 1, so traffic follows serving capacity.
"""

from __future__ import annotations

from function import rollout as arithmetic
from function.planner.ledger import Ledger, fully_rolled_out
from function.planner.strategies.base import Defaults
from function.planner.types import REASON_DEPLOYING, RevisionState, Rollout
from function.spec import ROLLING_UPDATE, Spec


class RollingUpdate(Defaults):
    """The RollingUpdate strategy (its methods implement strategies/base.py's Strategy)."""

    name = ROLLING_UPDATE
    holds_old_capacity = True

    def limits(self, spec: Spec) -> tuple[int, int]:
        rolling = spec.strategy
        return arithmetic.resolve_limits(rolling.max_surge, rolling.max_unavailable,
                                                spec.replicas)

    def targets(self, rollout: Rollout) -> dict[str, int]:
        state = rollout.state
        return {(state.deploying or state.current or rollout.spec.active_revision): rollout.n}

    def capacity_limit(self, rollout: Rollout, revision: str) -> int | None:
        return rollout.n + rollout.surge

    def capacity_policy(self, rollout: Rollout) -> tuple[str, int] | None:
        rolling = rollout.spec.strategy
        return rolling.on_capacity_shortage, rolling.capacity_wait_seconds

    def on_main_route(self, state: RevisionState, revision: str) -> bool:
        return revision in (state.current, state.deploying)

    def done(self, rollout: Rollout, ledger: Ledger) -> bool:
        return fully_rolled_out(ledger, rollout.state.deploying, rollout.n)

    def progress(self, rollout: Rollout, awaiting: bool) -> tuple[str, str]:
        state = rollout.state
        return REASON_DEPLOYING, f"rolling out revision {state.deploying!r} ({state.strategy})"
