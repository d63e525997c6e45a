#!/usr/bin/env python3
"""Shift every timestamp in a scenario's YAML so the scenario plays out "now".

The example scenarios are snapshots taken at a fixed moment (their "as of"
time, example/scenarios/as-of). The function decides with the real clock:
warm-up budgets, health staleness, drain and progress deadlines are all
measured against now. Rendering a snapshot as recorded would therefore age
it: a replica that was still provisioning at the time of the snapshot would
count as failed hours later. This script moves every RFC 3339 timestamp by
(now - as-of), so the function sees exactly the situation the snapshot
describes, whenever it is rendered.

Usage: rebase-times.py --as-of 2026-11-22T10:05:00Z [--now RFC3339] SRC DST
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def shift(node: Any, delta: timedelta) -> Any:
    if isinstance(node, dict):
        return {key: shift(value, delta) for key, value in node.items()}
    if isinstance(node, list):
        return [shift(value, delta) for value in node]
    # PyYAML reads unquoted timestamps as datetimes; Kubernetes wants strings.
    if isinstance(node, datetime):
        moved = node if node.tzinfo else node.replace(tzinfo=UTC)
        return format_time(moved + delta)
    if isinstance(node, str) and TIMESTAMP.match(node):
        return format_time(parse_time(node) + delta)
    return node


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--as-of", required=True, help="the moment the snapshot describes")
    parser.add_argument("--now", help="render as of this time instead of the real clock")
    parser.add_argument("src")
    parser.add_argument("dst")
    args = parser.parse_args(argv)

    now = parse_time(args.now) if args.now else datetime.now(UTC)
    delta = now.replace(microsecond=0) - parse_time(args.as_of)

    with open(args.src, encoding="utf-8") as source:
        documents = [doc for doc in yaml.safe_load_all(source) if doc is not None]
    with open(args.dst, "w", encoding="utf-8") as target:
        yaml.safe_dump_all(
            [shift(doc, delta) for doc in documents],
            target,
            default_flow_style=False,
            sort_keys=False,
            explicit_start=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
