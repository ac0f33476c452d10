"""A canary promoted by its analysis is recorded on the Model (status.canaryPromotions): the
evidence the admission policy's `requireCanary` reads. Once per version, the first promotion;
a converged world writes nothing more."""

from __future__ import annotations

from typing import Any

from modelwerk import kinds
from tests.reconcile.test_deployment import ready
from tests.reconcile.test_guard import serving
from tests.reconcile.world import World, deployment, model_with, registered, summary

CANARY = {"version": 2, "analysis": {"interval": "1m", "steps": [50, 100]}}


async def promote(world: World, name: str) -> None:
    for _ in range(8):
        await world.reconcile(kinds.DEPLOYMENT, name)
        ready(world)
        canary = world.status(kinds.DEPLOYMENT, name).get("canary") or {}
        if canary.get("state") == "Promoted":
            return
        world.clock.advance(60)
    raise AssertionError(f"{name}'s canary was not promoted: {canary}")


def promotions(world: World) -> list[dict[str, Any]]:
    return list(world.status(kinds.MODEL, "iris").get("canaryPromotions") or [])


async def test_a_promoted_canary_is_recorded_on_the_model_once() -> None:
    async with serving() as prometheus:
        world = World(prometheus_url=prometheus.url)
        world.given(
            model_with(registered(1), registered(2)),
            deployment(version=1, canary=CANARY),
            deployment("iris-b", version=1, canary=CANARY),
        )
        await world.reconcile(kinds.MODEL, "iris")
        assert promotions(world) == []
        await promote(world, "iris")
        (entry,) = promotions(world)
        assert (entry["version"], entry["deployment"]) == (2, "iris")
        # Converged: the next reconciles of both kinds write nothing.
        _, writes = await world.reconcile(kinds.DEPLOYMENT, "iris")
        _, model_writes = await world.reconcile(kinds.MODEL, "iris")
        assert summary(writes) + summary(model_writes) == []
        # Another Deployment promoting the same version later: the first record stays.
        world.clock.advance(600)
        await promote(world, "iris-b")
        assert promotions(world) == [entry]


async def test_a_rolled_back_canary_is_no_evidence() -> None:
    async with serving() as prometheus:
        prometheus.p99 = 5.0
        world = World(prometheus_url=prometheus.url)
        analysis = {**CANARY["analysis"], "maxLatencyP99Ms": 200}
        world.given(
            model_with(registered(1), registered(2)),
            deployment(version=1, canary={**CANARY, "analysis": analysis}),
        )
        for _ in range(4):
            await world.reconcile(kinds.DEPLOYMENT, "iris")
            ready(world)
            world.clock.advance(60)
        assert world.status(kinds.DEPLOYMENT, "iris")["canary"]["state"] == "RolledBack"
        await world.reconcile(kinds.MODEL, "iris")
        assert promotions(world) == []
