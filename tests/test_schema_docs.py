"""The documentation's links hold: every pointer into docs/ names a heading that exists.

Code comments point at sections of docs/rollout.md (`docs/rollout.md#draining`);
the docs link to each other. A renamed heading must not leave a pointer to
nowhere.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", markdown, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def pointers_in_code() -> list[tuple[str, str, str]]:
    """(file, doc, anchor) for every docs/<doc>.md#anchor, and #anchor listed after one."""
    found = []
    sources = [*ROOT.glob("function/**/*.py"), *ROOT.glob("tests/**/*.py"),
               *ROOT.glob("scripts/*"), *ROOT.glob("example/**/*.yaml"),
               ROOT / "README.md", ROOT / "example" / "README.md"]
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        for match in re.finditer(r"docs/(\w+)\.md((?:#[a-z0-9-]+|[:,]? (?:and )?#[a-z0-9-]+)+)",
                                 text):
            for anchor in re.findall(r"#([a-z0-9-]+)", match.group(2)):
                found.append((str(path.relative_to(ROOT)), match.group(1), anchor))
    return found


def test_code_points_at_sections_that_exist():
    pointers = pointers_in_code()
    assert len(pointers) >= 10
    for source, doc, anchor in pointers:
        assert anchor in anchors((DOCS / f"{doc}.md").read_text()), f"{source}: {doc}#{anchor}"


def test_links_between_docs_resolve():
    for page in DOCS.glob("*.md"):
        text = page.read_text()
        for target, anchor in re.findall(r"\]\(([\w./-]*?)(?:#([a-z0-9-]+))?\)", text):
            if target.startswith(("http", "../")):
                continue
            linked = page if not target else DOCS / target
            assert linked.exists(), f"{page.name}: {target}"
            if anchor:
                assert anchor in anchors(linked.read_text()), f"{page.name}: {target}#{anchor}"


def test_the_contract_covers_what_users_look_up():
    headings = anchors((DOCS / "rollout.md").read_text())
    assert {"resources-and-fields", "replica-states", "revisions", "rollingupdate", "bluegreen",
            "canary", "the-analysis-gate", "capacity-shortage", "rollback", "draining",
            "routes", "status-and-conditions", "bad-input"} <= headings
