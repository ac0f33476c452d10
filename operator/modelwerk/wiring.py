"""Turns the table of kinds and the reconcilers' declarations into the running parts: a cache
per cached kind, a queue per reconciler, and the routes from a watch event to the keys it
queues (which handlers/ follows)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

from modelwerk import k8s, kinds, promql
from modelwerk.config import OperatorConfig
from modelwerk.controller import Controller, Mapper
from modelwerk.k8s import Api
from modelwerk.kinds import Kind
from modelwerk.manager import Clock, Manager, system_clock
from modelwerk.reconcilers import deployment, model, trainingrun
from modelwerk.store import Store
from modelwerk.workqueue import Reconcile, WorkQueue

CONTROLLERS: tuple[Controller, ...] = (
    model.CONTROLLER,
    trainingrun.CONTROLLER,
    deployment.CONTROLLER,
)

# Failures of the world, not of the code: logged in one line, retried with backoff.
EXPECTED_ERRORS = (k8s.ApiError, promql.PrometheusError, aiohttp.ClientError, TimeoutError)


def routes(
    controllers: tuple[Controller, ...] = CONTROLLERS,
) -> dict[Kind, list[tuple[Kind, Mapper]]]:
    """watched kind -> (reconciled kind, which of its keys an event queues)."""
    out: dict[Kind, list[tuple[Kind, Mapper]]] = {}
    for controller in controllers:
        for watch in controller.watches:
            if watch.kind.cache is None:
                raise ValueError(f"{controller.kind} watches {watch.kind}, which is not cached")
            out.setdefault(watch.kind, []).append((controller.kind, watch.map))
    return out


ROUTES = routes()


def build_manager(
    kube: Api,
    config: OperatorConfig,
    *,
    clock: Clock = system_clock,
    controllers: tuple[Controller, ...] = CONTROLLERS,
) -> Manager:
    mgr = Manager(kube=kube, config=config, clock=clock)
    for kind in kinds.CACHED:
        assert kind.cache is not None
        mgr.stores[kind] = Store(kind.cache.project, indexes=kind.cache.indexes())
    for controller in controllers:
        name = controller.kind.kind
        mgr.queues[controller.kind] = WorkQueue(
            name, bind(mgr, controller), workers=config.workers, expected=EXPECTED_ERRORS
        )
    return mgr


def bind(mgr: Manager, controller: Controller) -> Reconcile:
    async def run(key: Any) -> float | None:
        try:
            return await controller.reconcile(mgr, key)
        except k8s.NotFound:
            # The object (or its namespace) went away mid-reconcile: its watch event will
            # say so; there is nothing left to do, and nothing to retry.
            return None
        except k8s.Forbidden as err:
            if "being terminated" in err.message:
                return None  # its namespace is being deleted
            raise

    return run


def remember(mgr: Manager, kind: Kind, body: Mapping[str, Any]) -> None:
    """A watch event's object goes into the cache of `kind` (kopf calls this as an index
    handler, for every event but deletions, before any event handler)."""
    mgr.store(kind).upsert(dict(body))


def route(mgr: Manager, kind: Kind, event: Mapping[str, Any], body: Mapping[str, Any]) -> None:
    """A watch event: a deletion leaves the cache, and every key it may concern is queued."""
    if event.get("type") == "DELETED":
        mgr.store(kind).remove((body["metadata"].get("namespace") or "", body["metadata"]["name"]))
    for target, mapper in ROUTES.get(kind, ()):
        for key in mapper(mgr, body):
            mgr.enqueue(target, *key)


def observe(mgr: Manager, kind: Kind, event: Mapping[str, Any], body: Mapping[str, Any]) -> None:
    """A watch event: updates the cache of `kind` and queues every key it may concern."""
    if event.get("type") != "DELETED":
        remember(mgr, kind, body)
    route(mgr, kind, event, body)
