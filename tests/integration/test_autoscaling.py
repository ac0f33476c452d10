"""An HPA created through the operator against the real apiserver and kube-controller-manager's
HPA controller (no metrics-server here: the controller still raises a target below minReplicas
to it, which is what is checked): the HPA targets the served version's apps Deployment, the
operator leaves `replicas` to it, a version switch moves it to the new version's Deployment, and
a converged Deployment costs no write, also across a restart. (Scaling on real CPU load needs
metrics-server and real pods: the real-node tier, not this one.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import apply, get, wait_for
from tests.integration.conftest import OperatorProcess
from tests.integration.servers import (
    MWD,
    deployment_manifest,
    model_with,
    own_operator,
    patch,
    version_deployments,
    wait_available,
)
from tests.integration.test_deployment import declared
from tests.integration.test_restart_writes import quiet, restart, writes_by_resource

pytestmark = pytest.mark.integration

AUTOSCALING = {"minReplicas": 2, "maxReplicas": 4, "targetCPUUtilizationPercentage": 70}


@pytest.fixture
def operator_here(
    operator: OperatorProcess, kubeconfig: str, crds: None, namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    with own_operator(
        operator, kubeconfig, tmp_path / "operator.log", "--namespace", namespace
    ) as p:
        yield p


def hpa_of(namespace: str, number: int) -> dict[str, Any]:
    hpa: dict[str, Any] = wait_for(
        f"the HPA of version {number}",
        lambda: get("horizontalpodautoscaler.autoscaling", f"iris-v{number}", namespace),
    )
    return hpa


def scaled_by_hpa(namespace: str, number: int, replicas: int) -> None:
    wait_for(
        f"iris-v{number} at {replicas} replicas (the HPA controller's minReplicas)",
        lambda: (
            (version_deployments(namespace, "iris").get(number) or {})
            .get("spec", {})
            .get("replicas")
            == replicas
        ),
        timeout=90,
    )


def test_the_hpa_targets_the_served_version_and_follows_a_switch(
    namespace: str, operator_here: OperatorProcess
) -> None:
    model_with(namespace, declared(1), declared(2))
    apply(
        deployment_manifest("iris", "iris", version=1, runtime="native", autoscaling=AUTOSCALING),
        namespace,
    )
    hpa = hpa_of(namespace, 1)
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "iris-v1",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    owner = hpa["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("Deployment", "iris")
    # The apps Deployment was created with the apiserver's default of 1: the real HPA
    # controller raises it to minReplicas, and the operator never sets replicas back.
    scaled_by_hpa(namespace, 1, 2)
    wait_available(namespace, "iris", version=1, ready=2)
    first = writes_by_resource(quiet(operator_here, reconciled=2))
    again = writes_by_resource(quiet(operator_here, reconciled=2, window=6.0))
    assert again == first, "a converged Deployment with an HPA wrote"
    assert version_deployments(namespace, "iris")[1]["spec"]["replicas"] == 2

    # A switch: version 2 gets its own HPA (on its own Deployment); version 1's goes with it.
    patch(MWD, namespace, "iris", {"spec": {"version": 2}})
    hpa = hpa_of(namespace, 2)
    assert hpa["spec"]["scaleTargetRef"]["name"] == "iris-v2"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)
    scaled_by_hpa(namespace, 2, 2)
    wait_available(namespace, "iris", version=2, ready=2)
    wait_for(
        "version 1's HPA and Deployment pruned",
        lambda: (
            get("horizontalpodautoscaler.autoscaling", "iris-v1", namespace) is None
            and list(version_deployments(namespace, "iris")) == [2]
        ),
        timeout=90,
    )
    # Converged again: nothing written while idle, nor by a restarted operator.
    first = writes_by_resource(quiet(operator_here, reconciled=2))
    again = writes_by_resource(quiet(operator_here, reconciled=2, window=6.0))
    assert again == first, "a converged Deployment with an HPA wrote after the switch"
    assert restart(operator_here, reconciled=2) == {}
    assert version_deployments(namespace, "iris")[2]["spec"]["replicas"] == 2
