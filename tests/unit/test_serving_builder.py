"""The native runtime's builders: golden manifests, the replica split, restart-free changes, the
restricted pod, and the spec hash."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from modelwerk.api import Deployment
from modelwerk.api.model import ModelVersion
from modelwerk.builders import common, seldon
from modelwerk.builders.modelserver import ServedVersion
from modelwerk.builders.native import (
    build_hpa,
    build_pdb,
    build_service,
    build_version_deployment,
    endpoint,
    version_deployment_name,
)
from modelwerk.builders.replicas import autoscaling_bounds, canary_share_percent, split_replicas
from modelwerk.builders.spechash import (
    ANNOTATION_SPEC_HASH,
    observed_spec_hash,
    spec_hash,
    with_spec_hash,
)

DIGEST_4 = "sha256:" + "4" * 64
DIGEST_5 = "sha256:" + "5" * 64
IMAGE = "ghcr.io/modelwerk/modelwerk:0.1.0"

BODY: dict[str, Any] = {
    "apiVersion": "modelwerk.io/v1alpha1",
    "kind": "Deployment",
    "metadata": {"name": "iris", "namespace": "ml-team", "uid": "0b6f-uid"},
    "spec": {
        "model": "iris",
        "alias": "production",
        "runtime": "native",
        "replicas": 4,
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"memory": "512Mi"},
        },
        "canary": {"alias": "candidate", "trafficPercent": 25},
        "monitoring": {"latencyP99Ms": 250, "errorRatePercent": 1, "labels": {"team": "ml"}},
        "pdb": {"minAvailable": 1},
    },
}

STABLE = ServedVersion(
    number=4,
    artifact_uri="pvc://models/iris/iris-7",
    digest=DIGEST_4,
    feature_names=("petal_length", "petal_width", "sepal_length", "sepal_width"),
    track="stable",
    replicas=3,
)
CANARY = ServedVersion(
    number=5,
    artifact_uri="s3://bucket/iris/5/model.joblib",
    digest=DIGEST_5,
    feature_names=(),
    track="canary",
    replicas=1,
    storage_secret="s3-creds",
)

OWNER_REF = {
    "apiVersion": "modelwerk.io/v1alpha1",
    "kind": "Deployment",
    "name": "iris",
    "uid": "0b6f-uid",
    "controller": True,
    "blockOwnerDeletion": True,
}
COMMON_LABELS = {
    "app.kubernetes.io/managed-by": "modelwerk",
    "app.kubernetes.io/part-of": "modelwerk",
    "app.kubernetes.io/component": "serving",
    "modelwerk.io/deployment": "iris",
    "modelwerk.io/model": "iris",
}
SECURE_POD = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "fsGroup": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}
SECURE_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
PRE_STOP = {"preStop": {"exec": {"command": ["python", "-c", "import time; time.sleep(5)"]}}}


def dep(**spec: Any) -> Deployment:
    body = copy.deepcopy(BODY)
    body["spec"].update(spec)
    return Deployment.from_body(body)


def strip_hash(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest without its spec-hash, after checking the hash is the right one."""
    stripped = copy.deepcopy(manifest)
    annotations = stripped["metadata"].pop("annotations")
    assert annotations == {ANNOTATION_SPEC_HASH: spec_hash(manifest)}
    return stripped


# --- golden manifests -----------------------------------------------------------------------


def test_stable_version_deployment() -> None:
    manifest = build_version_deployment(dep(), BODY, STABLE, IMAGE)
    assert strip_hash(manifest) == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "iris-v4",
            "namespace": "ml-team",
            "labels": {
                **COMMON_LABELS,
                "modelwerk.io/model-version": "4",
                "modelwerk.io/track": "stable",
            },
            "ownerReferences": [OWNER_REF],
        },
        "spec": {
            "replicas": 3,
            "selector": {
                "matchLabels": {
                    "modelwerk.io/deployment": "iris",
                    "modelwerk.io/model-version": "4",
                }
            },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "minReadySeconds": 0,
            "revisionHistoryLimit": 2,
            "progressDeadlineSeconds": 120,
            "template": {
                "metadata": {"labels": {**COMMON_LABELS, "modelwerk.io/model-version": "4"}},
                "spec": {
                    "securityContext": SECURE_POD,
                    "containers": [
                        {
                            "name": "server",
                            "image": IMAGE,
                            "command": ["python", "-m", "modelwerk.serving", "--runtime", "native"],
                            "env": [
                                {
                                    "name": "MODELWERK_MODEL_URI",
                                    "value": "pvc://models/iris/iris-7",
                                },
                                {"name": "MODELWERK_MODEL_DIGEST", "value": DIGEST_4},
                                {"name": "MODELWERK_MODEL_NAME", "value": "iris"},
                                {"name": "MODELWERK_MODEL_VERSION", "value": "4"},
                                {
                                    "name": "MODELWERK_FEATURE_NAMES",
                                    "value": "petal_length,petal_width,sepal_length,sepal_width",
                                },
                                {"name": "MODELWERK_PVC_ROOT", "value": "/mnt/pvc"},
                            ],
                            "ports": [{"name": "http", "containerPort": 8000, "protocol": "TCP"}],
                            "readinessProbe": {
                                "httpGet": {"path": "/readyz", "port": "http"},
                                "periodSeconds": 5,
                                "timeoutSeconds": 2,
                                "failureThreshold": 3,
                            },
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "periodSeconds": 10,
                                "timeoutSeconds": 2,
                                "failureThreshold": 3,
                            },
                            "lifecycle": PRE_STOP,
                            "volumeMounts": [
                                {"name": "tmp", "mountPath": "/tmp"},
                                {
                                    "name": "artifact",
                                    "mountPath": "/mnt/pvc/models",
                                    "readOnly": True,
                                },
                            ],
                            "terminationMessagePolicy": "FallbackToLogsOnError",
                            "securityContext": SECURE_CONTAINER,
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "256Mi"},
                                "limits": {"memory": "512Mi"},
                            },
                        }
                    ],
                    "volumes": [
                        {"name": "tmp", "emptyDir": {}},
                        {
                            "name": "artifact",
                            "persistentVolumeClaim": {"claimName": "models", "readOnly": True},
                        },
                    ],
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "automountServiceAccountToken": False,
                },
            },
        },
    }


def test_canary_version_deployment_autoscaled_with_service_account() -> None:
    d = dep(
        autoscaling={"minReplicas": 2, "maxReplicas": 10},
        serviceAccountName="model-reader",
        resources=None,
    )
    manifest = build_version_deployment(d, BODY, CANARY, IMAGE)
    assert strip_hash(manifest) == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "iris-v5",
            "namespace": "ml-team",
            "labels": {
                **COMMON_LABELS,
                "modelwerk.io/model-version": "5",
                "modelwerk.io/track": "canary",
            },
            "ownerReferences": [OWNER_REF],
        },
        # No `replicas`: the HPA owns it.
        "spec": {
            "selector": {
                "matchLabels": {
                    "modelwerk.io/deployment": "iris",
                    "modelwerk.io/model-version": "5",
                }
            },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "minReadySeconds": 0,
            "revisionHistoryLimit": 2,
            "progressDeadlineSeconds": 120,
            "template": {
                "metadata": {"labels": {**COMMON_LABELS, "modelwerk.io/model-version": "5"}},
                "spec": {
                    "securityContext": SECURE_POD,
                    "containers": [
                        {
                            "name": "server",
                            "image": IMAGE,
                            "command": ["python", "-m", "modelwerk.serving", "--runtime", "native"],
                            "env": [
                                {
                                    "name": "MODELWERK_MODEL_URI",
                                    "value": "s3://bucket/iris/5/model.joblib",
                                },
                                {"name": "MODELWERK_MODEL_DIGEST", "value": DIGEST_5},
                                {"name": "MODELWERK_MODEL_NAME", "value": "iris"},
                                {"name": "MODELWERK_MODEL_VERSION", "value": "5"},
                                {"name": "MODELWERK_PVC_ROOT", "value": "/mnt/pvc"},
                            ],
                            "ports": [{"name": "http", "containerPort": 8000, "protocol": "TCP"}],
                            "readinessProbe": {
                                "httpGet": {"path": "/readyz", "port": "http"},
                                "periodSeconds": 5,
                                "timeoutSeconds": 2,
                                "failureThreshold": 3,
                            },
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "periodSeconds": 10,
                                "timeoutSeconds": 2,
                                "failureThreshold": 3,
                            },
                            "lifecycle": PRE_STOP,
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                            "terminationMessagePolicy": "FallbackToLogsOnError",
                            "securityContext": SECURE_CONTAINER,
                            "envFrom": [{"secretRef": {"name": "s3-creds", "optional": False}}],
                        }
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "serviceAccountName": "model-reader",
                },
            },
        },
    }


def test_service() -> None:
    assert strip_hash(build_service(dep(), BODY)) == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "iris",
            "namespace": "ml-team",
            "labels": COMMON_LABELS,
            "ownerReferences": [OWNER_REF],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {
                "app.kubernetes.io/component": "serving",
                "modelwerk.io/deployment": "iris",
            },
            "ports": [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def test_service_selects_the_pods_of_both_tracks() -> None:
    d = dep()
    selector = build_service(d, BODY)["spec"]["selector"]
    for served in (STABLE, CANARY):
        pod = build_version_deployment(d, BODY, served, IMAGE)["spec"]["template"]["metadata"]
        assert selector.items() <= pod["labels"].items()


def test_hpa_per_version_splits_the_bounds() -> None:
    d = dep(autoscaling={"minReplicas": 2, "maxReplicas": 10, "targetCPUUtilizationPercentage": 70})
    hpa = build_hpa(d, BODY, CANARY, canary_percent=25)
    assert hpa is not None
    assert strip_hash(hpa) == {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": "iris-v5",
            "namespace": "ml-team",
            "labels": {
                **COMMON_LABELS,
                "modelwerk.io/model-version": "5",
                "modelwerk.io/track": "canary",
            },
            "ownerReferences": [OWNER_REF],
        },
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "iris-v5"},
            "minReplicas": 1,
            "maxReplicas": 2,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70},
                    },
                }
            ],
        },
    }
    stable = build_hpa(d, BODY, STABLE, canary_percent=25)
    assert stable is not None
    assert stable["spec"]["scaleTargetRef"]["name"] == "iris-v4"
    assert (stable["spec"]["minReplicas"], stable["spec"]["maxReplicas"]) == (1, 8)
    # Without a canary the stable version gets the whole range.
    alone = build_hpa(d, BODY, STABLE)
    assert alone is not None
    assert (alone["spec"]["minReplicas"], alone["spec"]["maxReplicas"]) == (2, 10)


def test_no_hpa_without_autoscaling() -> None:
    assert build_hpa(dep(), BODY, STABLE) is None


def test_pdb() -> None:
    pdb = build_pdb(dep(pdb={"minAvailable": "50%"}), BODY)
    assert pdb is not None
    assert strip_hash(pdb) == {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {
            "name": "iris",
            "namespace": "ml-team",
            "labels": COMMON_LABELS,
            "ownerReferences": [OWNER_REF],
        },
        "spec": {
            "minAvailable": "50%",
            "selector": {
                "matchLabels": {
                    "app.kubernetes.io/component": "serving",
                    "modelwerk.io/deployment": "iris",
                }
            },
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
    integer = build_pdb(dep(), BODY)
    assert integer is not None
    assert integer["spec"]["minAvailable"] == 1


def test_no_pdb_without_spec_pdb() -> None:
    assert build_pdb(dep(pdb=None), BODY) is None


def test_optional_env_is_left_out() -> None:
    served = ServedVersion(7, "https://models.example/iris.joblib", None, (), "stable", 1)
    container = build_version_deployment(dep(), BODY, served, IMAGE)["spec"]["template"]["spec"][
        "containers"
    ][0]
    names = [e["name"] for e in container["env"]]
    # No digest: the server refuses to start, which is the reconciler's to report earlier.
    assert names == [
        "MODELWERK_MODEL_URI",
        "MODELWERK_MODEL_NAME",
        "MODELWERK_MODEL_VERSION",
        "MODELWERK_PVC_ROOT",
    ]
    assert "envFrom" not in container


def test_endpoint_and_names() -> None:
    assert endpoint(dep()) == "http://iris.ml-team.svc:8000"
    assert version_deployment_name("iris", 12) == "iris-v12"
    long = version_deployment_name("m" * 63, 123456)
    assert len(long) <= 63
    assert long != version_deployment_name("m" * 63, 123457)


def test_served_version_from_model_version() -> None:
    version = ModelVersion.model_validate(
        {
            "version": 4,
            "artifact": {"uri": "pvc://models/iris/iris-7", "digest": DIGEST_4},
            "baseline": {
                "features": {
                    "sepal_width": {"mean": 3.0, "std": 0.4},
                    "petal_length": {"mean": 3.7, "std": 1.7},
                }
            },
        }
    )
    served = ServedVersion.from_model_version(version, track="stable", replicas=2)
    assert served == ServedVersion(
        number=4,
        artifact_uri="pvc://models/iris/iris-7",
        digest=DIGEST_4,
        feature_names=("petal_length", "sepal_width"),
        track="stable",
        replicas=2,
    )
    bare = ModelVersion.model_validate({"version": 1, "artifact": {"uri": "s3://b/k"}})
    assert ServedVersion.from_model_version(bare, track="canary", replicas=1).feature_names == ()


# --- replicas -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "percent", "expected"),
    [
        (0, 0, (0, 0)),
        (0, 50, (0, 0)),
        (0, 100, (0, 0)),
        (1, 0, (1, 0)),
        (1, 10, (1, 1)),  # one pod cannot serve both: the canary gets an extra one
        (1, 99, (1, 1)),
        (1, 100, (0, 1)),
        (2, 10, (1, 1)),
        (2, 50, (1, 1)),
        (2, 90, (1, 1)),
        (3, 50, (2, 1)),  # 1.5 pods: a tie goes to the stable side
        (4, 25, (3, 1)),
        (5, 50, (3, 2)),
        (10, 0, (10, 0)),
        (10, 1, (9, 1)),  # at least one canary pod: 10 % instead of 1 %
        (10, 10, (9, 1)),
        (10, 14, (9, 1)),
        (10, 15, (9, 1)),
        (10, 16, (8, 2)),
        (10, 50, (5, 5)),
        (10, 99, (1, 9)),  # at least one stable pod: 90 % instead of 99 %
        (10, 100, (0, 10)),
        (100, 1, (99, 1)),
        (100, 37, (63, 37)),
    ],
)
def test_split_replicas(total: int, percent: int, expected: tuple[int, int]) -> None:
    assert split_replicas(total, percent) == expected


def test_split_replicas_bounds() -> None:
    for total in range(2, 40):
        for percent in range(0, 101):
            stable, canary = split_replicas(total, percent)
            assert stable + canary == total
            if 0 < percent < 100:
                assert stable >= 1
                assert canary >= 1
                # Within half a pod of the asked share, unless a side was held at one pod.
                if 1 < canary < total - 1:
                    error = abs(canary_share_percent(stable, canary) - percent)
                    assert error <= 50 / total + 1e-9


@pytest.mark.parametrize(("total", "percent"), [(-1, 10), (3, -1), (3, 101)])
def test_split_replicas_rejects(total: int, percent: int) -> None:
    with pytest.raises(ValueError, match="must"):
        split_replicas(total, percent)


def test_canary_share_percent() -> None:
    assert canary_share_percent(9, 1) == 10.0
    assert canary_share_percent(0, 0) == 0.0
    assert canary_share_percent(0, 3) == 100.0


@pytest.mark.parametrize(
    ("low", "high", "track", "percent", "expected"),
    [
        (1, 10, "stable", 0, (1, 10)),
        (1, 10, "stable", 10, (1, 9)),
        (1, 10, "canary", 10, (1, 1)),
        (4, 20, "stable", 50, (2, 10)),
        (4, 20, "canary", 50, (2, 10)),
        (1, 1, "stable", 100, (1, 1)),  # an HPA cannot go below one pod
        (1, 1, "canary", 0, (1, 1)),
    ],
)
def test_autoscaling_bounds(
    low: int, high: int, track: Any, percent: int, expected: tuple[int, int]
) -> None:
    autoscaling = dep(autoscaling={"minReplicas": low, "maxReplicas": high}).spec.autoscaling
    assert autoscaling is not None
    assert autoscaling_bounds(autoscaling, track, percent) == expected


# --- what restarts serving pods -------------------------------------------------------------


def template_hash(d: Deployment, served: ServedVersion, image: str = IMAGE) -> str:
    template = build_version_deployment(d, BODY, served, image)["spec"]["template"]
    return spec_hash({"metadata": {}, "template": template})


def test_pod_template_ignores_what_needs_no_restart() -> None:
    base = template_hash(dep(), STABLE)
    same = [
        template_hash(dep(replicas=9), STABLE),
        template_hash(dep(canary={"alias": "candidate", "trafficPercent": 90}), STABLE),
        template_hash(dep(canary=None), STABLE),
        template_hash(dep(monitoring={"labels": {"team": "other"}, "latencyP99Ms": 9}), STABLE),
        template_hash(dep(monitoring={"enabled": False}), STABLE),
        template_hash(dep(autoscaling={"minReplicas": 1, "maxReplicas": 3}), STABLE),
        template_hash(dep(pdb={"minAvailable": "50%"}), STABLE),
        template_hash(dep(runtime="auto", alias=None, version=4), STABLE),
        template_hash(dep(), ServedVersion(**{**STABLE.__dict__, "replicas": 7})),
        # Promotion flips the track; the promoted version's pods stay.
        template_hash(dep(), ServedVersion(**{**STABLE.__dict__, "track": "canary"})),
    ]
    assert same == [base] * len(same)


@pytest.mark.parametrize(
    "change",
    [
        {"number": 6},
        {"artifact_uri": "pvc://models/iris/iris-8"},
        {"digest": DIGEST_5},
        {"feature_names": ("a", "b")},
        {"storage_secret": "other-creds"},
    ],
)
def test_pod_template_follows_the_served_version(change: dict[str, Any]) -> None:
    changed = ServedVersion(**{**STABLE.__dict__, **change})
    assert template_hash(dep(), changed) != template_hash(dep(), STABLE)


def test_pod_template_follows_image_resources_and_service_account() -> None:
    base = template_hash(dep(), STABLE)
    assert template_hash(dep(), STABLE, image=IMAGE + "-rc1") != base
    assert template_hash(dep(resources={"requests": {"cpu": "1"}}), STABLE) != base
    assert template_hash(dep(serviceAccountName="reader"), STABLE) != base


def test_unrelated_changes_keep_every_child_but_its_own_field() -> None:
    """Monitoring is none of these children's business: their manifests, hashes included, stay."""
    before = dep()
    after = dep(monitoring={"labels": {"team": "other"}, "drift": {"threshold": 2.0}})
    for build in (
        lambda d: build_version_deployment(d, BODY, STABLE, IMAGE),
        lambda d: build_service(d, BODY),
        lambda d: build_pdb(d, BODY),
    ):
        assert build(before) == build(after)


# --- restricted pods, nothing privileged ----------------------------------------------------


def all_manifests() -> Iterator[dict[str, Any]]:
    autoscaled = dep(autoscaling={"minReplicas": 1, "maxReplicas": 4}, serviceAccountName="sa")
    for d in (dep(), autoscaled):
        for served in (STABLE, CANARY):
            yield build_version_deployment(d, BODY, served, IMAGE)
            hpa = build_hpa(d, BODY, served, canary_percent=25)
            if hpa is not None:
                yield hpa
        yield build_service(d, BODY)
        pdb = build_pdb(d, BODY)
        if pdb is not None:
            yield pdb
        yield seldon.build_seldon_deployment(d, BODY, STABLE, CANARY, 25, IMAGE)


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", key, value
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}[{i}]")


def pod_specs(manifest: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if manifest["kind"] == "Deployment" and manifest["apiVersion"] == "apps/v1":
        yield manifest["spec"]["template"]["spec"]
    if manifest["kind"] == "SeldonDeployment":
        for predictor in manifest["spec"]["predictors"]:
            for component in predictor["componentSpecs"]:
                yield component["spec"]


def test_nothing_privileged_or_on_the_host() -> None:
    forbidden = {"hostPath", "hostNetwork", "hostPID", "hostIPC", "hostPort", "hostUsers"}
    for manifest in all_manifests():
        for path, key, value in walk(manifest):
            assert key not in forbidden, f"{manifest['kind']}: {path}"
            if key == "privileged":
                assert value is False, f"{manifest['kind']}: {path}"
            if key == "allowPrivilegeEscalation":
                assert value is False, f"{manifest['kind']}: {path}"


def test_every_pod_is_restricted() -> None:
    specs = [spec for manifest in all_manifests() for spec in pod_specs(manifest)]
    assert len(specs) == 8
    for spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for volume in spec["volumes"]:
            assert set(volume) - {"name"} <= {"emptyDir", "persistentVolumeClaim"}
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert context["readOnlyRootFilesystem"] is True
            assert context["runAsNonRoot"] is True
            mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
            assert "/tmp" in mounts
            for path, mount in mounts.items():
                if path.startswith("/mnt/pvc/"):
                    assert mount["readOnly"] is True


# --- spec hash ------------------------------------------------------------------------------


def test_spec_hash_known_value() -> None:
    # sha256 of '{"kind":"ConfigMap","metadata":{"name":"x"}}'
    assert (
        spec_hash({"metadata": {"name": "x"}, "kind": "ConfigMap"})
        == "sha256:4182f4429aaf701b8db70e7a6e979f39a44e3e6a1104ded28da8cf16ddb664b8"
    )


def test_with_spec_hash_is_stable() -> None:
    manifest = {"kind": "ConfigMap", "metadata": {"name": "x", "annotations": {"a": "1"}}}
    original = copy.deepcopy(manifest)
    hashed = with_spec_hash(manifest)
    assert manifest == original  # not mutated
    assert with_spec_hash(hashed) == hashed  # idempotent
    assert hashed["metadata"]["annotations"]["a"] == "1"
    # Key order does not matter; a stale hash is replaced.
    reordered = {
        "metadata": {"annotations": {ANNOTATION_SPEC_HASH: "stale", "a": "1"}, "name": "x"}
    }
    reordered["kind"] = "ConfigMap"
    assert with_spec_hash(reordered) == hashed
    # Any other change does.
    assert with_spec_hash({**manifest, "data": {"k": "v"}}) != hashed
    # The hash annotation alone adds nothing to hash.
    bare = {"kind": "ConfigMap", "metadata": {"name": "x"}}
    assert spec_hash(with_spec_hash(bare)) == spec_hash(bare)


def test_builders_are_deterministic_and_json() -> None:
    first = list(all_manifests())
    second = list(all_manifests())
    assert first == second
    for manifest in first:
        assert observed_spec_hash(manifest) == spec_hash(manifest)
        json.dumps(manifest, allow_nan=False)


def test_observed_spec_hash() -> None:
    assert observed_spec_hash(None) is None
    assert observed_spec_hash({"metadata": {}}) is None
    assert observed_spec_hash({"metadata": {"annotations": {ANNOTATION_SPEC_HASH: "h"}}}) == "h"


def test_builders_do_not_share_mutable_state() -> None:
    one = build_version_deployment(dep(), BODY, STABLE, IMAGE)
    one["spec"]["template"]["spec"]["securityContext"]["runAsUser"] = 0
    one["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    two = build_version_deployment(dep(), BODY, STABLE, IMAGE)
    assert two["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 65532
    assert (
        two["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] is False
    )
    assert common.POD_SECURITY_CONTEXT["runAsUser"] == 65532
