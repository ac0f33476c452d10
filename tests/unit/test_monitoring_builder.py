"""ServiceMonitor, PrometheusRule and the operator's rules against expected dicts."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from modelwerk import constants, contract
from modelwerk.api.deployment import Deployment
from modelwerk.builders import monitoring, rules
from modelwerk.builders.monitoring import build_pod_monitor, build_service_monitor
from modelwerk.builders.operator_rules import (
    build_operator_prometheus_rule,
    build_operator_rule_groups,
    helm_escape,
    operator_rules_yaml,
)
from modelwerk.builders.promqltext import number, promql_string, template_literal
from modelwerk.builders.rules import build_prometheus_rule, drift_features, rule_groups

BODY: dict[str, Any] = {
    "apiVersion": "modelwerk.io/v1alpha1",
    "kind": "Deployment",
    "metadata": {"name": "iris", "namespace": "ml-team", "uid": "uid-iris"},
    "spec": {
        "model": "iris",
        "version": 4,
        "replicas": 2,
        "monitoring": {
            "latencyP99Ms": 250,
            "errorRatePercent": 0.5,
            "drift": {"threshold": 2.5},
            "labels": {"team": "ml", "release": "prometheus"},
        },
    },
}
OWNER_REF = {
    "apiVersion": "modelwerk.io/v1alpha1",
    "kind": "Deployment",
    "name": "iris",
    "uid": "uid-iris",
    "controller": True,
    "blockOwnerDeletion": True,
}
LABELS = {
    "team": "ml",
    "release": "prometheus",
    "app.kubernetes.io/managed-by": "modelwerk",
    "app.kubernetes.io/part-of": "modelwerk",
    "app.kubernetes.io/component": "monitoring",
    "modelwerk.io/deployment": "iris",
    "modelwerk.io/model": "iris",
}
BASELINE = {"features": {"sepal_length": {"mean": 5.84, "std": 0.83}}}

# Selectors of the expected expressions.
V4 = 'namespace="ml-team",modelwerk_deployment="iris",model="iris",version="4"'
UP4 = 'namespace="ml-team",modelwerk_deployment="iris",modelwerk_version="4"'
BY = "by (namespace, modelwerk_deployment, model, version"
V4_LABELS = {
    "namespace": "ml-team",
    "modelwerk_deployment": "iris",
    "model": "iris",
    "version": "4",
}
WHAT = "iris version 4 (Deployment ml-team/iris)"


def deployment(**spec: Any) -> Deployment:
    body = copy.deepcopy(BODY)
    body["spec"].update(spec)
    return Deployment.from_body(body)


def alerts(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for g in groups for r in g["rules"] if "alert" in r]


# --- ServiceMonitor -------------------------------------------------------------------------


RELABELINGS = [
    {
        "sourceLabels": ["__meta_kubernetes_pod_label_modelwerk_io_deployment"],
        "targetLabel": "modelwerk_deployment",
        "action": "replace",
    },
    {
        "sourceLabels": ["__meta_kubernetes_pod_label_modelwerk_io_model_version"],
        "targetLabel": "modelwerk_version",
        "action": "replace",
    },
    {
        "sourceLabels": ["__meta_kubernetes_pod_ready"],
        "regex": "(true|false)",
        "targetLabel": "modelwerk_ready",
        "replacement": "$1",
        "action": "replace",
    },
]
METADATA = {
    "name": "iris",
    "namespace": "ml-team",
    "labels": LABELS,
    "ownerReferences": [OWNER_REF],
}


def test_service_monitor() -> None:
    assert build_service_monitor(deployment(), BODY) == {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": METADATA,
        "spec": {
            # Not the per-version Services of an HTTPRoute: their pods would be scraped twice.
            "selector": {
                "matchLabels": {"modelwerk.io/deployment": "iris"},
                "matchExpressions": [
                    {"key": "modelwerk.io/model-version", "operator": "DoesNotExist"}
                ],
            },
            "endpoints": [
                {
                    "port": "http",
                    "path": "/metrics",
                    "interval": "15s",
                    "scheme": "http",
                    "relabelings": RELABELINGS,
                }
            ],
        },
    }


def test_pod_monitor() -> None:
    assert build_pod_monitor(deployment(), BODY) == {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": METADATA,
        "spec": {
            "selector": {"matchLabels": {"modelwerk.io/deployment": "iris"}},
            "podMetricsEndpoints": [
                {
                    "port": "metrics",
                    "path": "/prometheus",
                    "interval": "15s",
                    "scheme": "http",
                    "relabelings": RELABELINGS,
                }
            ],
        },
    }


def test_service_monitor_selects_the_serving_service() -> None:
    """The ServiceMonitor selects the native runtime's Service, by a label it carries, on the
    port it names."""
    from modelwerk.builders import native

    dep = deployment()
    selector = build_service_monitor(dep, BODY)["spec"]["selector"]["matchLabels"]
    service = native.build_service(dep, BODY)
    assert selector.items() <= service["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["name"] == monitoring.METRICS_PORT
    assert build_pod_monitor(dep, BODY)["spec"]["selector"]["matchLabels"] == selector


def test_service_monitor_port_and_path_can_change() -> None:
    endpoint = build_service_monitor(deployment(), BODY, port="metrics", path="/prometheus")[
        "spec"
    ]["endpoints"][0]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/prometheus")


def test_relabelings_read_the_pod_labels_the_serving_pods_carry() -> None:
    sources = [r["sourceLabels"][0] for r in monitoring.target_relabelings()]
    for key in (constants.LABEL_DEPLOYMENT, constants.LABEL_MODEL_VERSION):
        # Prometheus' sanitizing of a pod label into a meta label name.
        assert "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", key) in sources


def test_builders_share_no_mutable_state() -> None:
    dep = deployment()
    builds: list[Callable[[], dict[str, Any]]] = [
        lambda: build_service_monitor(dep, BODY),
        lambda: build_pod_monitor(dep, BODY),
        lambda: build_prometheus_rule(dep, BODY, [(4, BASELINE)]),
        lambda: build_operator_prometheus_rule("modelwerk-system"),
    ]
    for build in builds:
        first, second = build(), build()
        assert first == second
        assert not mutable_ids(first) & mutable_ids(second)


def mutable_ids(value: Any) -> set[int]:
    if isinstance(value, dict):
        return {id(value)}.union(*(mutable_ids(v) for v in value.values()))
    if isinstance(value, list):
        return {id(value)}.union(*(mutable_ids(v) for v in value))
    return set()


def test_our_labels_win_over_monitoring_labels() -> None:
    dep = deployment(
        monitoring={
            "labels": {"app.kubernetes.io/managed-by": "helm", "modelwerk.io/deployment": "x"}
        }
    )
    labels = build_service_monitor(dep, BODY)["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "modelwerk"
    assert labels["modelwerk.io/deployment"] == "iris"


# --- PrometheusRule -------------------------------------------------------------------------


def test_prometheus_rule() -> None:
    rule = build_prometheus_rule(deployment(), BODY, [(4, BASELINE)])
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    assert rule["metadata"] == {
        "name": "iris",
        "namespace": "ml-team",
        "labels": LABELS,
        "ownerReferences": [OWNER_REF],
    }
    assert rule["spec"] == {"groups": rule_groups(deployment(), [(4, BASELINE)])}


def test_rule_groups() -> None:
    errors = f'modelwerk_requests_total{{{V4},outcome="server_error"}}'
    requests = f"modelwerk_requests_total{{{V4}}}"
    buckets = f"modelwerk_request_duration_seconds_bucket{{{V4}}}"

    def rate_sum(metric: str) -> str:
        return f"sum {BY}, feature) (rate({metric}{{{V4}}}[10m]))"

    count = rate_sum("modelwerk_feature_value_count_total")
    positive = rate_sum("modelwerk_feature_value_positive_sum_total")
    negative = rate_sum("modelwerk_feature_value_negative_sum_total")

    assert rule_groups(deployment(), [(4, BASELINE)]) == [
        {
            "name": "modelwerk.iris.serving",
            "rules": [
                {
                    "alert": "ModelwerkHighErrorRate",
                    "expr": f"sum {BY}) (rate({errors}[5m])) / sum {BY}) (rate({requests}[5m]))"
                    " > 0.005",
                    "for": "5m",
                    "labels": {"severity": "critical", **V4_LABELS},
                    "annotations": {
                        "summary": f"{WHAT}: more than 0.5% of requests fail with a server error",
                        "description": "{{ $value | humanizePercentage }} of the requests to "
                        f"{WHAT} over the last 5m failed with a server error (5xx); the "
                        "threshold is 0.5% (spec.monitoring.errorRatePercent).",
                    },
                },
                {
                    "alert": "ModelwerkHighLatencyP99",
                    "expr": f"histogram_quantile(0.99, sum {BY}, le) (rate({buckets}[5m]))) > 0.25",
                    "for": "5m",
                    "labels": {"severity": "warning", **V4_LABELS},
                    "annotations": {
                        "summary": f"{WHAT}: p99 latency above 250 ms",
                        "description": f"The 99th percentile request latency of {WHAT} over "
                        "the last 5m is {{ $value | humanizeDuration }}; the threshold is 250 ms"
                        " (spec.monitoring.latencyP99Ms).",
                    },
                },
                {
                    "alert": "ModelwerkNoTraffic",
                    "expr": f"max {BY}) (modelwerk_model_info{{{V4}}}) unless on "
                    "(namespace, modelwerk_deployment, model, version) "
                    f"(sum {BY}) (rate({requests}[5m])) > 0)",
                    "for": "15m",
                    "labels": {"severity": "warning", **V4_LABELS},
                    "annotations": {
                        "summary": f"{WHAT} has had no requests for 15m",
                        "description": f"{WHAT} is up but has received no request for 15m. "
                        "Check the clients and the traffic split.",
                    },
                },
                {
                    "alert": "ModelwerkServingPodsNotReady",
                    "expr": f'count (up{{{UP4}}} == 0 or up{{{UP4},modelwerk_ready="false"}}) > 0',
                    "for": "5m",
                    "labels": {"severity": "warning", **V4_LABELS},
                    "annotations": {
                        "summary": f"{WHAT}: serving pods not ready",
                        "description": f"{{{{ $value }}}} serving pod(s) of {WHAT} have been not "
                        "ready or failing their metrics scrape for 5m.",
                    },
                },
                {
                    "alert": "ModelwerkServingPodsNotReady",
                    "expr": f'absent(up{{{UP4},modelwerk_ready="true"}} == 1)',
                    "for": "5m",
                    "labels": {"severity": "critical", **V4_LABELS},
                    "annotations": {
                        "summary": f"{WHAT}: no serving pod is ready",
                        "description": f"No serving pod of {WHAT} has been ready and scrapable "
                        "for 5m: the version does not serve. If the pods are ready, Prometheus "
                        "does not scrape them: check that its serviceMonitorSelector "
                        "(podMonitorSelector with Seldon) matches spec.monitoring.labels.",
                    },
                },
            ],
        },
        {
            "name": "modelwerk.iris.drift",
            "rules": [
                {
                    "record": "modelwerk:feature_value_mean:rate10m",
                    "expr": f"(({positive} or {count} * 0) - ({negative} or {count} * 0))"
                    f" / {count}",
                },
                {
                    "alert": "ModelwerkDataDrift",
                    "expr": "abs(modelwerk:feature_value_mean:rate10m"
                    f'{{{V4},feature="sepal_length"}} - 5.84) / 0.83 > 2.5',
                    "for": "5m",
                    "labels": {"severity": "warning", **V4_LABELS, "feature": "sepal_length"},
                    "annotations": {
                        "summary": f"{WHAT}: feature {{{{ $labels.feature }}}} drifted from its "
                        "training data",
                        "description": "The mean of feature {{ $labels.feature }} sent to "
                        f"{WHAT} over the last 10m is "
                        '{{ $value | printf "%.2f" }} training standard deviations from the '
                        "training mean 5.84 (std 0.83); the threshold is 2.5 "
                        "(spec.monitoring.drift.threshold).",
                    },
                },
            ],
        },
    ]


def test_defaults() -> None:
    dep = deployment(monitoring={})
    exprs = {r["alert"]: r["expr"] for r in alerts(rule_groups(dep, [(4, BASELINE)]))}
    assert exprs["ModelwerkHighErrorRate"].endswith(" > 0.01")
    assert exprs["ModelwerkHighLatencyP99"].endswith(" > 0.5")
    assert exprs["ModelwerkDataDrift"].endswith(" / 0.83 > 3")


def test_every_served_version_gets_its_alerts() -> None:
    dep = deployment(canary={"version": 5})
    groups = rule_groups(dep, [(4, BASELINE), (5, None)])
    by_version: dict[str, list[str]] = {}
    for rule in alerts(groups):
        by_version.setdefault(rule["labels"]["version"], []).append(rule["alert"])
    serving = [
        "ModelwerkHighErrorRate",
        "ModelwerkHighLatencyP99",
        "ModelwerkNoTraffic",
        "ModelwerkServingPodsNotReady",
        "ModelwerkServingPodsNotReady",
    ]
    # No baseline for version 5: no drift rules, and no recording rule for it either.
    assert by_version == {"4": [*serving, "ModelwerkDataDrift"], "5": serving}
    records = [r for g in groups for r in g["rules"] if "record" in r]
    assert len(records) == 1
    assert 'version="4"' in records[0]["expr"]
    for rule in alerts(groups):
        assert f'version="{rule["labels"]["version"]}"' in rule["expr"] or (
            f'modelwerk_version="{rule["labels"]["version"]}"' in rule["expr"]
        )
        assert 'namespace="ml-team"' in rule["expr"]
        assert 'modelwerk_deployment="iris"' in rule["expr"]


def test_no_baseline_no_drift_group() -> None:
    assert [g["name"] for g in rule_groups(deployment(), [(4, None)])] == ["modelwerk.iris.serving"]
    assert [g["name"] for g in rule_groups(deployment(), [(4, {"features": {}})])] == [
        "modelwerk.iris.serving"
    ]


def test_nothing_served_no_groups() -> None:
    assert rule_groups(deployment(), []) == []
    assert build_prometheus_rule(deployment(), BODY, [])["spec"] == {"groups": []}


@pytest.mark.parametrize(
    ("spec", "critical"),
    [
        ({"replicas": 2}, True),
        ({"replicas": 0}, False),
        ({"replicas": 0, "autoscaling": {"minReplicas": 1, "maxReplicas": 3}}, True),
    ],
)
def test_no_ready_pod_is_critical_only_when_pods_are_expected(
    spec: dict[str, Any], critical: bool
) -> None:
    severities = [
        r["labels"]["severity"]
        for r in alerts(rule_groups(deployment(**spec), [(4, None)]))
        if r["alert"] == "ModelwerkServingPodsNotReady"
    ]
    assert severities == (["warning", "critical"] if critical else ["warning"])


def test_drift_features_skips_constant_and_malformed() -> None:
    usable, skipped = drift_features(
        {
            "features": {
                "a": {"mean": 1, "std": 2},
                "constant": {"mean": 1.0, "std": 0.0},
                "negative_std": {"mean": 1.0, "std": -1.0},
                "nan": {"mean": float("nan"), "std": 1.0},
                "missing": {"mean": 1.0},
                "bool": {"mean": True, "std": 1.0},
            }
        }
    )
    assert usable == {"a": (1.0, 2.0)}
    assert set(skipped) == {"constant", "negative_std", "nan", "missing", "bool"}
    assert "std is 0 (0: constant in training)" in skipped["constant"]
    assert drift_features(None) == ({}, {})


def test_drift_rules_per_feature_with_odd_names() -> None:
    odd = 'we"ird\\ {{x}}'
    baseline = {"features": {odd: {"mean": -1.5, "std": 1e-3}, "b": {"mean": 0, "std": 1}}}
    drift = [
        r
        for r in alerts(rule_groups(deployment(), [(4, baseline)]))
        if r["alert"] == "ModelwerkDataDrift"
    ]
    # Labels are Go templates to Prometheus: the braces are printed, not run.
    assert [r["labels"]["feature"] for r in drift] == ['we"ird\\ {{ "{{" }}x{{ "}}" }}', "b"]
    assert 'feature="we\\"ird\\\\ {{x}}"' in drift[0]["expr"]
    assert drift[0]["expr"].endswith(" - (-1.5)) / 0.001 > 2.5")
    assert drift[1]["expr"].endswith(" - 0) / 1 > 2.5")


def test_drift_window_and_for() -> None:
    """spec.monitoring.drift.window is the live mean's rate window (and names the recording
    rule), drift.for the alert's `for`; the other alerts keep theirs."""
    dep = deployment(monitoring={"drift": {"threshold": 3, "window": "15s", "for": "0s"}})
    groups = rule_groups(dep, [(4, BASELINE)])
    record, alert = next(g for g in groups if g["name"] == "modelwerk.iris.drift")["rules"]
    assert record["record"] == "modelwerk:feature_value_mean:rate15s"
    assert record["expr"].count("[15s]") == 5
    assert "[10m]" not in record["expr"]
    assert alert["expr"].startswith("abs(modelwerk:feature_value_mean:rate15s{")
    assert alert["for"] == "0s"
    assert "over the last 15s is" in alert["annotations"]["description"]
    assert {r["for"] for r in alerts(groups) if r["alert"] != "ModelwerkDataDrift"} == {
        "5m",
        "15m",
    }
    # The defaults: the names and values the golden dicts above spell out.
    assert rules.feature_mean_record(rules.DRIFT_WINDOW) == rules.FEATURE_MEAN_RECORD
    default = deployment(monitoring={"drift": {}})
    assert (rules.drift_window(default), rules.drift_for(default)) == ("10m", "5m")
    no_drift = deployment(monitoring={})
    assert (rules.drift_window(no_drift), rules.drift_for(no_drift)) == ("10m", "5m")


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"window": "0s"}, "longer than 0s"),
        ({"window": "1.5m"}, "should match pattern"),
        ({"for": "100us"}, "should match pattern"),
        ({"for": "5m1h"}, "should match pattern"),
    ],
)
def test_drift_durations_are_prometheus_durations(bad: dict[str, str], match: str) -> None:
    """Prometheus reads neither fractions nor `us`, and a rate window of 0 is no window."""
    with pytest.raises(ValueError, match=match):
        deployment(monitoring={"drift": bad})


def test_promql_helpers() -> None:
    assert promql_string('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'
    assert number(0.1 / 100) == "0.001"
    assert number(250 / 1000) == "0.25"
    assert number(-2.0) == "(-2)"
    assert number(-0.0) == "0"
    assert number(3.0) == "3"
    assert template_literal("a {{b}} c") == 'a {{ "{{" }}b{{ "}}" }} c'


def test_the_rules_read_the_series_the_model_server_exports() -> None:
    """The rules and the server share contract.py; the server really exports those names."""
    from modelwerk.serving.metrics import PrometheusMetrics

    server = PrometheusMetrics("iris", "4")
    server.set_info("sha256:" + "0" * 64)
    server.observe(contract.SERVER_ERROR, 0.1)
    exposed = server.exposition()[0].decode()
    for name in (contract.REQUESTS_TOTAL, contract.REQUEST_DURATION_BUCKET, contract.MODEL_INFO):
        assert f"\n{name}{{" in exposed, name
    assert f'outcome="{contract.SERVER_ERROR}"' in exposed
    text = yaml.safe_dump(rule_groups(deployment(), [(4, BASELINE)]))
    for name in (
        contract.REQUESTS_TOTAL,
        contract.REQUEST_DURATION_BUCKET,
        contract.MODEL_INFO,
        contract.FEATURE_COUNT_TOTAL,
        contract.FEATURE_POSITIVE_SUM_TOTAL,
        contract.FEATURE_NEGATIVE_SUM_TOTAL,
    ):
        assert name in text, name


# --- the operator's own rules ---------------------------------------------------------------


def test_operator_rule_groups() -> None:
    m = 'job=~".*modelwerk.*"'
    by = "by (namespace, job, kind)"
    [group] = build_operator_rule_groups()
    assert group["name"] == "modelwerk.operator"
    assert [(r["alert"], r["expr"], r["for"], r["labels"]) for r in group["rules"]] == [
        ("ModelwerkOperatorDown", f"absent(up{{{m}}} == 1)", "5m", {"severity": "critical"}),
        (
            "ModelwerkOperatorReconcileErrors",
            f'sum {by} (rate(modelwerk_reconcile_total{{{m},result="error"}}[10m]))'
            f" / sum {by} (rate(modelwerk_reconcile_total{{{m}}}[10m])) > 0.1",
            "10m",
            {"severity": "warning"},
        ),
        (
            "ModelwerkOperatorStuckReconciles",
            f"max {by} (modelwerk_workqueue_oldest_pending_seconds{{{m}}}) > 300",
            "5m",
            {"severity": "warning"},
        ),
    ]
    for rule in group["rules"]:
        assert set(rule["annotations"]) == {"summary", "description"}


def test_operator_rule_job_and_namespace() -> None:
    [group] = build_operator_rule_groups(job="modelwerk-operator", namespace="mw")
    for rule in group["rules"]:
        assert 'job=~"modelwerk-operator",namespace="mw"' in rule["expr"]
        assert rule["labels"]["namespace"] == "mw"


def test_operator_prometheus_rule() -> None:
    rule = build_operator_prometheus_rule(
        "modelwerk-system", {"release": "prometheus", "app.kubernetes.io/managed-by": "helm"}
    )
    assert rule["metadata"] == {
        "name": "modelwerk-operator",
        "namespace": "modelwerk-system",
        "labels": {
            "release": "prometheus",
            "app.kubernetes.io/managed-by": "modelwerk",
            "app.kubernetes.io/part-of": "modelwerk",
            "app.kubernetes.io/component": "operator-monitoring",
        },
    }
    assert rule["spec"]["groups"] == build_operator_rule_groups(namespace="modelwerk-system")
    unscoped = build_operator_prometheus_rule("modelwerk-system", match_namespace=False)
    assert unscoped["spec"]["groups"] == build_operator_rule_groups()


def test_operator_rules_yaml() -> None:
    text = operator_rules_yaml("modelwerk-system", {"release": "prometheus"})
    assert yaml.safe_load(text) == build_operator_prometheus_rule(
        "modelwerk-system", {"release": "prometheus"}
    )
    helm = operator_rules_yaml("modelwerk-system", helm=True)
    assert "{{`{{ $labels.kind }}`}}" in helm
    assert helm_escape("x {{ $value | humanizePercentage }} y") == (
        "x {{`{{ $value | humanizePercentage }}`}} y"
    )
