"""The serving builders' manifests against the real apiserver: every one is accepted by a
server-side dry run with strict field validation in a namespace enforcing Pod Security
`restricted` (the SeldonDeployment against Seldon's own CRD schema), and the native runtime's
children really run: pods on the kwok nodes behind one Service, untouched by a change of
replicas, canary traffic or monitoring, and garbage-collected with their owner."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelwerk.api import Deployment
from modelwerk.builders.modelserver import ServedVersion
from modelwerk.builders.native import build_hpa, build_pdb, build_service, build_version_deployment
from modelwerk.builders.replicas import split_replicas
from modelwerk.builders.seldon import build_seldon_deployment
from modelwerk.constants import FIELD_MANAGER, LABEL_DEPLOYMENT, LABEL_MODEL_VERSION
from tests.integration.cluster import get, get_list, kubectl, wait_for

pytestmark = pytest.mark.integration

IMAGE = "ghcr.io/modelwerk/modelwerk:0.1.0"
DIGEST_4 = "sha256:" + "4" * 64
DIGEST_5 = "sha256:" + "5" * 64
CLAIM = "models"


def served(number: int, track: Any, replicas: int, uri: str | None = None) -> ServedVersion:
    return ServedVersion(
        number=number,
        artifact_uri=uri or f"pvc://{CLAIM}/iris/iris-{number}",
        digest=DIGEST_4 if number == 4 else DIGEST_5,
        feature_names=("petal_length", "petal_width", "sepal_length", "sepal_width"),
        track=track,
        replicas=replicas,
    )


def create_owner(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    """A real modelwerk.io Deployment, so the children's ownerReferences name a real object.
    Its Model does not exist, so an operator watching the cluster leaves it alone."""
    body = {
        "apiVersion": "modelwerk.io/v1alpha1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"model": "iris-absent", "version": 4, "runtime": "native", **spec},
    }
    created: dict[str, Any] = json.loads(
        kubectl("create", "-f", "-", "-o", "json", input=json.dumps(body))
    )
    return created


def server_side(manifest: dict[str, Any], namespace: str, *, dry_run: bool) -> dict[str, Any]:
    """`kubectl apply --server-side` as the operator's field manager; warnings (Pod Security
    `warn`, deprecations, unknown fields) fail the call."""
    args = [
        "kubectl",
        "--warnings-as-errors",
        "apply",
        "--server-side",
        f"--field-manager={FIELD_MANAGER}",
        "--validate=strict",
        "-n",
        namespace,
        "-o",
        "json",
        "-f",
        "-",
    ]
    if dry_run:
        args.append("--dry-run=server")
    proc = subprocess.run(
        args, input=json.dumps(manifest), capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, (
        f"{manifest['kind']} {manifest['metadata']['name']} refused:\n{proc.stderr}"
    )
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def assert_kept(sent: Any, stored: Any, path: str = "") -> None:
    """Everything sent came back unchanged: nothing pruned or coerced (defaults may be added,
    zero values may be left out)."""
    if isinstance(sent, dict):
        assert isinstance(stored, dict), path
        for key, value in sent.items():
            if key not in stored and value in (0, "", {}, []) and value is not False:
                continue  # a Go zero value under omitempty: not sent back, same meaning
            assert key in stored, f"{path}.{key} was dropped"
            assert_kept(value, stored[key], f"{path}.{key}")
    elif isinstance(sent, list):
        assert isinstance(stored, list), path
        assert len(stored) == len(sent), path
        for i, (a, b) in enumerate(zip(sent, stored, strict=True)):
            assert_kept(a, b, f"{path}[{i}]")
    else:
        assert sent == stored, f"{path}: sent {sent!r}, stored {stored!r}"


def pod_specs(manifest: dict[str, Any]) -> Iterator[tuple[dict[str, str], dict[str, Any]]]:
    if manifest["kind"] == "Deployment" and manifest["apiVersion"] == "apps/v1":
        template = manifest["spec"]["template"]
        yield template["metadata"]["labels"], template["spec"]
    elif manifest["kind"] == "SeldonDeployment":
        for predictor in manifest["spec"]["predictors"]:
            for component in predictor["componentSpecs"]:
                yield predictor["labels"], component["spec"]


def restricted_with_warnings(namespace: str) -> None:
    # The fixture enforces `restricted` on pods; `warn` also reports it for workload objects
    # (Deployments), and --warnings-as-errors turns that into a failure.
    kubectl(
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/warn=restricted",
        "pod-security.kubernetes.io/warn-version=latest",
    )


def test_every_manifest_passes_the_real_apiserver(
    namespace: str, crds: None, upstream_crds: Path
) -> None:
    restricted_with_warnings(namespace)
    kubectl("create", "serviceaccount", "model-reader", "-n", namespace)
    plain = create_owner(
        namespace, "iris", replicas=4, pdb={"minAvailable": 1}, canary={"version": 5}
    )
    scaled = create_owner(
        namespace,
        "iris-scaled",
        autoscaling={"minReplicas": 2, "maxReplicas": 10, "targetCPUUtilizationPercentage": 70},
        serviceAccountName="model-reader",
        resources={"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        pdb={"minAvailable": "50%"},
        canary={"version": 5, "trafficPercent": 20},
    )
    manifests: list[dict[str, Any]] = []
    for owner in (plain, scaled):
        dep = Deployment.from_body(owner)
        stable_n, canary_n = split_replicas(dep.spec.replicas, 20)
        stable = served(4, "stable", stable_n)
        canary = ServedVersion(
            5, "s3://bucket/iris/5/model.joblib", DIGEST_5, (), "canary", canary_n, "s3-creds"
        )
        for version in (stable, canary):
            manifests.append(build_version_deployment(dep, owner, version, IMAGE))
            hpa = build_hpa(dep, owner, version, canary_percent=20)
            if hpa is not None:
                manifests.append(hpa)
        manifests.append(build_service(dep, owner))
        pdb = build_pdb(dep, owner)
        assert pdb is not None
        manifests.append(pdb)
        manifests.append(build_seldon_deployment(dep, owner, stable, canary, 20, IMAGE))
        manifests.append(build_seldon_deployment(dep, owner, stable, None, 0, IMAGE))

    kinds = {(m["apiVersion"], m["kind"]) for m in manifests}
    assert kinds == {
        ("apps/v1", "Deployment"),
        ("v1", "Service"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("policy/v1", "PodDisruptionBudget"),
        ("machinelearning.seldon.io/v1", "SeldonDeployment"),
    }
    pods = 0
    for manifest in manifests:
        stored = server_side(manifest, namespace, dry_run=True)
        assert_kept(manifest, stored)
        # Pod Security admission judges pods, not Deployments or SeldonDeployments: submit each
        # pod as such (the Seldon one without what Seldon's operator adds).
        for labels, spec in pod_specs(manifest):
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"probe-{pods}", "namespace": namespace, "labels": labels},
                "spec": spec,
            }
            server_side(pod, namespace, dry_run=True)
            pods += 1
    assert pods == 2 * (2 + 2 + 1)


def create_pvc(namespace: str) -> str:
    """A claim bound to a static volume. kwok runs no kubelet, so nothing mounts it; the
    scheduler still needs it bound to place the pods."""
    pv = f"{namespace}-{CLAIM}"
    kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": pv},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadOnlyMany"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": "",
                    "claimRef": {"namespace": namespace, "name": CLAIM},
                    "nfs": {"server": "127.0.0.1", "path": "/models", "readOnly": True},
                },
            }
        ),
    )
    kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": CLAIM, "namespace": namespace},
                "spec": {
                    "accessModes": ["ReadOnlyMany"],
                    "storageClassName": "",
                    "volumeName": pv,
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }
        ),
    )
    wait_for(
        "the claim to bind",
        lambda: (get("pvc", CLAIM, namespace) or {}).get("status", {}).get("phase") == "Bound",
    )
    return pv


def running_pods(namespace: str, name: str, version: int) -> list[dict[str, Any]]:
    selector = f"{LABEL_DEPLOYMENT}={name},{LABEL_MODEL_VERSION}={version}"
    return [
        p
        for p in get_list("pods", namespace, selector)
        if p["status"].get("phase") == "Running" and "deletionTimestamp" not in p["metadata"]
    ]


def ready_endpoints(namespace: str, service: str) -> set[str]:
    slices = get_list("endpointslices", namespace, f"kubernetes.io/service-name={service}")
    return {
        address
        for s in slices
        for e in s.get("endpoints") or []
        if (e.get("conditions") or {}).get("ready")
        for address in e["addresses"]
    }


def settled(namespace: str, name: str, want: dict[int, int]) -> dict[int, list[Any]] | None:
    """Pods per version once each version Deployment is fully rolled out at its replicas and
    the Service has exactly their addresses as ready endpoints."""
    pods: dict[int, list[Any]] = {}
    for version, replicas in want.items():
        apps = get("deployment.apps", f"{name}-v{version}", namespace)
        status = (apps or {}).get("status", {})
        if apps is None or status.get("observedGeneration") != apps["metadata"]["generation"]:
            return None
        if (status.get("updatedReplicas", 0), status.get("readyReplicas", 0)) != (
            replicas,
            replicas,
        ) or status.get("replicas", 0) != replicas:
            return None
        pods[version] = running_pods(namespace, name, version)
        if len(pods[version]) != replicas:
            return None
    addresses = {p["status"]["podIP"] for ps in pods.values() for p in ps}
    if ready_endpoints(namespace, name) != addresses:
        return None
    return pods


def test_native_children_run_and_survive_unrelated_changes(
    namespace: str, crds: None, kubeconfig: str
) -> None:
    pv = create_pvc(namespace)
    try:
        owner = create_owner(
            namespace,
            "iris",
            replicas=3,
            pdb={"minAvailable": 1},
            canary={"version": 5, "trafficPercent": 25},
        )
        uid = owner["metadata"]["uid"]
        dep = Deployment.from_body(owner)
        stable_n, canary_n = split_replicas(3, 25)
        assert (stable_n, canary_n) == (2, 1)
        stable = served(4, "stable", stable_n)
        canary = served(5, "canary", canary_n, uri="https://models.example/iris-5.joblib")

        def apply_all(d: Deployment, s: ServedVersion, c: ServedVersion) -> None:
            pdb = build_pdb(d, owner)
            assert pdb is not None
            for manifest in (
                build_version_deployment(d, owner, s, IMAGE),
                build_version_deployment(d, owner, c, IMAGE),
                build_service(d, owner),
                pdb,
            ):
                server_side(manifest, namespace, dry_run=False)

        apply_all(dep, stable, canary)
        pods = wait_for(
            "2 stable and 1 canary pods running behind the Service",
            lambda: settled(namespace, "iris", {4: 2, 5: 1}),
            timeout=120,
        )
        for pod in (p for ps in pods.values() for p in ps):
            assert pod["spec"]["nodeName"].startswith("kwok-node-")
            if pod["metadata"]["labels"][LABEL_MODEL_VERSION] == "4":
                (mount,) = [
                    m
                    for m in pod["spec"]["containers"][0]["volumeMounts"]
                    if m["name"] == "artifact"
                ]
                assert mount == {
                    "name": "artifact",
                    "mountPath": "/mnt/pvc/models",
                    "readOnly": True,
                }
        for child in (
            "deployment.apps/iris-v4",
            "deployment.apps/iris-v5",
            "service/iris",
            "pdb/iris",
        ):
            kind, name = child.split("/")
            obj = get(kind, name, namespace)
            assert obj is not None
            assert [r["uid"] for r in obj["metadata"]["ownerReferences"]] == [uid]

        # The canary's traffic goes up, replicas and monitoring change: pods are scaled, never
        # replaced.
        changed = Deployment.from_body(
            {
                **owner,
                "spec": {
                    **owner["spec"],
                    "replicas": 3,
                    "canary": {"version": 5, "trafficPercent": 60},
                    "monitoring": {"labels": {"team": "other"}, "latencyP99Ms": 100},
                },
            }
        )
        stable_n, canary_n = split_replicas(3, 60)
        assert (stable_n, canary_n) == (1, 2)
        before = {p["metadata"]["uid"] for ps in pods.values() for p in ps}
        templates = {}
        for n in (4, 5):
            current = get("deployment.apps", f"iris-v{n}", namespace)
            assert current is not None
            templates[n] = current["spec"]["template"]
        apply_all(
            changed,
            served(4, "stable", stable_n),
            served(5, "canary", canary_n, uri="https://models.example/iris-5.joblib"),
        )
        after = wait_for(
            "1 stable and 2 canary pods",
            lambda: settled(namespace, "iris", {4: 1, 5: 2}),
            timeout=120,
        )
        kept = {p["metadata"]["uid"] for ps in after.values() for p in ps}
        assert len(kept & before) == 2, "one stable pod was scaled away, the rest must remain"
        for n in (4, 5):
            current = get("deployment.apps", f"iris-v{n}", namespace)
            assert current is not None
            assert current["spec"]["template"] == templates[n]
            replica_sets = get_list("replicasets", namespace, f"{LABEL_MODEL_VERSION}={n}")
            assert len(replica_sets) == 1, "a new ReplicaSet means the pods were restarted"

        # Owner references point at the real object: deleting it collects every child.
        kubectl("delete", "deployments.modelwerk.io", "iris", "-n", namespace)
        wait_for(
            "the garbage collector to delete the children",
            lambda: (
                not get_list("deployments.apps", namespace)
                and get("service", "iris", namespace) is None
                and get("pdb", "iris", namespace) is None
            ),
            timeout=60,
        )
    finally:
        kubectl("delete", "pv", pv, "--wait=false", check=False)
