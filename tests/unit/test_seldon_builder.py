"""The Seldon runtime's builder: one SeldonDeployment, a predictor per served version."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modelwerk.api import Deployment
from modelwerk.builders.modelserver import ServedVersion
from modelwerk.builders.seldon import build_seldon_deployment
from modelwerk.builders.spechash import ANNOTATION_SPEC_HASH, spec_hash

DIGEST_4 = "sha256:" + "4" * 64
DIGEST_5 = "sha256:" + "5" * 64
IMAGE = "ghcr.io/modelwerk/modelwerk:0.1.0"

BODY: dict[str, Any] = {
    "apiVersion": "modelwerk.io/v1alpha1",
    "kind": "Deployment",
    "metadata": {"name": "iris", "namespace": "ml-team", "uid": "0b6f-uid"},
    "spec": {
        "model": "iris",
        "version": 4,
        "runtime": "seldon",
        "replicas": 4,
        "resources": {"requests": {"cpu": "100m"}},
        "canary": {"version": 5, "trafficPercent": 10},
        "pdb": {"minAvailable": 1},
    },
}
STABLE = ServedVersion(4, "pvc://models/iris/iris-7", DIGEST_4, ("a", "b"), "stable", 3)
CANARY = ServedVersion(5, "https://models.example/iris-5.joblib", DIGEST_5, (), "canary", 1)

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
    "runAsUser": 65532,
    "runAsGroup": 65532,
}
COMMAND = [
    "seldon-core-microservice",
    "modelwerk.serving.seldon.SeldonModel",
    "--service-type",
    "MODEL",
]
PORTS = [
    {"name": "http", "containerPort": 9000, "protocol": "TCP"},
    {"name": "metrics", "containerPort": 6000, "protocol": "TCP"},
]
PROBES = {
    "readinessProbe": {
        "httpGet": {"path": "/health/status", "port": "http"},
        "periodSeconds": 5,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    },
    "livenessProbe": {
        "httpGet": {"path": "/health/ping", "port": "http"},
        "periodSeconds": 10,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    },
    "lifecycle": {"preStop": {"exec": {"command": ["python", "-c", "import time; time.sleep(5)"]}}},
}
GRAPH = {"name": "model", "type": "MODEL", "endpoint": {"type": "REST"}, "children": []}


def dep(**spec: Any) -> Deployment:
    body = copy.deepcopy(BODY)
    body["spec"].update(spec)
    return Deployment.from_body(body)


def strip_hash(manifest: dict[str, Any]) -> dict[str, Any]:
    stripped = copy.deepcopy(manifest)
    annotations = stripped["metadata"].pop("annotations")
    assert annotations == {ANNOTATION_SPEC_HASH: spec_hash(manifest)}
    return stripped


def test_stable_and_canary() -> None:
    manifest = build_seldon_deployment(dep(), BODY, STABLE, CANARY, 10, IMAGE)
    assert strip_hash(manifest) == {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {
            "name": "iris",
            "namespace": "ml-team",
            "labels": COMMON_LABELS,
            "ownerReferences": [OWNER_REF],
        },
        "spec": {
            "predictors": [
                {
                    "name": "v4",
                    "traffic": 90,
                    "labels": {
                        **COMMON_LABELS,
                        "modelwerk.io/model-version": "4",
                        "version": "v4",
                    },
                    "annotations": {"seldon.io/no-engine": "true"},
                    "componentSpecs": [
                        {
                            "spec": {
                                "securityContext": SECURE_POD,
                                "containers": [
                                    {
                                        "name": "model",
                                        "image": IMAGE,
                                        "command": COMMAND,
                                        "env": [
                                            {
                                                "name": "MODELWERK_MODEL_URI",
                                                "value": "pvc://models/iris/iris-7",
                                            },
                                            {"name": "MODELWERK_MODEL_DIGEST", "value": DIGEST_4},
                                            {"name": "MODELWERK_MODEL_NAME", "value": "iris"},
                                            {"name": "MODELWERK_MODEL_VERSION", "value": "4"},
                                            {"name": "MODELWERK_FEATURE_NAMES", "value": "a,b"},
                                            {"name": "MODELWERK_PVC_ROOT", "value": "/mnt/pvc"},
                                            {
                                                "name": "INCLUDE_METRICS_IN_CLIENT_RESPONSE",
                                                "value": "false",
                                            },
                                        ],
                                        "ports": PORTS,
                                        **PROBES,
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
                                        "resources": {"requests": {"cpu": "100m"}},
                                    }
                                ],
                                "volumes": [
                                    {"name": "tmp", "emptyDir": {}},
                                    {
                                        "name": "artifact",
                                        "persistentVolumeClaim": {
                                            "claimName": "models",
                                            "readOnly": True,
                                        },
                                    },
                                ],
                                "enableServiceLinks": False,
                                "terminationGracePeriodSeconds": 30,
                                "automountServiceAccountToken": False,
                            },
                            "pdbSpec": {"minAvailable": 1},
                        }
                    ],
                    "graph": GRAPH,
                    "replicas": 3,
                },
                {
                    "name": "v5",
                    "traffic": 10,
                    "labels": {
                        **COMMON_LABELS,
                        "modelwerk.io/model-version": "5",
                        "version": "v5",
                    },
                    "annotations": {"seldon.io/no-engine": "true"},
                    "componentSpecs": [
                        {
                            "spec": {
                                "securityContext": SECURE_POD,
                                "containers": [
                                    {
                                        "name": "model",
                                        "image": IMAGE,
                                        "command": COMMAND,
                                        "env": [
                                            {
                                                "name": "MODELWERK_MODEL_URI",
                                                "value": "https://models.example/iris-5.joblib",
                                            },
                                            {"name": "MODELWERK_MODEL_DIGEST", "value": DIGEST_5},
                                            {"name": "MODELWERK_MODEL_NAME", "value": "iris"},
                                            {"name": "MODELWERK_MODEL_VERSION", "value": "5"},
                                            {"name": "MODELWERK_PVC_ROOT", "value": "/mnt/pvc"},
                                            {
                                                "name": "INCLUDE_METRICS_IN_CLIENT_RESPONSE",
                                                "value": "false",
                                            },
                                        ],
                                        "ports": PORTS,
                                        **PROBES,
                                        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                                        "terminationMessagePolicy": "FallbackToLogsOnError",
                                        "securityContext": SECURE_CONTAINER,
                                        "resources": {"requests": {"cpu": "100m"}},
                                    }
                                ],
                                "volumes": [{"name": "tmp", "emptyDir": {}}],
                                "enableServiceLinks": False,
                                "terminationGracePeriodSeconds": 30,
                                "automountServiceAccountToken": False,
                            },
                        }
                    ],
                    "graph": GRAPH,
                    "replicas": 1,
                },
            ]
        },
    }


def test_stable_only() -> None:
    manifest = build_seldon_deployment(dep(canary=None), BODY, STABLE, None, 30, IMAGE)
    (predictor,) = manifest["spec"]["predictors"]
    assert predictor["name"] == "v4"
    assert predictor["traffic"] == 100


def test_autoscaling_replaces_replicas_on_every_predictor() -> None:
    d = dep(autoscaling={"minReplicas": 2, "maxReplicas": 6, "targetCPUUtilizationPercentage": 60})
    manifest = build_seldon_deployment(d, BODY, STABLE, CANARY, 50, IMAGE)
    for predictor in manifest["spec"]["predictors"]:
        assert "replicas" not in predictor
        assert predictor["componentSpecs"][0]["hpaSpec"] == {
            "minReplicas": 2,
            "maxReplicas": 6,
            "metricsv2": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 60},
                    },
                }
            ],
        }


@pytest.mark.parametrize("percent", [0, 1, 10, 50, 99, 100])
def test_traffic_sums_to_100(percent: int) -> None:
    manifest = build_seldon_deployment(dep(), BODY, STABLE, CANARY, percent, IMAGE)
    weights = [p["traffic"] for p in manifest["spec"]["predictors"]]
    assert weights == [100 - percent, percent]


def test_pdb_on_the_stable_predictor_only() -> None:
    manifest = build_seldon_deployment(dep(), BODY, STABLE, CANARY, 10, IMAGE)
    stable, canary = manifest["spec"]["predictors"]
    assert stable["componentSpecs"][0]["pdbSpec"] == {"minAvailable": 1}
    assert "pdbSpec" not in canary["componentSpecs"][0]
    none = build_seldon_deployment(dep(pdb=None), BODY, STABLE, CANARY, 10, IMAGE)
    assert all("pdbSpec" not in p["componentSpecs"][0] for p in none["spec"]["predictors"])


def test_graph_names_the_container() -> None:
    manifest = build_seldon_deployment(dep(), BODY, STABLE, CANARY, 10, IMAGE)
    for predictor in manifest["spec"]["predictors"]:
        (container,) = predictor["componentSpecs"][0]["spec"]["containers"]
        assert container["name"] == predictor["graph"]["name"]


def test_pods_do_not_follow_traffic_replicas_or_monitoring() -> None:
    """Predictor labels, annotations and pod specs become the pods Seldon runs: none of them
    may change with traffic, replicas, the track or monitoring."""

    def pods(manifest: dict[str, Any]) -> list[Any]:
        return [
            (p["labels"], p["annotations"], p["componentSpecs"][0]["spec"])
            for p in manifest["spec"]["predictors"]
        ]

    base = pods(build_seldon_deployment(dep(), BODY, STABLE, CANARY, 10, IMAGE))
    more_canary = ServedVersion(**{**CANARY.__dict__, "replicas": 3})
    assert pods(build_seldon_deployment(dep(), BODY, STABLE, more_canary, 60, IMAGE)) == base
    monitoring = dep(monitoring={"labels": {"team": "x"}, "latencyP99Ms": 5}, replicas=9)
    assert pods(build_seldon_deployment(monitoring, BODY, STABLE, CANARY, 10, IMAGE)) == base
    # Promoted: v5 becomes the stable predictor with the very same pods.
    promoted = ServedVersion(**{**CANARY.__dict__, "track": "stable", "replicas": 4})
    alone = pods(build_seldon_deployment(dep(canary=None), BODY, promoted, None, 0, IMAGE))
    assert alone == [base[1]]


@pytest.mark.parametrize(
    ("stable", "canary", "percent", "message"),
    [
        (STABLE, CANARY, 101, "within 0..100"),
        (STABLE, CANARY, -1, "within 0..100"),
        (CANARY, None, 0, "tracks"),
        (STABLE, STABLE, 10, "tracks"),
        (STABLE, ServedVersion(**{**CANARY.__dict__, "number": 4}), 10, "both stable and canary"),
    ],
)
def test_rejects(
    stable: ServedVersion, canary: ServedVersion | None, percent: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_seldon_deployment(dep(), BODY, stable, canary, percent, IMAGE)
