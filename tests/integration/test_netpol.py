"""The workload NetworkPolicy option on the real apiserver: the operator (run with
MODELWERK_NETWORK_POLICY, as the chart's workloadNetworkPolicy values set it) gives a
Deployment's serving pods and a TrainingRun's pods their policies; the apiserver accepts them,
their selectors pick exactly those pods, the run's exists before its Job, and an operator without
the option removes the serving one. (kwok nodes and this cluster's CNI enforce nothing: what is
tested is what the operator asks of the cluster.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import apply, get, get_list, wait_for
from tests.integration.conftest import OperatorProcess
from tests.integration.servers import (
    LABEL_DEPLOYMENT,
    deployment_manifest,
    model_with,
    own_operator,
    pods_of,
    wait_available,
)
from tests.integration.test_deployment import declared
from tests.integration.trainingruns import reference_report, run_manifest, wait_phase

pytestmark = pytest.mark.integration

STORE = {"to": [{"ipBlock": {"cidr": "10.0.0.5/32"}}], "ports": [{"port": 9000, "protocol": "TCP"}]}
GATEWAY = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway"}}}
OPTION = {"MODELWERK_NETWORK_POLICY": json.dumps({"ingressFrom": [GATEWAY], "egress": [STORE]})}


def selected(namespace: str, policy: dict[str, Any]) -> set[str]:
    """The pods of `namespace` the policy's podSelector matches, as the apiserver selects."""
    labels = policy["spec"]["podSelector"]["matchLabels"]
    selector = ",".join(f"{k}={v}" for k, v in labels.items())
    return {p["metadata"]["name"] for p in get_list("pods", namespace, selector)}


def test_serving_and_training_pods_get_their_policies(
    namespace: str, operator: OperatorProcess, kubeconfig: str, tmp_path: Path
) -> None:
    ns = namespace
    with own_operator(operator, kubeconfig, tmp_path / "operator.log", "-n", ns, env=OPTION):
        model_with(ns, declared(1))
        apply(deployment_manifest("iris", "iris", version=1, runtime="native", replicas=2), ns)
        wait_available(ns, "iris", version=1, ready=2)
        policy = wait_for(
            "the serving policy", lambda: get("networkpolicy", "iris-serving", ns), timeout=30
        )
        assert selected(ns, policy) == {p["metadata"]["name"] for p in pods_of(ns, "iris")}
        assert len(selected(ns, policy)) == 2
        assert policy["spec"]["egress"][1] == STORE
        assert policy["spec"]["ingress"][0]["from"][1] == GATEWAY
        assert policy["metadata"]["ownerReferences"][0]["name"] == "iris"

        apply(run_manifest("iris-1", "iris", report=reference_report().text), ns)
        wait_phase(ns, "iris-1", "Succeeded", timeout=90)
        training = get("networkpolicy", "iris-1-training", ns)
        job = get("job.batch", "iris-1", ns)
        assert training is not None
        assert job is not None
        # Created before the Job (same-second timestamps allowed: the apiserver's resolution).
        assert training["metadata"]["creationTimestamp"] <= job["metadata"]["creationTimestamp"]
        assert int(training["metadata"]["resourceVersion"]) < int(
            job["metadata"]["resourceVersion"]
        )
        run_pods = selected(ns, training)
        assert run_pods
        assert all(p.startswith("iris-1-") for p in run_pods)
        assert not run_pods & selected(ns, policy)

    # The session operator runs without the option: the serving policy goes, the run's stays
    # (it goes with its run).
    wait_for(
        "the serving policy deleted",
        lambda: get("networkpolicy", "iris-serving", ns) is None,
        timeout=60,
    )
    assert get("networkpolicy", "iris-1-training", ns) is not None
    assert get_list("networkpolicies", ns, f"{LABEL_DEPLOYMENT}=iris") == []
