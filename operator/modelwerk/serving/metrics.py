"""The model server's metrics: the names monitoring rules are written against.

Both runtimes export the same series (names as they appear on the scrape endpoint)::

    modelwerk_model_info{model,version,digest}                       gauge, always 1
    modelwerk_requests_total{model,version,outcome}                  counter
        outcome: success | client_error | server_error
    modelwerk_request_duration_seconds_bucket{model,version,le}      histogram
    modelwerk_request_duration_seconds_sum{model,version}
    modelwerk_request_duration_seconds_count{model,version}
    modelwerk_predictions_total{model,version,class}                 counter, one per predicted
        label (the label's string form; for a regressor each value is its own class, so
        monitor regressors through the feature series instead)
    modelwerk_feature_value_count_total{model,version,feature}        counter: values seen
    modelwerk_feature_value_positive_sum_total{model,version,feature} counter: sum of x > 0
    modelwerk_feature_value_negative_sum_total{model,version,feature} counter: sum of -x, x < 0
    modelwerk_feature_value_squares_sum_total{model,version,feature}  counter: sum of x^2

The sum is split by sign because a counter must never decrease (prometheus_client refuses, and
rate() would read a decrease as a restart). Features are counted for successful requests only.
Over a window ``w`` the live mean and std of a feature are::

    mean = (rate(modelwerk_feature_value_positive_sum_total[w])
            - rate(modelwerk_feature_value_negative_sum_total[w]))
           / rate(modelwerk_feature_value_count_total[w])
    std  = sqrt(rate(modelwerk_feature_value_squares_sum_total[w])
                / rate(modelwerk_feature_value_count_total[w]) - mean^2)

compare with the version's training baseline: drift = |mean - baseline mean| / baseline std.

The Seldon runtime adds Seldon's own labels (``method``, ``worker_id``, ``deployment_name``,
``model_name``, ``predictor_name``, ...), its latency buckets differ from the native ones, and
its ``modelwerk_model_info`` appears after the first health check or request. Rules should
therefore aggregate, e.g. ``sum by (model, version, feature) (rate(...))``.
"""

from __future__ import annotations

import os
from collections import Counter as Tally
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

# The names (and outcomes) are the model server's contract with the rules and canary queries.
from modelwerk.contract import (
    CLIENT_ERROR as CLIENT_ERROR,
)
from modelwerk.contract import (
    FEATURE_COUNT as FEATURE_COUNT,
)
from modelwerk.contract import (
    FEATURE_COUNT_TOTAL as FEATURE_COUNT_TOTAL,
)
from modelwerk.contract import (
    FEATURE_NEGATIVE_SUM as FEATURE_NEGATIVE_SUM,
)
from modelwerk.contract import (
    FEATURE_NEGATIVE_SUM_TOTAL as FEATURE_NEGATIVE_SUM_TOTAL,
)
from modelwerk.contract import (
    FEATURE_POSITIVE_SUM as FEATURE_POSITIVE_SUM,
)
from modelwerk.contract import (
    FEATURE_POSITIVE_SUM_TOTAL as FEATURE_POSITIVE_SUM_TOTAL,
)
from modelwerk.contract import (
    FEATURE_SQUARES as FEATURE_SQUARES,
)
from modelwerk.contract import (
    FEATURE_SQUARES_SUM_TOTAL as FEATURE_SQUARES_SUM_TOTAL,
)
from modelwerk.contract import (
    MODEL_INFO as MODEL_INFO,
)
from modelwerk.contract import (
    PREDICTIONS as PREDICTIONS,
)
from modelwerk.contract import (
    PREDICTIONS_TOTAL as PREDICTIONS_TOTAL,
)
from modelwerk.contract import (
    REQUEST_DURATION as REQUEST_DURATION,
)
from modelwerk.contract import (
    REQUEST_DURATION_BUCKET as REQUEST_DURATION_BUCKET,
)
from modelwerk.contract import (
    REQUESTS as REQUESTS,
)
from modelwerk.contract import (
    REQUESTS_TOTAL as REQUESTS_TOTAL,
)
from modelwerk.contract import (
    SERVER_ERROR as SERVER_ERROR,
)
from modelwerk.contract import (
    SUCCESS as SUCCESS,
)

if TYPE_CHECKING:
    # Only for annotations: the operator imports the names below without numpy installed.
    from modelwerk.serving.core import FeatureTotals, Inference

# Fine steps around 100-300 ms, where latency objectives and canary limits usually sit.
DURATION_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 0.75,
    1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


def class_counts(labels: Iterable[Any]) -> dict[str, int]:
    return dict(Tally(str(label) for label in labels))


class PrometheusMetrics:
    """The native runtime's metrics, in a registry of their own (no process or GC noise)."""

    def __init__(self, model: str, version: str, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._labels = (model, version)
        r = self.registry
        # With several worker processes (multiprocess mode) the info is one series, not one
        # per process.
        self._info = Gauge(
            MODEL_INFO,
            "Served model version",
            ["model", "version", "digest"],
            registry=r,
            multiprocess_mode="max",
        )
        self._requests = Counter(
            REQUESTS, "Prediction requests by outcome", ["model", "version", "outcome"], registry=r
        )
        self._duration = Histogram(
            REQUEST_DURATION,
            "Prediction request duration",
            ["model", "version"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self._predictions = Counter(
            PREDICTIONS, "Predicted labels", ["model", "version", "class"], registry=r
        )
        feature_labels = ["model", "version", "feature"]
        self._f_count = Counter(FEATURE_COUNT, "Feature values seen", feature_labels, registry=r)
        self._f_positive = Counter(
            FEATURE_POSITIVE_SUM, "Sum of positive feature values", feature_labels, registry=r
        )
        self._f_negative = Counter(
            FEATURE_NEGATIVE_SUM,
            "Sum of the magnitudes of negative feature values",
            feature_labels,
            registry=r,
        )
        self._f_squares = Counter(
            FEATURE_SQUARES, "Sum of squared feature values", feature_labels, registry=r
        )
        # Outcomes exist from the start so that error-ratio rules see 0, not "no data".
        # The children are looked up once: `labels()` per request was most of observe()'s time.
        self._outcomes = {
            outcome: self._requests.labels(model, version, outcome)
            for outcome in (SUCCESS, CLIENT_ERROR, SERVER_ERROR)
        }
        self._duration_child = self._duration.labels(model, version)
        self._classes: dict[str, Any] = {}
        self._features: dict[str, tuple[Any, Any, Any, Any]] = {}

    def set_info(self, digest: str) -> None:
        self._info.labels(*self._labels, digest).set(1)

    def observe(self, outcome: str, seconds: float, inference: Inference | None = None) -> None:
        self._outcomes[outcome].inc()
        self._duration_child.observe(seconds)
        if inference is None:
            return
        for label, count in class_counts(inference.labels).items():
            child = self._classes.get(label)
            if child is None:
                child = self._classes[label] = self._predictions.labels(*self._labels, label)
            child.inc(count)
        for feature, totals in inference.features.items():
            children = self._features.get(feature)
            if children is None:
                children = self._features[feature] = self._feature_children(feature)
            count_, positive, negative, squares = children
            count_.inc(totals.count)
            positive.inc(totals.positive)
            negative.inc(totals.negative)
            squares.inc(totals.squares)

    def _feature_children(self, feature: str) -> tuple[Any, Any, Any, Any]:
        labels = (*self._labels, feature)
        return (
            self._f_count.labels(*labels),
            self._f_positive.labels(*labels),
            self._f_negative.labels(*labels),
            self._f_squares.labels(*labels),
        )

    def exposition(self) -> tuple[bytes, str]:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Several worker processes: the sums over all of them (modelwerk.serving.workers).
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def seldon_metrics(
    *,
    model: str,
    version: str,
    digest: str,
    outcome: str | None = None,
    seconds: float | None = None,
    inference: Inference | None = None,
) -> list[dict[str, Any]]:
    """The same series as Seldon custom-metric dicts (see seldon_core.metrics).

    Seldon adds "_total" to COUNTER keys and takes TIMER values in milliseconds.
    """
    base = {"model": model, "version": version}
    # Fresh dicts each call: Seldon writes a "method" tag into the dicts it is given.
    items: list[dict[str, Any]] = [
        {"type": "GAUGE", "key": MODEL_INFO, "value": 1, "tags": {**base, "digest": digest}}
    ]
    if outcome is not None:
        items.append(_counter(REQUESTS, 1, {**base, "outcome": outcome}))
    if seconds is not None:
        items.append(
            {"type": "TIMER", "key": REQUEST_DURATION, "value": seconds * 1000, "tags": dict(base)}
        )
    if inference is not None:
        for label, count in class_counts(inference.labels).items():
            items.append(_counter(PREDICTIONS, count, {**base, "class": label}))
        for feature, totals in inference.features.items():
            items.extend(_feature_counters(base, feature, totals))
    return items


def _feature_counters(
    base: dict[str, str], feature: str, totals: FeatureTotals
) -> list[dict[str, Any]]:
    tags = {**base, "feature": feature}
    return [
        _counter(FEATURE_COUNT, totals.count, tags),
        _counter(FEATURE_POSITIVE_SUM, totals.positive, tags),
        _counter(FEATURE_NEGATIVE_SUM, totals.negative, tags),
        _counter(FEATURE_SQUARES, totals.squares, tags),
    ]


def _counter(key: str, value: float, tags: dict[str, str]) -> dict[str, Any]:
    return {"type": "COUNTER", "key": key, "value": value, "tags": dict(tags)}
