"""Deterministic keys, names, labels and hashes of composed resources."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

GROUP = "serving.rollout.dev"
LABEL_DEPLOYMENT = f"{GROUP}/deployment"
LABEL_REVISION = f"{GROUP}/revision"
LABEL_INDEX = f"{GROUP}/replica-index"
LABEL_TEMPLATE_HASH = f"{GROUP}/template-hash"
ANNOTATION_DRAINING_SINCE = f"{GROUP}/draining-since"
ANNOTATION_DRAIN_SECONDS = f"{GROUP}/drain-seconds"
ANNOTATION_DESIRED_SINCE = f"{GROUP}/desired-since"

ROUTE_KEY = "route"
PREVIEW_ROUTE_KEY = "preview-route"

MAX_NAME = 63
MAX_INDEX = 999_999

_REPLICA_KEY = re.compile(r"^replica-([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)-(0|[1-9][0-9]{0,5})$")
_ENDPOINT_KEY = re.compile(r"^endpoint-([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)-(0|[1-9][0-9]{0,5})$")


def replica_key(revision: str, index: int) -> str:
    """The composition resource key of a replica: `replica-v2-4`."""
    return f"replica-{revision}-{index}"


def endpoint_key(revision: str, index: int) -> str:
    """The composition resource key of a replica's endpoint: `endpoint-v2-4`."""
    return f"endpoint-{revision}-{index}"


def parse_replica_key(key: str) -> tuple[str, int] | None:
    """(revision, index) of a replica key this function composes, else None."""
    match = _REPLICA_KEY.match(key)
    return (match.group(1), int(match.group(2))) if match else None


def parse_endpoint_key(key: str) -> tuple[str, int] | None:
    """(revision, index) of an endpoint key this function composes, else None."""
    match = _ENDPOINT_KEY.match(key)
    return (match.group(1), int(match.group(2))) if match else None


def _short_hash(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def bounded(name: str, limit: int = MAX_NAME) -> str:
    """name itself if it fits, else a prefix plus a hash of the whole, so it stays unique."""
    if len(name) <= limit:
        return name
    digest = _short_hash(name)
    return f"{name[: limit - len(digest) - 1].rstrip('-.')}-{digest}"


def replica_name(xr_name: str, revision: str, index: int) -> str:
    """`<xr>-<revision>-<index>`, at most 63 characters.

    Past 63 the deployment part is shortened and a hash of it added, keeping
    the revision and index readable: a 60-character XR name, revision v2,
    index 4 -> the first 45 characters of the name, `-`, 8 hex digits, `-v2-4`.
    """
    suffix = f"-{revision}-{index}"
    full = f"{xr_name}{suffix}"
    if len(full) <= MAX_NAME:
        return full
    # Keep the revision and index readable; shorten the deployment part.
    digest = _short_hash(xr_name)
    room = MAX_NAME - len(suffix) - len(digest) - 1
    return f"{xr_name[:room].rstrip('-.')}-{digest}{suffix}"


def preview_route_name(xr_name: str) -> str:
    """The preview HTTPRoute's name: `<xr>-preview`, bounded like any object name."""
    return bounded(f"{xr_name}-preview", 253)


def label_value(value: str) -> str:
    """Kubernetes label values are at most 63 characters."""
    return bounded(value)


def template_hash(revision_content: dict[str, Any]) -> str:
    """A short hash of a revision's content, stable across key order and number encoding."""
    return _short_hash(json.dumps(revision_content, sort_keys=True, separators=(",", ":")), 10)
