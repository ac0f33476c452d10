"""Canary analysis as a pure state machine: where a canary stands, what to do next.

The reconciler measures (Prometheus) only when a step's interval has elapsed, and feeds the
measurement in; everything else is decided here from the stored status and the clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelwerk.api.common import parse_duration
from modelwerk.api.deployment import Canary, CanaryState
from modelwerk.promql import CanaryMeasurement
from modelwerk.status import format_time, parse_time


@dataclass(frozen=True)
class CanaryPlan:
    version: int
    state: CanaryState
    traffic_percent: int
    step: int | None = None
    step_started_at: str | None = None
    measured: CanaryMeasurement | None = None
    needs_measurement: bool = False
    requeue_after: float | None = None
    breach: str | None = None
    """Why the canary was rolled back (with the numbers)."""
    last_measured: Mapping[str, float] = field(default_factory=dict)
    """The status' errorRatePercent/latencyP99Ms of an earlier step, kept until the next
    measurement (the status is rebuilt from this plan on every reconcile)."""

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "version": self.version,
            "trafficPercent": self.traffic_percent,
            "state": str(self.state),
        }
        if self.step is not None:
            result["step"] = self.step
        if self.step_started_at is not None:
            result["stepStartedAt"] = self.step_started_at
        if self.measured is not None:
            if self.measured.error_rate_percent is not None:
                result["errorRatePercent"] = round(self.measured.error_rate_percent, 4)
            if self.measured.latency_p99_ms is not None:
                result["latencyP99Ms"] = round(self.measured.latency_p99_ms, 3)
        else:
            result.update(self.last_measured)
        return result


def _iso(at: dt.datetime) -> str:
    return format_time(at)


def plan(
    canary: Canary,
    version: int,
    previous: Mapping[str, Any] | None,
    at: dt.datetime,
    measured: CanaryMeasurement | None = None,
) -> CanaryPlan:
    analysis = canary.analysis
    if analysis is None:
        return CanaryPlan(version, CanaryState.PROGRESSING, canary.traffic_percent)
    steps = list(analysis.steps)
    prev = dict(previous or {})
    if prev.get("version") != version or prev.get("state") is None:
        # A new canary version starts the analysis from its first step.
        return CanaryPlan(
            version,
            CanaryState.PROGRESSING,
            steps[0],
            step=0,
            step_started_at=_iso(at),
            requeue_after=seconds(analysis.interval),
        )
    state = CanaryState(prev["state"])
    last = {
        key: float(prev[key])
        for key in ("errorRatePercent", "latencyP99Ms")
        if prev.get(key) is not None
    }
    if state == CanaryState.PROMOTED:
        return CanaryPlan(
            version,
            state,
            100,
            step=len(steps) - 1,
            step_started_at=prev.get("stepStartedAt"),
            last_measured=last,
        )
    if state == CanaryState.ROLLED_BACK:
        return CanaryPlan(
            version,
            state,
            0,
            step=prev.get("step"),
            step_started_at=prev.get("stepStartedAt"),
            last_measured=last,
        )
    step = int(prev.get("step") or 0)
    started = parse_time(prev.get("stepStartedAt") or _iso(at))
    interval = seconds(analysis.interval)
    remaining = (started + dt.timedelta(seconds=interval) - at).total_seconds()
    current = CanaryPlan(
        version,
        state,
        steps[step],
        step=step,
        step_started_at=prev.get("stepStartedAt"),
        last_measured=last,
    )
    if remaining > 0:
        return _with(current, requeue_after=remaining)
    if measured is None:
        return _with(current, needs_measurement=True)
    breach = _breach(canary, measured)
    if breach is not None:
        return CanaryPlan(
            version,
            CanaryState.ROLLED_BACK,
            0,
            step=step,
            step_started_at=prev.get("stepStartedAt"),
            measured=measured,
            breach=breach,
        )
    if step + 1 >= len(steps) or steps[step] >= 100:
        return CanaryPlan(
            version,
            CanaryState.PROMOTED,
            100,
            step=step,
            step_started_at=_iso(at),
            measured=measured,
        )
    return CanaryPlan(
        version,
        CanaryState.PROGRESSING,
        steps[step + 1],
        step=step + 1,
        step_started_at=_iso(at),
        measured=measured,
        requeue_after=interval,
    )


def _breach(canary: Canary, measured: CanaryMeasurement) -> str | None:
    analysis = canary.analysis
    assert analysis is not None
    problems = []
    if (
        analysis.max_error_rate_percent is not None
        and measured.error_rate_percent is not None
        and measured.error_rate_percent > analysis.max_error_rate_percent
    ):
        problems.append(
            f"error rate {measured.error_rate_percent:.2f}% > {analysis.max_error_rate_percent:g}%"
        )
    if (
        analysis.max_latency_p99_ms is not None
        and measured.latency_p99_ms is not None
        and measured.latency_p99_ms > analysis.max_latency_p99_ms
    ):
        problems.append(
            f"p99 latency {measured.latency_p99_ms:.1f} ms > {analysis.max_latency_p99_ms} ms"
        )
    return "; ".join(problems) or None


def seconds(duration: str) -> float:
    return parse_duration(duration).total_seconds()


def _with(plan_: CanaryPlan, **changes: Any) -> CanaryPlan:
    return CanaryPlan(**{**plan_.__dict__, **changes})
