#!/usr/bin/env bash
# Installs everything the example render job and the e2e tests need, into the
# repository (nothing global): the Python venv with the function and its dev
# dependencies, the Crossplane CLI (crank) and the schemas `crank beta validate`
# checks rendered output against. Idempotent: what is already in place at the
# pinned version is left alone.
#
# Needs: python3 (3.11+), go (1.25+), network access to PyPI and the Go module
# proxy. No container runtime.
#
# Environment overrides:
#   PYTHON               interpreter that creates the venv (default: python3)
#   CROSSPLANE_VERSION   Crossplane CLI version (default: v2.2.1)
#   GATEWAY_API_VERSION  Gateway API CRDs version (default: v1.4.0)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${ROOT}/.tools"
VENV="${ROOT}/.venv"
PYTHON="${PYTHON:-python3}"
CROSSPLANE_VERSION="${CROSSPLANE_VERSION:-v2.2.1}"
GATEWAY_API_VERSION="${GATEWAY_API_VERSION:-v1.4.0}"
CROSSPLANE_MODULE="github.com/crossplane/crossplane/v2"
GATEWAY_API_MODULE="sigs.k8s.io/gateway-api"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'install-tools: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "go is required (https://go.dev/dl/)"
command -v "${PYTHON}" >/dev/null 2>&1 || die "${PYTHON} is required"
mkdir -p "${TOOLS}/crds"

# --- Python: the function and its dev dependencies ------------------------------------
if [[ ! -x "${VENV}/bin/python" ]]; then
  log "creating venv ${VENV} with ${PYTHON}"
  "${PYTHON}" -m venv "${VENV}"
else
  log "venv ${VENV} exists"
fi
if "${VENV}/bin/python" -c 'import function.fn, yaml, pytest' >/dev/null 2>&1 \
    && [[ -x "${VENV}/bin/ruff" && -x "${VENV}/bin/mypy" ]] \
    && "${VENV}/bin/python" -m pip show function-model-rollout >/dev/null 2>&1; then
  log "function-model-rollout and its dev dependencies are installed"
else
  log "pip install -e '.[dev]'"
  "${VENV}/bin/python" -m pip install --quiet --upgrade pip
  "${VENV}/bin/python" -m pip install --quiet -e "${ROOT}[dev]"
fi

# go mod download prints JSON; .Dir is where the module's files are.
module_dir() {
  local json
  json="$(cd "${TOOLS}" && go mod download -json "$1")" \
    || die "cannot download Go module $1"
  printf '%s\n' "${json}" | "${VENV}/bin/python" -c \
    'import json, sys; print(json.load(sys.stdin)["Dir"])'
}

# --- The Crossplane CLI -----------------------------------------------------------------
CRANK="${TOOLS}/crank"
installed_version() {
  "${CRANK}" version --client 2>/dev/null | sed -n 's/^Client Version: *//p'
}
if [[ -x "${CRANK}" && "$(installed_version)" == "${CROSSPLANE_VERSION}" ]]; then
  log "crank ${CROSSPLANE_VERSION} is installed at ${CRANK}"
else
  log "installing crank ${CROSSPLANE_VERSION} into ${TOOLS}"
  LDFLAGS="-s -w -X=${CROSSPLANE_MODULE}/internal/version.version=${CROSSPLANE_VERSION}"
  if ! GOBIN="${TOOLS}" go install -trimpath -ldflags "${LDFLAGS}" \
      "${CROSSPLANE_MODULE}/cmd/crank@${CROSSPLANE_VERSION}"; then
    # `go install pkg@version` also asks the proxy for the module's version
    # list (to report deprecations); some proxies refuse that. Building the
    # downloaded module in place needs only the version itself.
    log "go install failed; building ${CROSSPLANE_MODULE}@${CROSSPLANE_VERSION} from the module cache"
    src="$(module_dir "${CROSSPLANE_MODULE}@${CROSSPLANE_VERSION}")"
    (cd "${src}" && GOFLAGS=-mod=mod go build -trimpath -ldflags "${LDFLAGS}" \
      -o "${CRANK}" ./cmd/crank)
  fi
  [[ "$(installed_version)" == "${CROSSPLANE_VERSION}" ]] \
    || die "${CRANK} does not report version ${CROSSPLANE_VERSION}"
  log "installed $("${CRANK}" version --client)"
fi

# --- Schemas for `crank beta validate` --------------------------------------------------
# Crossplane's own CRDs (Composition, Function, XRD, ...): validate reads them
# from its cache as if pulled from the Crossplane image, which needs a registry.
# The same CRDs ship in the Go module, so the cache entry is filled from there.
CACHE="${TOOLS}/validate-cache"
CROSSPLANE_IMAGE="xpkg.crossplane.io/crossplane/crossplane:${CROSSPLANE_VERSION}"
CACHE_ENTRY="${CACHE}/${CROSSPLANE_IMAGE//:/@}"
if [[ -s "${CACHE_ENTRY}/package.yaml" ]]; then
  log "Crossplane ${CROSSPLANE_VERSION} CRDs are cached for validation"
else
  log "caching Crossplane ${CROSSPLANE_VERSION} CRDs in ${CACHE_ENTRY}"
  src="$(module_dir "${CROSSPLANE_MODULE}@${CROSSPLANE_VERSION}")"
  mkdir -p "${CACHE_ENTRY}"
  tmp="$(mktemp "${CACHE_ENTRY}/package.yaml.XXXXXX")"
  for crd in "${src}"/cluster/crds/*.yaml; do
    cat "${crd}"
    printf '\n---\n'
  done >"${tmp}"
  mv "${tmp}" "${CACHE_ENTRY}/package.yaml"
fi

# Gateway API HTTPRoute CRD (standard channel), from the Go module.
HTTPROUTE_CRD="${TOOLS}/crds/gateway.networking.k8s.io_httproutes.yaml"
if [[ -s "${HTTPROUTE_CRD}" ]] \
    && grep -q "bundle-version: ${GATEWAY_API_VERSION}\$" "${HTTPROUTE_CRD}"; then
  log "HTTPRoute CRD ${GATEWAY_API_VERSION} is in ${TOOLS}/crds"
else
  log "fetching the HTTPRoute CRD from ${GATEWAY_API_MODULE}@${GATEWAY_API_VERSION}"
  src="$(module_dir "${GATEWAY_API_MODULE}@${GATEWAY_API_VERSION}")"
  install -m 0644 "${src}/config/crd/standard/gateway.networking.k8s.io_httproutes.yaml" \
    "${HTTPROUTE_CRD}"
fi

log "tools ready: ${CRANK}, ${VENV}/bin/function, schemas in ${TOOLS}/crds and ${CACHE}"
