"""The shipped artifacts: the package metadata, the Input CRD, the runtime image and the xpkg.

The first tests read package/ and example/ only and always run. The others run
scripts/build-package.sh, which builds the runtime image tarball and the xpkg
without a Docker daemon and serves the packaged function from a chroot. That
needs root, debootstrap (installed by the script with apt-get), network access
to the Debian mirror and PyPI, and takes about 1.5 minutes with a warm cache
(_output/cache) and several minutes cold, so it runs only with
BUILD_PACKAGE_E2E=1.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "package"
OUTPUT = ROOT / "_output"
IMAGE_TAR = OUTPUT / "image.tar"
XPKG = OUTPUT / "function-model-rollout.xpkg"

IMAGE_USER = "65532:65532"
ENTRYPOINT = ["/venv/bin/function"]
DEV_ONLY = ("pytest", "hypothesis", "ruff", "mypy", "pyinstrument", "pyyaml")

Doc = dict[str, Any]


def load_all(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def input_crd() -> Doc:
    (crd,) = load_all(PACKAGE / "input" / "fn.rollout.dev_inputs.yaml")
    return crd


def test_package_metadata() -> None:
    (meta,) = load_all(PACKAGE / "crossplane.yaml")
    assert meta["apiVersion"] == "meta.pkg.crossplane.io/v1"
    assert meta["kind"] == "Function"
    assert meta["metadata"]["name"] == "function-model-rollout"
    annotations = meta["metadata"]["annotations"]
    for key in ("maintainer", "source", "license", "description", "readme"):
        assert annotations.get(f"meta.crossplane.io/{key}"), key
    assert annotations["meta.crossplane.io/license"] == "Apache-2.0"
    assert meta["spec"]["crossplane"]["version"] == ">=v2.0.0-0"


def test_input_crd_describes_the_composition_input() -> None:
    crd = input_crd()
    assert crd["metadata"]["name"] == "inputs.fn.rollout.dev"
    assert crd["spec"]["group"] == "fn.rollout.dev"
    assert crd["spec"]["names"]["kind"] == "Input"
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1beta1"
    assert version["storage"] is True
    schema = version["schema"]["openAPIV3Schema"]
    assert "required" not in schema, "every Input field is optional"
    props = schema["properties"]
    for field in ("replica", "endpoint"):
        assert props[field]["type"] == "object"
        assert set(props[field]["properties"]) == {"apiVersion", "kind"}
        assert "required" not in props[field]

    # The example Composition's Input fits the schema: only known fields, of
    # the declared types.
    (composition,) = load_all(ROOT / "example" / "composition.yaml")
    inputs = [s["input"] for s in composition["spec"]["pipeline"] if "input" in s]
    assert inputs
    for inp in inputs:
        assert inp["apiVersion"] == f"{crd['spec']['group']}/{version['name']}"
        assert inp["kind"] == "Input"
        for field, value in inp.items():
            assert field in props, field
            if props[field]["type"] == "object":
                assert set(value) <= set(props[field]["properties"]), field
                assert all(isinstance(v, str) for v in value.values()), field


# ---------------------------------------------------------------------------
# The built artifacts.

needs_build = pytest.mark.skipif(
    os.environ.get("BUILD_PACKAGE_E2E") != "1",
    reason="set BUILD_PACKAGE_E2E=1 to build the image and xpkg (root, network, minutes)",
)


class Image:
    """A `docker save` format tarball: its config and its layers (uncompressed)."""

    def __init__(self, path: Path) -> None:
        with tarfile.open(path) as tar:
            (entry,) = json.load(_read(tar, "manifest.json"))
            self.config: Doc = json.load(_read(tar, entry["Config"]))
            self.layers: list[bytes] = []
            for name in entry["Layers"]:
                data = _read(tar, name).read()
                self.layers.append(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)

    def find(self, name: str) -> tuple[int, bytes] | None:
        """The index of the last layer holding name, and the file's content."""
        for i in reversed(range(len(self.layers))):
            with tarfile.open(fileobj=io.BytesIO(self.layers[i])) as layer:
                for m in layer.getmembers():
                    if m.name.removeprefix("./") == name:
                        f = layer.extractfile(m)
                        return i, f.read() if f else b""
        return None

    def names(self) -> set[str]:
        names: set[str] = set()
        for data in self.layers:
            with tarfile.open(fileobj=io.BytesIO(data)) as layer:
                names.update(m.name.removeprefix("./") for m in layer.getmembers())
        return names


def _read(tar: tarfile.TarFile, name: str) -> io.BufferedReader:
    f = tar.extractfile(name)
    assert f is not None, name
    return f  # type: ignore[return-value]


@pytest.fixture(scope="module")
def build_output() -> str:
    proc = subprocess.run(
        [str(ROOT / "scripts" / "build-package.sh")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=45 * 60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]
    return proc.stdout


@pytest.fixture(scope="module")
def image(build_output: str) -> Image:
    return Image(IMAGE_TAR)


@pytest.fixture(scope="module")
def xpkg(build_output: str) -> Image:
    return Image(XPKG)


@pytest.mark.e2e
@needs_build
@pytest.mark.parametrize(
    "check",
    [
        "image: entrypoint served RunFunction over gRPC as 65532:65532",
        "xpkg: entrypoint served RunFunction over gRPC as 65532:65532",
        "xpkg: crossplane render of example/xr.yaml + example/composition.yaml",
        "crossplane xpkg extract reads the package",
    ],
)
def test_build_script_verified(build_output: str, check: str) -> None:
    summary = build_output[build_output.rindex("==> ") :]
    assert "FAIL" not in summary
    assert f"ok   {check}" in summary


@pytest.mark.e2e
@needs_build
def test_runtime_image(image: Image) -> None:
    cfg = image.config["config"]
    assert cfg["User"] == IMAGE_USER
    assert cfg["Entrypoint"] == ENTRYPOINT
    assert "9443/tcp" in cfg["ExposedPorts"]
    assert any(e.startswith("PATH=/venv/bin:") for e in cfg["Env"])
    assert image.config["os"] == "linux"

    names = image.names()
    assert "venv/bin/function" in names
    passwd = image.find("etc/passwd")
    assert passwd is not None
    assert any(
        line.split(":")[2:4] == ["65532", "65532"] for line in passwd[1].decode().splitlines()
    )
    site = [n for n in names if n.startswith("venv/lib/python3.11/site-packages/")]
    assert any("/function_model_rollout-" in n for n in site)
    dists = {n.split("/")[4].split("-")[0].lower() for n in site if n.endswith(".dist-info")}
    assert not dists & set(DEV_ONLY), "dev dependencies in the runtime image"
    assert not dists & {"pip", "setuptools"}


@pytest.mark.e2e
@needs_build
def test_xpkg(image: Image, xpkg: Image) -> None:
    runtime = image.config["rootfs"]["diff_ids"]
    assert xpkg.config["rootfs"]["diff_ids"][: len(runtime)] == runtime
    for key in ("User", "Entrypoint", "ExposedPorts", "Env"):
        assert xpkg.config["config"][key] == image.config["config"][key], key

    found = xpkg.find("package.yaml")
    assert found is not None
    index, content = found
    assert index >= len(runtime)
    docs = [d for d in yaml.safe_load_all(content) if d]
    kinds = {(d["apiVersion"], d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("meta.pkg.crossplane.io/v1", "Function", "function-model-rollout") in kinds
    assert ("apiextensions.k8s.io/v1", "CustomResourceDefinition", "inputs.fn.rollout.dev") in kinds
    crd = next(d for d in docs if d["kind"] == "CustomResourceDefinition")
    assert crd["spec"] == input_crd()["spec"]

    examples = xpkg.find(".up/examples.yaml")
    assert examples is not None
    example_kinds = {d["kind"] for d in yaml.safe_load_all(examples[1]) if d}
    assert {"Composition", "ModelDeployment"} <= example_kinds
