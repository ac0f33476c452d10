#!/usr/bin/env bash
# The fault suite (tests/reliability): crash, bad input, faulty network, model server, apiserver
# restart, leak. Prints the figures table and writes it to bench/results/reliability.md (the
# README's Reliability section shows it).
#
#   hack/reliability.sh [--size small|large] [pytest args]
#
# small (the default, what CI runs inside `hack/test.sh`) fits in a few minutes; large is the
# by-hand size (500+ lifecycles, 50+ version switches, 10,000 leak cycles). The cluster is the
# one hack/cluster.sh names (MODELWERK_CLUSTER).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
size=small
if [ "${1:-}" = "--size" ]; then size=$2; shift 2; fi
case "$size" in small|large) ;; *) echo "--size small|large" >&2; exit 2 ;; esac
export MODELWERK_RELIABILITY_SIZE=$size
export MODELWERK_RELIABILITY_OUT=${MODELWERK_RELIABILITY_OUT:-$root/bench/results/reliability.md}
# Large runs last longer than pytest's default per-test timeout.
if [ "$size" = large ]; then set -- -o timeout=7200 "$@"; fi
MODELWERK_REAL_NODE=0 exec hack/test.sh tests/reliability "$@"
