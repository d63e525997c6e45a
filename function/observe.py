"""What Crossplane observed, reduced to the few typed fields the rollout reads.

Observed resources arrive as protobuf Structs (or dicts in tests); both are
read through the Mapping/Sequence protocols, touching only the fields below,
so the cost per resource is a handful of lookups rather than a conversion of
the whole object. Every field is optional and any field may hold the wrong
type: such data reads as unknown (None), never as a reason to act.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from datetime import UTC, datetime
from typing import Any

from function import naming


def get(source: Any, key: str) -> Any:
    """source[key] for a dict or a Struct, or None when absent or source is no mapping."""
    if isinstance(source, Mapping) and key in source:
        return source[key]
    return None


def get_path(source: Any, *keys: str) -> Any:
    for key in keys:
        source = get(source, key)
        if source is None:
            return None
    return source


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def as_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    if abs(value) > 2**53:
        return None
    return int(value)


def as_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp, always timezone-aware; None for anything else."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_plain(value: Any, depth: int = 0) -> Any:
    """A deep copy of a dict- or Struct-shaped value as plain Python values."""
    if depth > 64:
        return None
    if isinstance(value, Mapping):
        return {str(k): to_plain(value[k], depth + 1) for k in value}
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence):
        return [to_plain(v, depth + 1) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass(frozen=True)
class Condition:
    status: str | None
    reason: str | None = None
    message: str | None = None
    last_transition_time: datetime | None = None


def find_condition(status: Any, kind: str) -> Condition | None:
    conditions = get(status, "conditions")
    if isinstance(conditions, str) or not isinstance(conditions, Sequence):
        return None
    for entry in conditions:
        if get(entry, "type") == kind:
            return Condition(
                status=as_str(get(entry, "status")),
                reason=as_str(get(entry, "reason")),
                message=as_str(get(entry, "message")),
                last_transition_time=as_time(get(entry, "lastTransitionTime")),
            )
    return None


@dataclass(frozen=True)
class Health:
    state: str | None
    last_probe_time: datetime | None
    consecutive_failures: int | None


@dataclass(frozen=True)
class ObservedReplica:
    key: str
    revision: str
    index: int
    created: datetime | None = None
    desired_since: datetime | None = None
    draining_since: datetime | None = None
    drain_seconds: int | None = None
    template_hash: str | None = None
    ready: Condition | None = None
    health: Health | None = None
    failed: bool = False
    message: str | None = None
    url: str | None = None
    malformed: bool = False  # status present but not of the expected shape: unknown, not failed
    raw_spec: Any = None  # kept by reference; copied only for revisions missing from the spec

    @property
    def is_ready(self) -> bool:
        return self.ready is not None and self.ready.status == "True"

    @property
    def engine_port(self) -> int | None:
        return as_int(get_path(self.raw_spec, "engine", "port"))


@dataclass(frozen=True)
class ObservedEndpoint:
    key: str
    revision: str
    index: int
    backend_name: str | None
    ready: bool


@dataclass(frozen=True)
class ObservedRoute:
    accepted: bool


@dataclass(frozen=True)
class PriorRevisionRow:
    replicas: int | None
    available: int | None


@dataclass(frozen=True)
class PriorStatus:
    """The rollout's memory, as the function wrote it on an earlier call."""

    current_revision: str | None = None
    deploying_revision: str | None = None
    failed_revision: str | None = None
    phase: str | None = None
    rollout_strategy: str | None = None
    rollout_start_time: datetime | None = None
    last_progress_time: datetime | None = None
    revisions: Mapping[str, PriorRevisionRow] = field(default_factory=dict)
    progressing: Condition | None = None


@dataclass(frozen=True)
class Observed:
    replicas: tuple[ObservedReplica, ...] = ()
    endpoints: Mapping[tuple[str, int], ObservedEndpoint] = field(default_factory=dict)
    route: ObservedRoute | None = None
    preview_route: ObservedRoute | None = None


def read_replica(key: str, revision: str, index: int, resource: Any) -> ObservedReplica:
    metadata = get(resource, "metadata")
    annotations = get(metadata, "annotations")
    labels = get(metadata, "labels")
    status = get(resource, "status")
    health = get(status, "health")
    return ObservedReplica(
        key=key,
        revision=revision,
        index=index,
        created=as_time(get(metadata, "creationTimestamp")),
        desired_since=as_time(get(annotations, naming.ANNOTATION_DESIRED_SINCE)),
        draining_since=as_time(get(annotations, naming.ANNOTATION_DRAINING_SINCE)),
        drain_seconds=as_int(_int_text(get(annotations, naming.ANNOTATION_DRAIN_SECONDS))),
        template_hash=as_str(get(labels, naming.LABEL_TEMPLATE_HASH)),
        ready=find_condition(status, "Ready"),
        health=None
        if not isinstance(health, Mapping)
        else Health(
            state=as_str(get(health, "state")),
            last_probe_time=as_time(get(health, "lastProbeTime")),
            consecutive_failures=as_int(get(health, "consecutiveFailures")),
        ),
        failed=get(status, "phase") == "Failed",
        message=as_str(get(status, "message")),
        url=as_str(get_path(status, "address", "url")),
        malformed=_malformed_status(status),
        raw_spec=get(resource, "spec"),
    )


def _malformed_status(status: Any) -> bool:
    if status is None:
        return False
    if not isinstance(status, Mapping):
        return True
    if any(get(status, key) is not None and not isinstance(get(status, key), Mapping)
           for key in ("health", "address")):
        return True
    conditions = get(status, "conditions")
    if conditions is None:
        return False
    if isinstance(conditions, str) or not isinstance(conditions, Sequence):
        return True
    return any(not isinstance(c, Mapping) or not isinstance(get(c, "status"), str | None)
               for c in conditions)


def _int_text(value: Any) -> int | None:
    if isinstance(value, str) and value.isdigit() and len(value) <= 9:
        return int(value)
    return None


def read_endpoint(key: str, revision: str, index: int, resource: Any) -> ObservedEndpoint:
    status = get(resource, "status")
    backend = as_str(get_path(status, "routing", "backendName"))
    ready = find_condition(status, "Ready")
    return ObservedEndpoint(
        key=key,
        revision=revision,
        index=index,
        backend_name=backend or None,
        ready=ready is not None and ready.status == "True",
    )


def read_route(resource: Any) -> ObservedRoute:
    parents = get_path(resource, "status", "parents")
    accepted = False
    if isinstance(parents, Sequence) and not isinstance(parents, str):
        for parent in parents:
            condition = find_condition(parent, "Accepted")
            if condition is not None and condition.status == "True":
                accepted = True
                break
    return ObservedRoute(accepted=accepted)


def read_observed(resources: Iterable[tuple[str, Any]]) -> Observed:
    """Sort observed composed resources by key into replicas, endpoints and routes.

    resources yields (key, resource body). Keys this function does not compose
    are skipped: they belong to other pipeline steps.
    """
    replicas: list[ObservedReplica] = []
    endpoints: dict[tuple[str, int], ObservedEndpoint] = {}
    route = preview = None
    for key, body in resources:
        if key.startswith("replica-"):
            parsed = naming.parse_replica_key(key)
            if parsed:
                replicas.append(read_replica(key, parsed[0], parsed[1], body))
        elif key.startswith("endpoint-"):
            parsed = naming.parse_endpoint_key(key)
            if parsed:
                endpoints[parsed] = read_endpoint(key, parsed[0], parsed[1], body)
        elif key == naming.ROUTE_KEY:
            route = read_route(body)
        elif key == naming.PREVIEW_ROUTE_KEY:
            preview = read_route(body)
    replicas.sort(key=lambda r: (r.revision, r.index))
    return Observed(tuple(replicas), endpoints, route, preview)


def read_prior_status(status: Any) -> PriorStatus:
    rows: dict[str, PriorRevisionRow] = {}
    raw_rows = get(status, "revisions")
    if isinstance(raw_rows, Sequence) and not isinstance(raw_rows, str):
        for row in islice(raw_rows, 256):
            name = as_str(get(row, "name"))
            if name:
                rows[name] = PriorRevisionRow(
                    replicas=as_int(get(row, "replicas")),
                    available=as_int(get(row, "available")),
                )
    return PriorStatus(
        current_revision=as_str(get(status, "currentRevision")) or None,
        deploying_revision=as_str(get(status, "deployingRevision")) or None,
        failed_revision=as_str(get(status, "failedRevision")) or None,
        phase=as_str(get(status, "phase")),
        rollout_strategy=as_str(get(status, "rolloutStrategy")),
        rollout_start_time=as_time(get(status, "rolloutStartTime")),
        last_progress_time=as_time(get(status, "lastProgressTime")),
        revisions=rows,
        progressing=find_condition(status, "Progressing"),
    )
