"""builders/gang.py: a distributed TrainingRun's Indexed Job gang and headless Service."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modelwerk.api.trainingrun import TrainingRun
from modelwerk.builders.gang import build_service
from modelwerk.builders.job import build_job
from tests.unit.test_job_builder import (
    RUN_UID,
    container,
    model_of,
    run_body,
)
from tests.unit.test_job_builder import (
    test_no_host_access_or_privilege_anywhere as assert_no_host_access,
)
from tests.unit.test_job_builder import (
    test_restricted_security_context_fields_present as assert_restricted,
)

ANNOTATION = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
INDEX = {"fieldRef": {"fieldPath": ANNOTATION}}
RENDEZVOUS_ENV = [
    {"name": "MASTER_ADDR", "value": "iris-1-0.iris-1"},
    {"name": "MASTER_PORT", "value": "29500"},
    {"name": "WORLD_SIZE", "value": "4"},
    {"name": "RANK", "valueFrom": INDEX},
    {"name": "NODE_RANK", "valueFrom": INDEX},
    {"name": "PET_NNODES", "value": "4"},
    {"name": "PET_NODE_RANK", "valueFrom": INDEX},
    {"name": "PET_MASTER_ADDR", "value": "iris-1-0.iris-1"},
    {"name": "PET_MASTER_PORT", "value": "29500"},
]


def gang_body(**workers: Any) -> dict[str, Any]:
    return run_body(workers={"replicas": 4, **workers})


def build(body: dict[str, Any], attempt: int = 0) -> dict[str, Any]:
    return build_job(TrainingRun.from_body(body), body, model_of(), attempt)


def expected_gang_job(attempt: int) -> dict[str, Any]:
    """The single-pod Job of the same run, and exactly these differences."""
    single = run_body()
    job = build_job(TrainingRun.from_body(single), single, model_of())
    expected = copy.deepcopy(job)
    expected["metadata"]["labels"]["modelwerk.io/attempt"] = str(attempt)
    spec = expected["spec"]
    spec["template"]["metadata"]["labels"]["modelwerk.io/attempt"] = str(attempt)
    spec |= {
        "backoffLimit": 0,
        "completionMode": "Indexed",
        "completions": 4,
        "parallelism": 4,
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {"containerName": "train", "operator": "NotIn", "values": [0]},
                }
            ]
        },
    }
    spec["template"]["spec"]["subdomain"] = "iris-1"
    train = spec["template"]["spec"]["containers"][0]
    user = train["env"][-1:]
    assert user == [{"name": "LOG_LEVEL", "value": "info"}]
    train["env"] = [
        *train["env"][:-1],
        *RENDEZVOUS_ENV,
        {"name": "MODELWERK_ATTEMPT", "value": str(attempt)},
        *user,
    ]
    train["ports"] = [{"name": "rendezvous", "containerPort": 29500, "protocol": "TCP"}]
    return expected


@pytest.mark.parametrize("attempt", [0, 2])
def test_gang_job_is_the_single_pod_job_plus_the_gang(attempt: int) -> None:
    assert build(gang_body(), attempt) == expected_gang_job(attempt)


def test_every_worker_gets_the_same_modelwerk_parameters() -> None:
    """One pod template: what differs between workers is only the completion index."""
    single = run_body()
    lone = build_job(TrainingRun.from_body(single), single, model_of())
    gang = build(gang_body())
    ours = [e for e in container(gang)["env"] if e["name"].startswith("MODELWERK_")]
    assert ours == [
        *(e for e in container(lone)["env"] if e["name"].startswith("MODELWERK_")),
        {"name": "MODELWERK_ATTEMPT", "value": "0"},
    ]
    template = gang["spec"]["template"]
    assert (
        template["metadata"]["annotations"] == lone["spec"]["template"]["metadata"]["annotations"]
    )


def test_port_is_carried_to_every_rendezvous_variable() -> None:
    env = {e["name"]: e.get("value") for e in container(build(gang_body(port=23456)))["env"]}
    assert env["MASTER_PORT"] == env["PET_MASTER_PORT"] == "23456"


@pytest.mark.parametrize("body", [run_body(), run_body(workers={"replicas": 1})])
def test_one_worker_is_a_plain_job(body: dict[str, Any]) -> None:
    single = run_body()
    assert build(body) == build_job(TrainingRun.from_body(single), single, model_of())


@pytest.mark.parametrize("attempt", [0, 3])
def test_gang_job_stays_restricted(attempt: int) -> None:
    job = build(gang_body(), attempt)
    assert_no_host_access(job)
    assert_restricted(job)


def test_headless_service_is_exactly_the_golden_dict() -> None:
    body = gang_body()
    assert build_service(TrainingRun.from_body(body), body) == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "iris-1",
            "namespace": "ml",
            "labels": {
                "app.kubernetes.io/managed-by": "modelwerk",
                "app.kubernetes.io/part-of": "modelwerk",
                "app.kubernetes.io/component": "training",
                "modelwerk.io/trainingrun": "iris-1",
                "modelwerk.io/model": "iris",
            },
            "ownerReferences": [
                {
                    "apiVersion": "modelwerk.io/v1alpha1",
                    "kind": "TrainingRun",
                    "name": "iris-1",
                    "uid": RUN_UID,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {
                "app.kubernetes.io/component": "training",
                "modelwerk.io/trainingrun": "iris-1",
            },
            "ports": [
                {"name": "rendezvous", "port": 29500, "targetPort": 29500, "protocol": "TCP"}
            ],
        },
    }
