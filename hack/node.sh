#!/usr/bin/env bash
# One real node beside the kwok nodes (hack/cluster.sh calls this when MODELWERK_REAL_NODE=1):
# Debian's containerd + runc + CNI bridge, a kubelet and kube-proxy built from the pinned
# Kubernetes module, and CoreDNS (hack/components/coredns) as the cluster DNS. The facts behind each setting: ../shared/design/REAL-NODE.md (cgroup v1,
# no CAP_SYS_RESOURCE, no registry).
#
#   hack/node.sh check CLUSTER          fail if another cluster's real node runs on this machine
#   hack/node.sh up CLUSTER KUBECONFIG PKI-DIR   start the node (after cleaning up any leftovers)
#   hack/node.sh down [CLUSTER]         drain, stop and undo everything up did to the host
#   hack/node.sh address [CLUSTER]      the containerd socket, when that cluster's node runs
#   hack/node.sh volume-dir             where local PersistentVolumes of the node may live
#                                       (removed by `down`, like everything else of the node)
#
# One real node per machine: its state lives at fixed host paths (/var/lib/modelwerk-node,
# /run/modelwerk-node) and fixed ports; a second cluster asking for one is refused.
# Pods land on it only if they tolerate the taint modelwerk.io/real-node=true:NoSchedule; a
# namespace opts in with two annotations (see `namespace_annotations` below and the README).
set -euo pipefail
shopt -s inherit_errexit # a failing step inside $(...) fails the script, not only the subshell
here=$(cd "$(dirname "$0")" && pwd)
cache=${MODELWERK_CACHE:-$HOME/.cache/modelwerk}
lib=/var/lib/modelwerk-node
run=/run/modelwerk-node
logs=$cache/node/logs
socket=$run/containerd.sock
node_name=modelwerk-real-node
bridge=mwbr0
pod_cidr=10.244.0.0/16
pause_image=localhost/modelwerk-pause:1
# Ports above 20000 so they collide with nothing a host usually runs.
kubelet_port=20250 kubelet_healthz=20248 stream_port=20010 proxy_healthz=20256 proxy_metrics=20249
dns_ready=20181 # CoreDNS's readiness; it answers queries on port 53 of the node's address
start=$(date +%s)
say() { echo "[node +$(( $(date +%s) - start ))s] $*" >&2; }
die() { say "$*"; exit 1; }

ctr_() { ctr --address "$socket" -n k8s.io "$@"; }

# A recorded pid counts only while it is still the program we started (pids get reused).
alive() { # name
  local pid
  pid=$(cat "$run/$1.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline")" == *"$1"* ]]
}
owner() { cat "$run/owner" 2>/dev/null || true; }
# Up means: `up` got to its end (a killed `up` leaves no marker) and all four still run.
running_for() {
  [ "$(owner)" = "$1" ] && [ -f "$run/ready" ] && alive containerd && alive kubelet && alive kube-proxy &&
    alive coredns
}

check() { # cluster
  local other
  other=$(owner)
  if [ -n "$other" ] && [ "$other" != "$1" ] && { alive kubelet || alive containerd; }; then
    die "a real node already runs on this machine for cluster '$other' (one per machine).
  Use that cluster (MODELWERK_CLUSTER=$other), or stop it first: MODELWERK_CLUSTER=$other hack/cluster.sh down"
  fi
}

# --- pause image: a static Go binary packed as an OCI layout, cached by its source ---------------
pause_archive() {
  local key dir out
  key=$( (go version; cat "$here/node/pause/go.mod" "$here/node/pause/main.go") | sha256sum | cut -c1-16)
  out=$cache/node/pause-$key.tar
  if [ ! -f "$out" ]; then
    say "building the pause image"
    dir=$(mktemp -d)
    (cd "$here/node/pause" && GOTOOLCHAIN=local CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$dir/pause" .) ||
      die "building the pause binary failed"
    umoci init --layout "$dir/oci" >/dev/null
    umoci new --image "$dir/oci:1" >/dev/null
    umoci unpack --image "$dir/oci:1" "$dir/bundle" >/dev/null
    install -m 0755 "$dir/pause" "$dir/bundle/rootfs/pause"
    umoci repack --image "$dir/oci:1" "$dir/bundle" >/dev/null
    umoci config --image "$dir/oci:1" --os linux --architecture amd64 \
      --config.entrypoint /pause --config.user 65535:65535 >/dev/null
    umoci gc --layout "$dir/oci" >/dev/null
    mkdir -p "$cache/node"
    tar -C "$dir/oci" -cf "$out.tmp" . && mv "$out.tmp" "$out"
    rm -rf "$dir"
  fi
  echo "$out"
}

# --- configuration files -------------------------------------------------------------------------
write_configs() { # kubeconfig pki-dir node-ip
  local kubeconfig=$1 pki=$2 ip=$3
  mkdir -p "$lib/cni/net.d" "$lib/cni/ipam" "$lib/kubelet" "$lib/pod-logs" "$lib/volume-plugins" \
    "$lib/containerd" "$run/containerd" "$run/runc" "$logs"
  cat >"$run/containerd.toml" <<EOF
version = 2
root = "$lib/containerd"
state = "$run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = "$socket"
[ttrpc]
  address = "$socket.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$lib/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  # No CAP_SYS_RESOURCE here: nothing may lower oom_score_adj, or every sandbox fails.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "$stream_port"
  disable_tcp_service = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$run/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$lib/cni/net.d"
    max_conf_num = 1
EOF
  cat >"$lib/cni/net.d/10-modelwerk.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "modelwerk", "plugins": [{
  "type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": false, "hairpinMode": true,
  "ipam": {"type": "host-local", "ranges": [[{"subnet": "$pod_cidr"}]],
           "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$lib/cni/ipam"}}]}
EOF
  # The cluster DNS: CoreDNS on the host, serving cluster.local from the apiserver (Services,
  # and a headless Service's pod hostnames: a distributed run's workers), everything else
  # forwarded to the host's resolver. Pods reach it on the node's address (kubelet clusterDNS).
  cat >"$run/Corefile" <<EOF
.:53 {
    bind $ip
    errors
    ready 127.0.0.1:$dns_ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $kubeconfig
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    forward . /etc/resolv.conf
    cache 5
}
EOF
  # Pods with dnsPolicy Default (and the kubelet's own lookups) get no resolver of the host's.
  echo "nameserver 127.0.0.1" >"$lib/resolv.conf"
  cat >"$run/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 is the only usable hierarchy on these machines.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: true
cgroupRoot: /
containerRuntimeEndpoint: unix://$socket
imageServiceEndpoint: unix://$socket
address: $ip
port: $kubelet_port
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_healthz
readOnlyPort: 0
protectKernelDefaults: false
failSwapOn: false
resolvConf: $lib/resolv.conf
clusterDNS: [$ip]
clusterDomain: cluster.local
podLogsDir: $lib/pod-logs
volumePluginDir: $lib/volume-plugins
# Else the kubelet adds a DROP rule for 127.0.0.0/8 to the host's firewall.
makeIPTablesUtilChains: false
# Local images cannot be pulled back: never garbage-collect them, evict only when nearly full.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "1%", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
registerWithTaints:
- {key: modelwerk.io/real-node, value: "true", effect: NoSchedule}
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
EOF
  cat >"$run/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
hostnameOverride: $node_name
clientConnection: {kubeconfig: $kubeconfig}
clusterCIDR: $pod_cidr
healthzBindAddress: 127.0.0.1:$proxy_healthz
metricsBindAddress: 127.0.0.1:$proxy_metrics
nodePortAddresses: [primary]
# Zeros: kube-proxy leaves the host's conntrack sysctls alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}

spawn() { # name command... : a daemon in its own session, its pid recorded, its log in $logs
  local name=$1; shift
  setsid "$@" >"$logs/$name.log" 2>&1 </dev/null &
  echo $! >"$run/$name.pid"
}

wait_for() { # description timeout command...
  local what=$1 deadline=$(( $(date +%s) + $2 )); shift 2
  until "$@" >/dev/null 2>&1; do
    (( $(date +%s) > deadline )) && die "timed out waiting for $what (logs: $logs)"
    sleep 0.5
  done
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

up() { # cluster kubeconfig pki-dir
  local cluster=$1 kubeconfig=$2 pki=$3 ip bin dns_bin p
  check "$cluster"
  bin=$(MODELWERK_REAL_NODE=1 "$here/build-tools.sh" | tail -n 1)
  dns_bin=$("$here/build-component.sh" coredns | tail -n 1)
  for p in containerd runc nft iptables umoci; do
    command -v "$p" >/dev/null || die "$p not installed: run MODELWERK_REAL_NODE=1 hack/bootstrap.sh"
  done
  # Whatever a killed or rebooted run left behind goes first, so every start is a clean one.
  teardown
  for p in $kubelet_port $kubelet_healthz $stream_port $proxy_healthz $proxy_metrics $dns_ready; do
    port_free "$p" || die "port $p is in use; the real node needs it"
  done
  ip=$(ip -4 route get 1 | awk '{for (i = 1; i < NF; i++) if ($i == "src") print $(i + 1)}')
  [ -n "$ip" ] || die "no primary IPv4 address (ip route get 1)"
  mkdir -p "$run" "$logs"
  echo "$cluster" >"$run/owner"
  echo "$bin" >"$run/bin"
  cat /proc/sys/net/ipv4/ip_forward >"$run/ip_forward"
  [ -e /var/log/containers ] || touch "$run/created-var-log-containers"
  write_configs "$kubeconfig" "$pki" "$ip"

  say "containerd $(containerd --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1{print $3}')"
  spawn containerd containerd --config "$run/containerd.toml"
  wait_for "containerd" 30 ctr --address "$socket" version
  ctr_ images import --base-name "${pause_image%:*}" "$(pause_archive)" >/dev/null
  # Listed first, then searched: `ctr ... | grep -q` under pipefail fails whenever grep stops
  # reading at the match and ctr dies of SIGPIPE, though the image is there.
  local images
  images=$(ctr_ images ls -q)
  grep -qx "$pause_image" <<<"$images" || die "pause image $pause_image missing after import"

  say "CoreDNS $("$dns_bin/coredns" -version | awk 'NR==1{print $1}') on $ip:53"
  spawn coredns "$dns_bin/coredns" -conf "$run/Corefile"
  wait_for "CoreDNS ready" 60 curl -sf "http://127.0.0.1:$dns_ready/ready"

  say "kubelet and kube-proxy $("$bin/kubelet" --version | awk '{print $2}') as node $node_name ($ip)"
  spawn kubelet "$bin/kubelet" --config "$run/kubelet.yaml" --kubeconfig "$kubeconfig" \
    --hostname-override "$node_name" --node-ip "$ip" --root-dir "$lib/kubelet" \
    --cert-dir "$lib/kubelet/pki" --node-labels "modelwerk.io/real-node=true,type=real" --v=1
  spawn kube-proxy "$bin/kube-proxy" --config "$run/kube-proxy.yaml" --v=1
  wait_for "node $node_name Ready" 120 kubectl --kubeconfig "$kubeconfig" wait \
    --for=condition=Ready "node/$node_name" --timeout=2s
  wait_for "kube-proxy healthy" 60 curl -sf "http://127.0.0.1:$proxy_healthz/healthz"
  touch "$run/ready"
  say "real node $node_name ready; containerd at $socket"
}

# --- teardown: idempotent, works whether the apiserver, the kubelet or nothing is still up ------
drain() {
  local kubeconfig=$1
  kubectl --kubeconfig "$kubeconfig" get "node/$node_name" >/dev/null 2>&1 || return 0
  say "draining $node_name"
  kubectl --kubeconfig "$kubeconfig" cordon "$node_name" >/dev/null 2>&1 || true
  kubectl --kubeconfig "$kubeconfig" delete pods -A --field-selector "spec.nodeName=$node_name" \
    --grace-period=5 --wait=false >/dev/null 2>&1 || true
  # The kubelet stops the containers, unmounts the volumes and releases the sandboxes' networks;
  # then the pods leave the API, and no task (sandboxes included) runs any more.
  local deadline=$(( $(date +%s) + 60 ))
  while (( $(date +%s) < deadline )); do
    if [ -z "$(kubectl --kubeconfig "$kubeconfig" get pods -A -o name \
          --field-selector "spec.nodeName=$node_name" 2>/dev/null)" ] &&
       [[ "$(ctr_ tasks ls 2>/dev/null)" != *RUNNING* ]]; then
      break
    fi
    sleep 0.5
  done
  say "pods stopped"
  kubectl --kubeconfig "$kubeconfig" delete "node/$node_name" --wait=false >/dev/null 2>&1 || true
}

stop() { # name
  local pid
  pid=$(cat "$run/$1.pid" 2>/dev/null) || return 0
  if alive "$1"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$run/$1.pid"
}

# Shims outlive containerd; ours are the ones that talk to our socket.
our_shims() {
  local d
  for d in /proc/[0-9]*; do
    tr '\0' ' ' 2>/dev/null <"$d/cmdline" | grep -q "containerd-shim.*-address $socket " && echo "${d#/proc/}"
  done
  return 0
}

unmount_under() { # dir: deepest first
  local dir=$1
  awk -v d="$dir" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
}

remove_cgroups() {
  local h
  for h in /sys/fs/cgroup/*/; do
    [ -d "$h/kubepods" ] || continue
    # Leaf first: a cgroup directory can only be removed once it has no children.
    find "$h/kubepods" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

teardown() {
  local kubeconfig=${1:-} pid
  if [ -n "$kubeconfig" ] && alive containerd && alive kubelet; then drain "$kubeconfig"; fi
  stop kubelet
  stop kube-proxy
  stop coredns
  say "kubelet, kube-proxy and CoreDNS stopped"
  # Removes the nftables (and any iptables) rules kube-proxy made.
  if [ -f "$run/bin" ]; then "$(cat "$run/bin")/kube-proxy" --cleanup --v=0 >/dev/null 2>&1 || true; fi
  if alive containerd; then
    # Whatever the kubelet did not stop: kill the tasks, then remove their containers.
    for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true; done
    sleep 0.5
    for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks rm -f "$id" >/dev/null 2>&1 || true; done
    for id in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers rm "$id" >/dev/null 2>&1 || true; done
  fi
  stop containerd
  say "containerd stopped"
  for pid in $(our_shims); do kill -9 "$pid" 2>/dev/null || true; done
  unmount_under "$lib"
  unmount_under "$run"
  if awk -v l="$lib/" -v r="$run/" 'index($5, l) == 1 || index($5, r) == 1 {found = 1} END {exit !found}' \
      /proc/self/mountinfo; then
    die "mounts left under $lib or $run; not deleting them (see /proc/self/mountinfo)"
  fi
  remove_cgroups
  ip link del "$bridge" 2>/dev/null || true
  if [ -f "$run/ip_forward" ]; then
    cat "$run/ip_forward" >/proc/sys/net/ipv4/ip_forward
  fi
  if [ -f "$run/created-var-log-containers" ]; then rm -rf /var/log/containers; fi
  rm -rf "$lib" "$run"
}

down() { # [cluster]
  local cluster=${1:-} kubeconfig=""
  if [ -n "$cluster" ] && [ -n "$(owner)" ] && [ "$(owner)" != "$cluster" ]; then
    return 0 # another cluster's node: not ours to stop
  fi
  [ -n "$cluster" ] && kubeconfig="$cache/clusters/$cluster/kubeconfig"
  [ -e "$run" ] || [ -e "$lib" ] || return 0
  say "stopping the real node"
  teardown "$kubeconfig"
  say "real node stopped; host restored"
}

case "${1:-}" in
  check) check "$2" ;;
  up) up "$2" "$3" "$4" ;;
  down) down "${2:-}" ;;
  address) if running_for "${2:-$(owner)}"; then echo "$socket"; fi ;;
  volume-dir) mkdir -p "$lib/volumes" && echo "$lib/volumes" ;;
  *) echo "usage: $0 check|up|down|address|volume-dir ..." >&2; exit 2 ;;
esac
