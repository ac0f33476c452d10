"""The generated ServiceMonitor, PodMonitor and PrometheusRule against the real upstream CRDs:
a real apiserver with Prometheus Operator's CRDs accepts them under server-side apply with strict
field validation and stores them as built; their owner is a real modelwerk.io Deployment, and the
garbage collector deletes them with it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelwerk.api.deployment import Deployment
from modelwerk.builders.common import Manifest
from modelwerk.builders.monitoring import build_pod_monitor, build_service_monitor
from modelwerk.builders.operator_rules import build_operator_prometheus_rule
from modelwerk.builders.rules import build_prometheus_rule
from tests.integration.cluster import KubectlError, get, kubectl, wait_for

pytestmark = pytest.mark.integration

FIELD_MANAGER = "modelwerk-test"
BASELINE = {
    "features": {
        "sepal_length": {"mean": 5.84, "std": 0.83},
        "temperature": {"mean": -2.0, "std": 1.0},
        'odd "name" {{x}}': {"mean": 10.0, "std": 2.0},
        "constant": {"mean": 1.0, "std": 0.0},
    }
}


def server_side_apply(manifest: Manifest) -> str:
    return kubectl(
        "apply",
        "--server-side",
        f"--field-manager={FIELD_MANAGER}",
        "--validate=strict",
        "-f",
        "-",
        input=json.dumps(manifest),
    )


def owner(namespace: str) -> dict[str, Any]:
    """A real modelwerk.io Deployment, as the apiserver returns it (with its uid). Its Model
    does not exist, on purpose: an operator running against the same cluster (the session's
    `operator` fixture) then only reports ModelNotFound and leaves the monitoring objects of
    this test alone."""
    server_side_apply(
        {
            "apiVersion": "modelwerk.io/v1alpha1",
            "kind": "Deployment",
            "metadata": {"name": "iris", "namespace": namespace},
            "spec": {
                "model": "iris",
                "version": 4,
                "replicas": 2,
                "canary": {"version": 5, "trafficPercent": 10},
                "monitoring": {
                    "latencyP99Ms": 250,
                    "errorRatePercent": 1,
                    "drift": {"threshold": 3.0},
                    "labels": {"team": "ml", "release": "prometheus"},
                },
            },
        }
    )
    body = get("deployments.modelwerk.io", "iris", namespace)
    assert body is not None
    return body


def test_monitors_and_prometheus_rule_are_accepted(
    kubeconfig: str, crds: None, upstream_crds: Path, namespace: str
) -> None:
    body = owner(namespace)
    dep = Deployment.from_body(body)
    manifests = [
        build_service_monitor(dep, body),
        build_pod_monitor(dep, body),
        build_prometheus_rule(dep, body, [(4, BASELINE), (5, None)]),
    ]
    for manifest in manifests:
        server_side_apply(manifest)
        kind = f"{manifest['kind'].lower()}s.monitoring.coreos.com"
        stored = get(kind, manifest["metadata"]["name"], namespace)
        assert stored is not None
        # Stored as built: no field pruned or rewritten (strict validation would have refused
        # unknown fields; pruning would show here).
        assert stored["spec"] == manifest["spec"]
        assert stored["metadata"]["labels"] == manifest["metadata"]["labels"]
        [ref] = stored["metadata"]["ownerReferences"]
        assert ref["uid"] == body["metadata"]["uid"]
        assert ref["kind"] == "Deployment"
        assert ref["apiVersion"] == "modelwerk.io/v1alpha1"
        assert ref["controller"] is True

    kubectl("delete", "deployments.modelwerk.io", "iris", "-n", namespace, "--wait=false")
    for manifest in manifests:
        kind = f"{manifest['kind'].lower()}s.monitoring.coreos.com"
        wait_for(
            f"{kind} {manifest['metadata']['name']} to be garbage-collected with its owner",
            gone(kind, manifest["metadata"]["name"], namespace),
        )


def gone(kind: str, name: str, namespace: str) -> Callable[[], bool]:
    return lambda: get(kind, name, namespace) is None


def test_operator_prometheus_rule_is_accepted(
    kubeconfig: str, upstream_crds: Path, namespace: str
) -> None:
    manifest = build_operator_prometheus_rule(namespace, {"release": "prometheus"})
    server_side_apply(manifest)
    stored = get("prometheusrules.monitoring.coreos.com", manifest["metadata"]["name"], namespace)
    assert stored is not None
    assert stored["spec"] == manifest["spec"]


def test_the_crds_do_validate(
    kubeconfig: str, crds: None, upstream_crds: Path, namespace: str
) -> None:
    """A control: the same manifests with a wrong field are refused, so acceptance above means
    something."""
    body = owner(namespace)
    dep = Deployment.from_body(body)
    monitor = build_service_monitor(dep, body)
    monitor["spec"]["endpoints"][0]["scrapeEvery"] = "15s"
    with pytest.raises(KubectlError, match="scrapeEvery"):
        server_side_apply(monitor)
    rule = build_prometheus_rule(dep, body, [(4, BASELINE)])
    rule["spec"]["groups"][0]["rules"][0]["for"] = "5 minutes"
    with pytest.raises(KubectlError, match="for"):
        server_side_apply(rule)
