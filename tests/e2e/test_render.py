"""End to end: the real Crossplane CLI renders the example scenarios against the served function.

Each scenario in example/scenarios/ is a snapshot (the XR with the status the
function wrote on its previous call, and what Crossplane observed of the
composed resources) taken at the time in example/scenarios/as-of. The function
decides with the real clock, so the snapshot's timestamps are moved to now
(scripts/rebase-times.py) before `crank render` runs it through the pipeline in
example/composition.yaml, exactly as scripts/render-example.sh does.

The assertions are the behaviour docs/rollout.md promises a user, per scenario.

Tools: .tools/crank (scripts/install-tools.sh), or CRANK=<path>. Without it the
tests are skipped, unless CI is set: then a missing tool is a failure.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.grpc_harness import RealServer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "example"
SCENARIOS = EXAMPLE / "scenarios"
TOOLS = ROOT / ".tools"
CROSSPLANE_IMAGE = "xpkg.crossplane.io/crossplane/crossplane:v2.2.1"

XR_NAME = "qwen"
NAMESPACE = "ml-team"
PORT = 8000
LABEL_DEPLOYMENT = "serving.rollout.dev/deployment"
LABEL_REVISION = "serving.rollout.dev/revision"
LABEL_INDEX = "serving.rollout.dev/replica-index"
LABEL_TEMPLATE_HASH = "serving.rollout.dev/template-hash"
ANNOTATION_DRAINING_SINCE = "serving.rollout.dev/draining-since"
RESOURCE_NAME = "crossplane.io/composition-resource-name"

Doc = dict[str, Any]


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require(path: Path, what: str) -> Path:
    """The tool at path; skip without it, but fail under CI."""
    if path.exists():
        return path
    message = f"{what} not found at {path}; run scripts/install-tools.sh"
    if running_in_ci():
        pytest.fail(f"{message} (CI is set, so end-to-end tests may not be skipped)")
    pytest.skip(message)


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def crank() -> Path:
    return require(Path(os.environ.get("CRANK", TOOLS / "crank")), "the Crossplane CLI (crank)")


@pytest.fixture(scope="session")
def function_target(crank: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The function's console script serving on a free loopback port, as render would reach it."""
    with RealServer(["--insecure"], log_dir=tmp_path_factory.mktemp("function")) as server:
        yield server.address


def scenario_names() -> list[str]:
    return sorted(p.name for p in SCENARIOS.iterdir() if (p / "xr.yaml").is_file())


def load_documents(path: Path) -> list[Doc]:
    with open(path, encoding="utf-8") as source:
        return [doc for doc in yaml.safe_load_all(source) if doc]


class Renderer:
    """Runs `crank render` for a scenario, as of one fixed moment for the whole session."""

    def __init__(self, crank: Path, target: str, workdir: Path) -> None:
        self.crank = crank
        self.target = target
        self.workdir = workdir
        self.as_of = (SCENARIOS / "as-of").read_text().strip()
        self.now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.runs = 0

    def rebase(self, source: Path, target: Path) -> None:
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "scripts" / "rebase-times.py"),
                "--as-of",
                self.as_of,
                "--now",
                self.now,
                str(source),
                str(target),
            ],
            check=True,
            cwd=ROOT,
            timeout=60,
        )

    def render(self, scenario: str) -> tuple[Path, list[Doc]]:
        self.runs += 1
        inputs = self.workdir / f"{scenario}-{self.runs}"
        inputs.mkdir(parents=True)
        self.rebase(SCENARIOS / scenario / "xr.yaml", inputs / "xr.yaml")
        args = [
            str(self.crank),
            "render",
            str(inputs / "xr.yaml"),
            str(EXAMPLE / "composition.yaml"),
            str(EXAMPLE / "functions.yaml"),
            f"--xrd={EXAMPLE / 'xrds' / 'modeldeployment.yaml'}",
            "--include-full-xr",
            "--include-function-results",
            "-a",
            f"render.crossplane.io/runtime-development-target={self.target}",
        ]
        observed = SCENARIOS / scenario / "observed.yaml"
        if observed.is_file():
            self.rebase(observed, inputs / "observed.yaml")
            if load_documents(inputs / "observed.yaml"):
                args.append(f"--observed-resources={inputs / 'observed.yaml'}")
        result = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert result.returncode == 0, (
            f"crank render {scenario} failed ({result.returncode}):\n{result.stderr}"
        )
        output = inputs / "rendered.yaml"
        output.write_text(result.stdout, encoding="utf-8")
        return output, load_documents(output)


@pytest.fixture(scope="session")
def renderer(
    crank: Path, function_target: str, tmp_path_factory: pytest.TempPathFactory
) -> Renderer:
    return Renderer(crank, function_target, tmp_path_factory.mktemp("render"))


@pytest.fixture(scope="session")
def rendered_files(renderer: Renderer) -> dict[str, Path]:
    return {name: renderer.render(name)[0] for name in scenario_names()}


@pytest.fixture(scope="session")
def rendered(rendered_files: dict[str, Path]) -> dict[str, list[Doc]]:
    return {name: load_documents(path) for name, path in rendered_files.items()}


# --- reading rendered output --------------------------------------------------------------


def composite(docs: list[Doc]) -> Doc:
    xr = docs[0]
    assert xr["kind"] == "ModelDeployment", f"first document is not the XR: {xr.get('kind')}"
    return xr


def status(docs: list[Doc]) -> Doc:
    return composite(docs).get("status") or {}


def condition(docs: list[Doc], kind: str) -> Doc:
    found = [c for c in status(docs).get("conditions") or [] if c.get("type") == kind]
    assert len(found) == 1, f"expected one {kind} condition, got {found}"
    return found[0]


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d.get("kind") == kind]


def replicas(docs: list[Doc], revision: str | None = None) -> list[Doc]:
    found = of_kind(docs, "ModelReplica")
    if revision is not None:
        found = [r for r in found if r["spec"]["revision"] == revision]
    return found


def names(docs: list[Doc]) -> set[str]:
    return {d["metadata"]["name"] for d in docs}


def route(docs: list[Doc], name: str) -> Doc | None:
    found = [d for d in of_kind(docs, "HTTPRoute") if d["metadata"]["name"] == name]
    assert len(found) <= 1, f"more than one HTTPRoute named {name}"
    return found[0] if found else None


def backend_refs(http_route: Doc) -> list[Doc]:
    """The path rule's backends; a second rule may only be the canary's header rule."""
    rules = http_route["spec"]["rules"]
    assert len(rules) == 1 or (len(rules) == 2 and "headers" in rules[1]["matches"][0]), (
        f"expected one path rule (and at most a header rule), got {rules}")
    return rules[0].get("backendRefs") or []


def backend_names(http_route: Doc) -> set[str]:
    """Every backend any rule of the route references."""
    return {ref["name"] for rule in http_route["spec"]["rules"]
            for ref in rule.get("backendRefs") or []}


def draining(replica: Doc) -> bool:
    return ANNOTATION_DRAINING_SINCE in (replica["metadata"].get("annotations") or {})


def results(docs: list[Doc]) -> list[Doc]:
    return of_kind(docs, "Result")


def scenario_xr(scenario: str) -> Doc:
    return load_documents(SCENARIOS / scenario / "xr.yaml")[0]


def spec_revision(scenario: str, name: str) -> Doc:
    return next(r for r in scenario_xr(scenario)["spec"]["revisions"] if r["name"] == name)


def observed(scenario: str) -> list[Doc]:
    path = SCENARIOS / scenario / "observed.yaml"
    return load_documents(path) if path.is_file() else []


def observed_backend(scenario: str, replica_name: str) -> str:
    """The backend the scenario's observed endpoint of replica_name publishes."""
    for doc in observed(scenario):
        if doc["kind"] == "ModelEndpoint" and doc["metadata"]["name"] == replica_name:
            name = ((doc.get("status") or {}).get("routing") or {}).get("backendName")
            assert isinstance(name, str), f"{scenario}: endpoint {replica_name} publishes none"
            return name
    raise AssertionError(f"{scenario}: no observed endpoint {replica_name}")


def assert_route_shape(http_route: Doc, hostnames: list[str]) -> None:
    spec = http_route["spec"]
    assert http_route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert spec["parentRefs"] == [{"name": "inference-gateway", "namespace": "gateway-system"}]
    assert spec["hostnames"] == hostnames
    (rule,) = spec["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    for ref in rule.get("backendRefs") or []:
        assert ref["port"] == PORT, ref
        assert isinstance(ref["weight"], int) and not isinstance(ref["weight"], bool), ref
        assert ref["weight"] >= 0, ref
    if rule.get("backendRefs"):
        assert any(ref["weight"] > 0 for ref in rule["backendRefs"]), "every weight is 0"


# --- every scenario -----------------------------------------------------------------------


@pytest.mark.parametrize("scenario", scenario_names())
def test_composed_resources_carry_deterministic_keys_names_and_labels(
    rendered: dict[str, list[Doc]], scenario: str
) -> None:
    docs = rendered[scenario]
    replica_names = {}
    for doc in docs[1:]:
        if doc["kind"] == "Result":
            continue
        meta = doc["metadata"]
        key = meta["annotations"][RESOURCE_NAME]
        assert meta["namespace"] == NAMESPACE
        if doc["kind"] == "ModelReplica":
            labels = meta["labels"]
            revision, index = labels[LABEL_REVISION], labels[LABEL_INDEX]
            assert re.fullmatch(r"0|[1-9][0-9]*", index), labels
            assert key == f"replica-{revision}-{index}"
            assert meta["name"] == f"{XR_NAME}-{revision}-{index}"
            assert labels[LABEL_DEPLOYMENT] == XR_NAME
            assert labels.get(LABEL_TEMPLATE_HASH), "replicas carry the revision's template hash"
            assert doc["spec"]["deployment"] == XR_NAME
            assert doc["spec"]["revision"] == revision
            replica_names[(revision, index)] = (meta["name"], labels)
        elif doc["kind"] == "ModelEndpoint":
            labels = meta["labels"]
            revision, index = labels[LABEL_REVISION], labels[LABEL_INDEX]
            assert key == f"endpoint-{revision}-{index}"
        elif doc["kind"] == "HTTPRoute":
            assert (key, meta["name"]) in {
                ("route", XR_NAME),
                ("preview-route", f"{XR_NAME}-preview"),
            }
        else:
            pytest.fail(f"unexpected composed kind {doc['kind']} ({key})")
    for endpoint in of_kind(docs, "ModelEndpoint"):
        labels = endpoint["metadata"]["labels"]
        replica_key = (labels[LABEL_REVISION], labels[LABEL_INDEX])
        assert replica_key in replica_names, (
            f"endpoint {endpoint['metadata']['name']} has no replica"
        )
        name, replica_labels = replica_names[replica_key]
        assert endpoint["metadata"]["name"] == name
        assert labels == replica_labels, "an endpoint carries the labels of its replica"
        assert endpoint["spec"]["replica"] == name
        assert endpoint["spec"]["revision"] == labels[LABEL_REVISION]
        assert endpoint["spec"]["port"] == PORT


@pytest.mark.parametrize("scenario", scenario_names())
def test_routes_reference_only_published_backends(
    rendered: dict[str, list[Doc]], scenario: str
) -> None:
    docs = rendered[scenario]
    published = {
        ((e.get("status") or {}).get("routing") or {}).get("backendName")
        for e in observed(scenario)
        if e["kind"] == "ModelEndpoint"
    } - {None}
    for http_route in of_kind(docs, "HTTPRoute"):
        assert backend_names(http_route) <= published, http_route["metadata"]["name"]


def test_rendered_output_matches_the_schemas(
    crank: Path, rendered_files: dict[str, Path], tmp_path: Path
) -> None:
    """The XR status the function writes and everything it composes fit the published schemas."""
    httproute_crd = require(
        TOOLS / "crds" / "gateway.networking.k8s.io_httproutes.yaml",
        "the Gateway API HTTPRoute CRD",
    )
    cache = require(TOOLS / "validate-cache", "the crank beta validate schema cache")
    resources = tmp_path / "resources"
    resources.mkdir()
    for name, path in rendered_files.items():
        docs = [d for d in load_documents(path) if d.get("kind") != "Result"]
        with open(resources / f"{name}.yaml", "w", encoding="utf-8") as out:
            yaml.safe_dump_all(docs, out, sort_keys=False, explicit_start=True)
    result = subprocess.run(
        [
            str(crank),
            "beta",
            "validate",
            f"{EXAMPLE / 'xrds'},{httproute_crd}",
            str(resources),
            f"--cache-dir={cache}",
            f"--crossplane-image={CROSSPLANE_IMAGE}",
            "--error-on-missing-schemas",
            "--skip-success-results",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_keys_and_names_are_deterministic(
    renderer: Renderer, rendered: dict[str, list[Doc]]
) -> None:
    """docs/rollout.md#resources-and-fields: the same inputs give the same keys and names."""

    def identity(docs: list[Doc]) -> list[tuple[str, str, str]]:
        return sorted(
            (d["kind"], d["metadata"]["annotations"][RESOURCE_NAME], d["metadata"]["name"])
            for d in docs[1:]
            if d["kind"] != "Result"
        )

    for scenario in ("fresh", "mid-rollout"):
        _, again = renderer.render(scenario)
        assert identity(again) == identity(rendered[scenario]), scenario


# --- fresh: a new ModelDeployment ---------------------------------------------------------


def test_fresh_deploys_the_active_revision_at_full_size(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["fresh"]
    v1 = spec_revision("fresh", "v1")
    assert len(replicas(docs)) == 3
    assert replicas(docs, "v1") == replicas(docs), "only the active revision v1 is deployed"
    indices = {r["metadata"]["labels"][LABEL_INDEX] for r in replicas(docs)}
    assert len(indices) == 3, "every replica has its own index"
    assert names(replicas(docs)) == {f"qwen-v1-{i}" for i in indices}
    hashes = {r["metadata"]["labels"][LABEL_TEMPLATE_HASH] for r in replicas(docs)}
    assert len(hashes) == 1, "replicas of one revision share its template hash"
    for replica in replicas(docs):
        assert replica["apiVersion"] == "serving.rollout.dev/v1alpha1"
        assert replica["metadata"]["labels"][LABEL_DEPLOYMENT] == "qwen"
        assert replica["metadata"]["labels"][LABEL_REVISION] == "v1"
        spec = replica["spec"]
        assert spec["deployment"] == "qwen"
        assert spec["revision"] == "v1"
        assert spec["model"] == v1["model"]
        assert spec["engine"] == v1["engine"]
        assert spec["healthCheck"] == {
            "path": "/health",
            "port": 8000,
            "intervalSeconds": 10,
            "timeoutSeconds": 5,
            "initialDelaySeconds": 600,
            "failureThreshold": 3,
            "expectedStatus": 200,
        }
        assert not draining(replica)


def test_fresh_composes_no_endpoint_and_an_empty_route(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["fresh"]
    assert of_kind(docs, "ModelEndpoint") == [], "no replica is Ready, so no endpoint"
    main = route(docs, "qwen")
    assert main is not None, "the main route is composed even with nothing to route to"
    assert_route_shape(main, ["qwen.example.com"])
    assert backend_refs(main) == []
    preview = route(docs, "qwen-preview")
    assert preview is not None, "v1 is deploying and spec.route.preview is set"
    assert_route_shape(preview, ["preview.qwen.example.com"])
    assert backend_refs(preview) == []


def test_fresh_status_reports_the_bootstrap(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["fresh"]
    st = status(docs)
    assert st.get("deployingRevision") == "v1"
    assert "currentRevision" not in st
    assert st.get("phase") == "Progressing"
    assert st.get("rolloutStrategy") == "RollingUpdate"
    assert st.get("rolloutStartTime") and st.get("lastProgressTime")
    assert st["replicas"]["desired"] == 3
    assert condition(docs, "Routed")["status"] == "False"
    assert condition(docs, "Routed").get("message"), "Routed=False says why"
    assert condition(docs, "Available")["status"] == "False"
    assert condition(docs, "Progressing")["status"] == "True"
    assert condition(docs, "Progressing")["reason"] == "NewRevisionDeploying"
    assert condition(docs, "Ready")["status"] == "False", "not Available, so the XR is not Ready"


# --- some-ready: the bootstrap, two of three replicas Ready ----------------------------------


def test_some_ready_keeps_the_provisioning_replica(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["some-ready"]
    assert names(replicas(docs)) == {"qwen-v1-0", "qwen-v1-1", "qwen-v1-2"}
    assert not any(draining(r) for r in replicas(docs))


def test_some_ready_has_endpoints_only_for_ready_replicas(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["some-ready"]
    endpoints = {e["metadata"]["name"]: e for e in of_kind(docs, "ModelEndpoint")}
    assert set(endpoints) == {"qwen-v1-0", "qwen-v1-1"}, "qwen-v1-2 is not Ready"
    urls = {
        d["metadata"]["name"]: d["status"]["address"]["url"]
        for d in observed("some-ready")
        if d["kind"] == "ModelReplica" and "address" in d["status"]
    }
    for name, endpoint in endpoints.items():
        assert endpoint["spec"] == {
            "replica": name,
            "revision": "v1",
            "url": urls[name],
            "port": PORT,
        }


def test_some_ready_routes_only_to_the_published_backend(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["some-ready"]
    main = route(docs, "qwen")
    assert main is not None
    assert_route_shape(main, ["qwen.example.com"])
    refs = backend_refs(main)
    assert [ref["name"] for ref in refs] == [observed_backend("some-ready", "qwen-v1-0")]
    assert refs[0]["port"] == PORT
    assert isinstance(refs[0]["weight"], int) and refs[0]["weight"] > 0
    assert condition(docs, "Routed")["status"] == "True"


def test_some_ready_is_still_deploying(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["some-ready"]
    st = status(docs)
    assert st.get("deployingRevision") == "v1", "v1 has 1 of 3 replicas serving"
    assert "currentRevision" not in st
    assert st.get("phase") == "Progressing"
    assert condition(docs, "Available")["status"] == "False"
    assert not [r for r in results(docs) if r.get("severity") == "SEVERITY_WARNING"]


# --- all-ready: v1 fully rolled out ---------------------------------------------------------


def test_all_ready_routes_to_every_replica(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["all-ready"]
    main = route(docs, "qwen")
    assert main is not None
    assert_route_shape(main, ["qwen.example.com"])
    refs = backend_refs(main)
    assert sorted(ref["name"] for ref in refs) == sorted(
        observed_backend("all-ready", f"qwen-v1-{i}") for i in range(3)
    )
    assert all(ref["weight"] == 1 for ref in refs), "RollingUpdate: every routed endpoint weight 1"
    assert route(docs, "qwen-preview") is None, "nothing is deploying"
    assert names(replicas(docs)) == {"qwen-v1-0", "qwen-v1-1", "qwen-v1-2"}
    assert names(of_kind(docs, "ModelEndpoint")) == {"qwen-v1-0", "qwen-v1-1", "qwen-v1-2"}
    assert not any(draining(r) for r in replicas(docs))


def test_all_ready_is_stable_and_available(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["all-ready"]
    st = status(docs)
    assert st.get("currentRevision") == "v1"
    assert st.get("phase") == "Stable"
    assert "deployingRevision" not in st
    assert "failedRevision" not in st
    assert st["replicas"]["desired"] == 3
    assert st["replicas"]["available"] == 3
    rows = {row["name"]: row for row in st["revisions"]}
    assert set(rows) == {"v1"}
    assert rows["v1"]["replicas"] == 3
    assert rows["v1"]["available"] == 3
    assert rows["v1"]["trafficWeight"] == 100
    assert condition(docs, "Available")["status"] == "True"
    assert condition(docs, "Routed")["status"] == "True"
    assert condition(docs, "Ready")["status"] == "True", "Available, so the XR is Ready"
    assert results(docs) == [], "results only on transitions"


# --- mid-rollout: RollingUpdate v1 -> v2, the first v2 replica serving -------------------------


def test_mid_rollout_respects_the_surge(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["mid-rollout"]
    # N = 3, maxSurge 25% of 3 rounds up to 1: at most 4 replicas hold capacity,
    # draining ones included, so no second v2 replica yet.
    assert names(replicas(docs, "v2")) == {"qwen-v2-0"}
    assert len(replicas(docs)) <= 4
    assert len(replicas(docs, "v1")) == 3, "a draining v1 replica keeps its key until drained"


def test_mid_rollout_routes_v1_and_v2_serving_endpoints(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["mid-rollout"]
    main = route(docs, "qwen")
    assert main is not None
    assert_route_shape(main, ["qwen.example.com"])
    refs = backend_refs(main)
    routed = backend_names(main)
    v1_backends = {observed_backend("mid-rollout", f"qwen-v1-{i}") for i in range(3)}
    assert observed_backend("mid-rollout", "qwen-v2-0") in routed
    assert routed & v1_backends, "v1 still serves during the rollout"
    assert all(ref["weight"] == 1 for ref in refs), "RollingUpdate: every routed endpoint weight 1"
    # maxUnavailable 0: the route never carries fewer than N serving endpoints.
    assert len(refs) >= 3
    for replica in replicas(docs, "v1"):
        if draining(replica):
            assert observed_backend("mid-rollout", replica["metadata"]["name"]) not in routed, (
                "a draining replica is out of every route"
            )
    preview = route(docs, "qwen-preview")
    assert preview is not None
    assert_route_shape(preview, ["preview.qwen.example.com"])
    assert backend_names(preview) == {observed_backend("mid-rollout", "qwen-v2-0")}


def test_mid_rollout_is_progressing(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["mid-rollout"]
    st = status(docs)
    assert st.get("currentRevision") == "v1"
    assert st.get("deployingRevision") == "v2"
    assert st.get("phase") == "Progressing"
    assert st.get("rolloutStrategy") == "RollingUpdate"
    assert "failedRevision" not in st
    assert condition(docs, "Progressing")["status"] == "True"
    assert condition(docs, "Available")["status"] == "True"
    assert condition(docs, "Ready")["status"] == "True", "a rollout does not flip readiness"


# --- awaiting-promotion: BlueGreen, green fully serving, no approval yet ----------------------


def test_awaiting_promotion_keeps_blue_in_the_main_route(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["awaiting-promotion"]
    main = route(docs, "qwen")
    assert main is not None
    assert_route_shape(main, ["qwen.example.com"])
    assert backend_names(main) == {
        observed_backend("awaiting-promotion", f"qwen-v1-{i}") for i in range(3)
    }
    preview = route(docs, "qwen-preview")
    assert preview is not None
    assert_route_shape(preview, ["preview.qwen.example.com"])
    assert backend_names(preview) == {
        observed_backend("awaiting-promotion", f"qwen-v2-{i}") for i in range(3)
    }
    assert names(replicas(docs)) == {f"qwen-{r}-{i}" for r in ("v1", "v2") for i in range(3)}
    assert not any(draining(r) for r in replicas(docs))


def test_awaiting_promotion_waits_for_approval(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["awaiting-promotion"]
    st = status(docs)
    assert st.get("phase") == "AwaitingPromotion"
    assert st.get("currentRevision") == "v1"
    assert st.get("deployingRevision") == "v2"
    assert st.get("rolloutStrategy") == "BlueGreen"
    assert condition(docs, "Progressing")["status"] == "True"
    assert condition(docs, "Progressing")["reason"] == "AwaitingPromotion"
    assert condition(docs, "Available")["status"] == "True"


# --- analysis-rollback: BlueGreen green failing its SLO gate past the tolerance -------------


def test_analysis_rollback_rolls_green_back_naming_the_figure(
    rendered: dict[str, list[Doc]],
) -> None:
    docs = rendered["analysis-rollback"]
    st = status(docs)
    assert st.get("phase") == "Failed"
    assert st.get("currentRevision") == "v1"
    assert st.get("failedRevision") == "v2"
    assert "deployingRevision" not in st
    figures = "v2 TTFT p95 2.4s over 545 requests > 2s (baseline 0.896s)"
    progressing = condition(docs, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "AnalysisFailed")
    assert figures in progressing["message"]
    analysis = st.get("analysis") or {}
    assert analysis.get("verdict") == "Fail"
    assert analysis.get("message") == figures
    assert analysis.get("failingSince") and analysis.get("evaluatedTime")
    warnings = [r for r in results(docs) if r.get("severity") == "SEVERITY_WARNING"]
    assert len(warnings) == 1, warnings
    assert figures in warnings[0]["message"]
    assert "rolled back to 'v1'" in warnings[0]["message"]
    assert condition(docs, "Available")["status"] == "True"


def test_analysis_rollback_keeps_green_off_the_main_route(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["analysis-rollback"]
    main = route(docs, "qwen")
    assert main is not None
    assert backend_names(main) == {
        observed_backend("analysis-rollback", f"qwen-v1-{i}") for i in range(3)
    }
    assert route(docs, "qwen-preview") is None
    assert all(draining(r) for r in replicas(docs, "v2"))
    assert not any(draining(r) for r in replicas(docs, "v1"))


# --- mid-canary: Canary v1 -> v2 at step 0 (setWeight 10), the canary replica now serving ------


def test_mid_canary_splits_the_main_route_ten_percent_and_adds_the_header_rule(
        rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["mid-canary"]
    main = route(docs, "qwen")
    assert main is not None
    rules = main["spec"]["rules"]
    assert len(rules) == 2, "the main rule and the header rule"
    canary = observed_backend("mid-canary", "qwen-v2-0")
    weights = {ref["name"]: ref["weight"] for ref in rules[0]["backendRefs"]}
    current = {observed_backend("mid-canary", f"qwen-v1-{i}") for i in range(3)}
    assert set(weights) == current | {canary}
    # Exactly 10%: each v1 backend (100 - 10) * 1, the canary 10 * 3, divided by 30.
    assert weights == {**dict.fromkeys(current, 3), canary: 1}
    header = rules[1]
    assert header["matches"] == [{"path": {"type": "PathPrefix", "value": "/"},
                                  "headers": [{"type": "Exact", "name": "x-canary",
                                               "value": "true"}]}]
    assert [ref["name"] for ref in header["backendRefs"]] == [canary], "the canary only"
    st = status(docs)
    assert st["canary"]["step"] == 0 and st["canary"]["weight"] == 10
    assert st["rolloutStrategy"] == "Canary"
    rows = {row["name"]: row["trafficWeight"] for row in st["revisions"]}
    assert rows == {"v1": 90, "v2": 10}
    progressing = condition(docs, "Progressing")
    assert progressing["reason"] == "CanaryStep"
    assert progressing["message"] == (
        "step 0/4 setWeight 10: 10% routed, 1 of 1 canary replicas serving")


# --- capacity-shortage: the v2 surge replica waits for a GPU, Replace after 120 s ------------


def test_capacity_shortage_keeps_the_waiting_replica_and_trades_one_v1(
    rendered: dict[str, list[Doc]],
) -> None:
    docs = rendered["capacity-shortage"]
    waiting = next(r for r in replicas(docs, "v2") if r["metadata"]["name"] == "qwen-v2-0")
    assert not draining(waiting), "a replica waiting for an accelerator is kept, not replaced"
    assert "qwen-v2-0" not in names(of_kind(docs, "ModelEndpoint")), "it is not Ready"
    # It holds no accelerator, so it is not in the total that maxSurge bounds: one more v2
    # replica is created beside it (3 v1 + 1 new = N + surge).
    assert names(replicas(docs, "v2")) == {"qwen-v2-0", "qwen-v2-1"}
    # onCapacityShortage Replace, capacityWaitSeconds 120, waited since 10:00:02: one v1
    # replica leaves the route and drains to free its GPU; Serving 2 = N - unav - 1.
    drained = [r["metadata"]["name"] for r in replicas(docs, "v1") if draining(r)]
    assert len(drained) == 1
    main = route(docs, "qwen")
    assert main is not None
    routed = backend_names(main)
    assert len(routed) == 2
    assert observed_backend("capacity-shortage", drained[0]) not in routed


def test_capacity_shortage_says_why_it_waits_and_what_it_traded(
    rendered: dict[str, list[Doc]],
) -> None:
    docs = rendered["capacity-shortage"]
    st = status(docs)
    assert st.get("phase") == "Progressing"
    assert st.get("deployingRevision") == "v2"
    assert st["replicas"]["unschedulable"] == 1
    assert st["replicas"]["total"] == 4, "replicas holding a GPU, the new qwen-v2-1 included"
    message = condition(docs, "Progressing")["message"]
    assert "1 replica unschedulable (InsufficientCapacity: qwen-v2-0)" in message
    assert "trading one replica of headroom" in message
    # The traded replica is headroom: 2 of 3 serve, below N - maxUnavailable.
    assert condition(docs, "Available")["status"] == "False"
