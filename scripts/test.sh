#!/usr/bin/env bash
# The project's test command, for a fresh machine and for CI: installs what the
# tests need (scripts/install-tools.sh: the venv, the Crossplane CLI and the
# schemas), runs ruff and mypy, then the whole pytest suite: unit, property,
# replay, simulator campaign, gRPC transport and end-to-end tests with the real
# `crossplane render`.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh -k blue_green   # extra arguments go to pytest
#
# With CI=true the end-to-end tests fail, rather than skip, when a tool is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"

if [[ "${SKIP_INSTALL:-}" != "1" ]]; then
  "${ROOT}/scripts/install-tools.sh"
fi

# Static checks first: they take seconds and name the line. mypy checks the files
# pyproject.toml lists: function/, the shared test helpers and scripts/.
"${ROOT}/.venv/bin/ruff" check function tests scripts
"${ROOT}/.venv/bin/mypy"

set +e
"${ROOT}/.venv/bin/python" -m pytest "$@"
status=$?
set -e
if [[ ${status} -eq 5 ]]; then
  echo "test: pytest collected no tests; that is a failure, not a pass" >&2
  exit 1
fi
exit ${status}
