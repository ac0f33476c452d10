"""The kopf glue: every watched kind is also indexed, which is what holds every event handler
back until all kinds are listed (the caches complete before the first reconcile after a
start); and the request counters label each request with the resource it addresses."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from modelwerk import k8s, kinds, wiring


def test_every_watched_kind_fills_its_cache_in_an_index_handler() -> None:
    import modelwerk.handlers  # noqa: F401  (registers the handlers)

    registry = kopf.get_default_registry()

    def resources(handlers: list[Any]) -> dict[tuple[str, str], object]:
        return {
            (h.selector.group or "", h.selector.any_name or h.selector.plural): h.labels
            for h in handlers
            if h.selector is not None
        }

    indexed = resources(list(registry._indexing.get_all_handlers()))
    watched = resources(list(registry._watching.get_all_handlers()))
    assert set(watched) == {(k.group, k.plural) for k in wiring.ROUTES}
    assert indexed == watched  # same kinds, same label filters


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
