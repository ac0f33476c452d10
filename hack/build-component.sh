#!/usr/bin/env bash
# Builds one optional component (a controller users run beside the operator: Prometheus Operator,
# JobSet, Kueue, metrics-server, ...) from its pinned Go module under hack/components/NAME into a
# cache outside the clone, keyed by that folder's go.mod, go.sum and build list only, so that adding
# or bumping a component never invalidates the control plane's cache (hack/build-tools.sh).
#
#   hack/build-component.sh NAME            build if needed; print the bin directory (last line)
#   hack/build-component.sh NAME --if-built print it only if already built, never build
#
# hack/components/NAME/build lists what to build, one binary a line: `OUTPUT PACKAGE [LDFLAGS...]`
# (blank lines and `#` comments ignored). Progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
name=${1:?usage: build-component.sh NAME [--if-built]}
dir="$here/components/$name"
[ -f "$dir/go.mod" ] && [ -f "$dir/build" ] || { echo "no component $name in $dir" >&2; exit 2; }
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0

cache_root=${MODELWERK_CACHE:-$HOME/.cache/modelwerk}
recipe=1
key=$( (echo "recipe=$recipe"; cat "$dir/go.mod" "$dir/go.sum" "$dir/build") | sha256sum | cut -c1-16)
bin="$cache_root/components/$name/$key/bin"
mapfile -t lines < <(grep -vE '^\s*(#|$)' "$dir/build")

have_all() { local l; for l in "${lines[@]}"; do [ -x "$bin/${l%% *}" ] || return 1; done; }
if have_all; then echo "$bin"; exit 0; fi
if [ "${2:-}" = "--if-built" ]; then exit 0; fi

mkdir -p "$bin"
exec 9>"$bin/.lock"   # two checkouts building one key at once: the second waits, then finds it
flock 9
if have_all; then echo "$bin"; exit 0; fi
start=$(date +%s)
for l in "${lines[@]}"; do
  read -r out pkg flags <<<"$l"
  [ -x "$bin/$out" ] && continue
  echo "[build-component $name +$(( $(date +%s) - start ))s] go build $pkg" >&2
  (cd "$dir" && go build -trimpath -ldflags "-s -w ${flags:-}" -o "$bin/$out.tmp" "$pkg")
  mv "$bin/$out.tmp" "$bin/$out"
done
have_all
echo "[build-component $name +$(( $(date +%s) - start ))s] done" >&2
echo "$bin"
