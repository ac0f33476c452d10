"""Registration across operator crashes: SIGKILL in the middle of registering, a crash between
the Model's write and the run's, and a Model edited while the operator was down.

These tests run their own operator, restricted to the test's namespace, and pause the session's
(which watches every namespace: two operators on one namespace would race each other)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import apply, get, kubectl, wait_for
from tests.integration.conftest import OperatorProcess
from tests.integration.trainingruns import (
    as_list,
    model_manifest,
    reference_report,
    run_manifest,
    wait_condition,
    wait_phase,
)

pytestmark = pytest.mark.integration

DECLARED_V1 = {
    "version": 1,
    "artifact": {
        "uri": "s3://bucket/iris/imported/model.joblib",
        "digest": "sha256:" + "cd" * 32,
    },
    "metrics": {"accuracy": 0.99},
}


@pytest.fixture
def session_operator_paused(operator: OperatorProcess) -> Iterator[None]:
    operator.stop()
    try:
        yield
    finally:
        operator.start()


@pytest.fixture
def own_operator(
    kubeconfig: str, crds: None, namespace: str, tmp_path: Path, session_operator_paused: None
) -> Iterator[OperatorProcess]:
    """An operator for this test's namespace only, not yet started."""
    proc = OperatorProcess(kubeconfig, tmp_path / "operator.log", "--namespace", namespace)
    yield proc
    proc.kill()


def _versions(namespace: str, model: str) -> list[dict[str, Any]]:
    obj = get("model", model, namespace)
    assert obj is not None
    versions: list[dict[str, Any]] = (obj.get("status") or {}).get("versions") or []
    return versions


def _job_complete(namespace: str, name: str) -> bool:
    job = get("job", name, namespace) or {}
    return any(
        c["type"] == "Complete" and c["status"] == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


def test_sigkill_during_registration_registers_each_run_once(
    namespace: str, own_operator: OperatorProcess
) -> None:
    count = 10
    report = reference_report().text
    names = [f"run-{i}" for i in range(count)]
    apply(model_manifest("iris"), namespace)
    # Staggered ends, half a second apart, so the kill lands while runs are still registering.
    apply(
        as_list(
            *(
                run_manifest(n, "iris", report=report, sim={"DURATION": f"{1 + 0.5 * i:g}s"})
                for i, n in enumerate(names)
            )
        ),
        namespace,
    )
    own_operator.start()

    def partly_registered() -> int | None:
        registered = len(_versions(namespace, "iris"))
        return registered if 1 <= registered < count else None

    at_kill = wait_for("the first registrations", partly_registered, timeout=60, interval=0.05)
    own_operator.kill()
    assert len(_versions(namespace, "iris")) < count, "the kill came too late"

    own_operator.start()
    runs = {n: wait_phase(namespace, n, "Succeeded", timeout=90) for n in names}
    versions = _versions(namespace, "iris")
    numbers = sorted(v["version"] for v in versions)
    assert numbers == list(range(1, count + 1)), f"killed at {at_kill} version(s): {numbers}"
    uids = [v["source"]["uid"] for v in versions]
    assert sorted(uids) == sorted(r["metadata"]["uid"] for r in runs.values())
    by_uid = {v["source"]["uid"]: v["version"] for v in versions}
    assert {r["status"]["modelVersion"] for r in runs.values()} == set(numbers)
    for obj in runs.values():
        assert obj["status"]["modelVersion"] == by_uid[obj["metadata"]["uid"]]


def test_version_written_before_crash_is_adopted_not_registered_again(
    namespace: str, own_operator: OperatorProcess
) -> None:
    report = reference_report()
    apply(model_manifest("iris"), namespace)
    apply(run_manifest("adopt", "iris", report=report.text, sim={"DURATION": "2s"}), namespace)
    own_operator.start()
    wait_condition("trainingrun", namespace, "adopt", "JobCreated", "True")
    own_operator.kill()
    wait_for("the Job to complete", lambda: _job_complete(namespace, "adopt"))
    obj = get("trainingrun", "adopt", namespace)
    assert obj is not None
    assert "modelVersion" not in obj["status"]

    # As if the operator died between its two writes: the Model has the run's version, the run
    # does not know it yet.
    entry = {
        "version": 1,
        "artifact": report.data["artifact"],
        "metrics": report.metrics,
        "source": {"trainingRun": "adopt", "uid": obj["metadata"]["uid"]},
    }
    kubectl(
        "patch",
        "model",
        "iris",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"versions": [entry]}}),
    )
    own_operator.start()
    obj = wait_phase(namespace, "adopt", "Succeeded")
    assert obj["status"]["modelVersion"] == 1
    versions = _versions(namespace, "iris")
    assert [v["version"] for v in versions] == [1]
    assert versions[0]["source"]["uid"] == obj["metadata"]["uid"]


def test_model_edited_while_operator_down(namespace: str, own_operator: OperatorProcess) -> None:
    """Declared versions and aliases added while the operator was down count at once: the gate
    sees the new alias, and a run's version is numbered after the declared ones."""
    report = reference_report()
    assert report.accuracy < DECLARED_V1["metrics"]["accuracy"]  # type: ignore[index]
    apply(model_manifest("iris"), namespace)
    apply(
        as_list(
            run_manifest(
                "gated",
                "iris",
                report=report.text,
                sim={"DURATION": "2s"},
                evaluation={"metric": "accuracy", "mustBeat": "production"},
            ),
            run_manifest("plain", "iris", report=report.text, sim={"DURATION": "2s"}),
        ),
        namespace,
    )
    own_operator.start()
    for name in ("gated", "plain"):
        wait_condition("trainingrun", namespace, name, "JobCreated", "True")
    own_operator.kill()
    apply(model_manifest("iris", versions=[DECLARED_V1], aliases={"production": 1}), namespace)
    for name in ("gated", "plain"):
        wait_for(f"Job {name} to complete", lambda name=name: _job_complete(namespace, name))

    own_operator.start()
    gated = wait_phase(namespace, "gated", "Rejected")
    assert gated["status"]["evaluation"]["baselineValue"] == 0.99
    plain = wait_phase(namespace, "plain", "Succeeded")
    assert plain["status"]["modelVersion"] == 2

    def model_status() -> dict[str, Any] | None:
        obj = get("model", "iris", namespace)
        status: dict[str, Any] = (obj or {}).get("status") or {}
        return status if status.get("latestVersion") == 2 else None

    status = wait_for("the Model's status", model_status)
    assert status["phase"] == "Ready", status.get("conditions")
    assert [v["version"] for v in status["versions"]] == [1, 2]
    assert status["versions"][0]["source"] == {"declared": True}
    assert status["aliases"] == {"production": 1}
