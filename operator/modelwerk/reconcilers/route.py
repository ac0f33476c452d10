"""The native runtime's traffic split: with the Gateway API's HTTPRoute CRD, an HTTPRoute with a
weight per version and a Service per version (builders/route.py), exact per request; without
it, the one Service's split by ready pods (builders/replicas.py). status.trafficSplit says
which is in force."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from modelwerk import kinds
from modelwerk.api.deployment import Deployment, TrafficSplit
from modelwerk.builders import route
from modelwerk.builders.common import Manifest
from modelwerk.builders.modelserver import ServedVersion
from modelwerk.manager import Manager
from modelwerk.reconcilers.common import StatusBuilder, apply_children
from modelwerk.reconcilers.served import Plan, owned_children


async def apply_route(
    mgr: Manager,
    dep: Deployment,
    body: Mapping[str, Any],
    sb: StatusBuilder,
    plan: Plan,
    served: Sequence[ServedVersion],
    observed: Mapping[int, Mapping[str, Any]],
    keep_previous: bool,
) -> list[Manifest]:
    """Applies (or prunes) the HTTPRoute and returns the per-version Services to apply beside
    the Deployment's one Service. The route goes first: a backend it stops sending to may be
    pruned right after, and a new backend gets weight only once its pods are available, by
    which time its Service exists (applied in this same reconcile)."""
    key = (dep.metadata.namespace or "", dep.metadata.name or "")
    if not await mgr.crd_installed(route.HTTPROUTE_CRD):
        sb.status["trafficSplit"] = str(TrafficSplit.REPLICAS)
        await apply_children(mgr, kinds.HTTP_ROUTE, [], owned_children(mgr, kinds.HTTP_ROUTE, key))
        return []
    stable = int(plan.target["version"])
    canary = int(plan.canary["version"]) if plan.canary is not None else None
    previous = (
        int(plan.previous["version"]) if keep_previous and plan.previous is not None else None
    )
    backends = route.weights(
        stable,
        canary,
        plan.canary_percent,
        canary_ready=canary is not None and _serving(observed.get(canary)),
        previous=previous,
    )
    await apply_children(
        mgr,
        kinds.HTTP_ROUTE,
        [route.build_http_route(dep, body, backends)],
        owned_children(mgr, kinds.HTTP_ROUTE, key),
    )
    sb.status["trafficSplit"] = str(TrafficSplit.HTTP_ROUTE)
    return [route.build_version_service(dep, body, s) for s in served]


def _serving(deployment: Mapping[str, Any] | None) -> bool:
    """At least one pod of the version's current spec is available."""
    if deployment is None:
        return False
    generation = int(deployment["metadata"].get("generation") or 0)
    status = deployment.get("status") or {}
    return (
        int(status.get("observedGeneration") or 0) >= generation
        and int(status.get("availableReplicas") or 0) >= 1
    )
