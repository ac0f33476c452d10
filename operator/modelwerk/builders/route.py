"""Deployment -> the native runtime's exact traffic split, when the Gateway API's HTTPRoute CRD
is installed: a Service per served version (`<name>-v<N>`, selecting that version's pods only)
and one HTTPRoute (`<name>`) whose backendRefs weights send each request to a version.

The split is then per request and exact (weights are integers summing to 100: the canary's
percent and the rest), where the replica split of builders/replicas.py is per connection and
only as fine as whole pods. The route attaches to spec.gateway's parentRefs, or without them to
the Deployment's own Service (the Gateway API's mesh binding, GAMMA): a mesh implementing it
splits requests to `http://<name>.<ns>.svc:8000` by these weights. The one Service still selects
every version's ready pods, so a client that bypasses the route gets the replica split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from modelwerk import contract, naming
from modelwerk.api.deployment import Deployment
from modelwerk.builders.common import Manifest, child_metadata
from modelwerk.builders.modelserver import (
    ServedVersion,
    deployment_labels,
    pod_labels,
    version_selector,
)
from modelwerk.builders.spechash import with_spec_hash

GATEWAY_API_VERSION: Final = "gateway.networking.k8s.io/v1"
GATEWAY_GROUP: Final = "gateway.networking.k8s.io"
HTTPROUTE_CRD: Final = "httproutes.gateway.networking.k8s.io"


@dataclass(frozen=True)
class Backend:
    """One version behind the route and its share of requests, in percent."""

    number: int
    weight: int


def version_service_name(deployment_name: str, number: int) -> str:
    """The same name as the version's apps Deployment (builders/native.py): other kind."""
    return naming.child_name(deployment_name, f"v{number}")


def weights(
    stable: int,
    canary: int | None,
    canary_percent: int,
    *,
    canary_ready: bool,
    previous: int | None = None,
) -> list[Backend]:
    """The backends and their weights, summing to 100.

    - a canary gets its percent only once one of its pods is available: a weight on a backend
      without endpoints would answer that share with errors the analysis never sees (the
      gateway's, not the model server's);
    - during a switch (`previous` serves until `stable` is ready) all requests go to `previous`;
    - weight 0 keeps a backend in the route (its Service stays), it just gets no request.
    """
    if previous is not None:
        return [Backend(previous, 100), Backend(stable, 0)]
    if canary is None:
        return [Backend(stable, 100)]
    share = canary_percent if canary_ready else 0
    return [Backend(stable, 100 - share), Backend(canary, share)]


def build_version_service(
    dep: Deployment, owner: Mapping[str, Any], served: ServedVersion
) -> Manifest:
    """Labels without the track (a promotion would rewrite it) but with the version, which the
    ServiceMonitor's selector excludes (builders/monitoring.py), or pods would be scraped twice."""
    name = version_service_name(dep.metadata.name or "", served.number)
    return with_spec_hash(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": child_metadata(
                name, dep.metadata.namespace, owner, pod_labels(dep, served)
            ),
            "spec": {
                "type": "ClusterIP",
                "selector": version_selector(dep, served),
                "ports": [
                    {
                        "name": contract.PORT_NAME,
                        "port": contract.PORT,
                        "targetPort": contract.PORT_NAME,
                        "protocol": "TCP",
                    }
                ],
            },
        }
    )


def parent_refs(dep: Deployment) -> list[Manifest]:
    if dep.spec.gateway is None:
        # GAMMA: the route binds to the Service clients already call.
        return [{"group": "", "kind": "Service", "name": dep.metadata.name, "port": contract.PORT}]
    refs = []
    for ref in dep.spec.gateway.parent_refs:
        out: Manifest = {"group": GATEWAY_GROUP, "kind": "Gateway", "name": ref.name}
        if ref.namespace is not None:
            out["namespace"] = ref.namespace
        if ref.section_name is not None:
            out["sectionName"] = ref.section_name
        if ref.port is not None:
            out["port"] = ref.port
        refs.append(out)
    return refs


def build_http_route(
    dep: Deployment, owner: Mapping[str, Any], backends: Sequence[Backend]
) -> Manifest:
    """Defaults the CRD would fill in (backendRef group/kind, the catch-all path match) are
    spelled out, so the stored route reads as what was meant."""
    name = dep.metadata.name or ""
    spec: Manifest = {
        "parentRefs": parent_refs(dep),
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [
                    {
                        "group": "",
                        "kind": "Service",
                        "name": version_service_name(name, b.number),
                        "port": contract.PORT,
                        "weight": b.weight,
                    }
                    for b in backends
                ],
            }
        ],
    }
    if dep.spec.gateway is not None and dep.spec.gateway.hostnames:
        spec = {"hostnames": list(dep.spec.gateway.hostnames), **spec}
    return with_spec_hash(
        {
            "apiVersion": GATEWAY_API_VERSION,
            "kind": "HTTPRoute",
            "metadata": child_metadata(name, dep.metadata.namespace, owner, deployment_labels(dep)),
            "spec": spec,
        }
    )
