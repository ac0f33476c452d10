"""builders/route.py: the HTTPRoute and the per-version Services of the exact traffic split,
against expected dicts, and the weights through a canary and a version switch."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modelwerk.api import Deployment
from modelwerk.builders.modelserver import ServedVersion
from modelwerk.builders.route import (
    Backend,
    build_http_route,
    build_version_service,
    version_service_name,
    weights,
)
from modelwerk.builders.spechash import ANNOTATION_SPEC_HASH, spec_hash

BODY: dict[str, Any] = {
    "apiVersion": "modelwerk.io/v1alpha1",
    "kind": "Deployment",
    "metadata": {"name": "iris", "namespace": "ml-team", "uid": "0b6f-uid"},
    "spec": {"model": "iris", "alias": "production", "replicas": 4},
}
OWNER = [
    {
        "apiVersion": "modelwerk.io/v1alpha1",
        "kind": "Deployment",
        "name": "iris",
        "uid": "0b6f-uid",
        "controller": True,
        "blockOwnerDeletion": True,
    }
]
LABELS = {
    "app.kubernetes.io/managed-by": "modelwerk",
    "app.kubernetes.io/part-of": "modelwerk",
    "app.kubernetes.io/component": "serving",
    "modelwerk.io/deployment": "iris",
    "modelwerk.io/model": "iris",
}
CANARY = ServedVersion(
    number=5,
    artifact_uri="s3://b/iris/5",
    digest="sha256:" + "5" * 64,
    feature_names=("x",),
    track="canary",
    replicas=1,
)


def dep(**spec: Any) -> Deployment:
    body = copy.deepcopy(BODY)
    body["spec"].update(spec)
    return Deployment.from_body(body)


def backend_ref(number: int, weight: int) -> dict[str, Any]:
    return {
        "group": "",
        "kind": "Service",
        "name": f"iris-v{number}",
        "port": 8000,
        "weight": weight,
    }


def without_hash(manifest: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(manifest)
    hashed = out["metadata"].pop("annotations")[ANNOTATION_SPEC_HASH]
    assert hashed == spec_hash(out)
    return out


def test_the_route_attaches_to_the_deployments_own_service_without_spec_gateway() -> None:
    route = build_http_route(dep(), BODY, [Backend(4, 90), Backend(5, 10)])
    assert without_hash(route) == {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {
            "name": "iris",
            "namespace": "ml-team",
            "labels": LABELS,
            "ownerReferences": OWNER,
        },
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": "iris", "port": 8000}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [backend_ref(4, 90), backend_ref(5, 10)],
                }
            ],
        },
    }


def test_spec_gateway_names_the_parents_and_hostnames() -> None:
    gateway = {
        "parentRefs": [
            {"name": "web", "namespace": "gateways", "sectionName": "http", "port": 80},
            {"name": "internal"},
        ],
        "hostnames": ["iris.example.com"],
    }
    spec = build_http_route(dep(gateway=gateway), BODY, [Backend(4, 100)])["spec"]
    assert spec["hostnames"] == ["iris.example.com"]
    assert spec["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "web",
            "namespace": "gateways",
            "sectionName": "http",
            "port": 80,
        },
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "internal"},
    ]
    assert spec["rules"][0]["backendRefs"] == [backend_ref(4, 100)]


def test_a_version_service_selects_that_versions_pods_only() -> None:
    service = build_version_service(dep(), BODY, CANARY)
    assert without_hash(service) == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "iris-v5",
            "namespace": "ml-team",
            # The version label keeps it out of the ServiceMonitor's selector; no track label,
            # or a promotion would rewrite it.
            "labels": {**LABELS, "modelwerk.io/model-version": "5"},
            "ownerReferences": OWNER,
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {"modelwerk.io/deployment": "iris", "modelwerk.io/model-version": "5"},
            "ports": [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    assert version_service_name("iris", 5) == "iris-v5"


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        ((4, None, 0), {"canary_ready": False}, [Backend(4, 100)]),
        ((4, 5, 10), {"canary_ready": True}, [Backend(4, 90), Backend(5, 10)]),
        ((4, 5, 1), {"canary_ready": True}, [Backend(4, 99), Backend(5, 1)]),
        # Not one canary pod available: its share would be the gateway's errors.
        ((4, 5, 10), {"canary_ready": False}, [Backend(4, 100), Backend(5, 0)]),
        ((4, 5, 100), {"canary_ready": True}, [Backend(4, 0), Backend(5, 100)]),
        # A switch: the previous version takes everything until the target is ready.
        ((5, None, 0), {"canary_ready": False, "previous": 4}, [Backend(4, 100), Backend(5, 0)]),
    ],
)
def test_weights(args: tuple[Any, ...], kwargs: dict[str, Any], expected: list[Backend]) -> None:
    got = weights(*args, **kwargs)
    assert got == expected
    assert sum(b.weight for b in got) == 100


def test_the_weights_are_exact_whatever_the_replicas() -> None:
    """What the replica split cannot do: 10 % on 2 replicas is 10 %, not 50 %."""
    route = build_http_route(dep(replicas=2), BODY, weights(4, 5, 10, canary_ready=True))
    refs = route["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["weight"]) for r in refs] == [("iris-v4", 90), ("iris-v5", 10)]
