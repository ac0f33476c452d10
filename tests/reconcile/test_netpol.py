"""The workload NetworkPolicy option: a TrainingRun's policy is created before its Job (no pod
of the run starts unconfined), once; a Deployment's is a child like the others, and goes when
the option is turned off. Without the option the operator creates none."""

from __future__ import annotations

import dataclasses

from modelwerk import kinds
from modelwerk.api.trainingrun import TrainingRun
from modelwerk.reconcilers.netpol import ensure_training_policy
from tests.reconcile.test_no_writes import POLICY, converged
from tests.reconcile.test_no_writes import Case as NoWritesCase
from tests.reconcile.world import World, model, run, summary


async def test_a_run_gets_its_policy_before_its_job_and_only_once() -> None:
    world = World(network_policy=POLICY)
    world.given(model(), run())
    _, writes = await world.reconcile(kinds.TRAININGRUN, "run-1")
    created = [w for w in summary(writes) if w.startswith("create")]
    assert created == [
        "create networking.k8s.io/NetworkPolicy run-1-training",
        "create batch/Job run-1",
    ]
    _, writes = await world.reconcile(kinds.TRAININGRUN, "run-1")
    assert summary(writes) == []


async def test_a_gang_attempt_after_the_first_finds_its_policy_there() -> None:
    world = World(network_policy=POLICY)
    world.given(model(), run(workers={"replicas": 2}))
    await world.reconcile(kinds.TRAININGRUN, "run-1")
    policies = [o for o in world.kube.objects.values() if o["kind"] == "NetworkPolicy"]
    assert [p["metadata"]["name"] for p in policies] == ["run-1-training"]
    # What the next attempt does before its Job: a create answered AlreadyExists is no error.
    body = world.kube.objects[next(k for k in world.kube.objects if k[1] == "TrainingRun")]
    await ensure_training_policy(world.mgr, TrainingRun.from_body(body), body)
    assert len([o for o in world.kube.objects.values() if o["kind"] == "NetworkPolicy"]) == 1


async def test_without_the_option_no_policy_is_created() -> None:
    world = World()
    world.given(model(), run())
    _, writes = await world.reconcile(kinds.TRAININGRUN, "run-1")
    assert not [w for w in summary(writes) if "NetworkPolicy" in w]


async def test_turning_the_option_off_deletes_the_serving_policy() -> None:
    world = await converged(NoWritesCase("native", {}, network_policy=POLICY))
    assert [p["metadata"]["name"] for p in world.mgr.store(kinds.NETWORK_POLICY).values()] == [
        "iris-serving"
    ]
    world.mgr.config = dataclasses.replace(world.mgr.config, network_policy=None)
    _, writes = await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert summary(writes) == ["delete networking.k8s.io/NetworkPolicy iris-serving"]
    _, writes = await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert summary(writes) == []
