"""The promises of docs/rollout.md, checked from the outside after every call of a replay.

Each check reads only what a user could see: the observed state the function
was given, the desired state it returned and the status it wrote.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from function import naming
from function.planner import strategies
from function.spec import BLUE_GREEN, CANARY, REPLACE, Spec, parse_spec
from tests.world import Step, World


class Violation(AssertionError):
    pass


_SPECS: dict[str, Spec] = {}


def spec_of(raw: Any) -> Spec:
    """parse_spec(raw), remembered for the last few specs: a closed loop parses the same
    spec after every call, and parsing is a good part of a check's cost. Raises
    InvalidSpec as parse_spec does."""
    key = json.dumps(raw, sort_keys=True, default=str)
    spec = _SPECS.get(key)
    if spec is None:
        spec = parse_spec(raw)
        if len(_SPECS) >= 16:
            _SPECS.clear()
        _SPECS[key] = spec
    return spec


def _backends(desired: dict[str, dict[str, Any]], key: str) -> list[str]:
    route = desired.get(key)
    if route is None:
        return []
    names: list[str] = []
    for rule in route["spec"].get("rules", []):
        names.extend(ref["name"] for ref in rule.get("backendRefs", []))
    return names


def _endpoint_by_backend(observed: dict[str, dict[str, Any]]) -> dict[str, str]:
    """backendName -> replica key, from the observed endpoints."""
    out = {}
    for key, body in observed.items():
        parsed = naming.parse_endpoint_key(key)
        backend = body.get("status", {}).get("routing", {}).get("backendName")
        if parsed and backend:
            out[backend] = naming.replica_key(*parsed)
    return out


def _ready(body: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in body.get("status", {}).get("conditions", []))


def unschedulable(body: dict[str, Any] | None) -> bool:
    """Observed waiting for an accelerator: not Ready and Scheduled=False."""
    if body is None or _ready(body):
        return False
    return any(c.get("type") == "Scheduled" and c.get("status") == "False"
               for c in body.get("status", {}).get("conditions", []))


def _unhealthy(body: dict[str, Any], now: datetime, stale_seconds: int) -> bool:
    """Health data says Unhealthy and is fresh enough to be believed."""
    health = body.get("status", {}).get("health", {})
    if health.get("state") != "Unhealthy":
        return False
    probe = _time(health.get("lastProbeTime"))
    return probe is None or now - probe < timedelta(seconds=stale_seconds)


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def routed_replicas(step: Step, key: str = naming.ROUTE_KEY) -> list[str]:
    by_backend = _endpoint_by_backend(step.observed)
    return [by_backend[name] for name in _backends(step.desired, key) if name in by_backend]


def capacity_policy(spec: Spec) -> str:
    """onCapacityShortage of the spec's strategy (Canary has its own)."""
    if spec.strategy.type == CANARY and spec.strategy.canary is not None:
        return spec.strategy.canary.on_capacity_shortage
    return spec.strategy.on_capacity_shortage


def check(world: World, step: Step) -> None:
    if step.fatal:
        return
    spec = spec_of(world.spec)
    n = spec.replicas
    limits = strategies.limits(spec)
    surge, unavailable = limits.surge, limits.unavailable
    waiting = {k for k, body in step.observed.items() if unschedulable(body)}
    by_backend = _endpoint_by_backend(step.observed)
    messages = [r.message for r in step.response.results]
    rolled_back = any("rolled back" in m for m in messages)
    stale = max(spec.health_policy.status_ttl_seconds, 3 * 10)

    # 1. A route never references a replica that cannot serve.
    for route_key in (naming.ROUTE_KEY, naming.PREVIEW_ROUTE_KEY):
        for name in _backends(step.desired, route_key):
            replica_key = by_backend.get(name)
            if replica_key is None:
                raise Violation(f"{route_key} references unknown backend {name}")
            observed = step.observed.get(replica_key)
            desired = step.desired.get(replica_key)
            if observed is None or desired is None or not _ready(observed):
                raise Violation(f"{route_key} routes to {replica_key}, which is not Ready")
            if _unhealthy(observed, step.now, stale):
                raise Violation(f"{route_key} routes to Unhealthy {replica_key}")
            if naming.ANNOTATION_DRAINING_SINCE in desired["metadata"].get("annotations", {}):
                raise Violation(f"{route_key} routes to draining {replica_key}")

    # 2. Under RollingUpdate the function never drains routed capacity below N - unavailable.
    previous = world.history[-2] if len(world.history) >= 2 else None
    if spec.strategy.type != BLUE_GREEN and previous is not None and not rolled_back:
        was_routed = [k for k in routed_replicas(previous)
                      if k in step.observed and _ready(step.observed[k])
                      and not _unhealthy(step.observed[k], step.now, stale)]
        routed_now = routed_replicas(step)
        floor = min(max(0, n - unavailable), len(was_routed))
        if waiting and capacity_policy(spec) == REPLACE:
            floor = min(max(0, n - unavailable - 1), len(was_routed))  # one replica traded
        if len(routed_now) < floor:
            raise Violation(f"routed capacity fell to {len(routed_now)} (floor {floor}): "
                            f"{sorted(routed_now)} after {sorted(was_routed)}")

    # 3. Replicas holding an accelerator (all but Unschedulable ones) never grow past
    #    N + maxSurge (RollingUpdate) or 2N (BlueGreen) by creation.
    total_before = sum(1 for k in step.observed if naming.parse_replica_key(k)
                       and k not in waiting)
    total_after = sum(1 for k in step.desired if naming.parse_replica_key(k)
                      and k not in waiting)
    limit = n + surge if spec.strategy.type != BLUE_GREEN else 2 * n
    if total_after > max(limit, total_before):
        raise Violation(f"{total_after} replicas desired; at most {limit} allowed")

    # 4. Nothing routed is deleted before its drain delay.
    if previous is not None:
        routed_before = set(routed_replicas(previous)) | set(
            routed_replicas(previous, naming.PREVIEW_ROUTE_KEY))
        for key in routed_before:
            if key in step.observed and key not in step.desired:
                annotations = step.observed[key]["metadata"].get("annotations", {})
                since = _time(annotations.get(naming.ANNOTATION_DRAINING_SINCE))
                delay = int(annotations.get(naming.ANNOTATION_DRAIN_SECONDS, "0"))
                # Ready, whatever its health: it still has requests in flight.
                if _ready(step.observed[key]) and (
                        since is None or step.now < since + timedelta(seconds=delay)):
                    raise Violation(f"{key} was routed and deleted without draining")

    # 5. BlueGreen: the main route carries only the current revision.
    current = step.status.get("currentRevision")
    if spec.strategy.type == BLUE_GREEN and step.status.get("rolloutStrategy") != "RollingUpdate":
        for key in routed_replicas(step):
            revision = (naming.parse_replica_key(key) or ("",))[0]
            if revision != current:
                raise Violation(f"main route carries {key} of {revision}, current is {current}")

    # 6. Status agrees with what was composed.
    replicas = [k for k in step.desired if naming.parse_replica_key(k)]
    counted = step.status["replicas"]["total"] + step.status["replicas"]["unschedulable"]
    if counted != len(replicas):
        raise Violation(f"status total and unschedulable {counted} != {len(replicas)}")
    held = sum(1 for k in replicas if k not in waiting)
    if step.status["replicas"]["total"] != held:
        raise Violation(f"status total {step.status['replicas']['total']} != {held} holding "
                        "an accelerator")
    if sum(row["replicas"] for row in step.status.get("revisions", [])) != len(replicas):
        raise Violation("status.revisions rows do not add up to the composed replicas")
    weights = sum(row["trafficWeight"] for row in step.status.get("revisions", []))
    if weights not in (0, 100):
        raise Violation(f"traffic weights add up to {weights}")

    # 7. Endpoints exist only for Ready replicas.
    for key in step.desired:
        parsed = naming.parse_endpoint_key(key)
        if parsed:
            replica = step.observed.get(naming.replica_key(*parsed))
            if replica is None or not _ready(replica):
                raise Violation(f"{key} is desired but its replica is not Ready")

    # 8. No churn: a replica waiting for an accelerator is never dropped while its
    #    revision gets a new replica in the same response (it would wait again).
    created = {(naming.parse_replica_key(k) or ("",))[0] for k in replicas
               if k not in step.observed}
    for key in waiting:
        parsed = naming.parse_replica_key(key)
        if parsed and key not in step.desired and parsed[0] in created:
            raise Violation(f"{key} waits for an accelerator and was replaced")
