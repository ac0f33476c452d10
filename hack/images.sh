#!/usr/bin/env bash
# Builds the images in images/ as OCI layouts on this machine, without Docker or a registry,
# and imports them into a node's containerd (hack/images.py does the work; see its docstring).
#
#   hack/images.sh build [NAME[:ARG=VALUE]...]   # default: operator model-server trainer
#   hack/images.sh import [NAME...]              # into $MODELWERK_CONTAINERD_ADDRESS (k8s.io)
#   hack/images.sh refs [--json] [NAME...]       # MODELWERK_<NAME>_IMAGE=... lines for eval
#
# Variants take the Dockerfile's build args: `model-server:EXTRAS=ml,seldon`. Results are
# cached in ~/.cache/modelwerk/images keyed by their inputs; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ "${1:-}" != refs ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "hack/images.sh: needs root (mmdebstrap --mode=root, chroot, mounts)" >&2; exit 1
  fi
  missing=()
  for pkg in mmdebstrap umoci; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "[images] apt-get install ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
# Any Python >= 3.9 runs the build script (stdlib only); the one copied into images is found
# by the script itself, as hack/bootstrap.sh finds it.
exec python3 "$here/images.py" "$@"
