"""The spec models: defaults filled in and the values the planner reads."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from function.spec import (
    ANALYSIS,
    CANARY,
    PAUSE,
    REPLACE,
    SET_WEIGHT,
    WAIT,
    Analysis,
    CanaryStep,
    HeaderRoute,
    IntOrPercent,
    InvalidSpec,
    RouteTimeouts,
    parse_spec,
)
from tests.fixtures import deployment


def canary_spec(**strategy: Any) -> dict[str, Any]:
    return deployment(4, ("v1", "v2"), strategy={"type": "Canary", **strategy})


def test_rolling_update_defaults_for_capacity_shortage():
    strategy = parse_spec(deployment()).strategy
    assert strategy.on_capacity_shortage == WAIT
    assert strategy.capacity_wait_seconds == 120
    assert strategy.canary is None
    assert strategy.analysis is None


def test_rolling_update_capacity_shortage_is_read():
    spec = parse_spec(deployment(strategy={"rollingUpdate": {
        "onCapacityShortage": "Replace", "capacityWaitSeconds": 30.0}}))
    assert spec.strategy.on_capacity_shortage == REPLACE
    assert spec.strategy.capacity_wait_seconds == 30


def test_canary_steps_and_defaults():
    spec = parse_spec(canary_spec(
        canary={"steps": [{"setWeight": 10.0}, {"pause": {"durationSeconds": 600}},
                          {"pause": {}}, {"analysis": {"durationSeconds": 900}},
                          {"analysis": {}}]},
        analysis={}))
    assert spec.strategy.type == CANARY
    canary = spec.strategy.canary
    assert canary is not None
    assert canary.steps == (
        CanaryStep(SET_WEIGHT, weight=10),
        CanaryStep(PAUSE, duration_seconds=600),
        CanaryStep(PAUSE, duration_seconds=None),
        CanaryStep(ANALYSIS, duration_seconds=900),
        CanaryStep(ANALYSIS, duration_seconds=0),
    )
    assert isinstance(canary.steps[0].weight, int)
    assert canary.max_surge == IntOrPercent(25, percent=True)
    assert canary.max_unavailable == IntOrPercent(0, percent=False)
    assert canary.on_capacity_shortage == WAIT
    assert canary.capacity_wait_seconds == 120
    assert canary.header_route is None
    assert spec.strategy.analysis == Analysis()


def test_canary_options_are_read():
    spec = parse_spec(canary_spec(canary={
        "steps": [{"setWeight": 0}, {"setWeight": 100}],
        "maxSurge": 1, "maxUnavailable": "10%", "onCapacityShortage": "Replace",
        "capacityWaitSeconds": 0, "headerRoute": {"name": "X-Canary", "value": "true"}}))
    canary = spec.strategy.canary
    assert canary is not None
    assert [s.weight for s in canary.steps] == [0, 100]
    assert canary.max_surge == IntOrPercent(1, percent=False)
    assert canary.max_unavailable == IntOrPercent(10, percent=True)
    assert canary.on_capacity_shortage == REPLACE
    assert canary.capacity_wait_seconds == 0
    assert canary.header_route == HeaderRoute("X-Canary", "true")


def test_analysis_fields_are_read():
    spec = parse_spec(deployment(strategy={"analysis": {
        "minRequests": 0, "maxErrorRate": 0, "maxTTFTP95Seconds": 2,
        "maxITLP95Seconds": 0.1, "maxRatioToBaseline": 1, "failureToleranceSeconds": 0}}))
    assert spec.strategy.analysis == Analysis(
        min_requests=0, max_error_rate=0.0, max_ttft_p95_seconds=2.0,
        max_itl_p95_seconds=0.1, max_ratio_to_baseline=1.0, failure_tolerance_seconds=0)


def test_route_timeouts():
    spec = deployment()
    assert parse_spec(spec).route.timeouts is None  # type: ignore[union-attr]
    spec["route"]["timeouts"] = {"request": "0s", "backendRequest": "1h30m"}
    assert parse_spec(spec).route.timeouts == RouteTimeouts(  # type: ignore[union-attr]
        request="0s", backend_request="1h30m")
    spec["route"]["timeouts"] = {"request": "500ms"}
    assert parse_spec(spec).route.timeouts == RouteTimeouts(  # type: ignore[union-attr]
        request="500ms", backend_request=None)


@pytest.mark.parametrize("strategy_type", ["RollingUpdate", "BlueGreen"])
def test_a_canary_block_is_validated_under_any_strategy(strategy_type):
    spec = deployment(strategy={"type": strategy_type,
                                "canary": {"steps": [{"analysis": {}}]}})
    with pytest.raises(InvalidSpec) as error:
        parse_spec(spec)
    assert error.value.path == "spec.strategy.canary.steps[0]"
    spec["strategy"]["analysis"] = {}
    assert parse_spec(spec).strategy.canary is not None


# --- anything at all: a Spec or one InvalidSpec, never another exception -------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)

# Every field name of the API, so random edits land on fields the models read.
FIELDS = sorted({
    "replicas", "revisions", "activeRevision", "strategy", "promote", "route", "healthPolicy",
    "progressDeadlineSeconds", "minReadySeconds", "drainSeconds", "name", "model", "engine",
    "port", "healthCheck", "path", "intervalSeconds", "initialDelaySeconds", "type",
    "rollingUpdate", "maxSurge", "maxUnavailable", "onCapacityShortage", "blueGreen",
    "autoPromote", "canary", "steps", "setWeight", "pause", "analysis", "durationSeconds",
    "headerRoute", "value", "minRequests", "maxErrorRate", "maxTTFTP95Seconds",
    "maxRatioToBaseline", "parentRefs", "hostnames", "pathPrefix", "timeouts", "request",
    "backendRequest", "preview", "cleanupTargetStatuses", "statusTTLSeconds",
})


def _edit(spec: Any, path: list[Any], value: Any) -> Any:
    """spec with the node at path (indices taken modulo, names from FIELDS) set to value."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(spec, list) and spec:
        i = head % len(spec) if isinstance(head, int) else 0
        return [*spec[:i], _edit(spec[i], rest, value), *spec[i + 1:]]
    if isinstance(spec, dict):
        key = FIELDS[head % len(FIELDS)] if isinstance(head, int) else head
        return {**spec, key: _edit(spec.get(key), rest, value)}
    return value


CANARY_SPEC = deployment(4, ("v1", "v2"), preview=True, strategy={
    "type": "Canary", "canary": {"steps": [{"setWeight": 10}, {"pause": {}},
                                           {"analysis": {"durationSeconds": 60}}],
                                 "headerRoute": {"name": "x-canary", "value": "1"}},
    "analysis": {"maxTTFTP95Seconds": 2}})
CANARY_SPEC["route"]["timeouts"] = {"request": "0s"}


@settings(max_examples=400, deadline=None, derandomize=os.environ.get("CI") == "true")
@given(path=st.lists(st.integers(0, 200), max_size=6), value=JSON)
def test_any_edit_of_a_valid_spec_parses_or_names_one_field(path, value):
    try:
        parse_spec(_edit(CANARY_SPEC, path, value))
    except InvalidSpec as error:
        assert error.path.startswith("spec") and error.problem


@settings(max_examples=200, deadline=None, derandomize=os.environ.get("CI") == "true")
@given(value=JSON)
def test_any_value_at_all_parses_or_names_one_field(value):
    try:
        parse_spec(value)
    except InvalidSpec as error:
        assert error.path.startswith("spec") and error.problem
