"""The rollout strategies, one module each, looked up once per call by type name."""

from __future__ import annotations

from function.planner.strategies.base import Strategy
from function.planner.strategies.blue_green import BlueGreenStrategy
from function.planner.strategies.canary import CanaryStrategy
from function.planner.strategies.rolling_update import RollingUpdateStrategy
from function.planner.types import Limits
from function.spec import Spec

REGISTRY: dict[str, Strategy] = {
    strategy.name: strategy
    for strategy in (RollingUpdateStrategy(), BlueGreenStrategy(), CanaryStrategy())
}


def for_type(name: str) -> Strategy:
    """The strategy registered under `name` (a validated spec.strategy.type)."""
    return REGISTRY[name]


def limits(spec: Spec) -> Limits:
    """The limits spec.strategy.type moves replicas under, resolved against spec.replicas."""
    return for_type(spec.strategy.type).limits(spec)


__all__ = ["REGISTRY", "Strategy", "for_type", "limits"]
