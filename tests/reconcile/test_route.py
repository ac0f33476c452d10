"""The native runtime's exact split (reconcilers/route.py): with the HTTPRoute CRD an HTTPRoute
whose weights follow the canary and a version switch, one Service per version; without it the
replica split, and status.trafficSplit says which."""

from __future__ import annotations

from typing import Any

from modelwerk import kinds
from tests.reconcile.world import (
    HTTPROUTE_CRD,
    World,
    deployment,
    model_with,
    ready,
    registered,
    summary,
)


def weights(world: World) -> list[tuple[str, int]]:
    route = world.kube.find(kinds.HTTP_ROUTE, "iris")
    assert route is not None, "no HTTPRoute"
    refs = route["spec"]["rules"][0]["backendRefs"]
    return [(r["name"], r["weight"]) for r in refs]


def services(world: World) -> list[str]:
    return sorted(
        o["metadata"]["name"] for (_, k, _, _), o in world.kube.objects.items() if k == "Service"
    )


def respec(world: World, **spec: Any) -> None:
    body = world.kube.find(kinds.DEPLOYMENT, "iris")
    assert body is not None
    body["spec"].update(spec)
    body["spec"] = {k: v for k, v in body["spec"].items() if v is not None}
    body["metadata"]["generation"] += 1
    world.sync()


async def test_the_weights_follow_the_canary_and_a_switch() -> None:
    world = World(crds=(HTTPROUTE_CRD,))
    world.given(
        model_with(registered(1), registered(2), registered(3)),
        deployment(canary={"version": 2, "trafficPercent": 10}),
    )
    await world.reconcile(kinds.MODEL, "iris")
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    # No canary pod is available yet: its 10 % would be the gateway's errors.
    assert weights(world) == [("iris-v1", 100), ("iris-v2", 0)]
    assert services(world) == ["iris", "iris-v1", "iris-v2"]
    assert world.status(kinds.DEPLOYMENT, "iris")["trafficSplit"] == "HTTPRoute"
    ready(world)
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    # Exact on 2 replicas, where the replica split can only give 50 %.
    assert weights(world) == [("iris-v1", 90), ("iris-v2", 10)]
    _, writes = await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert summary(writes) == []

    respec(world, canary={"version": 2, "trafficPercent": 35})
    _, writes = await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert weights(world) == [("iris-v1", 65), ("iris-v2", 35)]
    assert "apply gateway.networking.k8s.io/HTTPRoute iris" in summary(writes)

    # A switch to version 3 without a canary: version 1 takes everything until 3 is ready.
    respec(world, version=3, canary=None)
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert weights(world) == [("iris-v1", 100), ("iris-v3", 0)]
    assert services(world) == ["iris", "iris-v1", "iris-v3"]
    ready(world)
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert weights(world) == [("iris-v3", 100)]
    assert services(world) == ["iris", "iris-v3"]
    assert world.status(kinds.DEPLOYMENT, "iris")["currentVersion"] == 3
    restarted = await world.restarted()
    assert summary(await restarted.reconcile_all()) == []


async def test_without_the_crd_the_replicas_split_and_nothing_else_is_made() -> None:
    world = World()
    world.given(
        model_with(registered(1), registered(2)),
        deployment(canary={"version": 2, "trafficPercent": 10}),
    )
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    ready(world)
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert world.kube.find(kinds.HTTP_ROUTE, "iris") is None
    assert services(world) == ["iris"]
    status = world.status(kinds.DEPLOYMENT, "iris")
    assert status["trafficSplit"] == "Replicas"
    assert status["phase"] == "Available"


async def test_a_gateway_api_installed_later_brings_the_route() -> None:
    world = World()
    world.given(model_with(registered(1)), deployment())
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    ready(world)
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert world.status(kinds.DEPLOYMENT, "iris")["trafficSplit"] == "Replicas"
    world.kube.crds.add(HTTPROUTE_CRD)
    later = await world.restarted()
    await later.reconcile(kinds.DEPLOYMENT, "iris")
    assert weights(later) == [("iris-v1", 100)]
    assert later.status(kinds.DEPLOYMENT, "iris")["trafficSplit"] == "HTTPRoute"
