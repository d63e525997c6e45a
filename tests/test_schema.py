"""The generated schemas: up to date, structural, and refusing what the function refuses.

The XRD's spec schema, the Input CRD and docs/reference.md are generated from
function/api/models.py. These tests fail when a checked-in file differs from
what the models generate, when a generated node is not what Kubernetes calls
structural, and when the schema and the function disagree about a spec.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from function.api.schema import input_schema, spec_schema
from function.spec import InvalidSpec, parse_input, parse_spec
from tests.fixtures import blue_green, deployment, rolling
from tests.test_bad_input import CASES, mutate

ROOT = Path(__file__).resolve().parent.parent


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "generate_schemas", ROOT / "scripts" / "generate-schemas.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("generate_schemas", module)
    spec.loader.exec_module(module)
    return module


def xrd_schema(path: str = "example/xrds/modeldeployment.yaml") -> dict[str, Any]:
    """The openAPIV3Schema of the checked-in XRD (or CRD) at path."""
    document = yaml.safe_load((ROOT / path).read_text())
    return document["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


# --- a small OpenAPI v3 validator, as the API server applies a structural schema -----------


def violations(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """What the API server would refuse or prune in value; CEL rules are not evaluated."""
    if value is None:
        return [] if schema.get("nullable") else [f"{path}: null is pruned (not nullable)"]
    problems = _type_problems(value, schema, path)
    if problems:
        return problems
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        problems += _number_problems(value, schema, path)
    if isinstance(value, str):
        problems += _string_problems(value, schema, path)
    if isinstance(value, list):
        problems += _list_problems(value, schema, path)
    if isinstance(value, dict):
        problems += _object_problems(value, schema, path)
    return problems


def _type_problems(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    if schema.get("x-kubernetes-int-or-string"):
        ok = isinstance(value, str) or (isinstance(value, int | float)
                                        and not isinstance(value, bool)
                                        and float(value).is_integer())
        return [] if ok else [f"{path}: {value!r} is neither an integer nor a string"]
    wanted = schema.get("type")
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        # JSON has only numbers: the API server reads a whole one as an integer.
        "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer()),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    }
    if wanted is None:
        return [f"{path}: schema node has no type"]
    return [] if checks[wanted](value) else [f"{path}: {value!r} is not of type {wanted}"]


def _number_problems(value: float, schema: dict[str, Any], path: str) -> list[str]:
    problems = []
    low, high = schema.get("minimum"), schema.get("maximum")
    if isinstance(low, int | float) and (value < low or (schema.get("exclusiveMinimum")
                                                         and value == low)):
        problems.append(f"{path}: {value} below minimum {low}")
    if isinstance(high, int | float) and value > high:
        problems.append(f"{path}: {value} above maximum {high}")
    if schema.get("format") == "int32" and not -(2**31) <= value < 2**31:
        problems.append(f"{path}: {value} is not an int32")
    return problems


def _string_problems(value: str, schema: dict[str, Any], path: str) -> list[str]:
    problems = []
    if len(value) > schema.get("maxLength", len(value)):
        problems.append(f"{path}: longer than {schema['maxLength']}")
    if len(value) < schema.get("minLength", 0):
        problems.append(f"{path}: shorter than {schema['minLength']}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        problems.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if schema.get("format") == "date-time":
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            problems.append(f"{path}: {value!r} is not a date-time")
    return problems


def _list_problems(value: list[Any], schema: dict[str, Any], path: str) -> list[str]:
    problems = []
    if len(value) > schema.get("maxItems", len(value)):
        problems.append(f"{path}: more than {schema['maxItems']} items")
    if len(value) < schema.get("minItems", 0):
        problems.append(f"{path}: fewer than {schema['minItems']} items")
    kind = schema.get("x-kubernetes-list-type")
    if kind == "set" and len({repr(v) for v in value}) != len(value):
        problems.append(f"{path}: duplicate entries in a set")
    if kind == "map":
        keys = [tuple(repr(item.get(k)) for k in schema["x-kubernetes-list-map-keys"])
                for item in value if isinstance(item, dict)]
        if len(set(keys)) != len(keys):
            problems.append(f"{path}: duplicate map keys")
    for i, item in enumerate(value):
        problems += violations(item, schema.get("items", {}), f"{path}[{i}]")
    return problems


def _object_problems(value: dict[str, Any], schema: dict[str, Any], path: str) -> list[str]:
    problems = [f"{path}.{name}: required" for name in schema.get("required", ())
                if name not in value]
    properties = schema.get("properties", {})
    for name, item in value.items():
        if name in properties:
            problems += violations(item, properties[name], f"{path}.{name}")
        elif not schema.get("x-kubernetes-preserve-unknown-fields"):
            problems.append(f"{path}.{name}: unknown field, pruned")
    return problems


# --- the generated files are up to date ----------------------------------------------------


def test_checked_in_schemas_and_reference_are_what_the_models_generate():
    diffs = _generator().stale()
    assert not diffs, "run scripts/generate-schemas.py:\n" + "\n".join(diffs)


def test_the_xrd_spec_and_the_input_crd_are_the_generated_schemas():
    assert xrd_schema()["properties"]["spec"] == spec_schema()
    assert xrd_schema("package/input/fn.rollout.dev_inputs.yaml") == input_schema()


def test_every_spec_field_is_in_the_reference():
    reference = (ROOT / "docs" / "reference.md").read_text()

    def paths(schema: dict[str, Any], prefix: str) -> list[str]:
        out = []
        for name, child in schema.get("properties", {}).items():
            here = f"{prefix}.{name}"
            out.append(here)
            item = child.get("items", {}) if child.get("type") == "array" else {}
            out += paths(item, here + "[]") if item.get("properties") else paths(child, here)
        return out

    listed = set(re.findall(r"^\| `([^`]+)` \|", reference, re.MULTILINE))
    assert set(paths(spec_schema(), "spec")) <= listed
    assert len(listed) > 60


# --- structural --------------------------------------------------------------------------


def _nodes(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, schema)]
    for name, child in schema.get("properties", {}).items():
        out += _nodes(child, f"{path}.{name}")
    if "items" in schema:
        out += _nodes(schema["items"], f"{path}[]")
    return out


@pytest.mark.parametrize("schema", [spec_schema(), input_schema()], ids=["spec", "input"])
def test_generated_schemas_are_structural(schema):
    for path, node in _nodes(schema):
        unwanted = {"$ref", "$defs", "title", "additionalProperties", "allOf", "oneOf"}
        assert not unwanted & set(node), path
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
        else:
            assert "anyOf" not in node, path
            assert node.get("type") in {"object", "array", "string", "integer", "number",
                                        "boolean"}, path
        if path == ".metadata":  # an object's metadata: the API server knows its schema
            continue
        if node.get("type") == "object" and path:
            assert node.get("properties") or node.get("x-kubernetes-preserve-unknown-fields"), path
        assert node.get("description") or path.endswith("[]") or not path, \
            f"{path} has no description for kubectl explain"
        if "default" in node:  # a default must itself be valid, as the API server requires
            assert not violations(node["default"], node, path), path


def test_kubectl_explain_sees_defaults_bounds_and_enums():
    strategy = spec_schema()["properties"]["strategy"]
    assert strategy["default"] == {}
    assert strategy["properties"]["type"]["enum"] == ["RollingUpdate", "BlueGreen", "Canary"]
    rolling_update = strategy["properties"]["rollingUpdate"]["properties"]
    assert rolling_update["maxSurge"]["default"] == "25%"
    assert rolling_update["maxUnavailable"]["default"] == 0
    assert rolling_update["onCapacityShortage"]["enum"] == ["Wait", "Replace"]
    canary = strategy["properties"]["canary"]
    assert canary["required"] == ["steps"]
    assert canary["properties"]["steps"]["maxItems"] == 32
    weight = canary["properties"]["steps"]["items"]["properties"]["setWeight"]
    assert (weight["minimum"], weight["maximum"]) == (0, 100)
    ttft = strategy["properties"]["analysis"]["properties"]["maxTTFTP95Seconds"]
    assert ttft["minimum"] == 0 and ttft["exclusiveMinimum"] is True
    route = spec_schema()["properties"]["route"]["properties"]
    assert route["hostnames"]["maxItems"] == 16
    assert route["timeouts"]["properties"]["request"]["pattern"] == r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"
    policy = spec_schema()["properties"]["healthPolicy"]["properties"]
    assert policy["cleanupTargetStatuses"]["maxItems"] == 2
    assert policy["cleanupTargetStatuses"]["x-kubernetes-list-type"] == "set"
    for name in ("activeRevision", "promote"):
        node = spec_schema()["properties"][name]
        assert (node["maxLength"], node["pattern"]) == (30, r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


# --- the schema and the function agree -----------------------------------------------------

VALID = [
    deployment(),
    deployment(3, ("v1", "v2"), active="v1", preview=True),
    deployment(5, ("a", "b", "c"), strategy=blue_green(auto=True, delay=30, scale_down=10)),
    deployment(2, strategy=rolling("50%", 1), drainSeconds=5, minReadySeconds=10, promote="v1",
               healthPolicy={"cleanupTargetStatuses": ["Degraded", "Unhealthy"]}),
    deployment(4, ("v1", "v2"), strategy={
        "type": "Canary",
        "canary": {"steps": [{"setWeight": 10}, {"pause": {"durationSeconds": 600}},
                             {"pause": {}}, {"analysis": {"durationSeconds": 900}}],
                   "maxSurge": 1, "headerRoute": {"name": "x-canary", "value": "true"}},
        "analysis": {"maxTTFTP95Seconds": 2.0, "maxRatioToBaseline": 1.25},
        "rollingUpdate": {"onCapacityShortage": "Replace", "capacityWaitSeconds": 60}}),
]
VALID[1]["route"]["timeouts"] = {"request": "0s", "backendRequest": "5m"}


@pytest.mark.parametrize("spec", VALID)
def test_specs_the_function_accepts_the_schema_accepts(spec):
    parse_spec(spec)
    assert violations(spec, spec_schema(), "spec") == []


# Refusals the API server makes with a CEL rule (x-kubernetes-validations), which this
# validator does not evaluate; each rule is checked to be present instead.
CEL_ONLY = {
    "spec.activeRevision": "self.revisions.exists(r, r.name == self.activeRevision)",
    "spec.strategy.canary.steps": "has(self.canary)",
    "spec.strategy.canary.steps[1]": "!has(s.analysis)",
    "spec.strategy.canary.steps[2]": "has(self.setWeight)",
    "spec.route.timeouts.backendRequest": "duration(self.backendRequest)",
}


# Bounds a schema cannot state: free-form objects are kept whole (preserve unknown
# fields), so only the function bounds their depth and size.
FUNCTION_ONLY = {"spec.revisions[0].model"}


@pytest.mark.parametrize(("change", "field", "problem"), CASES,
                         ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_specs_the_function_refuses_the_api_server_refuses(change, field, problem):
    spec = mutate(change)
    with pytest.raises(InvalidSpec):
        parse_spec(spec)
    found = violations(spec, spec_schema(), "spec")
    if found or field in FUNCTION_ONLY:
        return
    rule = next((r for f, r in CEL_ONLY.items() if field == f and problem != "at least one"),
                None)
    assert rule is not None, f"the schema accepts what the function refuses ({field})"
    assert rule in yaml.safe_dump(spec_schema(), width=1000)


def test_inputs_agree():
    assert violations({"replica": {"kind": "Model"}}, input_schema()) == []
    parse_input({"replica": {"kind": "Model"}})
    with pytest.raises(InvalidSpec):
        parse_input({"replica": {"apiVersion": 3}})
    assert violations({"replica": {"apiVersion": 3}}, input_schema())


def test_one_model_change_moves_validation_schema_and_reference_together():
    """Tighten one bound in the model: the function, the XRD and the reference all follow."""
    from function.api import models
    from function.api.types import Integer

    field = models.ModelDeploymentSpec.model_fields["drain_seconds"]
    saved = list(field.metadata)
    generator = _generator()
    try:
        field.metadata = list(Integer(0, 60))
        models.ModelDeploymentSpec.model_rebuild(force=True)
        with pytest.raises(InvalidSpec, match=r"spec\.drainSeconds: must be between 0 and 60"):
            parse_spec(deployment(drainSeconds=90))
        assert spec_schema()["properties"]["drainSeconds"]["maximum"] == 60
        row = "| `spec.drainSeconds` | integer | `30` | >= 0, <= 60 |"
        assert row in generator.reference_text()
        stale = {diff.splitlines()[0] for diff in generator.stale()}
        assert stale == {"--- example/xrds/modeldeployment.yaml (checked in)",
                         "--- docs/reference.md (checked in)"}
    finally:
        field.metadata = saved
        models.ModelDeploymentSpec.model_rebuild(force=True)
    assert parse_spec(deployment(drainSeconds=90)).drain_seconds == 90
    assert not generator.stale()
