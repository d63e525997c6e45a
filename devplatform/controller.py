"""The example platform's control loop: read everything, publish what changed, repeat.

It is level-triggered: each pass lists ModelDeployments, ModelReplicas,
ModelEndpoints and HTTPRoutes in every namespace, asks ``devplatform.model``
what each one's status should be, and merge-patches the status subresource of
those that differ. A patch carries the resourceVersion it was decided from, so
a status that changed meanwhile (Crossplane writes its own conditions on these
composite resources) is not overwritten; it is decided again on the next pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.types import PatchType

from devplatform import model

ModelDeployment = create_namespaced_resource(
    model.GROUP, "v1alpha1", "ModelDeployment", "modeldeployments")
ModelReplica = create_namespaced_resource(model.GROUP, "v1alpha1", "ModelReplica", "modelreplicas")
ModelEndpoint = create_namespaced_resource(
    model.GROUP, "v1alpha1", "ModelEndpoint", "modelendpoints")
HTTPRoute = create_namespaced_resource("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes")

FIELD_MANAGER = "devplatform"
log = logging.getLogger("devplatform")


def plain(obj: Any) -> dict[str, Any]:
    """A lightkube object as the JSON the API server sent."""
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


class Controller:
    def __init__(self, client: Client, settings: model.Settings,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.client = client
        self.settings = settings
        self.clock = clock
        self.writes = 0
        self.conflicts = 0

    def read(self) -> model.World:
        world = model.World()
        for d in self.client.list(ModelDeployment, namespace="*"):
            obj = plain(d)
            world.deployments[model.key(obj)] = obj
        world.replicas = [plain(r) for r in self.client.list(ModelReplica, namespace="*")]
        world.endpoints = [plain(e) for e in self.client.list(ModelEndpoint, namespace="*")]
        world.routes = [plain(r) for r in self.client.list(HTTPRoute, namespace="*")]
        return world

    def patch_status(self, resource: Any, obj: dict[str, Any], status: dict[str, Any]) -> None:
        ns, name = model.key(obj)
        body = {"metadata": {"resourceVersion": model.meta(obj).get("resourceVersion")},
                "status": status}
        try:
            self.client.patch(resource.Status, name, body, namespace=ns,
                              patch_type=PatchType.MERGE, field_manager=FIELD_MANAGER)
            self.writes += 1
        except ApiError as error:
            # 409: changed since read; 404: deleted since read. Decided again next pass.
            if error.status.code not in (404, 409):
                raise
            self.conflicts += 1

    def reconcile_once(self) -> int:
        """One pass; returns the number of status patches sent."""
        before = self.writes
        now = self.clock()
        world = self.read()
        placed = model.schedule(world.replicas, self.settings.gpus)
        served = model.traffic(world, self.settings.requests_per_second)
        for r in world.replicas:
            k = model.key(r)
            status = model.replica_status(r, world, k in placed, served.get(k, 0.0),
                                          self.settings, now)
            if status is not None:
                self.patch_status(ModelReplica, r, status)
        for e in world.endpoints:
            status = model.endpoint_status(e, self.settings, now)
            if status is not None:
                self.patch_status(ModelEndpoint, e, status)
        for route in world.routes:
            status = model.route_status(route, now)
            if status is not None:
                self.patch_status(HTTPRoute, route, status)
        return self.writes - before

    def run(self, tick_seconds: float, stop_after: float | None = None) -> None:
        """Reconcile every tick_seconds, until stop_after seconds have passed (or forever)."""
        started = time.monotonic()
        while stop_after is None or time.monotonic() - started < stop_after:
            began = time.monotonic()
            try:
                self.reconcile_once()
            except ApiError as error:
                log.warning("pass failed: %s", error)
            except OSError as error:  # the API server restarting
                log.warning("API server unreachable: %s", error)
            time.sleep(max(0.0, tick_seconds - (time.monotonic() - began)))
