"""builders/jobset.py: a distributed run's JobSet, and reconcilers/jobset.py's reading of it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modelwerk.api.trainingrun import (
    JOBSET_NAME_RULE,
    MAX_GANG_NAME,
    MAX_JOBSET_NAME,
    MAX_WORKERS,
    TRAININGRUN_KIND,
    TrainingRun,
)
from modelwerk.builders.gang import hostname
from modelwerk.builders.job import build_job
from modelwerk.builders.jobset import build_jobset, child_job_name
from modelwerk.reconcilers.jobset import as_job
from tests.unit.test_gang_builder import expected_gang_job, gang_body
from tests.unit.test_job_builder import model_of

RESTART = {"fieldRef": {"fieldPath": "metadata.labels['jobset.sigs.k8s.io/restart-attempt']"}}


def expected_jobset(max_restarts: int = 1, suspend: bool = False) -> dict[str, Any]:
    """The Indexed Job gang of attempt 0, minus what the JobSet does itself, as its only
    replicated Job."""
    job = expected_gang_job(0)
    meta, spec = copy.deepcopy(job["metadata"]), copy.deepcopy(job["spec"])
    del meta["labels"]["modelwerk.io/attempt"]
    del spec["template"]["metadata"]["labels"]["modelwerk.io/attempt"]
    del spec["template"]["spec"]["subdomain"]
    del spec["suspend"]
    train = spec["template"]["spec"]["containers"][0]
    for var in train["env"]:
        if var["name"] in ("MASTER_ADDR", "PET_MASTER_ADDR"):
            var["value"] = "iris-1-workers-0-0.iris-1"
        if var["name"] == "MODELWERK_ATTEMPT":
            del var["value"]
            var["valueFrom"] = RESTART
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": meta,
        "spec": {
            "suspend": suspend,
            "failurePolicy": {"maxRestarts": max_restarts},
            "successPolicy": {"operator": "All", "targetReplicatedJobs": ["workers"]},
            "startupPolicy": {"startupPolicyOrder": "AnyOrder"},
            "network": {
                "enableDNSHostnames": True,
                "subdomain": "iris-1",
                "publishNotReadyAddresses": True,
            },
            "replicatedJobs": [
                {
                    "name": "workers",
                    "replicas": 1,
                    "template": {"metadata": {"labels": dict(meta["labels"])}, "spec": spec},
                }
            ],
        },
    }


def build(body: dict[str, Any]) -> dict[str, Any]:
    return build_jobset(TrainingRun.from_body(body), body, model_of())


def test_jobset_is_the_gang_job_as_one_replicated_job() -> None:
    assert build(gang_body(engine="jobSet")) == expected_jobset()


def test_backoff_limit_and_suspend_go_to_the_jobset() -> None:
    body = gang_body(engine="jobSet")
    body["spec"] |= {"backoffLimit": 5, "suspend": True}
    assert build(body) == expected_jobset(max_restarts=5, suspend=True)


def test_master_is_the_child_jobs_first_pod() -> None:
    run = TrainingRun.from_body(gang_body())
    assert child_job_name(run) == "iris-1-workers-0"


def test_a_jobset_reads_as_a_job() -> None:
    jobset = {
        "metadata": {"name": "r", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"suspend": False},
        "status": {
            "restarts": 2,
            "conditions": [
                {"type": "Completed", "status": "True", "reason": "AllJobsCompleted"},
                {"type": "Failed", "status": "False", "reason": "x"},
            ],
            "replicatedJobsStatus": [{"name": "workers", "active": 1, "succeeded": 0, "failed": 1}],
        },
    }
    assert as_job(jobset)["status"] == {
        "conditions": [{"type": "Complete", "status": "True", "reason": "AllJobsCompleted"}],
        "active": 1,
        "succeeded": 0,
        "failed": 3,
        "startTime": "2026-01-01T00:00:00Z",
    }


def _longest_hostname(name: str, engine: str) -> str:
    """The hostname of the last worker of the biggest gang, as the builders name its Job."""
    body = gang_body(replicas=MAX_WORKERS, engine=engine)
    body["metadata"]["name"] = name
    run = TrainingRun.from_body(body)
    if engine == "jobSet":
        assert build(body)["metadata"]["name"] == name
        job = child_job_name(run)
    else:
        job = build_job(run, body, model_of())["metadata"]["name"]
    return hostname(job, MAX_WORKERS - 1)


@pytest.mark.parametrize(("engine", "bound"), [("jobSet", 50), ("indexedJob", 60)])
def test_the_crds_name_bound_is_what_the_hostnames_leave(engine: str, bound: int) -> None:
    """63 - len("-workers-0-") - 2 = 50 on a JobSet, 63 - len("-") - 2 = 60 on an Indexed Job
    (index up to 63): at the bound the last worker's hostname is a DNS label, one over not."""
    assert {"jobSet": MAX_JOBSET_NAME, "indexedJob": MAX_GANG_NAME}[engine] == bound
    assert len(_longest_hostname("h" * bound, engine)) == 63
    assert len(_longest_hostname("h" * (bound + 1), engine)) == 64
    assert JOBSET_NAME_RULE in TRAININGRUN_KIND.root_validations
    assert f"self.metadata.name.size() <= {MAX_JOBSET_NAME}" in JOBSET_NAME_RULE["rule"]
    assert "'indexedJob'" in JOBSET_NAME_RULE["rule"]
