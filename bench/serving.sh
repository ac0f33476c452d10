#!/usr/bin/env bash
# The serving benchmark: one sklearn iris artifact served by our native server, by MLServer and by
# Seldon Core's microservice wrapper on this machine (127.0.0.1 only), loaded one after another
# by wrk at fixed concurrency levels and batch sizes, in rounds; plus the in-process ceiling.
# Prints a Markdown table and writes bench/results/serving.{md,json}. Arguments go to
# bench/serving.py (e.g. --rounds 1 --connections 1,8 --batches 1).
#
# MLServer (Apache-2.0) lives in a venv of its own (MODELWERK_BENCH_VENV, default
# ~/.cache/modelwerk/bench-venv), so the project's dependencies never change for it; its
# scikit-learn, joblib and numpy are pinned to the project venv's, so both load the same pickle.
# The first run installs it (about 2 minutes); the measurements take about 17 (3 rounds).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
MODELWERK_APT_PACKAGES="${MODELWERK_APT_PACKAGES:-prometheus prometheus-alertmanager} wrk" \
  hack/bootstrap.sh
start=$(date +%s)
say() { echo "[serving.sh +$(( $(date +%s) - start ))s] $*" >&2; }

MLSERVER_VERSION=1.7.1
bench_venv=${MODELWERK_BENCH_VENV:-$HOME/.cache/modelwerk/bench-venv}
pins=$(.venv/bin/python - <<'PY'
from importlib.metadata import version
print(" ".join(f"{p}=={version(p)}" for p in ("scikit-learn", "joblib", "numpy")))
PY
)
# uvloop 0.22 broke MLServer 1.7.1's parallel workers (asyncio.get_event_loop() in a fresh
# process raises): 0.21 is the newest it runs with.
want="mlserver==$MLSERVER_VERSION mlserver-sklearn==$MLSERVER_VERSION uvloop==0.21.0 $pins"
if [ ! -f "$bench_venv/.installed" ] || [ "$(cat "$bench_venv/.installed")" != "$want" ]; then
  say "installing MLServer into $bench_venv: $want"
  [ -x "$bench_venv/bin/python" ] || "$(.venv/bin/python -c 'import sys; print(sys._base_executable)')" -m venv "$bench_venv"
  "$bench_venv/bin/python" -m pip install -q --upgrade pip
  # shellcheck disable=SC2086
  "$bench_venv/bin/python" -m pip install -q $want
  echo "$want" > "$bench_venv/.installed"
  say "MLServer ready"
fi
exec .venv/bin/python bench/serving.py --mlserver "$bench_venv/bin/mlserver" "$@"
