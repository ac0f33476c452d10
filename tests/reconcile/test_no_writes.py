"""No write without a change, for every child kind: a converged Deployment (native or Seldon,
with monitoring, canary, HPA, PDB) costs zero writes on the next reconcile and after a restart,
and a serving pod replaced costs only the status writes its readiness changes need. The table
must cover every child kind of kinds.py, so a new child kind fails here until it has a case."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from modelwerk import constants, kinds
from modelwerk.builders.netpol import NetworkPolicyConfig
from tests.reconcile.world import (
    HTTPROUTE_CRD,
    MONITORING_CRDS,
    SELDON_CRD,
    World,
    deployment,
    model_with,
    ready,
    registered,
    summary,
)

STATUS = "status Deployment iris"
BASELINE = {"features": {"x": {"mean": 1.0, "std": 0.5}}, "featureOrder": ["x"]}
AUTOSCALING = {"replicas": None, "autoscaling": {"minReplicas": 2, "maxReplicas": 4}}


@dataclass(frozen=True)
class Case:
    name: str
    spec: dict[str, Any]
    crds: tuple[str, ...] = ()
    network_policy: NetworkPolicyConfig | None = None


# The operator-wide option (chart value workloadNetworkPolicy): a NetworkPolicy per Deployment.
POLICY = NetworkPolicyConfig(
    ingress_from=({"namespaceSelector": {"matchLabels": {"team": "gateway"}}},),
    egress=({"to": [{"ipBlock": {"cidr": "10.0.0.5/32"}}], "ports": [{"port": 9000}]},),
)


CASES = [
    Case("native", {}),
    Case("native with a PDB", {"pdb": {"minAvailable": 1}}),
    Case("native with a NetworkPolicy", {}, network_policy=POLICY),
    Case(
        "native, HPA, PDB, monitoring",
        {**AUTOSCALING, "pdb": {"minAvailable": 1}},
        MONITORING_CRDS,
    ),
    Case(
        "native with a canary, HPAs and monitoring",
        {**AUTOSCALING, "canary": {"version": 2, "trafficPercent": 25}},
        MONITORING_CRDS,
    ),
    Case(
        "native with a canary behind an HTTPRoute, monitoring",
        # 2 canary pods: losing one keeps the canary's weight (none would move it to 0).
        {"canary": {"version": 2, "trafficPercent": 25}, "replicas": 8},
        (HTTPROUTE_CRD, *MONITORING_CRDS),
    ),
    Case(
        "native behind an HTTPRoute on a Gateway",
        {"gateway": {"parentRefs": [{"name": "web", "namespace": "gw"}]}},
        (HTTPROUTE_CRD,),
    ),
    Case("seldon", {"runtime": "seldon"}, (SELDON_CRD,)),
    Case("seldon with monitoring", {"runtime": "seldon"}, (SELDON_CRD, *MONITORING_CRDS)),
    Case(
        "seldon with a canary and monitoring",
        {"runtime": "seldon", "canary": {"version": 2, "trafficPercent": 10}},
        (SELDON_CRD, *MONITORING_CRDS),
    ),
    Case("seldon with a NetworkPolicy", {"runtime": "seldon"}, (SELDON_CRD,), POLICY),
]


async def converged(case: Case) -> World:
    """The Deployment of `case` rolled out and Available, its children ready."""
    world = World(crds=case.crds, network_policy=case.network_policy)
    # Versions with baselines: the PrometheusRule carries drift rules too.
    world.given(
        model_with(registered(1, baseline=BASELINE), registered(2, baseline=BASELINE)),
        deployment(**case.spec),
    )
    await world.reconcile(kinds.MODEL, "iris")
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    ready(world)
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    ready(world)
    assert world.status(kinds.DEPLOYMENT, "iris")["phase"] == "Available"
    return world


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_a_converged_deployment_writes_nothing(case: Case) -> None:
    world = await converged(case)
    _, writes = await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert summary(writes) == [], "a reconcile that changes nothing wrote"
    restarted = await world.restarted()
    assert summary(await restarted.reconcile_all()) == [], "a restart wrote"


async def test_the_table_covers_every_child_kind() -> None:
    present: set[kinds.Kind] = set()
    for case in CASES:
        present |= (await converged(case)).children()
    missing = set(kinds.owned_by(constants.LABEL_DEPLOYMENT)) - present
    assert not missing, f"child kinds no converged case applies: {sorted(map(str, missing))}"


NATIVE = [c for c in CASES if c.spec.get("runtime") != "seldon"]


@pytest.mark.parametrize("case", NATIVE, ids=[c.name for c in NATIVE])
async def test_a_serving_pod_replaced_costs_only_status_writes(case: Case) -> None:
    """One pod of each version goes away and comes back (evicted, rescheduled): readyReplicas
    follows, one status write each way; no child applied, no phase change, no Event."""
    world = await converged(case)
    before = world.status(kinds.DEPLOYMENT, "iris")
    ready(world, lost=1)
    _, writes = await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert summary(writes) == [STATUS]
    during = world.status(kinds.DEPLOYMENT, "iris")
    assert during["phase"] == "Available"
    assert during["readyReplicas"] < before["readyReplicas"]
    assert during["conditions"] == before["conditions"]
    ready(world)
    _, writes = await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert summary(writes) == [STATUS]
    assert world.status(kinds.DEPLOYMENT, "iris") == before
