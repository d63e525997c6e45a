"""The ModelDeployment spec and the function Input as the planner reads them.

`parse_spec` and `parse_input` validate plain Python values (dicts, lists,
str, float/int, bool: the request's Structs) with the API models of
`function.api.models` and return frozen dataclasses with every default filled
in, or raise InvalidSpec naming the first offending field. The dataclasses are
the planner's view: flat where the wire shape nests (`strategy.max_surge` is
`spec.strategy.rollingUpdate.maxSurge`) and cheap to read per replica.

The contract these fields carry is in docs/rollout.md; docs/reference.md lists
every field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from function.api import models as api
from function.api.models import (
    ANALYSIS,
    BLUE_GREEN,
    CANARY,
    CANARY_STEP_KINDS,
    CAPACITY_SHORTAGE_ACTIONS,
    CLEANUP_STATUSES,
    DEFAULT_PORT,
    DEFAULT_WARMUP_SECONDS,
    MAX_CANARY_STEPS,
    MAX_HOSTNAMES,
    MAX_REPLICAS,
    MAX_REVISION_NAME,
    MAX_REVISIONS,
    PAUSE,
    REPLACE,
    ROLLING_UPDATE,
    SET_WEIGHT,
    STRATEGY_TYPES,
    WAIT,
)
from function.api.types import (
    DEFAULT_SURGE,
    DEFAULT_UNAVAILABLE,
    ERROR_TYPE,
    MAX_SECONDS,
    IntOrPercent,
    type_name,
)

__all__ = [
    "ANALYSIS",
    "BLUE_GREEN",
    "CANARY",
    "CANARY_STEP_KINDS",
    "CAPACITY_SHORTAGE_ACTIONS",
    "CLEANUP_STATUSES",
    "DEFAULT_PORT",
    "DEFAULT_WARMUP_SECONDS",
    "MAX_CANARY_STEPS",
    "MAX_HOSTNAMES",
    "MAX_REPLICAS",
    "MAX_REVISIONS",
    "MAX_REVISION_NAME",
    "MAX_SECONDS",
    "PAUSE",
    "REPLACE",
    "ROLLING_UPDATE",
    "SET_WEIGHT",
    "STRATEGY_TYPES",
    "WAIT",
    "Analysis",
    "Canary",
    "CanaryStep",
    "HeaderRoute",
    "HealthCheck",
    "HealthPolicy",
    "Input",
    "IntOrPercent",
    "InvalidSpec",
    "KindRef",
    "PreviewRoute",
    "Revision",
    "Route",
    "RouteTimeouts",
    "Spec",
    "StrategySpec",
    "parse_health_check",
    "parse_input",
    "parse_revision",
    "parse_spec",
]


class InvalidSpec(ValueError):
    """The request cannot be acted on; the message names the field."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


# --- the planner's view ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """A revision's HTTP probe, every default filled in (port: the engine's)."""

    path: str
    port: int
    interval_seconds: int = 10
    timeout_seconds: int = 5
    initial_delay_seconds: int = DEFAULT_WARMUP_SECONDS
    failure_threshold: int = 3
    expected_status: int = 200

    def as_dict(self) -> dict[str, Any]:
        """The probe as desired on a replica: YAML names, defaults filled in."""
        return {
            "path": self.path,
            "port": self.port,
            "intervalSeconds": self.interval_seconds,
            "timeoutSeconds": self.timeout_seconds,
            "initialDelaySeconds": self.initial_delay_seconds,
            "failureThreshold": self.failure_threshold,
            "expectedStatus": self.expected_status,
        }


@dataclass(frozen=True, slots=True)
class Revision:
    """A listed revision: its model and engine (port filled in) as copied to replicas."""

    name: str
    model: dict[str, Any]
    engine: dict[str, Any]  # port always filled in
    health_check: HealthCheck | None

    @property
    def port(self) -> int:
        """The engine's serving port."""
        return int(self.engine["port"])

    @property
    def warmup_seconds(self) -> int:
        """How long a replica may take to become Ready before it is Failed."""
        if self.health_check is None:
            return DEFAULT_WARMUP_SECONDS
        return self.health_check.initial_delay_seconds


@dataclass(frozen=True, slots=True)
class CanaryStep:
    """One canary step: exactly one of setWeight, pause or analysis."""

    kind: str  # SET_WEIGHT, PAUSE or ANALYSIS
    weight: int | None = None  # setWeight: percent of main-route traffic, 0..100
    # pause: seconds, or None for a manual pause (`pause: {}`); analysis: seconds (default 0)
    duration_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class HeaderRoute:
    """Requests carrying this header with exactly this value go to the canary only."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class Canary:
    """The canary's steps and the limits for moving replicas between them."""

    steps: tuple[CanaryStep, ...]
    max_surge: IntOrPercent = DEFAULT_SURGE
    max_unavailable: IntOrPercent = DEFAULT_UNAVAILABLE
    on_capacity_shortage: str = WAIT
    capacity_wait_seconds: int = 120
    header_route: HeaderRoute | None = None


@dataclass(frozen=True, slots=True)
class Analysis:
    """The SLO gate: limits on the deploying revision's metrics."""

    min_requests: int = 100
    max_error_rate: float = 0.01
    max_ttft_p95_seconds: float | None = None
    max_itl_p95_seconds: float | None = None
    max_ratio_to_baseline: float | None = None
    failure_tolerance_seconds: int = 60


@dataclass(frozen=True, slots=True)
class StrategySpec:
    """The strategy, flattened: rollingUpdate's and blueGreen's fields side by side."""

    type: str = ROLLING_UPDATE
    max_surge: IntOrPercent = DEFAULT_SURGE
    max_unavailable: IntOrPercent = DEFAULT_UNAVAILABLE
    auto_promote: bool = False
    promote_delay_seconds: int = 0
    scale_down_delay_seconds: int = 30
    on_capacity_shortage: str = WAIT
    capacity_wait_seconds: int = 120
    canary: Canary | None = None
    analysis: Analysis | None = None


@dataclass(frozen=True, slots=True)
class PreviewRoute:
    """The preview route's own hostnames and path prefix."""

    hostnames: tuple[str, ...]
    path_prefix: str = "/"


@dataclass(frozen=True, slots=True)
class RouteTimeouts:
    """Gateway API rule timeouts, as Duration strings, copied to every rule."""

    request: str | None = None
    backend_request: str | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """The HTTPRoute(s) to compose."""

    parent_refs: tuple[dict[str, Any], ...]
    hostnames: tuple[str, ...]
    path_prefix: str = "/"
    preview: PreviewRoute | None = None
    timeouts: RouteTimeouts | None = None


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """Which health states get a replica replaced, and when health data is stale."""

    cleanup_target_statuses: frozenset[str] = frozenset({"Unhealthy"})
    status_ttl_seconds: int = 120


@dataclass(frozen=True, slots=True)
class Spec:
    """A validated ModelDeployment spec, every default filled in."""

    replicas: int
    revisions: tuple[Revision, ...]
    active_revision: str
    strategy: StrategySpec = field(default_factory=StrategySpec)
    promote: str | None = None
    progress_deadline_seconds: int = 1800
    min_ready_seconds: int = 0
    drain_seconds: int = 30
    route: Route | None = None
    health_policy: HealthPolicy = field(default_factory=HealthPolicy)

    def revision(self, name: str | None) -> Revision | None:
        """The listed revision of that name, if any."""
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


@dataclass(frozen=True, slots=True)
class KindRef:
    """The apiVersion and kind of a composed resource."""

    api_version: str
    kind: str


@dataclass(frozen=True, slots=True)
class Input:
    """The function Input: the kinds the function composes."""

    replica: KindRef = KindRef("serving.rollout.dev/v1alpha1", "ModelReplica")
    endpoint: KindRef = KindRef("serving.rollout.dev/v1alpha1", "ModelEndpoint")


# --- validation --------------------------------------------------------------------------


def invalid_spec(error: ValidationError, root: str) -> InvalidSpec:
    """The first error pydantic found, as InvalidSpec naming its field from root."""
    first = error.errors(include_url=False)[0]
    path = root + "".join(f"[{part}]" if isinstance(part, int) else f".{part}"
                          for part in first["loc"])
    context = first.get("ctx") or {}
    if first["type"] == ERROR_TYPE:
        return InvalidSpec(path + context.get("where", ""), context["problem"])
    if first["type"] == "missing":
        return InvalidSpec(path, "is required")
    # Only our own types refuse values; anything else is worded by pydantic.
    return InvalidSpec(path, f"{first['msg'][0].lower()}{first['msg'][1:]}, "
                             f"not {type_name(first.get('input'))}")


def parse_spec(value: Any) -> Spec:
    """Validate a ModelDeployment's spec; raise InvalidSpec naming the first bad field."""
    if value is None:
        raise InvalidSpec("spec", "is required")
    try:
        model = api.ModelDeploymentSpec.model_validate(value)
    except ValidationError as error:
        raise invalid_spec(error, "spec") from None
    return _spec(model)


def parse_revision(value: Any, path: str) -> Revision:
    """Validate one entry of spec.revisions found at path."""
    try:
        return _revision(api.Revision.model_validate(value))
    except ValidationError as error:
        raise invalid_spec(error, path) from None


def parse_health_check(value: Any, path: str, engine_port: int) -> HealthCheck | None:
    """Validate a revision's healthCheck found at path (None: there is none)."""
    if value is None:
        return None
    try:
        model = api.HealthCheck.model_validate(value)
    except ValidationError as error:
        raise invalid_spec(error, path) from None
    return _health_check(model, engine_port)


def parse_input(value: Any) -> Input:
    """Validate the function Input; every field is optional."""
    try:
        model = api.FunctionInput.model_validate({} if value is None else value)
    except ValidationError as error:
        raise invalid_spec(error, "input") from None
    return Input(replica=KindRef(model.replica.api_version, model.replica.kind),
                 endpoint=KindRef(model.endpoint.api_version, model.endpoint.kind))


# --- from the API models to the planner's view -------------------------------------------


def _spec(model: api.ModelDeploymentSpec) -> Spec:
    revisions = tuple(_revision(rev) for rev in model.revisions)
    policy = model.health_policy
    return Spec(
        replicas=model.replicas,
        revisions=revisions,
        active_revision=model.active_revision or revisions[-1].name,
        strategy=_strategy(model.strategy),
        promote=model.promote,
        progress_deadline_seconds=model.progress_deadline_seconds,
        min_ready_seconds=model.min_ready_seconds,
        drain_seconds=model.drain_seconds,
        route=None if model.route is None else _route(model.route),
        health_policy=HealthPolicy(frozenset(policy.cleanup_target_statuses),
                                   policy.status_ttl_seconds),
    )


def _health_check(model: api.HealthCheck, engine_port: int) -> HealthCheck:
    return HealthCheck(
        path=model.path,
        port=engine_port if model.port is None else model.port,
        interval_seconds=model.interval_seconds,
        timeout_seconds=model.timeout_seconds,
        initial_delay_seconds=model.initial_delay_seconds,
        failure_threshold=model.failure_threshold,
        expected_status=model.expected_status,
    )


def _revision(model: api.Revision) -> Revision:
    check = model.health_check
    return Revision(
        name=model.name,
        model=model.model,
        engine=model.engine.as_dict(),
        health_check=None if check is None else _health_check(check, model.engine.port),
    )


def _canary(model: api.Canary) -> Canary:
    steps = []
    for step in model.steps:
        if step.set_weight is not None:
            steps.append(CanaryStep(SET_WEIGHT, weight=step.set_weight))
        elif step.pause is not None:
            steps.append(CanaryStep(PAUSE, duration_seconds=step.pause.duration_seconds))
        elif step.analysis is not None:
            steps.append(CanaryStep(ANALYSIS, duration_seconds=step.analysis.duration_seconds))
    header = model.header_route
    return Canary(
        steps=tuple(steps),
        max_surge=model.max_surge,
        max_unavailable=model.max_unavailable,
        on_capacity_shortage=model.on_capacity_shortage,
        capacity_wait_seconds=model.capacity_wait_seconds,
        header_route=None if header is None else HeaderRoute(header.name, header.value),
    )


def _analysis(model: api.Analysis) -> Analysis:
    return Analysis(
        min_requests=model.min_requests,
        max_error_rate=model.max_error_rate,
        max_ttft_p95_seconds=model.max_ttft_p95_seconds,
        max_itl_p95_seconds=model.max_itl_p95_seconds,
        max_ratio_to_baseline=model.max_ratio_to_baseline,
        failure_tolerance_seconds=model.failure_tolerance_seconds,
    )


def _strategy(model: api.StrategyModel) -> StrategySpec:
    rolling, blue_green = model.rolling_update, model.blue_green
    return StrategySpec(
        type=model.type,
        max_surge=rolling.max_surge,
        max_unavailable=rolling.max_unavailable,
        auto_promote=blue_green.auto_promote,
        promote_delay_seconds=blue_green.promote_delay_seconds,
        scale_down_delay_seconds=blue_green.scale_down_delay_seconds,
        on_capacity_shortage=rolling.on_capacity_shortage,
        capacity_wait_seconds=rolling.capacity_wait_seconds,
        canary=None if model.canary is None else _canary(model.canary),
        analysis=None if model.analysis is None else _analysis(model.analysis),
    )


def _route(model: api.Route) -> Route:
    preview, timeouts = model.preview, model.timeouts
    return Route(
        parent_refs=tuple(ref.as_dict() for ref in model.parent_refs),
        hostnames=model.hostnames,
        path_prefix=model.path_prefix,
        preview=None if preview is None else PreviewRoute(preview.hostnames, preview.path_prefix),
        timeouts=None if timeouts is None else RouteTimeouts(timeouts.request,
                                                             timeouts.backend_request),
    )
