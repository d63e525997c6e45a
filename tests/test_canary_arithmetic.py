"""Canary replica targets and route weights, step by step (docs/rollout.md#canary).

Tables of c(w) and s(w) for N = 1, 2, 3, 4, 10 and w = 0, 1, 25, 33, 50, 99, 100,
worked out by hand; the integer weights that give the canary exactly w percent;
and the cap that keeps the canary within its share of Serving capacity.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from function.planner.arithmetic import canary_backend_weights, canary_targets, capped_canary_weight

WEIGHTS = (0, 1, 25, 33, 50, 99, 100)

# (canary, current) per weight, in the order of WEIGHTS.
TARGETS = {
    1: [(1, 1), (1, 1), (1, 1), (1, 1), (1, 1), (1, 1), (1, 0)],
    2: [(1, 2), (1, 2), (1, 2), (1, 2), (1, 1), (2, 1), (2, 0)],
    3: [(1, 3), (1, 3), (1, 3), (1, 3), (2, 2), (3, 1), (3, 0)],
    4: [(1, 4), (1, 4), (1, 3), (2, 3), (2, 2), (4, 1), (4, 0)],
    10: [(1, 10), (1, 10), (3, 8), (4, 7), (5, 5), (10, 1), (10, 0)],
}


@pytest.mark.parametrize("n", sorted(TARGETS))
@pytest.mark.parametrize("position", range(len(WEIGHTS)), ids=[f"w{w}" for w in WEIGHTS])
def test_replica_targets(n: int, position: int) -> None:
    assert canary_targets(n, WEIGHTS[position]) == TARGETS[n][position]


def test_nothing_to_serve_starts_nothing() -> None:
    assert [canary_targets(0, w) for w in WEIGHTS] == [(0, 0)] * len(WEIGHTS)


@pytest.mark.parametrize("n", sorted(TARGETS))
@pytest.mark.parametrize("weight", WEIGHTS)
def test_weights_at_the_targets_give_the_canary_exactly_w_percent(n: int, weight: int) -> None:
    canary, current = canary_targets(n, weight)
    current_weight, canary_weight = canary_backend_weights(weight, current, canary)
    total = current * current_weight + canary * canary_weight
    assert total > 0, "a rule never has all weights 0"
    share = Fraction(canary * canary_weight, total)
    assert share == (Fraction(weight, 100) if current else 1)


@pytest.mark.parametrize(("weight", "current", "canary", "expected"), [
    (10, 3, 1, (3, 1)),      # 9 : 1 over four backends: three at 3, one at 1
    (10, 4, 1, (9, 4)),      # 36 : 4
    (50, 2, 2, (1, 1)),
    (33, 3, 1, (67, 99)),    # 201 : 99
    (25, 3, 1, (1, 1)),      # capacity-proportional already
    (0, 4, 1, (1, 0)),       # the canary leaves the main rule
    (100, 1, 4, (0, 1)),     # the current revision leaves it
    (50, 0, 2, (0, 1)),      # no current backend: the canary carries everything
    (50, 3, 0, (1, 0)),      # no canary backend: the current revision carries everything
])
def test_backend_weights(weight, current, canary, expected) -> None:
    assert canary_backend_weights(weight, current, canary) == expected


@pytest.mark.parametrize(("weight", "serving", "n", "target", "expected"), [
    (50, 0, 4, 2, 0),
    (50, 1, 4, 2, 25),      # at most its share of Serving capacity
    (50, 2, 4, 2, 50),
    (10, 0, 3, 1, 0),
    (10, 1, 3, 1, 10),
    (100, 2, 3, 3, 66),     # promotion: two of three serve
    (99, 9, 10, 10, 90),
    (1, 1, 10, 1, 1),
])
def test_the_canary_never_gets_more_than_its_share(weight, serving, n, target, expected) -> None:
    assert capped_canary_weight(weight, serving, n, target) == expected


@given(n=st.integers(1, 200), weight=st.integers(0, 100), serving=st.integers(0, 200),
       current=st.integers(0, 200))
def test_routed_share_never_exceeds_serving_share(n, weight, serving, current) -> None:
    canary_target, _ = canary_targets(n, weight)
    serving = min(serving, canary_target)
    capped = capped_canary_weight(weight, serving, n, canary_target)
    current_weight, canary_weight = canary_backend_weights(capped, current, serving)
    total = current * current_weight + serving * canary_weight
    if serving == 0 and current == 0:
        assert total == 0
        return
    assert total > 0
    if current:
        assert Fraction(serving * canary_weight, total) <= Fraction(serving, n)
        assert Fraction(serving * canary_weight, total) == Fraction(capped, 100) or serving == 0
