"""OpenAPI schemas and the field reference, generated from the API models.

Kubernetes wants structural schemas: every node typed, no `$ref`, no
`anyOf: [X, null]`, unknown fields preserved only where they are meant to be.
`structural` turns the JSON Schema pydantic generates into that, and
`field_rows` flattens it into the rows of docs/reference.md. Nothing here runs
while the function serves; scripts/generate-schemas.py writes the files and
tests/test_schema.py checks that the checked-in ones match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

from function.api.models import FunctionInput, ModelDeploymentSpec
from function.api.types import INT32_MAX, IntOrPercent

# The order keys are written in, so the generated YAML reads like a hand-written one.
KEY_ORDER = (
    "description", "type", "format", "required", "enum", "default",
    "minimum", "exclusiveMinimum", "maximum", "minLength", "maxLength", "pattern",
    "minItems", "maxItems", "x-kubernetes-int-or-string", "anyOf",
    "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
    "x-kubernetes-preserve-unknown-fields", "x-kubernetes-validations", "items", "properties",
)


class _Generator(GenerateJsonSchema):
    """Writes int-or-percent defaults as a user would: 0 or "25%"."""

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, IntOrPercent):
            return dft.to_wire()
        return super().encode_default(dft)


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's structural OpenAPI v3 schema, as Kubernetes wants it."""
    raw = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_Generator)
    definitions = raw.pop("$defs", {})
    return structural(raw, definitions)


def structural(node: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """One JSON Schema node (and everything under it) as a structural schema node."""
    node = _resolved(node, definitions)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" or (key == "default" and not _meaningful_default(value, node)):
            continue
        _put_structural(out, key, value, definitions)
    if out.get("type") == "integer" and out.get("minimum", 0) >= -INT32_MAX - 1 \
            and out.get("maximum", INT32_MAX + 1) <= INT32_MAX:
        out["format"] = "int32"
    return {key: out[key] for key in sorted(out, key=_key_rank)}


def _put_structural(out: dict[str, Any], key: str, value: Any,
                    definitions: dict[str, Any]) -> None:
    """Add one JSON Schema keyword to `out` as a structural schema says it.

    Descriptions on one line; properties and items made structural in turn;
    anyOf (int-or-string) reduced to its types, with each member's bounds and
    pattern lifted; `additionalProperties: true` as preserve-unknown-fields;
    `exclusiveMinimum: 0` as `minimum: 0, exclusiveMinimum: true` (OpenAPI v3).
    """
    if key == "description":
        out[key] = " ".join(str(value).split())
    elif key == "properties":
        out[key] = {name: structural(child, definitions) for name, child in value.items()}
    elif key == "items":
        out[key] = structural(value, definitions)
    elif key == "x-kubernetes-validations":
        order = ("rule", "message", "fieldPath")
        out[key] = [{k: rule[k] for k in order if k in rule} for rule in value]
    elif key == "anyOf":
        out[key] = [{"type": member["type"]} for member in value]
        for member in value:  # int-or-string: bounds and pattern apply to one type each
            out.update({k: v for k, v in member.items() if k != "type"})
    elif key == "additionalProperties":
        if value is True:
            out["x-kubernetes-preserve-unknown-fields"] = True
    elif key == "exclusiveMinimum":
        out["minimum"] = value
        out["exclusiveMinimum"] = True
    else:
        out[key] = value


def _resolved(node: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """node with its `$ref` inlined and `anyOf: [X, null]` reduced to X, field keys winning
    (a field's own description and default over its model's)."""
    node = dict(node)
    ref = node.pop("$ref", None)
    if ref is not None:
        node = {**_resolved(definitions[ref.rsplit("/", 1)[-1]], definitions), **node}
    members = node.get("anyOf")
    if members is not None and not node.get("x-kubernetes-int-or-string"):
        present = [m for m in members if m.get("type") != "null"]
        if len(present) == 1:
            del node["anyOf"]
            node = {**_resolved(present[0], definitions), **node}
    return node


def _meaningful_default(value: Any, node: dict[str, Any]) -> bool:
    """Defaults the API server should fill in: not null, not an empty list, and, for a
    nested object, only `{}` (so that its own fields' defaults apply)."""
    if value is None or value == []:
        return False
    if isinstance(value, dict):
        return value == {}
    return True


def _key_rank(key: str) -> tuple[int, str]:
    return (KEY_ORDER.index(key) if key in KEY_ORDER else len(KEY_ORDER), key)


def spec_schema() -> dict[str, Any]:
    """The schema of a ModelDeployment's spec."""
    return json_schema(ModelDeploymentSpec)


def input_schema() -> dict[str, Any]:
    """The schema of the function Input, with the fields every Kubernetes object has."""
    schema = json_schema(FunctionInput)
    schema["properties"] = {
        "apiVersion": {"description": "APIVersion defines the versioned schema of this "
                                      "representation of an object.", "type": "string"},
        "kind": {"description": "Kind is a string value representing the REST resource this "
                                "object represents.", "type": "string"},
        "metadata": {"type": "object"},
        **schema["properties"],
    }
    return schema


# --- the field reference -------------------------------------------------------------------


@dataclass(frozen=True)
class FieldRow:
    """One field of the reference: where it is, what it takes, its default and meaning."""

    path: str
    kind: str
    default: str
    allowed: str
    description: str


def field_rows(schema: dict[str, Any], prefix: str) -> list[FieldRow]:
    """Every field under schema, depth first, as reference rows."""
    rows: list[FieldRow] = []
    required = set(schema.get("required", ()))
    for name, child in schema.get("properties", {}).items():
        path = f"{prefix}.{name}"
        item = child.get("items") if child.get("type") == "array" else None
        default = _describe_default(child, required=name in required)
        rows.append(FieldRow(path, _kind(child), default, _allowed(child),
                             child.get("description", "")))
        if item is not None and item.get("properties"):
            rows.extend(field_rows(item, f"{path}[]"))
        elif child.get("properties"):
            rows.extend(field_rows(child, path))
    return rows


def _kind(node: dict[str, Any]) -> str:
    if node.get("x-kubernetes-int-or-string"):
        return "int or percent"
    if node.get("type") == "array":
        item = node.get("items", {})
        return "list of objects" if item.get("properties") else f"list of {_kind(item)}s"
    if node.get("type") == "object" and node.get("x-kubernetes-preserve-unknown-fields"):
        return "object (free-form)"
    return {"integer": "integer", "number": "number", "boolean": "boolean",
            "string": "string", "object": "object"}.get(node.get("type", ""), "any")


def _describe_default(node: dict[str, Any], *, required: bool) -> str:
    if required:
        return "required"
    if "default" not in node:
        return ""
    value = node["default"]
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if value == {}:
        return "{}"
    return str(value)


def _allowed(node: dict[str, Any]) -> str:
    parts: list[str] = []
    if "enum" in node:
        parts.append(" or ".join(f"`{v}`" for v in node["enum"]))
    item = node.get("items", {})
    if "enum" in item:
        parts.append("each " + " or ".join(f"`{v}`" for v in item["enum"]))
    if "minimum" in node or "maximum" in node:
        low = node.get("minimum")
        low_text = "" if low is None else f"{'>' if node.get('exclusiveMinimum') else '>='} {low}"
        high = node.get("maximum")
        parts.append(", ".join(p for p in (low_text, "" if high is None else f"<= {high}") if p))
    if node.get("x-kubernetes-int-or-string"):
        parts.append(f"percent matching {_code(node['pattern'])}")
    elif "pattern" in node:
        parts.append(f"matches {_code(node['pattern'])}")
    if "maxLength" in node:
        low = node.get("minLength")
        parts.append(f"{low}..{node['maxLength']} characters" if low
                     else f"at most {node['maxLength']} characters")
    if "maxItems" in node:
        low = node.get("minItems")
        parts.append(f"{low}..{node['maxItems']} entries" if low
                     else f"at most {node['maxItems']} entries")
    if node.get("x-kubernetes-list-type") == "set":
        parts.append("no duplicates")
    if node.get("x-kubernetes-list-type") == "map":
        parts.append(f"unique {', '.join(node.get('x-kubernetes-list-map-keys', []))}")
    return "; ".join(parts)


def _code(text: str) -> str:
    """text as a Markdown code span, even when it holds a backtick."""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def reference_table(rows: list[FieldRow]) -> str:
    """Rows as a Markdown table."""
    lines = ["| field | type | default | allowed | meaning |", "| --- | --- | --- | --- | --- |"]
    for row in rows:
        default = row.default if row.default in ("", "required") else f"`{row.default}`"
        cells = (f"`{row.path}`", row.kind, default, row.allowed, row.description)
        # A pipe, even inside a code span, would end the cell.
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
