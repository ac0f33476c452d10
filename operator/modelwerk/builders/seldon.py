"""Deployment -> one SeldonDeployment (Seldon Core v1, machinelearning.seldon.io/v1) with a
predictor per served version and traffic weights between them.

Seldon splits traffic between predictors by weight (through its Istio or Ambassador routing), so
unlike the native runtime the split does not depend on pod counts.

Choices, from Seldon Core 1.x's operator source:

- `seldon.io/no-engine: "true"` on each predictor: a single-node graph needs no executor, and
  the executor container Seldon would inject carries only `runAsUser` in its security context,
  which a namespace enforcing Pod Security `restricted` rejects. Without it the model container
  answers Seldon's protocol itself (seldon-core-microservice);
- the container declares its `http` (9000) and `metrics` (6000) ports: Seldon's defaulting reads
  them instead of numbering ports per container, and sets PREDICTIVE_UNIT_*_PORT to match, which
  are also seldon-core-microservice's defaults;
- Seldon may replace the pod's securityContext (with its DEFAULT_USER_ID, or none), so the
  container's own securityContext carries the user as well: it stays `restricted` either way;
- probes and a preStop hook are given: Seldon's defaults are TCP probes and `/bin/sh -c sleep`,
  and the image may have no shell;
- predictor labels become pod labels *and* an env var of the model container, so they hold only
  what never changes for a version: not the track, not traffic (a change would restart pods).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from modelwerk import contract
from modelwerk.api.deployment import Deployment
from modelwerk.builders.common import RUN_AS_USER, Manifest, child_metadata
from modelwerk.builders.modelserver import (
    ServedVersion,
    deployment_labels,
    model_server_container,
    pod_labels,
    serving_pod_spec,
)
from modelwerk.builders.spechash import with_spec_hash

API_VERSION: Final = "machinelearning.seldon.io/v1"
KIND: Final = "SeldonDeployment"

CONTAINER_NAME: Final = "model"  # also the graph node's name: Seldon pairs them by name
COMMAND: Final = (
    "seldon-core-microservice",
    "modelwerk.serving.seldon.SeldonModel",
    "--service-type",
    "MODEL",
)
HTTP_PORT: Final = contract.SELDON_HTTP_PORT
METRICS_PORT: Final = contract.SELDON_METRICS_PORT
READINESS_PATH: Final = "/health/status"  # calls SeldonModel.health_status: the model is loaded
LIVENESS_PATH: Final = "/health/ping"

ANNOTATION_NO_ENGINE: Final = "seldon.io/no-engine"
SELDON_VERSION_LABEL: Final = "version"  # Seldon defaults it to the predictor name


def predictor_name(served: ServedVersion) -> str:
    return f"v{served.number}"


def _container(dep: Deployment, served: ServedVersion, image: str) -> Manifest:
    container = model_server_container(
        dep,
        served,
        name=CONTAINER_NAME,
        image=image,
        command=list(COMMAND),
        ports=[
            {"name": contract.PORT_NAME, "containerPort": HTTP_PORT, "protocol": "TCP"},
            {
                "name": contract.SELDON_METRICS_PORT_NAME,
                "containerPort": METRICS_PORT,
                "protocol": "TCP",
            },
        ],
        readiness_path=READINESS_PATH,
        liveness_path=LIVENESS_PATH,
        # Seldon's default (true) would also return the custom metrics to every client.
        extra_env=[{"name": "INCLUDE_METRICS_IN_CLIENT_RESPONSE", "value": "false"}],
    )
    container["securityContext"] |= {"runAsUser": RUN_AS_USER, "runAsGroup": RUN_AS_USER}
    return container


def _predictor(
    dep: Deployment, served: ServedVersion, traffic: int, image: str, *, with_pdb: bool
) -> Manifest:
    name = predictor_name(served)
    component: Manifest = {
        "spec": serving_pod_spec(dep, served, _container(dep, served, image)),
    }
    autoscaling = dep.spec.autoscaling
    if autoscaling is not None:
        # Traffic is split by weight, not by pods: each predictor scales on its own load.
        component["hpaSpec"] = {
            "minReplicas": autoscaling.min_replicas,
            "maxReplicas": autoscaling.max_replicas,
            "metricsv2": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": autoscaling.target_cpu_utilization_percentage,
                        },
                    },
                }
            ],
        }
    if with_pdb and dep.spec.pdb is not None:
        component["pdbSpec"] = {"minAvailable": dep.spec.pdb.min_available}
    predictor: Manifest = {
        "name": name,
        "traffic": traffic,
        "labels": {**pod_labels(dep, served), SELDON_VERSION_LABEL: name},
        "annotations": {ANNOTATION_NO_ENGINE: "true"},
        "componentSpecs": [component],
        "graph": {
            "name": CONTAINER_NAME,
            "type": "MODEL",
            "endpoint": {"type": "REST"},
            "children": [],
        },
    }
    if autoscaling is None:
        predictor["replicas"] = served.replicas
    return predictor


def build_seldon_deployment(
    dep: Deployment,
    owner: Mapping[str, Any],
    stable: ServedVersion,
    canary: ServedVersion | None,
    canary_percent: int,
    image: str,
) -> Manifest:
    """`canary_percent` of the requests go to `canary`, the rest to `stable` (ignored without a
    canary). The PDB (`spec.pdb`) covers the stable predictor only: as with the native runtime's
    budget over both versions, a canary pod may be evicted while the stable ones hold."""
    if not 0 <= canary_percent <= 100:
        raise ValueError(f"canary percent must be within 0..100, got {canary_percent}")
    if stable.track != "stable" or (canary is not None and canary.track != "canary"):
        raise ValueError("stable and canary must be served on the stable and canary tracks")
    if canary is not None and canary.number == stable.number:
        raise ValueError(f"version {stable.number} cannot be both stable and canary")
    percent = canary_percent if canary is not None else 0
    predictors = [_predictor(dep, stable, 100 - percent, image, with_pdb=True)]
    if canary is not None:
        predictors.append(_predictor(dep, canary, percent, image, with_pdb=False))
    return with_spec_hash(
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": child_metadata(
                dep.metadata.name, dep.metadata.namespace, owner, deployment_labels(dep)
            ),
            "spec": {"predictors": predictors},
        }
    )
