"""Monitoring children of a Deployment: a ServiceMonitor and a PrometheusRule, when the
Prometheus Operator's CRDs exist; otherwise MonitoringReady=False and nothing else changes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from modelwerk.api.deployment import Deployment
from modelwerk.builders import monitoring, serving
from modelwerk.reconcilers.common import StatusBuilder, apply_children
from modelwerk.runtime import Runtime

PROMETHEUS_RULE_CRD = "prometheusrules.monitoring.coreos.com"
SERVICE_MONITOR_CRD = "servicemonitors.monitoring.coreos.com"


async def reconcile_monitoring(
    rt: Runtime,
    dep: Deployment,
    body: Mapping[str, Any],
    sb: StatusBuilder,
    served: Sequence[Mapping[str, Any]],
) -> None:
    key = (dep.metadata.namespace or "", dep.metadata.name or "")
    if not dep.spec.monitoring.enabled:
        await _remove(rt, key)
        sb.condition("MonitoringReady", False, "Disabled", "spec.monitoring.enabled is false")
        return
    missing = [
        crd for crd in (PROMETHEUS_RULE_CRD, SERVICE_MONITOR_CRD) if not await rt.crd_installed(crd)
    ]
    if missing:
        sb.condition(
            "MonitoringReady",
            False,
            "CRDNotInstalled",
            f"{', '.join(missing)} not installed: install the Prometheus Operator's "
            "CRDs to get a ServiceMonitor and alert rules for this Deployment",
        )
        return
    versions = [(int(v["version"]), v.get("baseline")) for v in served]
    rule = serving.with_spec_hash(monitoring.build_prometheus_rule(dep, body, versions))
    monitor = serving.with_spec_hash(monitoring.build_service_monitor(dep, body))
    await apply_children(
        rt, "PrometheusRule", [rule], list(rt.store("PrometheusRule").by_index("owner", key))
    )
    await apply_children(
        rt, "ServiceMonitor", [monitor], list(rt.store("ServiceMonitor").by_index("owner", key))
    )
    drift = sum(1 for _, baseline in versions if baseline)
    sb.condition(
        "MonitoringReady",
        True,
        "Generated",
        f"ServiceMonitor and PrometheusRule {rule['metadata']['name']} "
        f"({drift} version(s) with drift rules)",
    )


async def _remove(rt: Runtime, key: tuple[str, str]) -> None:
    for store in ("PrometheusRule", "ServiceMonitor"):
        owned = list(rt.store(store).by_index("owner", key))
        if owned:
            await apply_children(rt, store, [], owned)
