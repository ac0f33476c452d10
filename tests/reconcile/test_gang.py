"""A distributed TrainingRun (spec.workers.replicas = 4) against the in-memory apiserver: its
Indexed Job and headless Service, exactly one registration from worker 0's report, all-or-
nothing restarts that wait for the old attempt's pods, and the budget (spec.backoffLimit)."""

from __future__ import annotations

from typing import Any

from modelwerk import kinds
from modelwerk.builders.gang import COMPLETION_INDEX, LABEL_ATTEMPT
from modelwerk.constants import LABEL_TRAININGRUN
from tests.reconcile.test_trainingrun import job, terminated
from tests.reconcile.world import NS, World, model, report, run, summary

WORKERS = 4
RUN = "run-1"


def gang_run(backoff_limit: int = 2, **status: Any) -> dict[str, Any]:
    body = run(workers={"replicas": WORKERS}, backoffLimit=backoff_limit)
    if status:
        body["status"] = status
    return body


def gang_job(attempt: int, condition: str | None = None, **status: Any) -> dict[str, Any]:
    body = job(RUN, condition=condition, **status)
    body["metadata"]["labels"][LABEL_ATTEMPT] = str(attempt)
    body["metadata"]["uid"] = f"job-uid-{attempt}"
    if condition == "Failed":
        body["status"]["conditions"][0]["reason"] = "PodFailurePolicy"
        body["status"]["conditions"][0]["message"] = "Container train failed with exit code 3"
    return body


def worker(index: int, attempt: int, phase: str, **state: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{RUN}-{index}-a{attempt}",
            "namespace": NS,
            # Worker 0 is the oldest: the newest succeeded pod is not the one that reports.
            "creationTimestamp": f"2026-01-01T11:58:0{index}Z",
            "labels": {
                LABEL_TRAININGRUN: RUN,
                LABEL_ATTEMPT: str(attempt),
                COMPLETION_INDEX: str(index),
            },
        },
        "status": {
            "phase": phase,
            "containerStatuses": [
                {"name": "train", "imageID": "trainer@sha256:" + "b" * 64, "state": state}
            ],
        },
    }


def succeeded_gang(attempt: int) -> list[dict[str, Any]]:
    # Every worker reports (they run the same code); only worker 0's report counts.
    return [
        worker(i, attempt, "Succeeded", **terminated(report(0.99 if i == 0 else 0.5)))
        for i in range(WORKERS)
    ]


def one_worker_failed(attempt: int, reason: str = "Error") -> list[dict[str, Any]]:
    failed = terminated(exit_code=3, reason=reason)
    failed["terminated"]["finishedAt"] = "2026-01-01T11:59:30Z"
    stopped = terminated(exit_code=143, reason="Error")  # stopped by the Job controller after it
    stopped["terminated"]["finishedAt"] = "2026-01-01T11:59:40Z"
    return [worker(2, attempt, "Failed", **failed)] + [
        worker(i, attempt, "Failed", **stopped) for i in (0, 1, 3)
    ]


def status_of(world: World) -> dict[str, Any]:
    return world.status(kinds.TRAININGRUN, RUN)


def created_job(world: World) -> dict[str, Any]:
    found = world.kube.find(kinds.JOB, RUN, NS)
    assert found is not None
    return found


def env(job_body: dict[str, Any]) -> dict[str, Any]:
    container = job_body["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


async def test_creates_the_indexed_job_and_the_headless_service() -> None:
    world = World()
    world.given(model(), gang_run())
    _, writes = await world.reconcile(kinds.TRAININGRUN, RUN)
    assert summary(writes) == [
        f"create batch/Job {RUN}",
        f"create Service {RUN}",
        f"status TrainingRun {RUN}",
        f"event TrainingRun {RUN} Pending",
    ]
    created = created_job(world)
    assert created["spec"]["completionMode"] == "Indexed"
    assert created["spec"]["parallelism"] == created["spec"]["completions"] == WORKERS
    assert created["spec"]["backoffLimit"] == 0
    assert env(created)["MODELWERK_ATTEMPT"] == "0"
    workers = {"replicas": WORKERS, "attempt": 0, "engine": "IndexedJob"}
    assert status_of(world)["workers"] == workers
    service = world.kube.find(kinds.SERVICE, RUN, NS)
    assert service is not None
    assert service["spec"]["clusterIP"] == "None"
    assert service["metadata"]["ownerReferences"][0]["kind"] == "TrainingRun"
    _, again = await world.reconcile(kinds.TRAININGRUN, RUN)
    assert again == []


async def test_four_workers_register_once_from_worker_0() -> None:
    world = World()
    world.given(
        model(),
        gang_run(),
        gang_job(0, "Complete", succeeded=WORKERS),
        *succeeded_gang(0),
    )
    _, writes = await world.reconcile(kinds.TRAININGRUN, RUN)
    assert "status Model iris" in summary(writes)
    versions = world.status(kinds.MODEL, "iris")["versions"]
    assert [(v["version"], v["metrics"]["accuracy"]) for v in versions] == [(1, 0.99)]
    status = status_of(world)
    assert status["phase"] == "Succeeded"
    assert status["reproducibility"]["workers"] == WORKERS
    assert status["reproducibility"]["attempt"] == 0
    assert status["reproducibility"]["engine"] == "IndexedJob"
    gang_lineage = {k: versions[0]["lineage"][k] for k in ("workers", "attempt", "engine")}
    assert gang_lineage == {"workers": WORKERS, "attempt": 0, "engine": "IndexedJob"}
    # Converged: no write, and still one version.
    _, again = await world.reconcile(kinds.TRAININGRUN, RUN)
    assert again == []
    assert len(world.status(kinds.MODEL, "iris")["versions"]) == 1


async def test_a_failed_worker_restarts_the_whole_gang_after_its_pods_are_gone() -> None:
    world = World()
    world.given(model(), gang_run(), gang_job(0, "Failed", failed=4), *one_worker_failed(0))

    # The next attempt is recorded first, then the failed attempt's Job is deleted.
    _, writes = await world.reconcile(kinds.TRAININGRUN, RUN)
    assert summary(writes) == [
        f"status TrainingRun {RUN}",
        f"delete batch/Job {RUN}",
        f"event TrainingRun {RUN} Restarting",
    ]
    status = status_of(world)
    assert status["workers"] == {"replicas": WORKERS, "attempt": 1, "engine": "IndexedJob"}
    assert status["phase"] == "Running"
    running = world.condition(kinds.TRAININGRUN, RUN, "Running")
    assert running == ("False", "Restarting")
    message = next(c for c in status["conditions"] if c["type"] == "Running")["message"]
    assert "worker 2: container exited with code 3" in message

    # The Job is gone but its pods are not yet (the garbage collector is on its way): nothing is
    # created, nothing written.
    assert world.kube.find(kinds.JOB, RUN, NS) is None
    _, writes = await world.reconcile(kinds.TRAININGRUN, RUN)
    assert writes == []

    # Three pods gone, one left: still waiting.
    for index in (0, 1, 3):
        del world.kube.objects[("v1", "Pod", NS, f"{RUN}-{index}-a0")]
    world.sync()
    _, writes = await world.reconcile(kinds.TRAININGRUN, RUN)
    assert writes == []

    # The last one gone: attempt 1's Job, with the attempt in its labels and env.
    del world.kube.objects[("v1", "Pod", NS, f"{RUN}-2-a0")]
    world.sync()
    _, writes = await world.reconcile(kinds.TRAININGRUN, RUN)
    assert summary(writes)[:2] == [f"create batch/Job {RUN}", f"create Service {RUN}"]
    created = created_job(world)
    assert created["metadata"]["labels"][LABEL_ATTEMPT] == "1"
    assert created["spec"]["template"]["metadata"]["labels"][LABEL_ATTEMPT] == "1"
    assert env(created)["MODELWERK_ATTEMPT"] == "1"
    _, again = await world.reconcile(kinds.TRAININGRUN, RUN)
    assert again == []


async def test_an_old_attempts_job_left_behind_is_deleted_first() -> None:
    """The operator stopped between writing attempt 1 and deleting attempt 0's Job."""
    world = World()
    world.given(
        model(),
        gang_run(workers={"replicas": WORKERS, "attempt": 1}, phase="Running"),
        gang_job(0, "Failed", failed=4),
        *one_worker_failed(0),
    )
    _, writes = await world.reconcile(kinds.TRAININGRUN, RUN)
    assert f"delete batch/Job {RUN}" in summary(writes)
    assert f"create batch/Job {RUN}" not in summary(writes)
    assert status_of(world)["workers"]["attempt"] == 1


async def test_a_newer_job_than_the_status_says_is_kept() -> None:
    """The status lags behind (restored from a backup): the Job's attempt label stands."""
    world = World()
    world.given(model(), gang_run(), gang_job(1, active=WORKERS))
    _, writes = await world.reconcile(kinds.TRAININGRUN, RUN)
    assert f"delete batch/Job {RUN}" not in summary(writes)
    assert status_of(world)["workers"]["attempt"] == 1


async def test_budget_exhausted_fails_with_the_failed_workers_reason() -> None:
    world = World()
    world.given(
        model(),
        gang_run(backoff_limit=1, workers={"replicas": WORKERS, "attempt": 1}, phase="Running"),
        gang_job(1, "Failed", failed=4),
        *one_worker_failed(1, reason="OOMKilled"),
    )
    _, writes = await world.reconcile(kinds.TRAININGRUN, RUN)
    assert f"delete batch/Job {RUN}" not in summary(writes)
    status = status_of(world)
    assert status["phase"] == "Failed"
    assert status["workers"]["attempt"] == 1
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "OOMKilled"
    assert "exited with code 3" in failed["message"]
    _, again = await world.reconcile(kinds.TRAININGRUN, RUN)
    assert again == []


async def test_a_deadline_is_not_restarted() -> None:
    world = World()
    deadline = gang_job(0, "Failed", failed=4)
    deadline["status"]["conditions"][0]["reason"] = "DeadlineExceeded"
    world.given(model(), gang_run(), deadline, *one_worker_failed(0))
    await world.reconcile(kinds.TRAININGRUN, RUN)
    assert status_of(world)["phase"] == "Failed"
    assert world.kube.find(kinds.JOB, RUN, NS) is not None
