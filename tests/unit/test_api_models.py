"""The pydantic API models: samples, defaults, camelCase round trips, and rejected specs."""

from __future__ import annotations

import copy
import pathlib
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from modelwerk.api import (
    Condition,
    Deployment,
    DeploymentSpec,
    DeploymentStatus,
    Direction,
    Framework,
    Model,
    ModelStatus,
    ServingRuntime,
    TrainingRun,
    TrainingRunPhase,
    TrainingRunSpec,
    TrainingRunStatus,
)
from modelwerk.api.common import parse_duration
from modelwerk.api.trainingrun import WorkersEngine
from modelwerk.constants import API_VERSION

SAMPLES = pathlib.Path(__file__).resolve().parents[2] / "manifests" / "samples"
DIGEST = "sha256:" + "ab" * 32


def sample(kind: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((SAMPLES / f"{kind}.yaml").read_text("utf-8"))
    return loaded


# --- samples --------------------------------------------------------------------------------


def test_model_sample() -> None:
    model = Model.from_body(sample("model"))
    assert model.api_version == API_VERSION
    assert model.metadata.name == "iris"
    assert model.spec.framework is Framework.SKLEARN
    assert model.spec.promotion is not None
    assert model.spec.promotion.alias == "candidate"
    assert model.spec.promotion.direction is Direction.MAX
    assert model.spec.retrain is not None
    assert model.spec.retrain.template.image == "ghcr.io/modelwerk/iris-trainer:0.1.0"
    assert model.spec.retrain.cooldown == "6h"
    assert model.spec.retrain.on_alerts == ["ModelwerkDataDrift"]
    assert model.status.versions == []


def test_distributed_trainingrun_sample() -> None:
    run = TrainingRun.from_body(sample("trainingrun-distributed"))
    assert run.spec.workers is not None
    assert run.spec.workers.replicas == 4
    assert run.spec.workers.port == 29500
    assert run.spec.distributed()
    assert run.spec.validation is None  # single-pod only
    assert run.spec.workers.engine == WorkersEngine.INDEXED_JOB


def test_jobset_trainingrun_sample() -> None:
    run = TrainingRun.from_body(sample("trainingrun-jobset"))
    assert run.spec.workers is not None
    assert run.spec.workers.engine == WorkersEngine.JOB_SET
    assert run.spec.distributed()
    # Worker i's hostname `<run>-workers-0-<i>` stays a DNS label (63 characters).
    assert len(f"{run.metadata.name}-workers-0-63") <= 63


def test_queued_trainingrun_sample() -> None:
    run = TrainingRun.from_body(sample("trainingrun-queued"))
    assert run.spec.queue_name == "team-a"
    assert run.spec.resources is not None  # what Kueue counts against the quota
    assert not run.spec.distributed()


def test_trainingrun_sample() -> None:
    run = TrainingRun.from_body(sample("trainingrun"))
    assert run.metadata.name == "iris-1"
    spec = run.spec
    assert spec.model == "iris"
    assert spec.image == "ghcr.io/modelwerk/iris-trainer:0.1.0"
    assert spec.command == ["python", "-m", "modelwerk.trainers.iris"]
    assert spec.seed == 42
    assert spec.hyperparameters == {"C": "1.0", "max_iter": "200"}
    assert spec.evaluation is not None
    assert spec.evaluation.metric == "accuracy"
    assert spec.evaluation.direction is Direction.MAX
    assert spec.evaluation.threshold == 0.9
    assert spec.resources is not None
    assert spec.resources.requests == {"cpu": "500m", "memory": "512Mi"}
    assert run.status.phase is None


def test_deployment_sample() -> None:
    deployment = Deployment.from_body(sample("deployment"))
    spec = deployment.spec
    assert deployment.metadata.name == "iris"
    assert spec.model == "iris"
    assert spec.alias == "production"
    assert spec.version is None
    assert spec.runtime is ServingRuntime.NATIVE
    assert spec.monitoring.labels == {"team": "ml"}
    assert spec.monitoring.drift is not None
    assert spec.monitoring.drift.threshold == 3.0
    assert spec.guard is not None
    assert (spec.guard.window, spec.guard.max_latency_p99_ms) == ("10m", 250)


def test_from_body_accepts_read_only_mappings() -> None:
    # kopf hands over a Body: nested mappings that are not dicts.
    body = sample("deployment")
    frozen = MappingProxyType(
        {
            **body,
            "spec": MappingProxyType(body["spec"]),
            "metadata": MappingProxyType({"name": "x"}),
        }
    )
    assert Deployment.from_body(frozen).metadata.name == "x"


def test_metadata_keeps_unknown_fields() -> None:
    body = sample("model")
    body["metadata"] |= {"uid": "u-1", "generation": 3, "managedFields": [{"manager": "kubectl"}]}
    model = Model.from_body(body)
    assert model.metadata.uid == "u-1"
    assert model.metadata.generation == 3


# --- defaults -------------------------------------------------------------------------------


def test_trainingrun_defaults() -> None:
    spec = TrainingRunSpec(image="busybox")
    assert spec.backoff_limit == 2
    assert spec.suspend is False
    assert spec.seed is None
    assert spec.command == []
    assert spec.args == []
    assert spec.env == []
    assert spec.hyperparameters == {}
    assert spec.datasets == []
    assert spec.evaluation is None
    assert spec.output is None


def test_deployment_defaults() -> None:
    spec = DeploymentSpec.model_validate({"model": "iris", "version": 3})
    assert spec.runtime is ServingRuntime.AUTO
    assert spec.replicas == 1
    assert spec.monitoring.enabled is True
    assert spec.autoscaling is None
    assert spec.canary is None
    assert spec.pdb is None
    canary = DeploymentSpec.model_validate(
        {"model": "iris", "version": 3, "canary": {"alias": "candidate", "analysis": {}}}
    ).canary
    assert canary is not None
    assert canary.analysis is not None
    assert canary.traffic_percent == 10
    assert canary.analysis.interval == "1m"
    assert canary.analysis.steps == [10, 50, 100]
    autoscaling = DeploymentSpec.model_validate(
        {"model": "iris", "alias": "production", "autoscaling": {"maxReplicas": 4}}
    ).autoscaling
    assert autoscaling is not None
    assert (autoscaling.min_replicas, autoscaling.target_cpu_utilization_percentage) == (1, 80)


def test_model_defaults() -> None:
    model = Model.from_body({"metadata": {"name": "m"}})
    assert model.spec.versions == []
    assert model.spec.aliases == {}
    retrain = Model.from_body(
        {"metadata": {"name": "m"}, "spec": {"retrain": {"template": {"image": "x"}}}}
    ).spec.retrain
    assert retrain is not None
    assert (retrain.cooldown, retrain.max_concurrent, retrain.schedule) == ("6h", 1, None)


def test_defaults_are_not_shared_between_instances() -> None:
    a = DeploymentSpec.model_validate(
        {"model": "m", "version": 1, "canary": {"version": 2, "analysis": {}}}
    )
    b = DeploymentSpec.model_validate(
        {"model": "m", "version": 1, "canary": {"version": 2, "analysis": {}}}
    )
    assert a.canary is not None
    assert a.canary.analysis is not None
    assert b.canary is not None
    assert b.canary.analysis is not None
    a.canary.analysis.steps.append(101)
    assert b.canary.analysis.steps == [10, 50, 100]


# --- camelCase round trips ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "kind"), [(Model, "model"), (TrainingRun, "trainingrun"), (Deployment, "deployment")]
)
def test_spec_round_trip(cls: Any, kind: str) -> None:
    body = sample(kind)
    parsed = cls.from_body(body)
    assert parsed.spec.model_dump(by_alias=True, exclude_unset=True, mode="json") == body["spec"]
    again = cls.from_body({**body, "spec": parsed.spec.model_dump(mode="json")})
    assert again.spec == parsed.spec


def test_snake_case_names_and_camel_case_json() -> None:
    spec = TrainingRunSpec(
        image="x",
        service_account_name="trainer",
        ttl_seconds_after_finished=60,
        active_deadline_seconds=600,
    )
    dumped = spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert dumped["serviceAccountName"] == "trainer"
    assert dumped["ttlSecondsAfterFinished"] == 60
    assert dumped["activeDeadlineSeconds"] == 600
    assert dumped["backoffLimit"] == 2
    assert "service_account_name" not in dumped
    hpa = DeploymentSpec.model_validate(
        {"model": "m", "version": 1, "autoscaling": {"maxReplicas": 3}}
    ).model_dump(mode="json")["autoscaling"]
    assert hpa["targetCPUUtilizationPercentage"] == 80


MODEL_STATUS: dict[str, Any] = {
    "phase": "Ready",
    "observedGeneration": 2,
    "latestVersion": 4,
    "aliases": {"production": 1, "candidate": 4},
    "versions": [
        {
            "version": 4,
            "artifact": {"uri": "pvc://models/iris/iris-7", "digest": DIGEST},
            "metrics": {"accuracy": 0.97},
            "baseline": {"features": {"sepal_length": {"mean": 5.84, "std": 0.83}}},
            "source": {"trainingRun": "iris-7", "uid": "0b1c"},
            "lineage": {
                "image": f"ghcr.io/modelwerk/iris-trainer@{DIGEST}",
                "code": {"repository": "https://github.com/acme/iris", "revision": "3f2c1e"},
                "datasets": [{"name": "train", "uri": "s3://data/iris.csv", "digest": DIGEST}],
                "hyperparametersHash": DIGEST,
                "seed": 42,
            },
            "registeredAt": "2026-11-26T10:00:00Z",
        }
    ],
    "retrain": {
        "triggers": [
            {
                "at": "2026-11-27T03:00:00Z",
                "reason": "Alert",
                "alert": "ModelwerkDataDrift",
                "trainingRun": "iris-8",
            }
        ]
    },
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "VersionsRegistered",
            "message": "4 versions",
            "lastTransitionTime": "2026-11-26T10:00:00Z",
            "observedGeneration": 2,
        }
    ],
}

TRAININGRUN_STATUS: dict[str, Any] = {
    "phase": "Rejected",
    "jobName": "iris-7",
    "startTime": "2026-11-26T09:00:00Z",
    "completionTime": "2026-11-26T09:05:00Z",
    "attempts": 1,
    "metrics": {"accuracy": 0.85},
    "artifact": {"uri": "pvc://models/iris/iris-7", "digest": DIGEST},
    "evaluation": {
        "metric": "accuracy",
        "direction": "max",
        "threshold": 0.9,
        "value": 0.85,
        "baselineValue": 0.93,
        "passed": False,
        "message": "accuracy 0.85 < threshold 0.9",
    },
    "reproducibility": {
        "image": f"x@{DIGEST}",
        "datasets": [],
        "hyperparametersHash": DIGEST,
        "seed": 42,
    },
    "conditions": [{"type": "Evaluated", "status": "False", "reason": "BelowThreshold"}],
}

DEPLOYMENT_STATUS: dict[str, Any] = {
    "phase": "Progressing",
    "runtime": "native",
    "currentVersion": 4,
    "canary": {"version": 5, "trafficPercent": 10, "step": 0},
    "endpoint": "http://iris.ml-team.svc:8000",
    "replicas": 2,
    "readyReplicas": 2,
    "lineage": {"trainingRun": "iris-7", "image": f"x@{DIGEST}", "datasets": []},
    "rejectedVersions": [3],
}


@pytest.mark.parametrize(
    ("cls", "status"),
    [
        (ModelStatus, MODEL_STATUS),
        (TrainingRunStatus, TRAININGRUN_STATUS),
        (DeploymentStatus, DEPLOYMENT_STATUS),
    ],
)
def test_status_round_trip(cls: Any, status: dict[str, Any]) -> None:
    parsed = cls.model_validate(status)
    dumped = parsed.model_dump(by_alias=True, exclude_none=True, mode="json")
    for key, value in status.items():
        assert dumped[key] == value, key
    assert parsed.to_dict() == dumped


def test_status_types() -> None:
    status = TrainingRunStatus.model_validate(TRAININGRUN_STATUS)
    assert status.phase is TrainingRunPhase.REJECTED
    assert str(status.phase) == "Rejected"
    assert status.start_time == datetime(2026, 11, 26, 9, tzinfo=UTC)
    assert status.evaluation is not None
    assert status.evaluation.passed is False
    model = ModelStatus.model_validate(MODEL_STATUS)
    assert model.versions[0].source is not None
    assert model.versions[0].source.training_run == "iris-7"
    assert model.versions[0].baseline is not None
    assert model.versions[0].baseline.features["sepal_length"].std == 0.83


def test_status_tolerates_unknown_fields() -> None:
    assert TrainingRunStatus.model_validate({"phase": "Running", "kopf": {}}).phase == "Running"


def test_empty_status_dumps_empty() -> None:
    assert DeploymentStatus().to_dict() == {"conditions": [], "rejectedVersions": []}


def test_condition_from_python() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    condition = Condition(type="Ready", status="True", reason="Ok", last_transition_time=when)
    assert condition.to_dict() == {
        "type": "Ready",
        "status": "True",
        "reason": "Ok",
        "lastTransitionTime": "2026-01-02T03:04:05Z",
    }
    with pytest.raises(ValidationError):
        Condition.model_validate({"type": "Ready", "status": "Yes"})


# --- rejections -----------------------------------------------------------------------------


def _reject(cls: Any, body: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        cls.model_validate(body)


def _run(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = copy.deepcopy(sample("trainingrun")["spec"])
    spec.update(changes)
    return spec


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"securityContext": {"privileged": True}}, "securityContext"),
        ({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}, "volumes"),
        ({"hostNetwork": True}, "hostNetwork"),
        ({"nodeName": "n1"}, "nodeName"),
        ({"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s"}}}]}, "valueFrom"),
        ({"env": [{"name": "MODELWERK_OUTPUT", "value": "x"}]}, "reserved"),
        ({"env": [{"name": "1A", "value": "x"}]}, "pattern"),
        ({"serviceAccountName": "other-ns:sa"}, "pattern"),
        ({"serviceAccountName": "a" * 254}, "at most 253"),
        ({"model": "Iris"}, "pattern"),
        ({"model": "a" * 64}, "at most 63"),
        ({"hyperparameters": {"bad key": "1"}}, "hyperparameter"),
        ({"hyperparameters": {f"k{i}": "1" for i in range(65)}}, "at most 64"),
        ({"seed": -1}, "greater than or equal to 0"),
        ({"seed": 2**32}, "less than or equal to"),
        ({"backoffLimit": -1}, "greater than or equal to 0"),
        ({"image": "has space"}, "pattern"),
        ({"image": ""}, "at least 1"),
        ({"datasets": [{"name": "train", "uri": "s3://a/b", "digest": "md5:00"}]}, "pattern"),
        ({"datasets": [{"name": "train", "uri": "no-scheme"}]}, "pattern"),
        ({"resources": {"limits": {"cpu": "2 cores"}}}, "pattern"),
        ({"resources": {"limits": {"bad name": "1"}}}, "resource name"),
        ({"evaluation": {"metric": "accuracy", "direction": "up"}}, "direction"),
        ({"evaluation": {"metric": "accuracy", "threshold": float("inf")}}, "finite"),
        ({"evaluation": {"metric": "accuracy", "mustBeat": "Production"}}, "pattern"),
        ({"args": ["x"] * 65}, "at most 64"),
    ],
)
def test_trainingrun_rejects(changes: dict[str, Any], match: str) -> None:
    _reject(TrainingRunSpec, _run(**changes), match)


def test_trainingrun_accepts_int_quantities_and_extended_resources() -> None:
    spec = TrainingRunSpec.model_validate(
        _run(resources={"limits": {"cpu": 2, "nvidia.com/gpu": 1, "memory": "1.5Gi"}})
    )
    assert spec.resources is not None
    assert spec.resources.limits == {"cpu": 2, "nvidia.com/gpu": 1, "memory": "1.5Gi"}


def _deployment(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(sample("deployment")["spec"])
    spec.update(changes)
    return {k: v for k, v in spec.items() if v is not None}


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (_deployment(version=3), "exactly one of version or alias"),
        (_deployment(alias=None), "exactly one of version or alias"),
        (_deployment(canary={"trafficPercent": 5}), "exactly one of version or alias"),
        (_deployment(canary={"alias": "c", "version": 2}), "exactly one of version or alias"),
        (_deployment(canary={"alias": "c", "trafficPercent": 101}), "less than or equal to 100"),
        (_deployment(canary={"alias": "c", "trafficPercent": -1}), "greater than or equal to 0"),
        (_deployment(canary={"alias": "c", "analysis": {"steps": [50, 10]}}), "increasing"),
        (_deployment(canary={"alias": "c", "analysis": {"steps": [10, 10]}}), "increasing"),
        (_deployment(canary={"alias": "c", "analysis": {"steps": [0, 10]}}), "greater than"),
        (_deployment(canary={"alias": "c", "analysis": {"steps": [10, 101]}}), "less than"),
        (_deployment(canary={"alias": "c", "analysis": {"steps": []}}), "at least 1"),
        (_deployment(canary={"alias": "c", "analysis": {"interval": "1 min"}}), "pattern"),
        (_deployment(version=0, alias=None), "greater than or equal to 1"),
        (_deployment(runtime="kserve"), "runtime"),
        (_deployment(replicas=-1), "greater than or equal to 0"),
        (_deployment(autoscaling={"minReplicas": 5, "maxReplicas": 2}), "must not exceed"),
        (_deployment(monitoring={"labels": {"team": "x" * 64}}), "at most 63"),
        (_deployment(monitoring={"labels": {"team": "bad value"}}), "pattern"),
        (_deployment(monitoring={"labels": {"-bad": "x"}}), "label key"),
        (_deployment(monitoring={"labels": {"a" * 64: "x"}}), "label key"),
        (_deployment(monitoring={"errorRatePercent": 120}), "less than or equal to 100"),
        (_deployment(monitoring={"drift": {"threshold": 0}}), "greater than 0"),
        (_deployment(pdb={"minAvailable": "half"}), "pdb"),
        (_deployment(hostNetwork=True), "hostNetwork"),
    ],
)
def test_deployment_rejects(body: dict[str, Any], match: str) -> None:
    _reject(DeploymentSpec, body, match)


def test_deployment_accepts_prefixed_label_keys_and_percent_pdb() -> None:
    spec = DeploymentSpec.model_validate(
        _deployment(
            monitoring={"labels": {"prometheus.example.com/rules": "yes"}},
            pdb={"minAvailable": "50%"},
        )
    )
    assert spec.pdb is not None
    assert spec.pdb.min_available == "50%"


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"framework": "keras"}, "framework"),
        ({"aliases": {"Production": 1}}, "alias"),
        ({"aliases": {"production": 0}}, "greater than or equal to 1"),
        (
            {"storage": {"uri": "s3://b/p", "secretRef": {"name": "s", "namespace": "x"}}},
            "namespace",
        ),
        (
            {"versions": [{"version": 1, "artifact": {"uri": "s3://a", "digest": "sha256:0"}}]},
            "pattern",
        ),
        (
            {"versions": [{"version": 1, "artifact": {"uri": "s3://a"}, "metrics": {"a": "x"}}]},
            "number",
        ),
        (
            {"promotion": {"alias": "candidate", "metric": "accuracy", "direction": "up"}},
            "direction",
        ),
        ({"retrain": {"template": {"image": "x"}, "schedule": "0 3 * *"}}, "pattern"),
        ({"retrain": {"template": {"image": "x"}, "cooldown": "6 hours"}}, "pattern"),
        (
            {"retrain": {"template": {"image": "x"}, "maxConcurrent": 0}},
            "greater than or equal to 1",
        ),
        ({"retrain": {"template": {"image": "x", "suspended": True}}}, "suspended"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_model_rejects(spec: dict[str, Any], match: str) -> None:
    _reject(Model, {"metadata": {"name": "m"}, "spec": spec}, match)


def test_model_accepts_declared_versions() -> None:
    model = Model.from_body(
        {
            "metadata": {"name": "m"},
            "spec": {
                "versions": [
                    {
                        "version": 1,
                        "artifact": {"uri": "s3://a/b", "digest": DIGEST},
                        "metrics": {"accuracy": 0.93},
                    }
                ],
                "aliases": {"production": 1},
                "retrain": {"template": {"image": "x"}, "schedule": "@daily"},
            },
        }
    )
    assert model.spec.versions[0].metrics == {"accuracy": 0.93}


# --- durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("1m30s", timedelta(seconds=90)),
        ("6h", timedelta(hours=6)),
        ("1.5h", timedelta(minutes=90)),
        ("250ms", timedelta(milliseconds=250)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "6", "1d", "1 h", "-1s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
