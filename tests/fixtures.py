"""Typed builders for specs and observed resources used across the tests."""

from __future__ import annotations

import copy
from typing import Any


def revision(name: str, *, image: str | None = None, health: bool = True,
             initial_delay: int = 600, port: int | None = None) -> dict[str, Any]:
    rev: dict[str, Any] = {
        "name": name,
        "model": {"name": "Qwen/Qwen3-8B", "uri": "hf://Qwen/Qwen3-8B"},
        "engine": {"image": image or f"vllm/vllm-openai:{name}", "resources": {"gpus": 1}},
    }
    if port is not None:
        rev["engine"]["port"] = port
    if health:
        rev["healthCheck"] = {"path": "/health", "initialDelaySeconds": initial_delay}
    return rev


def deployment(replicas: int = 3, revisions: tuple[str, ...] = ("v1",), *,
               active: str | None = None, strategy: dict[str, Any] | None = None,
               route: bool = True, preview: bool = False, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "revisions": [revision(name) for name in revisions],
    }
    if active is not None:
        spec["activeRevision"] = active
    if strategy is not None:
        spec["strategy"] = copy.deepcopy(strategy)
    if route:
        spec["route"] = {
            "parentRefs": [{"name": "inference-gateway", "namespace": "gateway-system"}],
            "hostnames": ["qwen.example.com"],
        }
        if preview:
            spec["route"]["preview"] = {"hostnames": ["preview.qwen.example.com"]}
    spec.update(extra)
    return spec


def blue_green(auto: bool = False, delay: int = 0, scale_down: int = 30) -> dict[str, Any]:
    return {"type": "BlueGreen", "blueGreen": {"autoPromote": auto, "promoteDelaySeconds": delay,
                                               "scaleDownDelaySeconds": scale_down}}


def rolling(surge: int | str = "25%", unavailable: int | str = 0) -> dict[str, Any]:
    return {"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}
