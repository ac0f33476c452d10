"""NetworkPolicies for the pods the operator generates (an operator-wide option the platform
team sets in the chart: `networkPolicy.*`): serving pods take traffic from their own namespace
and the peers the platform names (a gateway's, Prometheus' namespace), and reach DNS and the
artifact store only; training pods reach DNS, the artifact store and the other workers of
their own run, and take traffic from those workers only (the rendezvous of a distributed run).

What "the artifact store" is, is the platform's to say (`egress`: NetworkPolicy egress rules,
e.g. an ipBlock and port of the object store): a NetworkPolicy cannot name a host, and an
operator guessing addresses would either open too much or break the fetch."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelwerk import constants
from modelwerk.api.deployment import Deployment
from modelwerk.api.trainingrun import TrainingRun
from modelwerk.builders.common import Manifest, base_labels, child_metadata

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
DNS_EGRESS: Manifest = {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
"""Name lookups, to whichever resolver the cluster runs (no `to`: any destination)."""


class NetworkPolicyConfigError(ValueError):
    """MODELWERK_NETWORK_POLICY is not what the chart writes."""


@dataclass(frozen=True)
class NetworkPolicyConfig:
    """The chart's `networkPolicy` values, as the operator reads them (JSON)."""

    ingress_from: tuple[Manifest, ...] = ()
    """NetworkPolicy peers allowed to reach serving pods besides their own namespace."""
    egress: tuple[Manifest, ...] = field(default=())
    """NetworkPolicy egress rules for the artifact (and data) store, besides DNS."""

    @classmethod
    def parse(cls, text: str) -> NetworkPolicyConfig | None:
        """None: the option is off (empty text)."""
        if not text.strip():
            return None
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as err:
            raise NetworkPolicyConfigError(f"not JSON: {err}") from None
        if not isinstance(raw, dict):
            raise NetworkPolicyConfigError("must be a JSON object")
        unknown = set(raw) - {"ingressFrom", "egress"}
        if unknown:
            raise NetworkPolicyConfigError(f"unknown keys: {', '.join(sorted(unknown))}")
        lists = {k: raw.get(k) or [] for k in ("ingressFrom", "egress")}
        for key, value in lists.items():
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise NetworkPolicyConfigError(f"{key} must be a list of objects")
        return cls(ingress_from=tuple(lists["ingressFrom"]), egress=tuple(lists["egress"]))


def serving_name(dep: Deployment) -> str:
    return f"{dep.metadata.name}-serving"


def training_name(run: TrainingRun) -> str:
    return f"{run.metadata.name}-training"


def _policy(
    name: str,
    namespace: str,
    labels: dict[str, str],
    owner: Mapping[str, Any],
    spec: Manifest,
) -> Manifest:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": child_metadata(name, namespace, owner, labels),
        "spec": {"policyTypes": ["Ingress", "Egress"], **spec},
    }


def build_serving_policy(
    dep: Deployment, owner: Mapping[str, Any], config: NetworkPolicyConfig
) -> Manifest:
    """Every serving pod of the Deployment (each version, either runtime: all carry its
    label)."""
    name, namespace = dep.metadata.name or "", dep.metadata.namespace or ""
    labels = base_labels(
        "serving", **{constants.LABEL_DEPLOYMENT: name, constants.LABEL_MODEL: dep.spec.model}
    )
    own_namespace = {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}}
    return _policy(
        serving_name(dep),
        namespace,
        labels,
        owner,
        {
            "podSelector": {"matchLabels": {constants.LABEL_DEPLOYMENT: name}},
            "ingress": [{"from": [own_namespace, *config.ingress_from]}],
            "egress": [DNS_EGRESS, *config.egress],
        },
    )


def build_training_policy(
    run: TrainingRun, owner: Mapping[str, Any], config: NetworkPolicyConfig
) -> Manifest:
    """Every pod of the run (each worker, each attempt)."""
    name = run.metadata.name or ""
    pods = {
        "podSelector": {
            "matchLabels": {
                constants.LABEL_COMPONENT: "training",
                constants.LABEL_TRAININGRUN: name,
            }
        }
    }
    labels = base_labels(
        "training", **{constants.LABEL_TRAININGRUN: name, constants.LABEL_MODEL: run.spec.model}
    )
    return _policy(
        training_name(run),
        run.metadata.namespace or "",
        labels,
        owner,
        {
            **pods,
            "ingress": [{"from": [pods]}],
            "egress": [DNS_EGRESS, {"to": [pods]}, *config.egress],
        },
    )
