"""Reads from Prometheus for canary analysis: the canary version's error rate and p99 latency.

The queries read the model server's own metrics (their names: modelwerk/contract.py), selected
by model, version and the `modelwerk_deployment` target label the monitors add (as the generated
alert rules are): two Deployments of one Model in one namespace serving the same version number
each see only their own pods' numbers."""

from __future__ import annotations

import math
from dataclasses import dataclass

import aiohttp

from modelwerk.api.common import parse_duration
from modelwerk.builders.monitoring import TARGET_DEPLOYMENT
from modelwerk.builders.promqltext import promql_string
from modelwerk.contract import REQUEST_DURATION_BUCKET, REQUESTS_TOTAL, SERVER_ERROR


class PrometheusError(Exception):
    pass


@dataclass(frozen=True)
class CanaryMeasurement:
    requests: float
    """Requests per second the canary served over the window."""
    error_rate_percent: float | None
    latency_p99_ms: float | None


def _selector(model: str, version: int, namespace: str | None, deployment: str) -> str:
    matchers = {"model": model, "version": str(version), TARGET_DEPLOYMENT: deployment}
    if namespace:
        matchers["namespace"] = namespace
    return ",".join(f"{key}={promql_string(value)}" for key, value in matchers.items())


def promql_duration(duration: str) -> str:
    """A Go duration (what the API accepts: `1.5m`, `90s`, `1h30m`, `500us`) as PromQL reads it:
    whole milliseconds, at least one. Prometheus refuses fractions and `us`/`ns`."""
    millis = round(parse_duration(duration).total_seconds() * 1000)
    return f"{max(millis, 1)}ms"


def queries(
    model: str, version: int, window: str, namespace: str | None = None, *, deployment: str
) -> dict[str, str]:
    sel = _selector(model, version, namespace, deployment)
    window = promql_duration(window)
    return {
        "requests": f"sum(rate({REQUESTS_TOTAL}{{{sel}}}[{window}]))",
        "errors": f'sum(rate({REQUESTS_TOTAL}{{{sel},outcome="{SERVER_ERROR}"}}[{window}]))',
        "p99": "histogram_quantile(0.99, sum by (le) "
        f"(rate({REQUEST_DURATION_BUCKET}{{{sel}}}[{window}])))",
    }


async def _scalar(session: aiohttp.ClientSession, base: str, query: str) -> float | None:
    async with session.get(f"{base.rstrip('/')}/api/v1/query", params={"query": query}) as resp:
        if resp.status != 200:
            raise PrometheusError(f"Prometheus answered {resp.status} to {query!r}")
        body = await resp.json()
    if body.get("status") != "success":
        raise PrometheusError(f"Prometheus query failed: {body.get('error')}")
    result = body["data"]["result"]
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if math.isnan(value) else value


async def measure_canary(
    base_url: str,
    model: str,
    version: int,
    window: str,
    namespace: str | None = None,
    *,
    deployment: str,
) -> CanaryMeasurement:
    q = queries(model, version, window, namespace, deployment=deployment)
    timeout = aiohttp.ClientTimeout(total=15)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            requests = await _scalar(session, base_url, q["requests"]) or 0.0
            errors = await _scalar(session, base_url, q["errors"]) or 0.0
            p99 = await _scalar(session, base_url, q["p99"])
    except (aiohttp.ClientError, TimeoutError) as err:
        raise PrometheusError(f"Prometheus at {base_url} unreachable: {err}") from err
    rate = (100.0 * errors / requests) if requests > 0 else None
    return CanaryMeasurement(
        requests=requests,
        error_rate_percent=rate,
        latency_p99_ms=None if p99 is None else p99 * 1000.0,
    )
