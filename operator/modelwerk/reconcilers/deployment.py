"""Deployment: resolve the version(s) to serve, run them (native or Seldon), step the canary,
derive the status. Serving children are built by builders/native.py and builders/seldon.py,
applied by reconcilers/native.py, seldon.py and monitoring.py."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from modelwerk import canary as canary_plan
from modelwerk import constants, history, kinds, promql, registry
from modelwerk.api.deployment import CanaryState, Deployment, ServingRuntime
from modelwerk.builders import native
from modelwerk.controller import Controller, Watch, dependents, itself, owner
from modelwerk.manager import Manager
from modelwerk.reconcilers.common import StatusBuilder, post_dropped, write_status
from modelwerk.reconcilers.guard import on_switch, plan_guard
from modelwerk.reconcilers.monitoring import reconcile_monitoring
from modelwerk.reconcilers.native import reconcile_native
from modelwerk.reconcilers.netpol import reconcile_serving_policy
from modelwerk.reconcilers.registration import record_canary_promotion
from modelwerk.reconcilers.seldon import reconcile_seldon
from modelwerk.reconcilers.served import Plan
from modelwerk.registry import Unresolvable
from modelwerk.store import ObjectKey

KIND = kinds.DEPLOYMENT
SELDON_CRD = "seldondeployments.machinelearning.seldon.io"
log = logging.getLogger(__name__)


def resolve(
    model_status: Mapping[str, Any], model: str, version: int | None, alias: str | None
) -> Mapping[str, Any]:
    """The registered version a `version`/`alias` pair points at, with a digest to verify."""
    entry = registry.lookup(model_status, model, version, alias)
    number = entry["version"]
    if not (entry.get("artifact") or {}).get("digest"):
        raise Unresolvable(
            "NoDigest",
            f"version {number} of Model {model} has no artifact digest: an artifact that cannot "
            "be verified is not served",
        )
    return entry


async def reconcile(mgr: Manager, key: ObjectKey) -> float | None:
    body = mgr.store(KIND).get(key)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None
    sb = StatusBuilder(body, mgr.timestamp())
    try:
        dep = Deployment.from_body(body)
    except ValidationError as err:
        sb.condition("Ready", False, "InvalidSpec", str(err)[:1024])
        return await _write(mgr, body, sb, "Degraded")
    model_body = mgr.store(kinds.MODEL).get((key[0], dep.spec.model))
    if model_body is None:
        return await _blocked(
            mgr,
            body,
            sb,
            "ModelNotFound",
            f"Model {dep.spec.model!r} does not exist in namespace {key[0]}",
        )
    model_status = model_body.get("status") or {}
    try:
        target = resolve(model_status, dep.spec.model, dep.spec.version, dep.spec.alias)
    except Unresolvable as err:
        return await _blocked(mgr, body, sb, err.reason, err.message)

    plan = await _plan(mgr, dep, body, sb, model_status, target)
    await plan_guard(mgr, dep, sb, plan, model_status)
    runtime = await _runtime(mgr, dep)
    sb.status["runtime"] = str(runtime)
    sb.status["endpoint"] = native.endpoint(dep)
    if runtime == ServingRuntime.SELDON:
        phase = await reconcile_seldon(mgr, dep, body, sb, plan)
    else:
        phase = await reconcile_native(mgr, dep, body, sb, plan)
    served = [plan.target] + ([plan.canary] if plan.canary is not None else [])
    await reconcile_monitoring(mgr, dep, body, sb, served, runtime)
    await reconcile_serving_policy(mgr, dep, body)
    # Rollback and promotion Events go with the status write that records them (rejected
    # versions, the canary's state): posted once, never again after a restart.
    requeue = await _write(mgr, body, sb, phase, plan.events)
    canary = sb.status.get("canary") or {}
    if canary.get("state") == str(CanaryState.PROMOTED):
        await record_canary_promotion(mgr, model_body, int(canary["version"]), key[1])
    return plan.requeue_after if requeue is None else min(requeue, plan.requeue_after or requeue)


async def _plan(
    mgr: Manager,
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
            await _plan_canary(mgr, dep, sb, plan, entry, rejected)
    current_number = sb.old.get("currentVersion")
    if current_number is not None and int(current_number) != int(plan.target["version"]):
        plan.previous = registry.find_number(
            model_status.get("versions") or [], int(current_number)
        )
    sb.status["rejectedVersions"] = rejected
    return plan


async def _plan_canary(
    mgr: Manager,
    dep: Deployment,
    sb: StatusBuilder,
    plan: Plan,
    entry: Mapping[str, Any],
    rejected: list[int],
) -> None:
    assert dep.spec.canary is not None
    number = int(entry["version"])
    at = mgr.now()
    previous = sb.old.get("canary")
    step = canary_plan.plan(dep.spec.canary, number, previous, at)
    if step.needs_measurement:
        interval = dep.spec.canary.analysis.interval if dep.spec.canary.analysis else "1m"
        if not mgr.config.prometheus_url:
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
                    mgr.config.prometheus_url,
                    dep.spec.model,
                    number,
                    interval,
                    dep.metadata.namespace if mgr.config.prometheus_namespace_label else None,
                    deployment=dep.metadata.name or "",
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
                    f'Prometheus (model={dep.spec.model!r}, version="{number}", '
                    f"modelwerk_deployment={dep.metadata.name!r}): step {step.step} holds "
                    "until it does",
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


async def _runtime(mgr: Manager, dep: Deployment) -> ServingRuntime:
    if dep.spec.runtime != ServingRuntime.AUTO:
        return dep.spec.runtime
    return ServingRuntime.SELDON if await mgr.crd_installed(SELDON_CRD) else ServingRuntime.NATIVE


async def _blocked(
    mgr: Manager, body: Mapping[str, Any], sb: StatusBuilder, reason: str, message: str
) -> float | None:
    """Nothing resolvable to serve: say why; whatever serves now keeps serving."""
    sb.condition("Ready", False, reason, message)
    serving_now = sb.old.get("currentVersion") is not None
    if serving_now:
        sb.condition(
            "Degraded", True, reason, f"{message}; version {sb.old['currentVersion']} keeps serving"
        )
    return await _write(mgr, body, sb, "Degraded" if serving_now else "Pending")


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
    mgr: Manager,
    body: Mapping[str, Any],
    sb: StatusBuilder,
    phase: str,
    events: Sequence[tuple[str, str, str]] = (),
) -> float | None:
    reverted = on_switch(body, sb)
    change = history.serving_change(sb.old, sb.status, sb.at, reverted=reverted)
    if change is not None:
        sb.status, _ = history.append(sb.status, [change])
    status = await write_status(mgr, KIND, body, sb, phase, _bad, events=events)
    await post_dropped(mgr, body, sb.old, status, "ServingHistory")
    return None


CONTROLLER = Controller(
    kind=KIND,
    reconcile=reconcile,
    watches=(
        Watch(KIND, itself),
        # Deployments follow their Model's versions and aliases.
        Watch(kinds.MODEL, dependents(KIND, kinds.BY_MODEL)),
        # Every child kind of the table (kinds.owned_by): a child's change wakes its owner.
        *(Watch(child, owner(child)) for child in kinds.owned_by(constants.LABEL_DEPLOYMENT)),
    ),
)
