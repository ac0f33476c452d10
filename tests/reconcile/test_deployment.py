"""Deployment reconciler, table-driven: given a Model's registered versions and the
Deployment's children in the caches, one reconcile applies these children and writes this
status (converged Deployments write nothing: test_no_writes.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from modelwerk import kinds
from tests.reconcile.world import (
    MONITORING_CRDS,
    NS,
    SELDON_CRD,
    World,
    deployment,
    model,
    model_with,
    ready,
    registered,
    summary,
)

STATUS = "status Deployment iris"


@dataclass
class Case:
    name: str
    given: list[dict[str, Any]]
    writes: list[str]
    phase: str
    condition: tuple[str, str, str]
    crds: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case(
        "its Model does not exist",
        [deployment()],
        [STATUS, "event Deployment iris Pending"],
        "Pending",
        ("Ready", "False", "ModelNotFound"),
    ),
    Case(
        "the alias is not set",
        [model_with(registered(1)), deployment(version=None, alias="production")],
        [STATUS, "event Deployment iris Pending"],
        "Pending",
        ("Ready", "False", "AliasNotSet"),
    ),
    Case(
        "a version without a digest is not served",
        [model_with(registered(1, digest=None)), deployment()],
        [STATUS, "event Deployment iris Pending"],
        "Pending",
        ("Ready", "False", "NoDigest"),
    ),
    Case(
        "native: a Deployment per version behind one Service",
        [model_with(registered(1)), deployment()],
        [
            "apply apps/Deployment iris-v1",
            "apply Service iris",
            STATUS,
            "event Deployment iris Progressing",
        ],
        "Progressing",
        ("Progressing", "True", "RollingOut"),
        extra={"endpoint": "http://iris.ns.svc:8000", "runtime": "native"},
    ),
    Case(
        "native with autoscaling and a PDB",
        [
            model_with(registered(1)),
            deployment(
                replicas=None,
                autoscaling={"minReplicas": 1, "maxReplicas": 3},
                pdb={"minAvailable": 1},
            ),
        ],
        [
            "apply apps/Deployment iris-v1",
            "apply Service iris",
            "apply autoscaling/HorizontalPodAutoscaler iris-v1",
            "apply policy/PodDisruptionBudget iris",
            STATUS,
            "event Deployment iris Progressing",
        ],
        "Progressing",
        ("Progressing", "True", "RollingOut"),
    ),
    Case(
        "auto picks Seldon when its CRD is installed",
        [model_with(registered(1)), deployment(runtime="auto")],
        [
            "apply machinelearning.seldon.io/SeldonDeployment iris",
            STATUS,
            "event Deployment iris Progressing",
        ],
        "Progressing",
        ("Progressing", "True", "WaitingForSeldon"),
        crds=(SELDON_CRD,),
        extra={"runtime": "seldon"},
    ),
    Case(
        "monitoring with the Prometheus Operator's CRDs",
        [model_with(registered(1)), deployment()],
        [
            "apply apps/Deployment iris-v1",
            "apply Service iris",
            "apply monitoring.coreos.com/PrometheusRule iris",
            "apply monitoring.coreos.com/ServiceMonitor iris",
            STATUS,
            "event Deployment iris Progressing",
        ],
        "Progressing",
        ("MonitoringReady", "True", "Generated"),
        crds=MONITORING_CRDS,
    ),
    Case(
        "monitoring without the CRDs",
        [model_with(registered(1)), deployment()],
        [
            "apply apps/Deployment iris-v1",
            "apply Service iris",
            STATUS,
            "event Deployment iris Progressing",
        ],
        "Progressing",
        ("MonitoringReady", "False", "CRDNotInstalled"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_one_reconcile(case: Case) -> None:
    world = World(crds=case.crds)
    world.given(*case.given)
    _, writes = await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert summary(writes) == case.writes
    status = world.status(kinds.DEPLOYMENT, "iris")
    assert status["phase"] == case.phase
    type_, value, reason = case.condition
    assert world.condition(kinds.DEPLOYMENT, "iris", type_) == (value, reason)
    for key, expected in case.extra.items():
        assert status[key] == expected, key


async def serving_v1_asked_for_v2(*more: dict[str, Any]) -> World:
    """Version 1 served and ready; then the spec asks for version 2 (with `more` objects, e.g.
    its pods, in the world)."""
    world = World()
    world.given(model_with(registered(1), registered(2)), deployment())
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    ready(world)
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    body = world.kube.find(kinds.DEPLOYMENT, "iris")
    assert body is not None
    body["spec"]["version"] = 2
    body["metadata"]["generation"] = 2
    world.given(*more)
    return world


async def test_a_version_change_keeps_the_old_version_until_the_new_one_is_ready() -> None:
    world = await serving_v1_asked_for_v2()
    _, writes = await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert "apply apps/Deployment iris-v2" in summary(writes)
    assert "delete apps/Deployment iris-v1" not in summary(writes)
    assert world.condition(kinds.DEPLOYMENT, "iris", "Ready") == ("True", "ServingPrevious")
    ready(world)
    _, writes = await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert "delete apps/Deployment iris-v1" in summary(writes)
    assert world.status(kinds.DEPLOYMENT, "iris")["currentVersion"] == 2


def refusing_pod(version: int, exit_code: int) -> dict[str, Any]:
    """A serving pod whose model server exited (the kubelet's termination message is the log's
    last line, as FallbackToLogsOnError keeps it) and waits to be restarted."""
    message = "refusing to serve pvc://models/iris/v2/model.joblib: digest mismatch for ..."
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"iris-v{version}-abc",
            "namespace": NS,
            "labels": {
                "modelwerk.io/deployment": "iris",
                "modelwerk.io/model-version": str(version),
            },
        },
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "model-server",
                    "ready": False,
                    "restartCount": 3,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {
                        "terminated": {"exitCode": exit_code, "message": f"x\n{message}\n"}
                    },
                }
            ],
        },
    }


@pytest.mark.parametrize("exit_code", [3, 1], ids=["artifact refused", "other crash"])
async def test_a_refused_artifact_is_not_ready_while_the_previous_version_serves(
    exit_code: int,
) -> None:
    world = await serving_v1_asked_for_v2(refusing_pod(2, exit_code))
    _, writes = await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert "delete apps/Deployment iris-v1" not in summary(writes)
    status = world.status(kinds.DEPLOYMENT, "iris")
    assert status["currentVersion"] == 1
    ready_cond = {c["type"]: c for c in status["conditions"]}["Ready"]
    if exit_code == 3:
        assert (ready_cond["status"], ready_cond["reason"]) == ("False", "ArtifactRefused")
        assert "digest mismatch" in ready_cond["message"]
        assert "version 1 keeps serving" in ready_cond["message"]
        assert world.condition(kinds.DEPLOYMENT, "iris", "Degraded") == ("True", "ArtifactRefused")
    else:  # an ordinary crash is a rollout still in progress until its deadline
        assert (ready_cond["status"], ready_cond["reason"]) == ("True", "ServingPrevious")
    _, writes = await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert writes == []


async def test_the_models_deletion_leaves_the_served_version_serving() -> None:
    world = World()
    world.given(model_with(registered(1)), deployment())
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    ready(world)
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    del world.kube.objects[(model()["apiVersion"], "Model", NS, "iris")]
    world.sync()
    _, writes = await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert [w for w in summary(writes) if w.startswith(("apply", "delete"))] == []
    assert world.condition(kinds.DEPLOYMENT, "iris", "Degraded") == ("True", "ModelNotFound")
    assert world.status(kinds.DEPLOYMENT, "iris")["phase"] == "Degraded"


def test_model_fixture_is_a_valid_model() -> None:
    from modelwerk.api.model import Model

    assert Model.from_body(model()).spec.storage is not None
