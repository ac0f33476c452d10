#!/usr/bin/env bash
# The operator's main job on a local control plane: start the cluster, install the CRDs, run the
# operator, apply the samples and show them reconciled. Ctrl-C stops the operator; the cluster
# keeps running until `hack/cluster.sh down` (with the same MODELWERK_CLUSTER).
#
# By default the demo runs on a real node (MODELWERK_REAL_NODE=1, cluster `modelwerk-node`):
# the images in images/ are built here (hack/images.sh), the trainer trains in its container,
# the model server serves from its own, and the demo ends with a prediction through the Service.
# MODELWERK_REAL_NODE=0 runs it on kwok nodes only (cluster `modelwerk-demo`): training runs on
# this machine and the simulated training pod replays its report.
# Either way the demo has a cluster of its own: what the test tiers left in theirs (Seldon's CRD
# without a Seldon controller, for one) cannot change what it shows.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export MODELWERK_REAL_NODE=${MODELWERK_REAL_NODE:-1}
if [ "$MODELWERK_REAL_NODE" = 1 ]; then
  export MODELWERK_CLUSTER=${MODELWERK_CLUSTER:-${MODELWERK_NODE_CLUSTER:-modelwerk-node}}
else
  export MODELWERK_CLUSTER=${MODELWERK_CLUSTER:-modelwerk-demo}
fi
started=$(date +%s)
hack/bootstrap.sh
kubeconfig=$(hack/cluster.sh up)
export KUBECONFIG=$kubeconfig
eval "$(hack/cluster.sh env)"
export PATH="$root/.venv/bin:$PATH"
ns=modelwerk-demo
operator_env=()

kubectl apply --server-side -f crds/
kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl label namespace "$ns" pod-security.kubernetes.io/enforce=restricted --overwrite >/dev/null

if [ "$MODELWERK_REAL_NODE" = 1 ]; then
  # The images, built from images/*.Dockerfile and imported into the node's containerd.
  hack/images.sh import trainer model-server >/dev/null
  eval "$(hack/images.sh refs trainer model-server)"
  echo "images: $MODELWERK_TRAINER_IMAGE ($MODELWERK_TRAINER_DIGEST)"
  echo "        $MODELWERK_MODEL_SERVER_IMAGE ($MODELWERK_MODEL_SERVER_DIGEST)"
  operator_env+=("MODELWERK_SERVING_IMAGE=$MODELWERK_MODEL_SERVER_IMAGE")
  # The namespace's pods go to the real node: its label as node selector, its taint tolerated
  # (admission plugins PodNodeSelector and PodTolerationRestriction; hack/node.sh).
  kubectl annotate namespace "$ns" --overwrite >/dev/null \
    scheduler.alpha.kubernetes.io/node-selector=modelwerk.io/real-node=true \
    scheduler.alpha.kubernetes.io/defaultTolerations='[{"key":"modelwerk.io/real-node","operator":"Equal","value":"true","effect":"NoSchedule"}]'
  # The `models` volume: a directory on the real node, writable by the pods' user (65532).
  models_dir=$(hack/node.sh volume-dir)/demo-models
  mkdir -p "$models_dir" && chown 65532:65532 "$models_dir"
  sed -e "s|/var/lib/modelwerk/models|$models_dir|" -e "s|values: \[kwok\]|values: [real]|" \
    hack/demo/storage.yaml | kubectl apply -f - >/dev/null
else
  kubectl apply -f hack/demo/storage.yaml >/dev/null
fi

log=$(mktemp -t modelwerk-operator.XXXX.log)
env "${operator_env[@]}" modelwerk run >"$log" 2>&1 &
operator=$!
trap 'kill $operator 2>/dev/null; wait $operator 2>/dev/null; echo "operator log: $log"' EXIT
until curl -sf http://127.0.0.1:8081/healthz >/dev/null; do
  kill -0 $operator 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.5
done
echo "operator running (pid $operator), log in $log"

kubectl -n "$ns" apply -f manifests/samples/model.yaml
if [ "$MODELWERK_REAL_NODE" = 1 ]; then
  # The sample run as it is, in the trainer image built here (its `validate` init container
  # checks the datasets in the same image).
  python - "$MODELWERK_TRAINER_IMAGE" <<'PY' | kubectl -n "$ns" apply -f -
import json, sys, yaml
run = yaml.safe_load(open("manifests/samples/trainingrun.yaml"))
run["spec"]["image"] = sys.argv[1]
print(json.dumps(run))
PY
else
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
  python - "$work/report.json" "$work/validation.json" <<'PY' | kubectl -n "$ns" apply -f -
import json, sys, yaml
run = yaml.safe_load(open("manifests/samples/trainingrun.yaml"))
env = run["spec"].setdefault("env", [])
env.append({"name": "KWOK_SIM_REPORT", "value": open(sys.argv[1]).read()})
env.append({"name": "KWOK_SIM_VALIDATION_REPORT", "value": open(sys.argv[2]).read()})
print(json.dumps(run))
PY
fi
echo "waiting for the run to register a version..."
kubectl -n "$ns" wait --for=jsonpath='{.status.phase}'=Succeeded trainingrun/iris-1 --timeout=300s
kubectl -n "$ns" get models,trainingruns,jobs

# Promotion is declarative: point the production alias at version 1, then serve it.
kubectl -n "$ns" patch model iris --type=merge -p '{"spec":{"aliases":{"production":1}}}'
kubectl -n "$ns" apply -f manifests/samples/deployment.yaml
echo "waiting for the Deployment to serve version 1..."
kubectl -n "$ns" wait --for=jsonpath='{.status.phase}'=Available deployments.modelwerk.io/iris --timeout=300s
kubectl -n "$ns" get deployments.modelwerk.io,deployments.apps,services,pods -o wide
echo
kubectl modelwerk versions iris -n "$ns"
echo
kubectl modelwerk lineage deployment/iris -n "$ns"
echo
kubectl modelwerk runs iris -n "$ns"
echo
kubectl modelwerk card iris -n "$ns"
if [ "$MODELWERK_REAL_NODE" = 1 ]; then
  # No cluster DNS here: the Service by its ClusterIP, as a pod would reach it through its env.
  ip=$(kubectl -n "$ns" get service iris -o jsonpath='{.spec.clusterIP}')
  request='{"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}'
  echo
  echo "POST http://$ip:8000/v1/models/iris:predict $request"
  answer=$(curl -sf --noproxy '*' --max-time 10 -H 'Content-Type: application/json' \
    -d "$request" "http://$ip:8000/v1/models/iris:predict")
  python -c 'import json, sys; json.loads(sys.argv[1])["predictions"]' "$answer" || {
    echo "unexpected answer: $answer" >&2; exit 1; }
  echo "answer from the model-server container: $answer"
  echo "node's containerd: $(ctr --address "$MODELWERK_CONTAINERD_ADDRESS" -n k8s.io images ls -q |
    grep -F "$MODELWERK_TRAINER_DIGEST" | head -n 1)"
fi
echo "demo done in $(( $(date +%s) - started ))s"
if [ -t 0 ] && [ -z "${CI:-}" ]; then
  echo "Ctrl-C to stop the operator."
  wait $operator
fi
