"""In a pod, the operator finds the apiserver as client-go does: from the `kubernetes` Service's
address the kubelet puts into the environment, not by a DNS name the cluster may not serve."""

from __future__ import annotations

from modelwerk.settings import in_cluster_server


def test_service_address_from_the_kubelets_variables() -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert in_cluster_server(env) == "https://10.0.0.1:443"


def test_ipv6_service_address_is_bracketed() -> None:
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}
    assert in_cluster_server(env) == "https://[fd00::1]:6443"


def test_outside_a_pod_nothing_overrides() -> None:
    assert in_cluster_server({}) is None
    assert in_cluster_server({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}) is None
