#!/usr/bin/env bash
# Builds the local control plane's binaries from their pinned Go modules (hack/tools/*) into a
# cache outside the clone, keyed by a hash of the pins: an unchanged pin is never rebuilt.
# Prints the bin directory on stdout (last line); progress goes to stderr.
# `--if-built`: never build; print the bin directory only if everything is already there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0

cache_root=${MODELWERK_CACHE:-$HOME/.cache/modelwerk}
# Bump when the build flags below change: the cache key covers the pins and this recipe number,
# not the script's wording.
recipe=1
key=$( (echo "recipe=$recipe"; cat "$here/versions.env" "$here"/tools/*/go.mod "$here"/tools/*/go.sum) |
  sha256sum | cut -c1-16)
bin="$cache_root/tools/$key/bin"
want=(kube-apiserver kube-controller-manager kube-scheduler kubectl kwok kwokctl helm etcd)

have_all() { for b in "${want[@]}"; do [ -x "$bin/$b" ] || return 1; done; }
if have_all; then echo "$bin"; exit 0; fi
if [ "${1:-}" = "--if-built" ]; then exit 0; fi

mkdir -p "$bin"
# Two builds of one key at once (two checkouts bootstrapping together) would race on the same
# outputs: the second waits for the first, then finds what it built.
exec 9>"$bin/.lock"
flock 9
if have_all; then echo "$bin"; exit 0; fi
start=$(date +%s)
say() { echo "[build-tools +$(( $(date +%s) - start ))s] $*" >&2; }
say "building control-plane binaries into $bin (the first build on a machine takes 6-10 min on 2 cores)"

# The same version stamp `make` in kubernetes/kubernetes sets, so `--version` reports the pin.
minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
stamp=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  stamp+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

build() { # module-dir output package [ldflags]
  local dir=$1 out=$2 pkg=$3 flags=${4:-}
  if [ -x "$bin/$out" ]; then return; fi
  say "go build $pkg"
  (cd "$here/tools/$dir" && go build -trimpath -ldflags "-s -w $flags" -o "$bin/$out.tmp" "$pkg")
  mv "$bin/$out.tmp" "$bin/$out"
  say "built $out"
}

build etcd etcd go.etcd.io/etcd/server/v3 \
  "-X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION"
build kwok kwok sigs.k8s.io/kwok/cmd/kwok "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
build kwok kwokctl sigs.k8s.io/kwok/cmd/kwokctl "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
build helm helm helm.sh/helm/v3/cmd/helm "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for cmd in kubectl kube-apiserver kube-controller-manager kube-scheduler; do
  build kubernetes "$cmd" "k8s.io/kubernetes/cmd/$cmd" "$stamp"
done
have_all
say "done"
echo "$bin"
