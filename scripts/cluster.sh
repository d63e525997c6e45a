#!/usr/bin/env bash
# A real control plane for the function, with no container runtime: etcd,
# kube-apiserver, kube-controller-manager and Crossplane core, built from their
# published Go modules and run inside a network namespace that has only a
# loopback interface. The function runs as a Crossplane Function package with
# the External runtime, served over mTLS from the same namespace.
#
#   scripts/cluster.sh build    # build the pinned binaries into .tools/cluster/bin (once)
#   scripts/cluster.sh up       # build if needed, start everything, install the example platform
#   scripts/cluster.sh status   # what runs, and the kubeconfig
#   scripts/cluster.sh down     # stop everything and delete the cluster's state
#   scripts/cluster.sh exec CMD # run CMD inside the cluster's network namespace
#   scripts/cluster.sh kubectl ARGS...
#   scripts/cluster.sh controller [FLAGS]  # restart the example platform with `python -m devplatform` FLAGS
#   scripts/cluster.sh function [FLAGS]    # restart the function with extra FLAGS (e.g. --debug)
#
# Needs root (ip netns), Go and access to the Go module proxy; the first build
# takes 25-30 minutes on 2 cores. Everything the cluster writes is under
# _output/cluster/ (state, logs, certificates, kubeconfig).
#
# Environment:
#   CLUSTER_NETNS        network namespace name (default: fmr-cluster)
#   CLUSTER_API_PORT     host loopback port of the API server (default: 16443)
#   CLUSTER_METRICS_PORT host loopback port of Crossplane's metrics (default: 18080)
#   CROSSPLANE_ARGS      flags for `crossplane core start` (default: the circuit
#                        breaker settings below; "" for Crossplane's defaults)
#   FUNCTION_ARGS        extra flags for the function (e.g. --debug)
#   CLUSTER_STATE        state folder (default: _output/cluster)
#   CLUSTER_CONTROLLER   "0" not to start the example platform controller (default: 1)
#   GPU_POOL             GPUs the example platform controller schedules (default: 64)
#   WARMUP_SECONDS       warm-up the example platform controller plays (default: 8)
#   SKIP_INSTALL=1       skip scripts/install-tools.sh (venv, crank, CRDs)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${ROOT}/.tools"
CLUSTER_TOOLS="${TOOLS}/cluster"
BIN="${CLUSTER_TOOLS}/bin"
SRC="${CLUSTER_TOOLS}/src"
VENV="${ROOT}/.venv"
PY="${VENV}/bin/python"

ETCD_VERSION="v3.6.5"
KUBERNETES_VERSION="v1.35.4"
CROSSPLANE_VERSION="${CROSSPLANE_VERSION:-v2.2.1}"
REGISTRY_VERSION="v0.22.1"
CROSSPLANE_MODULE="github.com/crossplane/crossplane/v2"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'cluster: %s\n' "$*" >&2; exit 1; }

# --- build --------------------------------------------------------------------------------
# Each binary records the version it was built at in ${BIN}/<name>.version, so a
# changed pin rebuilds it and an unchanged one is left alone.

built() { [[ -x "${BIN}/$1" && "$(cat "${BIN}/$1.version" 2>/dev/null)" == "$2" ]]; }

# A wrapper module: go.mod requiring the module at its pinned version, plus a
# file that imports the packages to build, so `go mod tidy` keeps them.
new_wrapper() {
  local dir="$1"
  rm -rf "${dir}"
  mkdir -p "${dir}"
  (cd "${dir}" && go mod init "fmr.local/$(basename "${dir}")" >/dev/null 2>&1)
}

build_etcd() {
  built etcd "${ETCD_VERSION}" && { log "etcd ${ETCD_VERSION} is built"; return; }
  log "building etcd ${ETCD_VERSION}"
  local dir="${SRC}/etcd"
  new_wrapper "${dir}"
  # etcd's own main is a one-line call into etcdmain; its module replaces
  # sibling folders, so it cannot be built in place.
  cat >"${dir}/main.go" <<'EOF'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  (cd "${dir}" \
    && go mod edit -require="go.etcd.io/etcd/server/v3@${ETCD_VERSION}" \
    && go mod tidy \
    && go build -trimpath -ldflags "-s -w" -o "${BIN}/etcd" .)
  echo "${ETCD_VERSION}" >"${BIN}/etcd.version"
}

build_kubernetes() {
  if built kube-apiserver "${KUBERNETES_VERSION}" && built kube-controller-manager "${KUBERNETES_VERSION}" \
      && built kubectl "${KUBERNETES_VERSION}"; then
    log "kube-apiserver, kube-controller-manager, kubectl ${KUBERNETES_VERSION} are built"
    return
  fi
  log "building kube-apiserver, kube-controller-manager, kubectl ${KUBERNETES_VERSION}"
  local dir="${SRC}/kubernetes" gomod staging v="${KUBERNETES_VERSION#v}"
  new_wrapper "${dir}"
  gomod="$(cd "${dir}" && go mod download -json "k8s.io/kubernetes@${KUBERNETES_VERSION}" \
    | "${PY}" -c 'import json, sys; print(json.load(sys.stdin)["GoMod"])')"
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them
  # with folders of its own; a module that requires it must replace each with
  # the published release of the same minor (v1.35.4 -> v0.35.4).
  staging="$(sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*#\1#p' "${gomod}")"
  [[ -n "${staging}" ]] || die "no staging replaces found in ${gomod}"
  cat >"${dir}/tools.go" <<'EOF'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
EOF
  (
    cd "${dir}"
    go mod edit -require="k8s.io/kubernetes@${KUBERNETES_VERSION}"
    for m in ${staging}; do
      go mod edit -replace="${m}=${m}@v0.${v#1.}"
    done
    go mod tidy
    local ldflags="-s -w"
    local pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldflags+=" -X ${pkg}.gitVersion=${KUBERNETES_VERSION}"
      ldflags+=" -X ${pkg}.gitMajor=${v%%.*}"
      ldflags+=" -X ${pkg}.gitMinor=$(echo "${v}" | cut -d. -f2)"
      ldflags+=" -X ${pkg}.gitTreeState=clean"
      ldflags+=" -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
    done
    go build -trimpath -ldflags "${ldflags}" -o "${BIN}/" \
      k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kubectl
  )
  local b
  for b in kube-apiserver kube-controller-manager kubectl; do
    echo "${KUBERNETES_VERSION}" >"${BIN}/${b}.version"
  done
}

build_crossplane() {
  built crossplane "${CROSSPLANE_VERSION}" && { log "crossplane ${CROSSPLANE_VERSION} is built"; return; }
  log "building crossplane core ${CROSSPLANE_VERSION}"
  local src
  src="$(cd "${CLUSTER_TOOLS}" && go mod download -json "${CROSSPLANE_MODULE}@${CROSSPLANE_VERSION}" \
    | "${PY}" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')"
  # The module is complete (go.mod with no local replaces), so it builds in
  # place from the module cache, as scripts/install-tools.sh builds crank.
  (cd "${src}" && GOFLAGS=-mod=mod go build -trimpath \
    -ldflags "-s -w -X=${CROSSPLANE_MODULE}/internal/version.version=${CROSSPLANE_VERSION}" \
    -o "${BIN}/crossplane" ./cmd/crossplane)
  rm -rf "${CLUSTER_TOOLS}/crossplane-crds"
  cp -r "${src}/cluster/crds" "${CLUSTER_TOOLS}/crossplane-crds"
  chmod -R u+w "${CLUSTER_TOOLS}/crossplane-crds"
  echo "${CROSSPLANE_VERSION}" >"${BIN}/crossplane.version"
}

# An OCI registry to serve the function's package to Crossplane's package
# manager on loopback.
build_registry() {
  built registry "${REGISTRY_VERSION}" && { log "registry ${REGISTRY_VERSION} is built"; return; }
  log "building the go-containerregistry registry ${REGISTRY_VERSION}"
  local dir="${SRC}/registry"
  new_wrapper "${dir}"
  cat >"${dir}/tools.go" <<'EOF'
//go:build tools

package tools

import _ "github.com/google/go-containerregistry/cmd/registry"
EOF
  (cd "${dir}" \
    && go mod edit -require="github.com/google/go-containerregistry@${REGISTRY_VERSION}" \
    && go mod tidy \
    && go build -trimpath -ldflags "-s -w" -o "${BIN}/registry" \
      github.com/google/go-containerregistry/cmd/registry)
  echo "${REGISTRY_VERSION}" >"${BIN}/registry.version"
}

cmd_build() {
  command -v go >/dev/null 2>&1 || die "go is required"
  [[ -x "${PY}" ]] || die "${PY} is missing; run scripts/install-tools.sh"
  mkdir -p "${BIN}" "${SRC}"
  local start=${SECONDS}
  build_etcd
  build_registry
  build_crossplane
  build_kubernetes
  log "binaries ready in ${BIN} ($((SECONDS - start)) s)"
}

# --- run ----------------------------------------------------------------------------------
NETNS="${CLUSTER_NETNS:-fmr-cluster}"
STATE="${CLUSTER_STATE:-${ROOT}/_output/cluster}"
LOGS="${STATE}/logs"
PKI="${STATE}/pki"
API_PORT=6443
HOST_API_PORT="${CLUSTER_API_PORT:-16443}"
HOST_METRICS_PORT="${CLUSTER_METRICS_PORT:-18080}"
FUNCTION_ADDRESS="127.0.0.1:9443"
REGISTRY_ADDRESS="127.0.0.1:5000"
PACKAGE_REF="${REGISTRY_ADDRESS}/function-model-rollout:v0.1.0"
XP_NS="crossplane-system"
# What the user and the tests use, from outside the namespace.
KUBECONFIG_OUT="${STATE}/kubeconfig"
# What the components use, inside it.
KUBECONFIG_IN="${STATE}/kubeconfig.netns"

in_ns() { ip netns exec "${NETNS}" "$@"; }
kc() { in_ns "${BIN}/kubectl" --kubeconfig "${KUBECONFIG_IN}" "$@"; }

# start NAME CMD...: run CMD in the namespace in the background, in its own
# process group, logging to ${LOGS}/NAME.log; its pid goes to ${STATE}/pids/NAME.
start() {
  local name="$1"; shift
  mkdir -p "${STATE}/pids" "${LOGS}"
  setsid ip netns exec "${NETNS}" "$@" >"${LOGS}/${name}.log" 2>&1 </dev/null &
  echo $! >"${STATE}/pids/${name}"
}

running() { [[ -f "${STATE}/pids/$1" ]] && kill -0 "$(cat "${STATE}/pids/$1")" 2>/dev/null; }

# wait_for WHAT SECONDS CMD...: retry CMD every half second.
wait_for() {
  local what="$1" deadline=$((SECONDS + $2)); shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      die "timed out waiting for ${what} (logs: ${LOGS})"
    fi
    sleep 0.5
  done
}

pki() {
  [[ -s "${PKI}/admin.crt" ]] && return
  log "creating the cluster's certificates in ${PKI}"
  mkdir -p "${PKI}"
  (
    cd "${PKI}"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=fmr-cluster-ca" \
      -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
      -keyout apiserver.key -out apiserver.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc\n' >apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile apiserver.ext -out apiserver.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=admin" \
      -keyout admin.key -out admin.csr 2>/dev/null
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -out admin.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    rm -f ./*.csr ./*.ext
  )
}

write_kubeconfig() {
  local file="$1" port="$2"
  cat >"${file}" <<KC
apiVersion: v1
kind: Config
clusters:
- name: fmr
  cluster:
    server: https://127.0.0.1:${port}
    certificate-authority: ${PKI}/ca.crt
users:
- name: admin
  user:
    client-certificate: ${PKI}/admin.crt
    client-key: ${PKI}/admin.key
contexts:
- name: fmr
  context: {cluster: fmr, user: admin, namespace: default}
current-context: fmr
KC
}

start_netns() {
  if ! ip netns list | grep -qw "${NETNS}"; then
    log "creating network namespace ${NETNS} (loopback only)"
    ip netns add "${NETNS}"
  fi
  in_ns ip link set lo up
}

start_control_plane() {
  running etcd || start etcd "${BIN}/etcd" --name fmr --data-dir "${STATE}/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster fmr=http://127.0.0.1:2380 --quota-backend-bytes 4294967296
  running kube-apiserver || start kube-apiserver "${BIN}/kube-apiserver" \
    --etcd-servers http://127.0.0.1:2379 \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "${API_PORT}" \
    --tls-cert-file "${PKI}/apiserver.crt" --tls-private-key-file "${PKI}/apiserver.key" \
    --client-ca-file "${PKI}/ca.crt" \
    --service-account-key-file "${PKI}/sa.pub" \
    --service-account-signing-key-file "${PKI}/sa.key" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-cluster-ip-range 10.96.0.0/24 \
    --authorization-mode RBAC --endpoint-reconciler-type none
  wait_for "the API server" 120 kc get --raw /readyz
  # Garbage collection deletes what an XR composed when the XR is deleted;
  # namespace deletion empties namespaces. Nothing else is needed.
  running kube-controller-manager || start kube-controller-manager "${BIN}/kube-controller-manager" \
    --kubeconfig "${KUBECONFIG_IN}" --controllers garbagecollector,namespace \
    --bind-address 127.0.0.1 --leader-elect=false
  bridge api "${API_PORT}" "${HOST_API_PORT}"
}

# bridge NAME PORT HOST_PORT: the namespace's 127.0.0.1:PORT on the host's
# 127.0.0.1:HOST_PORT, through a Unix socket in ${STATE} (scripts/netns-bridge.py).
bridge() {
  local name="$1" port="$2" host_port="$3" sock="${STATE}/$1.sock"
  running "${name}-bridge-netns" || start "${name}-bridge-netns" "${PY}" \
    "${ROOT}/scripts/netns-bridge.py" --listen "unix:${sock}" --connect "tcp:127.0.0.1:${port}"
  if ! running "${name}-bridge-host"; then
    mkdir -p "${STATE}/pids"
    setsid "${PY}" "${ROOT}/scripts/netns-bridge.py" --listen "tcp:127.0.0.1:${host_port}" \
      --connect "unix:${sock}" >"${LOGS}/${name}-bridge-host.log" 2>&1 </dev/null &
    echo $! >"${STATE}/pids/${name}-bridge-host"
  fi
}

# Crossplane's per-XR watch circuit breaker, with its defaults (burst 100
# events, refill 1 event/s), opens during an ordinary rollout of 4 replicas on
# this platform and then lets one event through every 30 s (measured in
# docs/control-plane.md). A burst of 1000 covers deploying 50 replicas at once
# (about 15-23 events each) and a refill of 10/s the steady status updates of
# 50 replicas (3.4/s publishing health on change; 10-11/s refreshing it every
# 10 s, at the limit). CROSSPLANE_ARGS="" runs Crossplane's defaults.
CROSSPLANE_BREAKER_ARGS="--circuit-breaker-burst=1000 --circuit-breaker-refill-rate=10"

# The environment the Helm chart gives Crossplane's init container.
CROSSPLANE_INIT_ENV=(
  POD_NAMESPACE="${XP_NS}" POD_SERVICE_ACCOUNT=crossplane
  CRDS_PATH="${CLUSTER_TOOLS}/crossplane-crds" ENABLE_WEBHOOKS=false
  TLS_CA_SECRET_NAME=crossplane-root-ca TLS_SERVER_SECRET_NAME=crossplane-tls-server
  TLS_CLIENT_SECRET_NAME=crossplane-tls-client KUBECONFIG="${KUBECONFIG_IN}"
)

# secret_file SECRET KEY FILE: write one key of a Secret in ${XP_NS} to FILE.
secret_file() {
  kc -n "${XP_NS}" get secret "$1" -o "jsonpath={.data.${2//./\\.}}" | base64 -d >"$3"
  [[ -s "$3" ]] || die "secret $1 has no $2"
}

start_crossplane() {
  kc get namespace "${XP_NS}" >/dev/null 2>&1 || kc create namespace "${XP_NS}" >/dev/null
  if [[ ! -s "${STATE}/tls/client/tls.key" ]]; then
    log "crossplane core init"
    # init applies Crossplane's CRDs and then uses them; it fails until the
    # API server has made them discoverable, so it is retried.
    local i
    for i in $(seq 1 20); do
      if in_ns env "${CROSSPLANE_INIT_ENV[@]}" \
          "${BIN}/crossplane" core init >>"${LOGS}/crossplane-init.log" 2>&1; then
        break
      fi
      ((i < 20)) || die "crossplane core init failed (log: ${LOGS}/crossplane-init.log)"
      sleep 2
    done
    mkdir -p "${STATE}/tls/client"
    secret_file crossplane-tls-client tls.crt "${STATE}/tls/client/tls.crt"
    secret_file crossplane-tls-client tls.key "${STATE}/tls/client/tls.key"
    secret_file crossplane-tls-client ca.crt "${STATE}/tls/client/ca.crt"
  fi
  if ! running crossplane; then
    mkdir -p "${STATE}/cache/xpkg" "${STATE}/cache/xfn"
    log "crossplane core start (log: ${LOGS}/crossplane.log)"
    start crossplane env POD_NAMESPACE="${XP_NS}" POD_SERVICE_ACCOUNT=crossplane \
      KUBECONFIG="${KUBECONFIG_IN}" \
      "${BIN}/crossplane" core start --enable-webhooks=false \
      --package-runtime=Function=External \
      --tls-client-certs-dir "${STATE}/tls/client" \
      --cache-dir "${STATE}/cache/xpkg" --xfn-cache-dir "${STATE}/cache/xfn" \
      ${CROSSPLANE_ARGS-${CROSSPLANE_BREAKER_ARGS}}
  fi
  # Crossplane's Prometheus metrics (function calls, circuit breaker) on the host.
  bridge metrics 8080 "${HOST_METRICS_PORT}"
}

# The function's server certificate, issued from Crossplane's root CA with an IP
# SAN for the loopback address Crossplane dials; ca.crt (the same root) checks
# Crossplane's client certificate. The Deployment runtime's function hooks do
# the same for a Service's DNS name.
function_certs() {
  local dir="${STATE}/tls/function"
  [[ -s "${dir}/tls.crt" ]] && return
  mkdir -p "${dir}"
  secret_file crossplane-root-ca tls.crt "${dir}/ca.crt"
  secret_file crossplane-root-ca tls.key "${dir}/ca.key"
  (
    cd "${dir}"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=function-model-rollout" \
      -keyout tls.key -out tls.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:function-model-rollout.%s\nextendedKeyUsage=serverAuth\n' \
      "${XP_NS}" >tls.ext
    openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile tls.ext -out tls.crt 2>/dev/null
    rm -f tls.csr tls.ext ca.key ca.srl
  )
  kc -n "${XP_NS}" create secret generic function-model-rollout-tls-server \
    --from-file=tls.crt="${dir}/tls.crt" --from-file=tls.key="${dir}/tls.key" \
    --from-file=ca.crt="${dir}/ca.crt" --dry-run=client -o yaml | kc apply -f - >/dev/null
}

start_function() {
  function_certs
  if ! running function; then
    log "serving the function on ${FUNCTION_ADDRESS} over mTLS (log: ${LOGS}/function.log)"
    # shellcheck disable=SC2086
    start function "${VENV}/bin/function" --tls-certs-dir "${STATE}/tls/function" \
      --address "${FUNCTION_ADDRESS}" ${FUNCTION_ARGS:-}
  fi
}

# Crossplane's package manager pulls the Function package even when something
# else runs it: a metadata-only package (package/crossplane.yaml and the Input
# CRD) is pushed to a registry on the namespace's loopback.
install_function_package() {
  running registry || start registry "${BIN}/registry" -port "${REGISTRY_ADDRESS##*:}"
  wait_for "the package registry" 30 in_ns "${PY}" -c \
    "import urllib.request; urllib.request.urlopen('http://${REGISTRY_ADDRESS}/v2/')"
  local xpkg="${STATE}/function-model-rollout.xpkg"
  if [[ ! -s "${xpkg}" ]]; then
    "${TOOLS}/crank" xpkg build --package-root="${ROOT}/package" -o "${xpkg}" >/dev/null
  fi
  in_ns "${TOOLS}/crank" xpkg push -f "${xpkg}" "${PACKAGE_REF}" >"${LOGS}/xpkg-push.log" 2>&1 \
    || die "cannot push ${xpkg} to ${PACKAGE_REF} (log: ${LOGS}/xpkg-push.log)"
  kc apply -f - >/dev/null <<YAML
apiVersion: pkg.crossplane.io/v1
kind: Function
metadata:
  name: function-model-rollout
spec:
  package: ${PACKAGE_REF}
YAML
  wait_for "the FunctionRevision" 120 revision_name
  local rev
  rev="$(revision_name)"
  # What the Deployment runtime's hooks record for a function they run: where
  # to dial it (Crossplane's function runner dials status.endpoint of the
  # active revision), the Secret holding its server certificate (the revision
  # waits for it before it installs the package's CRDs), and that it is
  # healthy. The revision controller writes status too, so this is retried
  # until it sticks.
  wait_for "FunctionRevision ${rev} to take the runtime's status" 120 set_runtime_status "${rev}"
  wait_for "function-model-rollout to be healthy" 180 function_healthy
}

set_runtime_status() {
  local rev="$1" now
  now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  kc get functionrevision "${rev}" -o json | "${PY}" -c '
import json, sys
rev = json.load(sys.stdin)
endpoint, secret, now = sys.argv[1:4]
status = rev.setdefault("status", {})
if status.get("endpoint") == endpoint and status.get("tlsServerSecretName") == secret and any(
        c.get("type") == "RuntimeHealthy" and c.get("status") == "True"
        for c in status.get("conditions", [])):
    sys.exit(3)  # already recorded
status["endpoint"] = endpoint
status["tlsServerSecretName"] = secret
conditions = [c for c in status.get("conditions", []) if c.get("type") != "RuntimeHealthy"]
conditions.append({"type": "RuntimeHealthy", "status": "True", "reason": "HealthyPackageRevision",
                   "lastTransitionTime": now})
status["conditions"] = conditions
json.dump(rev, sys.stdout)
' "${FUNCTION_ADDRESS}" function-model-rollout-tls-server "${now}" >"${STATE}/revision-status.json"
  local rc=$?
  ((rc == 3)) && return 0
  ((rc == 0)) || return 1
  kc replace --subresource=status -f "${STATE}/revision-status.json" >/dev/null || return 1
  # Read back: the revision controller may have written over it meanwhile.
  sleep 1
  [[ "$(kc get functionrevision "${rev}" -o jsonpath='{.status.endpoint}')" == "${FUNCTION_ADDRESS}" ]]
}

revision_name() {
  local name
  name="$(kc get functionrevisions -l pkg.crossplane.io/package=function-model-rollout \
    -o jsonpath='{.items[?(@.spec.desiredState=="Active")].metadata.name}')"
  [[ -n "${name}" ]] && printf '%s\n' "${name}"
}

function_healthy() {
  kc get function function-model-rollout \
    -o jsonpath='{.status.conditions[?(@.type=="Healthy")].status}' | grep -qx True
}

install_platform() {
  log "installing the HTTPRoute CRD, the example XRDs and Composition"
  kc apply --server-side -f "${TOOLS}/crds/gateway.networking.k8s.io_httproutes.yaml" >/dev/null
  kc apply -f "${ROOT}/example/xrds/" >/dev/null
  local xrd
  for xrd in modeldeployments modelreplicas modelendpoints; do
    wait_for "XRD ${xrd}" 120 xrd_established "${xrd}.serving.rollout.dev"
  done
  kc apply -f "${ROOT}/example/composition.yaml" >/dev/null
  kc get namespace ml-team >/dev/null 2>&1 || kc create namespace ml-team >/dev/null
}

xrd_established() {
  kc get xrd "$1" -o jsonpath='{.status.conditions[?(@.type=="Established")].status}' \
    | grep -qx True
}

# start_controller [ARGS...]: the example platform, with extra python -m devplatform flags.
start_controller() {
  [[ "${CLUSTER_CONTROLLER:-1}" == "1" ]] || return 0
  if ! running devplatform; then
    log "starting the example platform controller (log: ${LOGS}/devplatform.log)"
    start devplatform env KUBECONFIG="${KUBECONFIG_IN}" PYTHONPATH="${ROOT}" "${PY}" -m devplatform \
      --gpus "${GPU_POOL:-64}" --warmup-seconds "${WARMUP_SECONDS:-8}" "$@"
  fi
}

cmd_up() {
  [[ "$(id -u)" == 0 ]] || die "needs root (ip netns)"
  local start=${SECONDS}
  if [[ "${SKIP_INSTALL:-}" != "1" ]]; then
    "${ROOT}/scripts/install-tools.sh"
  fi
  if ! "${PY}" -c 'import lightkube' 2>/dev/null; then
    log "installing the example platform's client (pip install -e '.[cluster]')"
    "${PY}" -m pip install --quiet -e "${ROOT}[cluster]"
  fi
  cmd_build
  mkdir -p "${STATE}" "${LOGS}"
  pki
  write_kubeconfig "${KUBECONFIG_IN}" "${API_PORT}"
  write_kubeconfig "${KUBECONFIG_OUT}" "${HOST_API_PORT}"
  start_netns
  start_control_plane
  start_crossplane
  start_function
  install_function_package
  install_platform
  start_controller
  log "control plane up in $((SECONDS - start)) s"
  printf 'export KUBECONFIG=%s\n' "${KUBECONFIG_OUT}"
}

stop_pid() {
  local name="$1" pid
  [[ -f "${STATE}/pids/${name}" ]] || return 0
  pid="$(cat "${STATE}/pids/${name}")"
  if kill -0 "${pid}" 2>/dev/null; then
    # Each component was started with setsid: its process group is its own.
    kill -TERM -- "-${pid}" 2>/dev/null || kill -TERM "${pid}" 2>/dev/null || true
    local i
    for i in $(seq 1 40); do
      kill -0 "${pid}" 2>/dev/null || break
      sleep 0.25
    done
    kill -KILL -- "-${pid}" 2>/dev/null || true
  fi
  rm -f "${STATE}/pids/${name}"
}

cmd_down() {
  local name
  for name in devplatform function metrics-bridge-host metrics-bridge-netns crossplane registry \
      api-bridge-host api-bridge-netns kube-controller-manager kube-apiserver etcd; do
    stop_pid "${name}"
  done
  if ip netns list 2>/dev/null | grep -qw "${NETNS}"; then
    ip netns delete "${NETNS}"
  fi
  rm -rf "${STATE}"
  log "cluster stopped and its state deleted"
}

cmd_status() {
  local name state=0
  for name in etcd kube-apiserver kube-controller-manager api-bridge-netns api-bridge-host \
      crossplane metrics-bridge-netns metrics-bridge-host registry function devplatform; do
    if running "${name}"; then
      printf '%-24s running (pid %s)\n' "${name}" "$(cat "${STATE}/pids/${name}")"
    else
      printf '%-24s stopped\n' "${name}"
      [[ "${name}" == devplatform ]] || state=1
    fi
  done
  if ((state == 0)); then
    printf 'export KUBECONFIG=%s\n' "${KUBECONFIG_OUT}"
    kc get functions,xrds 2>/dev/null || true
  fi
  return "${state}"
}

case "${1:-}" in
  build) cmd_build ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  exec) shift; in_ns "$@" ;;
  kubectl) shift; kc "$@" ;;
  controller) shift; stop_pid devplatform; start_controller "$@" ;;
  function) shift; stop_pid function; FUNCTION_ARGS="$*" start_function ;;
  *) die "usage: $0 build|up|down|status|exec CMD...|kubectl ARGS...|controller|function [FLAGS...]" ;;
esac
