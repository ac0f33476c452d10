"""Deployment -> PrometheusRule (Prometheus Operator, monitoring.coreos.com/v1): alerts per
served version on the model server's series (their names: modelwerk/contract.py).

Every rule selects on namespace, modelwerk_deployment, model and version (the target labels
builders/monitoring.py's monitors add), so two Deployments of one Model, in different
namespaces or in the same one, never mix.

Alerts, one set per served version (stable and canary), each labelled severity, namespace,
modelwerk_deployment, model and version (Model.spec.retrain's webhook finds the Model by
namespace and model):

    ModelwerkHighErrorRate        server_error share of requests > monitoring.errorRatePercent
                                  (default 1%) over 5m, for 5m
    ModelwerkHighLatencyP99       p99 of modelwerk_request_duration_seconds over 5m >
                                  monitoring.latencyP99Ms (default 500 ms), for 5m
    ModelwerkNoTraffic            the version is up (modelwerk_model_info present) but has had no
                                  request for 15m
    ModelwerkServingPodsNotReady  warning: a serving pod is not ready or cannot be scraped, for 5m;
                                  critical: no ready, scrapable pod of the version at all, for 5m
    ModelwerkDataDrift            per version and feature of its training baseline:
                                  |live mean - training mean| / training std > drift.threshold
                                  (default 3) over drift.window (default 10m), for drift.for
                                  (default 5m); also labelled `feature`

The baseline means and stds are constants in the drift rules: the PrometheusRule is rebuilt
whenever the served versions change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeGuard

from modelwerk.api.deployment import Deployment
from modelwerk.builders.common import Manifest
from modelwerk.builders.monitoring import (
    MONITORING_API_VERSION,
    TARGET_DEPLOYMENT,
    TARGET_READY,
    TARGET_VERSION,
    metadata,
    prometheus_rule_name,
)
from modelwerk.builders.promqltext import human, number, selector, template_literal
from modelwerk.contract import (
    FEATURE_COUNT_TOTAL,
    FEATURE_NEGATIVE_SUM_TOTAL,
    FEATURE_POSITIVE_SUM_TOTAL,
    MODEL_INFO,
    REQUEST_DURATION_BUCKET,
    REQUESTS_TOTAL,
    SERVER_ERROR,
)

# Recording rule: live mean of each feature, by namespace, deployment, model, version, feature,
# named after its rate window (feature_mean_record); this is the one of the default window.
FEATURE_MEAN_RECORD: Final = "modelwerk:feature_value_mean:rate10m"

DEFAULT_ERROR_RATE_PERCENT: Final = 1.0
DEFAULT_LATENCY_P99_MS: Final = 500
DEFAULT_DRIFT_THRESHOLD: Final = 3.0

RATE_WINDOW: Final = "5m"
DRIFT_WINDOW: Final = "10m"
DRIFT_FOR: Final = "5m"
FOR: Final = "5m"
NO_TRAFFIC_FOR: Final = "15m"

ALERT_HIGH_ERROR_RATE: Final = "ModelwerkHighErrorRate"
ALERT_HIGH_LATENCY: Final = "ModelwerkHighLatencyP99"
ALERT_NO_TRAFFIC: Final = "ModelwerkNoTraffic"
ALERT_PODS_NOT_READY: Final = "ModelwerkServingPodsNotReady"
ALERT_DATA_DRIFT: Final = "ModelwerkDataDrift"

Served = Sequence[tuple[int, Mapping[str, Any] | None]]
"""(version number, its training baseline `{"features": {name: {"mean", "std"}}}` or None)."""

# What the rules group and aggregate by: the model server runtimes add labels of their own
# (Seldon: method, worker_id, ...), and a Deployment has several pods.
_BY: Final = ("namespace", TARGET_DEPLOYMENT, "model", "version")


def _by(*extra: str) -> str:
    return "by (" + ", ".join((*_BY, *extra)) + ")"


# --- thresholds -----------------------------------------------------------------------------


def error_rate_percent(dep: Deployment) -> float:
    value = dep.spec.monitoring.error_rate_percent
    return DEFAULT_ERROR_RATE_PERCENT if value is None else value


def latency_p99_ms(dep: Deployment) -> int:
    value = dep.spec.monitoring.latency_p99_ms
    return DEFAULT_LATENCY_P99_MS if value is None else value


def drift_threshold(dep: Deployment) -> float:
    drift = dep.spec.monitoring.drift
    return DEFAULT_DRIFT_THRESHOLD if drift is None else drift.threshold


def drift_window(dep: Deployment) -> str:
    drift = dep.spec.monitoring.drift
    return DRIFT_WINDOW if drift is None else drift.window


def drift_for(dep: Deployment) -> str:
    drift = dep.spec.monitoring.drift
    return DRIFT_FOR if drift is None else drift.for_


def feature_mean_record(window: str) -> str:
    """The recording rule's name for a rate window: `modelwerk:feature_value_mean:rate<window>`
    (Prometheus' level:metric:operations convention)."""
    return f"modelwerk:feature_value_mean:rate{window}"


def pods_expected(dep: Deployment) -> bool:
    """False only for `replicas: 0` without autoscaling: then no pod is a normal state."""
    return dep.spec.autoscaling is not None or dep.spec.replicas > 0


def drift_features(
    baseline: Mapping[str, Any] | None,
) -> tuple[dict[str, tuple[float, float]], dict[str, str]]:
    """The baseline's features usable for drift rules, name -> (mean, std), and the skipped
    ones, name -> why (for a status message).

    A feature whose training std is 0 (a constant column) is skipped: drift is measured in
    training standard deviations, and with none any live difference at all would be an
    infinite drift (and equality 0/0, no value): a rule that only says "not constant".
    """
    usable: dict[str, tuple[float, float]] = {}
    skipped: dict[str, str] = {}
    features = (baseline or {}).get("features") or {}
    for name, stats in features.items():
        mean = stats.get("mean") if isinstance(stats, Mapping) else None
        std = stats.get("std") if isinstance(stats, Mapping) else None
        if not (_finite(mean) and _finite(std)):
            skipped[name] = "the baseline has no finite mean and std for it"
        elif std > 0:
            usable[name] = (float(mean), float(std))
        else:
            skipped[name] = (
                f"its training std is {human(std)} (0: constant in training): drift in "
                "standard deviations is undefined"
            )
    return usable, skipped


def _finite(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# --- rules ----------------------------------------------------------------------------------


def _alert(
    name: str, expr: str, for_: str, labels: Mapping[str, str], summary: str, description: str
) -> Manifest:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": dict(labels),
        "annotations": {"summary": summary, "description": description},
    }


def _version_rules(dep: Deployment, version: int) -> list[Manifest]:
    ns = dep.metadata.namespace or ""
    name = dep.metadata.name or ""
    model = dep.spec.model
    v = str(version)
    match = {"namespace": ns, TARGET_DEPLOYMENT: name, "model": model, "version": v}
    labels = {"namespace": ns, TARGET_DEPLOYMENT: name, "model": model, "version": v}
    what = f"{model} version {v} (Deployment {ns}/{name})"

    requests = selector(REQUESTS_TOTAL, **match)
    errors = selector(REQUESTS_TOTAL, **match, outcome=SERVER_ERROR)
    error_pct = error_rate_percent(dep)
    error_expr = (
        f"sum {_by()} (rate({errors}[{RATE_WINDOW}]))"
        f" / sum {_by()} (rate({requests}[{RATE_WINDOW}]))"
        f" > {number(error_pct / 100)}"
    )

    buckets = selector(REQUEST_DURATION_BUCKET, **match)
    latency_ms = latency_p99_ms(dep)
    latency_expr = (
        f"histogram_quantile(0.99, sum {_by('le')} (rate({buckets}[{RATE_WINDOW}])))"
        f" > {number(latency_ms / 1000)}"
    )

    # modelwerk_model_info says the version is up; the `unless` drops it while it has requests.
    # Written this way (not rate == 0) it also covers a runtime that creates the request series
    # only on the first request (Seldon). `for` covers the 15m: at every evaluation in it the
    # last 5m had no request, so neither had the 15m (and a new version gets 15m of grace).
    info = selector(MODEL_INFO, **match)
    no_traffic_expr = (
        f"max {_by()} ({info})"
        f" unless on ({', '.join(_BY)})"
        f" (sum {_by()} (rate({requests}[{RATE_WINDOW}])) > 0)"
    )

    up_match = {"namespace": ns, TARGET_DEPLOYMENT: name, TARGET_VERSION: v}
    up = selector("up", **up_match)
    not_ready = selector("up", **up_match, **{TARGET_READY: "false"})
    ready = selector("up", **up_match, **{TARGET_READY: "true"})
    some_not_ready_expr = f"count ({up} == 0 or {not_ready}) > 0"

    rules = [
        _alert(
            ALERT_HIGH_ERROR_RATE,
            error_expr,
            FOR,
            {"severity": "critical", **labels},
            f"{what}: more than {human(error_pct)}% of requests fail with a server error",
            f"{{{{ $value | humanizePercentage }}}} of the requests to {what} over the last "
            f"{RATE_WINDOW} failed with a server error (5xx); the threshold is "
            f"{human(error_pct)}% (spec.monitoring.errorRatePercent).",
        ),
        _alert(
            ALERT_HIGH_LATENCY,
            latency_expr,
            FOR,
            {"severity": "warning", **labels},
            f"{what}: p99 latency above {latency_ms} ms",
            f"The 99th percentile request latency of {what} over the last {RATE_WINDOW} is "
            f"{{{{ $value | humanizeDuration }}}}; the threshold is {latency_ms} ms "
            "(spec.monitoring.latencyP99Ms).",
        ),
        _alert(
            ALERT_NO_TRAFFIC,
            no_traffic_expr,
            NO_TRAFFIC_FOR,
            {"severity": "warning", **labels},
            f"{what} has had no requests for {NO_TRAFFIC_FOR}",
            f"{what} is up but has received no request for {NO_TRAFFIC_FOR}. Check the clients "
            "and the traffic split.",
        ),
        _alert(
            ALERT_PODS_NOT_READY,
            some_not_ready_expr,
            FOR,
            {"severity": "warning", **labels},
            f"{what}: serving pods not ready",
            f"{{{{ $value }}}} serving pod(s) of {what} have been not ready or failing their "
            f"metrics scrape for {FOR}.",
        ),
    ]
    if pods_expected(dep):
        rules.append(
            _alert(
                ALERT_PODS_NOT_READY,
                f"absent({ready} == 1)",
                FOR,
                {"severity": "critical", **labels},
                f"{what}: no serving pod is ready",
                f"No serving pod of {what} has been ready and scrapable for {FOR}: the version "
                "does not serve. If the pods are ready, Prometheus does not scrape them: check "
                "that its serviceMonitorSelector (podMonitorSelector with Seldon) matches "
                "spec.monitoring.labels.",
            )
        )
    return rules


def _drift_rules(
    dep: Deployment, version: int, features: Mapping[str, tuple[float, float]]
) -> list[Manifest]:
    ns = dep.metadata.namespace or ""
    name = dep.metadata.name or ""
    model = dep.spec.model
    v = str(version)
    match = {"namespace": ns, TARGET_DEPLOYMENT: name, "model": model, "version": v}
    threshold = drift_threshold(dep)
    window = drift_window(dep)
    for_ = drift_for(dep)
    record = feature_mean_record(window)
    what = f"{model} version {v} (Deployment {ns}/{name})"

    def rate_sum(metric: str) -> str:
        return f"sum {_by('feature')} (rate({selector(metric, **match)}[{window}]))"

    count = rate_sum(FEATURE_COUNT_TOTAL)
    # A runtime that drops zero-valued counters (Seldon) never exports the negative sum of an
    # all-positive feature (nor the positive sum of an all-negative one): read those as 0.
    zero = f"{count} * 0"
    positive = f"({rate_sum(FEATURE_POSITIVE_SUM_TOTAL)} or {zero})"
    negative = f"({rate_sum(FEATURE_NEGATIVE_SUM_TOTAL)} or {zero})"
    rules: list[Manifest] = [{"record": record, "expr": f"({positive} - {negative}) / {count}"}]
    for feature, (mean, std) in features.items():
        live = selector(record, **match, feature=feature)
        rules.append(
            _alert(
                ALERT_DATA_DRIFT,
                f"abs({live} - {number(mean)}) / {number(std)} > {number(threshold)}",
                for_,
                # `feature` also here: alerts of one group need distinct label sets.
                {"severity": "warning", **match, "feature": template_literal(feature)},
                f"{what}: feature {{{{ $labels.feature }}}} drifted from its training data",
                f"The mean of feature {{{{ $labels.feature }}}} sent to {what} over the last "
                f'{window} is {{{{ $value | printf "%.2f" }}}} training standard '
                f"deviations from the training mean {human(mean)} (std {human(std)}); "
                f"the threshold is {human(threshold)} (spec.monitoring.drift.threshold).",
            )
        )
    return rules


def rule_groups(dep: Deployment, served: Served) -> list[Manifest]:
    """The rule groups of the Deployment's PrometheusRule, alone (promtool reads these).

    One serving group with the alerts of every served version, one drift group with, per served
    version that has a baseline, the feature-mean recording rule and a drift alert per feature
    (recording rule first: rules of a group are evaluated in order)."""
    name = dep.metadata.name or ""
    serving: list[Manifest] = []
    drift: list[Manifest] = []
    for version, baseline in served:
        serving += _version_rules(dep, version)
        features, _ = drift_features(baseline)
        if features:
            drift += _drift_rules(dep, version, features)
    groups = [{"name": f"modelwerk.{name}.serving", "rules": serving}]
    if drift:
        groups.append({"name": f"modelwerk.{name}.drift", "rules": drift})
    return [g for g in groups if g["rules"]]


def build_prometheus_rule(dep: Deployment, owner: Mapping[str, Any], served: Served) -> Manifest:
    return {
        "apiVersion": MONITORING_API_VERSION,
        "kind": "PrometheusRule",
        "metadata": metadata(dep, prometheus_rule_name(dep), owner),
        "spec": {"groups": rule_groups(dep, served)},
    }
