from __future__ import annotations

import logging
from typing import Any

import kopf

from modelwerk import httpserver
from modelwerk.k8s import Kube
from modelwerk.settings import connection_info
from modelwerk.wiring import build_manager, sync_caches


@kopf.on.startup(id="runtime")
async def start(
    memo: kopf.Memo,
    settings: kopf.OperatorSettings,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    **_: Any,
) -> None:
    info = connection_info(settings=settings, logger=logger)
    if info is None:
        raise kopf.PermanentError("no Kubernetes credentials: neither in-cluster nor kubeconfig")
    memo.manager = build_manager(Kube.connect(info), memo.config)
    # Startup handlers finish before kopf watches anything: the caches are complete before the
    # first event queues the first reconcile.
    cached = await sync_caches(memo.manager)
    logger.info("caches filled with %d objects", cached)
    memo.manager.start()
    memo.http = await httpserver.start(
        httpserver.build_app(memo.manager), memo.config.http_host, memo.config.http_port
    )


@kopf.on.cleanup(id="runtime")
async def stop(memo: kopf.Memo, **_: Any) -> None:
    await memo.http.cleanup()
    await memo.manager.stop()
