"""Measurements on the live control plane (scripts/cluster.sh up) for docs/control-plane.md.

    .venv/bin/python scripts/live-measure.py breaker --replicas 10 50 --observe 150
    .venv/bin/python scripts/live-measure.py size

breaker: Crossplane's per-XR watch circuit breaker (default: burst 100, refill
1 event/s, open 5 min, one event let through every 30 s while open) against a
realistic platform. For each replica count and probe mode, the example
platform is restarted with that mode (interval: every replica's
status.health.lastProbeTime is refreshed every healthCheck.intervalSeconds, 10 s;
on-change: health is published when it changes, with a 60 s heartbeat), a
deployment of that size is brought up, and for --observe seconds the script
records whether the XR's breaker opens (Responsive=False, Crossplane's
circuit_breaker_* metrics) and the function calls made. Then one routed replica
is made Unhealthy and the time until the function takes it out of the route is
measured: the function's reaction time under that breaker state.

size: the largest deployment whose first response Crossplane accepts. Revisions
carry a large engine.env so that the 4 MiB limit falls at a few dozen replicas.
The largest N under the limit (computed with the function in-process) must be
accepted, and N + 1 must be refused with the function's own Fatal; with the
function's check lifted (--max-response-bytes), N + 1 must be refused by
Crossplane itself (gRPC "received message larger than max").

Every loop is bounded by its timeouts; results are printed as JSON and written
to _output/live/measure-*.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crossplane.function import resource  # noqa: E402
from crossplane.function.proto.v1 import run_function_pb2 as fnv1  # noqa: E402
from lightkube.types import PatchType  # noqa: E402

from devplatform.controller import ModelReplica  # noqa: E402
from function import fn, response_size  # noqa: E402
from tests.live.live import RESULTS, Live, deployment_spec  # noqa: E402

KUBECONFIG = ROOT / "_output" / "cluster" / "kubeconfig"
MAX_BACKEND_REFS = 16
CLUSTER = ROOT / "scripts" / "cluster.sh"


def metric_totals(live: Live) -> dict[str, float]:
    """Crossplane's circuit breaker and function call counters, summed over labels."""
    import urllib.request

    from tests.live.live import METRICS_URL

    out: dict[str, float] = {}
    with urllib.request.urlopen(METRICS_URL, timeout=5) as rsp:
        for line in rsp.read().decode().splitlines():
            if line.startswith("#"):
                continue
            if line.startswith("circuit_breaker") and "modeldeployments" not in line:
                continue  # the nested XRs' (ModelReplica, ModelEndpoint) own breakers
            for name in ("circuit_breaker_opens_total", "circuit_breaker_closes_total",
                         "circuit_breaker_events_total", "run_function_request_total"):
                if line.split("{")[0].endswith(name):
                    key = name
                    if name == "circuit_breaker_events_total" and 'result="' in line:
                        key += ":" + line.split('result="')[1].split('"')[0]
                    out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def until(predicate: Any, timeout: float) -> float | None:
    """The time (epoch seconds) at which predicate() held, or None after timeout seconds."""
    start = time.time()
    while time.time() - start < timeout:
        if predicate():
            return time.time()
        time.sleep(0.5)
    return None


def restart_controller(*flags: str) -> None:
    subprocess.run([str(CLUSTER), "controller", *flags], check=True)


def breaker(replicas: list[int], modes: list[str], observe: float) -> list[dict[str, Any]]:
    results = []
    for n in replicas:
        for mode in modes:
            restart_controller("--probe-mode", mode, "--heartbeat-seconds", "60")
            # A fresh namespace each run: Crossplane keys its breaker by namespace and
            # name, and keeps it open across deletion and re-creation.
            run = f"breaker-{n}-{mode}-{int(time.time()) % 100000}"
            with Live(KUBECONFIG, run, strict=False) as live:
                row: dict[str, Any] = {"replicas": n, "probe_mode": mode}
                start_metrics = metric_totals(live)
                spec = deployment_spec(n)
                if n > MAX_BACKEND_REFS:
                    # One backendRef per endpoint: the HTTPRoute CRD allows 16 per rule.
                    del spec["route"]
                row["route"] = "route" in spec
                live.create(spec)
                created = time.time()
                took = until(lambda n=n: live.stable_on("v1", n), 900)
                row["first_deploy_seconds"] = None if took is None else round(took - created, 1)
                row["breaker_open_during_deploy"] = bool(live.checker.breaker_opened)
                if took is None:
                    results.append(row)
                    print(json.dumps(row), flush=True)
                    continue
                before = metric_totals(live)
                t0 = time.time()
                opened_at = None
                while time.time() - t0 < observe:
                    responsive = next((c for c in live.status().get("conditions") or []
                                       if c.get("type") == "Responsive"), None)
                    if responsive and responsive.get("status") == "False" and opened_at is None:
                        opened_at = time.time() - t0
                    time.sleep(1)
                after = metric_totals(live)
                elapsed = time.time() - t0
                delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
                # Reaction: one replica turns Unhealthy; the function replaces it at
                # once (a new replica) and takes it out of the route.
                before_names = {r["metadata"]["name"] for r in live.replicas()}
                victim = sorted(before_names)[0]
                live.client.patch(ModelReplica, victim, {"metadata": {"annotations": {
                    "devplatform.rollout.dev/inject": "unhealthy"}}},
                    namespace=live.namespace, patch_type=PatchType.MERGE)
                hit = time.time()
                # Gone counts too: an Unhealthy replica no route carries is deleted at once.
                probe = until(lambda v=victim: v in live.checker.unhealthy_at, 60)
                replaced = until(lambda b=before_names: any(
                    r["metadata"]["name"] not in b for r in live.replicas()), 400)
                unrouted = until(
                    lambda v=victim: v not in live.checker.routed().get(live.name, set()),
                    60) if row["route"] else None
                if probe is not None:
                    probe = live.checker.unhealthy_at[victim]
                row.update({
                    "observed_seconds": round(elapsed),
                    "deploy_events": round(sum(
                        before.get(k, 0.0) - start_metrics.get(k, 0.0) for k in before
                        if k.startswith("circuit_breaker_events_total"))),
                    "steady_events_per_second": round(sum(
                        v for k, v in delta.items() if k.startswith(
                            "circuit_breaker_events_total")) / elapsed, 2),
                    "steady_events": {k.split(":", 1)[1]: v for k, v in delta.items()
                                      if k.startswith("circuit_breaker_events_total:")},
                    "breaker_opens_steady": delta.get("circuit_breaker_opens_total", 0.0),
                    "responsive_false_after_seconds": None if opened_at is None
                    else round(opened_at, 1),
                    "function_calls_per_minute": round(
                        delta.get("run_function_request_total", 0.0) * 60 / elapsed, 1),
                    "probe_failed_after_seconds": None if probe is None else round(probe - hit, 1),
                    "replaced_after_unhealthy_seconds": None if replaced is None or probe is None
                    else round(replaced - probe, 1),
                    "unrouted_after_unhealthy_seconds": None if unrouted is None or probe is None
                    else round(unrouted - probe, 1),
                })
                print(json.dumps(row), flush=True)
                results.append(row)
    restart_controller()
    return results


def big_revision(name: str, env_entries: int) -> dict[str, Any]:
    rev = deployment_spec(1)["revisions"][0] | {"name": name}
    rev["engine"] = dict(rev["engine"])
    rev["engine"]["env"] = [{"name": f"SETTING_{i:04d}", "value": "x" * 40}
                            for i in range(env_entries)]
    return rev


def first_response_size(spec: dict[str, Any]) -> int:
    req = fnv1.RunFunctionRequest(meta=fnv1.RequestMeta(tag="size"))
    resource.update(req.observed.composite, {
        "apiVersion": "serving.rollout.dev/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": "qwen", "namespace": "size"}, "spec": spec})
    rsp = fn.FunctionRunner().run(req)
    return rsp.ByteSize() if not rsp.results or rsp.results[0].severity != \
        fnv1.SEVERITY_FATAL else -1


def size_spec(n: int, env_entries: int) -> dict[str, Any]:
    spec = deployment_spec(n, revisions=("v1",), active="v1")
    spec["revisions"] = [big_revision("v1", env_entries)]
    return spec


def synced_message(live: Live) -> str:
    c: dict[str, Any] = next(
        (c for c in live.status().get("conditions") or [] if c.get("type") == "Synced"), {})
    return f"{c.get('status')}: {c.get('message', '')}"


def size(env_entries: int) -> dict[str, Any]:
    response_size.configure(10**9)  # measure the full size in-process
    n = 1
    while first_response_size(size_spec(n + 1, env_entries)) <= \
            response_size.CROSSPLANE_RECEIVE_LIMIT:
        n += 1
    fits = first_response_size(size_spec(n, env_entries))
    over = first_response_size(size_spec(n + 1, env_entries))
    result: dict[str, Any] = {"env_entries": env_entries, "largest_n": n,
                              "bytes_at_n": fits, "bytes_at_n_plus_1": over}
    restart_controller("--gpus", "0")  # nothing warms up: only the responses matter
    cases = (("accepted", n, "replicas"), ("refused_by_function", n + 1, "bytes"),
             ("refused_by_crossplane", n + 1, "larger than max"))
    try:
        for label, replicas, expect in cases:
            if label == "refused_by_crossplane":
                # Lift the function's own check: Crossplane's limit is what is left.
                subprocess.run([str(CLUSTER), "function", "--max-response-bytes",
                                str(64 * 1024 * 1024)], check=True)
            with Live(KUBECONFIG, f"size-{label.replace('_', '-')}", strict=False) as live:
                live.create(size_spec(replicas, env_entries))
                if expect == "replicas":
                    until(lambda r=replicas: len(live.replicas()) == r, 300)
                else:
                    until(lambda e=expect: e in synced_message(live), 180)
                result[label] = {"replicas": replicas,
                                 "replicas_created": len(live.replicas()),
                                 "synced": synced_message(live)[:700]}
                print(json.dumps({label: result[label]}), flush=True)
    finally:
        subprocess.run([str(CLUSTER), "function"], check=True)
        restart_controller()
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    b = sub.add_parser("breaker")
    b.add_argument("--replicas", type=int, nargs="+", default=[10, 50])
    b.add_argument("--modes", nargs="+", default=["interval", "on-change"])
    b.add_argument("--observe", type=float, default=150)
    s = sub.add_parser("size")
    s.add_argument("--env-entries", type=int, default=800)
    args = p.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.what == "breaker":
        out: Any = breaker(args.replicas, args.modes, args.observe)
    else:
        out = size(args.env_entries)
    (RESULTS / f"measure-{args.what}.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
