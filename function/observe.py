"""What Crossplane observed, reduced to the few typed fields the rollout reads.

Observed resources arrive as protobuf Structs (or dicts in tests), touching
only the fields below, so the cost per resource is a handful of lookups rather
than a conversion of the whole object. Dicts are read through the
Mapping/Sequence protocols; Structs and ListValues are read straight from their
`fields`/`values` (`string_value` or `struct_value` first, `WhichOneof` only when
that does not settle the kind), which gives exactly what the Mapping protocol
would (Struct.__getitem__) at a fraction of the cost: at thousands of replicas
these lookups are most of the work of reading a request. Every field is
optional and any field may hold the wrong type: such data reads as unknown
(None), never as a reason to act.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from google.protobuf import struct_pb2

from function import naming

_STRUCT = struct_pb2.Struct
_LIST_VALUE = struct_pb2.ListValue
_FIELDS = type(struct_pb2.Struct().fields)
_TEXT_OR_NONE = (str, type(None))
_NUMBER = (int, float)  # a tuple: `int | float` would build a union on every call
_MAX_DEPTH = 64  # to_plain copies no deeper: the spec's free-form fields stop at 16 levels
_MAX_TIME_LENGTH = 64  # an RFC 3339 timestamp is at most 35 characters
_ISOFORMAT_FROM_YEAR = 1000  # from this year on, isoformat gives the same text as strftime
_MAX_DRAIN_DIGITS = 9  # drain-seconds annotation: up to 999999999 s, far past any drain


def _value(value: struct_pb2.Value) -> Any:
    """A Value as Struct.__getitem__ returns it: str, float, bool, None, Struct or ListValue."""
    kind = value.WhichOneof("kind")
    if kind is None:
        raise ValueError("Value not set")
    return None if kind == "null_value" else getattr(value, kind)


def _fields_of(source: Any) -> Any:
    """What keys are looked up in: a Struct's fields, any other mapping itself, else None."""
    if type(source) is _STRUCT:
        return source.fields
    if isinstance(source, Mapping):
        return source
    return None


def _at(fields: Any, key: str) -> Any:
    """get(source, key), given _fields_of(source)."""
    if fields is None or key not in fields:
        return None
    value = fields[key]
    return _value(value) if type(fields) is _FIELDS else value


def _map_at(fields: Any, key: str) -> Any:
    """_fields_of(_at(fields, key)), quickest when the value is a non-empty Struct."""
    if fields is None or key not in fields:
        return None
    value = fields[key]
    if type(fields) is _FIELDS:
        # A Value of another kind reads as an empty default Struct; only then is the
        # kind looked up.
        inner = value.struct_value.fields
        return inner if inner else _fields_of(_value(value))
    return _fields_of(value)


def _text_at(fields: Any, key: str) -> Any:
    """_at(fields, key), quickest when the value is a non-empty string."""
    if fields is None or key not in fields:
        return None
    value = fields[key]
    if type(fields) is _FIELDS:
        text = value.string_value
        return text if text else _value(value)
    return value


def _value_fields(value: struct_pb2.Value) -> Any:
    """_fields_of(_value(value)), quickest when the value is a non-empty Struct."""
    inner = value.struct_value.fields
    return inner if inner else _fields_of(_value(value))


def _element_maps(value: Any) -> Iterable[Any] | None:
    """_fields_of each of _elements(value), one at a time; None when value is no list."""
    if type(value) is _LIST_VALUE:
        return map(_value_fields, value.values)
    if isinstance(value, str) or not isinstance(value, Sequence):
        return None
    return map(_fields_of, value)


def _elements(value: Any) -> Iterable[Any] | None:
    """The items of a list or ListValue, one at a time; None for anything else (str too)."""
    if type(value) is _LIST_VALUE:
        return map(_value, value.values)
    if isinstance(value, str) or not isinstance(value, Sequence):
        return None
    return value


def get(source: Any, key: str) -> Any:
    """source[key] for a dict or a Struct, or None when absent or source is no mapping."""
    return _at(_fields_of(source), key)


def get_path(source: Any, *keys: str) -> Any:
    """get, key by key; None as soon as one step is absent or not a mapping.

    Example: get_path(xr, "status", "phase") is xr.status.phase.
    """
    for key in keys:
        source = get(source, key)
        if source is None:
            return None
    return source


def as_str(value: Any) -> str | None:
    """value when it is a str, else None."""
    return value if isinstance(value, str) else None


def as_int(value: Any) -> int | None:
    """value as an int when it is a whole number of at most 2**53 in magnitude, else None.

    A bool is refused; a whole double is accepted, since a Struct holds every
    number as one: 3.0 -> 3, 2.5 -> None, 2.0**54 -> None, True -> None.
    """
    if isinstance(value, bool) or not isinstance(value, _NUMBER):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    if abs(value) > 2**53:
        return None
    return int(value)


def as_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp, always timezone-aware; None for anything else."""
    if not isinstance(value, str) or len(value) > _MAX_TIME_LENGTH:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@functools.lru_cache(maxsize=4096)
def format_time(value: datetime) -> str:
    """value as an RFC 3339 UTC timestamp to the second: 2026-11-22T10:04:30Z.

    Fractions of a second are dropped and other offsets converted:
    10:04:30.9+02:00 -> 08:04:30Z.
    """
    # Cached: replicas created by the same call share their desired-since time.
    utc = value.astimezone(UTC)
    if utc.year >= _ISOFORMAT_FROM_YEAR:  # isoformat is several times cheaper
        return utc.isoformat(timespec="seconds")[:19] + "Z"
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def to_plain(value: Any, depth: int = 0) -> Any:
    """A deep copy of a dict- or Struct-shaped value as plain Python values."""
    if depth > _MAX_DEPTH:
        return None
    kind = type(value)
    if kind is _STRUCT or kind is _LIST_VALUE:
        return _plain_message(value, depth)
    if isinstance(value, Mapping):
        return {str(k): to_plain(value[k], depth + 1) for k in value}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [to_plain(v, depth + 1) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value  # str, int, bool, None and a fractional float as they are


def _plain_message(value: struct_pb2.Struct | struct_pb2.ListValue, depth: int) -> Any:
    """to_plain of a Struct (a dict) or a ListValue (a list).

    Read through fields or values and each Value's kind: the Mapping protocol
    gives the same values at several times the cost (the spec is copied every call).
    """
    if type(value) is _STRUCT:
        return {key: _plain_value(item, depth + 1) for key, item in value.fields.items()}
    return [_plain_value(item, depth + 1) for item in value.values]


def _plain_value(value: struct_pb2.Value, depth: int) -> Any:
    """to_plain(_value(value), depth)."""
    if depth > _MAX_DEPTH:
        return None
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        number = value.number_value
        return int(number) if number.is_integer() else number
    if kind in ("struct_value", "list_value"):
        return to_plain(getattr(value, kind), depth)
    return _value(value)  # bool, null, or no kind at all (an error, as from the Mapping)


# The observed objects are plain slotted dataclasses, read-only by convention:
# a frozen dataclass's __init__ sets each field through object.__setattr__, and
# thousands are made per call. Slots also keep them a quarter of the size.
@dataclass(slots=True)
class Condition:
    """A status condition as read: status ("True", "False", "Unknown"; None when
    unreadable), and its reason, message and lastTransitionTime when present.
    """

    status: str | None
    reason: str | None = None
    message: str | None = None
    last_transition_time: datetime | None = None


def find_condition(status: Any, kind: str) -> Condition | None:
    """The first condition of type `kind` in status.conditions, or None."""
    return _find_condition(get(status, "conditions"), kind)


def _find_condition(conditions: Any, kind: str) -> Condition | None:
    entries = _element_maps(conditions)
    if entries is None:
        return None
    return _find_condition_in(entries, kind)


def _find_condition_in(entries: Iterable[Any], kind: str) -> Condition | None:
    for fields in entries:
        if _text_at(fields, "type") == kind:
            return _condition(fields, _text_at(fields, "status"))
    return None


def _condition_status(conditions: Any, kind: str) -> str | None:
    """find_condition(...).status, given the conditions; None also when there is none."""
    entries = _element_maps(conditions)
    if entries is not None:
        for fields in entries:
            if _text_at(fields, "type") == kind:
                return as_str(_text_at(fields, "status"))
    return None


def _condition(fields: Any, status: Any) -> Condition:
    """The condition in fields, whose status was read already."""
    return Condition(
        status=as_str(status),
        reason=as_str(_text_at(fields, "reason")),
        message=as_str(_text_at(fields, "message")),
        last_transition_time=as_time(_text_at(fields, "lastTransitionTime")),
    )


@dataclass(slots=True)
class HealthReport:
    """A replica's status.health: state (Healthy or Unhealthy) and when it was last probed."""

    state: str | None
    last_probe_time: datetime | None


@dataclass(slots=True)
class Metrics:
    """A replica's status.metrics: service levels over the last window_seconds.

    Published by the platform's metrics adapter (docs/rollout.md#the-analysis-gate);
    whether they are recent enough to use is the analysis gate's to judge.
    """

    window_seconds: int | None
    observed_time: datetime | None
    requests: int
    errors: int
    ttft_p95_seconds: float | None
    itl_p95_seconds: float | None


@dataclass(slots=True)
class ObservedReplica:
    """What the rollout reads of one observed replica (docs/rollout.md#resources-and-fields).

    revision and index come from its key; every other field is None (or False)
    when absent or unreadable. desired_since, draining_since, drain_seconds and
    template_hash are what an earlier response wrote in its annotations and labels.
    """

    key: str
    revision: str
    index: int
    created: datetime | None = None
    desired_since: datetime | None = None
    draining_since: datetime | None = None
    drain_seconds: int | None = None
    template_hash: str | None = None
    ready: Condition | None = None
    # status.conditions[type=Scheduled]: False while no accelerator could be found for it
    scheduled: Condition | None = None
    health: HealthReport | None = None
    failed: bool = False
    message: str | None = None  # status.message, read only of a Failed replica: why it failed
    url: str | None = None
    malformed: bool = False  # status present but not of the expected shape: unknown, not failed
    raw_spec: Any = None  # kept by reference; copied only for revisions missing from the spec
    # status.metrics' fields, kept by reference and read (read_metrics) only by the
    # analysis gate, for the few replicas it judges; None when absent or no object.
    raw_metrics: Any = None

    @property
    def is_ready(self) -> bool:
        """Whether its Ready condition's status is "True"."""
        return self.ready is not None and self.ready.status == "True"


@dataclass(slots=True)
class ObservedEndpoint:
    """What the rollout reads of one observed endpoint: the backendName it publishes
    (None until it publishes one) and whether it is Ready.
    """

    key: str
    revision: str
    index: int
    backend_name: str | None
    ready: bool


@dataclass(frozen=True)
class ObservedRoute:
    """What the rollout reads of an observed HTTPRoute: whether a parent accepted it,
    and the backendRef names its rules carry now.
    """

    accepted: bool
    backends: frozenset[str] = frozenset()  # backendRef names the route carries now


@dataclass(frozen=True)
class PriorRevisionRow:
    """One row of status.revisions as written before; None where it is unreadable."""

    replicas: int | None
    available: int | None


@dataclass(frozen=True)
class PriorCanary:
    """status.canary as written before: the step in force, when it started, the weight routed."""

    step: int | None
    step_start_time: datetime | None
    weight: int | None


@dataclass(frozen=True)
class PriorAnalysis:
    """status.analysis as written on an earlier call (docs/rollout.md#the-analysis-gate)."""

    verdict: str | None
    message: str | None
    failing_since: datetime | None
    evaluated_time: datetime | None


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
    canary: PriorCanary | None = None
    analysis: PriorAnalysis | None = None


@dataclass(frozen=True)
class Observed:
    """The observed composed resources the function reads, by kind.

    replicas sorted by (revision, index); endpoints keyed by (revision, index); a
    route None when it is not observed.
    """

    replicas: tuple[ObservedReplica, ...] = ()
    endpoints: Mapping[tuple[str, int], ObservedEndpoint] = field(default_factory=dict)
    route: ObservedRoute | None = None
    preview_route: ObservedRoute | None = None


def read_replica(key: str, revision: str, index: int, resource: Any) -> ObservedReplica:
    """The ObservedReplica of one observed replica (a Struct, or a dict in tests).

    A Struct of the usual shape is read by _read_regular_replica; anything else,
    including a Struct with one field of another shape, by _read_replica, which
    checks every field's type. Both give the same result.
    """
    if type(resource) is _STRUCT:
        with contextlib.suppress(_Irregular):
            return _read_regular_replica(key, revision, index, resource.fields)
    return _read_replica(key, revision, index, resource)


def _read_replica(key: str, revision: str, index: int, resource: Any) -> ObservedReplica:
    """read_replica for any shape of data: every field is checked for its type."""
    fields = _fields_of(resource)
    metadata = _map_at(fields, "metadata")
    annotations = _map_at(metadata, "annotations")
    labels = _map_at(metadata, "labels")
    status = _map_at(fields, "status")
    health = _map_at(status, "health")
    address = _map_at(status, "address")
    phase = _text_at(status, "phase")
    state = _text_at(health, "state")
    probed = _text_at(health, "lastProbeTime")
    ready, malformed = _scan_conditions(_at(status, "conditions"), "Ready")
    if status is None:
        malformed = _at(fields, "status") is not None  # present, but not an object
    elif not malformed:
        malformed = ((health is None and _at(status, "health") is not None)
                     or (address is None and _at(status, "address") is not None)
                     or not isinstance(phase, _TEXT_OR_NONE)
                     or not isinstance(state, _TEXT_OR_NONE)
                     or not isinstance(probed, _TEXT_OR_NONE))
    return ObservedReplica(
        key=key,
        revision=revision,
        index=index,
        created=as_time(_text_at(metadata, "creationTimestamp")),
        desired_since=as_time(_text_at(annotations, naming.ANNOTATION_DESIRED_SINCE)),
        draining_since=as_time(_text_at(annotations, naming.ANNOTATION_DRAINING_SINCE)),
        drain_seconds=as_int(_int_text(_text_at(annotations, naming.ANNOTATION_DRAIN_SECONDS))),
        template_hash=as_str(_text_at(labels, naming.LABEL_TEMPLATE_HASH)),
        ready=ready,
        scheduled=_find_condition(_at(status, "conditions"), "Scheduled"),
        health=None
        if health is None
        else HealthReport(
            state=as_str(state),
            last_probe_time=as_time(probed),
        ),
        failed=phase == "Failed",
        message=as_str(_text_at(status, "message")) if phase == "Failed" else None,
        url=as_str(_text_at(address, "url")),
        malformed=malformed,
        raw_spec=_at(fields, "spec"),
        raw_metrics=_map_at(status, "metrics"),
    )


def _scan_conditions(conditions: Any, kind: str) -> tuple[Condition | None, bool]:
    """find_condition(kind) in a status's conditions, and whether they are malformed.

    Malformed: not a list, or an entry that is no object or whose type or status
    is no string.
    """
    entries = _element_maps(conditions)
    if entries is None:
        return None, conditions is not None
    found = None
    for fields in entries:
        status = _text_at(fields, "status")
        named = _text_at(fields, "type")
        if found is None and named == kind:
            found = _condition(fields, status)
        if (fields is None or not isinstance(status, _TEXT_OR_NONE)
                or not isinstance(named, _TEXT_OR_NONE)):
            if found is None:
                found = _find_condition_in(entries, kind)
            return found, True
    return found, False


class _Irregular(Exception):
    """A field read by the regular-shape readers is not of the usual kind."""


def _string(value: struct_pb2.Value) -> str:
    """A Value holding a non-empty string; anything else is irregular."""
    text = value.string_value
    if not text:
        raise _Irregular
    return text


def _object(value: struct_pb2.Value) -> Any:
    """The fields of a Value holding a non-empty Struct; anything else is irregular."""
    fields = value.struct_value.fields
    if not fields:
        raise _Irregular
    return fields


def _regular_list(value: struct_pb2.Value) -> Any:
    """The values of a Value holding a non-empty list; anything else is irregular."""
    values = value.list_value.values
    if not values:
        raise _Irregular
    return values


def _read_regular_replica(key: str, revision: str, index: int, fields: Any) -> ObservedReplica:
    """_read_replica of a Struct's fields of the usual shape; _Irregular when not.

    Almost every observed replica has the usual shape: text where text is
    expected, non-empty objects where objects are. Reading that shape needs no
    type checks beyond string_value/struct_value being non-empty, and no second
    look-up per field. Anything else (an empty string or object, a number where
    text belongs, an absent list) is left to _read_replica, so the result is
    the same either way.
    """
    replica = ObservedReplica(
        key=key,
        revision=revision,
        index=index,
    )
    if "metadata" in fields:
        _read_regular_metadata(replica, _object(fields["metadata"]))
    if "status" in fields:
        _read_regular_status(replica, _object(fields["status"]))
    if "spec" in fields:
        replica.raw_spec = _value(fields["spec"])
    return replica


def _read_regular_metadata(replica: ObservedReplica, metadata: Any) -> None:
    """Set replica's creation time and what earlier responses wrote in its annotations and
    labels, from metadata of the usual shape; _Irregular when not.
    """
    if "creationTimestamp" in metadata:
        replica.created = as_time(_string(metadata["creationTimestamp"]))
    if "annotations" in metadata:
        annotations = _object(metadata["annotations"])
        if naming.ANNOTATION_DESIRED_SINCE in annotations:
            replica.desired_since = as_time(_string(annotations[naming.ANNOTATION_DESIRED_SINCE]))
        if naming.ANNOTATION_DRAINING_SINCE in annotations:
            replica.draining_since = as_time(
                _string(annotations[naming.ANNOTATION_DRAINING_SINCE]))
        if naming.ANNOTATION_DRAIN_SECONDS in annotations:
            replica.drain_seconds = _int_text(
                _string(annotations[naming.ANNOTATION_DRAIN_SECONDS]))
    if "labels" in metadata:
        labels = _object(metadata["labels"])
        if naming.LABEL_TEMPLATE_HASH in labels:
            replica.template_hash = _string(labels[naming.LABEL_TEMPLATE_HASH])


def _read_regular_status(replica: ObservedReplica, status: Any) -> None:
    """Set replica's conditions, health, url, failure and raw metrics from a status of
    the usual shape; _Irregular when not.
    """
    if "conditions" in status:
        replica.ready, replica.scheduled = _regular_conditions(
            _regular_list(status["conditions"]))
    if "health" in status:
        replica.health = _regular_health(_object(status["health"]))
    if "address" in status:
        address = _object(status["address"])
        if "url" in address:
            replica.url = _string(address["url"])
    if "phase" in status:
        replica.failed = _string(status["phase"]) == "Failed"
        if replica.failed and "message" in status:
            replica.message = _string(status["message"])
    if "metrics" in status:
        replica.raw_metrics = _object(status["metrics"])


def _regular_conditions(entries: Any) -> tuple[Condition | None, Condition | None]:
    """The first Ready and the first Scheduled condition in a list of usual conditions."""
    ready = scheduled = None
    for entry in entries:
        fields = _object(entry)
        named = _string(fields["type"]) if "type" in fields else None
        status = _string(fields["status"]) if "status" in fields else None
        if named == "Ready":
            if ready is None:
                ready = _regular_condition(fields, status)
        elif named == "Scheduled" and scheduled is None:
            scheduled = _regular_condition(fields, status)
    return ready, scheduled


def _regular_condition(fields: Any, status: str | None) -> Condition:
    """The usual condition in fields, whose status was read already."""
    return Condition(
        status=status,
        reason=_string(fields["reason"]) if "reason" in fields else None,
        message=_string(fields["message"]) if "message" in fields else None,
        last_transition_time=as_time(_string(fields["lastTransitionTime"]))
        if "lastTransitionTime" in fields else None,
    )


def _regular_health(fields: Any) -> HealthReport:
    return HealthReport(
        state=_string(fields["state"]) if "state" in fields else None,
        last_probe_time=as_time(_string(fields["lastProbeTime"]))
        if "lastProbeTime" in fields else None,
    )


def read_metrics(fields: Any) -> Metrics | None:
    """A replica's status.metrics, from the fields kept in ObservedReplica.raw_metrics.

    None when there are none or they are not of the contract's shape
    (docs/rollout.md#the-analysis-gate): `requests` and `errors` whole numbers with
    0 <= errors <= requests, `observedTime` a timestamp, `windowSeconds` (optional)
    a whole number >= 0, the p95s (optional) finite numbers >= 0. Unusable data,
    never a reason to act. Example: {requests: 1520, errors: 62, observedTime:
    "2026-11-22T10:04:30Z", ttftP95Seconds: 1.8} -> Metrics(requests=1520,
    errors=62, ttft_p95_seconds=1.8, itl_p95_seconds=None, window_seconds=None, ...).
    """
    if fields is None:
        return None
    if type(fields) is _FIELDS:
        with contextlib.suppress(_Irregular):
            return _read_regular_metrics(fields)
    requests = as_int(_at(fields, "requests"))
    errors = as_int(_at(fields, "errors"))
    observed = as_time(_text_at(fields, "observedTime"))
    if requests is None or errors is None or observed is None or not 0 <= errors <= requests:
        return None
    window = _at(fields, "windowSeconds")
    window_seconds = as_int(window)
    if window is not None and (window_seconds is None or window_seconds < 0):
        return None
    ttft = _at(fields, "ttftP95Seconds")
    itl = _at(fields, "itlP95Seconds")
    if not (_seconds_or_none(ttft) and _seconds_or_none(itl)):
        return None
    return Metrics(window_seconds=window_seconds, observed_time=observed, requests=requests,
                   errors=errors,
                   ttft_p95_seconds=None if ttft is None else float(ttft),
                   itl_p95_seconds=None if itl is None else float(itl))


def _read_regular_metrics(fields: Any) -> Metrics | None:
    """read_metrics of a Struct's fields of the usual shape; _Irregular when not.

    Numbers are read straight from number_value (its kind looked up only when it
    reads 0); a number out of range or of another kind is left to read_metrics'
    careful path, so the result is the same either way.
    """
    if "requests" not in fields or "errors" not in fields or "observedTime" not in fields:
        return None
    requests = _count(fields["requests"])
    errors = _count(fields["errors"])
    observed = as_time(_string(fields["observedTime"]))
    if observed is None or errors > requests:
        return None
    return Metrics(
        window_seconds=_count(fields["windowSeconds"]) if "windowSeconds" in fields else None,
        observed_time=observed,
        requests=requests,
        errors=errors,
        ttft_p95_seconds=_seconds(fields["ttftP95Seconds"])
        if "ttftP95Seconds" in fields else None,
        itl_p95_seconds=_seconds(fields["itlP95Seconds"]) if "itlP95Seconds" in fields else None,
    )


def _number(value: struct_pb2.Value) -> float:
    """A Value holding a number; anything else is irregular."""
    number = value.number_value
    if not number and value.WhichOneof("kind") != "number_value":
        raise _Irregular
    return number


def _count(value: struct_pb2.Value) -> int:
    """A Value holding a whole number from 0 to 2**53; anything else is irregular."""
    number = _number(value)
    if not 0 <= number <= 2**53 or not number.is_integer():
        raise _Irregular
    return int(number)


def _seconds(value: struct_pb2.Value) -> float:
    """A Value holding a finite number >= 0; anything else is irregular."""
    number = _number(value)
    if not 0 <= number < math.inf:
        raise _Irregular
    return number


def _seconds_or_none(value: Any) -> bool:
    """Whether value is absent or a finite number of seconds >= 0."""
    return value is None or (not isinstance(value, bool) and isinstance(value, _NUMBER)
                             and 0 <= value < math.inf)


def _int_text(value: Any) -> int | None:
    if isinstance(value, str) and value.isdigit() and len(value) <= _MAX_DRAIN_DIGITS:
        return int(value)
    return None


def read_endpoint(key: str, revision: str, index: int, resource: Any) -> ObservedEndpoint:
    """The ObservedEndpoint of one observed endpoint, read like read_replica."""
    if type(resource) is _STRUCT:
        with contextlib.suppress(_Irregular):
            return _read_regular_endpoint(key, revision, index, resource.fields)
    return _read_endpoint(key, revision, index, resource)


def _read_regular_endpoint(key: str, revision: str, index: int, fields: Any) -> ObservedEndpoint:
    """_read_endpoint of a Struct of the usual shape (see _read_regular_replica)."""
    backend = None
    ready = False
    if "status" in fields:
        status = _object(fields["status"])
        if "routing" in status:
            routing = _object(status["routing"])
            if "backendName" in routing:
                backend = _string(routing["backendName"])
        if "conditions" in status:
            for entry in _regular_list(status["conditions"]):
                condition = _object(entry)
                if "type" in condition and _string(condition["type"]) == "Ready":
                    ready = "status" in condition and _string(condition["status"]) == "True"
                    break
    return ObservedEndpoint(key=key, revision=revision, index=index, backend_name=backend,
                            ready=ready)


def _read_endpoint(key: str, revision: str, index: int, resource: Any) -> ObservedEndpoint:
    status = _map_at(_fields_of(resource), "status")
    backend = as_str(_text_at(_map_at(status, "routing"), "backendName"))
    return ObservedEndpoint(
        key=key,
        revision=revision,
        index=index,
        backend_name=backend or None,
        ready=_condition_status(_at(status, "conditions"), "Ready") == "True",
    )


def read_route(resource: Any) -> ObservedRoute:
    """The ObservedRoute of an observed HTTPRoute: accepted when any entry of
    status.parents has Accepted=True.
    """
    parents = _elements(get_path(resource, "status", "parents"))
    accepted = False
    if parents is not None:
        for parent in parents:
            condition = find_condition(parent, "Accepted")
            if condition is not None and condition.status == "True":
                accepted = True
                break
    return ObservedRoute(accepted=accepted, backends=frozenset(_backend_names(resource)))


def _backend_names(resource: Any) -> Iterable[str]:
    if type(resource) is _STRUCT:
        with contextlib.suppress(_Irregular):
            return _regular_backend_names(resource.fields)
    return _any_backend_names(resource)


def _regular_backend_names(fields: Any) -> list[str]:
    """_any_backend_names of a Struct of the usual shape (see _read_regular_replica)."""
    if "spec" not in fields:
        return []
    spec = _object(fields["spec"])
    if "rules" not in spec:
        return []
    names = []
    for rule in _regular_list(spec["rules"]):
        rule_fields = _object(rule)
        if "backendRefs" in rule_fields:
            for ref in _regular_list(rule_fields["backendRefs"]):
                ref_fields = _object(ref)
                if "name" in ref_fields:
                    names.append(_string(ref_fields["name"]))
    return names


def _any_backend_names(resource: Any) -> Iterator[str]:
    for rule in _elements(get_path(resource, "spec", "rules")) or ():
        for ref in _elements(get(rule, "backendRefs")) or ():
            name = get(ref, "name")
            if isinstance(name, str):
                yield name


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
    """The PriorStatus the function wrote on an earlier call, from the XR's status.

    Unreadable fields are unknown (None) and empty revision names unset. At most
    256 status.revisions rows are read, so the work stays bounded.
    """
    rows: dict[str, PriorRevisionRow] = {}
    raw_rows = _elements(get(status, "revisions"))
    if raw_rows is not None:
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
        canary=read_prior_canary(get(status, "canary")),
        analysis=_read_prior_analysis(get(status, "analysis")),
    )


def _read_prior_analysis(analysis: Any) -> PriorAnalysis | None:
    fields = _fields_of(analysis)
    if fields is None:
        return None
    return PriorAnalysis(
        verdict=as_str(_at(fields, "verdict")),
        message=as_str(_at(fields, "message")),
        failing_since=as_time(_at(fields, "failingSince")),
        evaluated_time=as_time(_at(fields, "evaluatedTime")),
    )


def read_prior_canary(canary: Any) -> PriorCanary | None:
    """status.canary, or None when absent; unreadable fields are unknown (None)."""
    if canary is None:
        return None
    return PriorCanary(step=as_int(get(canary, "step")),
                       step_start_time=as_time(get(canary, "stepStartTime")),
                       weight=as_int(get(canary, "weight")))
