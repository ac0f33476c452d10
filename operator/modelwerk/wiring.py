"""Turns the table of kinds and the reconcilers' declarations into the running parts: a cache
per cached kind, a queue per reconciler, and the routes from a watch event to the keys it
queues (which handlers/ follows)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from modelwerk import jobstate, k8s, kinds, projections, promql
from modelwerk.config import OperatorConfig
from modelwerk.constants import LABEL_TRAININGRUN
from modelwerk.controller import Controller, Mapper
from modelwerk.k8s import Api
from modelwerk.kinds import Kind
from modelwerk.manager import Clock, Manager, system_clock
from modelwerk.reconcilers import deployment, model, trainingrun
from modelwerk.store import Store, key_of
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


# The kinds a TrainingRun owns (by its label): its Job (or JobSet and their Jobs) and pods.
RUN_CHILDREN: tuple[Kind, ...] = kinds.owned_by(LABEL_TRAININGRUN)


def unfinished_owner(runs: Store) -> Callable[[Mapping[str, Any]], bool]:
    """Whether a run's child is worth caching: not once its run has finished. A finished run's
    outcome is in its status, and its reconcile reads nothing of its Job and pods any more (it
    reads them like pods garbage-collected: the recorded digest and reasons stand), so keeping
    them is most of the caches' memory at 10,000 finished runs (bench/results/memory.md). A
    child whose run is not cached (yet) is kept."""
    owner_of = projections.owner_by_label(LABEL_TRAININGRUN)

    def keep(body: Mapping[str, Any]) -> bool:
        for key in owner_of(body):
            run = runs.get(key)
            if run is not None and jobstate.finished(run.get("status") or {}):
                return False
        return True

    return keep


def forget_children(mgr: Manager, run: Mapping[str, Any]) -> None:
    """A run that has finished: its children leave the caches (see unfinished_owner)."""
    if not jobstate.finished(run.get("status") or {}):
        return
    key = key_of(run)
    for kind in RUN_CHILDREN:
        store = mgr.store(kind)
        for child in store.by_index(kinds.BY_OWNER, key):
            store.remove(key_of(child))


def build_manager(
    kube: Api,
    config: OperatorConfig,
    *,
    clock: Clock = system_clock,
    controllers: tuple[Controller, ...] = CONTROLLERS,
) -> Manager:
    mgr = Manager(kube=kube, config=config, clock=clock)
    for kind in kinds.CACHED:  # TrainingRuns come before their children (kinds.ALL)
        assert kind.cache is not None
        keep = unfinished_owner(mgr.stores[kinds.TRAININGRUN]) if kind in RUN_CHILDREN else None
        mgr.stores[kind] = Store(kind.cache.project, indexes=kind.cache.indexes(), keep=keep)
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
    WaitForCacheSync does, and queues what each listed object's watch event would; returns the
    objects listed. kopf's own listing follows and only
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
    # Runs before their children: a finished run's children are not cached (unfinished_owner).
    for kind in sorted(ROUTES, key=lambda k: k in RUN_CHILDREN):
        assert kind.cache is not None
        if not kinds.enabled(kind):
            continue
        selector = kind.cache.owner_label or ""

        def into(body: Mapping[str, Any], kind: Kind = kind) -> None:
            nonlocal count
            if config.watches(body["metadata"].get("namespace") or ""):
                # Cached and queued as a watch event would: the first reconciles need not wait
                # for kopf's own listing, which pages through every object again and, on a
                # loaded machine at 10,000 runs, took longer than the apiserver keeps a
                # listing's continue token (410, listed again from the start).
                observe(mgr, kind, {"type": "ADDED"}, body)
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
        cached = store.upsert(dict(body))
        if kind == kinds.TRAININGRUN:
            forget_children(mgr, cached)
    for target, mapper in ROUTES.get(kind, ()):
        for key in mapper(mgr, body):
            mgr.enqueue(target, *key)
