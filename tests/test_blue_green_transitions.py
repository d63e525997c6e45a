"""Every BlueGreen transition as a whole-response case, each with the reason it exists.

A case drives the closed-loop world (tests/world.py) to the call in question and
compares what a user sees of that response (tests/responses.py): the replicas
(and which drain), the main and preview routes' rules, the status registers,
the Progressing condition, the results and the TTL.
N = 2, manual promotion, scaleDownDelaySeconds 30, a preview route, warm-up 60 s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests import invariants
from tests.fixtures import blue_green, deployment
from tests.responses import first_call, never_ready, registers, summary, until
from tests.test_blue_green_replay import stable_on
from tests.world import Step, World


def bootstrapped(**strategy: Any) -> World:
    world = World(spec=deployment(2, ("v1", "v2", "v3"), active="v1",
                                  strategy=blue_green(**strategy), preview=True))
    world.run_until(lambda w: stable_on(w, "v1", 2), check=invariants.check)
    world.spec["activeRevision"] = "v2"
    return world


awaiting = until(lambda w: w.status.get("phase") == "AwaitingPromotion")


def approved(world: World) -> Step:
    awaiting(world)
    world.spec["promote"] = "v2"
    return first_call(world)


def another_approved(world: World) -> Step:
    awaiting(world)
    world.spec["promote"] = "v3"
    return first_call(world)


def auto_promoted(world: World) -> Step:
    world.spec["strategy"] = blue_green(auto=True, delay=60)
    return until(lambda w: w.status.get("currentRevision") == "v2")(world)


def aborted(world: World) -> Step:
    awaiting(world)
    world.spec["activeRevision"] = "v1"
    return first_call(world)


def reverted(world: World) -> Step:
    approved(world)
    world.spec["activeRevision"] = "v1"
    world.spec.pop("promote")
    return first_call(world)


BLUE = ["replica-v1-0", "replica-v1-1"]
GREEN = ["replica-v2-0", "replica-v2-1"]
MAIN_BLUE = [{"header": None, "backends": {"v1-0": 1, "v1-1": 1}}]
ON_GREEN = [{"header": None, "backends": {"v2-0": 1, "v2-1": 1}}]
NO_BACKENDS = [{"header": None, "backends": {}}]


CASES: list[tuple[str, Callable[[World], Step], dict[str, Any]]] = [
    ("start: green is created at full size beside blue; the preview route is composed "
     "with no backend until green serves, the main route stays on blue",
     first_call, {
         "replicas": [*BLUE, *GREEN], "rules": MAIN_BLUE, "preview": NO_BACKENDS,
         "status": registers("Progressing", "v1", "v2"),
         "progressing": ["NewRevisionDeploying", "rolling out revision 'v2' (BlueGreen)"],
         "results": ["Rolling out revision 'v2' to replace 'v1' (BlueGreen)"], "ttl": 60}),
    ("green serves in full: AwaitingPromotion, green on the preview route only, no timer "
     "without autoPromote",
     awaiting, {
         "replicas": [*BLUE, *GREEN], "rules": MAIN_BLUE, "preview": ON_GREEN,
         "status": registers("AwaitingPromotion", "v1", "v2"),
         "progressing": ["AwaitingPromotion",
                         "revision 'v2' is fully available and awaits promotion"],
         "results": [], "ttl": 60}),
    ("spec.promote names green: promoted in one response, main route to green only, blue "
     "drains for scaleDownDelaySeconds, the preview route goes",
     approved, {
         "replicas": ["replica-v1-0 draining", "replica-v1-1 draining", *GREEN],
         "rules": ON_GREEN, "preview": [],
         "status": registers("Stable", "v2"),
         "progressing": ["RolloutComplete", "revision 'v2' is rolled out"],
         "results": ["Promoted revision 'v2' (approved by spec.promote); 'v1' scales down"],
         "ttl": 30}),
    ("blue's scale-down delay ends: blue is deleted, green alone serves",
     lambda w: (approved(w), until(lambda x: not x.replicas("v1"))(w))[1], {
         "replicas": GREEN, "rules": ON_GREEN, "preview": [],
         "status": registers("Stable", "v2"),
         "progressing": ["RolloutComplete", "revision 'v2' is rolled out"],
         "results": [], "ttl": 60}),
    ("spec.promote names another revision: ignored, said in Progressing and in one Warning",
     another_approved, {
         "replicas": [*BLUE, *GREEN], "rules": MAIN_BLUE, "preview": ON_GREEN,
         "status": registers("AwaitingPromotion", "v1", "v2"),
         "progressing": ["AwaitingPromotion",
                         "revision 'v2' is fully available and awaits promotion; spec.promote "
                         "names 'v3', not the deploying revision 'v2'; it is ignored"],
         "results": ["spec.promote names 'v3', not the deploying revision 'v2'; it is ignored"],
         "ttl": 60}),
    ("autoPromote: promoted once green has been fully available for promoteDelaySeconds",
     auto_promoted, {
         "replicas": ["replica-v1-0 draining", "replica-v1-1 draining", *GREEN],
         "rules": ON_GREEN, "preview": [],
         "status": registers("Stable", "v2"),
         "progressing": ["RolloutComplete", "revision 'v2' is rolled out"],
         "results": ["Promoted revision 'v2' (green was fully available for 60s); 'v1' "
                     "scales down"],
         "ttl": 30}),
    ("abort at the gate: green was never on the main route, so it drains for drainSeconds "
     "off the preview route, which goes",
     aborted, {
         "replicas": [*BLUE, "replica-v2-0 draining", "replica-v2-1 draining"],
         "rules": MAIN_BLUE, "preview": [],
         "status": registers("Stable", "v1"),
         "progressing": ["RolloutAborted", "rollout aborted; serving 'v1'"],
         "results": ["Rollout of 'v2' aborted: activeRevision is back to 'v1'"], "ttl": 30}),
    ("rollback at the progress deadline: green never became Ready and is dropped at once",
     never_ready, {
         "replicas": BLUE, "rules": MAIN_BLUE, "preview": [],
         "status": registers("Failed", "v1", failed="v2"),
         "progressing": ["ProgressDeadlineExceeded", "rolled back to 'v1'; 'v2' failed"],
         "results": ["Revision 'v2' made no progress since 2026-11-22T10:01:20+00:00; rolled "
                     "back to 'v1'. 'v2' will not be retried until activeRevision changes."],
         "ttl": 60}),
    ("reverting right after a promotion: the draining blue replicas are reclaimed as the "
     "new green, not re-created",
     reverted, {
         "replicas": [*BLUE, *GREEN], "rules": ON_GREEN, "preview": NO_BACKENDS,
         "status": registers("Progressing", "v2", "v1"),
         "progressing": ["NewRevisionDeploying", "rolling out revision 'v1' (BlueGreen)"],
         "results": ["Rolling out revision 'v1' to replace 'v2' (BlueGreen)"], "ttl": 60}),
]


@pytest.mark.parametrize(("reason", "drive", "expected"), CASES, ids=[c[0][:40] for c in CASES])
def test_transition(reason: str, drive: Callable[[World], Step], expected: dict) -> None:
    assert summary(drive(bootstrapped())) == expected, reason
