"""The operator's HTTP endpoint: Prometheus metrics and the Alertmanager webhook receiver.

Liveness is kopf's own endpoint on a separate port (see cli.py); keeping metrics apart means a
slow scrape can never fail a liveness probe.
"""

from __future__ import annotations

from collections import Counter

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modelwerk import metrics, webhook
from modelwerk.manager import Manager


def _refresh_gauges(mgr: Manager) -> None:
    """Gauges that describe the present are computed when scraped, not kept up to date on
    every event."""
    for kind, queue in mgr.queues.items():
        # A follower's queues fill but never run: that is no backlog of its own.
        pending = queue.oldest_pending_seconds() if mgr.leading() else 0.0
        metrics.OLDEST_PENDING.labels(kind.kind).set(pending)
        phases = Counter(
            (body.get("status") or {}).get("phase") or "Unknown"
            for body in mgr.store(kind).values()
        )
        metrics.set_objects(kind.kind, phases)


def build_app(mgr: Manager) -> web.Application:
    async def scrape(_: web.Request) -> web.Response:
        _refresh_gauges(mgr)
        body = generate_latest(metrics.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application(client_max_size=webhook.MAX_BODY)
    app.router.add_get("/metrics", scrape)
    app.router.add_post(webhook.PATH, webhook.handler(mgr))
    return app


async def start(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
