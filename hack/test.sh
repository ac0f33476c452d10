#!/usr/bin/env bash
# The test command: installs what is missing, checks style and types, then runs the unit tier,
# the integration and end-to-end tiers (kwok nodes; they start the local control plane, or reuse
# a running one), and the real-node tier (tests/node: a cluster with a real node,
# MODELWERK_NODE_CLUSTER, default modelwerk-node, with the images built here imported).
# Extra arguments go to pytest, e.g. `hack/test.sh tests/unit -k crds`; the real node is brought
# up when they name tests/node. MODELWERK_REAL_NODE=0 leaves the real-node tier out.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
node_tier=${MODELWERK_REAL_NODE:-1}
node_cluster=${MODELWERK_NODE_CLUSTER:-modelwerk-node}
if [ $# -gt 0 ] && ! printf '%s\n' "$@" | grep -q '^tests/node'; then node_tier=0; fi
MODELWERK_REAL_NODE=$node_tier hack/bootstrap.sh
eval "$(hack/cluster.sh env)"
export PATH="$root/.venv/bin:$PATH"
echo "== ruff" && ruff check operator tests && ruff format --check operator tests
echo "== mypy" && mypy

real_node() { # brings up the real-node cluster and imports the images its tests run
  export MODELWERK_CLUSTER=$node_cluster MODELWERK_REAL_NODE=1
  hack/cluster.sh up >/dev/null
  eval "$(hack/cluster.sh env)"
  hack/images.sh import trainer model-server >/dev/null
}

echo "== pytest"
if [ $# -gt 0 ]; then
  if [ "$node_tier" = 1 ]; then real_node; fi
  exec pytest "$@"
fi
pytest tests/unit tests/integration tests/e2e
if [ "$node_tier" = 1 ]; then
  echo "== real-node tier ($node_cluster)"
  real_node
  pytest tests/node
fi
