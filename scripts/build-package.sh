#!/usr/bin/env bash
# Build function-model-rollout's runtime image and Crossplane package (xpkg)
# without a Docker daemon, then check both.
#
#   1. wheel      build the project wheel and download its runtime dependencies
#                 as wheels for the image's Python (3.11, manylinux, this arch)
#   2. rootfs     a minimal Debian bookworm (debootstrap --variant=minbase) with
#                 Debian's python3; /venv holds the wheel and its runtime
#                 dependencies (installed offline inside the rootfs); user
#                 nonroot (65532); the same layout as the Dockerfile's image
#   3. image      _output/image.tar: a `docker save` format image tarball (two
#                 layers: OS and /venv) whose config sets Entrypoint, User,
#                 ExposedPorts and Env like the Dockerfile
#   4. xpkg       crossplane xpkg build --embed-runtime-image-tarball
#                 -> _output/function-model-rollout.xpkg
#   5. verify     unpack image.tar and the xpkg into fresh directories, run
#                 each one's entrypoint in a chroot as the image user, call
#                 RunFunction over gRPC, run `crossplane render` on the example
#                 against the packaged function, and inspect the xpkg's layers
#
# Run as root on Debian/Ubuntu (debootstrap and chroot need root); missing host
# tools are installed with apt-get. Re-running is safe: every output is rebuilt
# from scratch except the cached debootstrap base (delete _output/cache or set
# REBUILD_BASE=1 to refresh it).
#
# Environment:
#   OUTPUT_DIR      where everything goes (default: <repo>/_output)
#   CROSSPLANE      the crossplane CLI (default: $CRANK, .tools/crank, then crossplane
#                   or crank on PATH; built from source with Go if none)
#   PYTHON          host Python used to build the wheel (default: python3)
#   DEBIAN_MIRROR   debootstrap mirror (default: http://deb.debian.org/debian)
#   REBUILD_BASE=1  rebuild the cached debootstrap base
#   SKIP_VERIFY=1   build only
#   CLIENT_VENV     a venv with the Crossplane function SDK, used to call the
#                   served function (default: <repo>/.venv; without one, the
#                   image's own /venv makes the call from inside its chroot)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

OUT=${OUTPUT_DIR:-$ROOT/_output}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$OUT/work
CACHE=$OUT/cache
PYTHON=${PYTHON:-python3}
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CROSSPLANE_VERSION=v2.2.1
PACKAGE_NAME=function-model-rollout
IMAGE_TAR=$OUT/image.tar
XPKG=$OUT/$PACKAGE_NAME.xpkg
EXAMPLES=$ROOT/example
CLIENT_VENV=${CLIENT_VENV:-$ROOT/.venv}

# The image's contract; the Dockerfile says the same.
IMAGE_USER=65532:65532
IMAGE_ENTRYPOINT=/venv/bin/function
IMAGE_PORT=9443
IMAGE_PATH=/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

START=$(date +%s)
step() { printf '\n==> [%4ss] %s\n' "$(($(date +%s) - START))" "$*"; }
die() { printf 'build-package: %s\n' "$*" >&2; exit 1; }

# Anything started or mounted below is undone on exit, success or not.
PIDS=()
MOUNTS=()
cleanup() {
  local pid m
  for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  for m in "${MOUNTS[@]+"${MOUNTS[@]}"}"; do
    umount -l "$m" 2>/dev/null || true
  done
}
trap cleanup EXIT

# Unmount anything an interrupted earlier run left mounted under a directory,
# so that removing the directory never reaches into a mounted filesystem.
umount_under() {
  local m
  while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done < <(awk -v d="$1/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r)
}

# Run a command inside a root filesystem with a clean environment, /proc
# mounted for the duration.
in_rootfs() {
  local rootfs=$1; shift
  mount -t proc proc "$rootfs/proc"
  MOUNTS+=("$rootfs/proc")
  local rc=0
  env -i HOME=/root LC_ALL=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    "$CHROOT" "$rootfs" "$@" || rc=$?
  umount "$rootfs/proc"
  unset 'MOUNTS[${#MOUNTS[@]}-1]'
  return "$rc"
}

# ----------------------------------------------------------------------------
step "host tools"
[ "$(id -u)" -eq 0 ] || die "run as root: debootstrap and chroot need it"
missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v "$PYTHON" >/dev/null || { PYTHON=python3; missing+=(python3 python3-venv); }
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v tar >/dev/null || missing+=(tar)
command -v chroot >/dev/null || missing+=(coreutils)
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || die "missing tools (${missing[*]}) and no apt-get to install them"
  echo "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" ca-certificates
fi

CHROOT=$(command -v chroot)

find_crossplane() {
  local c
  for c in "${CROSSPLANE:-}" "${CRANK:-}" "$ROOT/.tools/crank" "$ROOT/.tools/crossplane" \
           "$(command -v crossplane || true)" "$(command -v crank || true)"; do
    if [ -n "$c" ] && [ -x "$c" ]; then echo "$c"; return 0; fi
  done
  return 1
}
if ! CROSSPLANE=$(find_crossplane); then
  # `go install ...@version` needs the module proxy's version list (to check
  # for deprecation), which not every proxy serves; downloading the module and
  # building inside it needs only the version itself.
  command -v go >/dev/null || die "no crossplane CLI found and no Go toolchain (>= 1.25) to build one; install Go or set CROSSPLANE=/path/to/crossplane"
  step "building the crossplane CLI $CROSSPLANE_VERSION from source (takes minutes)"
  moddir=$(go mod download -json "github.com/crossplane/crossplane/v2@$CROSSPLANE_VERSION" |
           "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  mkdir -p "$ROOT/.tools"
  (cd "$moddir" && go build -o "$ROOT/.tools/crank" \
     -ldflags "-X github.com/crossplane/crossplane/v2/internal/version.version=$CROSSPLANE_VERSION" ./cmd/crank)
  CROSSPLANE=$ROOT/.tools/crank
fi
echo "crossplane CLI: $CROSSPLANE"
echo "python:         $("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])')"

mkdir -p "$WORK" "$CACHE"
umount_under "$WORK"
umount_under "$CACHE"
TOOL=$WORK/image_tool.py

# The image assembler, unpacker and inspector: Python standard library only.
cat >"$TOOL" <<'PY'
"""Assemble, unpack and inspect `docker save` format image tarballs.

assemble ROOTFS OUT.tar CONFIG.json   two layers: everything but /venv, then /venv
unpack   IMAGE.tar DEST               apply the layers in order; prints the config
inspect  IMAGE.tar                    print manifest, config and layer listing as JSON
"""
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
# Runtime-provided directories: kept, but empty, as in any container image.
EMPTY_DIRS = {"dev", "proc", "sys", "run", "tmp", "var/tmp"}


def _walk(rootfs, top):
    """Yield (path, arcname) under rootfs/top depth-first, in sorted order."""
    start = os.path.join(rootfs, top) if top else rootfs
    for dirpath, dirnames, filenames in os.walk(start):
        rel = os.path.relpath(dirpath, rootfs)
        rel = "" if rel == "." else rel
        if rel:
            yield dirpath, rel
        if rel in EMPTY_DIRS:
            dirnames[:] = []
            continue
        dirnames.sort()
        for name in sorted(filenames):
            yield os.path.join(dirpath, name), os.path.join(rel, name) if rel else name
        # Symlinks to directories are listed in dirnames but os.walk does not
        # descend into them; add them as entries.
        for name in list(dirnames):
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                yield full, os.path.join(rel, name) if rel else name
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]


def _layer(rootfs, entries, path):
    """Write a deterministic layer tar; return its sha256 (the diff_id)."""
    with open(path, "wb") as raw:
        digest = hashlib.sha256()

        class Hashing(io.RawIOBase):
            def writable(self):
                return True

            def write(self, b):
                digest.update(b)
                return raw.write(b)

        with tarfile.open(fileobj=Hashing(), mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for full, arc in entries:
                info = tar.gettarinfo(full, arcname=arc)
                if info is None:  # sockets
                    continue
                info.uname = info.gname = ""
                info.mtime = min(int(info.mtime), EPOCH) if EPOCH else int(info.mtime)
                if info.isreg():
                    with open(full, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return "sha256:" + digest.hexdigest()


def assemble(rootfs, out, config_path):
    with open(config_path) as f:
        spec = json.load(f)
    entries = list(_walk(rootfs, ""))
    os_entries = [(p, a) for p, a in entries if a != "venv" and not a.startswith("venv/")]
    venv_entries = list(_walk(rootfs, "venv"))
    if not venv_entries:
        sys.exit(f"assemble: {rootfs}/venv is missing")
    layers = [("os", os_entries), ("venv", venv_entries)]
    created = spec.pop("created")
    history_by = spec.pop("history")
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(out))) as tmp:
        diff_ids, files = [], []
        for name, ents in layers:
            p = os.path.join(tmp, name + ".tar")
            diff_ids.append(_layer(rootfs, ents, p))
            files.append(p)
        config = {
            "architecture": spec.pop("architecture"),
            "os": "linux",
            "created": created,
            "config": spec,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": created, "created_by": by} for by in history_by],
        }
        config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
        config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
        layer_names = [d.split(":", 1)[1] + "/layer.tar" for d in diff_ids]
        manifest = [{"Config": config_name, "RepoTags": [os.environ["IMAGE_TAG"]], "Layers": layer_names}]
        with tarfile.open(out + ".tmp", "w", format=tarfile.PAX_FORMAT) as tar:

            def add_bytes(name, data):
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), EPOCH, 0o644
                tar.addfile(info, io.BytesIO(data))

            for name, p in zip(layer_names, files):
                d = tarfile.TarInfo(os.path.dirname(name))
                d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, EPOCH
                tar.addfile(d)
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = os.path.getsize(p), EPOCH, 0o644
                with open(p, "rb") as f:
                    tar.addfile(info, f)
            add_bytes(config_name, config_bytes)
            add_bytes("manifest.json", json.dumps(manifest, indent=2).encode())
        os.replace(out + ".tmp", out)
    print(json.dumps({"config": config_name, "diff_ids": diff_ids,
                      "layer_entries": [len(e) for _, e in layers]}, indent=2))


def _read(image):
    """Return (manifest entry, config dict, tarfile) of a docker-save tarball."""
    tar = tarfile.open(image)
    manifest = json.load(tar.extractfile("manifest.json"))
    if len(manifest) != 1:
        sys.exit(f"{image}: expected one image in manifest.json, found {len(manifest)}")
    entry = manifest[0]
    config = json.load(tar.extractfile(entry["Config"]))
    return entry, config, tar


def _open_layer(tar, name, want_digest=False):
    """The layer's uncompressed tar bytes (and the sha256 of the stored blob)."""
    data = tar.extractfile(name).read()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return (data, digest) if want_digest else data


def unpack(image, dest):
    entry, config, tar = _read(image)
    if os.path.exists(dest):
        shutil.rmtree(dest)
    os.makedirs(dest)
    for name in entry["Layers"]:
        data = _open_layer(tar, name)
        with tarfile.open(fileobj=io.BytesIO(data)) as layer:
            # OCI whiteouts: .wh..wh..opq empties a directory, .wh.NAME deletes NAME.
            for m in layer.getmembers():
                base, parent = os.path.basename(m.name), os.path.dirname(m.name)
                if base == ".wh..wh..opq":
                    d = os.path.join(dest, parent)
                    for child in os.listdir(d) if os.path.isdir(d) else []:
                        p = os.path.join(d, child)
                        shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.remove(p)
                elif base.startswith(".wh."):
                    p = os.path.join(dest, parent, base[4:])
                    if os.path.isdir(p) and not os.path.islink(p):
                        shutil.rmtree(p)
                    elif os.path.lexists(p):
                        os.remove(p)
        # GNU tar restores owners, modes, links and devices faithfully.
        subprocess.run(["tar", "-x", "-p", "--numeric-owner", "--same-owner",
                        "--exclude=.wh.*", "--exclude=*/.wh.*", "-C", dest, "-f", "-"],
                       input=data, check=True)
    print(json.dumps(config))


def inspect(image):
    entry, config, tar = _read(image)
    labels = (config.get("config") or {}).get("Labels") or {}
    layers = []
    for name, diff_id in zip(entry["Layers"], config["rootfs"]["diff_ids"]):
        data, digest = _open_layer(tar, name, want_digest=True)
        with tarfile.open(fileobj=io.BytesIO(data)) as layer:
            members = layer.getmembers()
            files = {}
            for wanted in ("package.yaml", ".up/examples.yaml"):
                for m in members:
                    if m.name.removeprefix("./") == wanted:
                        files[wanted] = layer.extractfile(m).read().decode()
        layers.append({
            "file": name,
            "diff_id": diff_id,
            "size": tar.getmember(name).size,
            "entries": len(members),
            # Crossplane labels the config with each package layer's digest.
            "annotation": labels.get("io.crossplane.xpkg:" + digest, ""),
            "files": files,
        })
    json.dump({"manifest": entry, "config": config, "layers": layers}, sys.stdout)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "assemble":
        assemble(*args)
    elif cmd == "unpack":
        unpack(*args)
    elif cmd == "inspect":
        inspect(*args)
    else:
        sys.exit(__doc__)
PY

# ----------------------------------------------------------------------------
step "1/5 wheel: build the project wheel"
BUILD_VENV=$WORK/build-venv
if [ ! -x "$BUILD_VENV/bin/pip" ]; then
  "$PYTHON" -m venv "$BUILD_VENV"
fi
rm -rf "$OUT/dist" "$OUT/wheels"
"$BUILD_VENV/bin/python" -m pip wheel --quiet --no-deps --wheel-dir "$OUT/dist" "$ROOT"
WHEEL=$(ls "$OUT"/dist/*.whl)
VERSION=$(basename "$WHEEL" | cut -d- -f2)
echo "wheel: $WHEEL"
[ "$(ls "$OUT"/dist/*.whl | wc -l)" -eq 1 ] || die "expected exactly one wheel in $OUT/dist"

# ----------------------------------------------------------------------------
step "2/5 rootfs: Debian $DEBIAN_SUITE minbase with python3"
BASE=$CACHE/debootstrap-$DEBIAN_SUITE-$(dpkg --print-architecture 2>/dev/null || uname -m)
if [ "${REBUILD_BASE:-0}" = 1 ] || [ ! -f "$BASE.done" ]; then
  rm -rf --one-file-system "$BASE" "$BASE.done"
  # python3-venv is needed only to create /venv; it is purged afterwards.
  debootstrap --variant=minbase --include=python3,python3-venv \
    "$DEBIAN_SUITE" "$BASE" "$DEBIAN_MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -30 "$CACHE/debootstrap.log"; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
  touch "$BASE.done"
else
  echo "using cached base $BASE"
fi
ROOTFS=$WORK/rootfs
rm -rf --one-file-system "$ROOTFS"
cp -a "$BASE" "$ROOTFS"

# The rootfs's own interpreter decides which wheels fit it.
read -r PYVER GLIBC_MINOR MACHINE < <(in_rootfs "$ROOTFS" /usr/bin/python3 -c '
import platform, sys
print(f"{sys.version_info[0]}.{sys.version_info[1]}", platform.libc_ver()[1].split(".")[1], platform.machine())')
echo "rootfs python $PYVER, glibc 2.$GLIBC_MINOR, $MACHINE"

# Runtime dependencies as wheels for that interpreter (downloaded on the host,
# installed offline in the rootfs, so the rootfs needs no network).
platforms=()
for ((minor = GLIBC_MINOR; minor >= 5; minor--)); do
  platforms+=(--platform "manylinux_2_${minor}_${MACHINE}")
done
platforms+=(--platform "manylinux2014_${MACHINE}" --platform "manylinux2010_${MACHINE}" --platform "manylinux1_${MACHINE}")
"$BUILD_VENV/bin/python" -m pip download --quiet --dest "$OUT/wheels" --only-binary=:all: \
  --python-version "$PYVER" --implementation cp --abi "cp${PYVER/./}" "${platforms[@]}" "$WHEEL"
echo "wheels: $(cd "$OUT/wheels" && ls | tr '\n' ' ')"

step "2/5 rootfs: /venv, user, cleanup"
mkdir -p "$ROOTFS/tmp/wheels"
cp "$OUT"/wheels/*.whl "$ROOTFS/tmp/wheels/"
in_rootfs "$ROOTFS" /usr/bin/python3 -m venv /venv
in_rootfs "$ROOTFS" /venv/bin/pip install --quiet --no-index --no-cache-dir --find-links /tmp/wheels \
  "$PACKAGE_NAME==$VERSION"
in_rootfs "$ROOTFS" /venv/bin/pip check
in_rootfs "$ROOTFS" /venv/bin/pip uninstall --quiet --yes pip setuptools
# The image runs; it does not build venvs or install packages.
in_rootfs "$ROOTFS" sh -c 'dpkg --purge $(dpkg-query -W -f "\${Package}\n" \
  python3-venv "python3.*-venv" python3-pip-whl python3-setuptools-whl python3-distutils python3-lib2to3 2>/dev/null)' >/dev/null
in_rootfs "$ROOTFS" groupadd --gid 65532 nonroot
in_rootfs "$ROOTFS" useradd --uid 65532 --gid 65532 --home-dir /home/nonroot --create-home \
  --shell /usr/sbin/nologin nonroot
in_rootfs "$ROOTFS" /venv/bin/python -c 'import function.fn, function.main' \
  || die "the installed package does not import"
# What debian:bookworm-slim leaves out, and what the container runtime provides.
rm -rf "$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/* "$ROOTFS"/var/cache/apt/*.bin \
  "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/*.log \
  "$ROOTFS"/var/cache/debconf/*-old "$ROOTFS"/var/lib/dpkg/*-old \
  "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/locale/* \
  "$ROOTFS"/usr/share/lintian/* "$ROOTFS"/usr/share/groff/* "$ROOTFS/etc/hostname"
find "$ROOTFS/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete
: >"$ROOTFS/etc/resolv.conf"
chmod 644 "$ROOTFS/etc/resolv.conf"
find "$ROOTFS/venv" -name __pycache__ -prune -o -type f -print | wc -l | xargs echo "venv files:"

# ----------------------------------------------------------------------------
step "3/5 image: $IMAGE_TAR"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)}
case "$MACHINE" in x86_64) ARCH=amd64 ;; aarch64) ARCH=arm64 ;; *) ARCH=$MACHINE ;; esac
CREATED=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
cat >"$WORK/image-config.json" <<EOF
{
  "architecture": "$ARCH",
  "created": "$CREATED",
  "User": "$IMAGE_USER",
  "Entrypoint": ["$IMAGE_ENTRYPOINT"],
  "ExposedPorts": {"$IMAGE_PORT/tcp": {}},
  "Env": ["PATH=$IMAGE_PATH", "PYTHONUNBUFFERED=1"],
  "WorkingDir": "/",
  "Labels": {
    "org.opencontainers.image.title": "$PACKAGE_NAME",
    "org.opencontainers.image.version": "$VERSION",
    "org.opencontainers.image.source": "https://github.com/serving-rollout/function-model-rollout",
    "org.opencontainers.image.licenses": "Apache-2.0"
  },
  "history": [
    "debootstrap --variant=minbase --include=python3 $DEBIAN_SUITE; useradd --uid 65532 nonroot",
    "python3 -m venv /venv; pip install $(basename "$WHEEL")"
  ]
}
EOF
IMAGE_TAG=$PACKAGE_NAME-runtime:$VERSION "$BUILD_VENV/bin/python" "$TOOL" assemble "$ROOTFS" "$IMAGE_TAR" "$WORK/image-config.json"

# ----------------------------------------------------------------------------
step "4/5 xpkg: $XPKG"
[ -d "$EXAMPLES" ] || die "no examples directory at $EXAMPLES"
rm -f "$XPKG"
# The package's examples are how to use the function: the XR, the Composition,
# the XRDs and the Function. example/scenarios/ holds observed-state fixtures
# for `crossplane render --observed-resources`; they stay out of the package.
"$CROSSPLANE" xpkg build \
  --package-root="$ROOT/package" \
  --embed-runtime-image-tarball="$IMAGE_TAR" \
  --examples-root="$EXAMPLES" \
  --ignore='scenarios/*/*' \
  --package-file="$XPKG"

if [ "${SKIP_VERIFY:-0}" = 1 ]; then
  step "built (verification skipped): $IMAGE_TAR, $XPKG"
  exit 0
fi

# ----------------------------------------------------------------------------
step "5/5 verify: xpkg contents"
"$BUILD_VENV/bin/python" "$TOOL" inspect "$IMAGE_TAR" >"$WORK/image.json"
"$BUILD_VENV/bin/python" "$TOOL" inspect "$XPKG" >"$WORK/xpkg.json"
rc=0
"$BUILD_VENV/bin/python" - "$WORK/image.json" "$WORK/xpkg.json" "$PACKAGE_NAME" >"$WORK/xpkg-summary.txt" <<'PY' || rc=$?
import json, re, sys
image, xpkg, name = (json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3])
fail = []
def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        fail.append(what)

ilayers, xlayers = image["layers"], xpkg["layers"]
print("xpkg layers:")
for l in xlayers:
    print(f"  {l['diff_id'][:19]}  {l['size']:>11,} bytes  {l['entries']:>6} entries  {l['annotation'] or '-'}")
n = len(ilayers)
check([l["diff_id"] for l in xlayers[:n]] == [l["diff_id"] for l in ilayers],
      f"the xpkg's first {n} layers are the runtime image's layers (same diff_ids)")
pkg = [l for l in xlayers if "package.yaml" in l["files"]]
check(len(pkg) == 1 and pkg[0]["annotation"] == "base",
      "exactly one layer holds package.yaml, annotated io.crossplane.xpkg=base")
docs = pkg[0]["files"]["package.yaml"] if pkg else ""
def has(kind, api, nm):
    pat = re.compile(rf"(?ms)^(?=.*^apiVersion: {re.escape(api)}$)(?=.*^kind: {kind}$)(?=.*^  name: {re.escape(nm)}$)")
    return any(pat.search(d) for d in re.split(r"(?m)^---$", docs))
check(has("Function", "meta.pkg.crossplane.io/v1", name), f"package.yaml has the Function metadata ({name})")
check(has("CustomResourceDefinition", "apiextensions.k8s.io/v1", "inputs.fn.rollout.dev"),
      "package.yaml has the Input CRD (inputs.fn.rollout.dev)")
ex = [l for l in xlayers if ".up/examples.yaml" in l["files"]]
check(len(ex) == 1 and ex[0]["annotation"] == "upbound",
      "one layer holds the examples (.up/examples.yaml, annotated io.crossplane.xpkg=upbound)")
exdocs = ex[0]["files"][".up/examples.yaml"] if ex else ""
kinds = sorted(set(re.findall(r"(?m)^kind: (\S+)$", exdocs)))
check("Composition" in kinds, f"the examples include the Composition (example kinds: {', '.join(kinds)})")
ic, xc = image["config"]["config"], xpkg["config"]["config"]
for key in ("Entrypoint", "User", "ExposedPorts", "Env"):
    check(xc.get(key) == ic.get(key), f"xpkg config {key} = {json.dumps(xc.get(key))}")
sys.exit(1 if fail else 0)
PY
cat "$WORK/xpkg-summary.txt"
[ "$rc" -eq 0 ] || die "xpkg inspection failed"

# Crossplane's own reading of the package: the package manager finds the layer
# annotated "base" and parses its package.yaml, as `xpkg extract` does.
rm -f "$WORK/package-cache.gz"
"$CROSSPLANE" xpkg extract --from-xpkg "$XPKG" --output="$WORK/package-cache.gz"
extracted=$(gzip -dc "$WORK/package-cache.gz" | grep -E '^kind: ' | sort | uniq -c | awk '{print $3 " x" $1}' | paste -sd, | sed 's/,/, /g')
gzip -dc "$WORK/package-cache.gz" | grep -q '^kind: Function$' \
  && gzip -dc "$WORK/package-cache.gz" | grep -q '^kind: CustomResourceDefinition$' \
  || die "crossplane xpkg extract did not find the Function and the Input CRD"
echo "ok   crossplane xpkg extract reads the package: $extracted"
echo "ok   crossplane xpkg extract reads the package: $extracted" >>"$WORK/xpkg-summary.txt"

free_port() { "$BUILD_VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Python with the Crossplane function SDK to play Crossplane's part: the
# project's dev venv if there is one, else the image's own /venv (run in its chroot).
GRPC_CLIENT=$WORK/grpc_check.py
cat >"$GRPC_CLIENT" <<'PY'
"""Call RunFunction once, as Crossplane would, and summarise the response."""
import sys

import grpc
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1
from google.protobuf import json_format, struct_pb2

address = sys.argv[1]
xr = {
    "apiVersion": "serving.rollout.dev/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "qwen", "namespace": "ml-team", "uid": "0b0e1f9a-3c4d-4e5f-8a9b-0c1d2e3f4a5b"},
    "spec": {
        "replicas": 2,
        "revisions": [{
            "name": "v1",
            "model": {"name": "Qwen/Qwen3-8B", "uri": "hf://Qwen/Qwen3-8B"},
            "engine": {"image": "vllm/vllm-openai:v0.11.0", "port": 8000},
        }],
    },
}
inp = {"apiVersion": "fn.rollout.dev/v1beta1", "kind": "Input",
       "replica": {"apiVersion": "serving.rollout.dev/v1alpha1", "kind": "ModelReplica"},
       "endpoint": {"apiVersion": "serving.rollout.dev/v1alpha1", "kind": "ModelEndpoint"}}

def struct(d):
    s = struct_pb2.Struct()
    s.update(d)
    return s

channel = grpc.insecure_channel(address)
grpc.channel_ready_future(channel).result(timeout=60)
rsp = grpcv1.FunctionRunnerServiceStub(channel).RunFunction(
    fnv1.RunFunctionRequest(
        meta=fnv1.RequestMeta(tag="build-package-check"),
        input=struct(inp),
        observed=fnv1.State(composite=fnv1.Resource(resource=struct(xr))),
    ),
    timeout=30,
)
assert rsp.meta.tag == "build-package-check", rsp.meta
fatal = [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
kinds = sorted(f"{k}={json_format.MessageToDict(r.resource).get('kind')}"
               for k, r in rsp.desired.resources.items())
print(f"RunFunction ok: tag echoed, {len(rsp.results)} result(s), desired: {', '.join(kinds) or '(none)'}")
if fatal:
    sys.exit(f"RunFunction returned a fatal result: {fatal}")
if not any(k.endswith("=ModelReplica") for k in kinds):
    sys.exit("RunFunction desired no ModelReplica for a ModelDeployment with replicas: 2")
PY

# Unpack an image tarball into a fresh directory and start its entrypoint in a
# chroot as the image's user, with the image's environment. Sets SERVER_PID and
# SERVER_ADDR.
start_image() {
  local image=$1 dest=$2 log=$3 config port entry user envs
  rm -rf --one-file-system "$dest"
  config=$("$BUILD_VENV/bin/python" "$TOOL" unpack "$image" "$dest")
  entry=$(jq_py "$config" 'c["config"]["Entrypoint"]')
  user=$(jq_py "$config" 'c["config"]["User"]')
  envs=$(jq_py "$config" 'c["config"]["Env"]')
  [ "$entry" = "$IMAGE_ENTRYPOINT" ] || die "$image: entrypoint is '$entry', want $IMAGE_ENTRYPOINT"
  [ "$user" = "$IMAGE_USER" ] || die "$image: user is '$user', want $IMAGE_USER"
  # What a container runtime provides: a few device nodes and /proc.
  for dev in "null 1 3" "zero 1 5" "full 1 7" "random 1 8" "urandom 1 9"; do
    set -- $dev
    mknod -m 666 "$dest/dev/$1" c "$2" "$3"
  done
  mount -t proc proc "$dest/proc"
  MOUNTS+=("$dest/proc")
  port=$(free_port)
  SERVER_ADDR=127.0.0.1:$port
  # shellcheck disable=SC2086 # Env entries are one word each.
  env -i $envs "$CHROOT" --userspec="$user" "$dest" "$entry" --insecure --address "$SERVER_ADDR" >"$log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  echo "started $entry as $user in $dest (pid $SERVER_PID, $SERVER_ADDR, log $log)"
}
jq_py() {
  "$BUILD_VENV/bin/python" -c 'import json,sys; c=json.loads(sys.argv[1]); v=eval(sys.argv[2]); print(" ".join(v) if isinstance(v, list) else v)' "$1" "$2"
}
stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
}
grpc_check() {
  local dest=$1
  if [ -x "$CLIENT_VENV/bin/python" ] && "$CLIENT_VENV/bin/python" -c 'import crossplane.function' 2>/dev/null; then
    echo "RunFunction client: $CLIENT_VENV/bin/python (host)"
    "$CLIENT_VENV/bin/python" "$GRPC_CLIENT" "$SERVER_ADDR"
  else
    echo "RunFunction client: the image's /venv/bin/python (in its chroot)"
    cp "$GRPC_CLIENT" "$dest/tmp/grpc_check.py"
    env -i "$CHROOT" --userspec="$IMAGE_USER" "$dest" /venv/bin/python /tmp/grpc_check.py "$SERVER_ADDR"
  fi
}
server_alive() {
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$1"; die "the function server exited"; }
}

VERIFIED=()
for target in image xpkg; do
  if [ "$target" = image ]; then tarball=$IMAGE_TAR; else tarball=$XPKG; fi
  step "5/5 verify: run the $target's entrypoint ($(basename "$tarball"))"
  dest=$WORK/verify-$target
  start_image "$tarball" "$dest" "$WORK/server-$target.log"
  grpc_check "$dest" || { cat "$WORK/server-$target.log"; die "RunFunction against the $target failed"; }
  server_alive "$WORK/server-$target.log"
  # The serving process's real uid:gid, as the kernel sees it.
  running_as=$(awk '/^Uid:/ {u=$2} /^Gid:/ {g=$2} END {print u ":" g}' "/proc/$SERVER_PID/status")
  [ "$running_as" = "$IMAGE_USER" ] || die "the $target's function server runs as $running_as, want $IMAGE_USER"
  VERIFIED+=("$target: entrypoint served RunFunction over gRPC as $running_as")

  if [ "$target" = xpkg ]; then
    if [ -f "$EXAMPLES/xr.yaml" ] && [ -f "$EXAMPLES/composition.yaml" ]; then
      fnfile=$WORK/functions.yaml
      cat >"$fnfile" <<EOF
apiVersion: pkg.crossplane.io/v1
kind: Function
metadata:
  name: $PACKAGE_NAME
  annotations:
    render.crossplane.io/runtime: Development
    render.crossplane.io/runtime-development-target: $SERVER_ADDR
spec:
  package: $XPKG
EOF
      "$CROSSPLANE" render "$EXAMPLES/xr.yaml" "$EXAMPLES/composition.yaml" "$fnfile" \
        >"$WORK/render.yaml" 2>"$WORK/render.err" \
        || { cat "$WORK/render.err"; die "crossplane render against the packaged function failed"; }
      rendered=$(grep -E '^kind: ' "$WORK/render.yaml" | sort | uniq -c | awk '{print $3 " x" $1}' | paste -sd, | sed 's/,/, /g')
      grep -q '^kind: ModelReplica$' "$WORK/render.yaml" \
        || { cat "$WORK/render.yaml"; die "crossplane render produced no ModelReplica"; }
      echo "crossplane render: $rendered (output: $WORK/render.yaml)"
      VERIFIED+=("xpkg: crossplane render of example/xr.yaml + example/composition.yaml -> $rendered")
    else
      echo "skipping crossplane render: $EXAMPLES/xr.yaml or composition.yaml is missing"
    fi
  fi
  server_alive "$WORK/server-$target.log"
  stop_server
  umount "$dest/proc"
done

# ----------------------------------------------------------------------------
step "summary"
size() { du -h --apparent-size "$1" | cut -f1; }
echo "wheel:          $WHEEL"
echo "runtime image:  $IMAGE_TAR ($(size "$IMAGE_TAR"), tag $PACKAGE_NAME-runtime:$VERSION)"
echo "package (xpkg): $XPKG ($(size "$XPKG"))"
echo "image config:   User=$IMAGE_USER Entrypoint=[$IMAGE_ENTRYPOINT] ExposedPorts=$IMAGE_PORT/tcp"
echo "python:         $(in_rootfs "$ROOTFS" /venv/bin/python -V 2>&1) in /venv; runtime dependencies:"
in_rootfs "$ROOTFS" /venv/bin/python -c '
import importlib.metadata as m
for line in sorted(d.metadata["Name"] + "==" + d.version for d in m.distributions()):
    print(" " * 18 + line)'
echo "checks:"
sed 's/^/  /' "$WORK/xpkg-summary.txt" | grep -E '^  (ok|FAIL)'
for v in "${VERIFIED[@]}"; do echo "  ok   $v"; done
echo "took $(($(date +%s) - START))s"
