"""The rollout strategies, one module each, looked up once per call by type name."""

from __future__ import annotations

from function.planner.strategies.base import Strategy
from function.planner.strategies.blue_green import BlueGreen
from function.planner.strategies.canary import CanaryStrategy
from function.planner.strategies.rolling_update import RollingUpdate

REGISTRY: dict[str, Strategy] = {
    strategy.name: strategy for strategy in (RollingUpdate(), BlueGreen(), CanaryStrategy())
}


def for_type(name: str) -> Strategy:
    """The strategy registered under `name` (a validated spec.strategy.type)."""
    return REGISTRY[name]


__all__ = ["REGISTRY", "Strategy", "for_type"]
