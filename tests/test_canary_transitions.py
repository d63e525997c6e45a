"""Every canary transition as a whole-response case, each with the reason it exists.

A case drives the closed-loop world (tests/world.py) to the call in question and
compares what a user sees of that response: the replicas (and which drain), the
main route's rules with their weights and header match, the status registers
and status.canary, the Progressing condition, the results and the TTL.
N = 3, steps [setWeight 10, pause 600s, setWeight 50, pause {}], header x-canary.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests import responses
from tests.test_canary_replay import (
    bootstrapped,
    check_canary,
    stable_on,
    until_step,
)
from tests.world import Fate, Step, World

HEADER = {"headerRoute": {"name": "x-canary", "value": "true"}}


def summary(step: Step) -> dict[str, Any]:
    return responses.summary(step, registers=("phase", "currentRevision", "deployingRevision",
                                              "canary"), preview=False)


def started() -> World:
    world = bootstrapped(3, canary_extra=HEADER)
    world.spec["activeRevision"] = "v2"
    return world


def first_call(world: World) -> Step:
    step = world.step()
    check_canary(world, step)
    return step


def until(predicate: Callable[[World], bool]) -> Callable[[World], Step]:
    def drive(world: World) -> Step:
        world.run_until(predicate, check=check_canary)
        return world.history[-1]
    return drive


def canary_weight(world: World) -> int:
    return world.status.get("canary", {}).get("weight", -1)


def approved_after_waiting(world: World) -> Step:
    until_step(world, 3, phase="AwaitingPromotion")
    world.spec["promote"] = "v2"
    return first_call(world)


def aborted_in_the_pause(world: World) -> Step:
    until_step(world, 1)
    world.spec["activeRevision"] = "v1"
    return first_call(world)


def rolled_back(world: World) -> Step:
    world.spec["progressDeadlineSeconds"] = 120
    world.fate_for = lambda rev, i: Fate(never_ready=True) if rev == "v2" else Fate()
    return until(lambda w: w.status.get("phase") == "Failed")(world)


def canary_status(step: int, start: str, weight: int) -> dict[str, Any]:
    return {"step": step, "stepStartTime": f"2026-11-22T{start}Z", "weight": weight}


V1 = ["replica-v1-0", "replica-v1-1", "replica-v1-2"]
ALL_V1 = {"header": None, "backends": {"v1-0": 1, "v1-1": 1, "v1-2": 1}}

CASES = [
    ("start: one canary replica is created, nothing routed to it yet, the step is 0",
     first_call, {
         "replicas": [*V1, "replica-v2-0"],
         "rules": [ALL_V1],
         "status": {"phase": "Progressing", "currentRevision": "v1", "deployingRevision": "v2",
                    "canary": canary_status(0, "10:01:20", 0)},
         "progressing": ["CanaryStep",
                         "step 0/4 setWeight 10: 0% routed, 0 of 1 canary replicas serving"],
         "results": ["Rolling out revision 'v2' to replace 'v1' (Canary)"],
         "ttl": 60}),
    ("setWeight reached: the serving canary gets exactly 10% and the header rule appears",
     until(lambda w: canary_weight(w) == 10), {
         "replicas": [*V1, "replica-v2-0"],
         "rules": [{"header": None, "backends": {"v1-0": 3, "v1-1": 3, "v1-2": 3, "v2-0": 1}},
                   {"header": "x-canary", "backends": {"v2-0": 1}}],
         "status": {"phase": "Progressing", "currentRevision": "v1", "deployingRevision": "v2",
                    "canary": canary_status(0, "10:01:20", 10)},
         "progressing": ["CanaryStep",
                         "step 0/4 setWeight 10: 10% routed, 1 of 1 canary replicas serving"],
         "results": [],
         "ttl": 60}),
    ("step done once the route carried the weight: the timed pause starts and holds it",
     lambda w: until_step(w, 1), {
         "replicas": [*V1, "replica-v2-0"],
         "rules": [{"header": None, "backends": {"v1-0": 3, "v1-1": 3, "v1-2": 3, "v2-0": 1}},
                   {"header": "x-canary", "backends": {"v2-0": 1}}],
         "status": {"phase": "Progressing", "currentRevision": "v1", "deployingRevision": "v2",
                    "canary": canary_status(1, "10:02:40", 10)},
         "progressing": ["CanaryStep",
                         "step 1/4 pause 600s: 10% routed, 1 of 1 canary replicas serving"],
         "results": [],
         "ttl": 60}),
    ("timed pause runs out: setWeight 50 drains a current replica within maxUnavailable "
     "and caps the canary at its serving share (1 of 3 = 33%)",
     lambda w: until_step(w, 2), {
         "replicas": ["replica-v1-0", "replica-v1-1", "replica-v1-2 draining", "replica-v2-0"],
         "rules": [{"header": None, "backends": {"v1-0": 67, "v1-1": 67, "v2-0": 66}},
                   {"header": "x-canary", "backends": {"v2-0": 1}}],
         "status": {"phase": "Progressing", "currentRevision": "v1", "deployingRevision": "v2",
                    "canary": canary_status(2, "10:12:40", 33)},
         "progressing": ["CanaryStep",
                         "step 2/4 setWeight 50: 33% routed, 1 of 2 canary replicas serving"],
         "results": [],
         "ttl": 30}),
    ("manual pause: AwaitingPromotion at 50%, no timer",
     lambda w: until_step(w, 3, phase="AwaitingPromotion"), {
         "replicas": ["replica-v1-0", "replica-v1-1", "replica-v2-0", "replica-v2-1"],
         "rules": [{"header": None, "backends": {"v1-0": 1, "v1-1": 1, "v2-0": 1, "v2-1": 1}},
                   {"header": "x-canary", "backends": {"v2-0": 1, "v2-1": 1}}],
         "status": {"phase": "AwaitingPromotion", "currentRevision": "v1",
                    "deployingRevision": "v2", "canary": canary_status(3, "10:14:30", 50)},
         "progressing": ["AwaitingPromotion",
                         "step 3/4 pause: 50% routed, 2 of 2 canary replicas serving; "
                         "awaiting approval: set spec.promote to 'v2'"],
         "results": [],
         "ttl": 60}),
    ("approval passes the pause: promotion; a current replica drains first, as N + surge "
     "is full",
     approved_after_waiting, {
         "replicas": ["replica-v1-0", "replica-v1-1 draining", "replica-v2-0", "replica-v2-1"],
         "rules": [{"header": None, "backends": {"v1-0": 34, "v2-0": 33, "v2-1": 33}},
                   {"header": "x-canary", "backends": {"v2-0": 1, "v2-1": 1}}],
         "status": {"phase": "Progressing", "currentRevision": "v1", "deployingRevision": "v2",
                    "canary": canary_status(4, "10:14:40", 66)},
         "progressing": ["CanaryStep", "promoting 'v2': 66% routed, 2 of 3 canary replicas "
                         "serving"],
         "results": [],
         "ttl": 30}),
    ("completion: the canary is current, the header rule and status.canary go",
     lambda w: (approved_after_waiting(w),
                until(lambda x: stable_on(x, "v2", 3) or x.status.get("phase") == "Stable")(w)
                )[1], {
         "replicas": ["replica-v1-0 draining", "replica-v2-0", "replica-v2-1", "replica-v2-2"],
         "rules": [{"header": None, "backends": {"v2-0": 1, "v2-1": 1, "v2-2": 1}}],
         "status": {"phase": "Stable", "currentRevision": "v2", "deployingRevision": None,
                    "canary": None},
         "progressing": ["RolloutComplete", "revision 'v2' is rolled out"],
         "results": ["Revision 'v2' is rolled out, replacing 'v1'"],
         "ttl": 30}),
    ("abort in a pause: all traffic back to v1 at once (it serves N), the canary drains",
     aborted_in_the_pause, {
         "replicas": [*V1, "replica-v2-0 draining"],
         "rules": [ALL_V1],
         "status": {"phase": "Stable", "currentRevision": "v1", "deployingRevision": None,
                    "canary": None},
         "progressing": ["RolloutAborted", "rollout aborted; serving 'v1'"],
         "results": ["Rollout of 'v2' aborted: activeRevision is back to 'v1'"],
         "ttl": 30}),
    ("rollback: a canary that never serves is rolled back at the deadline, one Warning",
     rolled_back, {
         "replicas": V1,
         "rules": [ALL_V1],
         "status": {"phase": "Failed", "currentRevision": "v1", "deployingRevision": None,
                    "canary": None},
         "progressing": ["ProgressDeadlineExceeded", "rolled back to 'v1'; 'v2' failed"],
         "results": ["Revision 'v2' made no progress since 2026-11-22T10:01:20+00:00; rolled "
                     "back to 'v1'. 'v2' will not be retried until activeRevision changes."],
         "ttl": 60}),
]


@pytest.mark.parametrize(("reason", "drive", "expected"), CASES, ids=[c[0][:40] for c in CASES])
def test_transition(reason: str, drive: Callable[[World], Step], expected: dict) -> None:
    assert summary(drive(started())) == expected, reason
