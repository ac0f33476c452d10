"""The request counters label each request with the resource it addresses."""

from __future__ import annotations

import pytest

from modelwerk import k8s, kinds


@pytest.mark.parametrize(
    ("path", "resource"),
    [
        (kinds.DEPLOYMENT.path("ns", "iris", "status"), "deployments/status"),
        (kinds.APPS_DEPLOYMENT.path("ns", "iris-v1"), "deployments"),
        (kinds.JOB.path("ns"), "jobs"),
        (kinds.EVENT.path("ns"), "events"),
        (kinds.POD.path("ns", "p"), "pods"),
        (kinds.CRD.path(None, "x.io"), "customresourcedefinitions"),
        (kinds.PROMETHEUS_RULE.path("ns", "iris") + "?fieldManager=m", "prometheusrules"),
    ],
)
def test_request_counters_name_the_resource(path: str, resource: str) -> None:
    assert k8s.resource_of(path) == resource
