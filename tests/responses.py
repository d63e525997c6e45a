"""What a user sees of one response, as plain data, for whole-response tables.

summary(step) reduces a call of the closed-loop world (tests/world.py) to the
replicas (and which drain), each route's rules with their backends and
weights, the status registers, the Progressing condition, the results and the
TTL, so a table case states a whole response in a few lines
(tests/test_*_transitions.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from function import naming
from tests import invariants
from tests.world import Fate, Step, World

REGISTERS = ("phase", "currentRevision", "deployingRevision", "failedRevision")


def progressing(step: Step) -> Any:
    return next(c for c in step.response.conditions if c.type == "Progressing")


def route_rules(step: Step, key: str = naming.ROUTE_KEY) -> list[dict[str, Any]]:
    """A route's rules as {header, backends: {replica: weight}}; [] when not composed.

    Backends are named by their replica, `v1-0` for `qwen-v1-0-svc`.
    """
    route = step.desired.get(key)
    if route is None:
        return []
    return [
        {"header": rule["matches"][0].get("headers", [{}])[0].get("name"),
         "backends": {ref["name"].removeprefix("qwen-").removesuffix("-svc"):
                      int(ref["weight"]) for ref in rule.get("backendRefs", [])}}
        for rule in route["spec"]["rules"]]


def summary(step: Step, *, registers: tuple[str, ...] = REGISTERS,
            preview: bool = True) -> dict[str, Any]:
    def replica(key: str) -> str:
        annotations = step.desired[key]["metadata"].get("annotations", {})
        return key + (" draining" if naming.ANNOTATION_DRAINING_SINCE in annotations else "")

    out: dict[str, Any] = {
        "replicas": sorted(replica(k) for k in step.desired if naming.parse_replica_key(k)),
        "rules": route_rules(step),
    }
    if preview:
        out["preview"] = route_rules(step, naming.PREVIEW_ROUTE_KEY)
    out.update({
        "status": {k: step.status.get(k) for k in registers},
        "progressing": [progressing(step).reason, progressing(step).message],
        "results": [r.message for r in step.response.results],
        "ttl": step.response.meta.ttl.seconds,
    })
    return out


def registers(phase: str, current: str | None, deploying: str | None = None,
              failed: str | None = None) -> dict[str, Any]:
    """summary()'s status part with the default registers."""
    return {"phase": phase, "currentRevision": current, "deployingRevision": deploying,
            "failedRevision": failed}


def first_call(world: World) -> Step:
    """One call, checked against the shared invariants."""
    step = world.step()
    invariants.check(world, step)
    return step


def until(predicate: Callable[[World], bool]) -> Callable[[World], Step]:
    """A driver: calls, each checked, until the predicate holds; the last call."""
    def drive(world: World) -> Step:
        world.run_until(predicate, check=invariants.check)
        return world.history[-1]
    return drive


def never_ready(world: World) -> Step:
    """A driver: v2 never becomes Ready, with a 120 s progress deadline; the call that
    rolls it back."""
    world.spec["progressDeadlineSeconds"] = 120
    world.fate_for = lambda rev, i: Fate(never_ready=True) if rev == "v2" else Fate()
    return until(lambda w: w.status.get("phase") == "Failed")(world)
