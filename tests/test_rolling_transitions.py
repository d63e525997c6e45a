"""Every RollingUpdate transition as a whole-response case, each with the reason it exists.

A case drives the closed-loop world (tests/world.py) to the call in question and
compares what a user sees of that response (tests/responses.py): the replicas
(and which drain), the routes' rules with their weights, the status registers,
the Progressing condition, the results and the TTL.
N = 3, maxSurge 25% (1 replica), maxUnavailable 0, drainSeconds 30, warm-up 60 s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests import invariants
from tests.fixtures import deployment
from tests.responses import first_call, never_ready, registers, summary, until
from tests.test_rolling_replay import stable_on
from tests.world import Fate, Step, World


def bootstrapped(**extra: Any) -> World:
    world = World(spec=deployment(3, ("v1", "v2", "v3"), active="v1", **extra))
    world.run_until(lambda w: stable_on(w, "v1", 3), check=invariants.check)
    return world


def started(world: World) -> World:
    world.spec["activeRevision"] = "v2"
    return world


def routed(world: World, revision: str) -> int:
    """How many replicas of `revision` the last response routed."""
    return sum(1 for k in invariants.routed_replicas(world.history[-1]) if f"-{revision}-" in k)


def preempted(world: World) -> Step:
    until(lambda w: routed(w, "v2") >= 1)(world)
    world.spec["activeRevision"] = "v3"
    return first_call(world)


def aborted(world: World) -> Step:
    until(lambda w: routed(w, "v2") >= 1)(world)
    world.spec["activeRevision"] = "v1"
    return first_call(world)


def every_replica_failed(world: World) -> Step:
    world.fate_for = lambda rev, i: Fate(warmup=30, start_failure=True) if rev == "v2" else Fate()
    return until(lambda w: w.status.get("phase") == "Failed")(world)


def scaled_up(world: World) -> Step:
    until(lambda w: routed(w, "v2") >= 1)(world)
    world.spec["replicas"] = 4
    return first_call(world)


def status_lost(world: World) -> Step:
    until(lambda w: routed(w, "v2") >= 1)(world)
    world.status = {}
    return first_call(world)


V1 = ["replica-v1-0", "replica-v1-1", "replica-v1-2"]
ALL_V1 = [{"header": None, "backends": {"v1-0": 1, "v1-1": 1, "v1-2": 1}}]
MIXED = [{"header": None, "backends": {"v1-0": 1, "v1-1": 1, "v2-0": 1}}]
DEPLOYING = ["NewRevisionDeploying", "rolling out revision 'v2' (RollingUpdate)"]


CASES: list[tuple[str, Callable[[World], Step], dict[str, Any]]] = [
    ("start: one surge replica (25% of 3 rounds up), nothing routed to it, one event",
     first_call, {
         "replicas": [*V1, "replica-v2-0"], "rules": ALL_V1, "preview": [],
         "status": registers("Progressing", "v1", "v2"),
         "progressing": DEPLOYING,
         "results": ["Rolling out revision 'v2' to replace 'v1' (RollingUpdate)"],
         "ttl": 60}),
    ("the surge replica serves: it joins the route at weight 1 and one v1 replica drains, "
     "serving 3 = N throughout; the TTL is the drain's end",
     until(lambda w: routed(w, "v2") >= 1), {
         "replicas": ["replica-v1-0", "replica-v1-1", "replica-v1-2 draining", "replica-v2-0"],
         "rules": MIXED, "preview": [],
         "status": registers("Progressing", "v1", "v2"),
         "progressing": DEPLOYING, "results": [], "ttl": 30}),
    ("a drain ends: the drained replica is dropped and frees room for the next surge replica",
     until(lambda w: len(w.replicas("v1")) == 2 and len(w.replicas("v2")) == 2), {
         "replicas": ["replica-v1-0", "replica-v1-1", "replica-v2-0", "replica-v2-1"],
         "rules": MIXED, "preview": [],
         "status": registers("Progressing", "v1", "v2"),
         "progressing": DEPLOYING, "results": [], "ttl": 60}),
    ("completion: v2 serves N and v1 only drains, so v2 is current in this very response",
     until(lambda w: w.status.get("currentRevision") == "v2"), {
         "replicas": ["replica-v1-0 draining", "replica-v2-0", "replica-v2-1", "replica-v2-2"],
         "rules": [{"header": None, "backends": {"v2-0": 1, "v2-1": 1, "v2-2": 1}}],
         "preview": [],
         "status": registers("Stable", "v2"),
         "progressing": ["RolloutComplete", "revision 'v2' is rolled out"],
         "results": ["Revision 'v2' is rolled out, replacing 'v1'"], "ttl": 30}),
    ("pre-emption: v3 deploys; v2's serving replica is an orphan the route already carries, "
     "so it stays until the availability rule lets it drain",
     preempted, {
         "replicas": ["replica-v1-0", "replica-v1-1", "replica-v1-2 draining", "replica-v2-0"],
         "rules": MIXED, "preview": [],
         "status": registers("Progressing", "v1", "v3"),
         "progressing": ["NewRevisionDeploying", "rolling out revision 'v3' (RollingUpdate)"],
         "results": ["Revision 'v3' pre-empts the rollout of 'v2'; 'v2' is retired"],
         "ttl": 20}),
    ("abort: v1 reclaims its draining replica; v2's routed replica waits for v1 to serve N",
     aborted, {
         "replicas": [*V1, "replica-v2-0"], "rules": MIXED, "preview": [],
         "status": registers("Stable", "v1"),
         "progressing": ["RolloutAborted", "rollout aborted; serving 'v1'"],
         "results": ["Rollout of 'v2' aborted: activeRevision is back to 'v1'"], "ttl": 60}),
    ("rollback at the progress deadline: v2 never became Ready, so it is dropped at once, "
     "one Warning, phase Failed",
     never_ready, {
         "replicas": V1, "rules": ALL_V1, "preview": [],
         "status": registers("Failed", "v1", failed="v2"),
         "progressing": ["ProgressDeadlineExceeded", "rolled back to 'v1'; 'v2' failed"],
         "results": ["Revision 'v2' made no progress since 2026-11-22T10:01:20+00:00; rolled "
                     "back to 'v1'. 'v2' will not be retried until activeRevision changes."],
         "ttl": 60}),
    ("rollback when every replica of v2 failed: the Warning quotes the failed replica",
     every_replica_failed, {
         "replicas": V1, "rules": ALL_V1, "preview": [],
         "status": registers("Failed", "v1", failed="v2"),
         "progressing": ["RevisionFailed", "rolled back to 'v1'; 'v2' failed"],
         "results": ["Every replica of revision 'v2' failed (qwen-v2-0: engine exited: CUDA "
                     "out of memory); rolled back to 'v1'. 'v2' will not be retried until "
                     "activeRevision changes."],
         "ttl": 60}),
    ("scaling up mid-rollout: N + surge grows to 5, so a second v2 replica is created",
     scaled_up, {
         "replicas": ["replica-v1-0", "replica-v1-1", "replica-v1-2 draining", "replica-v2-0",
                      "replica-v2-1"],
         "rules": MIXED, "preview": [],
         "status": registers("Progressing", "v1", "v2"),
         "progressing": DEPLOYING, "results": [], "ttl": 20}),
    ("status lost mid-rollout: v1 is inferred (most available replicas), one Warning, and "
     "the rollout continues with its replicas",
     status_lost, {
         "replicas": ["replica-v1-0", "replica-v1-1", "replica-v1-2 draining", "replica-v2-0"],
         "rules": MIXED, "preview": [],
         "status": registers("Progressing", "v1", "v2"),
         "progressing": DEPLOYING,
         "results": ["status.currentRevision was lost; inferred 'v1' from the observed replicas "
                     "(the revision with the most available replicas)",
                     "Rolling out revision 'v2' to replace 'v1' (RollingUpdate)"],
         "ttl": 20}),
]


@pytest.mark.parametrize(("reason", "drive", "expected"), CASES, ids=[c[0][:40] for c in CASES])
def test_transition(reason: str, drive: Callable[[World], Step], expected: dict) -> None:
    assert summary(drive(started(bootstrapped()))) == expected, reason
