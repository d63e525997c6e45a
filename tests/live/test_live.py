"""Rollouts on a real control plane: Kubernetes API server, Crossplane core, the function
as an installed Function package over mTLS, and the example platform (devplatform).

Each scenario runs in its own namespace with a Checker watching the API for
the whole run (see tests/live/checker.py for what it fails on), then asserts the
outcome a user waits for. Measurements (function calls, reaction times, rollout
length against its ideal) go to _output/live/<scenario>.json; docs/control-plane.md
records them.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from tests.live.conftest import truthy

try:
    import lightkube  # noqa: F401
except ImportError:  # the live tests' client: pip install -e '.[cluster]'
    if truthy("CI"):
        raise
    pytest.skip("lightkube is not installed (pip install -e '.[cluster]')",
                allow_module_level=True)

from tests.live.live import DRAIN_SECONDS, WARMUP_SECONDS, Live, deployment_spec

pytestmark = pytest.mark.live

ROLLOUT_TIMEOUT = 300


def first_deploy(live: Live, replicas: int, revision: str = "v1") -> None:
    live.wait(lambda: live.stable_on(revision, replicas), ROLLOUT_TIMEOUT,
              f"{replicas} replicas of {revision} serving")


def rolling_ideal(replicas: int, surge: int) -> float:
    """The warm-up bound: ceil(N / surge) waves, each a warm-up and a drain."""
    return math.ceil(replicas / surge) * (WARMUP_SECONDS + DRAIN_SECONDS)


def assert_status_survives(live: Live) -> None:
    pruned = live.pruned_status_fields()
    assert not pruned, f"status fields the API server drops: {pruned}"


def test_rolling_update_v1_to_v2(kubeconfig: Path) -> None:
    with Live(kubeconfig, "live-rolling") as live:
        live.create(deployment_spec(4))
        first_deploy(live, 4)
        assert_status_survives(live)
        started = live.patch_spec({"activeRevision": "v2"})
        live.wait(lambda: live.status().get("deployingRevision") == "v2", 30,
                  "the rollout to start")
        live.wait(lambda: any(r for r in live.replicas("v2")), 30, "a v2 replica")
        assert_status_survives(live)  # mid-rollout: revisions rows, rolloutStartTime, ...
        ended = live.wait(lambda: live.stable_on("v2", 4), ROLLOUT_TIMEOUT, "v2 serving alone")
        status = live.status()
        assert status["replicas"]["updated"] == 4
        assert not live.replicas("v1")
        assert_status_survives(live)
        live.finish(started, ended, rolling_ideal(4, 1))


def test_blue_green_with_approval(kubeconfig: Path) -> None:
    strategy = {"type": "BlueGreen", "blueGreen": {
        "autoPromote": False, "scaleDownDelaySeconds": 5}}
    spec = deployment_spec(3, strategy=strategy)
    spec["route"]["preview"] = {"hostnames": ["preview.qwen.example.com"]}
    with Live(kubeconfig, "live-blue-green") as live:
        live.create(spec)
        first_deploy(live, 3)
        started = live.patch_spec({"activeRevision": "v2"})
        live.wait(lambda: live.status().get("phase") == "AwaitingPromotion", ROLLOUT_TIMEOUT,
                  "green to await promotion")
        # Green is full size and reachable only through the preview route.
        assert live.route_revisions() == ["v1"] * 3
        assert live.route_revisions(f"{live.name}-preview") == ["v2"] * 3
        assert_status_survives(live)
        time.sleep(3)  # no promotion without approval
        assert live.route_revisions() == ["v1"] * 3
        promoted = live.patch_spec({"promote": "v2"})
        live.wait(lambda: live.route_revisions() == ["v2"] * 3, 30, "the main route on green")
        switch = time.time() - promoted
        ended = live.wait(lambda: live.stable_on("v2", 3), ROLLOUT_TIMEOUT, "blue retired")
        # The main route never mixed blue and green.
        assert not [m for m in live.checker.main_route_mixes if {"v1", "v2"} <= m]
        live.record(promotion_to_switch_seconds=round(switch, 2))
        live.finish(started, ended, WARMUP_SECONDS + 5)


def test_never_ready_revision_is_rolled_back(kubeconfig: Path) -> None:
    with Live(kubeconfig, "live-rollback") as live:
        live.create(deployment_spec(3, progressDeadlineSeconds=20),
                    {"devplatform.rollout.dev/inject": "v2=never-ready"})
        first_deploy(live, 3)
        started = live.patch_spec({"activeRevision": "v2"})
        live.wait(lambda: live.status().get("failedRevision") == "v2", 120, "the rollback")
        ended = live.wait(lambda: live.stable_on("v1", 3) or (
            live.status().get("phase") == "Failed" and not live.replicas("v2")
            and live.route_revisions() == ["v1"] * 3), 120, "v2 removed, v1 serving")
        status = live.status()
        assert status["currentRevision"] == "v1"
        assert status["phase"] == "Failed"
        assert not live.replicas("v2")
        assert_status_survives(live)
        live.finish(started, ended, 20)


def test_preemption_by_a_newer_revision(kubeconfig: Path) -> None:
    with Live(kubeconfig, "live-preempt") as live:
        live.create(deployment_spec(4, revisions=("v1", "v2", "v3")))
        first_deploy(live, 4)
        started = live.patch_spec({"activeRevision": "v2"})
        live.wait(lambda: live.route_revisions().count("v2") >= 1, ROLLOUT_TIMEOUT,
                  "a v2 replica serving")
        live.patch_spec({"activeRevision": "v3"})
        ended = live.wait(lambda: live.stable_on("v3", 4), ROLLOUT_TIMEOUT, "v3 serving alone")
        assert not live.replicas("v2")
        assert not live.replicas("v1")
        assert_status_survives(live)
        live.finish(started, ended, rolling_ideal(4, 1) + WARMUP_SECONDS + DRAIN_SECONDS)


def test_scale_change_mid_rollout(kubeconfig: Path) -> None:
    with Live(kubeconfig, "live-scale") as live:
        live.create(deployment_spec(4))
        first_deploy(live, 4)
        started = live.patch_spec({"activeRevision": "v2"})
        live.wait(lambda: live.route_revisions().count("v2") >= 1, ROLLOUT_TIMEOUT,
                  "a v2 replica serving")
        live.patch_spec({"replicas": 6})
        ended = live.wait(lambda: live.stable_on("v2", 6), ROLLOUT_TIMEOUT,
                          "6 replicas of v2 serving alone")
        assert not live.replicas("v1")
        assert_status_survives(live)
        live.finish(started, ended, rolling_ideal(6, 2) + WARMUP_SECONDS + DRAIN_SECONDS)


def test_deleting_the_deployment_deletes_what_it_composed(kubeconfig: Path) -> None:
    from tests.live.live import HTTPRoute, ModelDeployment, ModelEndpoint, ModelReplica

    with Live(kubeconfig, "live-delete") as live:
        live.create(deployment_spec(3))
        first_deploy(live, 3)
        started = time.time()
        live.client.delete(ModelDeployment, live.name, namespace=live.namespace)

        def gone() -> bool:
            return not any(list(live.client.list(res, namespace=live.namespace))
                           for res in (ModelDeployment, ModelReplica, ModelEndpoint, HTTPRoute))

        ended = live.wait(gone, 120, "the XR and everything it composed to be deleted")
        live.finish(started, ended, 0)
