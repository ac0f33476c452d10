#!/usr/bin/env bash
# Prints the folder of the Gateway API's standard-channel CRDs (HTTPRoute, Gateway, ...), from
# the module pinned in hack/components/gateway-api/go.mod, downloaded into the Go module cache
# (never copied into the repo). MODELWERK_GATEWAY_API_CRDS names another folder instead.
set -euo pipefail
if [ -n "${MODELWERK_GATEWAY_API_CRDS:-}" ]; then echo "$MODELWERK_GATEWAY_API_CRDS"; exit 0; fi
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/components/gateway-api"
dir=$(GOTOOLCHAIN=local GOFLAGS=-mod=readonly go mod download -json sigs.k8s.io/gateway-api \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$dir/config/crd/standard" ] || { echo "no CRDs in $dir/config/crd/standard" >&2; exit 1; }
echo "$dir/config/crd/standard"
