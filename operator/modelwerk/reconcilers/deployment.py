"""Deployment: resolve the version(s) to serve, run them (native or Seldon), step the canary,
derive the status. Serving children are built by builders/serving.py and builders/seldon.py."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from modelwerk import canary as canary_plan
from modelwerk import constants, promql, registry
from modelwerk.api.deployment import CanaryState, Deployment
from modelwerk.api.deployment import Runtime as ServingRuntime
from modelwerk.builders import seldon, serving
from modelwerk.reconcilers.common import StatusBuilder, apply_children, write_status
from modelwerk.reconcilers.monitoring import reconcile_monitoring
from modelwerk.runtime import Runtime
from modelwerk.store import ObjectKey

KIND = "Deployment"
SELDON_CRD = "seldondeployments.machinelearning.seldon.io"
NATIVE_STORES = ("apps/Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget")
log = logging.getLogger(__name__)


class Unresolvable(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def resolve(
    model_status: Mapping[str, Any], model: str, version: int | None, alias: str | None
) -> Mapping[str, Any]:
    """The registered version a `version`/`alias` pair points at, with a digest to verify."""
    versions = model_status.get("versions") or []
    if alias is not None:
        number = (model_status.get("aliases") or {}).get(alias)
        if number is None:
            raise Unresolvable("AliasNotSet", f"Model {model} has no alias {alias!r}")
    else:
        number = version
    entry = registry.find_number(versions, int(number or 0))
    if entry is None:
        raise Unresolvable("VersionNotFound", f"Model {model} has no version {number}")
    if not (entry.get("artifact") or {}).get("digest"):
        raise Unresolvable(
            "NoDigest",
            f"version {number} of Model {model} has no artifact digest: an artifact that cannot "
            "be verified is not served",
        )
    return entry


def served_version(
    entry: Mapping[str, Any], track: str, replicas: int, storage_secret: str | None = None
) -> serving.ServedVersion:
    baseline = entry.get("baseline") or {}
    # The report's column order when recorded; sorted names are the best guess otherwise.
    features = baseline.get("featureOrder") or sorted(baseline.get("features") or {})
    return serving.ServedVersion(
        number=int(entry["version"]),
        artifact_uri=str(entry["artifact"]["uri"]),
        digest=entry["artifact"].get("digest"),
        feature_names=tuple(features),
        track=track,  # type: ignore[arg-type]
        replicas=replicas,
        storage_secret=storage_secret,
    )


@dataclass
class Plan:
    """What to serve: the stable version (or the one being rolled to) and the canary."""

    target: Mapping[str, Any]
    canary: Mapping[str, Any] | None = None
    canary_percent: int = 0
    canary_status: dict[str, Any] | None = None
    previous: Mapping[str, Any] | None = None
    """The version served until `target` is ready (a zero-downtime switch)."""
    requeue_after: float | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)


async def reconcile(rt: Runtime, key: ObjectKey) -> float | None:
    body = rt.store(KIND).get(key)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None
    sb = StatusBuilder(body)
    try:
        dep = Deployment.from_body(body)
    except ValidationError as err:
        sb.condition("Ready", False, "InvalidSpec", str(err)[:1024])
        return await _write(rt, body, sb, "Degraded")
    model_body = rt.store("Model").get((key[0], dep.spec.model))
    if model_body is None:
        return await _blocked(
            rt,
            body,
            sb,
            "ModelNotFound",
            f"Model {dep.spec.model!r} does not exist in namespace {key[0]}",
        )
    model_status = model_body.get("status") or {}
    try:
        target = resolve(model_status, dep.spec.model, dep.spec.version, dep.spec.alias)
    except Unresolvable as err:
        return await _blocked(rt, body, sb, err.reason, err.message)

    plan = await _plan(rt, dep, body, sb, model_status, target)
    runtime = await _runtime(rt, dep)
    sb.status["runtime"] = str(runtime)
    sb.status["endpoint"] = serving.endpoint(dep)
    if runtime == ServingRuntime.SELDON:
        phase = await _reconcile_seldon(rt, dep, body, sb, plan)
    else:
        phase = await _reconcile_native(rt, dep, body, sb, plan)
    served = [plan.target] + ([plan.canary] if plan.canary is not None else [])
    await reconcile_monitoring(rt, dep, body, sb, served, runtime)
    for reason, message, type_ in plan.events:
        await rt.kube.event(body, reason=reason, message=message, type_=type_)
    requeue = await _write(rt, body, sb, phase)
    return plan.requeue_after if requeue is None else min(requeue, plan.requeue_after or requeue)


async def _plan(
    rt: Runtime,
    dep: Deployment,
    body: Mapping[str, Any],
    sb: StatusBuilder,
    model_status: Mapping[str, Any],
    target: Mapping[str, Any],
) -> Plan:
    plan = Plan(target=target)
    rejected: list[int] = list(sb.old.get("rejectedVersions") or [])
    spec_canary = dep.spec.canary
    if spec_canary is None:
        sb.status.pop("canary", None)
        sb.status["conditions"] = [
            c for c in sb.status.get("conditions") or [] if c.get("type") != "CanaryAnalysis"
        ]
    else:
        try:
            entry = resolve(model_status, dep.spec.model, spec_canary.version, spec_canary.alias)
        except Unresolvable as err:
            sb.condition("CanaryAnalysis", False, err.reason, err.message)
            entry = None
        if entry is not None and int(entry["version"]) == int(target["version"]):
            sb.condition(
                "CanaryAnalysis",
                True,
                "SameAsStable",
                f"canary version {entry['version']} is already the stable version",
            )
        elif entry is not None and int(entry["version"]) in rejected:
            if not _rolled_back_here(sb.old.get("canary"), int(entry["version"])):
                sb.condition(
                    "CanaryAnalysis",
                    False,
                    "PreviouslyRejected",
                    f"version {entry['version']} was rolled back by analysis earlier; "
                    "it is not tried again on this Deployment",
                )
        elif entry is not None:
            await _plan_canary(rt, dep, sb, plan, entry, rejected)
    current_number = sb.old.get("currentVersion")
    if current_number is not None and int(current_number) != int(plan.target["version"]):
        plan.previous = registry.find_number(
            model_status.get("versions") or [], int(current_number)
        )
    sb.status["rejectedVersions"] = rejected
    return plan


async def _plan_canary(
    rt: Runtime,
    dep: Deployment,
    sb: StatusBuilder,
    plan: Plan,
    entry: Mapping[str, Any],
    rejected: list[int],
) -> None:
    assert dep.spec.canary is not None
    number = int(entry["version"])
    at = dt.datetime.now(dt.UTC)
    previous = sb.old.get("canary")
    step = canary_plan.plan(dep.spec.canary, number, previous, at)
    if step.needs_measurement:
        interval = dep.spec.canary.analysis.interval if dep.spec.canary.analysis else "1m"
        if not rt.config.prometheus_url:
            sb.condition(
                "CanaryAnalysis",
                False,
                "NoPrometheus",
                "canary analysis needs the operator's --prometheus-url",
            )
            plan.requeue_after = 60.0
            step = canary_plan.CanaryPlan(
                number,
                CanaryState.PROGRESSING,
                step.traffic_percent,
                step=step.step,
                step_started_at=step.step_started_at,
                last_measured=step.last_measured,
            )
        else:
            try:
                measured = await promql.measure_canary(
                    rt.config.prometheus_url,
                    dep.spec.model,
                    number,
                    interval,
                    dep.metadata.namespace if rt.config.prometheus_namespace_label else None,
                )
            except promql.PrometheusError as err:
                sb.condition("CanaryAnalysis", False, "PrometheusUnavailable", str(err))
                plan.requeue_after = 30.0
                measured = None
            if measured is not None and measured.requests <= 0:
                # Not one request in the window (or no series at all): nothing says the canary
                # is good, so the step holds, and is measured again an interval later, instead
                # of passing on the absence of errors and latency.
                sb.condition(
                    "CanaryAnalysis",
                    None,
                    "NoTraffic",
                    f"version {number} served no requests in the last {interval} according to "
                    f'Prometheus (model={dep.spec.model!r}, version="{number}"): step '
                    f"{step.step} holds until it does",
                )
                plan.requeue_after = canary_plan.seconds(interval)
                measured = None
            if measured is not None:
                step = canary_plan.plan(dep.spec.canary, number, previous, at, measured)
    plan.canary_status = step.status()
    sb.status["canary"] = plan.canary_status
    if step.requeue_after is not None:
        plan.requeue_after = step.requeue_after
    if step.state == CanaryState.ROLLED_BACK:
        if number not in rejected:
            rejected.append(number)
            plan.events.append(("CanaryRolledBack", f"version {number}: {step.breach}", "Warning"))
        sb.condition(
            "CanaryAnalysis", False, "RolledBack", f"version {number} rolled back: {step.breach}"
        )
        return
    if step.state == CanaryState.PROMOTED:
        # The operator never writes spec: the promotion lasts while spec.canary says so.
        keep = (
            f"set spec.version to {number}"
            if dep.spec.version is not None
            else f"point alias {dep.spec.alias!r} at version {number}"
        )
        if (previous or {}).get("state") != str(CanaryState.PROMOTED):
            plan.events.append(("CanaryPromoted", f"version {number} passed every step", "Normal"))
        sb.condition(
            "CanaryAnalysis",
            True,
            "Promoted",
            f"version {number} passed every analysis step and serves all traffic while "
            f"spec.canary names it: {keep} before removing spec.canary, or the Deployment goes "
            f"back to version {plan.target['version']}",
        )
        plan.target = entry
        return
    plan.canary = entry
    plan.canary_percent = step.traffic_percent
    if dep.spec.canary.analysis is None:
        sb.condition(
            "CanaryAnalysis",
            True,
            "NoAnalysis",
            f"version {number} gets {step.traffic_percent}% of traffic",
        )
    elif step.measured is not None or (previous or {}).get("version") != number:
        sb.condition(
            "CanaryAnalysis",
            True,
            "Progressing",
            f"version {number} at step {step.step}: {step.traffic_percent}% of traffic",
        )


def _rolled_back_here(canary: Mapping[str, Any] | None, number: int) -> bool:
    """Whether the stored canary status is this version's rollback: its CanaryAnalysis condition
    (RolledBack, with the measured numbers) stands, rather than turn into PreviouslyRejected on
    the very next reconcile. PreviouslyRejected is for a rejected version asked for again."""
    return bool(
        canary
        and canary.get("version") == number
        and canary.get("state") == str(CanaryState.ROLLED_BACK)
    )


async def _runtime(rt: Runtime, dep: Deployment) -> ServingRuntime:
    if dep.spec.runtime != ServingRuntime.AUTO:
        return dep.spec.runtime
    return ServingRuntime.SELDON if await rt.crd_installed(SELDON_CRD) else ServingRuntime.NATIVE


def _storage_secret(rt: Runtime, dep: Deployment) -> str | None:
    """The Model's storage credentials Secret (same namespace), for s3:// artifacts."""
    model = rt.store("Model").get((dep.metadata.namespace or "", dep.spec.model)) or {}
    name = ((model.get("spec") or {}).get("storage") or {}).get("secretRef", {}).get("name")
    return str(name) if name else None


def _owned(rt: Runtime, store: str, key: ObjectKey) -> list[Mapping[str, Any]]:
    return list(rt.store(store).by_index("owner", key))


async def _reconcile_native(
    rt: Runtime, dep: Deployment, body: Mapping[str, Any], sb: StatusBuilder, plan: Plan
) -> str:
    key = (dep.metadata.namespace or "", dep.metadata.name or "")
    image = rt.config.serving_image
    canary_percent = plan.canary_percent if plan.canary is not None else 0
    stable_replicas, canary_replicas = serving.split_replicas(dep.spec.replicas, canary_percent)
    secret = _storage_secret(rt, dep)
    served = [served_version(plan.target, "stable", stable_replicas, secret)]
    if plan.canary is not None:
        served.append(served_version(plan.canary, "canary", canary_replicas, secret))
    observed = {
        int(d["metadata"]["labels"][constants.LABEL_MODEL_VERSION]): d
        for d in _owned(rt, "apps/Deployment", key)
    }
    target_number = int(plan.target["version"])
    target_ready = _available(observed.get(target_number), stable_replicas)
    keep_previous = plan.previous is not None and not target_ready
    if keep_previous and plan.previous is not None:
        served.append(served_version(plan.previous, "stable", dep.spec.replicas, secret))

    desired = [serving.build_version_deployment(dep, body, s, image) for s in served]
    deployments = await apply_children(
        rt, "apps/Deployment", desired, _owned(rt, "apps/Deployment", key)
    )
    await apply_children(
        rt,
        "Service",
        [serving.build_service(dep, body)],
        _owned(rt, "Service", key),
    )
    hpas = [
        h
        for s in served
        if (h := serving.build_hpa(dep, body, s, canary_percent=canary_percent)) is not None
    ]
    await apply_children(
        rt,
        "HorizontalPodAutoscaler",
        [(h) for h in hpas],
        _owned(rt, "HorizontalPodAutoscaler", key),
    )
    pdb = serving.build_pdb(dep, body)
    await apply_children(
        rt,
        "PodDisruptionBudget",
        [(pdb)] if pdb is not None else [],
        _owned(rt, "PodDisruptionBudget", key),
    )
    # After a switch from Seldon, its SeldonDeployment serves until the native target is ready.
    seldon_serving = any(_seldon_available(s) for s in _owned(rt, "SeldonDeployment", key))
    if target_ready or not seldon_serving:
        await _prune(rt, ("SeldonDeployment",), key)
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
        return _serving(sb, plan, plan.target)
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
            _lineage(sb, plan.previous)
            return "Degraded"
        if seldon_serving:
            _serving_other_runtime(sb, "the SeldonDeployment", target_number)
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
        _serving_other_runtime(sb, "the SeldonDeployment", target_number)
        return "Progressing"
    sb.condition("Ready", False, "RollingOut", f"version {target_number} is not ready yet")
    return "Progressing"


def _serving_other_runtime(sb: StatusBuilder, what: str, target: int) -> None:
    current = sb.old.get("currentVersion")
    version = f"version {current}" if current is not None else "the previous version"
    sb.condition(
        "Ready",
        True,
        "ServingPrevious",
        f"{what} keeps serving {version} until version {target} is ready on the new runtime",
    )


def _seldon_available(sdep: Mapping[str, Any]) -> bool:
    return (sdep.get("status") or {}).get("state") == "Available"


def _serving(sb: StatusBuilder, plan: Plan, entry: Mapping[str, Any]) -> str:
    number = int(entry["version"])
    sb.status["currentVersion"] = number
    _lineage(sb, entry)
    sb.condition("Ready", True, "Serving", f"version {number} is serving")
    sb.condition("Progressing", False, "RolledOut", f"version {number} is rolled out")
    sb.condition("Degraded", False, "Healthy", "all served versions are ready")
    return "Available"


async def _reconcile_seldon(
    rt: Runtime, dep: Deployment, body: Mapping[str, Any], sb: StatusBuilder, plan: Plan
) -> str:
    key = (dep.metadata.namespace or "", dep.metadata.name or "")
    total = dep.spec.replicas
    canary_percent = plan.canary_percent if plan.canary is not None else 0
    # Seldon splits traffic by weight; replicas follow the same split so capacity stays `total`.
    stable_replicas, canary_replicas = serving.split_replicas(total, canary_percent)
    secret = _storage_secret(rt, dep)
    stable = served_version(plan.target, "stable", stable_replicas, secret)
    canary = (
        served_version(plan.canary, "canary", canary_replicas, secret)
        if plan.canary is not None
        else None
    )
    desired = seldon.build_seldon_deployment(
        dep,
        body,
        stable,
        canary,
        plan.canary_percent if canary is not None else 0,
        rt.config.serving_image,
    )
    children = await apply_children(
        rt, "SeldonDeployment", [desired], _owned(rt, "SeldonDeployment", key)
    )
    status = (children[0].get("status") or {}) if children else {}
    state = status.get("state")
    # Seldon Core publishes where it serves; until it does, say nothing rather than point at
    # the native Service.
    address = (status.get("address") or {}).get("url")
    if state == "Available" and address:
        sb.status["endpoint"] = address
    elif state == "Available" or not _owned(rt, "Service", key):
        sb.status.pop("endpoint", None)
    # After a switch from the native runtime (e.g. Seldon Core installed under `runtime: auto`)
    # its pods serve until Seldon reports the SeldonDeployment Available: pruning them first
    # would leave nothing serving in between.
    native_ready = sum(
        int((d.get("status") or {}).get("readyReplicas") or 0)
        for d in _owned(rt, "apps/Deployment", key)
    )
    if state == "Available" or native_ready == 0:
        await _prune(rt, NATIVE_STORES, key)
        native_ready = 0
    sb.status["replicas"] = stable_replicas + (canary_replicas if canary is not None else 0)
    sb.status["readyReplicas"] = (
        int(status.get("replicas") or 0) if state == "Available" else native_ready
    )
    if state == "Available":
        return _serving(sb, plan, plan.target)
    if state == "Failed":
        sb.condition("Degraded", True, "SeldonFailed", str(status.get("description") or "Failed"))
        if native_ready:
            _serving_other_runtime(sb, "the native runtime", int(plan.target["version"]))
        else:
            sb.condition("Ready", False, "SeldonFailed", str(status.get("description") or "Failed"))
        return "Degraded"
    sb.condition(
        "Progressing",
        True,
        "WaitingForSeldon",
        f"SeldonDeployment {dep.metadata.name} is {state or 'not yet reported on'} "
        "by Seldon Core's controller",
    )
    if native_ready:
        _serving_other_runtime(sb, "the native runtime", int(plan.target["version"]))
    else:
        sb.condition(
            "Ready", False, "WaitingForSeldon", "the SeldonDeployment is not Available yet"
        )
    return "Progressing"


async def _prune(rt: Runtime, stores: Sequence[str], key: ObjectKey) -> None:
    """Children of the other runtime (after a runtime switch) are removed."""
    for store in stores:
        owned = _owned(rt, store, key)
        if owned:
            await apply_children(rt, store, [], owned)


def _available(deployment: Mapping[str, Any] | None, replicas: int) -> bool:
    if deployment is None:
        return False
    status = deployment.get("status") or {}
    generation = deployment["metadata"].get("generation") or 0
    return (
        int(status.get("observedGeneration") or 0) >= int(generation)
        and int(status.get("updatedReplicas") or 0) >= replicas
        and int(status.get("availableReplicas") or 0) >= replicas
    )


def _failed(deployment: Mapping[str, Any] | None) -> str | None:
    for cond in ((deployment or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return str(cond.get("message") or "progress deadline exceeded")
    return None


def _lineage(sb: StatusBuilder, entry: Mapping[str, Any]) -> None:
    lineage = dict(entry.get("lineage") or {})
    source = entry.get("source") or {}
    if source.get("trainingRun"):
        lineage["trainingRun"] = source["trainingRun"]
    sb.status["lineage"] = lineage


async def _blocked(
    rt: Runtime, body: Mapping[str, Any], sb: StatusBuilder, reason: str, message: str
) -> float | None:
    """Nothing resolvable to serve: say why; whatever serves now keeps serving."""
    sb.condition("Ready", False, reason, message)
    serving_now = sb.old.get("currentVersion") is not None
    if serving_now:
        sb.condition(
            "Degraded", True, reason, f"{message}; version {sb.old['currentVersion']} keeps serving"
        )
    return await _write(rt, body, sb, "Degraded" if serving_now else "Pending")


def _bad(cond: Mapping[str, Any]) -> bool:
    """Warnings: degradation, refusals, failed canaries; a rollout in progress is not news."""
    if cond["type"] == "Degraded":
        return bool(cond["status"] == "True")
    if cond["type"] == "Progressing":
        return False
    return cond["status"] == "False" and cond["reason"] not in (
        "RollingOut",
        "WaitingForSeldon",
        "Disabled",
    )


async def _write(
    rt: Runtime, body: Mapping[str, Any], sb: StatusBuilder, phase: str
) -> float | None:
    await write_status(rt, KIND, body, sb, phase, _bad)
    return None
