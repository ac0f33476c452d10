"""TrainingRun reconciler, table-driven: given these objects in the caches, one reconcile makes
these writes and leaves the run in this phase, with this condition."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from modelwerk import kinds, metrics
from modelwerk.constants import LABEL_TRAININGRUN
from tests.reconcile.world import API, NS, World, model, report, run, summary

T0 = "2026-01-01T11:59:00Z"


def job(
    name: str = "run-1",
    *,
    condition: str | None = None,
    active: int = 0,
    owner_uid: str = "uid-run-1",
    **status: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {LABEL_TRAININGRUN: name},
            "ownerReferences": [
                {"apiVersion": API, "kind": "TrainingRun", "name": name, "uid": owner_uid}
            ],
        },
        "spec": {"suspend": False},
        "status": {"active": active, "startTime": T0, **status},
    }
    if condition is not None:
        body["status"]["conditions"] = [
            {"type": condition, "status": "True", "lastTransitionTime": T0, "reason": "X"}
        ]
    return body


def pod(run_name: str = "run-1", phase: str = "Running", **state: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{run_name}-x1",
            "namespace": NS,
            "labels": {LABEL_TRAININGRUN: run_name},
        },
        "status": {
            "phase": phase,
            "containerStatuses": [
                {
                    "name": "train",
                    "imageID": "docker-pullable://trainer@sha256:" + "b" * 64,
                    "state": state,
                }
            ],
        },
    }


def terminated(
    message: str | None = None, exit_code: int = 0, reason: str = "Completed"
) -> dict[str, Any]:
    out: dict[str, Any] = {"exitCode": exit_code, "reason": reason}
    if message is not None:
        out["message"] = message
    return {"terminated": out}


@dataclass
class Case:
    name: str
    given: list[dict[str, Any]]
    writes: list[str]
    phase: str
    condition: tuple[str, str, str]  # type, status, reason
    extra: dict[str, Any] = field(default_factory=dict)  # status fields expected


STATUS = "status TrainingRun run-1"
CASES = [
    Case(
        "waits for its Model",
        [run()],
        [STATUS, "event TrainingRun run-1 Pending"],
        "Pending",
        ("Accepted", "False", "ModelNotFound"),
    ),
    Case(
        "creates its Job",
        [model(), run()],
        ["create batch/Job run-1", STATUS, "event TrainingRun run-1 Pending"],
        "Pending",
        ("JobCreated", "True", "JobCreated"),
        {"jobName": "run-1"},
    ),
    Case(
        "no place for the artifact",
        [model(storage=None), run()],
        [STATUS, "event TrainingRun run-1 Pending"],
        "Pending",
        ("Accepted", "False", "NoOutputLocation"),
    ),
    Case(
        "a Job of that name that is not its own",
        [model(), run(), job(owner_uid="someone-else")],
        [STATUS, "event TrainingRun run-1 Failed"],
        "Failed",
        ("JobCreated", "False", "NameConflict"),
    ),
    Case(
        "running quietly (no Event for Running)",
        [model(), run(), job(active=1), pod()],
        [STATUS],
        "Running",
        ("Running", "True", "PodRunning"),
        {"reproducibility": {"image": "trainer@sha256:" + "b" * 64}},
    ),
    Case(
        "stuck pulling its image",
        [
            model(),
            run(),
            job(active=1),
            pod(phase="Pending", waiting={"reason": "ImagePullBackOff"}),
        ],
        [STATUS, "event TrainingRun run-1 Pending"],
        "Pending",
        ("Running", "False", "ImagePullBackOff"),
    ),
    Case(
        "out of memory",
        [
            model(),
            run(),
            job(condition="Failed", failed=1),
            pod(phase="Failed", **terminated(exit_code=137, reason="OOMKilled")),
        ],
        [STATUS, "event TrainingRun run-1 Failed"],
        "Failed",
        ("Failed", "True", "OOMKilled"),
    ),
    Case(
        "succeeds and registers version 1",
        [
            model(),
            run(),
            job(condition="Complete", succeeded=1),
            pod("run-1", "Succeeded", **terminated(report())),
        ],
        ["status Model iris", STATUS, "event TrainingRun run-1 Succeeded"],
        "Succeeded",
        ("Registered", "True", "Registered"),
        {"modelVersion": 1, "metrics": {"accuracy": 0.95}},
    ),
    Case(
        "the gate refuses it",
        [
            model(),
            run(evaluation={"metric": "accuracy", "threshold": 0.99}),
            job(condition="Complete", succeeded=1),
            pod("run-1", "Succeeded", **terminated(report(0.95))),
        ],
        [STATUS, "event TrainingRun run-1 Rejected"],
        "Rejected",
        ("Evaluated", "False", "BelowThreshold"),
    ),
    Case(
        "a malformed report",
        [
            model(),
            run(),
            job(condition="Complete", succeeded=1),
            pod("run-1", "Succeeded", **terminated("{not json")),
        ],
        [STATUS, "event TrainingRun run-1 Failed"],
        "Failed",
        ("Evaluated", "False", "ReportMalformed"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_one_reconcile(case: Case) -> None:
    world = World()
    world.given(*case.given)
    _, writes = await world.reconcile(kinds.TRAININGRUN, "run-1")
    assert summary(writes) == case.writes
    status = world.status(kinds.TRAININGRUN, "run-1")
    assert status["phase"] == case.phase
    type_, value, reason = case.condition
    assert world.condition(kinds.TRAININGRUN, "run-1", type_) == (value, reason)
    for key, expected in case.extra.items():
        if isinstance(expected, dict):
            assert expected.items() <= status[key].items(), key
        else:
            assert status[key] == expected, key


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_a_second_reconcile_writes_nothing(case: Case) -> None:
    """Level-based: once the status says what the world says, reconciling again is free."""
    world = World()
    world.given(*case.given)
    await world.reconcile(kinds.TRAININGRUN, "run-1")
    _, writes = await world.reconcile(kinds.TRAININGRUN, "run-1")
    assert writes == []


async def test_a_missing_report_is_waited_for_then_failed() -> None:
    world = World()
    world.given(
        model(),
        run(),
        job(condition="Complete", succeeded=1, completionTime="2026-01-01T12:00:00Z"),
    )
    requeue, _ = await world.reconcile(kinds.TRAININGRUN, "run-1")
    assert requeue == 2.0  # the pod's watch event may trail the Job's
    assert world.status(kinds.TRAININGRUN, "run-1")["phase"] != "Failed"
    world.clock.advance(31)
    await world.reconcile(kinds.TRAININGRUN, "run-1")
    assert world.condition(kinds.TRAININGRUN, "run-1", "Evaluated") == ("False", "ReportMissing")


async def test_ttl_deletes_a_finished_run_once_due() -> None:
    world = World()
    world.given(
        model(),
        run(ttlSecondsAfterFinished=120),
        job(condition="Failed", failed=1),
        pod(phase="Failed", **terminated(exit_code=1, reason="Error")),
    )
    delay, _ = await world.reconcile(kinds.TRAININGRUN, "run-1")
    assert delay == 60  # failed at 11:59, 120 s to live, now 12:00
    world.clock.advance(59)
    assert summary((await world.reconcile(kinds.TRAININGRUN, "run-1"))[1]) == []
    world.clock.advance(1)
    _, writes = await world.reconcile(kinds.TRAININGRUN, "run-1")
    assert summary(writes) == ["delete TrainingRun run-1"]


async def test_registration_survives_a_conflict_and_counts_once() -> None:
    world = World()
    world.given(
        model(),
        run(),
        job(condition="Complete", succeeded=1),
        pod("run-1", "Succeeded", **terminated(report())),
    )
    world.kube.conflicts = 1
    before = metrics.VERSIONS_REGISTERED._value.get()
    await world.reconcile(kinds.TRAININGRUN, "run-1")
    versions = world.status(kinds.MODEL, "iris")["versions"]
    assert [(v["version"], v["source"]["trainingRun"]) for v in versions] == [(1, "run-1")]
    assert metrics.VERSIONS_REGISTERED._value.get() == before + 1
    # A retry (an operator restarted mid-way) finds the version by the run's UID.
    status = world.status(kinds.TRAININGRUN, "run-1")
    world.kube.objects[(API, "TrainingRun", NS, "run-1")]["status"] = {}
    world.sync()
    await world.reconcile(kinds.TRAININGRUN, "run-1")
    assert len(world.status(kinds.MODEL, "iris")["versions"]) == 1
    assert world.status(kinds.TRAININGRUN, "run-1")["modelVersion"] == status["modelVersion"]
    assert metrics.VERSIONS_REGISTERED._value.get() == before + 1


def test_the_report_fixture_is_a_valid_report() -> None:
    from modelwerk.report import parse_report

    assert parse_report(report()).metrics == {"accuracy": 0.95}
    assert json.loads(report())["v"] == 1


def failed_create(job_uid: str, message: str, at: str = T0) -> dict[str, Any]:
    """The Warning Event the Job controller posts when it cannot create a pod."""
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"run-1.{at[-3:-1]}", "namespace": NS},
        "involvedObject": {"kind": "Job", "name": "run-1", "namespace": NS, "uid": job_uid},
        "reason": "FailedCreate",
        "type": "Warning",
        "message": message,
        "lastTimestamp": at,
    }


QUOTA = (
    'Error creating: pods "run-1-7p72k" is forbidden: exceeded quota: q, requested: pods=1, '
    "used: pods=0, limited: pods=0"
)


async def test_pods_refused_by_a_quota_are_a_false_condition_with_its_message() -> None:
    """The Job controller says it only in Events: a Job without pods after a few seconds has its
    FailedCreate Events read (the newest counts), again every RECHECK_SECONDS until a pod
    exists; the run then goes on."""
    world = World()
    refused_job = job()
    refused_job["metadata"].update(uid="uid-job-1", creationTimestamp=T0)
    world.given(
        model(),
        run(),
        refused_job,
        failed_create("uid-job-1", "Error creating: pods is forbidden: an older refusal", T0),
        failed_create("uid-job-1", QUOTA, "2026-01-01T11:59:30Z"),
        failed_create("uid-other", "Error creating: another Job's refusal", "2026-01-01T12:00:00Z"),
    )
    requeue, writes = await world.reconcile(kinds.TRAININGRUN, "run-1")
    assert summary(writes) == [STATUS, "event TrainingRun run-1 Pending"]
    assert requeue == 15.0
    (running,) = [
        c for c in world.status(kinds.TRAININGRUN, "run-1")["conditions"] if c["type"] == "Running"
    ]
    assert (running["status"], running["reason"]) == ("False", "QuotaExceeded")
    assert running["message"] == f"the Job's pod is refused: {QUOTA}"
    # Unchanged world: no write.
    assert (await world.reconcile(kinds.TRAININGRUN, "run-1"))[1] == []
    # The quota raised: the pod is created and runs.
    world.given(pod())
    refused_job["status"]["active"] = 1
    world.given(refused_job)
    await world.reconcile(kinds.TRAININGRUN, "run-1")
    assert world.condition(kinds.TRAININGRUN, "run-1", "Running") == ("True", "PodRunning")


async def test_a_new_job_without_pods_is_given_time_before_its_events_are_read() -> None:
    world = World()
    fresh = job()
    fresh["metadata"]["uid"] = "uid-job-1"
    world.given(model(), run(), fresh, failed_create("uid-job-1", QUOTA, "2026-01-01T12:00:00Z"))
    requeue, _ = await world.reconcile(kinds.TRAININGRUN, "run-1")
    assert requeue == 5.0  # created just now (the fake's clock)
    assert world.condition(kinds.TRAININGRUN, "run-1", "Running") == ("False", "PodPending")
    world.clock.advance(5)
    requeue, _ = await world.reconcile(kinds.TRAININGRUN, "run-1")
    assert world.condition(kinds.TRAININGRUN, "run-1", "Running") == ("False", "QuotaExceeded")
    assert requeue == 15.0


async def test_pods_refused_by_admission_name_the_refusal() -> None:
    world = World()
    refused_job = job()
    refused_job["metadata"].update(uid="uid-job-1", creationTimestamp=T0)
    denied = 'Error creating: pods "run-1-x" is forbidden: maximum cpu usage per Pod is 1'
    world.given(model(), run(), refused_job, failed_create("uid-job-1", denied))
    await world.reconcile(kinds.TRAININGRUN, "run-1")
    assert world.condition(kinds.TRAININGRUN, "run-1", "Running") == (
        "False",
        "PodCreationRefused",
    )


async def test_a_missing_secret_is_the_kubelets_message() -> None:
    """The Model's storage.secretRef becomes the pod's envFrom: without the Secret the kubelet
    never starts the container, and says which Secret (the operator may not read Secrets)."""
    world = World()
    missing = 'secret "s3-creds" not found'
    world.given(
        model(storage={"uri": "s3://bucket/iris", "secretRef": {"name": "s3-creds"}}),
        run(),
        job(active=1),
        pod(
            phase="Pending",
            waiting={"reason": "CreateContainerConfigError", "message": missing},
        ),
    )
    await world.reconcile(kinds.TRAININGRUN, "run-1")
    status = world.status(kinds.TRAININGRUN, "run-1")
    assert status["phase"] == "Pending"
    (running,) = [c for c in status["conditions"] if c["type"] == "Running"]
    assert (running["status"], running["reason"], running["message"]) == (
        "False",
        "CreateContainerConfigError",
        missing,
    )
    assert "Failed" not in {c["type"] for c in status["conditions"]}


@pytest.mark.parametrize(
    ("annotations", "allowed"),
    [
        (None, False),
        ({}, False),
        ({"modelwerk.io/trainingruns-allowed": "false"}, False),
        ({"modelwerk.io/trainingruns-allowed": "true"}, True),
    ],
)
async def test_a_service_account_is_used_only_when_it_allows_runs(
    annotations: dict[str, str] | None, allowed: bool
) -> None:
    """None: the ServiceAccount does not exist."""
    world = World()
    world.given(model(), run(serviceAccountName="trainer"))
    if annotations is not None:
        world.given(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "trainer", "namespace": NS, "annotations": annotations},
            }
        )
    _, writes = await world.reconcile(kinds.TRAININGRUN, "run-1")
    if allowed:
        assert summary(writes)[0] == "create batch/Job run-1"
        return
    assert summary(writes) == [STATUS, "event TrainingRun run-1 Failed"]
    assert world.condition(kinds.TRAININGRUN, "run-1", "JobCreated") == (
        "False",
        "ServiceAccountNotAllowed",
    )
    assert world.status(kinds.TRAININGRUN, "run-1")["phase"] == "Failed"
    assert world.kube.find(kinds.JOB, "run-1") is None
    # Finished: the ServiceAccount is not asked for again.
    _, writes = await world.reconcile(kinds.TRAININGRUN, "run-1")
    assert writes == []
