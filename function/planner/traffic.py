"""Traffic: which endpoint is on which route, with which weight."""

from __future__ import annotations

from typing import TYPE_CHECKING

from function.planner.ledger import carries
from function.planner.types import Backend, PlannedReplica, Rollout

if TYPE_CHECKING:
    from function.planner.strategies.base import Strategy


def route_replicas(planned: list[PlannedReplica], rollout: Rollout,
                   strategy: Strategy) -> tuple[list[Backend], list[Backend]]:
    """Mark what each route carries; its backends in planned order (main, preview).

    A replica is routed when it Serves and is not draining: on the main route
    when the strategy puts its revision there (the current revision always; the
    deploying one under RollingUpdate), on the preview route when it is of the
    deploying revision. Any other revision (an orphan) stays on the main route
    only while the observed route already carries it and the strategy holds
    old capacity: it is never newly added.
    """
    state, infos = rollout.state, rollout.infos
    deploying, carried = state.deploying, rollout.carried
    holds = strategy.holds_old_capacity
    on_main: dict[str, bool] = {}  # by revision, asked once each
    ports = {name: info.port for name, info in infos.items()}
    main: list[Backend] = []
    preview: list[Backend] = []
    for p in planned:
        replica = p.replica
        if replica is None or not replica.serving or p.draining_since is not None:
            p.main_routed = p.preview_routed = False
            continue
        revision = p.revision
        active = on_main.get(revision)
        if active is None:
            active = on_main[revision] = strategy.on_main_route(state, revision)
        p.main_routed = active or (
            holds and revision != state.failed and carries(carried, replica))
        p.preview_routed = revision == deploying
        assert replica.backend_name is not None
        made = Backend(replica.backend_name, ports[revision], 1, revision)
        if p.main_routed:
            main.append(made)
        if p.preview_routed:
            preview.append(made)
    strategy.weigh(rollout, main)
    return main, preview

