"""GitOps: what Git holds stays what the cluster holds. After the operator has reconciled the
samples (a run registered, an alias promoted, a version served), a server-side dry-run apply of
the very same manifests changes nothing, so Argo CD would see no drift; and every field the
operator owns is under status."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.cluster import ROOT, get, kubectl, wait_for
from tests.integration.conftest import OperatorProcess
from tests.integration.trainingruns import reference_report, wait_phase

pytestmark = pytest.mark.integration

MANAGER = "argocd-controller"  # what Argo CD's server-side apply calls itself


def _git_manifests(report: str) -> list[dict[str, Any]]:
    """The samples as a team would keep them in Git: the Model promoting version 1, and the run
    carrying the simulated container ending (kwok runs no containers)."""
    samples = ROOT / "manifests" / "samples"
    model = yaml.safe_load((samples / "model.yaml").read_text())
    model["spec"]["aliases"] = {"production": 1}
    run = yaml.safe_load((samples / "trainingrun.yaml").read_text())
    run["spec"].setdefault("env", []).append({"name": "KWOK_SIM_REPORT", "value": report})
    deployment = yaml.safe_load((samples / "deployment.yaml").read_text())
    return [model, run, deployment]


def _write(tmp_path: Path, manifests: list[dict[str, Any]]) -> Path:
    path = tmp_path / "git.yaml"
    path.write_text(yaml.safe_dump_all(manifests))
    return path


def test_reconciled_samples_show_no_drift(
    namespace: str,
    operator: OperatorProcess,
    models_claim: str,
    tmp_path: Path,
    upstream_crds: Path,
) -> None:
    # Seldon's CRD is installed and no Seldon controller runs (as after the integration tier):
    # the sample Deployment still serves, natively (the demo applies it as it is).
    path = _write(tmp_path, _git_manifests(reference_report().text))
    kubectl(
        "apply", "--server-side", f"--field-manager={MANAGER}", "-n", namespace, "-f", str(path)
    )

    wait_phase(namespace, "iris-1", "Succeeded")
    wait_for(
        "Deployment serving version 1",
        lambda: (
            ((get("deployments.modelwerk.io", "iris", namespace) or {}).get("status") or {}).get(
                "currentVersion"
            )
            == 1
        ),
        timeout=90,
    )
    served = get("deployments.modelwerk.io", "iris", namespace)
    assert served is not None
    assert served["status"]["runtime"] == "native"
    assert get("seldondeployments.machinelearning.seldon.io", "iris", namespace) is None
    before = {
        kind: json.loads(
            kubectl("get", kind, name, "-n", namespace, "-o", "json", "--show-managed-fields")
        )
        for kind, name in (
            ("models", "iris"),
            ("trainingruns", "iris-1"),
            ("deployments.modelwerk.io", "iris"),
        )
    }

    # `kubectl diff --server-side` is what Argo CD's server-side diff does: exit 0, no output.
    diff = subprocess.run(
        [
            "kubectl",
            "diff",
            "--server-side",
            f"--field-manager={MANAGER}",
            "-n",
            namespace,
            "-f",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert diff.stdout == ""

    dry = json.loads(
        kubectl(
            "apply",
            "--server-side",
            f"--field-manager={MANAGER}",
            "--dry-run=server",
            "-n",
            namespace,
            "-f",
            str(path),
            "-o",
            "json",
        )
    )
    for item in dry["items"]:
        live = before[
            {
                "Model": "models",
                "TrainingRun": "trainingruns",
                "Deployment": "deployments.modelwerk.io",
            }[item["kind"]]
        ]
        assert live is not None
        assert item["spec"] == live["spec"], item["kind"]
        assert item["metadata"]["generation"] == live["metadata"]["generation"], item["kind"]

    # The operator's field manager owns status only, never spec or metadata.
    for kind, obj in before.items():
        assert obj is not None
        ours = [m for m in obj["metadata"]["managedFields"] if m["manager"] == "modelwerk"]
        assert ours, f"{kind}: the operator wrote no status"
        assert all(m.get("subresource") == "status" for m in ours), (kind, ours)
        assert obj["metadata"]["generation"] == 1, f"{kind}: spec changed after apply"
