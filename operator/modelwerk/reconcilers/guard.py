"""spec.guard: a version that became current is watched for `window`; on a breach the
Deployment serves the version before it again (a version switch like any other: the reverted
version keeps serving until the previous one is ready), the version goes into
rejectedVersions, a Warning Event carries the measured numbers, and it is not made current
again on this Deployment while spec.guard is set (no flip-flop)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelwerk import promql, registry
from modelwerk.api.common import parse_duration
from modelwerk.api.deployment import Deployment
from modelwerk.api.governance import Guard, GuardState
from modelwerk.manager import Manager
from modelwerk.reconcilers.common import StatusBuilder
from modelwerk.reconcilers.served import Plan
from modelwerk.status import parse_time

CONDITION = "Guard"


def _serve(plan: Plan, sb: StatusBuilder, versions: list[Any], number: int) -> bool:
    entry = registry.find_number(versions, number)
    if entry is None:
        return False
    plan.target = entry
    current = sb.old.get("currentVersion")
    plan.previous = (
        registry.find_number(versions, int(current))
        if current is not None and int(current) != number
        else None
    )
    return True


def breach(spec: Guard, measured: promql.CanaryMeasurement) -> str | None:
    rate, p99 = measured.error_rate_percent, measured.latency_p99_ms
    limit = spec.max_error_rate_percent
    if limit is not None and rate is not None and rate > limit:
        return f"error rate {rate:.2f}% > {limit:g}%"
    ceiling = spec.max_latency_p99_ms
    if ceiling is not None and p99 is not None and p99 > ceiling:
        return f"p99 latency {p99:.1f} ms > {ceiling:g} ms"
    return None


def measured_numbers(measured: promql.CanaryMeasurement, interval: str) -> str:
    """Every number the breaching measurement took, for the Event: not only the one that broke
    its limit."""
    rate, p99 = measured.error_rate_percent, measured.latency_p99_ms
    parts = [f"{measured.requests:.2f} requests/s"]
    parts.append("no error rate" if rate is None else f"{rate:.2f}% errors")
    parts.append("no p99" if p99 is None else f"p99 {p99:.1f} ms")
    return f"measured over {interval}: " + ", ".join(parts)


async def plan_guard(
    mgr: Manager, dep: Deployment, sb: StatusBuilder, plan: Plan, model_status: Mapping[str, Any]
) -> None:
    """After the canary plan, before the runtime applies it: may change what is served."""
    spec = dep.spec.guard
    if spec is None:
        sb.status.pop("guard", None)
        sb.status["conditions"] = [
            c for c in sb.status.get("conditions") or [] if c.get("type") != CONDITION
        ]
        return
    versions = list(model_status.get("versions") or [])
    target = int(plan.target["version"])
    current = sb.old.get("currentVersion")
    guard = dict(sb.old.get("guard") or {})
    rejected = list(sb.status.get("rejectedVersions") or [])
    if guard.get("state") == GuardState.REVERTED and guard.get("version") == target:
        _serve(plan, sb, versions, int(guard["previousVersion"]))
        return
    if current is not None and target != int(current) and target in rejected:
        _serve(plan, sb, versions, int(current))
        sb.condition(
            CONDITION,
            False,
            "PreviouslyReverted",
            f"version {target} was rejected on this Deployment earlier; version {current} "
            "keeps serving",
        )
        return
    if (
        guard.get("state") != GuardState.WATCHING
        or current is None
        or guard.get("version") != current
    ):
        return
    number = int(current)
    if target != number:
        return  # another switch under way; its own guard starts when it lands
    elapsed = (mgr.now() - parse_time(str(guard["since"]))).total_seconds()
    window = parse_duration(spec.window).total_seconds()
    if elapsed >= window:
        sb.status["guard"] = {**guard, "state": str(GuardState.PASSED)}
        sb.condition(
            CONDITION, True, "Passed", f"version {number} served {spec.window} without a breach"
        )
        return
    interval = parse_duration(spec.interval).total_seconds()
    wait = min(interval, window - elapsed)
    plan.requeue_after = wait if plan.requeue_after is None else min(plan.requeue_after, wait)
    if not mgr.config.prometheus_url:
        sb.condition(CONDITION, None, "NoPrometheus", "the guard needs the operator's Prometheus")
        return
    try:
        measured = await promql.measure_canary(
            mgr.config.prometheus_url,
            dep.spec.model,
            number,
            spec.interval,
            dep.metadata.namespace if mgr.config.prometheus_namespace_label else None,
            deployment=dep.metadata.name or "",
        )
    except promql.PrometheusError as err:
        sb.condition(CONDITION, None, "PrometheusUnavailable", str(err))
        return
    if measured.requests <= 0:
        sb.condition(CONDITION, None, "NoTraffic", f"version {number} served no requests")
        return
    guard["errorRatePercent"] = measured.error_rate_percent
    guard["latencyP99Ms"] = measured.latency_p99_ms
    guard = {k: v for k, v in guard.items() if v is not None}
    found = breach(spec, measured)
    previous = guard.get("previousVersion")
    if found is None or previous is None or not _serve(plan, sb, versions, int(previous)):
        sb.status["guard"] = guard
        sb.condition(CONDITION, True, "Watching", f"version {number} within limits")
        return
    sb.status["guard"] = {**guard, "state": str(GuardState.REVERTED)}
    sb.status["rejectedVersions"] = sorted({*rejected, number})
    message = (
        f"version {number}: {found}; version {previous} serves again"
        f" ({measured_numbers(measured, spec.interval)})"
    )
    plan.events.append(("GuardReverted", message, "Warning"))
    sb.condition(CONDITION, False, "Reverted", f"{message}, and {number} is not re-promoted")


def on_switch(body: Mapping[str, Any], sb: StatusBuilder) -> bool:
    """In the write that changes currentVersion: start watching the new version; True when the
    switch is a guard's revert (recorded as Reverted in history)."""
    if not (body.get("spec") or {}).get("guard"):
        return False
    before, after = sb.old.get("currentVersion"), sb.status.get("currentVersion")
    if after is None or after == before:
        return False
    guard = sb.old.get("guard") or {}
    if guard.get("state") == GuardState.REVERTED and guard.get("previousVersion") == after:
        return True
    if before is not None:
        sb.status["guard"] = {
            "version": after,
            "previousVersion": before,
            "since": sb.at,
            "state": str(GuardState.WATCHING),
        }
    return False
