"""Deployment -> ServiceMonitor or PodMonitor (Prometheus Operator, monitoring.coreos.com/v1);
the PrometheusRule is builders/rules.py's.

The ServiceMonitor scrapes the model server pods behind the Deployment's Service (native
runtime: port `http`, /metrics); the PodMonitor scrapes the pods directly (Seldon runtime: the
container's `metrics` port, /prometheus, as Seldon's Services do not carry our labels). Either
adds three target labels from the pod, which the rules rely on:

    modelwerk_deployment   the pod's modelwerk.io/deployment label (the Deployment's name)
    modelwerk_version      the pod's modelwerk.io/model-version label
    modelwerk_ready        "true" | "false": the pod's Ready condition

Prometheus Operator adds `namespace` (and job, pod, service, ...) to every scraped target. The
target labels deliberately avoid the names `model` and `version`, which the model server's own
series carry.

Pod readiness comes from the scrape itself (`up` and the pod's readiness relabelled into
`modelwerk_ready`), not from kube-state-metrics, so it needs nothing beyond the monitor.
Prometheus scrapes not-ready pods too, which is what lets the rule see them. Pods without an
address (Pending) are seen only by the critical variant, when none is ready. The critical
variant also fires when Prometheus does not select the monitor (e.g. its serviceMonitorSelector
or podMonitorSelector misses spec.monitoring.labels): an alert about monitoring itself.

The builders build whatever they are asked for; whether to (spec.monitoring.enabled, CRDs
installed) is the reconciler's call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from modelwerk import constants, contract
from modelwerk.api.deployment import Deployment
from modelwerk.builders.common import Manifest, base_labels, child_metadata

MONITORING_API_VERSION: Final = "monitoring.coreos.com/v1"
COMPONENT: Final = "monitoring"

# Target labels the monitors add (see the module docstring).
TARGET_DEPLOYMENT: Final = "modelwerk_deployment"
TARGET_VERSION: Final = "modelwerk_version"
TARGET_READY: Final = "modelwerk_ready"

METRICS_PORT: Final = contract.PORT_NAME  # the Service's port
METRICS_PATH: Final = contract.METRICS_PATH
SELDON_METRICS_PORT: Final = contract.SELDON_METRICS_PORT_NAME
SELDON_METRICS_PATH: Final = contract.SELDON_METRICS_PATH
SCRAPE_INTERVAL: Final = "15s"


# --- names and labels -----------------------------------------------------------------------


def service_monitor_name(dep: Deployment) -> str:
    """Also the PodMonitor's: the Service's name; the kinds differ, so the monitors and the
    PrometheusRule share it."""
    return dep.metadata.name or ""


def prometheus_rule_name(dep: Deployment) -> str:
    return dep.metadata.name or ""


def monitoring_labels(dep: Deployment) -> dict[str, str]:
    """spec.monitoring.labels (for Prometheus' selectors) plus ours; ours win on a clash, so a
    user label can never hide the object from the operator's label selectors."""
    ours = base_labels(
        COMPONENT,
        **{constants.LABEL_DEPLOYMENT: dep.metadata.name, constants.LABEL_MODEL: dep.spec.model},
    )
    return {**dep.spec.monitoring.labels, **ours}


def metadata(dep: Deployment, name: str, owner: Mapping[str, Any]) -> Manifest:
    return child_metadata(name, dep.metadata.namespace, owner, monitoring_labels(dep))


# --- ServiceMonitor -------------------------------------------------------------------------


def _pod_label(key: str) -> str:
    """The service-discovery meta label Prometheus makes of a pod label."""
    return "__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() else "_" for c in key)


def target_relabelings() -> list[Manifest]:
    """Relabelings (Prometheus Operator's camelCase) that add the modelwerk_* target labels.
    Whatever else scrapes the model server needs the same, or the rules see nothing.

    Not the track: the serving builders keep modelwerk.io/track off the pods (promotion would
    restart them), and on the scrape it would churn every series of a promoted version."""
    copied = [
        {"sourceLabels": [_pod_label(label)], "targetLabel": target, "action": "replace"}
        for label, target in (
            (constants.LABEL_DEPLOYMENT, TARGET_DEPLOYMENT),
            (constants.LABEL_MODEL_VERSION, TARGET_VERSION),
        )
    ]
    # Set for targets backed by a pod under every discovery role (pod, endpoints,
    # endpointslice).
    ready = {
        "sourceLabels": ["__meta_kubernetes_pod_ready"],
        "regex": "(true|false)",
        "targetLabel": TARGET_READY,
        "replacement": "$1",
        "action": "replace",
    }
    return [*copied, ready]


def _endpoint(port: str, path: str) -> Manifest:
    return {
        "port": port,
        "path": path,
        "interval": SCRAPE_INTERVAL,
        "scheme": "http",
        "relabelings": target_relabelings(),
    }


def _deployment_selector(dep: Deployment) -> Manifest:
    return {"matchLabels": {constants.LABEL_DEPLOYMENT: dep.metadata.name or ""}}


def _service_selector(dep: Deployment) -> Manifest:
    """The Deployment's one Service, not the per-version Services an HTTPRoute sends to
    (builders/route.py): those select the same pods, which would be scraped twice."""
    return {
        **_deployment_selector(dep),
        "matchExpressions": [{"key": constants.LABEL_MODEL_VERSION, "operator": "DoesNotExist"}],
    }


def build_service_monitor(
    dep: Deployment,
    owner: Mapping[str, Any],
    *,
    port: str = METRICS_PORT,
    path: str = METRICS_PATH,
) -> Manifest:
    """For the native runtime: scrapes the pods behind the Services labelled
    modelwerk.io/deployment=<name> in the Deployment's namespace (a ServiceMonitor without
    namespaceSelector looks only there)."""
    return {
        "apiVersion": MONITORING_API_VERSION,
        "kind": "ServiceMonitor",
        "metadata": metadata(dep, service_monitor_name(dep), owner),
        "spec": {
            "selector": _service_selector(dep),
            "endpoints": [_endpoint(port, path)],
        },
    }


def build_pod_monitor(
    dep: Deployment,
    owner: Mapping[str, Any],
    *,
    port: str = SELDON_METRICS_PORT,
    path: str = SELDON_METRICS_PATH,
) -> Manifest:
    """For the Seldon runtime: scrapes the pods labelled modelwerk.io/deployment=<name> in the
    Deployment's namespace directly. Use one monitor or the other, never both: both would
    scrape every pod twice and double every sum."""
    return {
        "apiVersion": MONITORING_API_VERSION,
        "kind": "PodMonitor",
        "metadata": metadata(dep, service_monitor_name(dep), owner),
        "spec": {
            "selector": _deployment_selector(dep),
            "podMetricsEndpoints": [_endpoint(port, path)],
        },
    }
