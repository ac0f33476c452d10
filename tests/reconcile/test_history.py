"""History bookkeeping: every alias move and every change of what a Deployment serves is
appended in the same status write that makes it, once (a restarted operator, here a fresh
World over the same stored objects, finds it recorded and writes nothing), bounded, with the
entries that drop out posted as Events."""

from __future__ import annotations

from typing import Any

from modelwerk import kinds
from modelwerk.api.governance import ANNOTATION_MOVED_BY, HISTORY_LIMIT
from tests.reconcile.test_deployment import ready
from tests.reconcile.world import World, deployment, model_with, registered, summary

PROTECTION = {"aliases": [{"alias": "production", "approvers": {"groups": ["approvers"]}}]}


def edit(world: World, kind: Any, name: str, **spec: Any) -> None:
    body = world.kube.find(kind, name)
    assert body is not None
    body["spec"].update(spec)
    body["metadata"]["generation"] = int(body["metadata"].get("generation") or 1) + 1
    world.sync()


def restarted(world: World) -> World:
    """A new operator over the same stored objects: empty caches, nothing in memory."""
    fresh = World()
    fresh.given(*[dict(o) for o in world.kube.objects.values()])
    return fresh


def moves(world: World) -> list[tuple[str, int | None, int | None, str, str | None]]:
    return [
        (h["alias"], h.get("from"), h.get("to"), h["reason"], h.get("by"))
        for h in world.status(kinds.MODEL, "iris").get("history") or []
    ]


async def test_alias_moves_are_recorded_once_across_a_restart() -> None:
    world = World()
    body = model_with(registered(1), registered(2), registered(3))
    body["spec"]["aliases"] = {"production": 1}
    world.given(body)
    _, writes = await world.reconcile(kinds.MODEL, "iris")
    assert summary(writes) == ["status Model iris"]
    assert moves(world) == [("production", None, 1, "Declared", None)]
    assert world.status(kinds.MODEL, "iris")["history"][0]["at"] == world.mgr.timestamp()

    edit(world, kinds.MODEL, "iris", aliases={"production": 2, "candidate": 3})
    _, writes = await world.reconcile(kinds.MODEL, "iris")
    assert summary(writes) == ["status Model iris"]
    # The edit made while the operator is down is recorded when it is back, once.
    edit(world, kinds.MODEL, "iris", aliases={"production": 3})
    world = restarted(world)
    _, writes = await world.reconcile(kinds.MODEL, "iris")
    assert summary(writes) == ["status Model iris"]
    expected = [
        ("production", None, 1, "Declared", None),
        ("candidate", None, 3, "Declared", None),
        ("production", 1, 2, "Declared", None),
        ("candidate", 3, None, "Declared", None),
        ("production", 2, 3, "Declared", None),
    ]
    assert moves(world) == expected
    for again in (world, restarted(world)):
        _, writes = await again.reconcile(kinds.MODEL, "iris")
        assert writes == []
        assert moves(again) == expected


async def test_a_protected_alias_move_names_its_mover_and_promotion_says_promoted() -> None:
    world = World()
    body = model_with(registered(1), {**registered(2), "metrics": {"accuracy": 0.99}})
    body["metadata"]["annotations"] = {ANNOTATION_MOVED_BY: "alice"}
    body["spec"].update(
        aliases={"production": 1, "staging": 1},
        protection=PROTECTION,
        promotion={"alias": "candidate", "metric": "accuracy"},
    )
    world.given(body)
    await world.reconcile(kinds.MODEL, "iris")
    # Only the protected alias is attributed: only there has the policy checked the annotation.
    assert moves(world) == [
        ("candidate", None, 2, "Promoted", None),
        ("production", None, 1, "Declared", "alice"),
        ("staging", None, 1, "Declared", None),
    ]


async def test_history_is_bounded_and_what_drops_out_becomes_an_event() -> None:
    world = World()
    body = model_with(registered(1), registered(2), aliases={"production": 1})
    body["spec"]["aliases"] = {"production": 1}
    old = {"at": "2025-12-31T00:00:00Z", "alias": "production", "reason": "Declared", "to": 1}
    body["status"]["history"] = [old] * HISTORY_LIMIT
    world.given(body)
    edit(world, kinds.MODEL, "iris", aliases={"production": 2})
    _, writes = await world.reconcile(kinds.MODEL, "iris")
    assert summary(writes) == ["status Model iris", "event Model iris AliasHistory"]
    assert writes[1].body["message"] == "production - -> 1 (Declared) at 2025-12-31T00:00:00Z"
    status = world.status(kinds.MODEL, "iris")
    assert len(status["history"]) == HISTORY_LIMIT
    assert status["history"][-1]["to"] == 2
    assert status["historyTrimmed"] == 1


async def test_serving_changes_are_recorded_on_the_deployment() -> None:
    world = World()
    world.given(model_with(registered(1), registered(2)), deployment())
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert "history" not in world.status(kinds.DEPLOYMENT, "iris")  # nothing serves yet
    ready(world)
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    edit(world, kinds.DEPLOYMENT, "iris", canary={"version": 2, "trafficPercent": 25})
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    ready(world)
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    history = world.status(kinds.DEPLOYMENT, "iris")["history"]
    assert [{k: v for k, v in h.items() if k != "at"} for h in history] == [
        {"reason": "Switched", "version": 1},
        {"reason": "CanaryStarted", "version": 1, "canary": 2, "trafficPercent": 25},
    ]
    world = restarted(world)
    ready(world)
    _, writes = await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert summary(writes) == []
    assert world.status(kinds.DEPLOYMENT, "iris")["history"] == history


async def test_a_deployments_history_is_bounded_and_what_drops_out_becomes_an_event() -> None:
    world = World()
    body = deployment()
    old = {"at": "2025-12-31T00:00:00Z", "reason": "Switched", "version": 1}
    body["status"] = {"history": [old] * HISTORY_LIMIT}
    world.given(model_with(registered(1)), body)
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    ready(world)
    _, writes = await world.reconcile(kinds.DEPLOYMENT, "iris")
    (event,) = [w for w in writes if w.verb == "event" and w.body["reason"] == "ServingHistory"]
    assert event.body["message"] == "version 1 (Switched) at 2025-12-31T00:00:00Z"
    status = world.status(kinds.DEPLOYMENT, "iris")
    assert len(status["history"]) == HISTORY_LIMIT
    assert status["history"][-1]["at"] == world.mgr.timestamp()
    assert status["historyTrimmed"] == 1
