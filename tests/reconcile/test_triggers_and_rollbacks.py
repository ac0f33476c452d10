"""Paths that need time or Prometheus, on the fake clock: a schedule trigger starts one run per
scheduled time, and a canary whose error rate breaches its bound is rolled back with the numbers
measured. Prometheus is a real HTTP server here, answering the operator's three queries."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from modelwerk import kinds
from tests.reconcile.test_deployment import ready
from tests.reconcile.world import World, deployment, model, model_with, registered, summary


def retrain_model(schedule: str) -> dict[str, Any]:
    body = model(
        retrain={"template": {"image": "trainer:1"}, "schedule": schedule, "maxConcurrent": 1}
    )
    body["metadata"]["creationTimestamp"] = "2026-01-01T12:00:00Z"  # the fake clock's start
    return body


def runs(world: World) -> list[dict[str, Any]]:
    return [o for (api, k, _, _), o in world.kube.objects.items() if k == "TrainingRun"]


async def test_a_schedule_starts_one_run_per_scheduled_time() -> None:
    world = World()
    world.given(retrain_model("*/10 * * * *"))
    requeue, writes = await world.reconcile(kinds.MODEL, "iris")
    assert runs(world) == []
    assert requeue == 600.0  # 12:10, the next scheduled time
    world.clock.advance(600)
    _, writes = await world.reconcile(kinds.MODEL, "iris")
    (run,) = runs(world)
    name = run["metadata"]["name"]
    assert summary(writes) == [
        f"create TrainingRun {name}",
        "event Model iris RetrainStarted",
        "status Model iris",
    ]
    assert run["spec"]["model"] == "iris"
    (trigger,) = world.status(kinds.MODEL, "iris")["retrain"]["triggers"]
    assert (trigger["reason"], trigger["trainingRun"]) == ("Schedule", name)
    # Reconciled again at the same time (a restart, another event): nothing more.
    _, writes = await world.reconcile(kinds.MODEL, "iris")
    assert writes == []
    assert len(runs(world)) == 1
    # The next scheduled time, with the first run unfinished: maxConcurrent 1 skips it, and
    # says so.
    world.clock.advance(600)
    _, writes = await world.reconcile(kinds.MODEL, "iris")
    assert len(runs(world)) == 1
    assert "event Model iris RetrainSkipped" in summary(writes)
    reasons = [t["reason"] for t in world.status(kinds.MODEL, "iris")["retrain"]["triggers"]]
    assert reasons == ["Schedule", "Schedule"]


# --- a canary rolled back on its error rate -------------------------------------------------


@contextlib.asynccontextmanager
async def prometheus() -> AsyncIterator[str]:
    """The canary serves 10 requests/s, 0.5/s of them 5xx (5%), at a p99 of 20 ms. (Started in
    the test's own event loop.)"""

    async def query(request: web.Request) -> web.Response:
        q = request.query["query"]
        value = 0.02 if "histogram_quantile" in q else 0.5 if "outcome=" in q else 10.0
        result = [{"metric": {}, "value": [0, str(value)]}]
        return web.json_response(
            {"status": "success", "data": {"resultType": "vector", "result": result}}
        )

    app = web.Application()
    app.router.add_get("/api/v1/query", query)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_a_canary_breaching_its_error_rate_is_rolled_back() -> None:
    async with prometheus() as url:
        await _rolled_back(World(prometheus_url=url))


async def _rolled_back(world: World) -> None:
    canary = {
        "version": 2,
        "trafficPercent": 10,
        "analysis": {
            "interval": "1m",
            "steps": [10, 50, 100],
            "maxErrorRatePercent": 1,
            "maxLatencyP99Ms": 200,
        },
    }
    world.given(model_with(registered(1), registered(2)), deployment(replicas=4, canary=canary))
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    ready(world)
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert "iris-v2" in {
        o["metadata"]["name"] for (_, k, _, _), o in world.kube.objects.items() if k == "Deployment"
    }
    world.clock.advance(60)
    _, writes = await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert "delete apps/Deployment iris-v2" in summary(writes)
    rolled_back = [
        w for w in writes if w.verb == "event" and w.body["reason"] == "CanaryRolledBack"
    ]
    assert len(rolled_back) == 1
    assert rolled_back[0].body["type"] == "Warning"
    status = world.status(kinds.DEPLOYMENT, "iris")
    assert status["canary"]["state"] == "RolledBack"
    assert status["canary"]["errorRatePercent"] == pytest.approx(5.0)
    assert status["canary"]["trafficPercent"] == 0
    assert status["rejectedVersions"] == [2]
    (analysis,) = [c for c in status["conditions"] if c["type"] == "CanaryAnalysis"]
    assert (analysis["status"], analysis["reason"]) == ("False", "RolledBack")
    assert analysis["message"] == "version 2 rolled back: error rate 5.00% > 1%"
    # The stable version serves on; the rollback stands, and reconciling again is free.
    assert status["currentVersion"] == 1
    ready(world)
    world.clock.advance(60)
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert world.condition(kinds.DEPLOYMENT, "iris", "CanaryAnalysis") == ("False", "RolledBack")
    _, writes = await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert writes == []
