"""The ModelDeployment spec and the function Input as typed, validated models.

Validation reads plain Python values (dicts, lists, str, float/int, bool) and
either returns a frozen model with every default filled in or raises
InvalidSpec naming the first offending field. It never trusts types: the
request arrives as a protobuf Struct, where every number is a double and any
field may hold any JSON type.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_REPLICAS = 10_000
MAX_REVISIONS = 32
MAX_REVISION_NAME = 30
MAX_SECONDS = 366 * 24 * 3600
MAX_LIST = 32
MAX_STRING = 1024
MAX_FREE_FORM_DEPTH = 16
MAX_FREE_FORM_NODES = 4096
MAX_FREE_FORM_STRING = 64 * 1024
MAX_SURGE_PERCENT = 1000

DEFAULT_PORT = 8000
DEFAULT_WARMUP_SECONDS = 600

MAX_CANARY_STEPS = 32
MAX_HEADER_NAME = 256
MAX_HEADER_VALUE = 4096
MAX_DURATION = 64

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
PERCENT = re.compile(r"^(0|[1-9][0-9]{0,3})%$")
# An HTTP header name: an RFC 7230 token.
HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# A Gateway API Duration (GEP-2257).
DURATION = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")

ROLLING_UPDATE = "RollingUpdate"
BLUE_GREEN = "BlueGreen"
CANARY = "Canary"
STRATEGY_TYPES = (ROLLING_UPDATE, BLUE_GREEN, CANARY)
WAIT = "Wait"
REPLACE = "Replace"
CAPACITY_SHORTAGE_ACTIONS = (WAIT, REPLACE)
CLEANUP_STATUSES = ("Unhealthy", "Degraded")
SET_WEIGHT = "setWeight"
PAUSE = "pause"
ANALYSIS = "analysis"
CANARY_STEP_KINDS = (SET_WEIGHT, PAUSE, ANALYSIS)


class InvalidSpec(ValueError):
    """The request cannot be acted on; the message names the field."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True)
class HealthCheck:
    path: str
    port: int
    interval_seconds: int = 10
    timeout_seconds: int = 5
    initial_delay_seconds: int = DEFAULT_WARMUP_SECONDS
    failure_threshold: int = 3
    expected_status: int = 200

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "port": self.port,
            "intervalSeconds": self.interval_seconds,
            "timeoutSeconds": self.timeout_seconds,
            "initialDelaySeconds": self.initial_delay_seconds,
            "failureThreshold": self.failure_threshold,
            "expectedStatus": self.expected_status,
        }


@dataclass(frozen=True)
class Revision:
    name: str
    model: dict[str, Any]
    engine: dict[str, Any]  # port always filled in
    health_check: HealthCheck | None

    @property
    def port(self) -> int:
        return int(self.engine["port"])

    @property
    def warmup_seconds(self) -> int:
        if self.health_check is None:
            return DEFAULT_WARMUP_SECONDS
        return self.health_check.initial_delay_seconds


@dataclass(frozen=True)
class IntOrPercent:
    value: int
    percent: bool

    def __str__(self) -> str:
        return f"{self.value}%" if self.percent else str(self.value)


@dataclass(frozen=True)
class CanaryStep:
    """One canary step: exactly one of setWeight, pause or analysis."""

    kind: str  # SET_WEIGHT, PAUSE or ANALYSIS
    weight: int | None = None  # setWeight: percent of main-route traffic, 0..100
    # pause: seconds, or None for a manual pause (`pause: {}`); analysis: seconds (default 0)
    duration_seconds: int | None = None


@dataclass(frozen=True)
class HeaderRoute:
    """Requests carrying this header with exactly this value go to the canary only."""

    name: str
    value: str


@dataclass(frozen=True)
class Canary:
    steps: tuple[CanaryStep, ...]
    max_surge: IntOrPercent = IntOrPercent(25, percent=True)
    max_unavailable: IntOrPercent = IntOrPercent(0, percent=False)
    on_capacity_shortage: str = WAIT
    capacity_wait_seconds: int = 120
    header_route: HeaderRoute | None = None


@dataclass(frozen=True)
class Analysis:
    """The SLO gate: limits on the deploying revision's metrics."""

    min_requests: int = 100
    max_error_rate: float = 0.01
    max_ttft_p95_seconds: float | None = None
    max_itl_p95_seconds: float | None = None
    max_ratio_to_baseline: float | None = None
    failure_tolerance_seconds: int = 60


@dataclass(frozen=True)
class Strategy:
    type: str = ROLLING_UPDATE
    max_surge: IntOrPercent = IntOrPercent(25, percent=True)
    max_unavailable: IntOrPercent = IntOrPercent(0, percent=False)
    auto_promote: bool = False
    promote_delay_seconds: int = 0
    scale_down_delay_seconds: int = 30
    on_capacity_shortage: str = WAIT
    capacity_wait_seconds: int = 120
    canary: Canary | None = None
    analysis: Analysis | None = None


@dataclass(frozen=True)
class PreviewRoute:
    hostnames: tuple[str, ...]
    path_prefix: str = "/"


@dataclass(frozen=True)
class RouteTimeouts:
    """Gateway API rule timeouts, as Duration strings, copied to every rule."""

    request: str | None = None
    backend_request: str | None = None


@dataclass(frozen=True)
class Route:
    parent_refs: tuple[dict[str, Any], ...]
    hostnames: tuple[str, ...]
    path_prefix: str = "/"
    preview: PreviewRoute | None = None
    timeouts: RouteTimeouts | None = None


@dataclass(frozen=True)
class HealthPolicy:
    cleanup_target_statuses: frozenset[str] = frozenset({"Unhealthy"})
    status_ttl_seconds: int = 120


@dataclass(frozen=True)
class Spec:
    replicas: int
    revisions: tuple[Revision, ...]
    active_revision: str
    strategy: Strategy = field(default_factory=Strategy)
    promote: str | None = None
    progress_deadline_seconds: int = 1800
    min_ready_seconds: int = 0
    drain_seconds: int = 30
    route: Route | None = None
    health_policy: HealthPolicy = field(default_factory=HealthPolicy)

    def revision(self, name: str | None) -> Revision | None:
        for rev in self.revisions:
            if rev.name == name:
                return rev
        return None

    def revision_order(self, name: str) -> int:
        """Position in spec.revisions; unlisted revisions sort after all listed ones."""
        for i, rev in enumerate(self.revisions):
            if rev.name == name:
                return i
        return len(self.revisions)


@dataclass(frozen=True)
class KindRef:
    api_version: str
    kind: str


@dataclass(frozen=True)
class Input:
    replica: KindRef = KindRef("serving.rollout.dev/v1alpha1", "ModelReplica")
    endpoint: KindRef = KindRef("serving.rollout.dev/v1alpha1", "ModelEndpoint")


# --- primitive readers: each names the field it rejects ------------------------------


def _mapping(value: Any, path: str, *, required: bool = False) -> Mapping[str, Any]:
    if value is None:
        if required:
            raise InvalidSpec(path, "is required")
        return {}
    if not isinstance(value, Mapping):
        raise InvalidSpec(path, f"must be an object, not {_type_name(value)}")
    return value


def _list(value: Any, path: str, *, max_len: int = MAX_LIST) -> Sequence[Any]:
    if value is None:
        return ()
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InvalidSpec(path, f"must be a list, not {_type_name(value)}")
    if len(value) > max_len:
        raise InvalidSpec(path, f"has {len(value)} entries; at most {max_len} are allowed")
    return value


def _string(value: Any, path: str, *, max_len: int = MAX_STRING) -> str:
    if not isinstance(value, str):
        raise InvalidSpec(path, f"must be a string, not {_type_name(value)}")
    if len(value) > max_len:
        raise InvalidSpec(path, f"is {len(value)} characters long; at most {max_len} are allowed")
    return value


def _integer(value: Any, path: str, *, minimum: int, maximum: int) -> int:
    # Struct numbers are doubles: 3 arrives as 3.0. Accept integral doubles only.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidSpec(path, f"must be an integer, not {_type_name(value)}")
    if isinstance(value, float) and not value.is_integer():
        raise InvalidSpec(path, f"must be an integer, not {value!r}")
    number = int(value)
    if number < minimum or number > maximum:
        raise InvalidSpec(path, f"must be between {minimum} and {maximum}, not {number}")
    return number


def _number(value: Any, path: str, *, minimum: float, maximum: float,
            exclusive_minimum: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidSpec(path, f"must be a number, not {_type_name(value)}")
    number = float(value)
    if number != number or number > maximum or number < minimum or (
            exclusive_minimum and number == minimum):
        bound = "greater than" if exclusive_minimum else "at least"
        raise InvalidSpec(path, f"must be {bound} {minimum:g} and at most {maximum:g}, "
                                f"not {value!r}")
    return number


def _optional_number(source: Mapping[str, Any], key: str, path: str, *, minimum: float,
                     maximum: float, exclusive_minimum: bool = False) -> float | None:
    value = source.get(key)
    if value is None:
        return None
    return _number(value, f"{path}.{key}", minimum=minimum, maximum=maximum,
                   exclusive_minimum=exclusive_minimum)


def _choice(value: Any, path: str, choices: Sequence[str], default: str) -> str:
    if value is None:
        return default
    if value not in choices:
        raise InvalidSpec(path, f"must be one of {', '.join(choices)}, not {value!r}")
    return str(value)


def _optional_integer(
    source: Mapping[str, Any], key: str, path: str, default: int, *, minimum: int, maximum: int
) -> int:
    value = source.get(key)
    if value is None:
        return default
    return _integer(value, f"{path}.{key}", minimum=minimum, maximum=maximum)


def _boolean(value: Any, path: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidSpec(path, f"must be true or false, not {_type_name(value)}")
    return value


def _path_prefix(value: Any, path: str) -> str:
    if value is None:
        return "/"
    prefix = _string(value, path)
    if not prefix.startswith("/"):
        raise InvalidSpec(path, f"must start with '/', not {prefix!r}")
    return prefix


def _hostnames(value: Any, path: str) -> tuple[str, ...]:
    return tuple(
        _string(h, f"{path}[{i}]", max_len=253) for i, h in enumerate(_list(value, path))
    )


def _int_or_percent(value: Any, path: str, default: IntOrPercent, max_percent: int) -> IntOrPercent:
    if value is None:
        return default
    if isinstance(value, str):
        match = PERCENT.match(value)
        if not match:
            raise InvalidSpec(path, f"must be an integer or a percentage like '25%', not {value!r}")
        percent = int(value[:-1])
        if percent > max_percent:
            raise InvalidSpec(path, f"must be at most {max_percent}%, not {value}")
        return IntOrPercent(percent, percent=True)
    return IntOrPercent(_integer(value, path, minimum=0, maximum=MAX_REPLICAS), percent=False)


def _free_form(value: Any, path: str) -> dict[str, Any]:
    """A user-owned object copied verbatim; bounded so no request can be unbounded work."""
    source = _mapping(value, path)
    nodes = 0

    def plain(node: Any, where: str, depth: int) -> Any:
        nonlocal nodes
        nodes += 1
        if nodes > MAX_FREE_FORM_NODES:
            raise InvalidSpec(path, f"has more than {MAX_FREE_FORM_NODES} values")
        if depth > MAX_FREE_FORM_DEPTH:
            raise InvalidSpec(where, f"is nested deeper than {MAX_FREE_FORM_DEPTH} levels")
        if isinstance(node, Mapping):
            return {
                _string(k, where, max_len=253): plain(v, f"{where}.{k}", depth + 1)
                for k, v in node.items()
            }
        if isinstance(node, str):
            return _string(node, where, max_len=MAX_FREE_FORM_STRING)
        if isinstance(node, Sequence):
            return [plain(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(node)]
        if isinstance(node, float) and node.is_integer():
            return int(node)
        return node

    return plain(source, path, 0)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, Sequence):
        return "a list"
    return type(value).__name__


# --- the spec ---------------------------------------------------------------------------


def parse_health_check(value: Any, path: str, engine_port: int) -> HealthCheck | None:
    if value is None:
        return None
    source = _mapping(value, path)
    if source.get("path") is None:
        raise InvalidSpec(f"{path}.path", "is required when healthCheck is set")
    probe_path = _string(source["path"], f"{path}.path")
    if not probe_path.startswith("/"):
        raise InvalidSpec(f"{path}.path", f"must start with '/', not {probe_path!r}")
    return HealthCheck(
        path=probe_path,
        port=_optional_integer(source, "port", path, engine_port, minimum=1, maximum=65535),
        interval_seconds=_optional_integer(
            source, "intervalSeconds", path, 10, minimum=1, maximum=MAX_SECONDS
        ),
        timeout_seconds=_optional_integer(
            source, "timeoutSeconds", path, 5, minimum=1, maximum=MAX_SECONDS
        ),
        initial_delay_seconds=_optional_integer(
            source,
            "initialDelaySeconds",
            path,
            DEFAULT_WARMUP_SECONDS,
            minimum=0,
            maximum=MAX_SECONDS,
        ),
        failure_threshold=_optional_integer(
            source, "failureThreshold", path, 3, minimum=1, maximum=MAX_REPLICAS
        ),
        expected_status=_optional_integer(
            source, "expectedStatus", path, 200, minimum=100, maximum=599
        ),
    )


def parse_revision(value: Any, path: str) -> Revision:
    source = _mapping(value, path)
    if source.get("name") is None:
        raise InvalidSpec(f"{path}.name", "is required")
    name = _string(source["name"], f"{path}.name", max_len=253)
    if len(name) > MAX_REVISION_NAME or not DNS_LABEL.match(name):
        raise InvalidSpec(
            f"{path}.name",
            f"{name!r} must be a DNS-1123 label (lowercase letters, digits and '-', "
            "starting and ending with a letter or digit) of at most "
            f"{MAX_REVISION_NAME} characters",
        )
    engine = _free_form(source.get("engine"), f"{path}.engine")
    port = _optional_integer(engine, "port", f"{path}.engine", DEFAULT_PORT,
                             minimum=1, maximum=65535)
    engine["port"] = port
    return Revision(
        name=name,
        model=_free_form(source.get("model"), f"{path}.model"),
        engine=engine,
        health_check=parse_health_check(source.get("healthCheck"), f"{path}.healthCheck", port),
    )


def parse_canary_step(value: Any, path: str) -> CanaryStep:
    """One canary step; it must be exactly one of setWeight, pause or analysis."""
    source = _mapping(value, path, required=True)
    kinds = [kind for kind in CANARY_STEP_KINDS if source.get(kind) is not None]
    if len(kinds) != 1:
        found = f"has {' and '.join(kinds)}" if kinds else "has none"
        raise InvalidSpec(path, f"must be exactly one of {', '.join(CANARY_STEP_KINDS)}; {found}")
    kind = kinds[0]
    if kind == SET_WEIGHT:
        weight = _integer(source[kind], f"{path}.{kind}", minimum=0, maximum=100)
        return CanaryStep(kind, weight=weight)
    body = _mapping(source[kind], f"{path}.{kind}")
    default = None if kind == PAUSE else 0
    duration = body.get("durationSeconds")
    if duration is None:
        return CanaryStep(kind, duration_seconds=default)
    return CanaryStep(kind, duration_seconds=_integer(
        duration, f"{path}.{kind}.durationSeconds", minimum=0, maximum=MAX_SECONDS))


def parse_header_route(value: Any, path: str) -> HeaderRoute | None:
    if value is None:
        return None
    source = _mapping(value, path)
    if source.get("name") is None:
        raise InvalidSpec(f"{path}.name", "is required")
    name = _string(source["name"], f"{path}.name", max_len=MAX_HEADER_NAME)
    if not HEADER_NAME.match(name):
        raise InvalidSpec(f"{path}.name", f"{name!r} is not an HTTP header name "
                          "(letters, digits and !#$%&'*+-.^_`|~)")
    if source.get("value") is None:
        raise InvalidSpec(f"{path}.value", "is required")
    return HeaderRoute(name, _string(source["value"], f"{path}.value", max_len=MAX_HEADER_VALUE))


def parse_canary(value: Any, path: str) -> Canary | None:
    """The canary block, validated whenever present, whatever the strategy type."""
    if value is None:
        return None
    source = _mapping(value, path)
    steps_path = f"{path}.steps"
    raw_steps = _list(source.get("steps"), steps_path, max_len=MAX_CANARY_STEPS)
    if not raw_steps:
        raise InvalidSpec(steps_path, "needs at least one step")
    defaults = Canary(steps=())
    return Canary(
        steps=tuple(parse_canary_step(step, f"{steps_path}[{i}]")
                    for i, step in enumerate(raw_steps)),
        max_surge=_int_or_percent(source.get("maxSurge"), f"{path}.maxSurge",
                                  defaults.max_surge, MAX_SURGE_PERCENT),
        max_unavailable=_int_or_percent(source.get("maxUnavailable"), f"{path}.maxUnavailable",
                                        defaults.max_unavailable, 100),
        on_capacity_shortage=_choice(source.get("onCapacityShortage"),
                                     f"{path}.onCapacityShortage", CAPACITY_SHORTAGE_ACTIONS,
                                     WAIT),
        capacity_wait_seconds=_optional_integer(source, "capacityWaitSeconds", path, 120,
                                                minimum=0, maximum=MAX_SECONDS),
        header_route=parse_header_route(source.get("headerRoute"), f"{path}.headerRoute"),
    )


def parse_analysis(value: Any, path: str) -> Analysis | None:
    if value is None:
        return None
    source = _mapping(value, path)
    error_rate = _optional_number(source, "maxErrorRate", path, minimum=0, maximum=1)
    return Analysis(
        min_requests=_optional_integer(source, "minRequests", path, 100,
                                       minimum=0, maximum=2**53),
        max_error_rate=0.01 if error_rate is None else error_rate,
        max_ttft_p95_seconds=_optional_number(source, "maxTTFTP95Seconds", path, minimum=0,
                                              maximum=MAX_SECONDS, exclusive_minimum=True),
        max_itl_p95_seconds=_optional_number(source, "maxITLP95Seconds", path, minimum=0,
                                             maximum=MAX_SECONDS, exclusive_minimum=True),
        max_ratio_to_baseline=_optional_number(source, "maxRatioToBaseline", path, minimum=1,
                                               maximum=1e6),
        failure_tolerance_seconds=_optional_integer(source, "failureToleranceSeconds", path, 60,
                                                    minimum=0, maximum=MAX_SECONDS),
    )


def parse_strategy(value: Any, path: str) -> Strategy:
    source = _mapping(value, path)
    kind = source.get("type", ROLLING_UPDATE)
    if kind not in STRATEGY_TYPES:
        raise InvalidSpec(f"{path}.type",
                          f"must be one of {', '.join(STRATEGY_TYPES)}, not {kind!r}")
    ru_path = f"{path}.rollingUpdate"
    rolling = _mapping(source.get("rollingUpdate"), ru_path)
    blue_green = _mapping(source.get("blueGreen"), f"{path}.blueGreen")
    defaults = Strategy()
    bg_path = f"{path}.blueGreen"
    canary = parse_canary(source.get("canary"), f"{path}.canary")
    if kind == CANARY and canary is None:
        raise InvalidSpec(f"{path}.canary.steps", "is required when strategy.type is Canary")
    analysis = parse_analysis(source.get("analysis"), f"{path}.analysis")
    if canary is not None and analysis is None:
        for i, step in enumerate(canary.steps):
            if step.kind == ANALYSIS:
                raise InvalidSpec(f"{path}.canary.steps[{i}]",
                                  f"is an analysis step but {path}.analysis is not set")
    return Strategy(
        type=kind,
        max_surge=_int_or_percent(
            rolling.get("maxSurge"),
            f"{ru_path}.maxSurge",
            defaults.max_surge,
            MAX_SURGE_PERCENT,
        ),
        max_unavailable=_int_or_percent(
            rolling.get("maxUnavailable"),
            f"{ru_path}.maxUnavailable",
            defaults.max_unavailable,
            100,
        ),
        auto_promote=_boolean(blue_green.get("autoPromote"), f"{bg_path}.autoPromote", False),
        promote_delay_seconds=_optional_integer(
            blue_green, "promoteDelaySeconds", bg_path, 0, minimum=0, maximum=MAX_SECONDS
        ),
        scale_down_delay_seconds=_optional_integer(
            blue_green, "scaleDownDelaySeconds", bg_path, 30, minimum=0, maximum=MAX_SECONDS
        ),
        on_capacity_shortage=_choice(rolling.get("onCapacityShortage"),
                                     f"{ru_path}.onCapacityShortage",
                                     CAPACITY_SHORTAGE_ACTIONS, WAIT),
        capacity_wait_seconds=_optional_integer(rolling, "capacityWaitSeconds", ru_path, 120,
                                                minimum=0, maximum=MAX_SECONDS),
        canary=canary,
        analysis=analysis,
    )


def parse_route_timeouts(value: Any, path: str) -> RouteTimeouts | None:
    if value is None:
        return None
    source = _mapping(value, path)

    def duration(key: str) -> str | None:
        if source.get(key) is None:
            return None
        text = _string(source[key], f"{path}.{key}", max_len=MAX_DURATION)
        if not DURATION.match(text):
            raise InvalidSpec(f"{path}.{key}", f"must be a Gateway API duration such as "
                              f"'0s', '30s', '1h30m' or '500ms', not {text!r}")
        return text

    return RouteTimeouts(request=duration("request"), backend_request=duration("backendRequest"))


def parse_route(value: Any, path: str) -> Route | None:
    if value is None:
        return None
    source = _mapping(value, path)
    refs_path = f"{path}.parentRefs"
    parent_refs = tuple(
        _free_form(_mapping(ref, f"{refs_path}[{i}]", required=True), f"{refs_path}[{i}]")
        for i, ref in enumerate(_list(source.get("parentRefs"), refs_path))
    )
    if not parent_refs:
        raise InvalidSpec(refs_path, "needs at least one parent (the Gateway to attach to)")
    for i, ref in enumerate(parent_refs):
        if not isinstance(ref.get("name"), str) or not ref["name"]:
            raise InvalidSpec(f"{refs_path}[{i}].name", "is required")
    preview = None
    if source.get("preview") is not None:
        preview_source = _mapping(source["preview"], f"{path}.preview")
        preview = PreviewRoute(
            hostnames=_hostnames(preview_source.get("hostnames"), f"{path}.preview.hostnames"),
            path_prefix=_path_prefix(preview_source.get("pathPrefix"),
                                     f"{path}.preview.pathPrefix"),
        )
    return Route(
        parent_refs=parent_refs,
        hostnames=_hostnames(source.get("hostnames"), f"{path}.hostnames"),
        path_prefix=_path_prefix(source.get("pathPrefix"), f"{path}.pathPrefix"),
        preview=preview,
        timeouts=parse_route_timeouts(source.get("timeouts"), f"{path}.timeouts"),
    )


def parse_health_policy(value: Any, path: str) -> HealthPolicy:
    source = _mapping(value, path)
    statuses_path = f"{path}.cleanupTargetStatuses"
    statuses = HealthPolicy().cleanup_target_statuses
    if source.get("cleanupTargetStatuses") is not None:
        raw = _list(source["cleanupTargetStatuses"], statuses_path)
        for i, status in enumerate(raw):
            if status not in CLEANUP_STATUSES:
                raise InvalidSpec(
                    f"{statuses_path}[{i}]",
                    f"must be one of {', '.join(CLEANUP_STATUSES)}, not {status!r}",
                )
        statuses = frozenset(raw)
    return HealthPolicy(
        cleanup_target_statuses=statuses,
        status_ttl_seconds=_optional_integer(
            source, "statusTTLSeconds", path, 120, minimum=0, maximum=MAX_SECONDS
        ),
    )


def parse_spec(value: Any) -> Spec:
    """Validate a ModelDeployment's spec; raise InvalidSpec naming the first bad field."""
    source = _mapping(value, "spec", required=True)
    raw_revisions = _list(source.get("revisions"), "spec.revisions", max_len=MAX_REVISIONS)
    if not raw_revisions:
        raise InvalidSpec("spec.revisions", "needs at least one revision")
    revisions = tuple(
        parse_revision(r, f"spec.revisions[{i}]") for i, r in enumerate(raw_revisions)
    )
    seen: set[str] = set()
    for i, rev in enumerate(revisions):
        if rev.name in seen:
            raise InvalidSpec(f"spec.revisions[{i}].name", f"duplicate revision name {rev.name!r}")
        seen.add(rev.name)

    active = revisions[-1].name
    if source.get("activeRevision") is not None:
        active = _string(source["activeRevision"], "spec.activeRevision", max_len=253)
        if active not in seen:
            raise InvalidSpec(
                "spec.activeRevision", f"{active!r} is not listed in spec.revisions"
            )

    promote = None
    if source.get("promote") is not None:
        promote = _string(source["promote"], "spec.promote", max_len=253)

    return Spec(
        replicas=_optional_integer(source, "replicas", "spec", 1, minimum=0, maximum=MAX_REPLICAS),
        revisions=revisions,
        active_revision=active,
        strategy=parse_strategy(source.get("strategy"), "spec.strategy"),
        promote=promote,
        progress_deadline_seconds=_optional_integer(
            source, "progressDeadlineSeconds", "spec", 1800, minimum=1, maximum=MAX_SECONDS
        ),
        min_ready_seconds=_optional_integer(
            source, "minReadySeconds", "spec", 0, minimum=0, maximum=MAX_SECONDS
        ),
        drain_seconds=_optional_integer(
            source, "drainSeconds", "spec", 30, minimum=0, maximum=MAX_SECONDS
        ),
        route=parse_route(source.get("route"), "spec.route"),
        health_policy=parse_health_policy(source.get("healthPolicy"), "spec.healthPolicy"),
    )


def parse_input(value: Any) -> Input:
    """Validate the function Input; every field is optional."""
    source = _mapping(value, "input")
    defaults = Input()

    def kind_ref(key: str, default: KindRef) -> KindRef:
        ref = _mapping(source.get(key), f"input.{key}")
        api_version = ref.get("apiVersion", default.api_version)
        kind = ref.get("kind", default.kind)
        return KindRef(
            _string(api_version, f"input.{key}.apiVersion", max_len=253),
            _string(kind, f"input.{key}.kind", max_len=63),
        )

    return Input(
        replica=kind_ref("replica", defaults.replica),
        endpoint=kind_ref("endpoint", defaults.endpoint),
    )
