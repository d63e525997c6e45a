"""Live tests: the function under a real control plane (scripts/cluster.sh).

They run when LIVE_E2E=1 or CI is set, against the cluster that
`scripts/cluster.sh up` started (one already up is reused and left running;
one started here is stopped at the end unless LIVE_KEEP=1). Under CI a cluster
that cannot come up is a failure; otherwise the tests are skipped, so a plain
`scripts/test.sh` needs no cluster.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "scripts" / "cluster.sh"
STATE = Path(os.environ.get("CLUSTER_STATE", ROOT / "_output" / "cluster"))


def truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def live_enabled() -> bool:
    return truthy("LIVE_E2E") or truthy("CI")


def unavailable(reason: str) -> None:
    if truthy("CI"):
        pytest.fail(f"live tests cannot run under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def kubeconfig() -> Iterator[Path]:
    """The kubeconfig of a running cluster, started here if none is."""
    if not live_enabled():
        pytest.skip("live tests run with LIVE_E2E=1 (or CI): scripts/cluster.sh up first")
    try:
        import lightkube  # noqa: F401
    except ImportError:
        unavailable("lightkube is not installed: pip install -e '.[cluster]'")
    started = False
    if subprocess.run([str(CLUSTER), "status"], capture_output=True).returncode != 0:
        if os.geteuid() != 0:
            unavailable("scripts/cluster.sh needs root (network namespaces)")
        up = subprocess.run([str(CLUSTER), "up"], env={**os.environ, "SKIP_INSTALL": "1"})
        if up.returncode != 0:
            unavailable(f"scripts/cluster.sh up failed (exit {up.returncode}); "
                        f"logs in {STATE / 'logs'}")
        started = True
    config = STATE / "kubeconfig"
    if not config.exists():
        unavailable(f"{config} is missing")
    yield config
    if started and not truthy("LIVE_KEEP"):
        subprocess.run([str(CLUSTER), "down"], check=False)
