"""Turns the table of kinds and the reconcilers' declarations into the running parts: a cache
per cached kind, a queue per reconciler, and the routes from a watch event to the keys it
queues (which handlers/ follows)."""

from __future__ import annotations

import logging
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

log = logging.getLogger(__name__)

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


async def sync_caches(mgr: Manager) -> int:
    """Fills every cache from a paged listing before the first reconcile, as controller-runtime's
    WaitForCacheSync does; returns the objects cached. kopf's own listing follows and only
    confirms them (a cache keeps the newer resourceVersion). Without this, reconciles start on
    whatever kopf has listed so far: after a restart a run without its Job or pods, or a
    Deployment without its children, and each rewrites what it would find a moment later (a Job
    created again and refused with 409, a status and its Warning Event written twice).

    Listed with the watches' scope: the namespaces given by name, else the whole cluster (for
    globs too, then filtered), and the owner label each child kind's watch selects by. A kind
    whose CRD is not installed (Seldon, the Prometheus Operator) is skipped."""
    config = mgr.config
    exact = not any(ch in n for n in config.namespaces for ch in "*?[")
    scopes: tuple[str | None, ...] = config.namespaces if exact and config.namespaces else (None,)
    count = 0
    for kind in ROUTES:
        assert kind.cache is not None
        if not kinds.enabled(kind):
            continue
        store = mgr.store(kind)
        selector = kind.cache.owner_label or ""

        def into(body: Mapping[str, Any], store: Store = store) -> None:
            nonlocal count
            if config.watches(body["metadata"].get("namespace") or ""):
                store.upsert(body)
                count += 1

        for namespace in scopes:
            try:
                await mgr.kube.list_each(kind, namespace, selector, into)
            except k8s.NotFound:
                break  # its CRD is not installed
            except EXPECTED_ERRORS as err:
                # kopf's listing fills the cache anyway; only the head start is lost.
                log.warning("listing %s for the caches failed: %s", kind, err)
    return count


def observe(mgr: Manager, kind: Kind, event: Mapping[str, Any], body: Mapping[str, Any]) -> None:
    """A watch event: updates the cache of `kind` and queues every key it may concern."""
    store = mgr.store(kind)
    if event.get("type") == "DELETED":
        store.remove((body["metadata"].get("namespace") or "", body["metadata"]["name"]))
    else:
        store.upsert(dict(body))
    for target, mapper in ROUTES.get(kind, ()):
        for key in mapper(mgr, body):
            mgr.enqueue(target, *key)
