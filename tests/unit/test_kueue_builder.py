"""builders/kueue.py: a queued run's Job and JobSet (spec.queueName), and the Queued condition
read off Kueue's Workload."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from modelwerk import kinds, projections
from modelwerk.api.trainingrun import TrainingRun
from modelwerk.builders.job import build_job
from modelwerk.builders.jobset import build_jobset
from modelwerk.builders.kueue import queued_condition
from tests.unit.test_gang_builder import gang_body
from tests.unit.test_job_builder import EXPECTED_SAMPLE_JOB, model_of, run_body
from tests.unit.test_jobset_builder import expected_jobset

QUEUE = "kueue.x-k8s.io/queue-name"


def test_a_queued_job_is_labelled_and_created_suspended() -> None:
    body = run_body(queueName="team-a")
    job = build_job(TrainingRun.from_body(body), body, model_of())
    expected = copy.deepcopy(EXPECTED_SAMPLE_JOB)
    # A new dict: the golden Job's metadata and pod template share one labels dict.
    expected["metadata"]["labels"] = {**expected["metadata"]["labels"], QUEUE: "team-a"}
    expected["spec"]["suspend"] = True
    # Only the Job is queued: its pods carry no queue label of their own.
    assert job == expected


def test_a_queued_jobset_is_labelled_and_suspended_but_not_its_child_job() -> None:
    body = gang_body(engine="jobSet")
    body["spec"]["queueName"] = "team-a"
    jobset = build_jobset(TrainingRun.from_body(body), body, model_of())
    expected = expected_jobset(suspend=True)
    expected["metadata"]["labels"] = {**expected["metadata"]["labels"], QUEUE: "team-a"}
    assert jobset == expected
    child = jobset["spec"]["replicatedJobs"][0]["template"]
    assert QUEUE not in child["metadata"]["labels"]


def test_an_unqueued_run_is_untouched() -> None:
    body = run_body()
    assert build_job(TrainingRun.from_body(body), body, model_of()) == EXPECTED_SAMPLE_JOB


@pytest.mark.parametrize("name", ["Team-A", "team_a", "-team", "a" * 64, ""])
def test_queue_names_must_be_dns_labels(name: str) -> None:
    with pytest.raises(ValidationError):
        TrainingRun.from_body(run_body(queueName=name))


def workload(*conditions: dict[str, str], cq: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": list(conditions)}
    if cq:
        status["admission"] = {"clusterQueue": cq}
    return {"metadata": {"name": "job-iris-1-abcde"}, "spec": {"active": True}, "status": status}


RUN = TrainingRun.from_body(run_body(queueName="team-a"))
FLAVORS = (
    "couldn't assign flavors to pod set main: insufficient quota for cpu in flavor default, "
    "previously considered podsets requests (0) + current podset request (2) > maximum "
    "capacity (1)"
)


def test_no_workload_yet_is_queued() -> None:
    held, reason, message = queued_condition(RUN, None)
    assert (held, reason) == (True, "WorkloadPending")
    assert "team-a" in message


def test_quota_not_reserved_is_queued_with_kueues_reason_and_message() -> None:
    wl = workload(
        {"type": "QuotaReserved", "status": "False", "reason": "Pending", "message": FLAVORS}
    )
    assert queued_condition(RUN, wl) == (True, "Pending", FLAVORS)


def test_an_eviction_is_queued_with_its_reason() -> None:
    wl = workload(
        {"type": "QuotaReserved", "status": "False", "reason": "Pending", "message": "later"},
        {"type": "Evicted", "status": "True", "reason": "Preempted", "message": "preempted by x"},
    )
    assert queued_condition(RUN, wl) == (True, "Preempted", "preempted by x")


def test_quota_reserved_but_not_admitted_is_still_queued() -> None:
    wl = workload(
        {"type": "QuotaReserved", "status": "True", "reason": "QuotaReserved", "message": "ok"},
        {"type": "Admitted", "status": "False", "reason": "Pending", "message": "checks pending"},
    )
    assert queued_condition(RUN, wl) == (True, "Pending", "checks pending")


def test_admitted_is_not_queued() -> None:
    wl = workload(
        {"type": "QuotaReserved", "status": "True", "reason": "QuotaReserved", "message": "ok"},
        {"type": "Admitted", "status": "True", "reason": "Admitted", "message": "admitted"},
        cq="cluster-cpu",
    )
    assert queued_condition(RUN, wl) == (
        False,
        "Admitted",
        "admitted by ClusterQueue cluster-cpu from LocalQueue team-a",
    )


def test_the_workload_projection_keeps_what_the_condition_reads() -> None:
    body = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "Workload",
        "metadata": {
            "name": "job-iris-1-abcde",
            "namespace": "ml",
            "managedFields": [{"manager": "kueue"}],
            "ownerReferences": [
                {"kind": "Job", "name": "iris-1", "uid": "u", "controller": True},
                {"kind": "ConfigMap", "name": "other", "uid": "v"},
            ],
        },
        "spec": {"queueName": "team-a", "podSets": [{"name": "main", "count": 1}]},
        "status": {
            "conditions": [
                {"type": "QuotaReserved", "status": "False", "reason": "Pending",
                 "message": FLAVORS, "lastTransitionTime": "2026-12-03T00:00:00Z"}
            ],
            "admission": {"clusterQueue": "cq", "podSetAssignments": [{"name": "main"}]},
        },
    }  # fmt: skip
    projected = projections.workload(body)
    assert projected["spec"] == {"active": True}
    assert projected["status"] == {
        "conditions": [
            {"type": "QuotaReserved", "status": "False", "reason": "Pending", "message": FLAVORS}
        ],
        "admission": {"clusterQueue": "cq"},
    }
    assert "managedFields" not in projected["metadata"]
    index = kinds.WORKLOAD.cache.indexes()[kinds.BY_OWNER]  # type: ignore[union-attr]
    assert index(projected) == [("ml", "iris-1")]
