"""The routes step: which backends each route carries, with which weight."""

from __future__ import annotations

from function.planner.course import Course
from function.planner.ledger import carries
from function.planner.types import Backend, PlannedReplica, Rollout, Routes


def route(planned: list[PlannedReplica], rollout: Rollout, course: Course) -> Routes:
    """The routes of this response, their backends in planned order, weighed by the course.

    A replica is routed when it Serves and is not draining: on the main route
    when the course puts its revision there (the current revision always; the
    deploying one under RollingUpdate and Canary), on the preview route when it
    is of the deploying revision. Any other revision (an orphan) stays on the
    main route only while the observed route already carries it and the
    strategy holds old capacity: it is never newly added.
    """
    state, infos = rollout.state, rollout.infos
    deploying, carried = state.deploying, rollout.carried
    holds = course.holds_old_capacity
    on_main: dict[str, bool] = {}  # by revision, asked once each
    ports = {name: info.port for name, info in infos.items()}
    main: list[Backend] = []
    preview: list[Backend] = []
    for p in planned:
        replica = p.replica
        if replica is None or not replica.serving or p.draining_since is not None:
            continue
        revision = p.revision
        active = on_main.get(revision)
        if active is None:
            active = on_main[revision] = course.on_main_route(revision)
        assert replica.backend_name is not None
        made = Backend(replica.backend_name, ports[revision], 1, revision)
        if active or (holds and revision != state.failed and carries(carried, replica)):
            main.append(made)
        if revision == deploying:
            preview.append(made)
    return course.routes(main, preview)
