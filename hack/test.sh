#!/usr/bin/env bash
# The test command: installs what is missing, checks style and types, then runs the unit tier
# and the integration tier (which starts the local control plane, or reuses a running one).
# Extra arguments go to pytest, e.g. `hack/test.sh tests/unit -k crds`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
hack/bootstrap.sh
eval "$(hack/cluster.sh env)"
export PATH="$root/.venv/bin:$PATH"
echo "== ruff" && ruff check operator tests && ruff format --check operator tests
echo "== mypy" && mypy
echo "== pytest"
# tests/images runs the images `hack/images.sh build` made (skipped when they are not built).
if [ $# -eq 0 ]; then set -- tests/unit tests/integration tests/e2e tests/images; fi
exec pytest "$@"
