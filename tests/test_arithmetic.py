"""Rollout arithmetic against Kubernetes' documented examples and edge cases.

The rules: docs/rollout.md#rollingupdate.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from function.planner import arithmetic
from function.spec import IntOrPercent


def pct(value: int) -> IntOrPercent:
    return IntOrPercent(value, percent=True)


def num(value: int) -> IntOrPercent:
    return IntOrPercent(value, percent=False)


@pytest.mark.parametrize(
    ("surge", "unavailable", "replicas", "expected"),
    [
        # Kubernetes documentation: 25%/25% of 10 -> surge 3 (up), unavailable 2 (down).
        (pct(25), pct(25), 10, (3, 2)),
        (pct(25), pct(25), 4, (1, 1)),
        # The defaults: 25% surge, 0 unavailable.
        (pct(25), num(0), 3, (1, 0)),
        (pct(25), num(0), 1, (1, 0)),
        # Percentages that round to 0 for unavailability and up for surge.
        (pct(10), pct(10), 5, (1, 0)),
        (pct(1), pct(99), 1, (1, 0)),
        # Both zero: unavailability becomes 1 so the rollout can progress.
        (num(0), num(0), 3, (0, 1)),
        (pct(0), pct(0), 10, (0, 1)),
        (num(0), pct(10), 5, (0, 1)),
        # 100% surge: a whole new set at once.
        (pct(100), num(0), 4, (4, 0)),
        # N = 0.
        (pct(25), pct(25), 0, (0, 1)),
        (num(2), num(0), 0, (2, 0)),
        # Surge 0 with unavailable 1: replace in place.
        (num(0), num(1), 3, (0, 1)),
        # Integers are taken as they are.
        (num(5), num(2), 3, (5, 2)),
    ],
)
def test_surge_and_unavailable(surge, unavailable, replicas, expected):
    assert arithmetic.resolve_limits(surge, unavailable, replicas) == expected


@pytest.mark.parametrize(
    ("wanted", "alive", "total", "limit", "expected"),
    [
        (3, 0, 0, 4, 3),  # bootstrap: full size at once
        (3, 0, 3, 4, 1),  # rollout start: one surge replica
        (3, 1, 4, 4, 0),  # at the ceiling: wait for a drain
        (3, 3, 3, 4, 0),  # nothing missing
        (6, 2, 4, 7, 3),  # scaled up mid-rollout
        (3, 0, 3, None, 3),  # BlueGreen green: no ceiling
        (0, 0, 0, 0, 0),
    ],
)
def test_replicas_to_create(wanted, alive, total, limit, expected):
    assert arithmetic.replicas_to_create(wanted=wanted, alive=alive, total=total,
                                      capacity_limit=limit) == expected


@pytest.mark.parametrize(
    ("serving_old", "serving_new", "replicas", "unavailable", "expected"),
    [
        (3, 0, 3, 0, 0),  # nothing new serves yet: keep every old replica
        (3, 1, 3, 0, 1),  # one new serves: one old may go
        (3, 3, 3, 0, 3),  # all new serve: every old may go
        (3, 0, 3, 1, 1),  # maxUnavailable 1: one old may go before any new serves
        (2, 0, 3, 0, 0),  # already below the floor: nothing more drains
        (0, 3, 3, 0, 0),
        (5, 0, 0, 1, 5),  # scaled to zero
    ],
)
def test_serving_to_drain(serving_old, serving_new, replicas, unavailable, expected):
    assert arithmetic.serving_to_drain(serving_old=serving_old, serving_new=serving_new,
                                    replicas=replicas, unavailable=unavailable) == expected


@given(st.integers(0, 50), st.integers(0, 50), st.integers(0, 60), st.integers(0, 5))
def test_draining_never_crosses_the_availability_floor(old, new, replicas, unavailable):
    drained = arithmetic.serving_to_drain(serving_old=old, serving_new=new, replicas=replicas,
                                       unavailable=unavailable)
    assert 0 <= drained <= old
    if drained:
        assert old - drained + new >= replicas - unavailable


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ({"v1": 3, "v2": 2}, {"v1": 60, "v2": 40}),
        ({"v1": 1, "v2": 1, "v3": 1}, {"v1": 34, "v2": 33, "v3": 33}),
        ({"v1": 2}, {"v1": 100}),
        ({}, {}),
        ({"v1": 0}, {"v1": 0}),
    ],
)
def test_traffic_percentages(weights, expected):
    assert arithmetic.traffic_percentages(weights) == expected


@given(st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.integers(1, 1000), min_size=1))
def test_traffic_percentages_add_up_to_100(weights):
    shares = arithmetic.traffic_percentages(weights)
    assert sum(shares.values()) == 100
    total = sum(weights.values())
    for name, weight in weights.items():
        assert abs(shares[name] - weight * 100 / total) < 1
