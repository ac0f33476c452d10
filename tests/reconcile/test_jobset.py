"""A distributed TrainingRun on a JobSet against the in-memory apiserver: the engine choice, one
JobSet and no Job or Service of the operator's own, the JobSet's restarts as the attempt, worker
0's report of the current restart only, and no write once converged."""

from __future__ import annotations

from typing import Any

from modelwerk import kinds
from modelwerk.builders.gang import COMPLETION_INDEX
from modelwerk.builders.jobset import CRD_NAME, RESTART_ATTEMPT
from modelwerk.constants import LABEL_TRAININGRUN
from tests.reconcile.test_gang import WORKERS, gang_run, worker
from tests.reconcile.test_trainingrun import terminated
from tests.reconcile.world import NS, World, model, report, run, summary

RUN = "run-1"


def jobset(restarts: int, condition: str | None = None, active: int = 0) -> dict[str, Any]:
    status: dict[str, Any] = {
        "restarts": restarts,
        "replicatedJobsStatus": [{"name": "workers", "active": active, "succeeded": 0}],
    }
    if condition is not None:
        status["conditions"] = [
            {"type": condition, "status": "True", "reason": "R", "message": f"jobset {condition}"}
        ]
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {
            "name": RUN,
            "namespace": NS,
            "uid": "js-uid",
            "creationTimestamp": "2026-01-01T11:50:00Z",
            "labels": {LABEL_TRAININGRUN: RUN},
            "ownerReferences": [{"uid": "run-uid", "kind": "TrainingRun", "name": RUN}],
        },
        "spec": {"suspend": False},
        "status": status,
    }


def js_worker(index: int, restart: int, phase: str, **state: Any) -> dict[str, Any]:
    pod = worker(index, restart, phase, **state)
    labels = pod["metadata"]["labels"]
    labels.pop("modelwerk.io/attempt")
    labels[RESTART_ATTEMPT] = str(restart)
    labels[COMPLETION_INDEX] = str(index)
    return pod


def js_run(**status: Any) -> dict[str, Any]:
    body = gang_run()
    body["metadata"]["uid"] = "run-uid"
    if status:
        body["status"] = status
    return body


async def test_auto_creates_one_jobset_when_its_crd_is_installed() -> None:
    world = World(crds=(CRD_NAME,))
    world.given(model(), js_run())
    _, writes = await world.reconcile(kinds.TRAININGRUN, RUN)
    assert summary(writes) == [
        f"create jobset.x-k8s.io/JobSet {RUN}",
        f"status TrainingRun {RUN}",
        f"event TrainingRun {RUN} Pending",
    ]
    status = world.status(kinds.TRAININGRUN, RUN)
    assert status["workers"] == {"replicas": WORKERS, "attempt": 0, "engine": "JobSet"}
    assert status["reproducibility"]["engine"] == "JobSet"  # from the first pass on
    created = world.kube.find(kinds.JOBSET, RUN, NS)
    assert created is not None
    assert created["spec"]["failurePolicy"] == {"maxRestarts": 2}
    assert world.kube.find(kinds.JOB, RUN, NS) is None
    assert world.kube.find(kinds.SERVICE, RUN, NS) is None  # the JobSet makes its own
    _, again = await world.reconcile(kinds.TRAININGRUN, RUN)
    assert again == []


async def test_without_the_crd_auto_is_an_indexed_job_and_jobset_waits() -> None:
    world = World()
    world.given(model(), js_run())
    await world.reconcile(kinds.TRAININGRUN, RUN)
    assert world.kube.find(kinds.JOB, RUN, NS) is not None

    world = World()
    body = run(workers={"replicas": WORKERS, "engine": "jobSet"})
    world.given(model(), body)
    requeue, _ = await world.reconcile(kinds.TRAININGRUN, RUN)
    status = world.status(kinds.TRAININGRUN, RUN)
    assert status["phase"] == "Pending"
    accepted = next(c for c in status["conditions"] if c["type"] == "Accepted")
    assert accepted["reason"] == "JobSetNotInstalled"
    assert requeue is not None
    assert world.kube.find(kinds.JOBSET, RUN, NS) is None
    assert world.kube.find(kinds.JOB, RUN, NS) is None


async def test_completed_after_a_restart_registers_worker_0_of_that_restart() -> None:
    world = World(crds=(CRD_NAME,))
    recorded = {"workers": {"replicas": WORKERS, "attempt": 0, "engine": "JobSet"}}
    # Restart 0's pods linger with a better (wrong) report; restart 1's worker 0 counts.
    old = [js_worker(i, 0, "Succeeded", **terminated(report(0.5))) for i in range(WORKERS)]
    new = [
        js_worker(i, 1, "Succeeded", **terminated(report(0.99 if i == 0 else 0.1)))
        for i in range(WORKERS)
    ]
    world.given(model(), js_run(**recorded), jobset(1, "Completed"), *old, *new)
    await world.reconcile(kinds.TRAININGRUN, RUN)
    status = world.status(kinds.TRAININGRUN, RUN)
    assert status["phase"] == "Succeeded", status
    assert status["workers"] == {"replicas": WORKERS, "attempt": 1, "engine": "JobSet"}
    versions = world.status(kinds.MODEL, "iris")["versions"]
    assert [(v["version"], v["metrics"]["accuracy"]) for v in versions] == [(1, 0.99)]
    _, again = await world.reconcile(kinds.TRAININGRUN, RUN)
    assert again == []


async def test_a_failed_jobset_fails_the_run_with_the_workers_reason() -> None:
    world = World(crds=(CRD_NAME,))
    failed = terminated(exit_code=137, reason="OOMKilled")
    failed["terminated"]["finishedAt"] = "2026-01-01T11:59:30Z"
    stopped = terminated(exit_code=143, reason="Error")  # stopped by the Job controller after it
    stopped["terminated"]["finishedAt"] = "2026-01-01T11:59:40Z"
    pods = [js_worker(3, 2, "Failed", **failed)] + [
        js_worker(i, 2, "Failed", **stopped) for i in (0, 1, 2)
    ]
    world.given(model(), js_run(), jobset(2, "Failed"), *pods)
    await world.reconcile(kinds.TRAININGRUN, RUN)
    status = world.status(kinds.TRAININGRUN, RUN)
    assert status["phase"] == "Failed"
    cond = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert cond["reason"] == "OOMKilled"
    assert "worker 3" in cond["message"]
    assert status["workers"]["attempt"] == 2
    assert world.kube.find(kinds.JOB, RUN, NS) is None  # nothing recreated by the operator
