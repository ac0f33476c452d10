#!/usr/bin/env bash
# Installs everything the demo and the tests need on a fresh machine, and nothing twice:
# a Python 3.12 venv in .venv with the package and its extras, the Debian packages, and the
# control-plane binaries (hack/build-tools.sh, cached under ~/.cache/modelwerk).
# `--no-tools`: everything but the control-plane binaries (what `hack/test.sh --fast` needs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
start=$(date +%s)
say() { echo "[bootstrap +$(( $(date +%s) - start ))s] $*" >&2; }

find_python() {
  local candidate
  for candidate in "${MODELWERK_PYTHON:-}" \
      "$(command -v pyenv >/dev/null 2>&1 && ls -d "$(pyenv root)"/versions/3.12.*/bin/python3.12 2>/dev/null | sort -V | tail -n 1)" \
      "$(ls -d "$HOME"/.pyenv/versions/3.12.*/bin/python3.12 2>/dev/null | sort -V | tail -n 1)" \
      "$(command -v python3.12 2>/dev/null)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] &&
        "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}

# Python: the venv is rebuilt when pyproject.toml changes.
venv="$root/.venv"
stamp="$venv/.modelwerk-installed"
want=$(sha256sum "$root/pyproject.toml" | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  python=$(find_python) || { echo "Python 3.12 not found (pyenv or python3.12 on PATH; or set MODELWERK_PYTHON)" >&2; exit 1; }
  say "creating $venv with $python"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -e "$root[dev,ml,seldon,data]"
  echo "$want" > "$stamp"
  say "python ready"
fi

# Debian packages: promtool, Prometheus and Alertmanager for the monitoring tests.
missing=()
for pkg in ${MODELWERK_APT_PACKAGES:-prometheus prometheus-alertmanager}; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${1:-}" != "--no-tools" ]; then
  say "control-plane binaries"
  "$root/hack/build-tools.sh" >/dev/null
fi
say "ready"
