"""Watches one ModelDeployment on a live control plane and checks what users rely on.

It watches the XR, its ModelReplicas, ModelEndpoints and HTTPRoutes, applies
every event to a local copy in arrival order, and after each one checks:

- every backendRef of every route resolves (through an endpoint's
  ``status.routing.backendName``) to a replica that is Ready, not Unhealthy and
  not draining;
- the main route's serving capacity (distinct routed replicas that are Ready,
  not Unhealthy, not draining) is at least the floor, ``replicas -
  maxUnavailable``, once the deployment has first reached it (after a scale-up,
  the old floor holds until the new one is first reached);
- a replica that was ever routed is deleted only out of every route and at
  least its ``drain-seconds`` after ``draining-since``;
- the XR never reports ``Synced=False`` (a Fatal result or a reconcile error),
  stays Ready once it has been Ready (but while a scale-up warms up), and its
  watch circuit breaker never opens
  (``Responsive=False``).

Objects are applied one at a time by Crossplane, so a state that a single
response makes consistent can be seen half-applied for a moment (a replica
annotated as draining before the route without it lands). A condition counts as
a violation only when it lasts longer than ``grace`` seconds; the longest such
window seen is recorded, with every timing, for docs/control-plane.md.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lightkube import Client
from lightkube.types import on_error_retry

from devplatform.controller import HTTPRoute, ModelDeployment, ModelEndpoint, ModelReplica

ANN_DRAINING = "serving.rollout.dev/draining-since"
ANN_DRAIN_SECONDS = "serving.rollout.dev/drain-seconds"
LABEL_DEPLOYMENT = "serving.rollout.dev/deployment"
LABEL_REVISION = "serving.rollout.dev/revision"
KINDS = {"ModelDeployment": ModelDeployment, "ModelReplica": ModelReplica,
         "ModelEndpoint": ModelEndpoint, "HTTPRoute": HTTPRoute}

Obj = Mapping[str, Any]


def parse_time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def cond(obj: Obj, kind: str) -> Mapping[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c
    return None


def ready(replica: Obj) -> bool:
    c = cond(replica, "Ready")
    return bool(c) and c.get("status") == "True"  # type: ignore[union-attr]


def annotations(obj: Obj) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def draining(replica: Obj) -> bool:
    return ANN_DRAINING in annotations(replica)


def unhealthy(replica: Obj) -> bool:
    return ((replica.get("status") or {}).get("health") or {}).get("state") == "Unhealthy"


def resolve_percent(value: Any, n: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        exact = n * float(value[:-1]) / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value)


def floor_of(spec: Obj) -> int:
    """N - maxUnavailable under the spec (both 0: unavailable 1, as the README says)."""
    n = int(spec.get("replicas", 1))
    strategy = spec.get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return n
    rolling = strategy.get("rollingUpdate") or {}
    surge = resolve_percent(rolling.get("maxSurge", "25%"), n, True)
    unavailable = resolve_percent(rolling.get("maxUnavailable", 0), n, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return max(0, n - unavailable)


@dataclass
class Window:
    """A condition's open window: since when it holds, and the longest seen."""

    started: dict[str, float] = field(default_factory=dict)
    longest: float = 0.0
    longest_what: str = ""

    def update(self, holding: Iterable[str], now: float) -> None:
        holding = set(holding)
        for what in list(self.started):
            if what not in holding:
                self.close(what, now)
        for what in holding:
            self.started.setdefault(what, now)

    def close(self, what: str, now: float) -> None:
        length = now - self.started.pop(what)
        if length > self.longest:
            self.longest, self.longest_what = length, what

    def overdue(self, now: float, grace: float) -> list[str]:
        return [f"{what} for {now - t:.1f}s" for what, t in self.started.items()
                if now - t > grace]


@dataclass
class Checker:
    client: Client
    namespace: str
    xr: str
    grace: float = 3.0
    objects: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {k: {} for k in KINDS})
    violations: list[str] = field(default_factory=list)
    events: list[tuple[float, str, str, str]] = field(default_factory=list)
    unready_routed: Window = field(default_factory=Window)
    below_floor: Window = field(default_factory=Window)
    not_synced: Window = field(default_factory=Window)
    not_ready: Window = field(default_factory=Window)
    xr_was_ready: bool = False
    breaker_opened: list[float] = field(default_factory=list)
    # timings, in seconds since the epoch, per replica name
    ready_at: dict[str, float] = field(default_factory=dict)
    endpoint_at: dict[str, float] = field(default_factory=dict)
    routed_at: dict[str, float] = field(default_factory=dict)
    ever_routed: set[str] = field(default_factory=set)
    unhealthy_at: dict[str, float] = field(default_factory=dict)
    deleted: dict[str, float] = field(default_factory=dict)
    xr_deleting: bool = False
    floor: int | None = None
    floor_reached: bool = False
    min_capacity: int | None = None
    status_keys_written: set[str] = field(default_factory=set)
    # every distinct set of revisions the main route carried at once
    main_route_mixes: set[frozenset[str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._queue: queue.Queue[tuple[float, str, str, dict[str, Any]]] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    # --- event plumbing -------------------------------------------------------------------
    def start(self) -> Checker:
        for kind, res in KINDS.items():
            t = threading.Thread(target=self._watch, args=(kind, res), daemon=True)
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=self._consume, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def _watch(self, kind: str, res: Any) -> None:
        while not self._stop.is_set():
            try:
                for event, obj in self.client.watch(res, namespace=self.namespace,
                                                    server_timeout=5, on_error=on_error_retry):
                    self._queue.put((time.time(), kind, event, obj.to_dict()))
                    if self._stop.is_set():
                        return
            except Exception as error:  # a watch that broke is restarted
                if self._stop.is_set():
                    return
                self._queue.put((time.time(), "error", "WATCH", {"error": str(error)}))
                time.sleep(0.2)

    def _consume(self) -> None:
        while not self._stop.is_set() or not self._queue.empty():
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                self.tick(time.time())
                continue
            with self._lock:
                self.apply(*item)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)

    def tick(self, now: float) -> None:
        with self._lock:
            self.check(now)

    # --- the model -----------------------------------------------------------------------
    def owned(self, kind: str, obj: Obj) -> bool:
        name = (obj.get("metadata") or {}).get("name")
        if kind == "ModelDeployment":
            return name == self.xr
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return labels.get("crossplane.io/composite") == self.xr \
            or labels.get(LABEL_DEPLOYMENT) == self.xr

    def apply(self, now: float, kind: str, event: str, obj: dict[str, Any]) -> None:
        if kind == "error" or not self.owned(kind, obj):
            return
        name = obj["metadata"]["name"]
        self.events.append((now, kind, event, name))
        store = self.objects[kind]
        if event == "DELETED":
            store.pop(name, None)
            if kind == "ModelReplica":
                self.on_replica_deleted(name, obj, now)
            if kind == "ModelDeployment":
                self.xr_deleting = True
        else:
            store[name] = obj
            if kind == "ModelDeployment" and (obj.get("metadata") or {}).get("deletionTimestamp"):
                self.xr_deleting = True
            if kind == "ModelDeployment":
                self.status_keys_written |= set((obj.get("status") or {}).keys())
            if kind == "ModelReplica" and ready(obj) and name not in self.ready_at:
                self.ready_at[name] = now
            if kind == "ModelReplica" and unhealthy(obj) and name not in self.unhealthy_at:
                self.unhealthy_at[name] = now
            if kind == "ModelEndpoint":
                replica = (obj.get("spec") or {}).get("replica")
                if replica and replica not in self.endpoint_at:
                    self.endpoint_at[replica] = now
        self.check(now)

    def routed(self) -> dict[str, set[str]]:
        """Replica names each route references (through endpoints' backends)."""
        by_backend = {}
        for e in self.objects["ModelEndpoint"].values():
            backend = ((e.get("status") or {}).get("routing") or {}).get("backendName")
            if backend:
                by_backend[backend] = (e.get("spec") or {}).get("replica")
        out: dict[str, set[str]] = {}
        for rname, route in self.objects["HTTPRoute"].items():
            names: set[str] = set()
            for rule in (route.get("spec") or {}).get("rules") or []:
                for ref in rule.get("backendRefs") or []:
                    names.add(by_backend.get(ref.get("name"), f"<unresolved {ref.get('name')}>"))
            out[rname] = names
        return out

    def check(self, now: float) -> None:
        if self.xr_deleting:
            for w in (self.unready_routed, self.below_floor, self.not_synced, self.not_ready):
                w.update((), now)
            return
        replicas = self.objects["ModelReplica"]
        routes = self.routed()
        bad = []
        for route, names in routes.items():
            for name in names:
                self.ever_routed.add(name)
                if name not in self.routed_at and name in replicas:
                    self.routed_at[name] = now
                r = replicas.get(name)
                if r is None:
                    bad.append(f"{route} -> {name} (no such replica)")
                elif not ready(r) or unhealthy(r) or draining(r):
                    why = "draining" if draining(r) else "not Ready" if not ready(r) \
                        else "Unhealthy"
                    bad.append(f"{route} -> {name} ({why})")
        self.unready_routed.update(bad, now)
        self.main_route_mixes.add(frozenset(
            ((replicas.get(n) or {}).get("metadata") or {}).get("labels", {}).get(
                LABEL_REVISION, "?") for n in routes.get(self.xr, set())))
        xr = self.objects["ModelDeployment"].get(self.xr)
        if xr is not None:
            self.check_floor(xr, routes, replicas, now)
            synced = cond(xr, "Synced")
            if synced is not None and synced.get("status") == "False":
                self.not_synced.update([f"Synced=False: {synced.get('message')}"], now)
            else:
                self.not_synced.update((), now)
            # A healthy deployment stays Ready through every rollout, once Ready.
            # A scale-up is not a rollout: Available (and so Ready) counts
            # against the new size until the new replicas serve.
            is_ready = (cond(xr, "Ready") or {}).get("status") == "True"
            self.xr_was_ready = self.xr_was_ready or is_ready
            scaling_up = floor_of(xr.get("spec") or {}) > (self.floor or 0)
            self.not_ready.update(["XR Ready is not True"] if self.xr_was_ready
                                  and not is_ready and not scaling_up else (), now)
            responsive = cond(xr, "Responsive")
            if responsive is not None and responsive.get("status") == "False":
                if not self.breaker_opened:
                    self.violations.append(
                        f"watch circuit breaker open: {responsive.get('message')}")
                self.breaker_opened.append(now)
        for w, what in ((self.unready_routed, "route carries an unserving replica"),
                        (self.below_floor, "routed capacity below the floor"),
                        (self.not_synced, "XR not synced"),
                        (self.not_ready, "XR lost readiness")):
            for late in w.overdue(now, self.grace):
                msg = f"{what}: {late}"
                if msg.split(" for ")[0] not in {v.split(" for ")[0] for v in self.violations}:
                    self.violations.append(msg)

    def check_floor(self, xr: Obj, routes: Mapping[str, set[str]],
                    replicas: Mapping[str, Obj], now: float) -> None:
        target = floor_of(xr.get("spec") or {})
        main = routes.get(self.xr, set())
        capacity = sum(1 for n in main if n in replicas and ready(replicas[n])
                       and not draining(replicas[n]) and not unhealthy(replicas[n]))
        # A lower floor applies at once; a higher one (scale-up) once first reached.
        if self.floor is None or target < self.floor or capacity >= target:
            self.floor = target
        if not self.floor_reached:
            # The first deployment warms up from nothing: no floor until reached.
            self.floor_reached = self.floor > 0 and capacity >= self.floor
            self.below_floor.update((), now)
            return
        if self.min_capacity is None or capacity < self.min_capacity:
            self.min_capacity = capacity
        below = capacity < self.floor
        self.below_floor.update([f"capacity {capacity} < floor {self.floor}"] if below else (),
                                now)

    def on_replica_deleted(self, name: str, obj: Obj, now: float) -> None:
        if self.xr_deleting or name not in self.ever_routed:
            return
        still = [route for route, names in self.routed().items() if name in names]
        if still:
            self.violations.append(f"routed replica {name} deleted while in {still}")
        since = parse_time(annotations(obj).get(ANN_DRAINING))
        drain = float(annotations(obj).get(ANN_DRAIN_SECONDS) or 0)
        if since is None:
            self.violations.append(f"routed replica {name} deleted without draining")
        # Timestamps have one-second resolution.
        elif now - since < drain - 1.0:
            self.violations.append(
                f"routed replica {name} deleted {now - since:.1f}s into a {drain:.0f}s drain")
        self.deleted[name] = now

    # --- results -------------------------------------------------------------------------
    def xr_obj(self) -> dict[str, Any] | None:
        with self._lock:
            return self.objects["ModelDeployment"].get(self.xr)

    def snapshot(self) -> dict[str, dict[str, dict[str, Any]]]:
        with self._lock:
            return {k: dict(v) for k, v in self.objects.items()}

    def reaction_times(self) -> dict[str, list[float]]:
        """Per replica: Ready -> endpoint composed, Ready -> route carrying it (seconds)."""
        out: dict[str, list[float]] = {"endpoint": [], "route": []}
        for name, t in self.ready_at.items():
            if name in self.endpoint_at and self.endpoint_at[name] >= t - 0.01:
                out["endpoint"].append(self.endpoint_at[name] - t)
            if name in self.routed_at and self.routed_at[name] >= t - 0.01:
                out["route"].append(self.routed_at[name] - t)
        return out
