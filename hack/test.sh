#!/usr/bin/env bash
# The test command: installs what is missing, checks style, types and import layering, then runs
# the unit and reconciler tiers, the integration, end-to-end and fault tiers (tests/reliability at
# its small size; kwok nodes; they start the local control plane, or reuse a running one), and
# the real-node tier (tests/node: a cluster with
# a real node, MODELWERK_NODE_CLUSTER, default modelwerk-node, with the images built here
# imported). Extra arguments go to pytest, e.g. `hack/test.sh tests/unit -k crds`; the real node
# is brought up when they name tests/node. MODELWERK_REAL_NODE=0 leaves the real-node tier out.
#
# `hack/test.sh --fast [pytest args]`: the fast tiers only (tests/unit, tests/reconcile), with no
# control-plane build and no cluster; chart tests run only if helm is already built or on PATH.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
fast=false
if [ "${1:-}" = "--fast" ]; then fast=true; shift; fi
node_tier=${MODELWERK_REAL_NODE:-1}
node_cluster=${MODELWERK_NODE_CLUSTER:-modelwerk-node}
if $fast; then node_tier=0; fi
if [ $# -gt 0 ] && ! printf '%s\n' "$@" | grep -q '^tests/node'; then node_tier=0; fi
if $fast; then
  hack/bootstrap.sh --no-tools
  bin=$(hack/build-tools.sh --if-built)
  if [ -n "$bin" ]; then export PATH="$bin:$PATH"; fi
  export MODELWERK_FAST=1
else
  MODELWERK_REAL_NODE=$node_tier hack/bootstrap.sh
  eval "$(hack/cluster.sh env)"
fi
export PATH="$root/.venv/bin:$PATH"
# One command a line: under `set -e` a failure inside an `a && b && c` list (but the last) does not
# stop the script, and a ruff error once went unnoticed that way.
echo "== ruff"
ruff check operator tests
ruff format --check operator tests
echo "== mypy"
mypy
echo "== import layering"
lint-imports

real_node() { # brings up the real-node cluster and imports the images its tests run
  export MODELWERK_CLUSTER=$node_cluster MODELWERK_REAL_NODE=1
  hack/cluster.sh up >/dev/null
  eval "$(hack/cluster.sh env)"
  # The operator image too: tests/node/test_installed.py installs it with the chart.
  hack/images.sh import trainer model-server operator >/dev/null
  # ... and the Prometheus Operator and Prometheus from their pinned Go modules (cached).
  hack/build-component.sh prometheus-operator >/dev/null
  hack/build-component.sh prometheus >/dev/null
  # ... and metrics-server, which the HPAs of tests/node/test_serving_autoscaling.py read CPU from.
  hack/build-component.sh metrics-server >/dev/null
}

echo "== pytest"
if [ $# -gt 0 ]; then
  if [ "$node_tier" = 1 ]; then real_node; fi
  exec pytest "$@"
fi
if $fast; then exec pytest tests/unit tests/reconcile; fi
# The fault suite at its small size (hack/reliability.sh runs it alone, and larger).
MODELWERK_RELIABILITY_SIZE=${MODELWERK_RELIABILITY_SIZE:-small} \
  pytest tests/unit tests/reconcile tests/integration tests/e2e tests/reliability
if [ "$node_tier" = 1 ]; then
  echo "== real-node tier ($node_cluster)"
  real_node
  # tests/images runs the images `hack/images.sh` built (skipped only when run by hand without
  # them).
  pytest tests/images tests/node
fi
