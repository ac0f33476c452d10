"""The model server's container and pod, as both runtimes run it (native: builders/native.py;
Seldon: builders/seldon.py), and the labels of everything that serves a Deployment.

A serving pod's template depends only on what needs a restart to take effect: the image, the
artifact (URI, digest, feature names, storage credentials), the model and version, resources
and the service account. Replicas, canary traffic, the stable/canary track, autoscaling and
monitoring live outside the template, so changing them never restarts a serving pod.
The environment, ports and mount roots are the server's contract (modelwerk/contract.py).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Final, Literal

from modelwerk import constants, contract
from modelwerk.api.deployment import Deployment
from modelwerk.api.model import ModelVersion
from modelwerk.builders.common import (
    CONTAINER_SECURITY_CONTEXT,
    POD_SECURITY_CONTEXT,
    Manifest,
    base_labels,
)

COMPONENT: Final = "serving"
ARTIFACT_VOLUME: Final = "artifact"
SCRATCH_VOLUME: Final = "tmp"

# The server stops answering readiness on SIGTERM and drains for up to 20 s
# (modelwerk.serving.native.SHUTDOWN_GRACE_SECONDS). The preStop delay gives endpoints time to
# drop the pod first; both fit in the grace period. An exec of python rather than the `sleep`
# action: that needs Kubernetes >= 1.30 and is missing from Seldon's CRD schema, and the image
# may have no shell.
PRE_STOP_SECONDS: Final = 5
TERMINATION_GRACE_SECONDS: Final = 30

Track = Literal["stable", "canary"]


@dataclass(frozen=True)
class ServedVersion:
    """One model version as served: where its artifact is and how many pods it gets."""

    number: int
    artifact_uri: str
    digest: str | None
    feature_names: tuple[str, ...]
    """From the version's baseline.features keys, sorted."""
    track: Track
    replicas: int
    storage_secret: str | None = None
    """A Secret in the namespace with the store's credentials (e.g. AWS_*), as envFrom."""

    @classmethod
    def from_model_version(
        cls,
        version: ModelVersion,
        *,
        track: Track,
        replicas: int,
        storage_secret: str | None = None,
    ) -> ServedVersion:
        features = version.baseline.features if version.baseline is not None else {}
        return cls(
            number=version.version,
            artifact_uri=version.artifact.uri,
            digest=version.artifact.digest,
            feature_names=tuple(sorted(features)),
            track=track,
            replicas=replicas,
            storage_secret=storage_secret,
        )


# --- labels ---------------------------------------------------------------------------------


def deployment_labels(dep: Deployment) -> dict[str, str]:
    """Labels of the children that span all versions (Service, PDB)."""
    return base_labels(
        COMPONENT,
        **{constants.LABEL_DEPLOYMENT: dep.metadata.name, constants.LABEL_MODEL: dep.spec.model},
    )


def pod_labels(dep: Deployment, served: ServedVersion) -> dict[str, str]:
    """Labels of a version's pods. Not the track: promoting a canary flips it, and a pod label
    change would restart every pod of the version at the moment it takes all the traffic."""
    return {**deployment_labels(dep), constants.LABEL_MODEL_VERSION: str(served.number)}


def version_labels(dep: Deployment, served: ServedVersion) -> dict[str, str]:
    """Labels of a version's Deployment and HPA (their metadata, not the pods')."""
    return {**pod_labels(dep, served), constants.LABEL_TRACK: served.track}


def serving_selector(dep: Deployment) -> dict[str, str]:
    """All serving pods of the Deployment, every version and track."""
    return {
        constants.LABEL_COMPONENT: COMPONENT,
        constants.LABEL_DEPLOYMENT: dep.metadata.name or "",
    }


def version_selector(dep: Deployment, served: ServedVersion) -> dict[str, str]:
    return {
        constants.LABEL_DEPLOYMENT: dep.metadata.name or "",
        constants.LABEL_MODEL_VERSION: str(served.number),
    }


# --- the pod --------------------------------------------------------------------------------


def _claim(uri: str) -> str | None:
    ref = contract.parse_pvc(uri)
    return ref.claim if ref is not None else None


def model_server_env(dep: Deployment, served: ServedVersion) -> list[Manifest]:
    """The environment the model server (native or Seldon) reads its settings from."""
    env: list[Manifest] = [
        {"name": contract.ENV_MODEL_URI, "value": served.artifact_uri},
    ]
    if served.digest is not None:
        env.append({"name": contract.ENV_MODEL_DIGEST, "value": served.digest})
    env += [
        {"name": contract.ENV_MODEL_NAME, "value": dep.spec.model},
        {"name": contract.ENV_MODEL_VERSION, "value": str(served.number)},
    ]
    if served.feature_names:
        env.append({"name": contract.ENV_FEATURE_NAMES, "value": ",".join(served.feature_names)})
    env.append({"name": contract.ENV_PVC_ROOT, "value": contract.PVC_ROOT})
    return env


def model_server_container(
    dep: Deployment,
    served: ServedVersion,
    *,
    name: str,
    image: str,
    command: list[str],
    ports: list[Manifest],
    readiness_path: str,
    liveness_path: str,
    extra_env: list[Manifest] | None = None,
) -> Manifest:
    mounts: list[Manifest] = [{"name": SCRATCH_VOLUME, "mountPath": contract.SCRATCH_DIR}]
    claim = _claim(served.artifact_uri)
    if claim is not None:
        mounts.append(
            {
                "name": ARTIFACT_VOLUME,
                "mountPath": str(PurePosixPath(contract.PVC_ROOT, claim)),
                "readOnly": True,
            }
        )
    container: Manifest = {
        "name": name,
        "image": image,
        "command": command,
        "env": model_server_env(dep, served) + list(extra_env or []),
        "ports": ports,
        "readinessProbe": {
            "httpGet": {"path": readiness_path, "port": contract.PORT_NAME},
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        # The port opens before the artifact is fetched, so liveness holds during a slow
        # download; readiness waits for the verified, loaded model.
        "livenessProbe": {
            "httpGet": {"path": liveness_path, "port": contract.PORT_NAME},
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "lifecycle": {
            "preStop": {
                "exec": {
                    "command": ["python", "-c", f"import time; time.sleep({PRE_STOP_SECONDS})"]
                }
            }
        },
        "volumeMounts": mounts,
        # A server that refuses to start logs why as its last line; the kubelet keeps that as the
        # termination message, which the operator puts in the Deployment's condition.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": copy.deepcopy(CONTAINER_SECURITY_CONTEXT),
    }
    if served.storage_secret:
        container["envFrom"] = [{"secretRef": {"name": served.storage_secret, "optional": False}}]
    if dep.spec.resources is not None:
        resources = dep.spec.resources.model_dump(by_alias=True, exclude_none=True, mode="json")
        if resources:
            container["resources"] = resources
    return container


def serving_pod_spec(dep: Deployment, served: ServedVersion, container: Manifest) -> Manifest:
    """The restricted pod around a model server container, with its volumes."""
    volumes: list[Manifest] = [{"name": SCRATCH_VOLUME, "emptyDir": {}}]
    claim = _claim(served.artifact_uri)
    if claim is not None:
        volumes.append(
            {
                "name": ARTIFACT_VOLUME,
                "persistentVolumeClaim": {"claimName": claim, "readOnly": True},
            }
        )
    spec: Manifest = {
        "securityContext": copy.deepcopy(POD_SECURITY_CONTEXT),
        "containers": [container],
        "volumes": volumes,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
    }
    if dep.spec.service_account_name:
        spec["serviceAccountName"] = dep.spec.service_account_name
    else:
        # A model server has no business with the Kubernetes API unless asked for explicitly.
        spec["automountServiceAccountToken"] = False
    return spec
