#!/usr/bin/env bash
# Regenerates hack/tools/*/go.mod and go.sum from the pins in hack/versions.env.
# Run it after changing a pin, then commit the result; build-tools.sh only reads what this wrote.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local

new_module() { # dir module-path
  rm -f "$1/go.mod" "$1/go.sum"
  (cd "$1" && go mod init "$2" >/dev/null 2>&1 && go mod edit -go=1.26.0)
}

# Kubernetes: k8s.io/kubernetes refers to its staging modules as ./staging/src/k8s.io/X, which a
# consumer cannot use. Derive the list from its own go.mod at the pinned tag and point each at the
# published v0.<minor>.<patch> of the same release.
kube_dir="$here/tools/kubernetes"
new_module "$kube_dir" modelwerk.io/hack/tools/kubernetes
upstream_mod=$(cd "$kube_dir" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
staging_version="v0.${KUBE_VERSION#v1.}"
(
  cd "$kube_dir"
  go mod edit -require="k8s.io/kubernetes@$KUBE_VERSION"
  grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "$upstream_mod" |
    awk '{print $1}' | while read -r m; do
      go mod edit -replace="$m=$m@$staging_version"
    done
  go mod tidy
)

kwok_dir="$here/tools/kwok"
new_module "$kwok_dir" modelwerk.io/hack/tools/kwok
(cd "$kwok_dir" && go mod edit -require="sigs.k8s.io/kwok@$KWOK_VERSION" && go mod tidy)

helm_dir="$here/tools/helm"
new_module "$helm_dir" modelwerk.io/hack/tools/helm
(cd "$helm_dir" && go mod edit -require="helm.sh/helm/v3@$HELM_VERSION" && go mod tidy)

# etcd's server module replaces its sibling modules with relative paths; pin them to the same tag.
etcd_dir="$here/tools/etcd"
new_module "$etcd_dir" modelwerk.io/hack/tools/etcd
(
  cd "$etcd_dir"
  go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  for m in api/v3 client/pkg/v3 client/v3 pkg/v3; do
    go mod edit -replace="go.etcd.io/etcd/$m=go.etcd.io/etcd/$m@$ETCD_VERSION"
  done
  go mod tidy
)
echo "pinned: kubernetes $KUBE_VERSION (staging $staging_version), kwok $KWOK_VERSION, helm $HELM_VERSION, etcd $ETCD_VERSION"
