#!/usr/bin/env bash
# The local control plane: real etcd, kube-apiserver, kube-controller-manager and kube-scheduler
# (built from source by build-tools.sh), with kwok standing in for kubelets on fake nodes.
# Everything listens on 127.0.0.1.
#
#   hack/cluster.sh up      build (first time: 6-10 min), start, wait until nodes are Ready
#   hack/cluster.sh down    stop and delete the cluster
#   hack/cluster.sh env     print `export KUBECONFIG=... PATH=...` for this cluster
#   hack/cluster.sh audit-log   where the audit log is (ServiceAccounts' requests; every write
#                               too on clusters started with MODELWERK_AUDIT=1)
#
# MODELWERK_CACHE (default ~/.cache/modelwerk) holds binaries and cluster state;
# MODELWERK_CLUSTER (default modelwerk) names the cluster.
# MODELWERK_REAL_NODE=1 adds one real node (containerd + kubelet + kube-proxy, hack/node.sh) beside
# the kwok nodes, at most one per machine; `env` then also prints MODELWERK_CONTAINERD_ADDRESS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${MODELWERK_CACHE:-$HOME/.cache/modelwerk}
name=${MODELWERK_CLUSTER:-modelwerk}
export KWOK_WORKDIR="$cache/kwok"
kubeconfig="$cache/clusters/$name/kubeconfig"
start=$(date +%s)
say() { echo "[cluster +$(( $(date +%s) - start ))s] $*" >&2; }

bin=$("$here/build-tools.sh" | tail -n 1)
export PATH="$bin:$PATH"

wait_for() { # description timeout-seconds command...
  local what=$1 timeout=$2; shift 2
  local deadline=$(( $(date +%s) + timeout ))
  until "$@" >/dev/null 2>&1; do
    if (( $(date +%s) > deadline )); then say "timed out waiting for $what"; "$@" || true; return 1; fi
    sleep 1
  done
}

running() {
  [ -f "$kubeconfig" ] && kubectl --kubeconfig "$kubeconfig" get --raw /readyz >/dev/null 2>&1
}

real_node=${MODELWERK_REAL_NODE:-}
pki="$KWOK_WORKDIR/clusters/$name/pki"

up() {
  if [ "$real_node" = 1 ]; then "$here/node.sh" check "$name"; fi
  if running; then
    say "cluster $name already running"
    if [ "$real_node" = 1 ] && [ -z "$("$here/node.sh" address "$name")" ]; then
      "$here/node.sh" up "$name" "$kubeconfig" "$pki"
    fi
    echo "$kubeconfig"
    return
  fi
  # kwokctl picks free ports when it creates a cluster: two clusters created at once can pick the
  # same ones and end up wired to each other's etcd. One creation at a time on this machine.
  mkdir -p "$KWOK_WORKDIR"
  exec 8>"$KWOK_WORKDIR/.create.lock"
  say "waiting for other cluster creations on this machine to finish"
  flock -w 900 8 || { say "another cluster creation held the lock for 15 minutes"; exit 1; }
  if running; then
    flock -u 8
    say "cluster $name already running"
    echo "$kubeconfig"
    return
  fi
  if [ "$real_node" = 1 ]; then "$here/node.sh" down "$name" 8>&-; fi
  # A cluster left behind by a killed session: its processes are gone, start afresh.
  kwokctl --name "$name" delete cluster >/dev/null 2>&1 || true
  mkdir -p "$(dirname "$kubeconfig")"
  rm -f "$kubeconfig"
  say "starting $name: etcd $ETCD_VERSION, kubernetes $KUBE_VERSION, kwok $KWOK_VERSION"
  # Every cluster has an audit log of ServiceAccounts' requests (the chart's RBAC test reads
  # it); benchmark clusters (MODELWERK_AUDIT=1) also log every write.
  local policy="$here/kwok/audit-policy-serviceaccounts.yaml"
  if [ "${MODELWERK_AUDIT:-}" = 1 ]; then policy="$here/kwok/audit-policy.yaml"; fi
  local extra=(--kube-audit-policy "$policy")
  local config="$here/kwok/kwokctl.yaml"
  if [ "$real_node" = 1 ]; then
    # kwok keeps to the fake nodes; the apiserver reaches the real kubelet (logs, exec).
    config=$(mktemp -t modelwerk-kwokctl.XXXX.yaml)
    # Pods on it reach the apiserver as in-cluster clients do: the `kubernetes` Service's
    # ClusterIP (10.0.0.1, the first of kwokctl's service range), which must be in the serving
    # certificate's names.
    sed -e "s|@PKI@|$pki|g" -e 's|^  bindAddress: 127.0.0.1$|&\n  kubeApiserverCertSANs: [10.0.0.1]|' \
      "$here/kwok/kwokctl.yaml" "$here/kwok/real-node-patches.yaml" >"$config"
  fi
  KWOK_KUBE_VERSION=$KUBE_VERSION kwokctl --name "$name" create cluster "${extra[@]}" \
    --config "$config" \
    --config "$here/kwok/stages.yaml" \
    --kubeconfig "$kubeconfig" \
    --etcd-binary "$bin/etcd" \
    --kube-apiserver-binary "$bin/kube-apiserver" \
    --kube-controller-manager-binary "$bin/kube-controller-manager" \
    --kube-scheduler-binary "$bin/kube-scheduler" \
    --kwok-controller-binary "$bin/kwok" \
    --wait 120s >&2 8>&-  # the daemons it starts must not inherit (and hold) the lock
  say "apiserver up; adding fake nodes"
  kubectl --kubeconfig "$kubeconfig" apply -f "$here/kwok/nodes.yaml" >&2
  wait_for "nodes Ready" 120 kubectl --kubeconfig "$kubeconfig" wait --for=condition=Ready \
    node --all --timeout=5s
  wait_for "default service account" 120 kubectl --kubeconfig "$kubeconfig" get serviceaccount default
  if [ "$real_node" = 1 ]; then "$here/node.sh" up "$name" "$kubeconfig" "$pki" 8>&-; fi
  flock -u 8
  say "cluster $name ready; KUBECONFIG=$kubeconfig"
  echo "$kubeconfig"
}

down() {
  "$here/node.sh" down "$name"
  kwokctl --name "$name" delete cluster >&2 || true
  rm -f "$kubeconfig"
  say "cluster $name deleted"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env)
    echo "export KUBECONFIG=$kubeconfig PATH=$bin:\$PATH"
    address=$("$here/node.sh" address "$name")
    if [ -n "$address" ]; then echo "export MODELWERK_CONTAINERD_ADDRESS=$address"; fi
    ;;
  audit-log) echo "$KWOK_WORKDIR/clusters/$name/logs/audit.log" ;;
  *) echo "usage: $0 up|down|env|audit-log" >&2; exit 2 ;;
esac
