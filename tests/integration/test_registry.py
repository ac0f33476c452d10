"""The Model registry fed by TrainingRuns: the evaluation gate (threshold, mustBeat), declared
versions, and many runs of one Model registering at once."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.cluster import apply, get, wait_for
from tests.integration.conftest import OperatorProcess
from tests.integration.trainingruns import (
    as_list,
    conditions_by_type,
    model_manifest,
    reference_report,
    run_manifest,
    wait_phase,
)

pytestmark = pytest.mark.integration

# A declared version trained elsewhere, better than anything the reference trainer reaches.
DECLARED_V1 = {
    "version": 1,
    "artifact": {
        "uri": "s3://bucket/iris/imported/model.joblib",
        "digest": "sha256:" + "ab" * 32,
    },
    "metrics": {"accuracy": 0.99},
}


def _model_status(namespace: str, name: str) -> dict[str, Any]:
    obj = get("model", name, namespace)
    assert obj is not None, f"Model {name} is gone"
    status: dict[str, Any] = obj.get("status") or {}
    return status


def _model_reconciled(namespace: str, name: str) -> dict[str, Any] | None:
    obj = get("model", name, namespace)
    status = (obj or {}).get("status") or {}
    if obj is not None and status.get("observedGeneration") == obj["metadata"]["generation"]:
        return status
    return None


# --- 4. evaluation rejection -----------------------------------------------------------------


def test_threshold_above_reported_metric_rejects_run(
    namespace: str, operator: OperatorProcess
) -> None:
    report = reference_report()
    threshold = 0.99
    assert report.accuracy < threshold, "the reference trainer got too good for this test"
    apply(model_manifest("iris"), namespace)
    apply(
        run_manifest(
            "weak",
            "iris",
            report=report.text,
            evaluation={"metric": "accuracy", "threshold": threshold},
        ),
        namespace,
    )
    obj = wait_phase(namespace, "weak", "Rejected")
    status = obj["status"]
    evaluation = status["evaluation"]
    assert evaluation["passed"] is False
    assert evaluation["metric"] == "accuracy"
    assert evaluation["value"] == report.accuracy
    assert evaluation["threshold"] == threshold
    conds = conditions_by_type(obj)
    assert conds["Evaluated"]["status"] == "False"
    assert conds["Evaluated"]["reason"] == "BelowThreshold"
    assert str(threshold) in conds["Evaluated"]["message"]
    assert conds["Registered"]["status"] == "False"
    assert conds["Complete"]["status"] == "True"
    assert "modelVersion" not in status
    # The report is kept even though the result is refused: the metrics say why.
    assert status["metrics"] == report.metrics

    model = wait_for("the Model's status", lambda: _model_reconciled(namespace, "iris"))
    assert model.get("versions", []) == []
    assert model["phase"] == "Pending"
    assert "latestVersion" not in model


def test_must_beat_alias_rejects_worse_run(namespace: str, operator: OperatorProcess) -> None:
    report = reference_report()
    assert report.accuracy < DECLARED_V1["metrics"]["accuracy"]  # type: ignore[index]
    apply(model_manifest("iris", versions=[DECLARED_V1], aliases={"production": 1}), namespace)
    apply(
        run_manifest(
            "challenger",
            "iris",
            report=report.text,
            evaluation={"metric": "accuracy", "mustBeat": "production"},
        ),
        namespace,
    )
    obj = wait_phase(namespace, "challenger", "Rejected")
    evaluation = obj["status"]["evaluation"]
    assert evaluation["passed"] is False
    assert evaluation["value"] == report.accuracy
    assert evaluation["baselineValue"] == 0.99
    assert "production" in evaluation["message"]
    evaluated = conditions_by_type(obj)["Evaluated"]
    assert evaluated["status"] == "False"
    assert evaluated["reason"] == "GateFailed"

    model = wait_for("the Model's status", lambda: _model_reconciled(namespace, "iris"))
    assert [v["version"] for v in model["versions"]] == [1]
    assert model["versions"][0]["source"] == {"declared": True}
    assert model["aliases"] == {"production": 1}


def test_must_beat_alias_passes_better_run(namespace: str, operator: OperatorProcess) -> None:
    report = reference_report()
    weaker = dict(DECLARED_V1, metrics={"accuracy": 0.5})
    apply(model_manifest("iris", versions=[weaker], aliases={"production": 1}), namespace)
    apply(
        run_manifest(
            "challenger",
            "iris",
            report=report.text,
            evaluation={"metric": "accuracy", "mustBeat": "production"},
        ),
        namespace,
    )
    obj = wait_phase(namespace, "challenger", "Succeeded")
    assert obj["status"]["evaluation"]["passed"] is True
    assert obj["status"]["evaluation"]["baselineValue"] == 0.5
    # Version 1 is the declared one: the run's version comes after it.
    assert obj["status"]["modelVersion"] == 2
    model = _model_status(namespace, "iris")
    assert [v["version"] for v in model["versions"]] == [1, 2]
    assert model["versions"][1]["source"]["uid"] == obj["metadata"]["uid"]
    assert model["phase"] == "Ready"
    assert model["latestVersion"] == 2
    # The declared alias wins over anything automatic.
    assert model["aliases"] == {"production": 1}


# --- 5. many runs of one Model at once -------------------------------------------------------


def test_concurrent_runs_get_distinct_consecutive_versions(
    namespace: str, operator: OperatorProcess
) -> None:
    count = 20
    report = reference_report().text
    names = [f"burst-{i:02d}" for i in range(count)]
    apply(model_manifest("iris"), namespace)
    # Created in one request and running for the same time: they finish together.
    apply(
        as_list(*(run_manifest(n, "iris", report=report, sim={"DURATION": "2s"}) for n in names)),
        namespace,
    )
    runs = {n: wait_phase(namespace, n, "Succeeded", timeout=180) for n in names}

    versions = _model_status(namespace, "iris")["versions"]
    numbers = [v["version"] for v in versions]
    assert sorted(numbers) == list(range(1, count + 1)), numbers
    by_uid = {v["source"]["uid"]: v for v in versions}
    assert len(by_uid) == count, "a run registered more than once"
    assert set(by_uid) == {r["metadata"]["uid"] for r in runs.values()}

    run_versions = [r["status"]["modelVersion"] for r in runs.values()]
    assert len(set(run_versions)) == count, run_versions
    for name, obj in runs.items():
        version = by_uid[obj["metadata"]["uid"]]
        assert obj["status"]["modelVersion"] == version["version"], name
        assert version["source"]["trainingRun"] == name
    assert _model_status(namespace, "iris")["latestVersion"] == count
