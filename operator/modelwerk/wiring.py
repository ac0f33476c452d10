"""Which caches and queues the operator keeps, and which reconciler serves each queue."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from modelwerk import constants, k8s, promql
from modelwerk.config import OperatorConfig
from modelwerk.k8s import Kube
from modelwerk.reconcilers import deployment, model, trainingrun
from modelwerk.reconcilers.common import SPEC_HASH
from modelwerk.runtime import Runtime
from modelwerk.store import Body, ObjectKey, Store, key_of
from modelwerk.workqueue import Reconcile, WorkQueue

# Children of a modelwerk Deployment, each cached under this name (apps Deployments get a prefix
# to tell them from our own kind).
CHILDREN = (  # (group, version, plural, cache name)
    ("apps", "v1", "deployments", "apps/Deployment"),
    ("", "v1", "services", "Service"),
    ("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler"),
    ("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget"),
    ("machinelearning.seldon.io", "v1", "seldondeployments", "SeldonDeployment"),
    ("monitoring.coreos.com", "v1", "prometheusrules", "PrometheusRule"),
    ("monitoring.coreos.com", "v1", "servicemonitors", "ServiceMonitor"),
    ("monitoring.coreos.com", "v1", "podmonitors", "PodMonitor"),
)
CHILD_KINDS = tuple(store for *_, store in CHILDREN)

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


def project_resource(body: Mapping[str, Any]) -> Body:
    """Our own kinds: everything a reconciler reads, without managedFields and annotations
    (several kilobytes per object once the operator has written status, read by nobody here)."""
    return {
        "apiVersion": body["apiVersion"],
        "kind": body["kind"],
        "metadata": _meta(body),
        "spec": body.get("spec") or {},
        "status": body.get("status") or {},
    }


def project_child(body: Mapping[str, Any]) -> Body:
    """Serving and monitoring children: identity, the spec hash we stamped, and status."""
    meta = _meta(body)
    spec_hash = (body["metadata"].get("annotations") or {}).get(SPEC_HASH)
    if spec_hash:
        meta["annotations"] = {SPEC_HASH: spec_hash}
    return {
        "apiVersion": body["apiVersion"],
        "kind": body["kind"],
        "metadata": meta,
        "status": dict(body.get("status") or {}),
    }


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
            # The `validate` init container's report (data validation) is its termination message.
            "initContainerStatuses": [
                {k: c[k] for k in ("name", "imageID", "state") if k in c}
                for c in status.get("initContainerStatuses") or []
            ],
        },
    }


def _run_of(body: Mapping[str, Any]) -> list[ObjectKey]:
    run = (body["metadata"].get("labels") or {}).get(constants.LABEL_TRAININGRUN)
    return [(body["metadata"].get("namespace") or "", run)] if run else []


def _owner_deployment(body: Mapping[str, Any]) -> list[ObjectKey]:
    name = (body["metadata"].get("labels") or {}).get(constants.LABEL_DEPLOYMENT)
    return [(body["metadata"].get("namespace") or "", name)] if name else []


def _model_of(body: Mapping[str, Any]) -> list[ObjectKey]:
    name = (body.get("spec") or {}).get("model")
    return [(body["metadata"].get("namespace") or "", name)] if name else []


def build_runtime(kube: Kube, config: OperatorConfig) -> Runtime:
    rt = Runtime(kube=kube, config=config)
    rt.stores = {
        "Model": Store(project_resource),
        "TrainingRun": Store(project_resource, indexes={"model": _model_of}),
        "Deployment": Store(project_resource, indexes={"model": _model_of}),
        "Job": Store(project_job),
        "Pod": Store(project_pod, indexes={"run": _run_of}),
    }
    for kind in CHILD_KINDS:
        rt.stores[kind] = Store(project_child, indexes={"owner": _owner_deployment})

    def bind(reconcile: Callable[[Runtime, Any], Awaitable[float | None]]) -> Reconcile:
        async def run(key: Any) -> float | None:
            try:
                return await reconcile(rt, key)
            except k8s.NotFound:
                # The object (or its namespace) went away mid-reconcile: its watch event will
                # say so; there is nothing left to do, and nothing to retry.
                return None
            except k8s.Forbidden as err:
                if "being terminated" in err.message:
                    return None  # its namespace is being deleted
                raise

        return run

    reconcile_model = bind(model.reconcile)
    reconcile_run = bind(trainingrun.reconcile)
    reconcile_deployment = bind(deployment.reconcile)

    # Failures of the world, not of the code: logged in one line, retried with backoff.
    expected = (k8s.ApiError, promql.PrometheusError, aiohttp.ClientError, TimeoutError)
    rt.queues = {
        "Deployment": WorkQueue(
            "Deployment", reconcile_deployment, workers=config.workers, expected=expected
        ),
        "Model": WorkQueue("Model", reconcile_model, workers=config.workers, expected=expected),
        "TrainingRun": WorkQueue(
            "TrainingRun", reconcile_run, workers=config.workers, expected=expected
        ),
    }
    return rt


def dependents_of_model(rt: Runtime, kind: str, key: ObjectKey) -> list[ObjectKey]:
    """TrainingRuns or Deployments that name the Model `key`."""
    return [key_of(body) for body in rt.store(kind).by_index("model", key)]


def deployment_of_child(body: Mapping[str, Any]) -> ObjectKey | None:
    keys = _owner_deployment(body)
    return keys[0] if keys else None


def run_of_child(body: Mapping[str, Any]) -> ObjectKey | None:
    keys = _run_of(body)
    return keys[0] if keys else None
