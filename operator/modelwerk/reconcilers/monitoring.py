"""Monitoring children of a Deployment: a PrometheusRule plus a ServiceMonitor (native runtime)
or a PodMonitor (Seldon), when the Prometheus Operator's CRDs exist; otherwise
MonitoringReady=False and nothing else changes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from modelwerk import kinds
from modelwerk.api.deployment import Deployment, ServingRuntime
from modelwerk.builders import monitoring, rules
from modelwerk.kinds import Kind
from modelwerk.manager import Manager
from modelwerk.reconcilers.common import StatusBuilder, apply_children
from modelwerk.store import ObjectKey

MONITORING_KINDS = (kinds.PROMETHEUS_RULE, kinds.SERVICE_MONITOR, kinds.POD_MONITOR)


def crd_name(kind: Kind) -> str:
    return f"{kind.plural}.{kind.group}"


async def reconcile_monitoring(
    mgr: Manager,
    dep: Deployment,
    body: Mapping[str, Any],
    sb: StatusBuilder,
    served: Sequence[Mapping[str, Any]],
    runtime: ServingRuntime,
) -> None:
    """Seldon's Services carry none of our labels and serve metrics on another port, so Seldon
    pods are scraped through a PodMonitor, native ones through their Service: never both, or
    every sum would count twice."""
    key = (dep.metadata.namespace or "", dep.metadata.name or "")
    if not dep.spec.monitoring.enabled:
        await _set(mgr, key, {})
        sb.condition("MonitoringReady", False, "Disabled", "spec.monitoring.enabled is false")
        return
    kind = kinds.POD_MONITOR if runtime == ServingRuntime.SELDON else kinds.SERVICE_MONITOR
    needed = (crd_name(kinds.PROMETHEUS_RULE), crd_name(kind))
    missing = [crd for crd in needed if not await mgr.crd_installed(crd)]
    if missing:
        sb.condition(
            "MonitoringReady",
            False,
            "CRDNotInstalled",
            f"{', '.join(missing)} not installed: install the Prometheus Operator's CRDs to get "
            "a monitor and alert rules for this Deployment",
        )
        return
    versions = [(int(v["version"]), v.get("baseline")) for v in served]
    rule = rules.build_prometheus_rule(dep, body, versions)
    if kind == kinds.POD_MONITOR:
        monitor = monitoring.build_pod_monitor(dep, body)
    else:
        monitor = monitoring.build_service_monitor(dep, body)
    await _set(mgr, key, {kinds.PROMETHEUS_RULE: rule, kind: monitor})
    drift = sum(1 for _, baseline in versions if baseline)
    sb.condition(
        "MonitoringReady",
        True,
        "Generated",
        f"{kind.kind} and PrometheusRule {rule['metadata']['name']} "
        f"({drift} version(s) with drift rules)",
    )


async def _set(mgr: Manager, key: ObjectKey, desired: Mapping[Kind, Mapping[str, Any]]) -> None:
    """Makes the monitoring children exactly `desired` (by kind); the others are deleted."""
    for kind in MONITORING_KINDS:
        wanted = [desired[kind]] if kind in desired else []
        owned = list(mgr.store(kind).by_index(kinds.BY_OWNER, key))
        if wanted or owned:
            await apply_children(mgr, kind, wanted, owned)
