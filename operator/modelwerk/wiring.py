"""Which caches and queues the operator keeps, and which reconciler serves each queue."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelwerk import constants
from modelwerk.config import OperatorConfig
from modelwerk.k8s import Kube
from modelwerk.reconcilers import model, trainingrun
from modelwerk.runtime import Runtime
from modelwerk.store import Body, ObjectKey, Store, key_of
from modelwerk.workqueue import WorkQueue

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


def _meta(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body["metadata"]
    return {k: meta[k] for k in _META_KEPT if k in meta}


def project_job(body: Mapping[str, Any]) -> Body:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(body),
        "spec": {"suspend": (body.get("spec") or {}).get("suspend", False)},
        "status": dict(body.get("status") or {}),
    }


def project_pod(body: Mapping[str, Any]) -> Body:
    status = body.get("status") or {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _meta(body),
        "status": {
            "phase": status.get("phase"),
            "containerStatuses": [
                {k: c[k] for k in ("name", "imageID", "state") if k in c}
                for c in status.get("containerStatuses") or []
            ],
        },
    }


def _run_of(body: Mapping[str, Any]) -> list[ObjectKey]:
    run = (body["metadata"].get("labels") or {}).get(constants.LABEL_TRAININGRUN)
    return [(body["metadata"].get("namespace") or "", run)] if run else []


def _model_of_run(body: Mapping[str, Any]) -> list[ObjectKey]:
    name = (body.get("spec") or {}).get("model")
    return [(body["metadata"].get("namespace") or "", name)] if name else []


def build_runtime(kube: Kube, config: OperatorConfig) -> Runtime:
    rt = Runtime(kube=kube, config=config)
    rt.stores = {
        "Model": Store(),
        "TrainingRun": Store(indexes={"model": _model_of_run}),
        "Job": Store(project_job),
        "Pod": Store(project_pod, indexes={"run": _run_of}),
    }

    async def reconcile_model(key: Any) -> float | None:
        return await model.reconcile(rt, key)

    async def reconcile_run(key: Any) -> float | None:
        return await trainingrun.reconcile(rt, key)

    rt.queues = {
        "Model": WorkQueue("Model", reconcile_model, workers=config.workers),
        "TrainingRun": WorkQueue("TrainingRun", reconcile_run, workers=config.workers),
    }
    return rt


def runs_of_model(rt: Runtime, key: ObjectKey) -> list[ObjectKey]:
    return [key_of(run) for run in rt.store("TrainingRun").by_index("model", key)]


def run_of_child(body: Mapping[str, Any]) -> ObjectKey | None:
    keys = _run_of(body)
    return keys[0] if keys else None
