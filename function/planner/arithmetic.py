"""The rollout arithmetic: small pure functions over counts, with Kubernetes rounding.

Each takes and returns plain numbers, so the strategies and the replica ledger
state their rules in these terms and the tables in tests/test_arithmetic.py and
tests/test_canary_arithmetic.py check them directly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from function.spec import IntOrPercent


def resolve(value: IntOrPercent, total: int, *, round_up: bool) -> int:
    """An absolute count from an int or a percentage of total."""
    if not value.percent:
        return value.value
    scaled = value.value * total
    return -(-scaled // 100) if round_up else scaled // 100


def resolve_limits(max_surge: IntOrPercent, max_unavailable: IntOrPercent,
                   replicas: int) -> tuple[int, int]:
    """(surge, unavailable) resolved against replicas.

    Surge rounds up and unavailability rounds down, so percentages err on the
    side of availability; both zero would forbid any progress, so unavailability
    becomes 1, as Kubernetes does. Worked examples (N = 10):

        maxSurge 25%, maxUnavailable 0    -> ceil(2.5) = 3, 0
        maxSurge 0,   maxUnavailable 25%  -> 0, floor(2.5) = 2
        maxSurge 0,   maxUnavailable 0    -> 0, 1 (else nothing could move)
        maxSurge 1%,  maxUnavailable 1%   -> ceil(0.1) = 1, floor(0.1) = 0
    """
    surge = resolve(max_surge, replicas, round_up=True)
    unavailable = resolve(max_unavailable, replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def minimum_serving(replicas: int, unavailable: int) -> int:
    """The availability floor, N - unav, never below 0: N = 3, unav 1 -> 2."""
    return max(0, replicas - unavailable)


def replicas_to_create(*, wanted: int, alive: int, total: int, capacity_limit: int | None) -> int:
    """New replicas to create: the shortfall, within the capacity limit (None: no limit).

    total counts every replica that still holds capacity (GPUs are held until
    deletion), Draining and Provisioning ones included.
    """
    shortfall = max(0, wanted - alive)
    if capacity_limit is None:
        return shortfall
    return max(0, min(shortfall, capacity_limit - total))


def serving_to_drain(*, serving_old: int, serving_new: int, replicas: int, unavailable: int) -> int:
    """How many Serving old replicas may start draining now.

    Each drain must leave serving(old) + serving(new) >= replicas - unavailable.
    """
    spare = serving_old + serving_new - minimum_serving(replicas, unavailable)
    return max(0, min(serving_old, spare))


def serving_to_trade(*, serving_old: int, serving_new: int, replicas: int,
                     unavailable: int) -> int:
    """How many Serving old replicas may drain beyond the availability rule: 0 or 1.

    Under a capacity shortage a rollout may trade one replica of headroom for
    an accelerator (docs/rollout.md#capacity-shortage): when the availability
    rule drains nothing (Serving is exactly N - unav), one old replica may
    still drain, leaving N - unav - 1. With Serving already below N - unav
    (a trade in effect, its accelerator not serving yet) nothing more goes, so
    the next trade waits until the new revision's Serving count grows back.

        N = 3, unav 0: old 3, new 0 -> 1 (Serving 2 = N - unav - 1)
                       old 2, new 0 -> 0 (the traded accelerator does not serve yet)
                       old 2, new 1 -> 1 (it does: Serving 3 again)
                       old 4, new 0 -> 0 (the availability rule drains one already)
        N = 1, unav 0: old 1, new 0 -> 1 (Serving 0: the cost of one replica of headroom)
        N = 4, unav 1: old 3, new 0 -> 1 (Serving 2 = N - unav - 1)
    """
    serving = serving_old + serving_new
    if serving_old == 0 or serving != minimum_serving(replicas, unavailable):
        return 0
    return 1


def traffic_percentages(weights: Mapping[str, int]) -> dict[str, int]:
    """Integer percentages of total weight that add up to 100 (largest remainder)."""
    total = sum(weights.values())
    if total <= 0:
        return dict.fromkeys(weights, 0)
    exact = {name: weight * 100 / total for name, weight in weights.items()}
    shares = {name: math.floor(value) for name, value in exact.items()}
    leftover = 100 - sum(shares.values())
    by_remainder = sorted(exact, key=lambda name: (-(exact[name] - shares[name]), name))
    for name in by_remainder[:leftover]:
        shares[name] += 1
    return shares


def canary_targets(replicas: int, weight: int) -> tuple[int, int]:
    """(canary, current): the replicas each revision should have at canary weight w.

    canary c(w) = ceil(N * w / 100), at least 1 once a rollout has started (a
    canary at weight 0 still serves header-routed traffic); current
    s(w) = N - floor(N * w / 100). Between them they hold N or N + 1 replicas:
    the rounding errs towards keeping the current revision's capacity.
    Worked examples:

        N = 4:  w = 0 -> (1, 4)   w = 10 -> (1, 4)   w = 25 -> (1, 3)
                w = 33 -> (2, 3)  w = 50 -> (2, 2)   w = 99 -> (4, 1)   w = 100 -> (4, 0)
        N = 1:  w = 1 -> (1, 1)   w = 50 -> (1, 1)   w = 100 -> (1, 0)
        N = 0:  any w -> (0, 0)   (nothing to serve, nothing to start)
    """
    if replicas <= 0:
        return 0, 0
    canary = max(1, -(-replicas * weight // 100))
    return canary, replicas - replicas * weight // 100


def capped_canary_weight(weight: int, serving_canary: int, replicas: int,
                         canary_target: int) -> int:
    """The canary's weight, never more than its share of Serving capacity.

    While the canary has fewer Serving replicas than its target c(w), its
    weight is at most 100 * Serving(canary) / N, rounded down:

        w = 50, N = 4, c = 2:  1 serving -> min(50, 25) = 25;  2 serving -> 50
        w = 10, N = 3, c = 1:  0 serving -> 0;  1 serving -> 10
        w = 100, N = 3, c = 3: 2 serving -> 66
    """
    if serving_canary >= canary_target or replicas <= 0:
        return weight
    return min(weight, 100 * serving_canary // replicas)


def canary_backend_weights(weight: int, current_backends: int,
                           canary_backends: int) -> tuple[int, int]:
    """Integer per-backend weights (current, canary) giving `weight` percent to the canary.

    Each current backend gets (100 - w) * d and each canary backend w * c, for c
    current and d canary backends, so the revisions' totals are (100 - w) * c * d
    and w * c * d: exactly w percent. Both are then divided by their gcd.
    When one side has no backend the other carries everything (weight 1 each).

        w = 10, c = 3, d = 1:  (90, 30) -> (3, 1)     three at 3, one at 1: 10% canary
        w = 50, c = 2, d = 2:  (100, 100) -> (1, 1)
        w = 33, c = 3, d = 1:  (67, 99)               totals 201 : 99 = 67% : 33%
        w = 0:                 (1, 0)    w = 100: (0, 1)
    """
    if canary_backends == 0:
        return 1, 0
    if current_backends == 0:
        return 0, 1
    current = (100 - weight) * canary_backends
    canary = weight * current_backends
    divisor = math.gcd(current, canary) or 1
    return current // divisor, canary // divisor
