"""Everything the function writes in status fits the XRD's hand-written status schema.

Every replay scenario (tests/test_*replay*.py) is run again with each call's
status recorded; each status must validate against the XRD with no field
pruned, or Crossplane would persist less than the function wrote and the
rollout would lose its memory.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests import world as world_module
from tests.test_schema import violations, xrd_schema

REPLAY_MODULES = sorted(p.stem for p in Path(__file__).parent.glob("test_*replay*.py"))


def replay_scenarios() -> list[tuple[str, Callable[[], None]]]:
    """Every argument-free test function of the replay modules."""
    scenarios = []
    for name in REPLAY_MODULES:
        module = importlib.import_module(f"tests.{name}")
        for attr, function in vars(module).items():
            if attr.startswith("test_") and inspect.isfunction(function) \
                    and not inspect.signature(function).parameters:
                scenarios.append((f"{name}::{attr}", function))
    return scenarios


SCENARIOS = replay_scenarios()


def test_there_are_replay_scenarios_to_check():
    assert len(SCENARIOS) >= 20


@pytest.mark.parametrize("scenario", [f for _, f in SCENARIOS], ids=[n for n, _ in SCENARIOS])
def test_status_written_in_replays_validates_against_the_xrd(scenario, monkeypatch):
    written: list[dict[str, Any]] = []
    step = world_module.World.step

    def recording_step(self: world_module.World, *args: Any, **kwargs: Any) -> Any:
        record = step(self, *args, **kwargs)
        if not record.fatal:
            written.append(record.status)
        return record

    monkeypatch.setattr(world_module.World, "step", recording_step)
    scenario()
    assert written
    schema = xrd_schema()["properties"]["status"]
    for status in written:
        assert violations(status, schema, "status") == [], status


def test_status_schema_lists_the_fields_other_strategies_write():
    properties = xrd_schema()["properties"]["status"]["properties"]
    assert set(properties["canary"]["properties"]) == {"step", "stepStartTime", "weight"}
    assert set(properties["analysis"]["properties"]) == {
        "verdict", "message", "failingSince", "evaluatedTime"}
    assert "unschedulable" in properties["replicas"]["properties"]
    assert properties["rolloutStrategy"]["enum"] == ["RollingUpdate", "BlueGreen", "Canary"]


def test_the_validator_catches_a_field_the_schema_does_not_list():
    schema = xrd_schema()["properties"]["status"]
    assert violations({"phase": "Stable", "surprise": 1}, schema, "status") == [
        "status.surprise: unknown field, pruned"]
    assert violations({"replicas": {"desired": "3"}}, schema, "status")
