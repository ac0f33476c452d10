"""The Argo CD health checks through Argo CD's own Lua engine: hack/components/argocd-lua builds a
small harness on github.com/argoproj/argo-cd/v3's util/lua (gopher-lua, Lua 5.1, the libraries
and JSON conversion the application controller uses) that runs every health_test.yaml case of
argocd/resource_customizations as the controller runs a configured health customization. The
fast tier runs the same cases in lupa (tests/unit/test_argocd_health.py); a script that works
there but not in Argo CD fails here."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import ROOT

# The first run on a machine builds the harness (argo-cd is a large module: minutes, cold).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600)]

CUSTOMIZATIONS = ROOT / "argocd" / "resource_customizations"


@pytest.fixture(scope="module")
def harness() -> Path:
    out = subprocess.run(
        [str(ROOT / "hack" / "build-component.sh"), "argocd-lua"],
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    return Path(out.stdout.strip().splitlines()[-1]) / "argocd-health"


def run(harness: Path, folder: Path) -> tuple[int, list[dict[str, Any]]]:
    proc = subprocess.run([str(harness), str(folder)], capture_output=True, text=True, timeout=120)
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()]


def test_every_case_passes_in_argo_cds_engine(harness: Path) -> None:
    code, results = run(harness, CUSTOMIZATIONS)
    wrong = [r for r in results if r.get("error") or r.get("got") != r["want"]]
    assert wrong == []
    assert code == 0
    kinds = {r["kind"] for r in results}
    assert kinds == {"modelwerk.io/Model", "modelwerk.io/TrainingRun", "modelwerk.io/Deployment"}
    tests = sum(
        (CUSTOMIZATIONS / kind / "health_test.yaml").read_text().count("inputPath:")
        for kind in kinds
    )
    assert len(results) == tests


def test_a_script_argo_cd_cannot_run_fails(harness: Path, tmp_path: Path) -> None:
    """`os` is not among the libraries Argo CD opens for health scripts: gopher-lua says so."""
    kind = tmp_path / "modelwerk.io" / "Model"
    shutil.copytree(CUSTOMIZATIONS / "modelwerk.io" / "Model", kind)
    script = (kind / "health.lua").read_text()
    (kind / "health.lua").write_text("local started = os.time()\n" + script)
    code, results = run(harness, tmp_path)
    assert code == 1
    assert results
    assert all("non-table object(nil) with key 'time'" in r["error"] for r in results), results
