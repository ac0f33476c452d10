"""Monitoring children of a Deployment: a PrometheusRule plus a ServiceMonitor (native runtime)
or a PodMonitor (Seldon), when the Prometheus Operator's CRDs exist; otherwise
MonitoringReady=False and nothing else changes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from modelwerk.api.deployment import Deployment
from modelwerk.api.deployment import Runtime as ServingRuntime
from modelwerk.builders import monitoring
from modelwerk.reconcilers.common import StatusBuilder, apply_children
from modelwerk.runtime import Runtime
from modelwerk.store import ObjectKey

PROMETHEUS_RULE_CRD = "prometheusrules.monitoring.coreos.com"
MONITOR_CRDS = {
    "ServiceMonitor": "servicemonitors.monitoring.coreos.com",
    "PodMonitor": "podmonitors.monitoring.coreos.com",
}
STORES = ("PrometheusRule", "ServiceMonitor", "PodMonitor")


async def reconcile_monitoring(
    rt: Runtime,
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
        await _set(rt, key, {})
        sb.condition("MonitoringReady", False, "Disabled", "spec.monitoring.enabled is false")
        return
    kind = "PodMonitor" if runtime == ServingRuntime.SELDON else "ServiceMonitor"
    needed = (PROMETHEUS_RULE_CRD, MONITOR_CRDS[kind])
    missing = [crd for crd in needed if not await rt.crd_installed(crd)]
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
    rule = monitoring.build_prometheus_rule(dep, body, versions)
    if kind == "PodMonitor":
        monitor = monitoring.build_pod_monitor(dep, body)
    else:
        monitor = monitoring.build_service_monitor(dep, body)
    await _set(rt, key, {"PrometheusRule": rule, kind: monitor})
    drift = sum(1 for _, baseline in versions if baseline)
    sb.condition(
        "MonitoringReady",
        True,
        "Generated",
        f"{kind} and PrometheusRule {rule['metadata']['name']} "
        f"({drift} version(s) with drift rules)",
    )


async def _set(rt: Runtime, key: ObjectKey, desired: Mapping[str, Mapping[str, Any]]) -> None:
    """Makes the monitoring children exactly `desired` (by kind); the others are deleted."""
    for store in STORES:
        wanted = [desired[store]] if store in desired else []
        owned = list(rt.store(store).by_index("owner", key))
        if wanted or owned:
            await apply_children(rt, store, wanted, owned)
