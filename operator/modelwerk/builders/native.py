"""Deployment -> the native runtime's children: an apps/v1 Deployment per served version, one
Service in front of all of them, an HPA per version Deployment and a PodDisruptionBudget.

Traffic between a stable and a canary version is split by the Service alone: it selects the
ready pods of both versions, so each version's share of requests is its share of ready pods (see
builders/replicas.split_replicas for how exact that is). Every child carries its spec hash
(builders/spechash.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from modelwerk import contract, naming
from modelwerk.api.deployment import Deployment
from modelwerk.builders.common import Manifest, child_metadata
from modelwerk.builders.modelserver import (
    ServedVersion,
    deployment_labels,
    model_server_container,
    pod_labels,
    serving_pod_spec,
    serving_selector,
    version_labels,
    version_selector,
)
from modelwerk.builders.replicas import autoscaling_bounds
from modelwerk.builders.spechash import with_spec_hash

CONTAINER_NAME: Final = "server"
COMMAND: Final = ("python", "-m", "modelwerk.serving", "--runtime", "native")
REVISION_HISTORY_LIMIT: Final = 2
PROGRESS_DEADLINE_SECONDS: Final = 120


def version_deployment_name(deployment_name: str, number: int) -> str:
    return naming.child_name(deployment_name, f"v{number}")


def endpoint(dep: Deployment) -> str:
    return f"http://{dep.metadata.name}.{dep.metadata.namespace}.svc:{contract.PORT}"


def build_version_deployment(
    dep: Deployment, owner: Mapping[str, Any], served: ServedVersion, image: str
) -> Manifest:
    name = version_deployment_name(dep.metadata.name or "", served.number)
    container = model_server_container(
        dep,
        served,
        name=CONTAINER_NAME,
        image=image,
        command=list(COMMAND),
        ports=[{"name": contract.PORT_NAME, "containerPort": contract.PORT, "protocol": "TCP"}],
        readiness_path=contract.READINESS_PATH,
        liveness_path=contract.LIVENESS_PATH,
    )
    spec: Manifest = {
        "selector": {"matchLabels": version_selector(dep, served)},
        "strategy": {
            "type": "RollingUpdate",
            # Never below the wanted ready pods: a surge pod must pass readiness (artifact
            # verified and loaded) before an old one goes.
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        },
        "minReadySeconds": 0,
        "revisionHistoryLimit": REVISION_HISTORY_LIMIT,
        "progressDeadlineSeconds": PROGRESS_DEADLINE_SECONDS,
        "template": {
            "metadata": {"labels": pod_labels(dep, served)},
            "spec": serving_pod_spec(dep, served, container),
        },
    }
    if dep.spec.autoscaling is None:
        # With autoscaling the HPA owns `replicas`; a value here would fight it on every apply.
        spec = {"replicas": served.replicas, **spec}
    return with_spec_hash(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": child_metadata(
                name, dep.metadata.namespace, owner, version_labels(dep, served)
            ),
            "spec": spec,
        }
    )


def build_service(dep: Deployment, owner: Mapping[str, Any]) -> Manifest:
    return with_spec_hash(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": child_metadata(
                dep.metadata.name or "", dep.metadata.namespace, owner, deployment_labels(dep)
            ),
            "spec": {
                "type": "ClusterIP",
                # Both tracks: the canary's share of traffic is its share of ready pods.
                "selector": serving_selector(dep),
                "ports": [
                    {
                        "name": contract.PORT_NAME,
                        "port": contract.PORT,
                        "targetPort": contract.PORT_NAME,
                        "protocol": "TCP",
                    }
                ],
            },
        }
    )


def build_hpa(
    dep: Deployment, owner: Mapping[str, Any], served: ServedVersion, *, canary_percent: int = 0
) -> Manifest | None:
    """CPU autoscaling of one version Deployment; `canary_percent` (the canary's current share,
    0 without a canary) splits minReplicas and maxReplicas between the two versions."""
    autoscaling = dep.spec.autoscaling
    if autoscaling is None:
        return None
    name = version_deployment_name(dep.metadata.name or "", served.number)
    low, high = autoscaling_bounds(autoscaling, served.track, canary_percent)
    return with_spec_hash(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": child_metadata(
                name, dep.metadata.namespace, owner, version_labels(dep, served)
            ),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicas": low,
                "maxReplicas": high,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {
                                "type": "Utilization",
                                "averageUtilization": (
                                    autoscaling.target_cpu_utilization_percentage
                                ),
                            },
                        },
                    }
                ],
            },
        }
    )


def build_pdb(dep: Deployment, owner: Mapping[str, Any]) -> Manifest | None:
    if dep.spec.pdb is None:
        return None
    return with_spec_hash(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": child_metadata(
                dep.metadata.name or "", dep.metadata.namespace, owner, deployment_labels(dep)
            ),
            "spec": {
                "minAvailable": dep.spec.pdb.min_available,
                "selector": {"matchLabels": serving_selector(dep)},
                # A pod that is not ready (a crashing canary) protects nothing: let drains
                # evict it instead of blocking on it.
                "unhealthyPodEvictionPolicy": "AlwaysAllow",
            },
        }
    )
