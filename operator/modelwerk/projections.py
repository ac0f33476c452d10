"""What the caches keep of each object: only the fields reconcilers read, so memory stays flat
at 10,000s of objects. Pure functions of a watch event's body; kinds.py says which kind gets
which."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from modelwerk import constants
from modelwerk.api.governance import ANNOTATION_MOVE_REASON, ANNOTATION_MOVED_BY

Body = dict[str, Any]
ObjectKey = tuple[str, str]  # (namespace, name)

# The JSON decoder makes a new string for every key and value of every object: at 10,000 runs
# the same "lastTransitionTime", "True" and "bench" exist tens of thousands of times. Cached
# objects share one copy of each key and of the values of fields with few distinct values
# (bench/results/memory.md). Not sys.intern: interned strings are immortal in Python 3.12, a
# leak for values such as timestamps; this table is emptied when full, which only ends the
# sharing of new copies with old ones.
_SHARED: dict[str, str] = {}
_SHARED_MAX = 50_000
_SHARED_VALUES = frozenset(
    {
        "apiVersion",
        "kind",
        "namespace",
        "type",
        "status",
        "reason",
        "message",
        "phase",
        "image",
        "imageID",
        "lastTransitionTime",
        "lastProbeTime",
        "startTime",
        "completionTime",
        "creationTimestamp",
        "registeredAt",
    }
)


def _one(text: str) -> str:
    found = _SHARED.get(text)
    if found is not None:
        return found
    if len(_SHARED) >= _SHARED_MAX:
        _SHARED.clear()
    _SHARED[text] = text
    return text


def shared(value: Any, key: str | None = None) -> Any:
    """`value` rebuilt with every dict key, and the strings under the keys in _SHARED_VALUES,
    replaced by the one shared copy."""
    if isinstance(value, dict):
        return {_one(k): shared(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [shared(v, key) for v in value]
    if isinstance(value, str) and key in _SHARED_VALUES:
        return _one(value)
    return value


def share(body: Body) -> Body:
    out: Body = shared(body)
    return out


_META_KEPT = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "labels",
    "ownerReferences",
    "generation",
    "deletionTimestamp",
)


GOVERNANCE_ANNOTATIONS = (ANNOTATION_MOVED_BY, ANNOTATION_MOVE_REASON)


def _meta(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body["metadata"]
    return {k: meta[k] for k in _META_KEPT if k in meta}


def resource(body: Mapping[str, Any]) -> Body:
    """Our own kinds: everything a reconciler reads, without managedFields and annotations
    (several kilobytes per object once the operator has written status, read by nobody here),
    but for the record of who moved a protected alias, which goes into the Model's history."""
    meta = _meta(body)
    annotations = body["metadata"].get("annotations") or {}
    kept = {k: annotations[k] for k in GOVERNANCE_ANNOTATIONS if k in annotations}
    if kept:
        meta["annotations"] = kept
    return share(
        {
            "apiVersion": body["apiVersion"],
            "kind": body["kind"],
            "metadata": meta,
            "spec": body.get("spec") or {},
            "status": body.get("status") or {},
        }
    )


def child(body: Mapping[str, Any]) -> Body:
    """Serving and monitoring children: identity, the spec hash we stamped, and status."""
    meta = _meta(body)
    spec_hash = (body["metadata"].get("annotations") or {}).get(constants.ANNOTATION_SPEC_HASH)
    if spec_hash:
        meta["annotations"] = {constants.ANNOTATION_SPEC_HASH: spec_hash}
    return share(
        {
            "apiVersion": body["apiVersion"],
            "kind": body["kind"],
            "metadata": meta,
            "status": dict(body.get("status") or {}),
        }
    )


def job(body: Mapping[str, Any]) -> Body:
    return share(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": _meta(body),
            "spec": {"suspend": (body.get("spec") or {}).get("suspend", False)},
            "status": dict(body.get("status") or {}),
        }
    )


def jobset(body: Mapping[str, Any]) -> Body:
    spec = body.get("spec") or {}
    return share(
        {
            "apiVersion": body.get("apiVersion", "jobset.x-k8s.io/v1alpha2"),
            "kind": "JobSet",
            "metadata": _meta(body),
            "spec": {"suspend": spec.get("suspend", False)},
            "status": dict(body.get("status") or {}),
        }
    )


def workload(body: Mapping[str, Any]) -> Body:
    """Kueue's Workload: whether it is active, its conditions' verdicts and where it was
    admitted; not its pod sets (the Job's template again, kilobytes)."""
    status = body.get("status") or {}
    cluster_queue = (status.get("admission") or {}).get("clusterQueue")
    out_status: dict[str, Any] = {
        "conditions": [
            {k: c[k] for k in ("type", "status", "reason", "message") if k in c}
            for c in status.get("conditions") or []
        ]
    }
    if cluster_queue:
        out_status["admission"] = {"clusterQueue": cluster_queue}
    return {
        "apiVersion": body.get("apiVersion", "kueue.x-k8s.io/v1beta2"),
        "kind": "Workload",
        "metadata": _meta(body),
        "spec": {"active": (body.get("spec") or {}).get("active", True)},
        "status": out_status,
    }


def pod(body: Mapping[str, Any]) -> Body:
    status = body.get("status") or {}
    return share(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": _meta(body),
            "status": {
                "phase": status.get("phase"),
                # Only why the scheduler cannot place it: what a stuck run reports.
                "conditions": [
                    {k: c[k] for k in ("type", "status", "reason", "message") if k in c}
                    for c in status.get("conditions") or []
                    if c.get("type") == "PodScheduled" and c.get("status") == "False"
                ],
                "containerStatuses": [
                    {k: c[k] for k in ("name", "imageID", "state") if k in c}
                    for c in status.get("containerStatuses") or []
                ],
                # The `validate` init container's report (data validation): its termination
                # message.
                "initContainerStatuses": [
                    {k: c[k] for k in ("name", "imageID", "state") if k in c}
                    for c in status.get("initContainerStatuses") or []
                ],
            },
        }
    )


def owner_by_label(label: str) -> Callable[[Mapping[str, Any]], list[ObjectKey]]:
    """The owner a child's label names, in the child's namespace."""

    def owner(body: Mapping[str, Any]) -> list[ObjectKey]:
        name = (body["metadata"].get("labels") or {}).get(label)
        return [(body["metadata"].get("namespace") or "", name)] if name else []

    return owner


def owner_by_reference(kinds: tuple[str, ...]) -> Callable[[Mapping[str, Any]], list[ObjectKey]]:
    """The controller owner of one of `kinds`, in the object's namespace (the Job's name, which
    is its run's)."""

    def owner(body: Mapping[str, Any]) -> list[ObjectKey]:
        namespace = body["metadata"].get("namespace") or ""
        return [
            (namespace, str(ref["name"]))
            for ref in body["metadata"].get("ownerReferences") or []
            if ref.get("controller") and ref.get("kind") in kinds and ref.get("name")
        ]

    return owner


def model_of(body: Mapping[str, Any]) -> list[ObjectKey]:
    """The Model a TrainingRun or Deployment names in spec.model."""
    name = (body.get("spec") or {}).get("model")
    return [(body["metadata"].get("namespace") or "", name)] if name else []
