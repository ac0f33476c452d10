"""The data validation gate in the TrainingRun reconciler: the `validate` init container's report
(its termination message) decides whether the run is Rejected before training, and its
statistics become the version's baseline when training reports none."""

from __future__ import annotations

from typing import Any

import pytest

from modelwerk import kinds
from modelwerk.validate import checks, wire
from tests.reconcile.test_trainingrun import job, pod, terminated
from tests.reconcile.world import World, model, report, run, summary

STATUS = "status TrainingRun run-1"
VALIDATION = {
    "datasets": [
        {"name": "train", "rows": {"min": 100}, "columns": [{"name": "x", "type": "float"}]}
    ]
}
DATASETS = [{"name": "train", "uri": "s3://data/train.csv"}]


def validation_report(passed: bool) -> str:
    found = [
        checks.Check("train/rows", passed, "150" if passed else "12"),
        checks.Check("train/x/present", True, "present"),
        checks.Check("train/x/type", True, "float"),
    ]
    baseline = {"x": {"mean": 1.5, "std": 0.5}} if passed else None
    summaries = [{"name": "train", "format": "csv", "rows": 150 if passed else 12}]
    return wire.serialize(wire.build(found, summaries, baseline))


def validated_pod(phase: str, init: dict[str, Any], **train_state: Any) -> dict[str, Any]:
    body = pod(phase=phase, **train_state)
    body["status"]["initContainerStatuses"] = [
        {"name": "validate", "imageID": "trainer@sha256:" + "c" * 64, "state": init}
    ]
    return body


def gated_run() -> dict[str, Any]:
    return run(datasets=DATASETS, validation=VALIDATION)


async def test_refused_data_rejects_the_run_before_training() -> None:
    world = World()
    failed = terminated(validation_report(False), exit_code=3, reason="Error")
    failed["terminated"]["finishedAt"] = "2026-01-01T00:00:07Z"
    world.given(
        model(),
        gated_run(),
        job(active=0, failed=1),  # the Job controller has not yet applied its failure policy
        validated_pod("Failed", failed, waiting={"reason": "PodInitializing"}),
    )
    _, writes = await world.reconcile(kinds.TRAININGRUN, "run-1")
    assert summary(writes) == [STATUS, "event TrainingRun run-1 Rejected"]
    status = world.status(kinds.TRAININGRUN, "run-1")
    assert status["phase"] == "Rejected"
    assert world.condition(kinds.TRAININGRUN, "run-1", "Validated") == (
        "False",
        "DataValidationFailed",
    )
    assert world.condition(kinds.TRAININGRUN, "run-1", "Running") == (
        "False",
        "DataValidationFailed",
    )
    assert status["validation"]["message"] == ("data validation failed: train/rows (observed 12)")
    assert status["validation"]["checks"][0] == {
        "name": "train/rows",
        "passed": False,
        "observed": "12",
        "expected": ">= 100",
    }
    assert "versions" not in world.status(kinds.MODEL, "iris")
    # The run ended when its validator did: a finished run's record does not change later.
    assert status["completionTime"] == "2026-01-01T00:00:07Z"
    # The Job's failure arriving later changes nothing; nor does a second look.
    world.given(job(condition="Failed", failed=1))
    _, writes = await world.reconcile(kinds.TRAININGRUN, "run-1")
    assert writes == []
    _, writes = await world.reconcile(kinds.TRAININGRUN, "run-1")
    assert writes == []
    assert world.status(kinds.TRAININGRUN, "run-1")["phase"] == "Rejected"


async def test_the_verdict_stands_once_the_pods_are_gone() -> None:
    world = World()
    failed = terminated(validation_report(False), exit_code=3, reason="Error")
    world.given(model(), gated_run(), job(condition="Failed", failed=1))
    world.given(validated_pod("Failed", failed, waiting={"reason": "PodInitializing"}))
    await world.reconcile(kinds.TRAININGRUN, "run-1")
    world.kube.objects = {k: v for k, v in world.kube.objects.items() if k[1] != "Pod"}
    world.sync()
    _, writes = await world.reconcile(kinds.TRAININGRUN, "run-1")
    assert writes == []
    assert world.status(kinds.TRAININGRUN, "run-1")["phase"] == "Rejected"


async def test_passed_validation_trains_and_its_statistics_are_the_baseline() -> None:
    world = World()
    done = terminated(validation_report(True))
    world.given(model(), gated_run(), job(active=1), validated_pod("Running", done, running={}))
    await world.reconcile(kinds.TRAININGRUN, "run-1")
    assert world.status(kinds.TRAININGRUN, "run-1")["phase"] == "Running"
    assert world.condition(kinds.TRAININGRUN, "run-1", "Validated") == ("True", "Passed")

    world.given(
        job(condition="Complete", succeeded=1),
        validated_pod("Succeeded", done, **terminated(report())),  # no baseline of its own
    )
    await world.reconcile(kinds.TRAININGRUN, "run-1")
    status = world.status(kinds.TRAININGRUN, "run-1")
    assert status["phase"] == "Succeeded"
    expected = {"features": {"x": {"mean": 1.5, "std": 0.5}}, "featureOrder": ["x"]}
    assert status["baseline"] == expected
    (version,) = world.status(kinds.MODEL, "iris")["versions"]
    assert version["baseline"] == expected


@pytest.mark.parametrize("reason", ["ImagePullBackOff", "CreateContainerConfigError"])
async def test_a_stuck_validate_container_is_reported(reason: str) -> None:
    world = World()
    world.given(
        model(),
        gated_run(),
        job(active=1),
        validated_pod(
            "Pending", {"waiting": {"reason": reason}}, waiting={"reason": "PodInitializing"}
        ),
    )
    await world.reconcile(kinds.TRAININGRUN, "run-1")
    assert world.condition(kinds.TRAININGRUN, "run-1", "Running") == ("False", reason)
