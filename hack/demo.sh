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
ns=modelwerk-demo

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

kubectl apply -f hack/demo/storage.yaml >/dev/null

# kwok runs no containers, so train for real here with the reference trainer, and let the
# simulated training pod end with the report that training produced.
work=$(mktemp -d -t modelwerk-demo.XXXX)
MODELWERK_RUN=iris-1 MODELWERK_MODEL=iris MODELWERK_SEED=42 \
  MODELWERK_HYPERPARAMETERS='{"C":"1.0","max_iter":"200"}' \
  MODELWERK_OUTPUT_DIR="$work/out" MODELWERK_OUTPUT_URI=pvc://models/iris/iris-1 \
  MODELWERK_TERMINATION_MESSAGE_PATH="$work/report.json" \
  python -m modelwerk.trainers.iris >/dev/null
echo "trained locally: $(cat "$work/report.json")"
# The same for the run's `validate` init container: check the sample's datasets here, with the
# params the pod would get, and let the simulated init container end with that report.
python - "$work" <<'PY'
import json, sys, yaml
run = yaml.safe_load(open("manifests/samples/trainingrun.yaml"))
spec = run["spec"]
params = {"run": "iris-1", "datasets": spec["datasets"], "validation": spec["validation"],
          "output": {"dir": sys.argv[1] + "/out"}}
open(sys.argv[1] + "/params.json", "w").write(json.dumps(params))
PY
MODELWERK_PARAMS_FILE="$work/params.json" MODELWERK_TERMINATION_MESSAGE_PATH="$work/validation.json" \
  python -m modelwerk.validate >/dev/null
echo "validated locally: $(cat "$work/validation.json")"

kubectl -n "$ns" apply -f manifests/samples/model.yaml
python - "$work/report.json" "$work/validation.json" <<'PY' | kubectl -n "$ns" apply -f -
import json, sys, yaml
run = yaml.safe_load(open("manifests/samples/trainingrun.yaml"))
env = run["spec"].setdefault("env", [])
env.append({"name": "KWOK_SIM_REPORT", "value": open(sys.argv[1]).read()})
env.append({"name": "KWOK_SIM_VALIDATION_REPORT", "value": open(sys.argv[2]).read()})
print(json.dumps(run))
PY
echo "waiting for the run to register a version..."
kubectl -n "$ns" wait --for=jsonpath='{.status.phase}'=Succeeded trainingrun/iris-1 --timeout=120s
kubectl -n "$ns" get models,trainingruns,jobs

# Promotion is declarative: point the production alias at version 1, then serve it.
kubectl -n "$ns" patch model iris --type=merge -p '{"spec":{"aliases":{"production":1}}}'
kubectl -n "$ns" apply -f manifests/samples/deployment.yaml
echo "waiting for the Deployment to serve version 1..."
kubectl -n "$ns" wait --for=jsonpath='{.status.phase}'=Available deployments.modelwerk.io/iris --timeout=120s
kubectl -n "$ns" get deployments.modelwerk.io,deployments.apps,services,pods
echo
kubectl modelwerk versions iris -n "$ns"
echo
kubectl modelwerk lineage deployment/iris -n "$ns"
echo
kubectl modelwerk runs iris -n "$ns"
echo
kubectl modelwerk card iris -n "$ns"
if [ -t 0 ] && [ -z "${CI:-}" ]; then
  echo "Ctrl-C to stop the operator."
  wait $operator
fi
