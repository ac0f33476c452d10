"""spec.guard against a Prometheus that answers over HTTP (an aiohttp server on localhost
serving the query API with set values): a version that breaches within its window is switched
back from, recorded as Reverted, rejected, announced with its numbers, and not re-promoted; a
healthy one passes when the window ends."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from modelwerk import kinds
from tests.reconcile.test_deployment import ready
from tests.reconcile.test_history import edit
from tests.reconcile.world import World, deployment, model_with, registered, summary

GUARD = {"window": "10m", "interval": "1m", "maxLatencyP99Ms": 200}


@dataclass
class FakePrometheus:
    """/api/v1/query: the request rate, error rate and p99 (seconds) set here, for any version."""

    requests: float = 10.0
    errors: float = 0.0
    p99: float = 0.05
    url: str = ""
    queries: list[str] = field(default_factory=list)

    async def query(self, request: web.Request) -> web.Response:
        q = request.query["query"]
        self.queries.append(q)
        value = (
            self.p99
            if "histogram_quantile" in q
            else (self.errors if "outcome" in q else self.requests)
        )
        result = [{"metric": {}, "value": [0, str(value)]}]
        return web.json_response(
            {"status": "success", "data": {"resultType": "vector", "result": result}}
        )


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[FakePrometheus]:
    """Started in the test's own event loop (a fixture's loop would not serve it meanwhile)."""
    fake = FakePrometheus()
    app = web.Application()
    app.router.add_get("/api/v1/query", fake.query)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    await runner.cleanup()


async def switched_to_two(prometheus: FakePrometheus) -> World:
    world = World(prometheus_url=prometheus.url)
    world.given(model_with(registered(1), registered(2)), deployment(version=1, guard=GUARD))
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    ready(world)
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert "guard" not in world.status(kinds.DEPLOYMENT, "iris")  # nothing to go back to
    edit(world, kinds.DEPLOYMENT, "iris", version=2)
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    ready(world)
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    status = world.status(kinds.DEPLOYMENT, "iris")
    assert status["currentVersion"] == 2
    assert {k: v for k, v in status["guard"].items() if k != "since"} == {
        "version": 2,
        "previousVersion": 1,
        "state": "Watching",
    }
    return world


def _guard(world: World) -> dict[str, Any]:
    return dict(world.status(kinds.DEPLOYMENT, "iris")["guard"])


async def test_a_breach_reverts_to_the_previous_version_once() -> None:
    async with serving() as prometheus:
        await _breach_reverts(prometheus)


async def _breach_reverts(prometheus: FakePrometheus) -> None:
    world = await switched_to_two(prometheus)
    prometheus.p99 = 0.5
    world.clock.advance(60)
    _, writes = await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert "apply apps/Deployment iris-v1" in summary(writes)
    (event,) = [w for w in writes if w.verb == "event" and w.body["reason"] == "GuardReverted"]
    assert event.body["type"] == "Warning"
    assert "p99 latency 500.0 ms > 200 ms" in event.body["message"]
    # Every number measured, not only the one over its limit.
    assert event.body["message"].endswith(
        "(measured over 1m: 10.00 requests/s, 0.00% errors, p99 500.0 ms)"
    ), event.body["message"]
    assert world.condition(kinds.DEPLOYMENT, "iris", "Guard") == ("False", "Reverted")
    status = world.status(kinds.DEPLOYMENT, "iris")
    assert status["rejectedVersions"] == [2]
    assert status["currentVersion"] == 2  # until version 1 is ready again: zero downtime
    assert _guard(world)["state"] == "Reverted"
    assert _guard(world)["latencyP99Ms"] == 500.0
    ready(world)
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    status = world.status(kinds.DEPLOYMENT, "iris")
    assert status["currentVersion"] == 1
    assert [h["reason"] for h in status["history"]] == ["Switched", "Switched", "Reverted"]
    # Healthy again or not, spec.version still says 2: version 1 stays, nothing flips back.
    prometheus.p99 = 0.01
    world.clock.advance(3600)
    ready(world)
    _, writes = await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert summary(writes) == []
    assert world.status(kinds.DEPLOYMENT, "iris")["currentVersion"] == 1


async def test_a_healthy_version_passes_when_its_window_ends() -> None:
    async with serving() as prometheus:
        await _healthy_passes(prometheus)


async def _healthy_passes(prometheus: FakePrometheus) -> None:
    world = await switched_to_two(prometheus)
    world.clock.advance(60)
    requeue, _ = await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert requeue == 60.0
    assert world.condition(kinds.DEPLOYMENT, "iris", "Guard") == ("True", "Watching")
    world.clock.advance(600)
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert _guard(world)["state"] == "Passed"
    assert world.condition(kinds.DEPLOYMENT, "iris", "Guard") == ("True", "Passed")
    assert world.status(kinds.DEPLOYMENT, "iris")["currentVersion"] == 2
    ready(world)
    _, writes = await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert summary(writes) == []
    assert any('version="2"' in q for q in prometheus.queries)


async def test_a_reverted_version_asked_for_again_later_is_not_served() -> None:
    async with serving() as prometheus:
        await _reverted_stays_out(prometheus)


async def _reverted_stays_out(prometheus: FakePrometheus) -> None:
    world = await switched_to_two(prometheus)
    world.given(model_with(registered(1), registered(2), registered(3)))
    prometheus.p99 = 0.5
    world.clock.advance(60)
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    ready(world)
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert world.status(kinds.DEPLOYMENT, "iris")["currentVersion"] == 1
    # Another version comes and passes its window ...
    prometheus.p99 = 0.05
    edit(world, kinds.DEPLOYMENT, "iris", version=3)
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    ready(world)
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert world.status(kinds.DEPLOYMENT, "iris")["currentVersion"] == 3
    world.clock.advance(600)
    await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert _guard(world)["state"] == "Passed"
    # ... then the spec names the reverted one again: 3 keeps serving, 2 is not rolled out.
    edit(world, kinds.DEPLOYMENT, "iris", version=2)
    _, writes = await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert not [w for w in summary(writes) if "iris-v2" in w], summary(writes)
    assert world.condition(kinds.DEPLOYMENT, "iris", "Guard") == ("False", "PreviouslyReverted")
    status = world.status(kinds.DEPLOYMENT, "iris")
    assert (status["currentVersion"], status["rejectedVersions"]) == (3, [2])
    ready(world)
    _, writes = await world.reconcile(kinds.DEPLOYMENT, "iris")
    assert summary(writes) == []
