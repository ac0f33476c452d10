"""The TrainingRun reconcile's pure helpers: the evaluation gate, lineage and the run's TTL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from modelwerk.api.common import Lineage
from modelwerk.api.trainingrun import EvaluationResult, TrainingRun
from modelwerk.builders.job import hyperparameters_hash
from modelwerk.evaluation import evaluate, lineage
from modelwerk.jobstate import ttl_remaining

DIGEST = "sha256:" + "cd" * 32


def run(**spec: Any) -> TrainingRun:
    body = {
        "apiVersion": "modelwerk.io/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {"name": "iris-7", "namespace": "ml", "uid": "uid-7"},
        "spec": {"model": "iris", "image": "ghcr.io/modelwerk/iris-trainer:0.1.0", **spec},
    }
    return TrainingRun.from_body(body)


def gate(**evaluation: Any) -> TrainingRun:
    return run(evaluation={"metric": "accuracy", **evaluation})


def model_status(aliases: dict[str, int], **metrics_by_version: dict[str, float]) -> dict[str, Any]:
    versions = [
        {
            "version": int(name.removeprefix("v")),
            "artifact": {"uri": f"s3://m/{name}"},
            "metrics": m,
        }
        for name, m in metrics_by_version.items()
    ]
    return {"versions": versions, "aliases": aliases}


def check_shape(verdict: dict[str, Any]) -> None:
    """The verdict is written as status.evaluation: it must parse as an EvaluationResult."""
    parsed = EvaluationResult.model_validate(verdict)
    assert parsed.passed is verdict["passed"]


# --- evaluate: no gate, threshold, missing metric -------------------------------------------


def test_no_gate_passes() -> None:
    verdict = evaluate(run(), {"accuracy": 0.1}, None)
    assert verdict["passed"] is True
    assert verdict["message"] == "no evaluation gate"


@pytest.mark.parametrize(
    ("value", "passed"), [(0.95, True), (0.9, True), (0.8999, False), (0.0, False)]
)
def test_threshold_for_max(value: float, passed: bool) -> None:
    verdict = evaluate(gate(direction="max", threshold=0.9), {"accuracy": value}, None)
    check_shape(verdict)
    assert verdict["passed"] is passed
    assert verdict["metric"] == "accuracy"
    assert verdict["direction"] == "max"
    assert verdict["threshold"] == 0.9
    assert verdict["value"] == value
    assert "baselineValue" not in verdict
    if not passed:
        assert "threshold >= 0.9" in verdict["message"]


@pytest.mark.parametrize(
    ("value", "passed"), [(0.05, True), (0.1, True), (0.1001, False), (3.0, False)]
)
def test_threshold_for_min(value: float, passed: bool) -> None:
    verdict = evaluate(
        run(evaluation={"metric": "loss", "direction": "min", "threshold": 0.1}),
        {"loss": value},
        None,
    )
    check_shape(verdict)
    assert verdict["passed"] is passed
    assert verdict["direction"] == "min"
    if not passed:
        assert "threshold <= 0.1" in verdict["message"]


def test_no_threshold_passes_any_value() -> None:
    verdict = evaluate(gate(), {"accuracy": 0.01}, None)
    assert verdict["passed"] is True
    assert "threshold" not in verdict
    assert verdict["value"] == 0.01


def test_missing_metric_fails_and_lists_what_was_reported() -> None:
    verdict = evaluate(gate(threshold=0.9), {"f1": 0.99, "auc": 0.97}, None)
    check_shape(verdict)
    assert verdict["passed"] is False
    assert "value" not in verdict
    assert "'accuracy' was not reported" in verdict["message"]
    assert "auc, f1" in verdict["message"]


def test_missing_metric_with_nothing_reported() -> None:
    verdict = evaluate(gate(), {}, None)
    assert verdict["passed"] is False
    assert "(reported: none)" in verdict["message"]


# --- evaluate: mustBeat ---------------------------------------------------------------------


PRODUCTION_AT_0_9 = model_status({"production": 2}, v1={"accuracy": 0.7}, v2={"accuracy": 0.9})


@pytest.mark.parametrize(("value", "passed"), [(0.95, True), (0.9, False), (0.85, False)])
def test_must_beat_the_alias_version_strictly(value: float, passed: bool) -> None:
    verdict = evaluate(gate(mustBeat="production"), {"accuracy": value}, PRODUCTION_AT_0_9)
    check_shape(verdict)
    assert verdict["passed"] is passed
    assert verdict["baselineValue"] == 0.9
    assert "version 2" in verdict["message"]
    assert ("beats production" in verdict["message"]) is passed
    assert ("does not beat production" in verdict["message"]) is not passed


def test_must_beat_with_min_direction() -> None:
    status = model_status({"production": 1}, v1={"loss": 0.2})
    lower = evaluate(
        run(evaluation={"metric": "loss", "direction": "min", "mustBeat": "production"}),
        {"loss": 0.1},
        status,
    )
    higher = evaluate(
        run(evaluation={"metric": "loss", "direction": "min", "mustBeat": "production"}),
        {"loss": 0.3},
        status,
    )
    assert lower["passed"] is True
    assert higher["passed"] is False
    assert lower["baselineValue"] == higher["baselineValue"] == 0.2


@pytest.mark.parametrize(
    "status",
    [
        None,
        {},
        model_status({}, v1={"accuracy": 0.99}),
        model_status({"candidate": 1}, v1={"accuracy": 0.99}),
    ],
)
def test_must_beat_without_the_alias_set_passes_on_the_threshold_alone(
    status: dict[str, Any] | None,
) -> None:
    verdict = evaluate(gate(threshold=0.5, mustBeat="production"), {"accuracy": 0.6}, status)
    check_shape(verdict)
    assert verdict["passed"] is True
    assert "baselineValue" not in verdict


def test_must_beat_an_alias_whose_version_lacks_the_metric_passes() -> None:
    status = model_status({"production": 1}, v1={"f1": 0.99})
    verdict = evaluate(gate(mustBeat="production"), {"accuracy": 0.6}, status)
    assert verdict["passed"] is True
    assert "baselineValue" not in verdict


def test_threshold_is_checked_before_must_beat() -> None:
    status = model_status({"production": 1}, v1={"accuracy": 0.1})
    verdict = evaluate(gate(threshold=0.9, mustBeat="production"), {"accuracy": 0.5}, status)
    assert verdict["passed"] is False
    assert "threshold" in verdict["message"]
    assert "baselineValue" not in verdict


def test_threshold_and_must_beat_both_met() -> None:
    verdict = evaluate(
        gate(threshold=0.8, mustBeat="production"), {"accuracy": 0.95}, PRODUCTION_AT_0_9
    )
    check_shape(verdict)
    assert verdict["passed"] is True
    assert verdict["threshold"] == 0.8
    assert verdict["baselineValue"] == 0.9
    assert verdict["value"] == 0.95


# --- lineage --------------------------------------------------------------------------------


def test_lineage_prefers_the_image_as_run() -> None:
    spec = {"hyperparameters": {"C": "1.0"}, "seed": 42}
    pinned = "ghcr.io/modelwerk/iris-trainer@" + DIGEST
    assert lineage(run(**spec), pinned)["image"] == pinned
    assert lineage(run(**spec), None)["image"] == "ghcr.io/modelwerk/iris-trainer:0.1.0"
    assert lineage(run(**spec), "")["image"] == "ghcr.io/modelwerk/iris-trainer:0.1.0"


def test_lineage_full() -> None:
    the_run = run(
        hyperparameters={"max_iter": "200", "C": "1.0"},
        seed=42,
        datasets=[
            {"name": "train", "uri": "s3://data/train.csv", "digest": DIGEST},
            {"name": "eval", "uri": "s3://data/eval.csv"},
        ],
        code={"repository": "https://github.com/org/repo", "revision": "abc123"},
    )
    result = lineage(the_run, "img@" + DIGEST)
    assert result == {
        "image": "img@" + DIGEST,
        "hyperparametersHash": hyperparameters_hash({"C": "1.0", "max_iter": "200"}),
        "datasets": [
            {"name": "train", "uri": "s3://data/train.csv", "digest": DIGEST},
            {"name": "eval", "uri": "s3://data/eval.csv"},
        ],
        "code": {"repository": "https://github.com/org/repo", "revision": "abc123"},
        "seed": 42,
    }
    Lineage.model_validate(result)


def test_lineage_minimal_omits_code_and_seed_but_keeps_seed_zero() -> None:
    minimal = lineage(run(), None)
    assert "code" not in minimal
    assert "seed" not in minimal
    assert minimal["datasets"] == []
    assert minimal["hyperparametersHash"] == hyperparameters_hash({})
    assert lineage(run(seed=0), None)["seed"] == 0


def test_lineage_of_a_gang_records_workers_attempt_and_engine() -> None:
    gang = run(workers={"replicas": 4, "engine": "jobSet"})
    result = lineage(gang, None, 2, "JobSet")
    assert (result["workers"], result["attempt"], result["engine"]) == (4, 2, "JobSet")
    Lineage.model_validate(result)
    assert "engine" not in lineage(gang, None, 0)  # not known yet: not guessed from spec
    single = lineage(run(workers={"replicas": 1}), None, 0, "IndexedJob")
    assert not {"workers", "attempt", "engine"} & set(single)


def test_lineage_hash_tracks_hyperparameters() -> None:
    a = lineage(run(hyperparameters={"C": "1.0"}), None)["hyperparametersHash"]
    b = lineage(run(hyperparameters={"C": "2.0"}), None)["hyperparametersHash"]
    assert a != b


# --- ttl_remaining --------------------------------------------------------------------------

FINISHED = "2024-05-01T10:00:00Z"
FINISHED_AT = dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)


def body(ttl: int | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"image": "busybox"}
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    return {"metadata": {"name": "r", "namespace": "ml", "uid": "u"}, "spec": spec}


def after(seconds: float) -> dt.datetime:
    return FINISHED_AT + dt.timedelta(seconds=seconds)


def test_no_ttl_never_expires() -> None:
    status = {"phase": "Succeeded", "completionTime": FINISHED}
    assert ttl_remaining(body(None), status, after(10**7)) is None


@pytest.mark.parametrize("phase", [None, "Pending", "Running"])
def test_unfinished_runs_never_expire(phase: str | None) -> None:
    status = {"phase": phase, "completionTime": FINISHED}
    assert ttl_remaining(body(60), status, after(10**7)) is None


def test_registered_runs_never_expire() -> None:
    status = {"phase": "Succeeded", "completionTime": FINISHED, "modelVersion": 3}
    assert ttl_remaining(body(60), status, after(10**7)) is None


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Rejected"])
def test_remaining_seconds_from_completion(phase: str) -> None:
    status = {"phase": phase, "completionTime": FINISHED}
    assert ttl_remaining(body(3600), status, after(600)) == pytest.approx(3000.0)


def test_negative_when_due() -> None:
    status = {"phase": "Rejected", "completionTime": FINISHED}
    remaining = ttl_remaining(body(60), status, after(90))
    assert remaining == pytest.approx(-30.0)


def test_zero_ttl_is_due_at_completion() -> None:
    status = {"phase": "Succeeded", "completionTime": FINISHED}
    remaining = ttl_remaining(body(0), status, FINISHED_AT)
    assert remaining is not None
    assert remaining <= 0


def test_failed_run_without_completion_time_uses_the_failed_condition() -> None:
    status = {
        "phase": "Failed",
        "conditions": [
            {"type": "Failed", "status": "True", "lastTransitionTime": "2024-05-01T10:05:00Z"}
        ],
    }
    assert ttl_remaining(body(600), status, after(300)) == pytest.approx(600.0)


def test_default_clock_is_now() -> None:
    long_ago = {"phase": "Succeeded", "completionTime": "2000-01-01T00:00:00Z"}
    remaining = ttl_remaining(body(60), long_ago)
    assert remaining is not None
    assert remaining < -(10**8)


def test_run_failed_before_its_job_existed_still_expires() -> None:
    # The status _reconcile writes when admission refuses the Job (k8s.Invalid).
    status = {
        "phase": "Failed",
        "conditions": [
            {"type": "Accepted", "status": "True", "lastTransitionTime": FINISHED},
            {
                "type": "JobCreated",
                "status": "False",
                "reason": "JobRejected",
                "lastTransitionTime": FINISHED,
            },
        ],
    }
    assert ttl_remaining(body(60), status, after(3600)) is not None
