"""The operator's HTTP endpoint: Prometheus metrics and the Alertmanager webhook receiver.

Liveness is kopf's own endpoint on a separate port (see cli.py); keeping metrics apart means a
slow scrape can never fail a liveness probe.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modelwerk import metrics, webhook
from modelwerk.runtime import Runtime


async def _metrics(_: web.Request) -> web.Response:
    body = generate_latest(metrics.REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def build_app(rt: Runtime) -> web.Application:
    app = web.Application(client_max_size=webhook.MAX_BODY)
    app.router.add_get("/metrics", _metrics)
    app.router.add_post(webhook.PATH, webhook.handler(rt))
    return app


async def start(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
