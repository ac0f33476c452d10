"""The data validation gate, experiment comparison and model cards on the real control plane.

The validator runs for real on this machine (`python -m modelwerk.validate` on CSV files, as
the init container would); its report and exit code drive the kwok simulation of the Job's
`validate` init container (KWOK_SIM_VALIDATION_*, hack/kwok/stages.yaml). The operator is the
real process: it builds the Job, reads the init container's termination message, and rejects
or trains.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.cluster import KubectlError, apply, get, wait_for
from tests.integration.conftest import OperatorProcess
from tests.integration.servers import deployment_manifest, wait_available
from tests.integration.test_kubectl_plugin import ok
from tests.integration.trainingruns import (
    conditions_by_type,
    model_manifest,
    pods_of,
    reference_report,
    run_manifest,
    wait_phase,
)

pytestmark = pytest.mark.integration

COLUMNS = ["sepal_length", "sepal_width", "species"]
EXPECTATIONS = {
    "name": "train",
    "rows": {"min": 10},
    "columns": [
        {"name": "sepal_length", "type": "float", "min": 4.0, "max": 8.0},
        {"name": "sepal_width", "type": "float", "maxNullFraction": 0.0},
        {
            "name": "species",
            "type": "string",
            "allowed": ["setosa", "versicolor"],
            "feature": False,
        },
    ],
}


def _write(path: Path, rows: list[tuple[Any, ...]]) -> str:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


GOOD_ROWS = [
    (4.5 + i * 0.2, 3.0 + (i % 3) * 0.1, "setosa" if i % 2 else "versicolor") for i in range(12)
]
# Too few rows, a value out of range, an unknown category and an empty cell.
BAD_ROWS = [(5.1, 3.5, "setosa"), (9.7, "", "virginica"), (5.0, 3.1, "versicolor")]


def validate_locally(tmp_path: Path, rows: list[tuple[Any, ...]], digest: str | None = None):
    """The validator on this machine, on a CSV file, with the params a run's pod would have:
    returns (dataset entry, exit code, termination message)."""
    data = tmp_path / "train.csv"
    actual = _write(data, rows)
    dataset = {"name": "train", "uri": "s3://data/iris/train.csv", "digest": digest or actual}
    params = {
        "run": "local",
        "datasets": [{**dataset, "uri": data.as_uri()}],
        "output": {"dir": str(tmp_path / "out")},
        "validation": {"datasets": [EXPECTATIONS]},
    }
    (tmp_path / "params.json").write_text(json.dumps(params))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELWERK_")}
    env["MODELWERK_PARAMS_FILE"] = str(tmp_path / "params.json")
    env["MODELWERK_TERMINATION_MESSAGE_PATH"] = str(tmp_path / "termination-log")
    proc = subprocess.run(
        [sys.executable, "-m", "modelwerk.validate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return dataset, proc.returncode, (tmp_path / "termination-log").read_text()


def gated_run(name: str, dataset: dict[str, Any], code: int, message: str, **kw: Any) -> dict:
    sim = {"VALIDATION_REPORT": message}
    if code != 0:
        sim["VALIDATION_EXIT_CODE"] = str(code)
    report = kw.pop("report", None)
    if report is None:
        # Training that reports no baseline of its own: the data's statistics stand in.
        data = json.loads(reference_report().text)
        data.pop("baseline")
        report = json.dumps(data, separators=(",", ":"))
    manifest = run_manifest(
        name,
        "iris",
        report=report,
        sim=sim,
        datasets=[dataset],
        validation={"datasets": [EXPECTATIONS]},
        evaluation={"metric": "accuracy", "threshold": 0.5},
        **kw,
    )
    return manifest


# --- refused at apply ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ({"name": "x", "min": 2, "max": 1}, "min must not exceed max"),
        ({"name": "x", "type": "string", "max": 1}, "min and max apply to int and float columns"),
        ({"name": "x", "type": "date"}, "Unsupported value"),
        ({"name": "x", "maxNullFraction": 2}, "should be less than or equal to 1"),
        (
            {"name": "x", "unknownCheck": 1},
            'unknown field "spec.validation.datasets[0].columns[0].unknownCheck"',
        ),
    ],
)
def test_bad_expectations_are_refused_at_apply(
    namespace: str, crds: None, column: dict[str, Any], message: str
) -> None:
    manifest = run_manifest(
        "bad",
        None,
        datasets=[{"name": "train", "uri": "s3://d/t.csv"}],
        validation={"datasets": [{"name": "train", "columns": [column]}]},
    )
    with pytest.raises(KubectlError) as refused:
        apply(manifest, namespace)
    assert message in refused.value.stderr
    assert get("trainingrun", "bad", namespace) is None


def test_expectations_must_name_a_dataset_and_rows_be_ordered(namespace: str, crds: None) -> None:
    manifest = run_manifest(
        "bad",
        None,
        datasets=[{"name": "train", "uri": "s3://d/t.csv"}],
        validation={"datasets": [{"name": "test"}]},
    )
    with pytest.raises(KubectlError) as refused:
        apply(manifest, namespace)
    assert "spec.validation.datasets must name datasets of spec.datasets" in refused.value.stderr
    # The same rules guard a Model's retrain template, which embeds the TrainingRun spec.
    model = model_manifest("iris")
    model["spec"]["retrain"] = {
        "template": {
            "image": "registry.example.com/t:1",
            "datasets": [{"name": "train", "uri": "s3://d/t.csv"}],
            "validation": {"datasets": [{"name": "train", "rows": {"min": 9, "max": 1}}]},
        },
        "schedule": "@daily",
    }
    with pytest.raises(KubectlError) as refused:
        apply(model, namespace)
    assert "min must not exceed max" in refused.value.stderr


# --- the gate --------------------------------------------------------------------------------


def test_bad_dataset_is_rejected_before_training_starts(
    namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    dataset, code, message = validate_locally(tmp_path, BAD_ROWS, digest="sha256:" + "0" * 64)
    assert code == 3
    apply(model_manifest("iris"), namespace)
    # backoffLimit 2: the pod failure policy must still end it after the first pod.
    apply(gated_run("iris-bad", dataset, code, message, backoff_limit=2), namespace)
    run = wait_phase(namespace, "iris-bad", "Rejected")
    status = run["status"]
    conditions = conditions_by_type(run)
    validated = conditions["Validated"]
    assert (validated["status"], validated["reason"]) == ("False", "DataValidationFailed")
    assert validated["message"].startswith("data validation failed: train/digest (observed sha256:")
    assert "train/rows (observed 3)" in validated["message"]
    assert conditions["Running"]["reason"] == "DataValidationFailed"
    assert "Evaluated" not in conditions
    assert "modelVersion" not in status
    # The digest run is the validate container's: the training container never ran.
    assert status["reproducibility"]["image"].startswith(run["spec"]["image"] + "@sha256:")

    checks = {c["name"]: c for c in status["validation"]["checks"]}
    assert checks["train/rows"] == {
        "name": "train/rows",
        "passed": False,
        "observed": "3",
        "expected": ">= 10",
    }
    assert checks["train/sepal_length/max"]["observed"] == "9.7"
    assert checks["train/species/allowed"]["observed"] == "1 values outside: 'virginica' (1)"
    assert checks["train/sepal_width/nulls"]["passed"] is False
    assert checks["train/sepal_length/min"]["passed"] is True

    # The training container never started: the one pod failed in its init container.
    (pod,) = pods_of(namespace, "iris-bad")
    assert pod["status"]["phase"] == "Failed"
    (init,) = pod["status"]["initContainerStatuses"]
    assert init["name"] == "validate"
    assert init["state"]["terminated"]["exitCode"] == 3
    (train,) = pod["status"]["containerStatuses"]
    assert list(train["state"]) == ["waiting"]
    assert pod["spec"]["initContainers"][0]["command"] == ["python", "-m", "modelwerk.validate"]

    def job_failed() -> dict[str, Any] | None:
        job = get("job", "iris-bad", namespace) or {}
        conditions = (job.get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "Failed"), None)

    # The pod failure policy fails the Job at once, backoffLimit notwithstanding: no retry.
    failed = wait_for("Job iris-bad Failed", job_failed)
    assert failed["reason"] == "PodFailurePolicy"
    assert len(pods_of(namespace, "iris-bad")) == 1
    run = wait_for(
        "attempts and completionTime recorded",
        lambda: (
            (r := get("trainingrun", "iris-bad", namespace))
            and "completionTime" in r["status"]
            and r
        ),
    )
    assert run["status"]["phase"] == "Rejected"
    assert run["status"]["attempts"] == 1
    versions = ((get("model", "iris", namespace) or {}).get("status") or {}).get("versions")
    assert not versions


def test_good_dataset_trains_and_its_statistics_become_the_baseline(
    namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    dataset, code, message = validate_locally(tmp_path, GOOD_ROWS)
    assert code == 0, message
    apply(model_manifest("iris"), namespace)
    apply(gated_run("iris-good", dataset, code, message), namespace)
    run = wait_phase(namespace, "iris-good", "Succeeded")
    status = run["status"]
    assert conditions_by_type(run)["Validated"]["status"] == "True"
    assert status["validation"]["passed"] is True
    assert status["validation"]["datasets"] == [
        {"name": "train", "format": "csv", "digest": dataset["digest"], "rows": 12}
    ]
    # The training report had no baseline: the validator's statistics are the version's.
    widths = [row[1] for row in GOOD_ROWS]
    mean = sum(widths) / len(widths)
    version = (get("model", "iris", namespace) or {})["status"]["versions"][0]
    baseline = version["baseline"]
    assert baseline["featureOrder"] == ["sepal_length", "sepal_width"]  # not the label
    assert baseline["features"]["sepal_width"]["mean"] == pytest.approx(mean, rel=1e-5)
    assert status["baseline"] == baseline
    (pod,) = pods_of(namespace, "iris-good")
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0


# --- runs, diff, card ------------------------------------------------------------------------


def test_runs_diff_and_card_on_the_cluster(
    namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    model = model_manifest("iris")
    model["spec"]["description"] = "Iris classifier <demo>"
    model["spec"]["card"] = {
        "intendedUse": "Demos & tests.",
        "limitations": "Three species only.",
        "owner": "ml-platform",
        "contact": "ml@example.com",
    }
    apply(model, namespace)
    (tmp_path / "good").mkdir()
    good, code, message = validate_locally(tmp_path / "good", GOOD_ROWS)
    apply(gated_run("iris-a", good, code, message), namespace)
    wait_phase(namespace, "iris-a", "Succeeded")
    (tmp_path / "bad").mkdir()
    bad, code, message = validate_locally(tmp_path / "bad", BAD_ROWS)
    apply(
        gated_run("iris-b", bad, code, message, hyperparameters={"C": "0.5", "max_iter": "200"}),
        namespace,
    )
    wait_phase(namespace, "iris-b", "Rejected")

    doc = json.loads(ok("runs", "iris", "-n", namespace, "-o", "json"))
    by_name = {r["name"]: r for r in doc["runs"]}
    assert set(by_name) == {"iris-a", "iris-b"}
    assert by_name["iris-a"]["modelVersion"] == 1
    assert by_name["iris-b"]["reason"] == "DataValidationFailed"
    assert "train/rows" in by_name["iris-b"]["validation"]["failed"]
    assert yaml.safe_load(ok("runs", "iris", "-n", namespace, "-o", "yaml")) == doc
    table = ok("runs", "iris", "-n", namespace, "--sort-by", "accuracy").splitlines()
    assert table[0].split()[:3] == ["RUN", "PHASE", "ACCURACY"]
    assert table[1].startswith("iris-a ")  # the one with the metric first
    assert "Rejected (DataValidationFailed)" in table[2]
    assert "failed (" in table[2]

    diff = json.loads(ok("diff", "iris-a", "iris-b", "-n", namespace, "-o", "json"))
    rows = {r["field"]: r for r in diff["differences"]}
    assert rows["validation"]["b"] == "failed"
    assert rows["check train/rows"]["b"] == "FAIL 3"
    assert rows["hyperparameter C"] == {"field": "hyperparameter C", "a": "1.0", "b": "0.5"}
    assert rows["dataset train"]["b"].endswith(bad["digest"])
    assert "image" not in rows
    by_version = ok("diff", "iris:1", "iris-b", "-n", namespace)
    assert by_version.splitlines()[0].split()[:3] == ["FIELD", "IRIS:1", "IRIS-B"]

    apply(deployment_manifest("iris", "iris", version=1, runtime="native", replicas=1), namespace)
    served = wait_available(namespace, "iris", version=1, ready=1)
    card = ok("card", "iris:1", "-n", namespace)
    assert card.startswith("# Model card: iris, version 1\n\nIris classifier \\<demo>\n")
    for needle in (
        "Demos & tests.",
        "| Owner | ml-platform |",
        f"| train | s3://data/iris/train.csv | {good['digest']} | 12 |",
        "| train/rows | >= 10 | 12 | pass |",
        "Gate accuracy >= 0.5: passed",
        "- Source: TrainingRun iris-a (Succeeded)",
        "| sepal_length |",
        f"| iris | stable | 100% | Available | {served['status']['endpoint']} |",
        "## Approvals\n\nNone recorded.",
    ):
        assert needle in card, needle
    html_card = ok("card", "iris", "-n", namespace, "-o", "html")
    assert "<p>Iris classifier &lt;demo&gt;</p>" in html_card
    assert "Demos &amp; tests." in html_card


def test_runs_of_a_thousand_cost_one_list(
    namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    """1,000 runs: `runs` answers from one list call. The plugin's kubectl is a wrapper that
    logs each invocation. The Model has no storage, so the operator starts no Job for them
    (they wait, Pending, NoOutputLocation)."""
    apply(model_manifest("iris", storage_uri=None), namespace)
    items = [
        run_manifest(f"iris-{i:04}", "iris", hyperparameters={"C": str(i)}) for i in range(1000)
    ]
    for start in range(0, len(items), 250):
        chunk = {"apiVersion": "v1", "kind": "List", "items": items[start : start + 250]}
        apply(chunk, namespace)
    log = tmp_path / "kubectl.log"
    real = shutil.which("kubectl")
    assert real is not None
    wrapper = tmp_path / "kubectl"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "kubectl-modelwerk"), "runs", "iris", "-n", namespace],
        env={**os.environ, "KUBECTL_PATH": str(wrapper)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 1 + 1000
    calls = log.read_text().splitlines()
    assert len(calls) == 2, calls  # the Model, and one list of all runs
    assert calls[1].endswith("get trainingruns.modelwerk.io --output json")
