"""Pieces every builder shares: owner references, labels, the restricted security context."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelwerk import constants

Manifest = dict[str, Any]

# Pod Security Standard "restricted": what every generated pod carries, whatever the user asked.
# A fixed non-root UID, because runAsNonRoot alone cannot be verified for images whose USER is a
# name, and the kubelet would refuse to start them.
RUN_AS_USER = 65532

POD_SECURITY_CONTEXT: Manifest = {
    "runAsNonRoot": True,
    "runAsUser": RUN_AS_USER,
    "runAsGroup": RUN_AS_USER,
    "fsGroup": RUN_AS_USER,
    "seccompProfile": {"type": "RuntimeDefault"},
}

CONTAINER_SECURITY_CONTEXT: Manifest = {
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def owner_reference(owner: Mapping[str, Any]) -> Manifest:
    """Makes `owner` the controller of the child: garbage collection deletes the child with it."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_metadata(
    name: str | None, namespace: str | None, owner: Mapping[str, Any], labels: dict[str, str]
) -> Manifest:
    """The metadata of a child the operator owns: garbage-collected with `owner`."""
    return {
        "name": name,
        "namespace": namespace,
        "labels": labels,
        "ownerReferences": [owner_reference(owner)],
    }


def base_labels(component: str, **extra: str | None) -> dict[str, str]:
    labels = {
        constants.LABEL_MANAGED_BY: constants.MANAGED_BY,
        constants.LABEL_PART_OF: "modelwerk",
        constants.LABEL_COMPONENT: component,
    }
    labels.update({k: v for k, v in extra.items() if v is not None})
    return labels
