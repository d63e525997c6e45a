#!/usr/bin/env bash
# A live rolling update on the development control plane: deploys the example
# ModelDeployment (example/xr.yaml: 3 replicas of v1 behind an HTTPRoute), waits
# until v1 serves, then rolls it to v2 and prints the rollout as it happens.
# Brings the cluster up first if it is not (scripts/cluster.sh up).
#
#   scripts/demo.sh
#
# Watch it from another terminal too:
#   export KUBECONFIG=_output/cluster/kubeconfig
#   .tools/cluster/bin/kubectl -n ml-team get modeldeployment,modelreplica,modelendpoint,httproute -w
#
# The example platform (devplatform) warms a replica up in WARMUP_SECONDS
# (default 8); the example drains a replica for 30 s before deleting it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER="${ROOT}/scripts/cluster.sh"
KUBECTL="${ROOT}/.tools/cluster/bin/kubectl"
export KUBECONFIG="${CLUSTER_STATE:-${ROOT}/_output/cluster}/kubeconfig"
NS=ml-team
XR=qwen
TIMEOUT="${DEMO_TIMEOUT:-600}"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }
k() { "${KUBECTL}" -n "${NS}" "$@"; }

if ! "${CLUSTER}" status >/dev/null 2>&1; then
  log "the control plane is not up; starting it (scripts/cluster.sh up)"
  "${CLUSTER}" up >/dev/null
fi

# One line of progress: the XR's phase and revisions, the replicas by revision
# and state, and which revisions the main route sends traffic to.
progress() {
  local xr replicas route
  xr="$(k get modeldeployment "${XR}" -o jsonpath='phase={.status.phase} current={.status.currentRevision} deploying={.status.deployingRevision} ready={.status.conditions[?(@.type=="Ready")].status} |{range .status.revisions[*]} {.name}: {.replicas} replicas, {.available} available, {.trafficWeight}% traffic;{end}' 2>/dev/null)" || true
  replicas="$({ k get modelreplicas -l "serving.rollout.dev/deployment=${XR}" \
    -o jsonpath='{range .items[*]}{.metadata.labels.serving\.rollout\.dev/revision}/{.status.phase}{.metadata.annotations.serving\.rollout\.dev/draining-since}{"\n"}{end}' 2>/dev/null \
    | sed 's#/\(Running\|Loading\|Pending\|Failed\)[0-9TZ:-]\{1,\}#/Draining#' | sort | uniq -c \
    | awk '{printf "%s x%s ", $2, $1}'; } || true)"
  route="$({ k get httproute "${XR}" -o jsonpath='{range .spec.rules[*].backendRefs[*]}{.name}{" "}{end}' 2>/dev/null \
    | tr ' ' '\n' | sed -n "s/^${XR}-\(v[0-9]*\)-.*/\1/p" | sort | uniq -c \
    | awk '{printf "%s x%s ", $2, $1}'; } || true)"
  printf '%s  %s\n    replicas: %s\n    route:    %s\n' "$(date -u +%H:%M:%S)" "${xr}" \
    "${replicas:-none}" "${route:-none}"
}

# wait_until DESCRIPTION CONDITION: print progress every 2 s until CONDITION holds.
wait_until() {
  local what="$1" cond="$2" deadline=$((SECONDS + TIMEOUT))
  log "waiting for ${what}"
  until eval "${cond}"; do
    ((SECONDS < deadline)) || die "timed out waiting for ${what}"
    progress
    sleep 2
  done
  progress
}

stable_on() {
  [[ "$(k get modeldeployment "${XR}" -o jsonpath='{.status.currentRevision}/{.status.phase}/{.status.deployingRevision}' 2>/dev/null)" == "$1/Stable/" ]] \
    && [[ -z "$(k get modelreplicas -l "serving.rollout.dev/deployment=${XR}" \
      -o jsonpath="{.items[?(@.metadata.labels.serving\.rollout\.dev/revision!=\"$1\")].metadata.name}")" ]]
}

k get namespace "${NS}" >/dev/null 2>&1 || "${KUBECTL}" create namespace "${NS}" >/dev/null
log "deploying example/xr.yaml: ${XR} with 3 replicas of v1"
k delete modeldeployment "${XR}" --ignore-not-found --wait >/dev/null
k apply -f "${ROOT}/example/xr.yaml" >/dev/null
wait_until "v1 to serve" "stable_on v1"

log "rolling ${XR} to v2 (RollingUpdate, maxSurge 25%, maxUnavailable 0)"
start=${SECONDS}
k patch modeldeployment "${XR}" --type merge -p '{"spec":{"activeRevision":"v2"}}' >/dev/null
wait_until "v2 to serve alone" "stable_on v2"
log "rolled to v2 in $((SECONDS - start)) s"
k get modeldeployment,modelreplica,modelendpoint,httproute
log "delete it with: ${KUBECTL} -n ${NS} delete modeldeployment ${XR}"
