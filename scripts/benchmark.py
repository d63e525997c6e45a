"""Benchmark RunFunction against the protobuf floor, over the real gRPC server.

    .venv/bin/python scripts/benchmark.py                  # sizes 10,100,1000,3000
    .venv/bin/python scripts/benchmark.py --quick          # shorter runs, no CLI check
    .venv/bin/python scripts/benchmark.py --sizes 1000 --profile   # pyinstrument, one size
    .venv/bin/python scripts/benchmark.py --instructions   # callgrind counts, N = 100,300,1000

The request is a ModelDeployment mid-rollout (RollingUpdate v1 -> v2) with N
observed replicas with full status (serving ones with status.metrics), their
endpoints publishing backends, an accepted route and the status the function
wrote before. Each size is served
by FunctionRunner on a real grpc.aio server on loopback (fixed clock); the floor
is the same request parsed, every observed resource copied into the response
(CopyFrom) and the response serialised, with the same SDK and protobuf.

Function and floor calls alternate in one process pinned to one CPU, so both
see the same machine. Results, machine and the full notes: docs/benchmark.md.

Profile findings (pyinstrument at N = 1000, callgrind instruction counts at
N = 300), and what was done about them:
- Writing: building every desired replica as a dict and converting it with
  Struct.update was 44% of the call. The first replica and endpoint of each
  revision are written once and the others are C-level copies (CopyFrom) with
  only name, index label, annotations and URL set (function/fn.py,
  write_composed); dicts met again (a revision's spec) are copied, not
  converted again. tests/test_fast_paths.py checks the bytes are identical to
  the straightforward path.
- Reading: the Mapping protocol of Struct was 42% of the call (a double
  lookup per key, values wrapped in Python objects). Reading `fields` directly,
  `string_value`/`struct_value` first and WhichOneof only when needed, returns
  the same values; each field is read once (function/observe.py).
- Frozen dataclass __init__ (object.__setattr__ per field) was a fifth of
  reading a replica, strftime more than most field reads; both have cheaper
  equivalents that give the same objects and text.
- Python's cyclic garbage collector ran full collections during a call (tens
  of thousands of short-lived objects), a sixth of the call at N = 1000: it is
  paused for the length of one call.
- Second round: observed resources of the usual shape are read without
  per-field kind checks (anything else goes to the careful reader); the
  planner classifies with per-revision durations, plain attributes and one
  counting pass; observed and planned objects are slotted dataclasses.
- Now: 164 M instructions per call at N = 300 against the floor's 91 M:
  parsing 22%, reading 34%, planning 11%, writing 27% (a third of it the
  template copies), serialising 7%. What remains is about ninety protobuf
  accesses per replica to read it, each a C call that makes and drops a
  Python wrapper, and the planner's Python.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import re
import resource as rusage
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from crossplane.function import resource, response  # noqa: E402
from crossplane.function.proto.v1 import run_function_pb2 as fnv1  # noqa: E402
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1  # noqa: E402

from function import naming  # noqa: E402
from function.fn import FunctionRunner  # noqa: E402
from function.main import grpc_options  # noqa: E402
from function.observe import to_plain  # noqa: E402
from function.planner.revisions import revision_content  # noqa: E402
from function.spec import parse_revision, parse_spec  # noqa: E402

METHOD = "/apiextensions.fn.proto.v1.FunctionRunnerService/RunFunction"
NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
XR_NAME = "qwen"
NAMESPACE = "ml-team"
XR_UID = "5f0c3b8e-6a0e-4d4a-9a51-3f4e2f7c9d10"
SERVER_MAX_MB = 64  # the in-process server's message size limit (both directions)


# --- a realistic request -----------------------------------------------------------------


def ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def revision(name: str, tag: str) -> dict[str, Any]:
    return {
        "name": name,
        "model": {"name": "Qwen/Qwen3-8B", "uri": f"hf://Qwen/Qwen3-8B@{tag}"},
        "engine": {
            "image": f"vllm/vllm-openai:{tag}",
            "args": ["--max-model-len", "8192", "--gpu-memory-utilization", "0.92"],
            "env": [{"name": "HF_HOME", "value": "/cache"},
                    {"name": "VLLM_LOGGING_LEVEL", "value": "INFO"}],
            "port": 8000,
            "resources": {"gpus": 1},
        },
        "healthCheck": {"path": "/health", "initialDelaySeconds": 600},
    }


def deployment_spec(n: int) -> dict[str, Any]:
    return {
        "replicas": n,
        "revisions": [revision("v1", "v0.10.2"), revision("v2", "v0.11.0")],
        "activeRevision": "v2",
        "strategy": {"type": "RollingUpdate",
                     "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
        "route": {
            "parentRefs": [{"name": "inference-gateway", "namespace": "gateway-system"}],
            "hostnames": ["qwen.example.com"],
        },
    }


def uid(kind: int, revision_name: str, index: int) -> str:
    return f"{kind:08x}-{int(revision_name[1:]):04x}-4000-8000-{index:012x}"


def object_meta(name: str, key: str, created: datetime, labels: dict[str, str],
                annotations: dict[str, str], kind: int, revision_name: str,
                index: int) -> dict[str, Any]:
    """Metadata as the API server returns it (no managedFields)."""
    return {
        "name": name,
        "namespace": NAMESPACE,
        "uid": uid(kind, revision_name, index),
        "resourceVersion": str(4_000_000 + kind * 100_000 + index),
        "generation": 1,
        "creationTimestamp": ts(created),
        "labels": {**labels, "crossplane.io/composite": XR_NAME},
        "annotations": {**annotations, "crossplane.io/composition-resource-name": key},
        "ownerReferences": [{
            "apiVersion": "serving.rollout.dev/v1alpha1", "kind": "ModelDeployment",
            "name": XR_NAME, "uid": XR_UID, "controller": True, "blockOwnerDeletion": True,
        }],
    }


def synced(at: datetime) -> dict[str, Any]:
    return {"type": "Synced", "status": "True", "reason": "ReconcileSuccess",
            "lastTransitionTime": ts(at)}


def build_state(n: int, now: datetime = NOW) -> dict[str, Any]:
    """A ModelDeployment of n replicas mid-rollout (RollingUpdate) from v1 to v2, as plain data.

    60% of the replicas are v1, Running, Healthy and Serving; 40% are v2, of which
    three quarters Serve and the rest are still Provisioning. The function has to
    read them all, create the surge's worth of new v2 replicas, and write every
    replica, every endpoint and a route with ~0.9 n backends.
    """
    spec = deployment_spec(n)
    hashes = {
        raw["name"]: naming.template_hash(
            revision_content(parse_revision(raw, f"spec.revisions[{i}]")))
        for i, raw in enumerate(spec["revisions"])
    }
    n_v1 = round(n * 0.6)
    n_v2 = n - n_v1
    v2_serving = (n_v2 * 3 + 3) // 4
    resources: dict[str, dict[str, Any]] = {}
    backends: list[dict[str, Any]] = []
    # Replicas are created in batches (a surge's worth per call), so creation times
    # repeat within a batch; probe times are each replica's own.
    batch = max(1, -(-n // 4))
    plan = ([("v1", i, "serving", now - timedelta(days=1, minutes=-5 * (i // batch)))
             for i in range(n_v1)]
            + [("v2", i, "serving" if i < v2_serving else "provisioning",
                now - timedelta(minutes=20 - 3 * (i // batch) if i < v2_serving else 2))
               for i in range(n_v2)])
    for rev, index, state, created in plan:
        key = naming.replica_key(rev, index)
        name = naming.replica_name(XR_NAME, rev, index)
        labels = {
            naming.LABEL_DEPLOYMENT: XR_NAME,
            naming.LABEL_REVISION: rev,
            naming.LABEL_INDEX: str(index),
            naming.LABEL_TEMPLATE_HASH: hashes[rev],
        }
        raw_rev = next(r for r in spec["revisions"] if r["name"] == rev)
        replica_spec = {
            "deployment": XR_NAME,
            "revision": rev,
            "model": raw_rev["model"],
            "engine": raw_rev["engine"],
            "healthCheck": {"path": "/health", "port": 8000, "intervalSeconds": 10,
                            "timeoutSeconds": 5, "initialDelaySeconds": 600,
                            "failureThreshold": 3, "expectedStatus": 200},
        }
        if state == "serving":
            ready_at = created + timedelta(minutes=4)
            url = f"http://10.{index // 65536}.{index // 256 % 256}.{index % 256}:8000"
            status = {
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": "Available",
                     "lastTransitionTime": ts(ready_at)},
                    synced(created),
                ],
                "health": {"state": "Healthy",
                           "lastProbeTime": ts(now - timedelta(seconds=1 + index % 9)),
                           "consecutiveFailures": 0},
                "address": {"url": url},
                # What a metrics adapter publishes (docs/rollout.md#the-analysis-gate).
                "metrics": {"windowSeconds": 60,
                            "observedTime": ts(now - timedelta(seconds=5 + index % 20)),
                            "requests": 580 + index % 40, "errors": index % 3,
                            "ttftP95Seconds": 0.42 + (index % 7) / 100,
                            "itlP95Seconds": 0.031 + (index % 5) / 1000},
            }
        else:
            status = {
                "conditions": [
                    {"type": "Ready", "status": "False", "reason": "Creating",
                     "lastTransitionTime": ts(created)},
                    synced(created),
                ],
            }
        resources[key] = {
            "apiVersion": "serving.rollout.dev/v1alpha1",
            "kind": "ModelReplica",
            "metadata": object_meta(name, key, created, labels,
                                    {naming.ANNOTATION_DESIRED_SINCE: ts(created)},
                                    1, rev, index),
            "spec": replica_spec,
            "status": status,
        }
        if state == "serving":
            ekey = naming.endpoint_key(rev, index)
            backend = f"{name}-svc"
            resources[ekey] = {
                "apiVersion": "serving.rollout.dev/v1alpha1",
                "kind": "ModelEndpoint",
                "metadata": object_meta(name, ekey, ready_at, labels, {}, 2, rev, index),
                "spec": {"replica": name, "revision": rev, "url": url, "port": 8000},
                "status": {
                    "routing": {"backendName": backend},
                    "conditions": [
                        {"type": "Ready", "status": "True", "reason": "Available",
                         "lastTransitionTime": ts(ready_at + timedelta(seconds=3))},
                        synced(ready_at),
                    ],
                },
            }
            backends.append({"name": backend, "port": 8000, "weight": 1})
    rollout_start = now - timedelta(minutes=20)
    resources[naming.ROUTE_KEY] = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": object_meta(XR_NAME, naming.ROUTE_KEY, now - timedelta(days=1),
                                {naming.LABEL_DEPLOYMENT: XR_NAME}, {}, 3, "v0", 0),
        "spec": {
            "parentRefs": spec["route"]["parentRefs"],
            "hostnames": spec["route"]["hostnames"],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                       "backendRefs": backends}],
        },
        "status": {"parents": [{
            "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway",
                          "name": "inference-gateway", "namespace": "gateway-system"},
            "controllerName": "gateway.envoyproxy.io/gatewayclass-controller",
            "conditions": [
                {"type": "Accepted", "status": "True", "reason": "Accepted",
                 "lastTransitionTime": ts(now - timedelta(days=1))},
                {"type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs",
                 "lastTransitionTime": ts(now - timedelta(days=1))},
            ],
        }]},
    }
    v2_available = v2_serving
    total = n_v1 + n_v2
    weights = {"v1": n_v1, "v2": v2_serving}
    serving = n_v1 + v2_serving
    status = {
        "phase": "Progressing",
        "currentRevision": "v1",
        "deployingRevision": "v2",
        "rolloutStrategy": "RollingUpdate",
        "rolloutStartTime": ts(rollout_start),
        "lastProgressTime": ts(now - timedelta(minutes=15)),
        "replicas": {"desired": n, "total": total, "ready": serving, "available": serving,
                     "updated": n_v2},
        "revisions": [
            {"name": "v1", "replicas": n_v1, "available": n_v1,
             "trafficWeight": round(100 * weights["v1"] / max(1, serving))},
            {"name": "v2", "replicas": n_v2, "available": v2_available,
             "trafficWeight": 100 - round(100 * weights["v1"] / max(1, serving))},
        ],
        "conditions": [
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
             "message": f"{serving} of {n} replicas serving; at least {n} required",
             "lastTransitionTime": ts(rollout_start)},
            {"type": "Progressing", "status": "True", "reason": "NewRevisionDeploying",
             "message": "rolling out revision 'v2' (RollingUpdate)",
             "lastTransitionTime": ts(rollout_start)},
            {"type": "Routed", "status": "True", "reason": "BackendsRouted",
             "message": f"the main route carries {serving} backends",
             "lastTransitionTime": ts(now - timedelta(days=1))},
        ],
    }
    xr = {
        "apiVersion": "serving.rollout.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": XR_NAME, "namespace": NAMESPACE, "uid": XR_UID,
                     "generation": 7, "resourceVersion": "3999999",
                     "creationTimestamp": ts(now - timedelta(days=2))},
        "spec": spec,
        "status": status,
    }
    return {"xr": xr, "resources": resources}


def build_request(n: int, now: datetime = NOW) -> fnv1.RunFunctionRequest:
    state = build_state(n, now)
    req = fnv1.RunFunctionRequest(
        meta=fnv1.RequestMeta(tag=f"benchmark-{n}"),
        observed=fnv1.State(composite=fnv1.Resource(
            resource=resource.dict_to_struct(state["xr"]))),
    )
    for key, body in state["resources"].items():
        req.observed.resources[key].resource.update(body)
    return req


# --- the floor ---------------------------------------------------------------------------


class FloorRunner(grpcv1.FunctionRunnerServiceServicer):
    """The least any function can do with the request: copy observed to desired."""

    async def RunFunction(self, req: fnv1.RunFunctionRequest,
                          _: grpc.aio.ServicerContext | None = None) -> fnv1.RunFunctionResponse:
        return self.run(req)

    def run(self, req: fnv1.RunFunctionRequest) -> fnv1.RunFunctionResponse:
        rsp = response.to(req)
        for key, observed in req.observed.resources.items():
            rsp.desired.resources[key].resource.CopyFrom(observed.resource)
        return rsp


# --- measuring ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def client_options() -> list[tuple[str, int]]:
    return [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


async def call_loop(address: str, payload: bytes, budget: float, min_calls: int,
                    max_calls: int) -> tuple[list[float], int, str | None]:
    """Time raw-bytes calls (no client-side (de)serialisation) until the budget is spent."""
    async with grpc.aio.insecure_channel(address, options=client_options()) as channel:
        call = channel.unary_unary(METHOD)
        await channel.channel_ready()
        try:
            reply = await call(payload)  # warm-up
        except grpc.aio.AioRpcError as error:
            return [], 0, f"{error.code().name}: {error.details()}"
        samples: list[float] = []
        started = time.perf_counter()
        while len(samples) < max_calls and (
                len(samples) < min_calls or time.perf_counter() - started < budget):
            t0 = time.perf_counter()
            reply = await call(payload)
            samples.append(time.perf_counter() - t0)
        return samples, len(reply), None


MODES = ("function", "floor")


def runner_for(mode: str) -> Any:
    return FunctionRunner(clock=lambda: NOW) if mode == "function" else FloorRunner()


async def interleaved(payloads: dict[int, bytes], budget: float, min_calls: int,
                      max_calls: int) -> dict[tuple[int, str], dict[str, Any]]:
    """Alternate function and floor calls (and sizes), each runner on its own server.

    Both runners serve on loopback with the same options. Alternating makes every
    (size, runner) see the same machine: on a shared host the load changes from
    one second to the next. Results are keyed by (size, mode).
    """
    servers: list[grpc.aio.Server] = []
    calls: dict[str, tuple[grpc.aio.Channel, Any]] = {}
    found: dict[tuple[int, str], dict[str, Any]] = {}
    try:
        for mode in MODES:
            server = grpc.aio.server(options=grpc_options(SERVER_MAX_MB, None))
            grpcv1.add_FunctionRunnerServiceServicer_to_server(runner_for(mode), server)
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            servers.append(server)
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=client_options())
            await channel.channel_ready()
            calls[mode] = (channel, channel.unary_unary(METHOD))
            for n, payload in payloads.items():
                reply = await calls[mode][1](payload)  # warm-up
                found[n, mode] = {"rsp_bytes": len(reply), "wall": [], "cpu": []}
        started = time.perf_counter()
        while True:
            done = min(len(samples["wall"]) for samples in found.values())
            if done >= max_calls or (done >= min_calls
                                     and time.perf_counter() - started >= budget):
                break
            for n, payload in payloads.items():
                for mode in MODES:
                    wall, cpu = time.perf_counter(), time.process_time()
                    await calls[mode][1](payload)
                    found[n, mode]["cpu"].append(time.process_time() - cpu)
                    found[n, mode]["wall"].append(time.perf_counter() - wall)
    finally:
        for channel, _ in calls.values():
            await channel.close()
        for server in servers:
            await server.stop(None)
    return found


def growth_worker(small: int, large: int, budget: float, pin: bool) -> dict[str, float]:
    """time(large)/time(small) for function and floor, the two sizes measured alternately."""
    if pin:
        pin_to_one_cpu()
    payloads = {n: build_request(n).SerializeToString() for n in (small, large)}
    found = asyncio.run(interleaved(payloads, budget, min_calls=5, max_calls=1000))
    return {mode: statistics.median(found[large, mode]["wall"])
            / statistics.median(found[small, mode]["wall"]) for mode in MODES}


def direct(payload: bytes, repeats: int) -> dict[str, float]:
    """Median ms of parse + handler + serialise without gRPC, function and floor alternated."""
    runners = {mode: runner_for(mode) for mode in MODES}
    samples: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(repeats):
        for mode, runner in runners.items():
            t0 = time.perf_counter()
            runner.run(fnv1.RunFunctionRequest.FromString(payload)).SerializeToString()
            samples[mode].append(time.perf_counter() - t0)
    return {mode: statistics.median(values) * 1000 for mode, values in samples.items()}


def validation_cost(n: int, repeats: int = 400) -> str:
    """Median time to validate the request's spec, next to a whole call without gRPC."""
    payload = build_request(n).SerializeToString()
    spec = to_plain(fnv1.RunFunctionRequest.FromString(payload)
                    .observed.composite.resource.fields["spec"].struct_value)
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        parse_spec(spec)
        samples.append(time.perf_counter() - t0)
    validation = statistics.median(samples) * 1000
    call = direct(payload, max(20, repeats // 10))["function"]
    return (f"spec validation at N = {n}: {validation * 1000:.0f} us median, "
            f"{100 * validation / call:.1f}% of a {call:.2f} ms call (no gRPC)")


def traced_peak(runner: Any, payload: bytes) -> float:
    """Peak Python-heap MB (tracemalloc) of one parse + handler + serialise."""
    tracemalloc.start()
    try:
        runner.run(fnv1.RunFunctionRequest.FromString(payload)).SerializeToString()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def pin_to_one_cpu() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def rss_mb() -> float:
    return rusage.getrusage(rusage.RUSAGE_SELF).ru_maxrss / 1024


def timing_worker(n: int, budget: float, pin: bool) -> dict[str, Any]:
    """Latency of one size over gRPC and without, function and floor, in a fresh process."""
    if pin:
        pin_to_one_cpu()
    payload = build_request(n).SerializeToString()
    rsp = FunctionRunner(clock=lambda: NOW).run(fnv1.RunFunctionRequest.FromString(payload))
    fatal = [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    if fatal:
        raise SystemExit(f"N={n}: the function returned Fatal: {fatal[0]}")
    found = asyncio.run(interleaved({n: payload}, budget, min_calls=5, max_calls=1000))
    direct_ms = direct(payload, repeats=max(3, min(len(found[n, "floor"]["wall"]), 15)))
    out: dict[str, Any] = {"n": n, "req_bytes": len(payload),
                           "resources": len(rsp.desired.resources)}
    for mode in MODES:
        wall, cpu = found[n, mode]["wall"], found[n, mode]["cpu"]
        out[mode] = {
            "rsp_bytes": found[n, mode]["rsp_bytes"],
            "calls": len(wall),
            "median_ms": statistics.median(wall) * 1000,
            "p99_ms": percentile(wall, 0.99) * 1000,
            "calls_per_s": len(wall) / sum(wall),
            "cpu_ms": statistics.median(cpu) * 1000,
            "direct_ms": direct_ms[mode],
        }
    return out


def memory_worker(n: int, mode: str, pin: bool) -> dict[str, Any]:
    """Peak memory of serving one size with one runner: ru_maxrss of a fresh process."""
    if pin:
        pin_to_one_cpu()
    payload = build_request(n).SerializeToString()
    idle = rss_mb()

    async def serve() -> None:
        server = grpc.aio.server(options=grpc_options(SERVER_MAX_MB, None))
        grpcv1.add_FunctionRunnerServiceServicer_to_server(runner_for(mode), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}",
                                                 options=client_options()) as channel:
                call = channel.unary_unary(METHOD)
                for _ in range(3):
                    await call(payload)
        finally:
            await server.stop(None)

    asyncio.run(serve())
    return {"idle_mb": idle, "peak_mb": rss_mb(),
            "traced_mb": traced_peak(runner_for(mode), payload)}


def run_worker(*args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(n: int, budget: float, pin: bool) -> dict[str, Any]:
    flags = [] if pin else ["--no-pin"]
    row = run_worker("--worker", str(n), "--budget", str(budget), *flags)
    for mode in MODES:
        row[mode].update(run_worker("--worker", str(n), "--mode", mode, "--memory", *flags))
    return row


# --- instruction counts -------------------------------------------------------------------


def count_worker(payload_file: str, mode: str, calls: int) -> None:
    """One warm-up call, then `calls` calls of parse + handler + serialise; for callgrind."""
    payload = Path(payload_file).read_bytes()
    runner = runner_for(mode)
    for _ in range(1 + calls):
        runner.run(fnv1.RunFunctionRequest.FromString(payload)).SerializeToString()


def instructions(sizes: list[int]) -> list[str]:
    """Instructions per call, function and floor, counted by valgrind's callgrind.

    Unlike time, the count does not move with the load of a shared machine. Each
    figure is the difference between a process making 3 calls and one making 1
    (both after the same start-up), halved. The calls run without gRPC.
    """
    if shutil.which("valgrind") is None:
        return ["instruction counts: valgrind is not installed"]

    def collected(payload_file: str, mode: str, calls: int) -> int:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
             __file__, "--count-worker", payload_file, "--mode", mode, "--calls", str(calls)],
            check=True, capture_output=True, text=True)
        return int(re.findall(r"Collected : (\d+)", out.stderr)[-1])

    lines = ["| N | function instructions | floor instructions | ratio |",
             "|---:|---:|---:|---:|"]
    counts: dict[tuple[int, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        for n in sizes:
            payload_file = str(Path(tmp) / f"request-{n}.bin")
            Path(payload_file).write_bytes(build_request(n).SerializeToString())
            runs = {(mode, calls): pool.submit(collected, payload_file, mode, calls)
                    for mode in MODES for calls in (0, 2)}
            for mode in MODES:
                counts[n, mode] = (runs[mode, 2].result() - runs[mode, 0].result()) / 2
            fn, floor = counts[n, "function"], counts[n, "floor"]
            lines.append(f"| {n} | {fn / 1e6:.1f} M | {floor / 1e6:.1f} M | {fn / floor:.2f} |")
    for small, large in itertools.pairwise(sizes):
        lines.append(f"\ninstructions({large})/instructions({small}) = "
                     f"{counts[large, 'function'] / counts[small, 'function']:.2f} for "
                     f"{large / small:.2f} times the replicas (the floor's own: "
                     f"{counts[large, 'floor'] / counts[small, 'floor']:.2f})")
    return lines


# --- the real console script, once ---------------------------------------------------------


@contextlib.contextmanager
def function_process(*flags: str) -> Iterator[str]:
    port = free_port()
    script = Path(sys.executable).with_name("function")
    proc = subprocess.Popen([str(script), "--insecure", "--address", f"127.0.0.1:{port}", *flags],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        address = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.1)
        yield address
    finally:
        proc.terminate()
        proc.wait(10)


def console_script_check(n: int, budget: float) -> list[str]:
    """Send an N-replica request to the `function` console script, as a subprocess.

    With its default flags (the SDK's --max-recv-message-size of 4 MB, unless
    function/main.py raises it), then with a 64 MB limit. The script runs on the
    system clock, so the request is built around the current time.
    """
    now = datetime.now(UTC).replace(microsecond=0)
    payload = build_request(n, now).SerializeToString()
    lines = [f"console script, N={n}, request {len(payload) / 2**20:.2f} MB:"]
    for flags in ((), ("--max-recv-message-size", "64")):
        with function_process(*flags) as address:
            samples, rsp_size, error = asyncio.run(
                call_loop(address, payload, budget, min_calls=5, max_calls=500))
        label = " ".join(flags) or "default flags"
        if error:
            lines.append(f"- {label}: {error}")
        else:
            lines.append(f"- {label}: median {statistics.median(samples) * 1000:.1f} ms over "
                         f"{len(samples)} calls, response {rsp_size / 2**20:.2f} MB")
    return lines


# --- reporting ---------------------------------------------------------------------------


def table(rows: list[dict[str, Any]]) -> str:
    out = ["| N | req size | rsp size | median ms | p99 ms | calls/s | peak MB | floor ms "
           "| ratio |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        fn, floor = row["function"], row["floor"]
        out.append(
            f"| {row['n']} | {size(row['req_bytes'])} | {size(fn['rsp_bytes'])} "
            f"| {fn['median_ms']:.1f} | {fn['p99_ms']:.1f} | {fn['calls_per_s']:.1f} "
            f"| {fn['peak_mb']:.0f} | {floor['median_ms']:.1f} "
            f"| {fn['median_ms'] / floor['median_ms']:.2f} |")
    return "\n".join(out)


def details(rows: list[dict[str, Any]]) -> str:
    out = ["| N | desired resources | calls timed | CPU ms | floor CPU ms | direct ms "
           "| floor direct ms | direct ratio | idle MB | floor peak MB | tracemalloc MB "
           "| floor tracemalloc MB |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        fn, floor = row["function"], row["floor"]
        out.append(
            f"| {row['n']} | {row['resources']} | {fn['calls']} | {fn['cpu_ms']:.1f} "
            f"| {floor['cpu_ms']:.1f} | {fn['direct_ms']:.1f} | {floor['direct_ms']:.1f} "
            f"| {fn['direct_ms'] / floor['direct_ms']:.2f} | {fn['idle_mb']:.0f} "
            f"| {floor['peak_mb']:.0f} | {fn['traced_mb']:.1f} | {floor['traced_mb']:.1f} |")
    return "\n".join(out)


def size(n_bytes: int) -> str:
    if n_bytes >= 2**20:
        return f"{n_bytes / 2**20:.2f} MB"
    return f"{n_bytes / 1024:.0f} KB"


def machine() -> str:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        for line in subprocess.run(["lscpu"], capture_output=True, text=True,
                                   check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    import google.protobuf
    from google.protobuf.internal import api_implementation
    return (f"{model}, {os.cpu_count()} cores; Python {platform.python_version()}, "
            f"protobuf {google.protobuf.__version__} ({api_implementation.Type()}), "
            f"grpcio {grpc.__version__}")


def profile(n: int) -> None:
    from pyinstrument import Profiler
    payload = build_request(n).SerializeToString()
    runner = FunctionRunner(clock=lambda: NOW)
    runner.run(fnv1.RunFunctionRequest.FromString(payload))
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for _ in range(5):
        runner.run(fnv1.RunFunctionRequest.FromString(payload)).SerializeToString()
    profiler.stop()
    print(profiler.output_text(unicode=True, color=False, show_all=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default=None, help="comma-separated N (10,100,1000,3000)")
    parser.add_argument("--quick", action="store_true", help="short runs, skip the CLI check")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds of timed calls per size")
    parser.add_argument("--profile", action="store_true", help="pyinstrument the handler")
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions per call with callgrind instead of timing "
                             "(sizes default to 100,300,1000)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin workers to one CPU")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="function", help=argparse.SUPPRESS)
    parser.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--growth", help=argparse.SUPPRESS)
    parser.add_argument("--count-worker", help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    pin = not args.no_pin

    if args.count_worker:
        count_worker(args.count_worker, args.mode, args.calls)
        return
    if args.growth:
        small, large = (int(n) for n in args.growth.split(","))
        print(json.dumps(growth_worker(small, large, args.budget or 3.0, pin)))
        return
    if args.worker is not None:
        if args.memory:
            print(json.dumps(memory_worker(args.worker, args.mode, pin)))
        else:
            print(json.dumps(timing_worker(args.worker, args.budget or 3.0, pin)))
        return
    default_sizes = "100,300,1000" if args.instructions else "10,100,1000,3000"
    sizes = [int(s) for s in (args.sizes or default_sizes).split(",") if s]
    if args.instructions:
        print(f"machine: {machine()}", flush=True)
        print("\n".join(instructions(sizes)))
        return
    if args.profile:
        for n in sizes:
            profile(n)
        return
    budget = args.budget or (1.0 if args.quick else 8.0)
    print(f"machine: {machine()}", flush=True)
    rows = []
    for n in sizes:
        row = measure(n, budget, pin)
        rows.append(row)
        fn, floor = row["function"], row["floor"]
        print(f"N={n}: function {fn['median_ms']:.1f} ms, floor {floor['median_ms']:.1f} ms, "
              f"ratio {fn['median_ms'] / floor['median_ms']:.2f}", flush=True)
    print()
    print(table(rows))
    print()
    print(details(rows))
    if 10 in sizes:
        print()
        print(validation_cost(10))
    if 1000 in sizes and 3000 in sizes:
        growth = run_worker("--growth", "1000,3000", "--budget", str(budget),
                            *([] if pin else ["--no-pin"]))
        print(f"\ntime(3000)/time(1000) = {growth['function']:.2f} (target <= 3.3; the "
              f"floor's own: {growth['floor']:.2f}), the two sizes measured alternately")
    if not args.quick:
        print()
        print("\n".join(console_script_check(max(sizes), min(budget, 3.0))))


if __name__ == "__main__":
    main()
