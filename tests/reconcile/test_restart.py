"""A restart writes nothing, in any state: a fresh operator (new caches, listed complete; new
queues; no memory of the Events it posted) over the same objects reconciles every one of them
and writes nothing, neither status nor children nor Events. Events are posted by the status
write that records their transition (reconcilers/common.write_status), so a status already
saying so posts nothing again."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from modelwerk import kinds
from tests.reconcile.test_model import DECLARED
from tests.reconcile.test_trainingrun import job, pod, terminated
from tests.reconcile.test_validation import gated_run, validated_pod, validation_report
from tests.reconcile.world import (
    API,
    NS,
    SELDON_CRD,
    World,
    deployment,
    model,
    model_with,
    ready,
    registered,
    report,
    run,
    summary,
)


def unschedulable_pod() -> dict[str, Any]:
    body = pod(phase="Pending")
    body["status"]["containerStatuses"] = []
    body["status"]["conditions"] = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": '0/3 nodes are available: persistentvolumeclaim "models" not found.',
        }
    ]
    return body


def failing_deployment(world: World) -> None:
    """The served version's pods never become ready: the Deployment controller gives up."""
    for (api, kind, _, _), obj in world.kube.objects.items():
        if (api, kind) == ("apps/v1", "Deployment"):
            obj["status"] = {
                "observedGeneration": obj["metadata"]["generation"],
                "replicas": 2,
                "updatedReplicas": 2,
                "conditions": [
                    {
                        "type": "Progressing",
                        "status": "False",
                        "reason": "ProgressDeadlineExceeded",
                        "message": 'ReplicaSet "iris-v1-x" has timed out progressing.',
                    }
                ],
            }
    world.sync()


def without_model(world: World) -> None:
    del world.kube.objects[(API, "Model", NS, "iris")]
    world.sync()


Step = Callable[[World], None]


@dataclass
class Case:
    name: str
    given: list[dict[str, Any]]
    phases: dict[str, str]  # "Kind name" -> phase after settling
    steps: list[Step] = field(default_factory=list)  # the world moves on between settles
    crds: tuple[str, ...] = ()


FAILED_VALIDATION = terminated(validation_report(False), exit_code=3, reason="Error")
CASES = [
    Case("a run waiting for its Model", [run()], {"TrainingRun run-1": "Pending"}),
    Case(
        "a run whose pod cannot be scheduled",
        [model(), run(), job(active=1), unschedulable_pod()],
        {"TrainingRun run-1": "Pending"},
    ),
    Case(
        "a run stuck pulling its image",
        [model(), run(), job(active=1), pod(phase="Pending", waiting={"reason": "ErrImagePull"})],
        {"TrainingRun run-1": "Pending"},
    ),
    Case(
        "a run killed for memory",
        [
            model(),
            run(),
            job(condition="Failed", failed=1),
            pod(phase="Failed", **terminated(exit_code=137, reason="OOMKilled")),
        ],
        {"TrainingRun run-1": "Failed"},
    ),
    Case(
        "a run whose Job name is taken",
        [model(), run(), job(owner_uid="someone-else")],
        {"TrainingRun run-1": "Failed"},
    ),
    Case(
        "a run refused by the gate",
        [
            model(),
            run(evaluation={"metric": "accuracy", "threshold": 0.99}),
            job(condition="Complete", succeeded=1),
            pod("run-1", "Succeeded", **terminated(report(0.95))),
        ],
        {"TrainingRun run-1": "Rejected"},
    ),
    Case(
        "a run refused by its data",
        [
            model(),
            gated_run(),
            job(condition="Failed", failed=1),
            validated_pod("Failed", FAILED_VALIDATION, waiting={"reason": "PodInitializing"}),
        ],
        {"TrainingRun run-1": "Rejected"},
    ),
    Case(
        "a run registered",
        [
            model(),
            run(),
            job(condition="Complete", succeeded=1),
            pod("run-1", "Succeeded", **terminated(report())),
        ],
        {"TrainingRun run-1": "Succeeded", "Model iris": "Ready"},
    ),
    Case(
        "a Model with a conflicting declared version",
        [{**model_with(registered(1)), "spec": {**model()["spec"], "versions": [DECLARED]}}],
        {"Model iris": "Degraded"},
    ),
    Case(
        "a Model with an alias naming no version",
        [model(aliases={"production": 7})],
        {"Model iris": "Degraded"},
    ),
    Case("a Deployment without its Model", [deployment()], {"Deployment iris": "Pending"}),
    Case(
        "a Deployment of a version without a digest",
        [model_with(registered(1, digest=None)), deployment()],
        {"Deployment iris": "Pending"},
    ),
    Case(
        "a Deployment waiting for its pods (Ready=False)",
        [model_with(registered(1)), deployment()],
        {"Deployment iris": "Progressing"},
    ),
    Case(
        "a Deployment waiting for Seldon Core",
        [model_with(registered(1)), deployment(runtime="seldon")],
        {"Deployment iris": "Progressing"},
        crds=(SELDON_CRD,),
    ),
    Case(
        "a Deployment whose version never becomes ready",
        [model_with(registered(1)), deployment()],
        {"Deployment iris": "Degraded"},
        steps=[failing_deployment],
    ),
    Case(
        "a Deployment serving on after its Model was deleted",
        [model_with(registered(1)), deployment()],
        {"Deployment iris": "Degraded"},
        steps=[ready, without_model],
    ),
    Case(
        "a Deployment serving the previous version while the new one fails",
        [model_with(registered(1), registered(2)), deployment()],
        {"Deployment iris": "Degraded"},
        steps=[ready, lambda w: _ask_for_version(w, 2), failing_deployment],
    ),
]


def _ask_for_version(world: World, number: int) -> None:
    body = world.kube.find(kinds.DEPLOYMENT, "iris")
    assert body is not None
    body["spec"]["version"] = number
    body["metadata"]["generation"] += 1
    world.sync()


async def settled(case: Case) -> World:
    world = World(crds=case.crds)
    world.given(*case.given)
    await world.settle()
    for step in case.steps:
        step(world)
        await world.settle()
    phases = {
        f"{k.kind} {name}": world.status(k, name).get("phase") for k, name in world.reconciled()
    }
    assert {k: phases.get(k) for k in case.phases} == case.phases
    return world


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_a_restart_writes_nothing(case: Case) -> None:
    world = await settled(case)
    restarted = await world.restarted()
    assert summary(await restarted.reconcile_all()) == []
    # Nor later, once the fresh operator's requeues come due (nothing was remembered).
    restarted.clock.advance(60)
    assert summary(await restarted.reconcile_all()) == []


async def test_an_event_is_posted_once_per_transition_across_restarts() -> None:
    """The unschedulable run's Warning goes with the write that records it; the operator
    restarted twice posts it no more, and the pod scheduled at last is a transition again."""
    world = World()
    world.given(model(), run(), job(active=1), unschedulable_pod())
    writes = await world.reconcile_all()
    assert [w for w in summary(writes) if w.startswith("event")] == [
        "event TrainingRun run-1 Pending"
    ]
    for _ in range(2):
        world = await world.restarted()
        assert summary(await world.reconcile_all()) == []
    world.kube.put(pod(phase="Running", running={}))
    world.sync()
    writes = await world.reconcile_all()
    assert summary(writes) == ["status TrainingRun run-1"]  # Running is quiet by design
    assert world.condition(kinds.TRAININGRUN, "run-1", "Running") == ("True", "PodRunning")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_the_start_up_listing_fills_the_caches_as_the_watches_would(case: Case) -> None:
    """wiring.sync_caches: every cached kind, children by their owner label only, kinds
    without a CRD skipped; the same objects the watch events would have cached."""
    world = await settled(case)
    listed = await world.restarted()
    for kind in kinds.CACHED:
        expected = sorted(o["metadata"]["name"] for o in world.mgr.store(kind).values())
        got = sorted(o["metadata"]["name"] for o in listed.mgr.store(kind).values())
        assert got == expected, kind
