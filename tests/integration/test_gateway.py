"""The exact traffic split against the real Gateway API CRDs (v1.6.3, from its Go module): the
HTTPRoute and the per-version Services the operator generates are accepted by the apiserver's
schema and CEL rules, and the route's weights move through a canary and a version switch.
(No Gateway implementation runs here: what is checked is the route as stored.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import get, kubectl, wait_for
from tests.integration.conftest import OperatorProcess
from tests.integration.gateway import gateway_api_crds
from tests.integration.servers import (
    MWD,
    apply_canary,
    own_operator,
    patch,
    pods_of,
    wait_available,
    wait_endpoints,
    wait_mwd,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def route_operator(
    operator: OperatorProcess, kubeconfig: str, namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """The CRDs first, then an operator of this test's own (the session's is paused): kopf
    watches HTTPRoutes only if their CRD exists when it starts."""
    with (
        gateway_api_crds(),
        own_operator(
            operator, kubeconfig, tmp_path / "operator.log", "--namespace", namespace
        ) as proc,
    ):
        yield proc


def weights(namespace: str) -> list[tuple[str, int]] | None:
    route = get("httproute.gateway.networking.k8s.io", "iris", namespace)
    if route is None:
        return None
    return [(r["name"], r["weight"]) for r in route["spec"]["rules"][0]["backendRefs"]]


def wait_weights(namespace: str, expected: list[tuple[str, int]]) -> None:
    wait_for(f"route weights {expected}", lambda: weights(namespace) == expected, timeout=90)


def service_names(namespace: str) -> list[str]:
    out = kubectl(
        "get", "services", "-n", namespace, "-l", "modelwerk.io/deployment=iris", "-o", "name"
    )
    return sorted(line.rsplit("/", 1)[1] for line in out.split())


def test_the_route_splits_a_canary_exactly_and_follows_a_switch(
    namespace: str, route_operator: OperatorProcess
) -> None:
    apply_canary(namespace, runtime="native", replicas=2, percent=10)
    obj = wait_available(namespace, "iris", version=1, ready=2)
    # 10 % on 2 replicas: the replica split would give the canary 50 %, the route gives 10.
    wait_weights(namespace, [("iris-v1", 90), ("iris-v2", 10)])
    obj = wait_mwd(namespace, "iris", "trafficSplit", lambda o: "trafficSplit" in o["status"])
    assert obj["status"]["trafficSplit"] == "HTTPRoute"
    route: dict[str, Any] | None = get("httproute.gateway.networking.k8s.io", "iris", namespace)
    assert route is not None
    assert route["spec"]["parentRefs"] == [
        {"group": "", "kind": "Service", "name": "iris", "port": 8000}
    ]
    assert route["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    assert service_names(namespace) == ["iris", "iris-v1", "iris-v2"]
    # Each version's Service selects that version's pods only.
    for number in (1, 2):
        ips = {p["status"]["podIP"] for p in pods_of(namespace, "iris", number)}
        wait_endpoints(namespace, f"iris-v{number}", ips)

    patch(MWD, namespace, "iris", {"spec": {"canary": {"version": 2, "trafficPercent": 35}}})
    wait_weights(namespace, [("iris-v1", 65), ("iris-v2", 35)])

    # On a Gateway with a host name: the apiserver's CEL rules accept the generated parentRefs.
    gateway = {
        "parentRefs": [{"name": "web", "namespace": "gateways", "sectionName": "http"}],
        "hostnames": ["iris.example.com"],
    }
    patch(MWD, namespace, "iris", {"spec": {"gateway": gateway}})
    wait_for(
        "the route on the Gateway",
        lambda: (
            (get("httproute.gateway.networking.k8s.io", "iris", namespace) or {})
            .get("spec", {})
            .get("hostnames")
            == ["iris.example.com"]
        ),
        timeout=90,
    )
    route = get("httproute.gateway.networking.k8s.io", "iris", namespace)
    assert route is not None
    assert route["spec"]["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "web",
            "namespace": "gateways",
            "sectionName": "http",
        }
    ]

    # Version 2 becomes the stable version: all requests go to it, version 1's Service goes.
    patch(MWD, namespace, "iris", {"spec": {"version": 2, "canary": None}})
    wait_available(namespace, "iris", version=2, ready=2)
    wait_weights(namespace, [("iris-v2", 100)])
    wait_for(
        "iris-v1's Service pruned",
        lambda: service_names(namespace) == ["iris", "iris-v2"],
        timeout=90,
    )
