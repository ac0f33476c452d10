"""A queued TrainingRun (spec.queueName) against the in-memory apiserver, the test playing Kueue:
the Job created suspended and labelled, Queued with the Workload's reason and message while it
waits, admission, the run trained and registered once; the operator never writes the Job's
suspend (Kueue owns it), carries spec.suspend to the Workload's spec.active, and writes nothing
once converged."""

from __future__ import annotations

from typing import Any

from modelwerk import kinds
from modelwerk.builders.kueue import CRD_NAME, LABEL_QUEUE_NAME
from tests.reconcile.test_trainingrun import pod, terminated
from tests.reconcile.world import NS, World, model, report, run, summary

RUN = "run-1"
FLAVORS = (
    "couldn't assign flavors to pod set main: insufficient quota for cpu in flavor default, "
    "previously considered podsets requests (0) + current podset request (2) > maximum "
    "capacity (1)"
)
PENDING = {"type": "QuotaReserved", "status": "False", "reason": "Pending", "message": FLAVORS}
RESERVED = {"type": "QuotaReserved", "status": "True", "reason": "QuotaReserved", "message": "ok"}
ADMITTED = {"type": "Admitted", "status": "True", "reason": "Admitted", "message": "admitted"}


def queued_run(**spec: Any) -> dict[str, Any]:
    return run(queueName="team-a", **spec)


def workload(world: World, *conditions: dict[str, str], active: bool = True) -> dict[str, Any]:
    """Kueue's Workload of the run's Job, as its controller makes it (owned by the Job)."""
    job = world.kube.find(kinds.JOB, RUN, NS)
    assert job is not None
    status: dict[str, Any] = {"conditions": list(conditions)}
    if ADMITTED in conditions:
        status["admission"] = {"clusterQueue": "cluster-cpu"}
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "Workload",
        "metadata": {
            "name": f"job-{RUN}-1a2b3",
            "namespace": NS,
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": RUN,
                    "uid": job["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": {"queueName": "team-a", "active": active},
        "status": status,
    }


def kueue_starts_the_job(world: World) -> None:
    job = world.kube.find(kinds.JOB, RUN, NS)
    assert job is not None
    job["spec"]["suspend"] = False
    world.given(workload(world, RESERVED, ADMITTED))


def condition(world: World, type_: str) -> dict[str, Any]:
    conds = world.status(kinds.TRAININGRUN, RUN)["conditions"]
    return dict(next(c for c in conds if c["type"] == type_))


def job_patches(writes: list[Any]) -> list[str]:
    return [s for s in summary(writes) if s.startswith("patch batch/Job")]


async def queued_world() -> World:
    world = World(crds=(CRD_NAME,))
    world.given(model(), queued_run())
    _, writes = await world.reconcile(kinds.TRAININGRUN, RUN)
    assert summary(writes) == [
        f"create batch/Job {RUN}",
        f"status TrainingRun {RUN}",
        f"event TrainingRun {RUN} Pending",
    ]
    return world


async def test_without_kueue_a_queued_run_waits_without_a_job() -> None:
    world = World()
    world.given(model(), queued_run())
    requeue, _ = await world.reconcile(kinds.TRAININGRUN, RUN)
    assert world.condition(kinds.TRAININGRUN, RUN, "Accepted") == ("False", "KueueNotInstalled")
    assert world.status(kinds.TRAININGRUN, RUN)["phase"] == "Pending"
    assert world.kube.find(kinds.JOB, RUN, NS) is None
    assert requeue is not None  # the CRD may come: looked for again


async def test_the_job_is_created_suspended_in_the_queue_and_the_run_shows_queued() -> None:
    world = await queued_world()
    job = world.kube.find(kinds.JOB, RUN, NS)
    assert job is not None
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"][LABEL_QUEUE_NAME] == "team-a"
    assert world.condition(kinds.TRAININGRUN, RUN, "Queued") == ("True", "WorkloadPending")
    assert world.condition(kinds.TRAININGRUN, RUN, "Running") == ("False", "Queued")

    # Kueue made the Workload and has no quota for it: its reason and message, nothing else.
    world.given(workload(world, PENDING))
    _, writes = await world.reconcile(kinds.TRAININGRUN, RUN)
    assert summary(writes) == [f"status TrainingRun {RUN}"]
    queued = condition(world, "Queued")
    assert (queued["status"], queued["reason"], queued["message"]) == ("True", "Pending", FLAVORS)
    assert world.status(kinds.TRAININGRUN, RUN)["phase"] == "Pending"
    _, again = await world.reconcile(kinds.TRAININGRUN, RUN)
    assert again == []


async def test_admitted_runs_trains_and_registers_once_without_touching_suspend() -> None:
    world = await queued_world()
    world.given(workload(world, PENDING))
    await world.reconcile(kinds.TRAININGRUN, RUN)

    # Admitted, but Kueue has yet to unsuspend the Job: the operator does not do it.
    world.given(workload(world, RESERVED, ADMITTED))
    _, writes = await world.reconcile(kinds.TRAININGRUN, RUN)
    assert job_patches(writes) == []
    assert world.condition(kinds.TRAININGRUN, RUN, "Queued") == ("False", "Admitted")
    assert world.condition(kinds.TRAININGRUN, RUN, "Running") == ("False", "Queued")

    kueue_starts_the_job(world)
    job = world.kube.find(kinds.JOB, RUN, NS)
    assert job is not None
    job["status"] = {"active": 1, "startTime": "2026-01-01T12:00:00Z"}
    world.given(pod(RUN))
    _, writes = await world.reconcile(kinds.TRAININGRUN, RUN)
    assert job_patches(writes) == []  # unsuspended by Kueue, not suspended again
    assert world.status(kinds.TRAININGRUN, RUN)["phase"] == "Running"
    assert condition(world, "Queued")["message"] == (
        "admitted by ClusterQueue cluster-cpu from LocalQueue team-a"
    )

    job["status"] = {
        "succeeded": 1,
        "startTime": "2026-01-01T12:00:00Z",
        "completionTime": "2026-01-01T12:01:00Z",
        "conditions": [{"type": "Complete", "status": "True", "reason": "X"}],
    }
    world.given(pod(RUN, "Succeeded", **terminated(report(0.97))))
    _, writes = await world.reconcile(kinds.TRAININGRUN, RUN)
    assert job_patches(writes) == []
    assert world.status(kinds.TRAININGRUN, RUN)["phase"] == "Succeeded"
    versions = world.status(kinds.MODEL, "iris")["versions"]
    assert [v["source"]["trainingRun"] for v in versions] == [RUN]
    _, again = await world.reconcile(kinds.TRAININGRUN, RUN)
    assert again == []


async def test_an_evicted_job_is_queued_again() -> None:
    world = await queued_world()
    kueue_starts_the_job(world)
    await world.reconcile(kinds.TRAININGRUN, RUN)
    job = world.kube.find(kinds.JOB, RUN, NS)
    assert job is not None
    job["spec"]["suspend"] = True  # Kueue preempted it
    evicted = {"type": "Evicted", "status": "True", "reason": "Preempted", "message": "by x"}
    world.given(workload(world, PENDING, evicted))
    _, writes = await world.reconcile(kinds.TRAININGRUN, RUN)
    assert job_patches(writes) == []
    assert world.condition(kinds.TRAININGRUN, RUN, "Queued") == ("True", "Preempted")
    assert world.status(kinds.TRAININGRUN, RUN)["phase"] == "Pending"


async def test_spec_suspend_deactivates_the_workload_and_resume_reactivates_it() -> None:
    world = await queued_world()
    kueue_starts_the_job(world)
    await world.reconcile(kinds.TRAININGRUN, RUN)

    body = world.kube.find(kinds.TRAININGRUN, RUN, NS)
    assert body is not None
    body["spec"]["suspend"] = True
    world.sync()
    _, writes = await world.reconcile(kinds.TRAININGRUN, RUN)
    name = f"job-{RUN}-1a2b3"
    assert f"patch kueue.x-k8s.io/Workload {name}" in summary(writes)
    assert job_patches(writes) == []
    found = world.kube.find(kinds.WORKLOAD, name, NS)
    assert found is not None
    assert found["spec"]["active"] is False
    assert world.condition(kinds.TRAININGRUN, RUN, "Running") == ("False", "Suspended")
    _, again = await world.reconcile(kinds.TRAININGRUN, RUN)
    assert again == []

    body["spec"]["suspend"] = False
    world.sync()
    _, writes = await world.reconcile(kinds.TRAININGRUN, RUN)
    assert f"patch kueue.x-k8s.io/Workload {name}" in summary(writes)
    found = world.kube.find(kinds.WORKLOAD, name, NS)
    assert found is not None
    assert found["spec"]["active"] is True


async def test_a_workload_kueue_deactivated_itself_is_left_alone() -> None:
    world = await queued_world()
    evicted = {"type": "Evicted", "status": "True", "reason": "Deactivated", "message": "limit"}
    world.given(workload(world, PENDING, evicted, active=False))
    _, writes = await world.reconcile(kinds.TRAININGRUN, RUN)
    assert [s for s in summary(writes) if "Workload" in s] == []
    assert world.condition(kinds.TRAININGRUN, RUN, "Queued") == ("True", "Deactivated")
