"""Generate the API's schemas and field reference from the models in function/api/models.py.

    .venv/bin/python scripts/generate-schemas.py           # rewrite the files below
    .venv/bin/python scripts/generate-schemas.py --check   # exit 1 if any is out of date

Writes:
- example/xrds/modeldeployment.yaml: the XRD's `spec` schema. Everything else
  in the file (names, printer columns, the hand-written `status` schema, the
  leading comment) is kept as it is.
- package/input/fn.rollout.dev_inputs.yaml: the Input CRD's schema.
- docs/reference.md: the field tables.

tests/test_schema.py runs the check, so a model change that is not regenerated
fails the tests.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from function.api.schema import (  # noqa: E402
    field_rows,
    input_schema,
    reference_table,
    spec_schema,
)

XRD = ROOT / "example" / "xrds" / "modeldeployment.yaml"
INPUT_CRD = ROOT / "package" / "input" / "fn.rollout.dev_inputs.yaml"
REFERENCE = ROOT / "docs" / "reference.md"

REFERENCE_INTRO = """\
# Field reference

Every field of a `ModelDeployment`'s spec and of the function's `Input`, with
its type, default and allowed values. This file is generated from the models
in `function/api/models.py` by `scripts/generate-schemas.py`, like the XRD's
and the Input CRD's schemas, so the three always agree; the tests fail when
they do not. What the fields make the function do is in
[rollout.md](rollout.md).

Numbers may be written as `3` or `3.0` (a whole number); `2.5` or `true` where
an integer is wanted is refused. A field set to `null` takes its default. The
function re-checks everything the API server checks, and refuses a bad spec
with one Fatal result naming the field ([rollout.md](rollout.md#bad-input)).

"""


def _dump(document: Any) -> str:
    return yaml.safe_dump(document, sort_keys=False, width=100, default_flow_style=False,
                          allow_unicode=True)


def _leading_comment(text: str) -> str:
    lines = []
    for line in text.splitlines(keepends=True):
        if not (line.startswith("#") or line.rstrip() == "---"):
            break
        lines.append(line)
    return "".join(lines)


def _with_schema(path: Path, place: Any) -> str:
    """The YAML file at path with its schema replaced by place(document)."""
    text = path.read_text()
    document = yaml.safe_load(text)
    place(document)
    return _leading_comment(text) + _dump(document)


def xrd_text() -> str:
    """The XRD as it should be: its spec schema generated from the models."""

    def place(document: dict[str, Any]) -> None:
        for version in document["spec"]["versions"]:
            version["schema"]["openAPIV3Schema"]["properties"]["spec"] = spec_schema()

    return _with_schema(XRD, place)


def input_crd_text() -> str:
    """The Input CRD as it should be: its schema generated from the models."""

    def place(document: dict[str, Any]) -> None:
        for version in document["spec"]["versions"]:
            version["schema"]["openAPIV3Schema"] = input_schema()

    return _with_schema(INPUT_CRD, place)


def reference_text() -> str:
    """docs/reference.md as it should be."""
    return (REFERENCE_INTRO
            + "## ModelDeployment spec\n\n"
            + "`serving.rollout.dev/v1alpha1`, kind `ModelDeployment`.\n\n"
            + reference_table(field_rows(spec_schema(), "spec"))
            + "\n## Function Input\n\n"
            + "`fn.rollout.dev/v1beta1`, kind `Input`, given in a Composition pipeline "
              "step's `input`.\n\n"
            + reference_table(field_rows(input_schema(), "input")[3:]))


def outputs() -> dict[Path, str]:
    """Every generated file and the text it should have."""
    return {XRD: xrd_text(), INPUT_CRD: input_crd_text(), REFERENCE: reference_text()}


def stale() -> list[str]:
    """A unified diff for every generated file that differs from its checked-in text."""
    diffs = []
    for path, wanted in outputs().items():
        current = path.read_text() if path.exists() else ""
        if current != wanted:
            name = str(path.relative_to(ROOT))
            diffs.append("".join(difflib.unified_diff(
                current.splitlines(keepends=True), wanted.splitlines(keepends=True),
                f"{name} (checked in)", f"{name} (generated)")))
    return diffs


def main() -> int:
    """Write the generated files, or with --check report the stale ones."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a generated file is out of date")
    args = parser.parse_args()
    if args.check:
        diffs = stale()
        for diff in diffs:
            sys.stdout.write(diff)
        if diffs:
            print("generate-schemas: out of date; run scripts/generate-schemas.py",
                  file=sys.stderr)
        return 1 if diffs else 0
    for path, text in outputs().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
