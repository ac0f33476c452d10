#!/usr/bin/env bash
# The operator's main job on a local control plane: start the cluster, install the CRDs, run the
# operator, apply the samples and show them reconciled. Ctrl-C stops the operator; the cluster
# keeps running until `hack/cluster.sh down`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
hack/bootstrap.sh
kubeconfig=$(hack/cluster.sh up)
export KUBECONFIG=$kubeconfig
eval "$(hack/cluster.sh env)"
export PATH="$root/.venv/bin:$PATH"
ns=${MODELWERK_DEMO_NAMESPACE:-modelwerk-demo}

kubectl apply --server-side -f crds/
kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl label namespace "$ns" pod-security.kubernetes.io/enforce=restricted --overwrite >/dev/null

log=$(mktemp -t modelwerk-operator.XXXX.log)
modelwerk run >"$log" 2>&1 &
operator=$!
trap 'kill $operator 2>/dev/null; wait $operator 2>/dev/null; echo "operator log: $log"' EXIT
until curl -sf http://127.0.0.1:8081/healthz >/dev/null; do
  kill -0 $operator 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.5
done
echo "operator running (pid $operator), log in $log"

kubectl -n "$ns" apply -f manifests/samples/
echo "waiting for the samples to reconcile..."
kubectl -n "$ns" wait --for=jsonpath='{.status.phase}'=Succeeded trainingrun --all --timeout=120s || true
kubectl -n "$ns" get models,trainingruns,deployments.modelwerk.io,jobs,deployments.apps,pods
if [ -t 0 ] && [ -z "${CI:-}" ]; then
  echo "Ctrl-C to stop the operator."
  wait $operator
fi
