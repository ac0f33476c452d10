#!/usr/bin/env bash
# The test command: installs what is missing, checks style, types and import layering, then runs
# the unit and reconciler tiers and the integration and end-to-end tiers (which start the local
# control plane, or reuse a running one). Extra arguments go to pytest, e.g.
# `hack/test.sh tests/unit -k crds`.
#
# `hack/test.sh --fast [pytest args]`: the fast tiers only (tests/unit, tests/reconcile), with no
# control-plane build and no cluster; chart tests run only if helm is already built or on PATH.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
fast=false
if [ "${1:-}" = "--fast" ]; then fast=true; shift; fi
if $fast; then
  hack/bootstrap.sh --no-tools
  bin=$(hack/build-tools.sh --if-built)
  if [ -n "$bin" ]; then export PATH="$bin:$PATH"; fi
  export MODELWERK_FAST=1
else
  hack/bootstrap.sh
  eval "$(hack/cluster.sh env)"
fi
export PATH="$root/.venv/bin:$PATH"
echo "== ruff" && ruff check operator tests && ruff format --check operator tests
echo "== mypy" && mypy
echo "== import layering" && lint-imports
echo "== pytest"
if [ $# -eq 0 ]; then
  if $fast; then set -- tests/unit tests/reconcile
  else set -- tests/unit tests/reconcile tests/integration tests/e2e; fi
fi
exec pytest "$@"
