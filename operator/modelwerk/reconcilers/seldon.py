"""The Seldon runtime: one SeldonDeployment with a predictor per served version, weighted by
traffic; native children stay until Seldon Core reports it Available."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelwerk import kinds
from modelwerk.api.deployment import Deployment, TrafficSplit
from modelwerk.builders import seldon
from modelwerk.builders.replicas import split_replicas
from modelwerk.manager import Manager
from modelwerk.reconcilers.common import StatusBuilder, apply_children
from modelwerk.reconcilers.served import (
    NATIVE_KINDS,
    Plan,
    mark_serving,
    owned_children,
    prune,
    served_version,
    serving_other_runtime,
    storage_secret,
)


async def reconcile_seldon(
    mgr: Manager, dep: Deployment, body: Mapping[str, Any], sb: StatusBuilder, plan: Plan
) -> str:
    key = (dep.metadata.namespace or "", dep.metadata.name or "")
    total = dep.spec.replicas
    canary_percent = plan.canary_percent if plan.canary is not None else 0
    # Seldon splits traffic by weight; replicas follow the same split so capacity stays `total`.
    stable_replicas, canary_replicas = split_replicas(total, canary_percent)
    secret = storage_secret(mgr, dep)
    stable = served_version(plan.target, "stable", stable_replicas, secret)
    canary = (
        served_version(plan.canary, "canary", canary_replicas, secret)
        if plan.canary is not None
        else None
    )
    desired = seldon.build_seldon_deployment(
        dep,
        body,
        stable,
        canary,
        plan.canary_percent if canary is not None else 0,
        mgr.config.serving_image,
    )
    children = await apply_children(
        mgr, kinds.SELDON_DEPLOYMENT, [desired], owned_children(mgr, kinds.SELDON_DEPLOYMENT, key)
    )
    status = (children[0].get("status") or {}) if children else {}
    state = status.get("state")
    # Seldon Core publishes where it serves; until it does, say nothing rather than point at
    # the native Service.
    address = (status.get("address") or {}).get("url")
    if state == "Available" and address:
        sb.status["endpoint"] = address
    elif state == "Available" or not owned_children(mgr, kinds.SERVICE, key):
        sb.status.pop("endpoint", None)
    # After a switch from the native runtime (e.g. Seldon Core installed under `runtime: auto`)
    # its pods serve until Seldon reports the SeldonDeployment Available: pruning them first
    # would leave nothing serving in between.
    native_ready = sum(
        int((d.get("status") or {}).get("readyReplicas") or 0)
        for d in owned_children(mgr, kinds.APPS_DEPLOYMENT, key)
    )
    if state == "Available" or native_ready == 0:
        await prune(mgr, NATIVE_KINDS, key)
        native_ready = 0
    sb.status["trafficSplit"] = str(TrafficSplit.SELDON)
    sb.status["replicas"] = stable_replicas + (canary_replicas if canary is not None else 0)
    sb.status["readyReplicas"] = (
        int(status.get("replicas") or 0) if state == "Available" else native_ready
    )
    if state == "Available":
        return mark_serving(sb, plan, plan.target)
    if state == "Failed":
        sb.condition("Degraded", True, "SeldonFailed", str(status.get("description") or "Failed"))
        if native_ready:
            serving_other_runtime(sb, "the native runtime", int(plan.target["version"]))
        else:
            sb.condition("Ready", False, "SeldonFailed", str(status.get("description") or "Failed"))
        return "Degraded"
    sb.condition(
        "Progressing",
        True,
        "WaitingForSeldon",
        f"SeldonDeployment {dep.metadata.name} is {state or 'not yet reported on'} "
        "by Seldon Core's controller",
    )
    if native_ready:
        serving_other_runtime(sb, "the native runtime", int(plan.target["version"]))
    else:
        sb.condition(
            "Ready", False, "WaitingForSeldon", "the SeldonDeployment is not Available yet"
        )
    return "Progressing"
