"""`kubectl modelwerk` as a user runs it: kubectl finds `kubectl-modelwerk` on the PATH and the
plugin reads what the real operator registered from a real (kwok-simulated) training run.

Versions come from TrainingRuns that the operator evaluates and registers; the reports are the
reference trainer's own. A rerun is created by the plugin and then trained and registered too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.cluster import KubectlError, apply, get, kubectl, wait_for
from tests.integration.conftest import OperatorProcess
from tests.integration.trainingruns import (
    API_VERSION,
    REFERENCE_HYPERPARAMETERS,
    REFERENCE_SEED,
    model_manifest,
    reference_report,
    run_manifest,
    wait_phase,
)

pytestmark = pytest.mark.integration

VENV_BIN = Path(sys.executable).parent
CODE = {"repository": "https://github.com/acme/iris", "revision": "3f2c1e9d0b7a5c4e"}
DATASET = {
    "name": "train",
    "uri": "s3://data/iris/2026-11-01.csv",
    "digest": "sha256:" + "7a" * 32,
}
DECLARED_V1 = {
    "version": 1,
    "artifact": {"uri": "s3://bucket/iris/imported/model.joblib", "digest": "sha256:" + "ab" * 32},
    "metrics": {"accuracy": 0.5},
}


def plugin(*args: str, kubeconfig_env: bool = True) -> subprocess.CompletedProcess[str]:
    """`kubectl modelwerk ARGS` with the venv's bin (where `kubectl-modelwerk` is) on PATH."""
    assert (VENV_BIN / "kubectl-modelwerk").exists(), (
        f"no kubectl-modelwerk in {VENV_BIN}: install the package (pip install -e .)"
    )
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
    if not kubeconfig_env:
        env.pop("KUBECONFIG", None)
    return subprocess.run(
        ["kubectl", "modelwerk", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def ok(*args: str) -> str:
    proc = plugin(*args)
    assert proc.returncode == 0, f"kubectl modelwerk {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def _model(namespace: str) -> dict[str, Any]:
    obj = get("model", "iris", namespace)
    assert obj is not None
    return obj


def _registered(namespace: str, count: int) -> list[dict[str, Any]] | None:
    versions: list[dict[str, Any]] = (_model(namespace).get("status") or {}).get("versions") or []
    return versions if len(versions) >= count else None


@pytest.fixture
def registry(namespace: str, operator: OperatorProcess) -> dict[str, Any]:
    """Model `iris` with a declared version 1 and version 2 registered by run `iris-a`."""
    manifest = model_manifest("iris", versions=[DECLARED_V1], aliases={"production": 1})
    manifest["spec"]["promotion"] = {"alias": "candidate", "metric": "accuracy"}
    apply(manifest, namespace)
    report = reference_report()
    apply(
        run_manifest("iris-a", "iris", report=report.text, code=CODE, datasets=[DATASET]),
        namespace,
    )
    run = wait_phase(namespace, "iris-a", "Succeeded")
    assert run["status"]["modelVersion"] == 2
    wait_for("version 2 in the registry", lambda: _registered(namespace, 2))
    return run


def test_versions_table_json_and_yaml(namespace: str, registry: dict[str, Any]) -> None:
    report = reference_report()
    out = ok("versions", "iris", "-n", namespace)
    lines = out.splitlines()
    header = lines[0].split()
    metrics = sorted(report.metrics)
    metrics.remove("accuracy")
    assert header == [
        "VERSION",
        "ALIASES",
        "ACCURACY",  # the promotion metric first
        *(m.upper() for m in metrics),
        "DIGEST",
        "SOURCE",
        "REGISTERED",
    ]
    assert len(lines) == 3
    # Columns are aligned: every row starts its cells where the header's do.
    starts = [lines[0].index(h) for h in ("ALIASES", "DIGEST", "SOURCE", "REGISTERED")]
    for line in lines[1:]:
        for start in starts:
            assert line[start - 1] == " ", (line, start)
            assert line[start] != " ", (line, start)
    v1, v2 = (line.split() for line in lines[1:])
    assert v1[:3] == ["1", "production", "0.5"]
    assert v1[-2] == "declared"
    digest = registry["status"]["artifact"]["digest"]
    assert v2[:3] == ["2", "candidate", f"{report.accuracy:.6g}"]
    assert v2[-3:-1] == [digest[: len("sha256:") + 12], "iris-a"]

    status = _model(namespace)["status"]
    doc = json.loads(ok("versions", "iris", "-n", namespace, "-o", "json"))
    assert doc["versions"] == sorted(status["versions"], key=lambda v: v["version"])
    assert doc["aliases"] == {"production": 1, "candidate": 2}
    assert yaml.safe_load(ok("versions", "iris", "-n", namespace, "-o", "yaml")) == doc


def test_lineage_of_a_model_version(namespace: str, registry: dict[str, Any]) -> None:
    entry = next(v for v in _model(namespace)["status"]["versions"] if v["version"] == 2)
    lineage = entry["lineage"]
    assert "@sha256:" in lineage["image"], "the image as run, from the pod's imageID"

    text = ok("lineage", "model/iris:candidate", "-n", namespace)
    fields = dict(
        (line[:20].strip(), line[20:].strip()) for line in text.splitlines()[1:] if line.strip()
    )
    assert text.splitlines()[0] == "iris:2"
    assert fields["TRAINING RUN"] == "iris-a (Succeeded)"
    assert fields["IMAGE"] == lineage["image"]
    assert fields["CODE"] == f"{CODE['repository']}@{CODE['revision']}"
    assert fields["DATASET train"] == f"{DATASET['uri']}@{DATASET['digest']}"
    params = ", ".join(f"{k}={v}" for k, v in sorted(REFERENCE_HYPERPARAMETERS.items()))
    assert fields["HYPERPARAMETERS"] == f"{lineage['hyperparametersHash']} ({params})"
    assert fields["SEED"] == str(REFERENCE_SEED)
    assert f"accuracy={reference_report().accuracy:.6g}" in fields["METRICS"]
    assert fields["ARTIFACT"] == f"{entry['artifact']['uri']}@{entry['artifact']['digest']}"

    # The same through a number, the latest default and a run; and as JSON.
    as_json = json.loads(ok("lineage", "model/iris:2", "-n", namespace, "-o", "json"))
    assert ok("lineage", "model", "iris", "-n", namespace) == text
    (record,) = as_json["versions"]
    assert record["trainingRunUid"] == registry["metadata"]["uid"]
    assert record["hyperparametersHash"] == lineage["hyperparametersHash"]
    by_run = json.loads(ok("lineage", "trainingrun/iris-a", "-n", namespace, "-o", "json"))
    assert by_run["versions"] == as_json["versions"]


def test_explicit_kubeconfig_and_errors(
    namespace: str, registry: dict[str, Any], kubeconfig: str
) -> None:
    proc = plugin(
        "versions", "iris", "-n", namespace, "--kubeconfig", kubeconfig, kubeconfig_env=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ok("versions", "iris", "-n", namespace)

    missing = plugin("versions", "nope", "-n", namespace)
    assert missing.returncode == 1
    assert 'models.modelwerk.io "nope" not found' in missing.stderr

    no_version = plugin("lineage", "model/iris:7", "-n", namespace)
    assert no_version.returncode == 1
    assert no_version.stderr == "error: Model iris has no version 7\n"


def test_rerun_trains_the_same_spec_again(namespace: str, registry: dict[str, Any]) -> None:
    name = ok("rerun", "iris-a", "-n", namespace).strip()
    assert name.startswith("iris-a-")
    rerun = get("trainingrun", name, namespace)
    assert rerun is not None
    assert rerun["metadata"]["annotations"]["modelwerk.io/rerun-of"] == "iris-a"
    assert rerun["spec"] == registry["spec"]

    finished = wait_phase(namespace, name, "Succeeded")
    assert finished["status"]["modelVersion"] == 3
    versions = wait_for("version 3", lambda: _registered(namespace, 3))
    first, again = (next(v for v in versions if v["version"] == n) for n in (2, 3))
    # Same inputs, so the same lineage; only the run (and so the artifact path) differs.
    for key in ("image", "code", "datasets", "hyperparametersHash", "seed"):
        assert again["lineage"][key] == first["lineage"][key], key
    assert again["source"]["trainingRun"] == name

    doc = json.loads(ok("lineage", f"tr/{name}", "-n", namespace, "-o", "json"))
    assert doc["versions"][0]["run"]["rerunOf"] == "iris-a"
    assert f"{name} (Succeeded), rerun of iris-a" in ok("lineage", "model/iris:3", "-n", namespace)

    named = ok("rerun", "iris-a", "--name", "iris-b", "-n", namespace, "-o", "name")
    assert named == "trainingrun.modelwerk.io/iris-b\n"
    dry = yaml.safe_load(ok("rerun", "iris-a", "--dry-run", "-n", namespace))
    assert dry["metadata"]["generateName"] == "iris-a-"
    assert dry["apiVersion"] == API_VERSION


def _serving(namespace: str, version: int) -> dict[str, Any] | None:
    obj = get("deployments.modelwerk.io", "iris", namespace)
    current = ((obj or {}).get("status") or {}).get("currentVersion")
    return obj if current == version else None


def test_lineage_of_a_deployment(namespace: str, registry: dict[str, Any]) -> None:
    """deployment -> version -> run -> image, code, data, parameters, metrics, for a
    Deployment the operator itself made serve version 2."""
    apply(
        {
            "apiVersion": API_VERSION,
            "kind": "Deployment",
            "metadata": {"name": "iris"},
            "spec": {"model": "iris", "version": 2, "runtime": "native", "replicas": 1},
        },
        namespace,
    )
    wait_for("Deployment serving version 2", lambda: _serving(namespace, 2), timeout=60)

    text = ok("lineage", "deployment/iris", "-n", namespace)
    assert text.splitlines()[0].startswith(f"Deployment {namespace}/iris: ")
    assert "serving Model iris version 2" in text.splitlines()[0]
    assert "\nstable  iris:2\n" in text
    # A bare name means the modelwerk Deployment, never apps/v1.
    assert ok("lineage", "iris", "-n", namespace) == text
    doc = json.loads(ok("lineage", "mwd/iris", "-n", namespace, "-o", "json"))
    (stable,) = doc["versions"]
    model_doc = json.loads(ok("lineage", "model/iris:2", "-n", namespace, "-o", "json"))
    assert {k: v for k, v in stable.items() if k != "role"} == model_doc["versions"][0]
    assert stable["role"] == "stable"
    assert stable["trainingRun"] == "iris-a"
    assert stable["run"]["hyperparameters"] == REFERENCE_HYPERPARAMETERS


def test_deployment_serving_nothing_yet_is_a_clear_error(
    namespace: str, operator: OperatorProcess
) -> None:
    apply(model_manifest("iris"), namespace)
    apply(
        {
            "apiVersion": API_VERSION,
            "kind": "Deployment",
            "metadata": {"name": "iris"},
            "spec": {"model": "iris", "alias": "production"},
        },
        namespace,
    )
    proc = plugin("lineage", "deployment/iris", "-n", namespace)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: Deployment iris serves no version yet (phase ")
    with pytest.raises(KubectlError):
        kubectl("get", "deployment.apps", "iris", "-n", namespace)
