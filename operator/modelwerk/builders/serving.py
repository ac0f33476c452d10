"""Deployment -> the native runtime's children: an apps/v1 Deployment per served version, one
Service in front of all of them, an HPA per version Deployment and a PodDisruptionBudget.

Traffic between a stable and a canary version is split by the Service alone: it selects the
ready pods of both versions, so each version's share of requests is its share of ready pods (see
`split_replicas` for how exact that is).

A serving pod's template depends only on what needs a restart to take effect: the image, the
artifact (URI, digest, feature names, storage credentials), the model and version, resources
and the service account. Replicas, canary traffic, the stable/canary track, autoscaling and
monitoring live outside the template, so changing them never restarts a serving pod.

Every child carries `modelwerk.io/spec-hash`, the sha256 of its own canonical JSON (without that
annotation), so the reconciler can skip a write when the observed child carries the same hash.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Final, Literal

from modelwerk import constants, naming
from modelwerk.api.deployment import Autoscaling, Deployment
from modelwerk.api.model import ModelVersion
from modelwerk.builders.common import (
    CONTAINER_SECURITY_CONTEXT,
    POD_SECURITY_CONTEXT,
    Manifest,
    base_labels,
    owner_reference,
)

ANNOTATION_SPEC_HASH: Final = constants.ANNOTATION_SPEC_HASH
COMPONENT: Final = "serving"

CONTAINER_NAME: Final = "server"
SERVING_PORT: Final = 8000
PORT_NAME: Final = "http"
COMMAND: Final = ("python", "-m", "modelwerk.serving", "--runtime", "native")
READINESS_PATH: Final = "/readyz"
LIVENESS_PATH: Final = "/healthz"

# The model server's settings (modelwerk.serving.config / .artifacts read them).
ENV_MODEL_URI: Final = "MODELWERK_MODEL_URI"
ENV_MODEL_DIGEST: Final = "MODELWERK_MODEL_DIGEST"
ENV_MODEL_NAME: Final = "MODELWERK_MODEL_NAME"
ENV_MODEL_VERSION: Final = "MODELWERK_MODEL_VERSION"
ENV_FEATURE_NAMES: Final = "MODELWERK_FEATURE_NAMES"
ENV_PVC_ROOT: Final = "MODELWERK_PVC_ROOT"

PVC_ROOT: Final = "/mnt/pvc"
SCRATCH_DIR: Final = "/tmp"  # the root filesystem is read-only; downloads land here
ARTIFACT_VOLUME: Final = "artifact"
SCRATCH_VOLUME: Final = "tmp"

# The server stops answering readiness on SIGTERM and drains for up to 20 s
# (modelwerk.serving.native.SHUTDOWN_GRACE_SECONDS). The preStop delay gives endpoints time to
# drop the pod first; both fit in the grace period. An exec of python rather than the `sleep`
# action: that needs Kubernetes >= 1.30 and is missing from Seldon's CRD schema, and the image
# may have no shell.
PRE_STOP_SECONDS: Final = 5
TERMINATION_GRACE_SECONDS: Final = 30

REVISION_HISTORY_LIMIT: Final = 2
PROGRESS_DEADLINE_SECONDS: Final = 120

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


# --- replicas and traffic -------------------------------------------------------------------


def split_replicas(total: int, canary_percent: int) -> tuple[int, int]:
    """(stable, canary) pods for `total` pods of which `canary_percent` should serve the canary.

    The Service sends each connection to one of the ready pods of both versions, so the canary's
    share of traffic is canary / (stable + canary) ready pods, not `canary_percent` itself:

    - the resolution is one pod: canary = total * p / 100 rounded to the nearest pod, a tie
      going to the stable side, so the share is off by at most 50 / total percentage points
      (10 pods: 10 % -> 1 pod; 15 % -> 1 pod = 10 %; 16 % -> 2 pods = 20 %);
    - 0 < p < 100 keeps at least one pod on each side, which can move the share further
      (10 pods, 1 % -> 1 pod = 10 %; 10 pods, 99 % -> 9 pods = 90 %);
    - total == 1 and 0 < p < 100 gives (1, 1): the only case that exceeds `total`, because a
      single pod could serve only one of the two versions; the canary then gets 50 %;
    - it holds for ready pods only: during a rollout or with a failing canary the share drifts
      with readiness, and with keep-alive clients it is per connection rather than per request.

    p == 0 -> (total, 0); p == 100 -> (0, total); total == 0 -> (0, 0).
    """
    if total < 0:
        raise ValueError(f"replicas must not be negative, got {total}")
    if not 0 <= canary_percent <= 100:
        raise ValueError(f"canary percent must be within 0..100, got {canary_percent}")
    if total == 0 or canary_percent == 0:
        return total, 0
    if canary_percent == 100:
        return 0, total
    if total == 1:
        return 1, 1
    # Nearest, ties to the stable side (Python's round() would tie to even).
    canary = (total * canary_percent + 49) // 100
    canary = min(max(canary, 1), total - 1)
    return total - canary, canary


def canary_share_percent(stable: int, canary: int) -> float:
    """The canary's actual share of traffic, in percent, for these ready pods."""
    pods = stable + canary
    return 100.0 * canary / pods if pods else 0.0


def autoscaling_bounds(
    autoscaling: Autoscaling, track: Track, canary_percent: int = 0
) -> tuple[int, int]:
    """(minReplicas, maxReplicas) of one version's HPA: both bounds split like `split_replicas`
    so that the pod ratio, and with it the traffic, approaches the canary share as load grows.
    Each bound is at least 1 (an HPA cannot scale to zero), so at minimum scale the split is
    coarser: with minReplicas 1 stable and canary get one pod each, i.e. 50 % each."""
    index = 1 if track == "canary" else 0
    low = split_replicas(autoscaling.min_replicas, canary_percent)[index]
    high = split_replicas(autoscaling.max_replicas, canary_percent)[index]
    low = max(low, 1)
    return low, max(high, low)


# --- names and labels -----------------------------------------------------------------------


def version_deployment_name(deployment_name: str, number: int) -> str:
    return naming.child_name(deployment_name, f"v{number}")


def endpoint(dep: Deployment) -> str:
    return f"http://{dep.metadata.name}.{dep.metadata.namespace}.svc:{SERVING_PORT}"


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


def _metadata(
    name: str, dep: Deployment, owner: Mapping[str, Any], labels: dict[str, str]
) -> Manifest:
    return {
        "name": name,
        "namespace": dep.metadata.namespace,
        "labels": labels,
        "ownerReferences": [owner_reference(owner)],
    }


# --- the pod --------------------------------------------------------------------------------


def pvc_claim(uri: str) -> str | None:
    """The claim of a `pvc://claim/path` URI, else None."""
    if not uri.startswith("pvc://"):
        return None
    claim = uri.removeprefix("pvc://").partition("/")[0]
    return claim or None


def model_server_env(dep: Deployment, served: ServedVersion) -> list[Manifest]:
    """The environment the model server (native or Seldon) reads its settings from."""
    env: list[Manifest] = [
        {"name": ENV_MODEL_URI, "value": served.artifact_uri},
    ]
    if served.digest is not None:
        env.append({"name": ENV_MODEL_DIGEST, "value": served.digest})
    env += [
        {"name": ENV_MODEL_NAME, "value": dep.spec.model},
        {"name": ENV_MODEL_VERSION, "value": str(served.number)},
    ]
    if served.feature_names:
        env.append({"name": ENV_FEATURE_NAMES, "value": ",".join(served.feature_names)})
    env.append({"name": ENV_PVC_ROOT, "value": PVC_ROOT})
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
    mounts: list[Manifest] = [{"name": SCRATCH_VOLUME, "mountPath": SCRATCH_DIR}]
    claim = pvc_claim(served.artifact_uri)
    if claim is not None:
        mounts.append(
            {
                "name": ARTIFACT_VOLUME,
                "mountPath": str(PurePosixPath(PVC_ROOT, claim)),
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
            "httpGet": {"path": readiness_path, "port": PORT_NAME},
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        # The port opens before the artifact is fetched, so liveness holds during a slow
        # download; readiness waits for the verified, loaded model.
        "livenessProbe": {
            "httpGet": {"path": liveness_path, "port": PORT_NAME},
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
    claim = pvc_claim(served.artifact_uri)
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


# --- children -------------------------------------------------------------------------------


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
        ports=[{"name": PORT_NAME, "containerPort": SERVING_PORT, "protocol": "TCP"}],
        readiness_path=READINESS_PATH,
        liveness_path=LIVENESS_PATH,
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
            "metadata": _metadata(name, dep, owner, version_labels(dep, served)),
            "spec": spec,
        }
    )


def build_service(dep: Deployment, owner: Mapping[str, Any]) -> Manifest:
    return with_spec_hash(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _metadata(dep.metadata.name or "", dep, owner, deployment_labels(dep)),
            "spec": {
                "type": "ClusterIP",
                # Both tracks: the canary's share of traffic is its share of ready pods.
                "selector": serving_selector(dep),
                "ports": [
                    {
                        "name": PORT_NAME,
                        "port": SERVING_PORT,
                        "targetPort": PORT_NAME,
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
            "metadata": _metadata(name, dep, owner, version_labels(dep, served)),
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
            "metadata": _metadata(dep.metadata.name or "", dep, owner, deployment_labels(dep)),
            "spec": {
                "minAvailable": dep.spec.pdb.min_available,
                "selector": {"matchLabels": serving_selector(dep)},
                # A pod that is not ready (a crashing canary) protects nothing: let drains
                # evict it instead of blocking on it.
                "unhealthyPodEvictionPolicy": "AlwaysAllow",
            },
        }
    )


# --- spec hash ------------------------------------------------------------------------------


def _without_spec_hash(manifest: Mapping[str, Any]) -> Manifest:
    stripped = copy.deepcopy(dict(manifest))
    metadata = stripped.get("metadata")
    if isinstance(metadata, dict):
        annotations = metadata.get("annotations")
        if isinstance(annotations, dict):
            annotations.pop(ANNOTATION_SPEC_HASH, None)
            if not annotations:
                del metadata["annotations"]
    return stripped


def spec_hash(manifest: Mapping[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON (sorted keys, no whitespace), leaving out the
    spec-hash annotation itself (and `annotations` when that was its only entry)."""
    canonical = json.dumps(
        _without_spec_hash(manifest),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def with_spec_hash(manifest: Mapping[str, Any]) -> Manifest:
    """A copy of `manifest` annotated with its spec hash; idempotent."""
    result = _without_spec_hash(manifest)
    metadata = result.setdefault("metadata", {})
    metadata.setdefault("annotations", {})[ANNOTATION_SPEC_HASH] = spec_hash(result)
    return result


def observed_spec_hash(obj: Mapping[str, Any] | None) -> str | None:
    """The spec hash an existing child carries (None for none, or no child)."""
    if not obj:
        return None
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(ANNOTATION_SPEC_HASH)
    return str(value) if value is not None else None
