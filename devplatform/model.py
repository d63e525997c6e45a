"""What the example platform publishes: pure decisions from observed objects and the time.

The platform plays three controllers that a real serving platform would run:

- a ModelReplica controller: schedules a replica on the GPU pool (or reports
  ``Scheduled=False``), warms it up, marks it Ready, probes its health every
  ``healthCheck.intervalSeconds`` and reports the traffic it serves;
- a ModelEndpoint controller: publishes ``status.routing.backendName``, the
  Service a route may reference;
- a Gateway: accepts HTTPRoutes (``status.parents[].conditions[Accepted]``).

Every decision here is a function of the objects as read from the API server
and the current time, so the controller keeps no memory of its own and can be
restarted at any moment. Each function returns the status to merge, or None
when nothing changes, so an idle platform writes nothing.

Faults are injected by annotation, on a ModelReplica itself or on its
ModelDeployment for a whole revision (``v2=never-ready,v3=fail-start``):

- ``never-ready``: warms up forever;
- ``fail-start``: the engine cannot start (``phase: Failed``);
- ``unhealthy``: becomes Ready, then its health probe fails;
- ``crash``: becomes Ready, then loses readiness and warms up again;
- ``errors`` and ``slow``: its metrics report a fifth of its requests
  failing, or three times the usual latency.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

GROUP = "serving.rollout.dev"
ANNOTATION_INJECT = "devplatform.rollout.dev/inject"
ANNOTATION_WARMUP = "devplatform.rollout.dev/warmup-seconds"
LABEL_DEPLOYMENT = f"{GROUP}/deployment"
LABEL_REVISION = f"{GROUP}/revision"
ANNOTATION_DRAINING = f"{GROUP}/draining-since"
GATEWAY_CONTROLLER = "devplatform.rollout.dev/gateway"
FAULTS = ("never-ready", "fail-start", "unhealthy", "crash", "errors", "slow")
FAIL_START_AFTER = timedelta(seconds=2)
CRASH_AFTER = timedelta(seconds=5)
DEFAULT_PROBE_INTERVAL = 10

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class Settings:
    """How the simulated platform behaves; see ``python -m devplatform --help``."""

    gpus: int = 64
    warmup_seconds: float = 8.0
    endpoint_delay_seconds: float = 0.5
    requests_per_second: float = 100.0
    # "interval": refresh status.health.lastProbeTime after every probe, as a
    # Kubernetes-style prober does. "on-change": publish when the health state
    # changes, and refresh lastProbeTime only every heartbeat_seconds.
    probe_mode: str = "interval"
    heartbeat_seconds: float = 60.0
    # Publish status.metrics (requests under the routes' weights) every window.
    metrics: bool = True
    metrics_window_seconds: int = 30


def fmt(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def meta(obj: Obj) -> Mapping[str, Any]:
    m = obj.get("metadata")
    return m if isinstance(m, Mapping) else {}


def status_of(obj: Obj) -> Mapping[str, Any]:
    s = obj.get("status")
    return s if isinstance(s, Mapping) else {}


def condition(obj: Obj, kind: str) -> Mapping[str, Any] | None:
    for c in status_of(obj).get("conditions") or []:
        if isinstance(c, Mapping) and c.get("type") == kind:
            return c
    return None


def is_true(obj: Obj, kind: str) -> bool:
    c = condition(obj, kind)
    return c is not None and c.get("status") == "True"


def set_condition(obj: Obj, kind: str, status: str, reason: str, message: str,
                  now: datetime) -> list[dict[str, Any]]:
    """The object's conditions with one set; its transition time kept if the status is."""
    out: list[dict[str, Any]] = []
    found = False
    for c in status_of(obj).get("conditions") or []:
        if not isinstance(c, Mapping):
            continue
        if c.get("type") == kind:
            found = True
            since = c.get("lastTransitionTime") if c.get("status") == status else fmt(now)
            out.append({"type": kind, "status": status, "reason": reason, "message": message,
                        "lastTransitionTime": since or fmt(now)})
        else:
            out.append(dict(c))
    if not found:
        out.append({"type": kind, "status": status, "reason": reason, "message": message,
                    "lastTransitionTime": fmt(now)})
    return out


def parse_faults(value: Any) -> dict[str, str]:
    """'v2=never-ready,v3=fail-start' -> {'v2': 'never-ready', 'v3': 'fail-start'}."""
    out: dict[str, str] = {}
    if not isinstance(value, str):
        return out
    for part in value.split(","):
        revision, _, fault = part.strip().partition("=")
        if revision and fault in FAULTS:
            out[revision.strip()] = fault
    return out


def fault_for(replica: Obj, deployment: Obj | None) -> str | None:
    """The fault injected into a replica: its own annotation, else its revision's."""
    own = (meta(replica).get("annotations") or {}).get(ANNOTATION_INJECT)
    if own in FAULTS:
        return str(own)
    if deployment is None:
        return None
    revision = (meta(replica).get("labels") or {}).get(LABEL_REVISION)
    return parse_faults((meta(deployment).get("annotations") or {}).get(ANNOTATION_INJECT)).get(
        str(revision))


def warmup_for(deployment: Obj | None, settings: Settings) -> float:
    if deployment is not None:
        value = (meta(deployment).get("annotations") or {}).get(ANNOTATION_WARMUP)
        try:
            return max(0.0, float(value))
        except (TypeError, ValueError):
            pass
    return settings.warmup_seconds


def gpus_of(replica: Obj) -> int:
    engine = (replica.get("spec") or {}).get("engine") or {}
    resources = engine.get("resources") if isinstance(engine, Mapping) else None
    gpus = resources.get("gpus") if isinstance(resources, Mapping) else None
    return gpus if isinstance(gpus, int) and gpus >= 0 else 1


def probe_interval(replica: Obj) -> float:
    check = (replica.get("spec") or {}).get("healthCheck")
    if isinstance(check, Mapping) and isinstance(check.get("intervalSeconds"), int):
        return float(max(1, check["intervalSeconds"]))
    return float(DEFAULT_PROBE_INTERVAL)


def key(obj: Obj) -> tuple[str, str]:
    m = meta(obj)
    return str(m.get("namespace", "")), str(m.get("name", ""))


def created(obj: Obj) -> datetime | None:
    return parse_time(meta(obj).get("creationTimestamp"))


@dataclass
class World:
    """Everything the platform read in one pass, indexed for its decisions."""

    deployments: dict[tuple[str, str], Obj] = field(default_factory=dict)
    replicas: list[Obj] = field(default_factory=list)
    endpoints: list[Obj] = field(default_factory=list)
    routes: list[Obj] = field(default_factory=list)

    def deployment_of(self, replica: Obj) -> Obj | None:
        name = (meta(replica).get("labels") or {}).get(LABEL_DEPLOYMENT)
        return self.deployments.get((key(replica)[0], str(name)))


def schedule(replicas: Iterable[Obj], gpus: int) -> set[tuple[str, str]]:
    """The replicas that hold GPUs: those already scheduled, then the oldest pending that fit.

    A replica keeps its GPUs from being scheduled until it is deleted; a
    Failed one has released them.
    """
    placed: set[tuple[str, str]] = set()
    used = 0
    pending: list[Obj] = []
    for r in replicas:
        if status_of(r).get("phase") == "Failed":
            continue
        if is_true(r, "Scheduled"):
            placed.add(key(r))
            used += gpus_of(r)
        else:
            pending.append(r)
    far = datetime.max.replace(tzinfo=UTC)
    pending.sort(key=lambda r: (created(r) or far, key(r)))
    for r in pending:
        need = gpus_of(r)
        if used + need <= gpus:
            placed.add(key(r))
            used += need
    return placed


def traffic(world: World, rps: float) -> dict[tuple[str, str], float]:
    """Requests per second each replica serves: each route's rps split by backendRef weight."""
    endpoint_by_backend: dict[tuple[str, str], Obj] = {}
    for e in world.endpoints:
        backend = (status_of(e).get("routing") or {}).get("backendName")
        if isinstance(backend, str):
            endpoint_by_backend[(key(e)[0], backend)] = e
    out: dict[tuple[str, str], float] = {}
    for route in world.routes:
        ns = key(route)[0]
        if not is_accepted(route):
            continue
        for rule in (route.get("spec") or {}).get("rules") or []:
            refs = [ref for ref in rule.get("backendRefs") or [] if isinstance(ref, Mapping)]
            total = sum(int(ref.get("weight", 1)) for ref in refs)
            if total <= 0:
                continue
            for ref in refs:
                endpoint = endpoint_by_backend.get((ns, str(ref.get("name"))))
                if endpoint is None:
                    continue
                replica = (endpoint.get("spec") or {}).get("replica")
                share = rps * int(ref.get("weight", 1)) / total
                k = (ns, str(replica))
                out[k] = out.get(k, 0.0) + share
    return out


def is_accepted(route: Obj) -> bool:
    for parent in status_of(route).get("parents") or []:
        for c in parent.get("conditions") or []:
            if c.get("type") == "Accepted" and c.get("status") == "True":
                return True
    return False


def replica_status(replica: Obj, world: World, scheduled: bool, served_rps: float,
                   settings: Settings, now: datetime) -> dict[str, Any] | None:
    """The status to merge into one ModelReplica, or None when it is up to date."""
    deployment = world.deployment_of(replica)
    fault = fault_for(replica, deployment)
    status = status_of(replica)
    phase = status.get("phase")
    ns, name = key(replica)
    port = ((replica.get("spec") or {}).get("engine") or {}).get("port", 8000)
    address = {"url": f"http://{name}.{ns}.svc:{port}"}
    if phase == "Failed":
        return None
    if not scheduled:
        if is_true(replica, "Scheduled") or condition(replica, "Scheduled") is None:
            return {
                "phase": "Pending",
                "conditions": set_condition(
                    replica, "Scheduled", "False", "InsufficientCapacity",
                    f"needs {gpus_of(replica)} GPU(s); the pool of {settings.gpus} is in use",
                    now),
            }
        return None
    scheduled_cond = condition(replica, "Scheduled")
    if scheduled_cond is None or scheduled_cond.get("status") != "True":
        conditions = set_condition(replica, "Scheduled", "True", "Scheduled",
                                   "GPUs allocated", now)
        conditions = set_condition({"status": {"conditions": conditions}}, "Ready", "False",
                                   "Loading", "loading model weights", now)
        return {"phase": "Loading", "address": address, "conditions": conditions}
    since = parse_time(scheduled_cond.get("lastTransitionTime")) or now
    if fault == "fail-start" and now - since >= FAIL_START_AFTER:
        return {
            "phase": "Failed",
            "message": "engine exited with code 1: CUDA error: out of memory",
            "conditions": set_condition(replica, "Ready", "False", "Failed",
                                        "engine exited", now),
        }
    ready = is_true(replica, "Ready")
    if not ready:
        warm_from = since
        ready_cond = condition(replica, "Ready")
        if ready_cond is not None and ready_cond.get("reason") == "Crashed":
            warm_from = parse_time(ready_cond.get("lastTransitionTime")) or since
        warm = timedelta(seconds=warmup_for(deployment, settings))
        if fault in ("never-ready", "fail-start") or now - warm_from < warm:
            return None
        return {
            "phase": "Running",
            "address": address,
            "health": {"state": "Healthy", "lastProbeTime": fmt(now), "consecutiveFailures": 0},
            "conditions": set_condition(replica, "Ready", "True", "Serving",
                                        "engine is serving", now),
            **metrics_status(replica, served_rps, settings, now, force=True, fault=fault),
        }
    ready_since = parse_time((condition(replica, "Ready") or {}).get("lastTransitionTime")) or now
    if fault == "crash" and now - ready_since >= CRASH_AFTER:
        return {
            "phase": "Loading",
            "health": {"state": "Unhealthy", "lastProbeTime": fmt(now), "consecutiveFailures": 1},
            "conditions": set_condition(replica, "Ready", "False", "Crashed",
                                        "engine restarted after a crash", now),
        }
    return probe(replica, fault, served_rps, settings, now)


def probe(replica: Obj, fault: str | None, served_rps: float, settings: Settings,
          now: datetime) -> dict[str, Any] | None:
    """A Ready replica's health probe and traffic metrics, when they are due or changed."""
    health = status_of(replica).get("health") or {}
    last = parse_time(health.get("lastProbeTime"))
    interval = probe_interval(replica)
    state = "Unhealthy" if fault == "unhealthy" else "Healthy"
    failures = int(health.get("consecutiveFailures") or 0)
    due = last is None or (now - last).total_seconds() >= interval
    out: dict[str, Any] = {}
    changed = state != health.get("state")
    if due or changed:
        failures = failures + 1 if state == "Unhealthy" else 0
        heartbeat = last is None or (now - last).total_seconds() >= settings.heartbeat_seconds
        if settings.probe_mode == "interval" or changed or heartbeat:
            out["health"] = {"state": state, "lastProbeTime": fmt(now),
                             "consecutiveFailures": failures}
    out.update(metrics_status(replica, served_rps, settings, now, force=False, fault=fault))
    return out or None


def metrics_status(replica: Obj, served_rps: float, settings: Settings, now: datetime,
                   force: bool, fault: str | None = None) -> dict[str, Any]:
    """status.metrics over the last window, when the window has passed or traffic moved.

    The shape is the replica contract's: requests and errors over the last
    windowSeconds, and p95 time-to-first-token and inter-token latency. The
    ``errors`` fault fails a fifth of the requests; ``slow`` triples latency.
    """
    if not settings.metrics:
        return {}
    draining = ANNOTATION_DRAINING in (meta(replica).get("annotations") or {})
    rps = 0.0 if draining else served_rps
    window = settings.metrics_window_seconds
    requests = round(rps * window)
    current = status_of(replica).get("metrics") or {}
    observed = parse_time(current.get("observedTime"))
    stale = observed is None or (now - observed).total_seconds() >= window
    moved = abs(int(current.get("requests") or 0) - requests) >= max(1, window)
    if not (force or stale or moved):
        return {}
    slow = 3.0 if fault == "slow" else 1.0
    return {"metrics": {
        "windowSeconds": window,
        "observedTime": fmt(now),
        "requests": requests,
        "errors": requests // 5 if fault == "errors" else 0,
        "ttftP95Seconds": round(0.25 * slow, 3),
        "itlP95Seconds": round(0.02 * slow, 3),
    }}


def endpoint_status(endpoint: Obj, settings: Settings, now: datetime) -> dict[str, Any] | None:
    """Publish the backend Service of an endpoint once it has existed endpoint_delay_seconds."""
    if (status_of(endpoint).get("routing") or {}).get("backendName"):
        return None
    born = created(endpoint) or now
    if (now - born).total_seconds() < settings.endpoint_delay_seconds:
        return None
    return {
        "routing": {"backendName": key(endpoint)[1]},
        "conditions": set_condition(endpoint, "Ready", "True", "Published",
                                    "backend Service published", now),
    }


def route_status(route: Obj, now: datetime) -> dict[str, Any] | None:
    """Accept every parentRef of a route, at its current generation."""
    generation = meta(route).get("generation")
    parents = []
    current = status_of(route).get("parents") or []
    for ref in (route.get("spec") or {}).get("parentRefs") or []:
        old = next((p for p in current if p.get("parentRef") == ref), None)
        conds = []
        for kind, reason in (("Accepted", "Accepted"), ("ResolvedRefs", "ResolvedRefs")):
            prev = next((c for c in (old or {}).get("conditions") or []
                         if c.get("type") == kind and c.get("status") == "True"), None)
            conds.append({"type": kind, "status": "True", "reason": reason, "message": "",
                          "observedGeneration": generation,
                          "lastTransitionTime": (prev or {}).get("lastTransitionTime")
                          or fmt(now)})
        parents.append({"parentRef": ref, "controllerName": GATEWAY_CONTROLLER,
                        "conditions": conds})
    if parents == current:
        return None
    return {"parents": parents}
