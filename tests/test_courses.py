"""Each strategy's course, asked directly: what it decides for one call, as tables.

A Rollout is built the way plan() builds it (function/planner/__init__.py) from a
spec, the status written before and observed replicas described in a word each;
the strategy then begins its course (function/planner/course.py), and the
tables check the gate it judged, the targets, the capacity rules, the routes
and the Progressing message it gives. The rules: docs/rollout.md#strategies.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from function import naming
from function.observe import format_time, read_observed, read_prior_status
from function.planner import strategies
from function.planner.course import Course
from function.planner.replicas import classify_all
from function.planner.revisions import decide_revisions, revision_infos
from function.planner.types import Backend, Rollout, group_by_revision
from function.spec import parse_spec
from tests.fixtures import blue_green, deployment, rolling

NOW = datetime(2026, 11, 22, 10, 30, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(hours=1)


def replica(revision: str, index: int, kind: str) -> dict[str, tuple[str, Any]]:
    """Observed resources of one replica, by key: `serving` (Ready an hour ago, Healthy,
    its endpoint publishing a backend), `warming` (not Ready yet) or `failed`.
    """
    key = naming.replica_key(revision, index)
    body: dict[str, Any] = {"metadata": {"creationTimestamp": format_time(LONG_AGO)}}
    out = {key: body}
    if kind == "warming":
        body["status"] = {"conditions": [{"type": "Ready", "status": "False",
                                          "lastTransitionTime": format_time(NOW)}]}
    elif kind == "failed":
        body["status"] = {"phase": "Failed", "message": "engine exited"}
    else:
        body["status"] = {
            "conditions": [{"type": "Ready", "status": "True",
                            "lastTransitionTime": format_time(LONG_AGO)}],
            "health": {"state": "Healthy", "lastProbeTime": format_time(NOW)}}
        name = naming.replica_name("qwen", revision, index)
        out[naming.endpoint_key(revision, index)] = {
            "status": {"routing": {"backendName": f"{name}-svc"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}
    return out


def begin(spec: dict[str, Any], status: dict[str, Any], replicas: list[tuple[str, int, str]],
          routed: list[str] = ()) -> tuple[Course, Rollout]:
    """The course a strategy begins for this call, and the Rollout it was given."""
    resources: dict[str, Any] = {}
    for revision, index, kind in replicas:
        resources.update(replica(revision, index, kind))
    if routed:
        resources[naming.ROUTE_KEY] = {"spec": {"rules": [{"backendRefs": [
            {"name": f"qwen-{name}-svc"} for name in routed]}]}}
    parsed = parse_spec(spec)
    observed = read_observed(resources.items())
    infos = revision_infos(parsed, observed)
    classified = classify_all(parsed, observed, infos, NOW)
    prior = read_prior_status(status)
    events: list[Any] = []
    on_route = observed.route.backends if observed.route is not None else frozenset()
    state = decide_revisions(parsed, prior, classified, infos, now=NOW, events=events,
                             routed=on_route)
    rollout = Rollout(spec=parsed, prior=prior, state=state, infos=infos,
                      by_revision=group_by_revision(classified), now=NOW, events=events,
                      xr_name="qwen", carried=on_route)
    return strategies.for_type(state.strategy).begin(rollout), rollout


def rolling_out(**extra: Any) -> dict[str, Any]:
    """Status of a rollout v1 -> v2 that started ten minutes ago."""
    started = format_time(NOW - timedelta(minutes=10))
    return {"currentRevision": "v1", "deployingRevision": "v2", "phase": "Progressing",
            "rolloutStartTime": started, "lastProgressTime": started, **extra}


def serving(revision: str, count: int, start: int = 0) -> list[tuple[str, int, str]]:
    return [(revision, i, "serving") for i in range(start, start + count)]


# --- RollingUpdate --------------------------------------------------------------------------

ROLLING = [
    ("steady: the current revision at N", {}, serving("v1", 3),
     {"targets": {"v1": 3}, "main": {"v1": True, "v2": False}, "limit": 4}),
    ("rolling out: the deploying revision at N, both on the main route", rolling_out(),
     serving("v1", 3), {"targets": {"v2": 3}, "main": {"v1": True, "v2": True}, "limit": 4}),
    ("first deploy: the active revision at N", {}, [],
     {"targets": {"v1": 3}, "main": {"v1": True, "v2": False}, "limit": 4}),
]


@pytest.mark.parametrize(("reason", "status", "replicas", "expected"), ROLLING,
                         ids=[c[0][:30] for c in ROLLING])
def test_rolling_update_course(reason: str, status: dict, replicas: list,
                               expected: dict) -> None:
    spec = deployment(3, ("v1", "v2"), active="v2" if status else "v1", strategy=rolling())
    course, _ = begin(spec, status, replicas)
    assert course.targets() == expected["targets"], reason
    assert {r: course.on_main_route(r) for r in ("v1", "v2")} == expected["main"], reason
    assert course.capacity_limit("v2") == expected["limit"], reason
    assert not course.gate.awaiting and not course.drains_gradually("v1"), reason


def test_rolling_update_course_times_the_progress_deadline_from_the_last_progress() -> None:
    spec = deployment(3, ("v1", "v2"), active="v2", strategy=rolling(),
                      progressDeadlineSeconds=900)
    course, rollout = begin(spec, rolling_out(), [*serving("v1", 3), ("v2", 0, "warming")])
    assert course.gate.timers == (NOW - timedelta(minutes=10) + timedelta(seconds=900),)
    assert rollout.state.deploying == "v2" and rollout.state.transitions == []


# --- BlueGreen --------------------------------------------------------------------------------

AWAITING = rolling_out(phase="AwaitingPromotion")

BLUE_GREEN = [
    # reason, strategy, promote, green replicas, expected
    ("green still warming: not at the gate, the deadline is the timer",
     blue_green(), None, [("v2", 0, "serving"), ("v2", 1, "warming")],
     {"awaiting": False, "promoted": False, "timers": 1}),
    ("green serves in full, no approval: awaiting, no timer",
     blue_green(), None, serving("v2", 2), {"awaiting": True, "promoted": False, "timers": 0}),
    ("approved by spec.promote: promoted",
     blue_green(), "v2", serving("v2", 2), {"awaiting": False, "promoted": True, "timers": 0}),
    ("approval naming another revision: still awaiting",
     blue_green(), "v3", serving("v2", 2), {"awaiting": True, "promoted": False, "timers": 0}),
    ("autoPromote with the soak not over: awaiting, its end is the timer",
     blue_green(auto=True, delay=7200), None, serving("v2", 2),
     {"awaiting": True, "promoted": False, "timers": 1}),
    ("autoPromote with the soak over (green Ready an hour ago): promoted",
     blue_green(auto=True, delay=600), None, serving("v2", 2),
     {"awaiting": False, "promoted": True, "timers": 0}),
]


@pytest.mark.parametrize(("reason", "strategy", "promote", "green", "expected"), BLUE_GREEN,
                         ids=[c[0][:30] for c in BLUE_GREEN])
def test_blue_green_course_at_its_gate(reason: str, strategy: dict, promote: str | None,
                                       green: list, expected: dict) -> None:
    spec = deployment(2, ("v1", "v2", "v3"), active="v2", strategy=strategy,
                      **({"promote": promote} if promote else {}))
    course, rollout = begin(spec, AWAITING, [*serving("v1", 2), *green])
    assert course.gate.awaiting == expected["awaiting"], reason
    assert len(course.gate.timers) == expected["timers"], reason
    assert rollout.state.promoted == expected["promoted"], reason
    kinds = [t.kind for t in rollout.state.transitions]
    assert kinds == (["promoted"] if expected["promoted"] else []), reason


def test_blue_green_course_keeps_blue_and_green_at_n_within_2n_and_green_off_the_main_route():
    spec = deployment(2, ("v1", "v2"), active="v2", strategy=blue_green())
    course, _ = begin(spec, rolling_out(), [*serving("v1", 2), ("v2", 0, "warming")])
    assert course.targets() == {"v1": 2, "v2": 2}
    assert (course.capacity_limit("v2"), course.capacity_limit("v1")) == (4, None)
    assert (course.on_main_route("v1"), course.on_main_route("v2")) == (True, False)
    assert course.capacity_policy() is None and not course.holds_old_capacity
    assert course.progressing(False, course.routes([], [])) == (
        "NewRevisionDeploying", "rolling out revision 'v2' (BlueGreen)")


# --- Canary -----------------------------------------------------------------------------------

STEPS = [{"setWeight": 10}, {"pause": {"durationSeconds": 600}}, {"setWeight": 50},
         {"pause": {}}]


def canary(**extra: Any) -> dict[str, Any]:
    return {"type": "Canary", "canary": {"steps": STEPS, **extra}}


def at_step(step: int, weight: int, started_minutes_ago: int = 1) -> dict[str, Any]:
    start = format_time(NOW - timedelta(minutes=started_minutes_ago))
    return rolling_out(canary={"step": step, "stepStartTime": start, "weight": weight})


CANARY = [
    # reason, status, replicas, promote, expected: step, awaiting, targets
    ("setWeight 10 with the canary serving but the route not yet carrying 10: holds",
     at_step(0, 0), [*serving("v1", 4), ("v2", 0, "serving")], None,
     {"step": 0, "awaiting": False, "targets": {"v1": 4, "v2": 1}}),
    ("setWeight 10 done once the route carried it: the timed pause starts now",
     at_step(0, 10), [*serving("v1", 4), ("v2", 0, "serving")], None,
     {"step": 1, "awaiting": False, "targets": {"v1": 4, "v2": 1}}),
    ("timed pause over: on to setWeight 50, whose targets are 2 and 2",
     at_step(1, 10, started_minutes_ago=11), [*serving("v1", 4), ("v2", 0, "serving")], None,
     {"step": 2, "awaiting": False, "targets": {"v1": 2, "v2": 2}}),
    ("manual pause without approval: awaiting",
     at_step(3, 50), [*serving("v1", 2), *serving("v2", 2)], None,
     {"step": 3, "awaiting": True, "targets": {"v1": 2, "v2": 2}}),
    ("manual pause approved: promotion, the canary at N and the current revision retiring",
     at_step(3, 50), [*serving("v1", 2), *serving("v2", 2)], "v2",
     {"step": 4, "awaiting": False, "targets": {"v2": 4}}),
]


@pytest.mark.parametrize(("reason", "status", "replicas", "promote", "expected"), CANARY,
                         ids=[c[0][:30] for c in CANARY])
def test_canary_course_moves_through_its_steps(reason: str, status: dict, replicas: list,
                                              promote: str | None, expected: dict) -> None:
    spec = deployment(4, ("v1", "v2"), active="v2", strategy=canary(),
                      **({"promote": promote} if promote else {}))
    course, rollout = begin(spec, status, replicas)
    assert course.status(course.routes([], []))["canary"]["step"] == expected["step"], reason
    assert course.gate.awaiting == expected["awaiting"], reason
    assert course.targets() == expected["targets"], reason
    assert course.drains_gradually("v1") and course.drains_gradually("v2"), reason
    if expected["step"] != 0:
        assert rollout.state.last_progress == NOW, "reaching a step is progress"


def backends(revision: str, count: int) -> list[Backend]:
    return [Backend(f"qwen-{revision}-{i}-svc", 8000, 1, revision) for i in range(count)]


WEIGHTS = [
    # reason, step, canary backends, current backends, total weight by revision, share
    ("10%: three current backends at 3 each, the canary at 1", at_step(1, 10), 1, 3,
     {"v1": 9, "v2": 1}, 10),
    ("50% with one of two canary replicas serving: capped at its share, 25%",
     at_step(2, 50), 1, 3, {"v1": 3, "v2": 1}, 25),
    ("no canary backend yet: the current revision carries everything", at_step(1, 10), 0, 4,
     {"v1": 4}, 0),
]


@pytest.mark.parametrize(("reason", "status", "canaries", "currents", "weights", "share"),
                         WEIGHTS, ids=[c[0][:30] for c in WEIGHTS])
def test_canary_course_weighs_the_main_route(reason: str, status: dict, canaries: int,
                                            currents: int, weights: dict, share: int) -> None:
    spec = deployment(4, ("v1", "v2"), active="v2",
                      strategy=canary(headerRoute={"name": "x-canary", "value": "true"}))
    replicas = [*serving("v1", currents), *serving("v2", canaries)]
    course, _ = begin(spec, status, replicas)
    routes = course.routes(backends("v1", currents) + backends("v2", canaries), [])
    totals: dict[str, int] = {}
    for backend in routes.main:
        totals[backend.revision] = totals.get(backend.revision, 0) + backend.weight
    assert totals == weights, reason
    assert routes.canary_weight == share, reason
    header = routes.header_rule
    assert (header is not None) == (canaries > 0), reason
    if header is not None:
        assert {b.revision for b in header.backends} == {"v2"}, reason


def test_canary_course_says_where_the_canary_stands() -> None:
    spec = deployment(4, ("v1", "v2"), active="v2", strategy=canary())
    course, _ = begin(spec, at_step(3, 50), [*serving("v1", 2), *serving("v2", 2)])
    routes = course.routes(backends("v1", 2) + backends("v2", 2), [])
    assert course.progressing(True, routes) == (
        "AwaitingPromotion", "step 3/4 pause: 50% routed, 2 of 2 canary replicas serving; "
        "awaiting approval: set spec.promote to 'v2'")


def test_canary_limits_are_its_own_and_rolling_updates_when_its_block_is_gone() -> None:
    spec = parse_spec(deployment(4, ("v1",), strategy=canary(maxSurge=2, maxUnavailable=1)))
    assert strategies.limits(spec) == strategies.for_type("Canary").limits(spec)
    assert (strategies.limits(spec).surge, strategies.limits(spec).unavailable) == (2, 1)
    plain = parse_spec(deployment(4, ("v1",), strategy=rolling(surge=3)))
    limits = strategies.for_type("Canary").limits(plain)
    assert (limits.surge, limits.unavailable) == (3, 0)
