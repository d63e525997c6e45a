#!/usr/bin/env bash
# Renders every example scenario with the real Crossplane CLI against the
# function served locally, then validates everything rendered against the
# example XRDs, Crossplane's own CRDs and the Gateway API HTTPRoute CRD.
#
#   scripts/render-example.sh            # all scenarios in example/scenarios/
#   scripts/render-example.sh mid-rollout fresh
#
# Output: _output/render/<scenario>.yaml (XR with status, composed resources,
# function results), the inputs actually rendered under
# _output/render/inputs/<scenario>/, and the function's log in
# _output/render/function.log.
#
# Scenarios are snapshots taken at the time in example/scenarios/as-of. The
# function decides with the real clock, so each snapshot's timestamps are
# moved forward to now before rendering (scripts/rebase-times.py); set
# RENDER_NOW=<RFC 3339 time> to render as of another moment.
#
# Environment: FUNCTION_PORT (default: a free loopback port), SKIP_INSTALL=1 to
# skip scripts/install-tools.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
EXAMPLE="${ROOT}/example"
SCENARIOS="${EXAMPLE}/scenarios"
OUT="${ROOT}/_output/render"
VENV="${ROOT}/.venv"
PY="${VENV}/bin/python"
CRANK="${ROOT}/.tools/crank"
CROSSPLANE_VERSION="${CROSSPLANE_VERSION:-v2.2.1}"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'render-example: %s\n' "$*" >&2; exit 1; }

if [[ "${SKIP_INSTALL:-}" != "1" ]]; then
  log "installing tools"
  "${ROOT}/scripts/install-tools.sh"
fi
[[ -x "${CRANK}" ]] || die "${CRANK} is missing; run scripts/install-tools.sh"
[[ -x "${VENV}/bin/function" ]] || die "${VENV}/bin/function is missing; run scripts/install-tools.sh"

shopt -s nullglob
scenarios=("$@")
if [[ $# -eq 0 ]]; then
  for dir in "${SCENARIOS}"/*/; do
    dir="${dir%/}"
    scenarios+=("${dir##*/}")
  done
fi
[[ ${#scenarios[@]} -gt 0 ]] || die "no scenarios in ${SCENARIOS}"
for s in "${scenarios[@]}"; do
  [[ -f "${SCENARIOS}/${s}/xr.yaml" ]] || die "scenario ${s}: ${SCENARIOS}/${s}/xr.yaml is missing"
done

rm -rf "${OUT}"
mkdir -p "${OUT}/inputs" "${OUT}/validate"

# --- serve the function -------------------------------------------------------------------
PORT="${FUNCTION_PORT:-$("${PY}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
TARGET="127.0.0.1:${PORT}"
log "starting the function on ${TARGET} (log: ${OUT}/function.log)"
"${VENV}/bin/function" --insecure --address "${TARGET}" >"${OUT}/function.log" 2>&1 &
FUNCTION_PID=$!

stop_function() {
  if kill -0 "${FUNCTION_PID}" 2>/dev/null; then
    log "stopping the function (pid ${FUNCTION_PID})"
    kill "${FUNCTION_PID}" 2>/dev/null || true
    wait "${FUNCTION_PID}" 2>/dev/null || true
  fi
}
trap stop_function EXIT
trap 'exit 130' INT TERM

for _ in $(seq 1 150); do
  if ! kill -0 "${FUNCTION_PID}" 2>/dev/null; then
    cat "${OUT}/function.log" >&2
    die "the function exited before it accepted connections"
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/${PORT}") 2>/dev/null; then
    break
  fi
  sleep 0.2
done
(exec 3<>"/dev/tcp/127.0.0.1/${PORT}") 2>/dev/null \
  || die "the function does not accept connections on ${TARGET} after 30s"
log "the function accepts connections on ${TARGET}"

# --- render -------------------------------------------------------------------------------
AS_OF="$(tr -d '[:space:]' <"${SCENARIOS}/as-of")"
NOW="${RENDER_NOW:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}"
log "scenarios are snapshots as of ${AS_OF}; rendering them as of ${NOW}"

# Documents in a YAML file (comments-only files have none).
count_documents() {
  "${PY}" -c 'import sys, yaml; print(sum(1 for d in yaml.safe_load_all(open(sys.argv[1])) if d))' "$1"
}

# One line per scenario: what a user would look at first.
summarize() {
  "${PY}" - "$1" "$2" <<'EOF'
import sys
from collections import Counter

import yaml

name, path = sys.argv[1], sys.argv[2]
docs = [d for d in yaml.safe_load_all(open(path)) if d]
xr = docs[0]
status = xr.get("status") or {}
conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
replicas = Counter(
    d["spec"].get("revision", "?") for d in docs if d.get("kind") == "ModelReplica"
)
draining = sum(
    1 for d in docs if d.get("kind") == "ModelReplica"
    and "serving.rollout.dev/draining-since" in (d["metadata"].get("annotations") or {})
)
endpoints = sum(1 for d in docs if d.get("kind") == "ModelEndpoint")
routes = []
for d in docs:
    if d.get("kind") == "HTTPRoute":
        refs = [r["name"] for rule in d["spec"].get("rules") or [] for r in rule.get("backendRefs") or []]
        routes.append(f"{d['metadata']['name']}->[{', '.join(refs)}]")
results = [d for d in docs if d.get("kind") == "Result"]
print(
    f"{name}: phase={status.get('phase', '-')} current={status.get('currentRevision', '-')} "
    f"deploying={status.get('deployingRevision', '-')} "
    f"replicas={dict(sorted(replicas.items()))} draining={draining} endpoints={endpoints} "
    f"routes={' '.join(routes) or '-'} "
    f"Available={conditions.get('Available', '-')} Progressing={conditions.get('Progressing', '-')} "
    f"Routed={conditions.get('Routed', '-')} Ready={conditions.get('Ready', '-')} "
    f"results={len(results)}"
)
for r in results:
    print(f"    {r.get('severity')}: {r.get('message')}")
EOF
}

# Rendered output minus kind: Result documents, which have no schema.
strip_results() {
  "${PY}" - "$1" "$2" <<'EOF'
import sys

import yaml

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("kind") != "Result"]
with open(sys.argv[2], "w") as out:
    yaml.safe_dump_all(docs, out, sort_keys=False, explicit_start=True)
EOF
}

failed=()
summaries=()
for s in "${scenarios[@]}"; do
  src="${SCENARIOS}/${s}"
  in="${OUT}/inputs/${s}"
  mkdir -p "${in}"
  "${PY}" "${ROOT}/scripts/rebase-times.py" --as-of "${AS_OF}" --now "${NOW}" "${src}/xr.yaml" "${in}/xr.yaml"
  args=(render "${in}/xr.yaml" "${EXAMPLE}/composition.yaml" "${EXAMPLE}/functions.yaml"
    --xrd="${EXAMPLE}/xrds/modeldeployment.yaml"
    --include-full-xr --include-function-results
    -a "render.crossplane.io/runtime-development-target=${TARGET}")
  if [[ -f "${src}/observed.yaml" ]]; then
    "${PY}" "${ROOT}/scripts/rebase-times.py" --as-of "${AS_OF}" --now "${NOW}" \
      "${src}/observed.yaml" "${in}/observed.yaml"
    if [[ "$(count_documents "${in}/observed.yaml")" -gt 0 ]]; then
      args+=(--observed-resources="${in}/observed.yaml")
    fi
  fi

  log "rendering ${s}: crank ${args[*]}"
  if "${CRANK}" "${args[@]}" >"${OUT}/${s}.yaml" 2>"${OUT}/${s}.stderr"; then
    cat "${OUT}/${s}.yaml"
    strip_results "${OUT}/${s}.yaml" "${OUT}/validate/${s}.yaml"
    summaries+=("$(summarize "${s}" "${OUT}/${s}.yaml")")
  else
    cat "${OUT}/${s}.stderr" >&2
    failed+=("${s} (render)")
    summaries+=("${s}: RENDER FAILED: $(tail -n 1 "${OUT}/${s}.stderr")")
  fi
done

# --- validate -----------------------------------------------------------------------------
validate() {
  "${CRANK}" beta validate "$1" "$2" \
    --cache-dir="${ROOT}/.tools/validate-cache" \
    --crossplane-image="xpkg.crossplane.io/crossplane/crossplane:${CROSSPLANE_VERSION}" \
    --skip-success-results "${@:3}"
}
extensions="${EXAMPLE}/xrds,${ROOT}/.tools/crds"
input_crds=("${ROOT}"/package/input/*.yaml)
for crd in "${input_crds[@]}"; do
  extensions+=",${crd}"
done

if compgen -G "${OUT}/validate/*.yaml" >/dev/null; then
  log "validating rendered output and the rendered inputs"
  if ! validate "${extensions}" "${OUT}/validate,${OUT}/inputs" --error-on-missing-schemas; then
    failed+=("rendered output (validate)")
  fi
fi

log "validating the example platform (XR, Composition, Function, XRDs)"
platform="${EXAMPLE}/xr.yaml,${EXAMPLE}/composition.yaml,${EXAMPLE}/functions.yaml,${EXAMPLE}/xrds"
if [[ ${#input_crds[@]} -gt 0 ]]; then
  validate "${extensions}" "${platform}" --error-on-missing-schemas || failed+=("example platform (validate)")
else
  log "no Input CRD in package/input: the Composition's step input is not schema-checked"
  validate "${extensions}" "${platform}" || failed+=("example platform (validate)")
fi

printf '\n==> summary (as of %s)\n' "${NOW}"
printf '%s\n' "${summaries[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  printf '\nFAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
printf '\nall %d scenarios rendered and validated; output in %s\n' "${#scenarios[@]}" "${OUT}"
