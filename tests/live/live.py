"""Helpers for the live tests: the cluster's API, ModelDeployments, waiting and measuring."""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from crossplane.function import resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from lightkube import Client, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace
from lightkube.types import PatchType

from devplatform.controller import HTTPRoute, ModelDeployment, ModelEndpoint, ModelReplica
from function import fn
from tests.live.checker import Checker

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "_output" / "live"
METRICS_URL = "http://127.0.0.1:18080/metrics"
RESOURCE_NAME = "crossplane.io/composition-resource-name"
WARMUP_SECONDS = 6
DRAIN_SECONDS = 3


def revision(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "model": {"name": "Qwen/Qwen3-8B", "uri": "hf://Qwen/Qwen3-8B"},
        "engine": {"image": f"vllm/vllm-openai:{name}", "port": 8000, "resources": {"gpus": 1}},
        "healthCheck": {"path": "/health", "intervalSeconds": 10, "initialDelaySeconds": 120},
    }


def deployment_spec(replicas: int = 4, revisions: tuple[str, ...] = ("v1", "v2"),
                    active: str = "v1", **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "revisions": [revision(r) for r in revisions],
        "activeRevision": active,
        "drainSeconds": DRAIN_SECONDS,
        "progressDeadlineSeconds": 300,
        "route": {"parentRefs": [{"name": "inference-gateway", "namespace": "gateway-system"}],
                  "hostnames": ["qwen.example.com"]},
    }
    spec.update(extra)
    return spec


def leaf_paths(value: Any, prefix: str = "") -> set[str]:
    """Every key path to a leaf, list positions written as []."""
    if isinstance(value, Mapping):
        out: set[str] = set()
        for k, v in value.items():
            out |= leaf_paths(v, f"{prefix}.{k}" if prefix else str(k))
        return out or {prefix}
    if isinstance(value, list):
        out = set()
        for v in value:
            out |= leaf_paths(v, f"{prefix}[]")
        return out or {prefix}
    return {prefix}


class Live:
    """One scenario's namespace, its ModelDeployment and a checker watching it."""

    def __init__(self, kubeconfig: Path, namespace: str, name: str = "qwen",
                 strict: bool = True) -> None:
        self.client = Client(KubeConfig.from_file(str(kubeconfig)), field_manager="live-test")
        self.scenario = namespace
        # A fresh namespace each run: Crossplane keys an XR's watch circuit
        # breaker by namespace and name and keeps it across re-creation.
        self.namespace = f"{namespace}-{os.getpid() % 10000}-{int(time.time()) % 10000}"
        self.checker = Checker(self.client, self.namespace, name)
        self.name = name
        self.calls_at_start = 0.0
        self.measure: dict[str, Any] = {"scenario": namespace}
        # strict: waiting fails as soon as the checker reports a violation.
        self.strict = strict

    # --- setup and teardown --------------------------------------------------------------
    def __enter__(self) -> Live:
        try:
            self.client.delete(Namespace, self.namespace)
            self.wait(lambda: not self.exists(Namespace, self.namespace), 120,
                      "the previous run's namespace to go")
        except ApiError as error:
            if error.status.code != 404:
                raise
        self.client.create(Namespace(metadata=ObjectMeta(name=self.namespace)))
        self.checker.start()
        self.calls_at_start = self.function_calls()
        return self

    def __exit__(self, *exc: object) -> None:
        self.checker.stop()
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{self.scenario}.json").write_text(json.dumps(self.measure, indent=2))
        with contextlib.suppress(ApiError):
            self.client.delete(Namespace, self.namespace)

    def exists(self, res: Any, name: str, namespace: str | None = None) -> bool:
        try:
            self.client.get(res, name, namespace=namespace)
            return True
        except ApiError as error:
            if error.status.code == 404:
                return False
            raise

    # --- the deployment ------------------------------------------------------------------
    def create(self, spec: dict[str, Any], annotations: dict[str, str] | None = None) -> None:
        anns = {"devplatform.rollout.dev/warmup-seconds": str(WARMUP_SECONDS)}
        anns.update(annotations or {})
        self.client.create(ModelDeployment(
            metadata=ObjectMeta(name=self.name, namespace=self.namespace, annotations=anns),
            spec=spec))

    def patch_spec(self, patch: dict[str, Any]) -> float:
        self.client.patch(ModelDeployment, self.name, {"spec": patch}, namespace=self.namespace,
                          patch_type=PatchType.MERGE)
        return time.time()

    def xr(self) -> dict[str, Any]:
        return self.client.get(ModelDeployment, self.name, namespace=self.namespace).to_dict()

    def status(self) -> dict[str, Any]:
        return self.xr().get("status") or {}

    def replicas(self, revision: str | None = None) -> list[dict[str, Any]]:
        labels = {"serving.rollout.dev/deployment": self.name}
        if revision:
            labels["serving.rollout.dev/revision"] = revision
        return [r.to_dict() for r in self.client.list(ModelReplica, namespace=self.namespace,
                                                        labels=labels)]

    def route_revisions(self, route: str | None = None) -> list[str]:
        """The revision of every replica the route references, in backendRef order."""
        snap = self.checker.snapshot()
        replicas = snap["ModelReplica"]
        routed = self.checker.routed()
        names = routed.get(route or self.name, set())
        return sorted(
            (replicas.get(n) or {}).get("metadata", {}).get("labels", {}).get(
                "serving.rollout.dev/revision", f"<{n}>") for n in names)

    def stable_on(self, revision: str, replicas: int) -> bool:
        xr = self.xr()
        s = xr.get("status") or {}
        routed = "route" not in (xr.get("spec") or {}) \
            or self.route_revisions() == [revision] * replicas
        return (s.get("currentRevision") == revision and s.get("phase") == "Stable"
                and not s.get("deployingRevision") and routed
                and len(self.replicas()) == replicas)

    # --- waiting and measuring -----------------------------------------------------------
    def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> float:
        """Poll predicate until true; fails the test after timeout seconds."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return time.time()
            if self.strict and self.checker.violations:
                pytest.fail(f"while waiting for {what}: {self.checker.violations}")
            time.sleep(0.25)
        pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; "
                    f"status: {json.dumps(self.status(), indent=1)[:3000]}")

    def function_calls(self) -> float:
        """RunFunction requests Crossplane has sent, from its metrics."""
        try:
            with urllib.request.urlopen(METRICS_URL, timeout=5) as rsp:
                text = rsp.read().decode()
        except OSError:
            return float("nan")
        total = 0.0
        for line in text.splitlines():
            if re.match(r"^\w*run_function_request_total\{", line):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def composed_observed(self) -> dict[str, dict[str, Any]]:
        """What Crossplane would pass as observed resources, by composition resource name."""
        out = {}
        for kind in ("ModelReplica", "ModelEndpoint", "HTTPRoute"):
            for obj in self.checker.snapshot()[kind].values():
                key = ((obj.get("metadata") or {}).get("annotations") or {}).get(RESOURCE_NAME)
                if key:
                    out[key] = obj
        return out

    def pruned_status_fields(self) -> list[str]:
        """Status fields the function writes that the API server drops.

        The function is run in-process on the XR and composed resources as
        observed now; its desired XR status is then sent to the API server as
        a dry-run status patch, and every field it holds must come back.
        """
        xr = self.xr()
        xr.get("metadata", {}).pop("managedFields", None)
        req = fnv1.RunFunctionRequest(meta=fnv1.RequestMeta(tag="live-check"))
        resource.update(req.observed.composite, xr)
        for key, obj in self.composed_observed().items():
            obj = dict(obj)
            obj.get("metadata", {}).pop("managedFields", None)
            resource.update(req.observed.resources[key], obj)
        rsp = fn.FunctionRunner().run(req)
        desired = resource.struct_to_dict(rsp.desired.composite.resource).get("status") or {}
        assert desired, f"the function wrote no status: {rsp.results}"
        echoed = self.client.patch(
            ModelDeployment.Status, self.name, {"status": desired}, namespace=self.namespace,
            patch_type=PatchType.MERGE, dry_run=True).to_dict().get("status") or {}
        return sorted(leaf_paths(desired) - leaf_paths(echoed))

    def record(self, **values: Any) -> None:
        self.measure.update(values)

    def finish(self, started: float, ended: float, ideal: float) -> None:
        """Record the scenario's measurements and fail on anything the checker saw."""
        reactions = self.checker.reaction_times()
        calls = self.function_calls() - self.calls_at_start

        def stats(xs: list[float]) -> dict[str, float]:
            xs = sorted(xs)
            if not xs:
                return {}
            return {"n": len(xs), "median": round(xs[len(xs) // 2], 2),
                    "max": round(xs[-1], 2)}

        self.record(
            function_calls=calls,
            rollout_seconds=round(ended - started, 1),
            ideal_seconds=ideal,
            ready_to_endpoint=stats(reactions["endpoint"]),
            ready_to_route=stats(reactions["route"]),
            longest_unserving_routed=round(self.checker.unready_routed.longest, 2),
            longest_unserving_routed_what=self.checker.unready_routed.longest_what,
            longest_below_floor=round(self.checker.below_floor.longest, 2),
            min_routed_capacity=self.checker.min_capacity,
            violations=self.checker.violations,
        )
        assert not self.checker.violations, self.checker.violations


__all__ = ["HTTPRoute", "Live", "ModelEndpoint", "ModelReplica", "deployment_spec"]
