"""The ModelDeployment spec and the function Input, as pydantic models of their wire shape.

These models are the one description of the API: they validate what the
function reads, and `function.api.schema` turns them into the XRD's and the
Input CRD's OpenAPI schemas and into the field reference in docs/reference.md.
Field names are the YAML names (aliases); attributes are their snake_case form.
Descriptions are what `kubectl explain` shows, so they speak to users.

Rules that tie fields together (unique revision names, an activeRevision that
is listed, a canary step that is exactly one thing, ...) are model validators,
each next to the CEL rule that makes the API server refuse the same specs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from function.api.types import (
    DEFAULT_SURGE,
    DEFAULT_UNAVAILABLE,
    MAX_SECONDS,
    MAX_STRING,
    Boolean,
    Choice,
    FreeForm,
    Integer,
    IntOrPercent,
    IntOrPercentBounds,
    ListOf,
    Number,
    Seconds,
    String,
    free_form,
    invalid,
    type_name,
)

MAX_REPLICAS = 10_000
MAX_REVISIONS = 32
MAX_REVISION_NAME = 30
MAX_CANARY_STEPS = 32
MAX_PARENT_REFS = 32  # as Gateway API's HTTPRoute
MAX_HOSTNAMES = 16  # as Gateway API's HTTPRoute: more could never be composed
MAX_HEADER_NAME = 256
MAX_HEADER_VALUE = 4096
MAX_SURGE_PERCENT = 1000
MAX_UNAVAILABLE_PERCENT = 100
MAX_REQUESTS = 10**9
MAX_RATIO = 1_000_000

DEFAULT_PORT = 8000
DEFAULT_WARMUP_SECONDS = 600

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Gateway API's Hostname: a DNS name, optionally with one leading wildcard label.
HOSTNAME = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# An HTTP header name: an RFC 7230 token.
HEADER_NAME = r"^[-!#$%&'*+.^_`|~0-9A-Za-z]+$"
# Gateway API's Duration (GEP-2257): up to four number-unit pairs.
DURATION = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"

ROLLING_UPDATE = "RollingUpdate"
BLUE_GREEN = "BlueGreen"
CANARY = "Canary"
STRATEGY_TYPES = (ROLLING_UPDATE, BLUE_GREEN, CANARY)
WAIT = "Wait"
REPLACE = "Replace"
CAPACITY_SHORTAGE_ACTIONS = (WAIT, REPLACE)
UNHEALTHY = "Unhealthy"
DEGRADED = "Degraded"
CLEANUP_STATUSES = (UNHEALTHY, DEGRADED)
SET_WEIGHT = "setWeight"
PAUSE = "pause"
ANALYSIS = "analysis"
CANARY_STEP_KINDS = (SET_WEIGHT, PAUSE, ANALYSIS)


def _not_a_dns_label(value: str) -> str:
    return (f"{value!r} must be a DNS-1123 label (lowercase letters, digits and '-', "
            "starting and ending with a letter or digit) of at most "
            f"{MAX_REVISION_NAME} characters")


RevisionName = Annotated[str, String(MAX_REVISION_NAME, min_length=1, pattern=DNS_LABEL,
                                     explain=_not_a_dns_label, too_long=_not_a_dns_label)]
PathPrefix = Annotated[str, String(MAX_STRING, min_length=1, pattern="^/",
                                   explain=lambda v: f"must start with '/', not {v!r}")]
Hostname = Annotated[str, String(
    253, min_length=1, pattern=HOSTNAME,
    explain=lambda v: f"{v!r} is not a hostname (lowercase DNS name, optionally starting "
                      "with '*.')")]
Duration = Annotated[str, String(
    64, pattern=DURATION,
    explain=lambda v: f"must be a Gateway API duration such as '0s', '30s', '1h30m' or "
                      f"'500ms', not {v!r}")]
HeaderName = Annotated[str, String(
    MAX_HEADER_NAME, min_length=1, pattern=HEADER_NAME,
    explain=lambda v: f"{v!r} is not an HTTP header name (letters, digits and "
                      "!#$%&'*+-.^_`|~)")]
Port = Annotated[int, Integer(1, 65535)]
Surge = Annotated[IntOrPercent, IntOrPercentBounds(MAX_SURGE_PERCENT)]
Unavailable = Annotated[IntOrPercent, IntOrPercentBounds(MAX_UNAVAILABLE_PERCENT)]
ShortageAction = Annotated[str, Choice(*CAPACITY_SHORTAGE_ACTIONS)]
CleanupStatus = Annotated[str, Choice(*CLEANUP_STATUSES)]
StrategyType = Annotated[str, Choice(*STRATEGY_TYPES)]
Duration0 = Annotated[int, Seconds(0)]
Duration1 = Annotated[int, Seconds(1)]


class ApiModel(BaseModel):
    """Base of every API object: YAML names, null means absent, unknown fields ignored."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_alias=True,
                              validate_by_name=False, extra="ignore", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _an_object(cls, value: Any) -> Any:
        """Refuse what is not an object; drop null fields, which mean "use the default"."""
        if type(value) is not dict:
            if isinstance(value, BaseModel):
                return value
            if not isinstance(value, Mapping):
                raise invalid(f"must be an object, not {type_name(value)}")
        if None in value.values():
            return {key: item for key, item in value.items() if item is not None}
        return value


# --- revisions ---------------------------------------------------------------------------


class HealthCheck(ApiModel):
    """An HTTP probe of the engine. Absent, readiness alone decides health."""

    path: PathPrefix = Field(description="The URL path to probe. Required.")
    port: Port | None = Field(default=None,
                              description="The port to probe. Default: engine.port.")
    interval_seconds: Duration1 = Field(default=10, description="Seconds between probes.")
    timeout_seconds: Duration1 = Field(default=5,
                                       description="Seconds before a probe times out.")
    initial_delay_seconds: Duration0 = Field(
        default=DEFAULT_WARMUP_SECONDS,
        description="Warm-up budget: a replica that is not Ready this long after it was "
                    "created (or lost readiness) is Failed.")
    failure_threshold: Annotated[int, Integer(1, MAX_REPLICAS)] = Field(
        default=3, description="Consecutive failed probes before the prober reports Unhealthy.")
    expected_status: Annotated[int, Integer(100, 599)] = Field(
        default=200, description="The HTTP status a healthy engine answers with.")


class Engine(ApiModel):
    """Free-form serving engine settings (image, args, env, resources, ...), copied to
    every replica. Only port is read by the function."""

    model_config = ConfigDict(extra="allow")

    port: Port = Field(default=DEFAULT_PORT, description="The port the engine serves on.")

    @model_validator(mode="before")
    @classmethod
    def _an_object(cls, value: Any) -> Any:
        """Keep every key (nulls too, but a null port is the default), within free-form bounds."""
        if isinstance(value, BaseModel):
            return value
        whole = free_form(value)
        if whole.get("port", 0) is None:
            del whole["port"]
        return whole

    def as_dict(self) -> dict[str, Any]:
        """The engine as written, with port filled in."""
        return {**(self.model_extra or {}), "port": self.port}


class Revision(ApiModel):
    """A revision of the model and its engine. Revisions are meant to be immutable: editing
    a listed revision in place updates its replicas in place, with no rollout."""

    name: RevisionName = Field(
        description="The revision's name: a DNS-1123 label of at most 30 characters.")
    model: FreeForm = Field(default_factory=dict,
                            description="Free-form model reference, copied to every replica.")
    engine: Engine = Field(default=Engine())
    health_check: HealthCheck | None = None

    @model_validator(mode="after")
    def _probe_engine_port(self) -> Revision:
        """A health check's port defaults to the engine's."""
        if self.health_check is not None and self.health_check.port is None:
            # Frozen for everyone else; filled in once, while being validated.
            object.__setattr__(self, "health_check",
                               self.health_check.model_copy(update={"port": self.engine.port}))
        return self


# --- strategy ----------------------------------------------------------------------------

SURGE = ("Replicas above spec.replicas while moving: an integer or a percentage of "
         "spec.replicas, rounded up.")
UNAVAILABLE = ("Serving replicas that may be missing while moving: an integer or a "
               "percentage of spec.replicas, rounded down. Both resolving to 0 means 1.")
ON_SHORTAGE = ("What to do when new replicas find no accelerator: Wait for capacity, or "
               "Replace: free one serving replica's accelerator at a time for the new "
               "revision.")
CAPACITY_WAIT = "Seconds a new replica may be Unschedulable before Replace acts."


class RollingUpdate(ApiModel):
    """How a RollingUpdate moves from the current revision to the new one."""

    max_surge: Surge = Field(default=DEFAULT_SURGE, description=SURGE)
    max_unavailable: Unavailable = Field(default=DEFAULT_UNAVAILABLE,
                                         description=UNAVAILABLE)
    on_capacity_shortage: ShortageAction = Field(default=WAIT, description=ON_SHORTAGE)
    capacity_wait_seconds: Duration0 = Field(default=120, description=CAPACITY_WAIT)


class BlueGreen(ApiModel):
    """The promotion gate of a BlueGreen rollout and how long blue lingers."""

    auto_promote: Boolean = Field(default=False,
                                  description="Promote without waiting for spec.promote.")
    promote_delay_seconds: Duration0 = Field(
        default=0,
        description="Soak time after green is fully available, before automatic promotion.")
    scale_down_delay_seconds: Duration0 = Field(
        default=30,
        description="How long blue keeps running after promotion (instead of drainSeconds).")


class Pause(ApiModel):
    """A pause: timed, or (without durationSeconds) until spec.promote names the revision."""

    duration_seconds: Duration0 | None = Field(
        default=None, description="How long to pause. Absent: wait for spec.promote.")


class AnalysisStep(ApiModel):
    """Hold the canary until the analysis gate passes, for at least durationSeconds."""

    duration_seconds: Duration0 = Field(
        default=0, description="How long the step lasts at least; it ends on a Pass after that.")


class CanaryStep(ApiModel):
    """One step of a canary: exactly one of setWeight, pause or analysis."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [{
        "rule": "(has(self.setWeight) ? 1 : 0) + (has(self.pause) ? 1 : 0)"
                " + (has(self.analysis) ? 1 : 0) == 1",
        "message": "a canary step must be exactly one of setWeight, pause or analysis",
    }]})

    set_weight: Annotated[int, Integer(0, 100)] | None = Field(
        default=None,
        description="Percent of main-route traffic for the canary; its replicas follow.")
    pause: Pause | None = None
    analysis: AnalysisStep | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> CanaryStep:
        """A step is exactly one of setWeight, pause, analysis."""
        kinds = [kind for kind, value in ((SET_WEIGHT, self.set_weight), (PAUSE, self.pause),
                                          (ANALYSIS, self.analysis)) if value is not None]
        if len(kinds) != 1:
            found = f"has {' and '.join(kinds)}" if kinds else "has none"
            raise invalid(f"must be exactly one of {', '.join(CANARY_STEP_KINDS)}; {found}")
        return self


class HeaderRoute(ApiModel):
    """Requests carrying this header with exactly this value go to the canary only."""

    name: HeaderName = Field(description="The HTTP header name.")
    value: Annotated[str, String(MAX_HEADER_VALUE)] = Field(
        description="The exact header value.")


class Canary(ApiModel):
    """A canary: traffic moves to the new revision in explicit steps, replicas following
    traffic; after the last step the new revision is promoted fully."""

    steps: Annotated[tuple[CanaryStep, ...],
                     ListOf(MAX_CANARY_STEPS, min_items=1,
                            too_few="needs at least one step")] = Field(
        description="The steps, run in order.")
    max_surge: Surge = Field(default=DEFAULT_SURGE, description=SURGE)
    max_unavailable: Unavailable = Field(default=DEFAULT_UNAVAILABLE,
                                         description=UNAVAILABLE)
    on_capacity_shortage: ShortageAction = Field(default=WAIT, description=ON_SHORTAGE)
    capacity_wait_seconds: Duration0 = Field(default=120, description=CAPACITY_WAIT)
    header_route: HeaderRoute | None = None


class Analysis(ApiModel):
    """An SLO gate from replica metrics: the deploying revision against fixed limits and
    against the current revision. Used by canary analysis steps and BlueGreen promotion."""

    min_requests: Annotated[int, Integer(0, MAX_REQUESTS)] = Field(
        default=100, description="Fewer requests than this make the verdict Inconclusive.")
    max_error_rate: Annotated[float, Number(0, 1)] = Field(
        default=0.01, description="Errors per request above this fail the gate.")
    max_ttft_p95_seconds: Annotated[float, Number(0, MAX_SECONDS, exclusive_minimum=True)] | None \
        = Field(default=None, alias="maxTTFTP95Seconds",
                description="p95 time to first token, in seconds, above this fails the gate.")
    max_itl_p95_seconds: Annotated[float, Number(0, MAX_SECONDS, exclusive_minimum=True)] | None \
        = Field(default=None, alias="maxITLP95Seconds",
                description="p95 inter-token latency, in seconds, above this fails the gate.")
    max_ratio_to_baseline: Annotated[float, Number(1, MAX_RATIO)] | None = Field(
        default=None,
        description="An error rate or p95 above the current revision's times this fails the "
                    "gate.")
    failure_tolerance_seconds: Duration0 = Field(
        default=60,
        description="How long the gate may fail continuously before the rollout is rolled "
                    "back.")


class StrategyModel(ApiModel):
    """How a new revision replaces the current one."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        # has(): the API server also checks the rules against the default, {}.
        {"rule": "!has(self.type) || self.type != 'Canary' || has(self.canary)",
         "message": "strategy.type Canary needs strategy.canary.steps",
         "fieldPath": ".canary"},
        {"rule": "!has(self.canary) || has(self.analysis)"
                 " || self.canary.steps.all(s, !has(s.analysis))",
         "message": "a canary analysis step needs strategy.analysis",
         "fieldPath": ".canary.steps"},
    ]})

    type: StrategyType = Field(default=ROLLING_UPDATE, description="The strategy.")
    rolling_update: RollingUpdate = Field(default=RollingUpdate())
    blue_green: BlueGreen = Field(default=BlueGreen())
    canary: Canary | None = Field(
        default=None,
        description="The canary's steps and limits. Required when type is Canary; checked "
                    "whenever present.")
    analysis: Analysis | None = None

    @model_validator(mode="after")
    def _canary_rules(self) -> StrategyModel:
        """Canary needs steps; an analysis step needs strategy.analysis."""
        if self.type == CANARY and self.canary is None:
            raise invalid("is required when strategy.type is Canary", ".canary.steps")
        if self.canary is not None and self.analysis is None:
            for i, step in enumerate(self.canary.steps):
                if step.analysis is not None:
                    raise invalid("is an analysis step but spec.strategy.analysis is not set",
                                  f".canary.steps[{i}]")
        return self


# --- routes ------------------------------------------------------------------------------


class ParentRef(ApiModel):
    """A Gateway (or one of its listeners) the HTTPRoute attaches to, as Gateway API's
    ParentReference."""

    group: Annotated[str, String(253)] | None = Field(
        default=None, description="The parent's API group. Default: gateway.networking.k8s.io.")
    kind: Annotated[str, String(63)] | None = Field(
        default=None, description="The parent's kind. Default: Gateway.")
    namespace: Annotated[str, String(63)] | None = Field(
        default=None, description="The parent's namespace. Default: the route's.")
    name: Annotated[str, String(253, min_length=1)] = Field(
        description="The parent's name. Required.")
    section_name: Annotated[str, String(253)] | None = Field(
        default=None, description="A listener of the Gateway, by name.")
    port: Port | None = Field(default=None, description="A listener of the Gateway, by port.")

    def as_dict(self) -> dict[str, Any]:
        """The reference as written (a whole-number port as an int)."""
        return self.model_dump(by_alias=True, exclude_none=True)


_DURATION_PART = re.compile(r"([0-9]+)(h|ms|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def duration_seconds(text: str) -> float:
    """Seconds in a Gateway API duration such as "1h30m" or "500ms"."""
    return sum(int(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(text))


class RouteTimeouts(ApiModel):
    """Gateway API rule timeouts, copied to every rule: streamed generations outlive many
    gateways' defaults. Gateway API durations such as "0s" (no timeout) or "5m"."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [{
        "rule": "!(has(self.request) && has(self.backendRequest)"
                " && duration(self.request) != duration('0s')"
                " && duration(self.backendRequest) > duration(self.request))",
        "message": "backendRequest must be no longer than request",
    }]})

    request: Duration | None = Field(default=None,
                                     description="Timeout for the whole request.")
    backend_request: Duration | None = Field(
        default=None, description="Timeout for one request to a backend; at most request.")

    @model_validator(mode="after")
    def _backend_within_request(self) -> RouteTimeouts:
        """Gateway API refuses a backendRequest timeout longer than a finite request one."""
        if self.request is None or self.backend_request is None:
            return self
        request = duration_seconds(self.request)
        if request and duration_seconds(self.backend_request) > request:
            raise invalid(f"must be no longer than request ({self.request}), not "
                          f"{self.backend_request}", ".backendRequest")
        return self


class PreviewRoute(ApiModel):
    """A second HTTPRoute, named <name>-preview, to the deploying revision only."""

    hostnames: Annotated[tuple[Hostname, ...], ListOf(MAX_HOSTNAMES)] = Field(
        default=(), description="Hostnames of the preview route.")
    path_prefix: PathPrefix = Field(default="/", description="The path prefix the rule matches.")


class Route(ApiModel):
    """The Gateway API HTTPRoute to compose. Absent, no route is composed."""

    parent_refs: Annotated[tuple[ParentRef, ...], ListOf(
        MAX_PARENT_REFS, min_items=1,
        too_few="needs at least one parent (the Gateway to attach to)")] = Field(
        description="The Gateways the route attaches to.")
    hostnames: Annotated[tuple[Hostname, ...], ListOf(MAX_HOSTNAMES)] = Field(
        default=(), description="Hostnames of the main route.")
    path_prefix: PathPrefix = Field(default="/", description="The path prefix the rule matches.")
    timeouts: RouteTimeouts | None = None
    preview: PreviewRoute | None = None


# --- the spec ----------------------------------------------------------------------------


class HealthPolicy(ApiModel):
    """Which health states get a replica replaced, and when health data is stale."""

    cleanup_target_statuses: Annotated[tuple[CleanupStatus, ...],
                                       ListOf(len(CLEANUP_STATUSES), unique=True)] = Field(
        default=(UNHEALTHY,), json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Health states that get a Running replica replaced.")
    status_ttl_seconds: Duration0 = Field(
        default=120, alias="statusTTLSeconds",
        description="Health data older than max(statusTTLSeconds, 3 * intervalSeconds) is "
                    "stale: the replica is Degraded.")


class ModelDeploymentSpec(ApiModel):
    """The desired state of a ModelDeployment."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [{
        "rule": "!has(self.activeRevision)"
                " || self.revisions.exists(r, r.name == self.activeRevision)",
        "message": "spec.activeRevision must name an entry of spec.revisions",
        "fieldPath": ".activeRevision",
    }]})

    replicas: Annotated[int, Integer(0, MAX_REPLICAS)] = Field(
        default=1, description="Desired serving replicas.")
    revisions: Annotated[tuple[Revision, ...], ListOf(
        MAX_REVISIONS, min_items=1, too_few="needs at least one revision")] = Field(
        json_schema_extra={"x-kubernetes-list-type": "map",
                           "x-kubernetes-list-map-keys": ["name"]},
        description="The revisions, keyed by name.")
    active_revision: RevisionName | None = Field(
        default=None, description="The revision that should serve. Default: the last listed.")
    strategy: StrategyModel = Field(default=StrategyModel(), json_schema_extra={"default": {}})
    promote: RevisionName | None = Field(
        default=None,
        description="Approval to promote this deploying revision: the BlueGreen gate, "
                    "manual canary pauses, an inconclusive analysis.")
    progress_deadline_seconds: Duration1 = Field(
        default=1800, description="No progress for this long rolls the deploying revision back.")
    min_ready_seconds: Duration0 = Field(
        default=0, description="How long a replica must be Ready to count as available.")
    drain_seconds: Duration0 = Field(
        default=30, description="How long a replica is out of every route before it is deleted.")
    route: Route | None = None
    health_policy: HealthPolicy = Field(default=HealthPolicy(), json_schema_extra={"default": {}})

    @model_validator(mode="after")
    def _revision_references(self) -> ModelDeploymentSpec:
        """Revision names are unique; activeRevision names a listed revision."""
        seen: set[str] = set()
        for i, revision in enumerate(self.revisions):
            if revision.name in seen:
                raise invalid(f"duplicate revision name {revision.name!r}",
                              f".revisions[{i}].name")
            seen.add(revision.name)
        if self.active_revision is not None and self.active_revision not in seen:
            raise invalid(f"{self.active_revision!r} is not listed in spec.revisions",
                          ".activeRevision")
        return self


# --- the function Input ------------------------------------------------------------------

EXAMPLE_API_VERSION = "serving.rollout.dev/v1alpha1"


class ReplicaKind(ApiModel):
    """The apiVersion and kind of the composed resource desired for each serving replica."""

    api_version: Annotated[str, String(253)] = Field(
        default=EXAMPLE_API_VERSION, description="API version of the replica resource.")
    kind: Annotated[str, String(63)] = Field(default="ModelReplica",
                                             description="Kind of the replica resource.")


class EndpointKind(ApiModel):
    """The apiVersion and kind of the composed resource desired for each Ready replica,
    which routes reference."""

    api_version: Annotated[str, String(253)] = Field(
        default=EXAMPLE_API_VERSION, description="API version of the endpoint resource.")
    kind: Annotated[str, String(63)] = Field(default="ModelEndpoint",
                                             description="Kind of the endpoint resource.")


class FunctionInput(ApiModel):
    """Input configures function-model-rollout. Every field is optional; the defaults compose
    serving.rollout.dev/v1alpha1 ModelReplica and ModelEndpoint resources."""

    replica: ReplicaKind = Field(default=ReplicaKind())
    endpoint: EndpointKind = Field(default=EndpointKind())
