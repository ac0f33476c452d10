from __future__ import annotations

import logging
from typing import Any

import kopf

from modelwerk import election, httpserver
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
    kube = Kube.connect(info)
    memo.manager = build_manager(kube, memo.config)
    # Startup handlers finish before kopf watches anything: the caches are complete before the
    # first event queues the first reconcile (on every replica: a follower's stay warm).
    cached = await sync_caches(memo.manager)
    logger.info("caches filled with %d objects", cached)
    memo.http = await httpserver.start(
        httpserver.build_app(memo.manager), memo.config.http_host, memo.config.http_port
    )
    memo.elector = election.start(memo.manager, kube, memo.config)


@kopf.on.cleanup(id="runtime")
async def stop(memo: kopf.Memo, **_: Any) -> None:
    await memo.http.cleanup()
    if memo.elector is not None:
        await memo.elector.release()
    await memo.manager.stop()
