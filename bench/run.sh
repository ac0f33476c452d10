#!/usr/bin/env bash
# The benchmark: a dedicated local control plane (with an audit log), the operator as a separate
# process, and the scenarios of bench/bench.py. Prints a Markdown table and writes
# bench/results/latest.{md,json}. Arguments go to bench.py (e.g. --sizes 100 --objects 1000;
# --models 50 --deployments 50 for the all-kinds scenario of bench/kinds.py, 0 to skip it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
hack/bootstrap.sh
if [ -z "${KUBECONFIG:-}" ]; then
  export MODELWERK_CLUSTER=bench MODELWERK_AUDIT=1
  hack/cluster.sh down >/dev/null 2>&1 || true
  KUBECONFIG=$(hack/cluster.sh up)
  export KUBECONFIG
  MODELWERK_AUDIT_LOG=$(hack/cluster.sh audit-log)
  export MODELWERK_AUDIT_LOG
fi
eval "$(hack/cluster.sh env | sed 's/export KUBECONFIG=[^ ]* //')"
exec .venv/bin/python bench/bench.py "$@"
