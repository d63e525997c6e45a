"""A closed-loop stand-in for Crossplane and the serving platform around the function.

Each `step()` builds a RunFunctionRequest from the world (the XR with the status
the function wrote before, and every composed resource as observed), calls the
function, applies the response as Crossplane would (nothing at all on a Fatal
result; otherwise create, update and delete composed resources by key and
persist the XR status and conditions), then advances the clock and lets the
platform move replicas through their lives according to each replica's fate.

Accelerators: with `gpus` set, the platform has that many. A replica takes one
when one is free, oldest first, and holds it until it is deleted (draining
too); until then it publishes `Scheduled=False` (reason InsufficientCapacity)
and does not start warming up. `gpus` may change between steps (capacity
freed or taken elsewhere in the cluster). With `gpus` None (the default) every
replica is scheduled at once and no Scheduled condition is published.
"""

from __future__ import annotations

import copy
import pickle
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from crossplane.function import resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from google.protobuf import json_format

from function import naming
from function.fn import FunctionRunner

T0 = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)


def ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ServiceLevel:
    """What a replica's metrics adapter publishes as status.metrics, per window.

    requests: served per window while the replica is on a route (main or
    preview; every Ready replica when no route is composed), 0 while on none;
    round(requests * error_rate) of them failed; the p95 latencies in seconds
    (None: not published; never published over 0 requests).
    """

    requests: int = 600
    error_rate: float = 0.0
    ttft_p95: float | None = 0.4
    itl_p95: float | None = 0.03
    window: int = 60


@dataclass
class Fate:
    """How one replica lives: when it becomes Ready, whether and when it breaks, how it serves.

    The service-level fields draw independently of the rest: `service` alone
    is a steady revision (good, slow, erroring); with `service_alt` it flaps
    between the two every `service_period` seconds after Ready; with
    `metrics_stale_after` the adapter stops publishing (observedTime freezes).
    """

    warmup: float = 60.0  # seconds until Ready; None-like large values mean never
    never_ready: bool = False
    start_failure: bool = False  # reports status.phase Failed after `warmup`
    crash_after: float | None = None  # seconds after Ready, it stops being Ready for good
    unhealthy_after: float | None = None  # seconds after Ready, health turns Unhealthy
    stale_after: float | None = None  # seconds after Ready, health probes stop
    no_health: bool = False  # the prober never reports
    backend_lag: float = 0.0  # seconds after Ready until the endpoint publishes backendName
    flap_after: float | None = None  # seconds after Ready, readiness drops once...
    flap_for: float = 20.0  # ...for this long, then returns with a new transition time
    service: ServiceLevel | None = None  # status.metrics while Ready; None publishes none
    service_alt: ServiceLevel | None = None  # flapping: `service`, then this, then `service`...
    service_period: float = 120.0  # ...each for this many seconds after Ready
    metrics_stale_after: float | None = None  # seconds after Ready, metrics stop being updated


FateFor = Callable[[str, int], Fate]


@dataclass
class Lived:
    created: datetime
    fate: Fate
    ready_at: datetime | None = None
    lost_at: datetime | None = None
    scheduled_at: datetime | None = None  # when it got an accelerator; warm-up starts then


@dataclass
class Step:
    now: datetime
    request: fnv1.RunFunctionRequest
    response: fnv1.RunFunctionResponse
    observed: dict[str, dict[str, Any]]
    desired: dict[str, dict[str, Any]]
    status: dict[str, Any]
    fatal: bool
    applied: bool


@dataclass
class World:
    spec: dict[str, Any]
    fate_for: FateFor = field(default=lambda revision, index: Fate())
    name: str = "qwen"
    namespace: str = "ml-team"
    now: datetime = T0
    status: dict[str, Any] = field(default_factory=dict)
    composed: dict[str, dict[str, Any]] = field(default_factory=dict)
    lives: dict[str, Lived] = field(default_factory=dict)
    deleted: list[tuple[datetime, str, dict[str, Any]]] = field(default_factory=list)
    history: list[Step] = field(default_factory=list)
    call: Callable[[fnv1.RunFunctionRequest, datetime], fnv1.RunFunctionResponse] | None = None
    route_accept_lag: float = 0.0
    gpus: int | None = None  # accelerators in the pool; None: as many as asked for

    # --- the request ------------------------------------------------------------------

    def xr(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "apiVersion": "serving.rollout.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": self.spec,
        }
        if self.status:
            body["status"] = self.status
        return body

    def request(self) -> fnv1.RunFunctionRequest:
        req = fnv1.RunFunctionRequest(
            observed=fnv1.State(composite=fnv1.Resource(resource=resource.dict_to_struct(self.xr())))
        )
        for key, body in self.composed.items():
            req.observed.resources[key].resource.update(body)
        return req

    # --- one reconcile ----------------------------------------------------------------

    def step(self, dt: float = 10.0, *, apply: bool = True) -> Step:
        req = self.request()
        # A pickle round trip copies these plain dicts several times faster than deepcopy.
        observed = pickle.loads(pickle.dumps(self.composed, pickle.HIGHEST_PROTOCOL))
        if self.call is not None:
            rsp = self.call(req, self.now)
        else:
            rsp = FunctionRunner(clock=lambda: self.now).run(req)
        fatal = any(r.severity == fnv1.SEVERITY_FATAL for r in rsp.results)
        # In key order: a protobuf map iterates in an order that differs between
        # processes, and replicas draw their fates in the order they are created.
        desired = {
            key: json_format.MessageToDict(rsp.desired.resources[key].resource)
            for key in sorted(rsp.desired.resources)
        }
        status = json_format.MessageToDict(rsp.desired.composite.resource).get("status", {})
        applied = apply and not fatal
        if applied:
            self.apply(desired, status, rsp)
        record = Step(self.now, req, rsp, observed, desired, status, fatal, applied)
        self.history.append(record)
        self.advance(dt)
        return record

    def apply(self, desired: dict[str, dict[str, Any]], status: dict[str, Any],
              rsp: fnv1.RunFunctionResponse) -> None:
        for key in list(self.composed):
            if key not in desired:
                self.deleted.append((self.now, key, self.composed.pop(key)))
                self.lives.pop(key, None)
        for key, body in desired.items():
            if key in self.composed:
                existing = self.composed[key]
                existing["metadata"] = {
                    **body.get("metadata", {}),
                    "creationTimestamp": existing["metadata"]["creationTimestamp"],
                }
                existing["spec"] = body.get("spec", {})
            else:
                created = copy.deepcopy(body)
                created.setdefault("metadata", {})["creationTimestamp"] = ts(self.now)
                self.composed[key] = created
                parsed = naming.parse_replica_key(key)
                if parsed is not None:
                    self.lives[key] = Lived(created=self.now, fate=self.fate_for(*parsed))
        self.schedule()
        conditions = [
            {
                "type": c.type,
                "status": {fnv1.STATUS_CONDITION_TRUE: "True",
                           fnv1.STATUS_CONDITION_FALSE: "False"}.get(c.status, "Unknown"),
                "reason": c.reason,
                "message": c.message,
            }
            for c in rsp.conditions
        ]
        self.status = {**status, "conditions": conditions}

    # --- the platform -----------------------------------------------------------------

    def schedule(self) -> None:
        """Hand free accelerators to waiting replicas, oldest first (then by key)."""
        waiting = [(lived.created, key) for key, lived in self.lives.items()
                   if lived.scheduled_at is None]
        if self.gpus is not None:
            free = self.gpus - sum(1 for lived in self.lives.values()
                                   if lived.scheduled_at is not None)
            waiting = sorted(waiting)[:max(0, free)]
        for _, key in waiting:
            self.lives[key].scheduled_at = self.now

    def gpus_held(self) -> int:
        return sum(1 for lived in self.lives.values() if lived.scheduled_at is not None)

    def unschedulable(self) -> list[str]:
        """Replicas waiting for an accelerator, by key."""
        return sorted(key for key, lived in self.lives.items() if lived.scheduled_at is None)

    def advance(self, dt: float) -> None:
        self.now += timedelta(seconds=dt)
        self.schedule()
        routed = self.routed_backends()
        for key, body in self.composed.items():
            if key in self.lives:
                self.live(key, body, self.lives[key])
                self.serve(body, self.lives[key], routed)
        for key, body in self.composed.items():
            parsed = naming.parse_endpoint_key(key)
            if parsed is not None:
                self.publish_endpoint(key, body, parsed)
            elif key in (naming.ROUTE_KEY, naming.PREVIEW_ROUTE_KEY):
                created = datetime.fromisoformat(body["metadata"]["creationTimestamp"])
                if (self.now - created).total_seconds() >= self.route_accept_lag:
                    body["status"] = {"parents": [{"parentRef": {"name": "gw"}, "conditions": [
                        {"type": "Accepted", "status": "True"}]}]}

    def live(self, key: str, body: dict[str, Any], lived: Lived) -> None:
        status = body.setdefault("status", {})
        if lived.scheduled_at is None:
            status["conditions"] = [
                {"type": "Ready", "status": "False", "lastTransitionTime": ts(lived.created)},
                {"type": "Scheduled", "status": "False", "reason": "InsufficientCapacity",
                 "message": "0/8 nodes have a free nvidia.com/gpu",
                 "lastTransitionTime": ts(lived.created)}]
            return
        self.run_replica(status, key, lived)
        if self.gpus is not None:
            status["conditions"] = [c for c in status["conditions"] if c["type"] != "Scheduled"]
            status["conditions"].append({"type": "Scheduled", "status": "True",
                                         "lastTransitionTime": ts(lived.scheduled_at)})

    def run_replica(self, status: dict[str, Any], key: str, lived: Lived) -> None:
        """A scheduled replica's life: warm-up from when it was scheduled, then its fate."""
        fate, now = lived.fate, self.now
        assert lived.scheduled_at is not None
        warm_done = now >= lived.scheduled_at + timedelta(seconds=fate.warmup)
        if fate.start_failure and warm_done:
            status.update({"phase": "Failed", "message": "engine exited: CUDA out of memory",
                           "conditions": [{"type": "Ready", "status": "False",
                                           "lastTransitionTime": ts(now)}]})
            return
        if fate.never_ready or not warm_done:
            status["conditions"] = [{"type": "Ready", "status": "False",
                                     "lastTransitionTime": ts(lived.created)}]
            return
        if lived.ready_at is None:
            lived.ready_at = now
        since_ready = (now - lived.ready_at).total_seconds()
        if fate.flap_after is not None and since_ready >= fate.flap_after:
            down_at = lived.ready_at + timedelta(seconds=fate.flap_after)
            if since_ready < fate.flap_after + fate.flap_for:
                status["conditions"] = [{"type": "Ready", "status": "False",
                                         "lastTransitionTime": ts(down_at)}]
                status.pop("health", None)
                return
            # Back after the flap: Ready again from now on, flapping no more.
            lived.ready_at = down_at + timedelta(seconds=fate.flap_for)
            lived.fate = fate = Fate(**{**fate.__dict__, "flap_after": None})
            since_ready = (now - lived.ready_at).total_seconds()
        if fate.crash_after is not None and since_ready >= fate.crash_after:
            if lived.lost_at is None:
                lived.lost_at = now
            status["conditions"] = [{"type": "Ready", "status": "False",
                                     "lastTransitionTime": ts(lived.lost_at)}]
            status.pop("health", None)
            return
        status["conditions"] = [{"type": "Ready", "status": "True",
                                 "lastTransitionTime": ts(lived.ready_at)}]
        status["address"] = {"url": f"http://10.0.0.{zlib.crc32(key.encode()) % 250}:8000"}
        if fate.no_health:
            return
        state = "Healthy"
        if fate.unhealthy_after is not None and since_ready >= fate.unhealthy_after:
            state = "Unhealthy"
        probe = now
        if fate.stale_after is not None and since_ready >= fate.stale_after:
            probe = lived.ready_at + timedelta(seconds=fate.stale_after)
        status["health"] = {"state": state, "lastProbeTime": ts(probe),
                            "consecutiveFailures": 0 if state == "Healthy" else 3}

    def routed_backends(self) -> frozenset[str] | None:
        """Backend names some route carries; None when no route is composed (all serve)."""
        routes = [self.composed[k] for k in (naming.ROUTE_KEY, naming.PREVIEW_ROUTE_KEY)
                  if k in self.composed]
        if not routes:
            return None
        return frozenset(ref["name"] for route in routes for rule in route["spec"]["rules"]
                         for ref in rule.get("backendRefs", []))

    def serve(self, body: dict[str, Any], lived: Lived,
              routed: frozenset[str] | None) -> None:
        """Publish status.metrics as the replica's metrics adapter would, while it is Ready."""
        fate, now = lived.fate, self.now
        status = body.get("status", {})
        if fate.service is None or lived.ready_at is None or not any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions", [])):
            return
        since_ready = (now - lived.ready_at).total_seconds()
        if fate.metrics_stale_after is not None and since_ready >= fate.metrics_stale_after:
            return  # the adapter stopped: the last figures stay, with their observedTime
        level = fate.service
        if fate.service_alt is not None and int(since_ready // fate.service_period) % 2:
            level = fate.service_alt
        on_route = routed is None or f"{body['metadata']['name']}-svc" in routed
        requests = level.requests if on_route else 0
        metrics: dict[str, Any] = {"windowSeconds": level.window, "observedTime": ts(now),
                                   "requests": requests,
                                   "errors": round(requests * level.error_rate)}
        if requests:
            if level.ttft_p95 is not None:
                metrics["ttftP95Seconds"] = level.ttft_p95
            if level.itl_p95 is not None:
                metrics["itlP95Seconds"] = level.itl_p95
        status["metrics"] = metrics

    def publish_endpoint(self, key: str, body: dict[str, Any], parsed: tuple[str, int]) -> None:
        replica_key = naming.replica_key(*parsed)
        lived = self.lives.get(replica_key)
        if lived is None or lived.ready_at is None:
            return
        if (self.now - lived.ready_at).total_seconds() < lived.fate.backend_lag:
            return
        body["status"] = {
            "routing": {"backendName": f"{body['metadata']['name']}-svc"},
            "conditions": [{"type": "Ready", "status": "True"}],
        }

    # --- reading the world --------------------------------------------------------------

    def replicas(self, revision: str | None = None) -> list[str]:
        parsed = {k: naming.parse_replica_key(k) for k in self.composed}
        return sorted(k for k, p in parsed.items()
                      if p is not None and (revision is None or p[0] == revision))

    def run_until(self, predicate: Callable[[World], bool], *, dt: float = 10.0,
                  limit: int = 2000, check: Callable[[World, Step], None] | None = None) -> int:
        for calls in range(1, limit + 1):
            record = self.step(dt)
            if check is not None:
                check(self, record)
            if predicate(self):
                return calls
        raise AssertionError(f"not reached after {limit} calls; status: {self.status}")


def seeded_fates(seed: int, **ranges: Any) -> FateFor:
    rng = random.Random(seed)

    def fate(revision: str, index: int) -> Fate:
        return Fate(warmup=rng.uniform(20, 240), backend_lag=rng.choice([0, 0, 15]))

    return fate
