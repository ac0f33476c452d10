"""The native runtime: an apps/v1 Deployment per served version behind one Service (plus HPA
and PDB), switching versions without dropping below the ready replicas asked for."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelwerk import constants, contract, kinds
from modelwerk.api.deployment import Deployment
from modelwerk.builders import native
from modelwerk.builders.replicas import split_replicas
from modelwerk.manager import Manager
from modelwerk.reconcilers.common import StatusBuilder, apply_children
from modelwerk.reconcilers.route import apply_route
from modelwerk.reconcilers.served import (
    SELDON_KINDS,
    Plan,
    mark_serving,
    owned_children,
    prune,
    seldon_available,
    served_version,
    serving_other_runtime,
    set_lineage,
    storage_secret,
)
from modelwerk.status import get_condition
from modelwerk.store import ObjectKey


async def reconcile_native(
    mgr: Manager, dep: Deployment, body: Mapping[str, Any], sb: StatusBuilder, plan: Plan
) -> str:
    key = (dep.metadata.namespace or "", dep.metadata.name or "")
    image = mgr.config.serving_image
    canary_percent = plan.canary_percent if plan.canary is not None else 0
    stable_replicas, canary_replicas = split_replicas(dep.spec.replicas, canary_percent)
    secret = storage_secret(mgr, dep)
    served = [served_version(plan.target, "stable", stable_replicas, secret)]
    if plan.canary is not None:
        served.append(served_version(plan.canary, "canary", canary_replicas, secret))
    observed = {
        int(d["metadata"]["labels"][constants.LABEL_MODEL_VERSION]): d
        for d in owned_children(mgr, kinds.APPS_DEPLOYMENT, key)
    }
    target_number = int(plan.target["version"])
    target_ready = _available(observed.get(target_number), stable_replicas) or _still_serving(
        sb, target_number, observed.get(target_number)
    )
    keep_previous = plan.previous is not None and not target_ready
    if keep_previous and plan.previous is not None:
        served.append(served_version(plan.previous, "stable", dep.spec.replicas, secret))

    desired = [native.build_version_deployment(dep, body, s, image) for s in served]
    deployments = await apply_children(
        mgr, kinds.APPS_DEPLOYMENT, desired, owned_children(mgr, kinds.APPS_DEPLOYMENT, key)
    )
    version_services = await apply_route(mgr, dep, body, sb, plan, served, observed, keep_previous)
    await apply_children(
        mgr,
        kinds.SERVICE,
        [native.build_service(dep, body), *version_services],
        owned_children(mgr, kinds.SERVICE, key),
    )
    hpas = [
        h
        for s in served
        if (h := native.build_hpa(dep, body, s, canary_percent=canary_percent)) is not None
    ]
    await apply_children(
        mgr,
        kinds.HPA,
        hpas,
        owned_children(mgr, kinds.HPA, key),
    )
    pdb = native.build_pdb(dep, body)
    await apply_children(
        mgr,
        kinds.PDB,
        [pdb] if pdb is not None else [],
        owned_children(mgr, kinds.PDB, key),
    )
    # After a switch from Seldon, its SeldonDeployment serves until the native target is ready.
    seldon_serving = any(
        seldon_available(s) for s in owned_children(mgr, kinds.SELDON_DEPLOYMENT, key)
    )
    if target_ready or not seldon_serving:
        await prune(mgr, SELDON_KINDS, key)
        seldon_serving = False

    sb.status["replicas"] = sum(s.replicas for s in served)
    sb.status["readyReplicas"] = sum(
        int((d.get("status") or {}).get("readyReplicas") or 0) for d in deployments
    )
    by_number = {
        int(d["metadata"]["labels"][constants.LABEL_MODEL_VERSION]): d for d in deployments
    }
    failure = _failed(by_number.get(target_number))
    if target_ready:
        return mark_serving(sb, plan, plan.target)
    refusal = await _artifact_refusal(mgr, key, target_number)
    if refusal is not None:
        return _refused(sb, plan, target_number, refusal)
    if failure is not None:
        sb.condition(
            "Degraded",
            True,
            "VersionNotReady",
            f"version {target_number} does not become ready: {failure}",
        )
        if plan.previous is not None:
            sb.condition(
                "Ready",
                True,
                "ServingPrevious",
                f"version {plan.previous['version']} keeps serving",
            )
            set_lineage(sb, plan.previous)
            return "Degraded"
        if seldon_serving:
            serving_other_runtime(sb, "the SeldonDeployment", target_number)
        else:
            sb.condition("Ready", False, "VersionNotReady", failure)
        return "Degraded"
    sb.condition(
        "Progressing",
        True,
        "RollingOut",
        f"waiting for version {target_number} to become ready "
        f"({(by_number.get(target_number, {}).get('status') or {}).get('readyReplicas') or 0}"
        f"/{stable_replicas} ready)",
    )
    if plan.previous is not None:
        sb.condition(
            "Ready",
            True,
            "ServingPrevious",
            f"version {plan.previous['version']} serves until {target_number} is ready",
        )
        return "Progressing"
    if seldon_serving:
        serving_other_runtime(sb, "the SeldonDeployment", target_number)
        return "Progressing"
    sb.condition("Ready", False, "RollingOut", f"version {target_number} is not ready yet")
    return "Progressing"


def _available(deployment: Mapping[str, Any] | None, replicas: int) -> bool:
    if deployment is None:
        return False
    status = deployment.get("status") or {}
    return (
        _observed(deployment)
        and int(status.get("updatedReplicas") or 0) >= replicas
        and int(status.get("availableReplicas") or 0) >= replicas
    )


def _still_serving(sb: StatusBuilder, number: int, deployment: Mapping[str, Any] | None) -> bool:
    """A version rolled out before keeps serving while any of its pods is available: a pod
    replaced (evicted, rescheduled, crashed) is not a rollout, so it changes readyReplicas only,
    not the phase, the conditions or the Events (one status write each way, nothing else)."""
    if deployment is None or sb.old.get("currentVersion") != number:
        return False
    ready = get_condition(sb.old.get("conditions") or [], "Ready") or {}
    if (ready.get("status"), ready.get("reason")) != ("True", "Serving"):
        return False
    status = deployment.get("status") or {}
    return _observed(deployment) and int(status.get("availableReplicas") or 0) >= 1


def _observed(deployment: Mapping[str, Any]) -> bool:
    """The Deployment controller has seen the apps Deployment's current spec."""
    generation = deployment["metadata"].get("generation") or 0
    status = deployment.get("status") or {}
    return int(status.get("observedGeneration") or 0) >= int(generation)


def _failed(deployment: Mapping[str, Any] | None) -> str | None:
    for cond in ((deployment or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return str(cond.get("message") or "progress deadline exceeded")
    return None


REASON_ARTIFACT_REFUSED = "ArtifactRefused"
MESSAGE_LIMIT = 400


async def _artifact_refusal(mgr: Manager, key: ObjectKey, number: int) -> str | None:
    """Why the version's model server refuses its artifact (the digest does not match, it is
    missing), read from its pods' termination: a crash loop the apps Deployment only reports as
    unavailable. A read while the version is not ready, never a write."""
    pods = await mgr.kube.list(
        kinds.POD,
        key[0],
        labels={constants.LABEL_DEPLOYMENT: key[1], constants.LABEL_MODEL_VERSION: str(number)},
    )
    return refusal(pods)


def refusal(pods: list[dict[str, Any]]) -> str | None:
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            for state in (status.get("state") or {}, status.get("lastState") or {}):
                ended = state.get("terminated") or {}
                if ended.get("exitCode") == contract.EXIT_ARTIFACT:
                    lines = str(ended.get("message") or "").strip().splitlines()
                    why = lines[-1] if lines else f"exit code {contract.EXIT_ARTIFACT}"
                    return f"pod {pod['metadata']['name']}: {why}"[:MESSAGE_LIMIT]
    return None


def _refused(sb: StatusBuilder, plan: Plan, number: int, why: str) -> str:
    message = f"version {number}'s model server refuses its artifact ({why})"
    sb.condition("Degraded", True, REASON_ARTIFACT_REFUSED, message)
    if plan.previous is not None:
        # Not Ready: what was asked for will not serve until the artifact is fixed, though the
        # previous version keeps answering.
        previous = plan.previous["version"]
        sb.condition(
            "Ready", False, REASON_ARTIFACT_REFUSED, f"{message}; version {previous} keeps serving"
        )
        set_lineage(sb, plan.previous)
    else:
        sb.condition("Ready", False, REASON_ARTIFACT_REFUSED, message)
    return "Degraded"
