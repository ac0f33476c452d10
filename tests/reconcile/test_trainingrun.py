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
