"""argocd/resource_customizations through Argo CD's own Lua engine: argo-cd v3.2.12's util/lua
(gopher-lua, Lua 5.1, as the application controller runs a health check from argocd-cm),
built from its Go module by hack/build-component.sh argocd-lua (hack/components/argocd-lua).
test_argocd_health.py runs the same cases in lupa; this catches a script only lupa accepts.

`hack/test.sh --fast` runs it only when the component is already built (a full run builds it,
about 10 minutes on 2 cores the first time, then cached), and skips it otherwise."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CUSTOMIZATIONS = ROOT / "argocd" / "resource_customizations"
# The first full run on a machine builds the harness inside the fixture: longer than the
# suite's default timeout.
pytestmark = pytest.mark.timeout(3600)


@pytest.fixture(scope="module")
def harness() -> Path:
    args = [str(ROOT / "hack" / "build-component.sh"), "argocd-lua"]
    if os.environ.get("MODELWERK_FAST"):
        args.append("--if-built")
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=3000)
    lines = out.stdout.strip().splitlines()
    if not lines:
        pytest.skip("hack/build-component.sh argocd-lua has not been run (fast tier)")
    return Path(lines[-1]) / "argocd-lua-health"


def run(harness: Path, folder: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(harness), *flags, str(folder)], capture_output=True, text=True, timeout=120
    )


def test_every_health_check_passes_in_argo_cds_engine(harness: Path) -> None:
    cases = sum(
        (p.parent / "health_test.yaml").read_text().count("inputPath:")
        for p in CUSTOMIZATIONS.rglob("health.lua")
    )
    for flags in ((), ("-open-libs",)):
        result = run(harness, CUSTOMIZATIONS, *flags)
        assert result.returncode == 0, result.stdout + result.stderr
        # Every case of every kind ran, none skipped.
        assert result.stdout.strip().splitlines()[-1] == f"{cases} passed, 0 failed"
    assert cases >= 30


def test_a_script_only_a_newer_lua_accepts_fails(harness: Path, tmp_path: Path) -> None:
    """Floor division `//` is Lua 5.3 (a lupa built on 5.3 or 5.4 runs it): gopher-lua refuses
    it, so Argo CD would report an error, not a status. A wrong expectation fails too."""
    kind = tmp_path / "example.com" / "Thing"
    kind.mkdir(parents=True)
    (kind / "thing.yaml").write_text("apiVersion: example.com/v1\nkind: Thing\nstatus: {}\n")
    (kind / "health_test.yaml").write_text(
        "tests:\n- healthStatus: {status: Healthy, message: fine}\n  inputPath: thing.yaml\n"
    )
    (kind / "health.lua").write_text(
        'local half = 7 // 2\nreturn {status = "Healthy", message = "fine"}\n'
    )
    result = run(harness, tmp_path)
    assert result.returncode == 1
    assert "FAIL" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "0 passed, 1 failed"

    (kind / "health.lua").write_text('return {status = "Degraded", message = "fine"}\n')
    result = run(harness, tmp_path)
    assert result.returncode == 1
    assert "got {Status:Degraded" in result.stdout

    (kind / "health.lua").write_text('return {status = "Healthy", message = "fine"}\n')
    assert run(harness, tmp_path).returncode == 0
