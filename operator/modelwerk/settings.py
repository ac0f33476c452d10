"""Every kopf setting in one place. Each non-default value says why it differs.

Persistence settings stay at their defaults on purpose: all handlers are watch-event handlers
(see handlers/), which kopf runs without progress or diff-base annotations, so kopf itself never
writes to the watched objects.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from typing import Any

import kopf

from modelwerk import kinds, vanished
from modelwerk.k8s import LIST_PAGE


@kopf.on.startup(id="settings")
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # kopf would turn handler log lines into Kubernetes Events; the reconcilers post their own,
    # one per transition, so kopf's would only duplicate them (and cost API writes).
    settings.posting.enabled = False
    # Replicas coordinate through our own Lease (leader.py), not kopf's peering, which needs the
    # KopfPeering CRDs and does not fence a paused leader's writes.
    settings.peering.standalone = True
    # With exact namespace names there is nothing to discover: kopf would otherwise list and
    # watch all namespaces, which a namespaced install's RBAC rightly refuses (and kopf would
    # retry for ~40 s before starting). Globs still need the scan. The price: CRDs installed
    # later (Seldon, Prometheus Operator) are picked up on the next restart.
    config = memo.config
    if not config.clusterwide and not any(ch in n for n in config.namespaces for ch in "*?["):
        settings.scanning.disabled = True
    # Only the pods and Jobs of training runs, and only the children of modelwerk Deployments,
    # are of interest: let the apiserver filter them (the handlers' label filters alone would
    # still stream every pod of the cluster to the operator).
    for kind in kinds.CACHED:
        if kind.cache is not None and kind.cache.owner_label is not None:
            key = (kind.group, kind.version, kind.plural)
            settings.watching.label_selectors[key] = kind.cache.owner_label
    # List in pages at start-up: one response with every object at once is a memory spike the
    # process never gives back. kopf's listing in pages of 500 (the start-up listing's are 100,
    # k8s.LIST_PAGE): it is the second listing of everything (wiring.sync_caches filled the
    # caches), and at 10,000 runs on a loaded machine its 300 pages of 100 outlived the
    # apiserver's continue token (410 Gone), which kopf treats as fatal: the operator stopped
    # (bench/results/memory.md).
    settings.watching.chunk_size = 5 * LIST_PAGE
    # kopf keeps each object's worker (a task, its queue, and the last event's whole body) for
    # `idle_timeout` after the object's last event, 5 s by default. At start-up every object is
    # listed within seconds, so with 5 s nearly all of them were alive at once: the listing's
    # bodies all held together, the peak the process never shrank from (bench/results/
    # memory.md). The handlers take microseconds; a worker spawned again later costs as much.
    settings.queueing.idle_timeout = 0.2
    # Ask the apiserver to end each watch after 10 minutes and re-list via a fresh watch; the
    # client gives up on a stream after 11. A silently stalled stream (a dropped connection no
    # error reports) is noticed sooner, by the inactivity timeout: no event, not even a bookmark,
    # for `watch_inactivity_seconds` (tests/reliability/test_network.py measures it).
    settings.watching.server_timeout = 600
    settings.watching.client_timeout = 660
    settings.watching.inactivity_timeout = config.watch_inactivity_seconds
    # Apiserver hiccups should not stall the operator for long: retry quickly, then back off.
    settings.networking.error_backoffs = [1, 2, 5, 10, 20]
    # A CRD deleted under a running operator must not stop it (kopf's 404 is fatal otherwise).
    vanished.install()


@kopf.on.login(id="login")
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    return connection_info(**kwargs)


def connection_info(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod: the service account; elsewhere: the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    info = kopf.login_with_service_account(**kwargs)
    if info is not None:
        return dataclasses.replace(info, server=in_cluster_server(os.environ) or info.server)
    return kopf.login_with_kubeconfig(**kwargs)


def in_cluster_server(environ: Mapping[str, str]) -> str | None:
    """The apiserver as client-go's in-cluster config finds it: the `kubernetes` Service's
    address from the variables the kubelet sets. kopf's own default, kubernetes.default.svc,
    needs cluster DNS, which not every cluster runs (the local one with a real node has none)."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        return None
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def quiet_loggers(verbose: bool) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    logging.getLogger("modelwerk").setLevel(level)
    # aiohttp's access log would print a line per Prometheus scrape.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # kopf logs "Handler ... succeeded" for every watch event: at thousands of objects that is
    # most of the operator's output and a measurable share of its CPU.
    if not verbose:
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
