"""The canary state machine (modelwerk.canary): pure, driven by the stored status and a clock."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from modelwerk.api.deployment import Canary, CanaryState
from modelwerk.canary import plan
from modelwerk.promql import CanaryMeasurement, queries

T0 = dt.datetime(2026, 11, 26, 10, 0, 0, tzinfo=dt.UTC)
OK = CanaryMeasurement(requests=5.0, error_rate_percent=0.5, latency_p99_ms=20.0)


def canary(**analysis: Any) -> Canary:
    limits = {
        "interval": "1m",
        "steps": [10, 50, 100],
        "maxErrorRatePercent": 1,
        "maxLatencyP99Ms": 200,
        **analysis,
    }
    return Canary.model_validate({"version": 2, "analysis": limits})


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_without_analysis_the_canary_gets_its_fixed_share() -> None:
    step = plan(Canary.model_validate({"version": 2, "trafficPercent": 25}), 2, None, T0)
    assert (step.state, step.traffic_percent, step.step) == (CanaryState.PROGRESSING, 25, None)
    assert step.requeue_after is None


def test_a_new_canary_starts_at_the_first_step_and_looks_again_after_one_interval() -> None:
    step = plan(canary(), 2, None, T0)
    assert step.status() == {
        "version": 2,
        "trafficPercent": 10,
        "state": "Progressing",
        "step": 0,
        "stepStartedAt": "2026-11-26T10:00:00Z",
    }
    assert step.requeue_after == 60


def test_another_version_restarts_the_analysis() -> None:
    previous = plan(canary(), 2, None, T0).status() | {"step": 1, "trafficPercent": 50}
    step = plan(canary(), 3, previous, at(300))
    assert (step.version, step.step, step.traffic_percent) == (3, 0, 10)


def test_before_the_interval_ends_it_waits_for_the_rest_of_it() -> None:
    previous = plan(canary(), 2, None, T0).status()
    step = plan(canary(), 2, previous, at(45))
    assert step.requeue_after == 15
    assert not step.needs_measurement
    assert step.traffic_percent == 10


def test_after_the_interval_it_asks_for_a_measurement() -> None:
    previous = plan(canary(), 2, None, T0).status()
    assert plan(canary(), 2, previous, at(60)).needs_measurement


def test_a_good_measurement_moves_to_the_next_step_and_keeps_the_numbers() -> None:
    previous = plan(canary(), 2, None, T0).status()
    step = plan(canary(), 2, previous, at(61), OK)
    assert (step.state, step.step, step.traffic_percent) == (CanaryState.PROGRESSING, 1, 50)
    assert step.status()["errorRatePercent"] == 0.5
    assert step.status()["latencyP99Ms"] == 20.0
    assert step.status()["stepStartedAt"] == "2026-11-26T10:01:01Z"
    # The next reconcile, before anything new is measured, still shows them.
    again = plan(canary(), 2, step.status(), at(70))
    assert again.status()["errorRatePercent"] == 0.5


def test_passing_the_last_step_promotes_and_stays_promoted() -> None:
    previous = plan(canary(), 2, None, T0).status() | {"step": 2, "trafficPercent": 100}
    step = plan(canary(), 2, previous, at(60), OK)
    assert (step.state, step.traffic_percent) == (CanaryState.PROMOTED, 100)
    later = plan(canary(), 2, step.status(), at(3600))
    assert later.state == CanaryState.PROMOTED
    assert not later.needs_measurement


def test_a_breach_rolls_back_with_the_numbers_and_stays_rolled_back() -> None:
    previous = plan(canary(), 2, None, T0).status()
    slow = CanaryMeasurement(requests=5.0, error_rate_percent=3.0, latency_p99_ms=450.0)
    step = plan(canary(), 2, previous, at(60), slow)
    assert (step.state, step.traffic_percent) == (CanaryState.ROLLED_BACK, 0)
    assert step.breach == "error rate 3.00% > 1%; p99 latency 450.0 ms > 200 ms"
    later = plan(canary(), 2, step.status(), at(3600), OK)
    assert later.state == CanaryState.ROLLED_BACK


def test_a_limit_not_set_is_not_judged() -> None:
    previous = plan(canary(maxLatencyP99Ms=None), 2, None, T0).status()
    slow = CanaryMeasurement(requests=5.0, error_rate_percent=0.0, latency_p99_ms=10_000.0)
    assert plan(canary(maxLatencyP99Ms=None), 2, previous, at(60), slow).breach is None


def test_queries_select_the_canary_version_and_window() -> None:
    q = queries("iris", 2, "30000ms", namespace="ml", deployment="iris-eu")
    assert 'model="iris",version="2",modelwerk_deployment="iris-eu",namespace="ml"' in q["requests"]
    assert 'outcome="server_error"' in q["errors"]
    assert q["p99"].startswith("histogram_quantile(0.99")
    assert "[30000ms]" in q["p99"]
    assert "namespace" not in queries("iris", 2, "1m", deployment="iris-eu")["requests"]


def test_queries_select_the_deployment_so_two_deployments_never_mix() -> None:
    a = queries("iris", 2, "1m", "ml", deployment="iris-a")
    b = queries("iris", 2, "1m", "ml", deployment="iris-b")
    for key in ("requests", "errors", "p99"):
        assert 'modelwerk_deployment="iris-a"' in a[key]
        assert 'modelwerk_deployment="iris-b"' in b[key]
        assert a[key] != b[key]


def test_queries_quote_label_values() -> None:
    q = queries('ir"is', 2, "1m", deployment="a\\b")
    assert 'model="ir\\"is"' in q["requests"]
    assert 'modelwerk_deployment="a\\\\b"' in q["requests"]


def test_queries_select_only_labels_the_scraped_series_carry() -> None:
    """Every label the canary queries match is either the model server's own (model, version,
    outcome, le) or one the ServiceMonitor/PodMonitor relabelling adds, or Prometheus
    Operator's namespace: a label nobody sets would make the canary see no traffic at all."""
    from modelwerk.builders.monitoring import target_relabelings

    added = {r["targetLabel"] for r in target_relabelings()}
    assert "modelwerk_deployment" in added
    own = {"model", "version", "outcome", "le", "namespace"}
    for query in queries("iris", 2, "1m", "ml", deployment="iris-a").values():
        for matchers in re.findall(r"\{([^}]*)\}", query):
            keys = {m.split("=", 1)[0] for m in matchers.split(",")}
            assert keys <= own | added, (query, keys - own - added)
