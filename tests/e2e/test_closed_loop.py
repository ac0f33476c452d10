"""The closed loop end to end, with real servers on the loopback interface:

    reference trainer -> artifact + report -> TrainingRun (kwok replays the report) -> version 1
    Deployment -> the operator's PrometheusRule, read back from the cluster -> Prometheus' rules
    model server (a local process serving version 1's artifact) <- traffic
    Prometheus (scrapes it, evaluates the rules) -> Alertmanager -> the operator's webhook
    -> exactly one retraining TrainingRun -> version 2

The serving pods in the cluster are kwok simulations, so the model server runs here, and
Prometheus' static scrape config adds the target labels that the ServiceMonitor's relabelings
add in a real cluster (namespace, modelwerk_deployment, modelwerk_version, modelwerk_ready).

Needs the Debian packages `prometheus` and `prometheus-alertmanager` (hack/bootstrap.sh), or
PROMETHEUS / ALERTMANAGER naming the binaries.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import (
    DRIFT_ALERT,
    LOOPBACK,
    LocalTraining,
    Server,
    Traffic,
    alertmanager,
    all_runs,
    hold,
    http_json,
    http_text,
    model_server,
    prometheus,
    retrain_model,
    retrain_runs,
    retrain_template,
    train_locally,
    triggers,
    webhook_operator,
    write_token,
)
from tests.integration.cluster import apply, get, wait_for
from tests.integration.trainingruns import metric_sum, run_manifest, wait_condition, wait_phase

pytestmark = pytest.mark.integration

MODEL = "iris"
DEPLOYMENT = "iris-live"
VERSION = 1
THRESHOLD = 3
WINDOW = "15s"
WINDOW_SECONDS = 15
RECORD = f"modelwerk:feature_value_mean:rate{WINDOW}"
SKEWED = "petal_length_cm"
SKEW = 10.0  # 5.7 training standard deviations
SECOND_SKEWED = "sepal_width_cm"
SECOND_SKEW = 5.0  # 11 training standard deviations


@pytest.fixture
def training(tmp_path: Path) -> LocalTraining:
    return train_locally(tmp_path / "training")


@pytest.fixture
def iris_rows() -> list[list[float]]:
    """sklearn's iris data, shuffled once: any stretch of the traffic is in distribution."""
    from sklearn.datasets import load_iris

    rows = [[float(x) for x in row] for row in load_iris().data]
    random.Random(7).shuffle(rows)
    return rows


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Every server a test starts goes in here; all are stopped at the end, newest first."""
    started: list[Server] = []
    try:
        yield started
    finally:
        errors = []
        for server in reversed(started):
            try:
                server.stop()
            except Exception as err:  # stop the others regardless
                errors.append(f"{server.name}: {err}")
        assert not errors, errors


def deployment_manifest() -> dict[str, Any]:
    return {
        "apiVersion": "modelwerk.io/v1alpha1",
        "kind": "Deployment",
        "metadata": {"name": DEPLOYMENT},
        "spec": {
            "model": MODEL,
            "version": VERSION,
            "runtime": "native",
            "replicas": 1,
            "monitoring": {
                "drift": {"threshold": THRESHOLD, "window": WINDOW, "for": "0s"},
            },
        },
    }


def drift_alerts(prometheus_url: str, namespace: str) -> list[dict[str, Any]]:
    """ModelwerkDataDrift alerts of our Deployment in Prometheus, pending or firing."""
    alerts = http_json(f"{prometheus_url}/api/v1/alerts")["data"]["alerts"]
    return [
        a
        for a in alerts
        if a["labels"].get("alertname") == DRIFT_ALERT
        and a["labels"].get("namespace") == namespace
        and a["labels"].get("modelwerk_deployment") == DEPLOYMENT
    ]


def live_means(prometheus_url: str, namespace: str) -> dict[str, float]:
    """The recording rule's current value per feature."""
    query = f'{RECORD}{{namespace="{namespace}",modelwerk_deployment="{DEPLOYMENT}"}}'
    result = http_json(f"{prometheus_url}/api/v1/query", params={"query": query})["data"]["result"]
    return {r["metric"]["feature"]: float(r["value"][1]) for r in result}


def test_drift_retrains_the_model(
    kubeconfig: str,
    crds: None,
    upstream_crds: Path,
    namespace: str,
    tmp_path: Path,
    training: LocalTraining,
    iris_rows: list[list[float]],
    servers: list[Server],
) -> None:
    token_file = tmp_path / "webhook-token"
    write_token(token_file)
    features = training.feature_names
    assert SKEWED in features
    assert SECOND_SKEWED in features
    log = tmp_path / "operator.log"

    with webhook_operator(kubeconfig, log, token_file, namespace) as operator:
        # --- version 1: the real artifact and baseline, registered by a TrainingRun ---------
        template = retrain_template(training.report)
        apply(retrain_model(MODEL, template, cooldown="1h", max_concurrent=1), namespace)
        apply(run_manifest("iris-1", MODEL, report=training.report.text), namespace)
        wait_phase(namespace, "iris-1", "Succeeded")
        [version] = wait_for(
            "version 1 registered",
            lambda: ((get("model", MODEL, namespace) or {}).get("status") or {}).get("versions"),
        )
        assert version["version"] == VERSION
        assert version["artifact"] == {"uri": training.uri, "digest": training.digest}
        assert version["baseline"]["features"] == training.baseline
        # The columns' order, where the registry records it, is the trainer's (the server's).
        assert version["baseline"].get("featureOrder", features) == features

        # --- the Deployment and the PrometheusRule the operator generates for it ------------
        apply(deployment_manifest(), namespace)
        wait_condition("deployments.modelwerk.io", namespace, DEPLOYMENT, "MonitoringReady", "True")
        rule = wait_for(
            "the generated PrometheusRule with drift rules",
            lambda: (lambda r: r if r and len(r["spec"]["groups"]) == 2 else None)(
                get("prometheusrules.monitoring.coreos.com", DEPLOYMENT, namespace)
            ),
        )
        groups = rule["spec"]["groups"]
        drift_group = next(g for g in groups if g["name"].endswith(".drift"))
        assert drift_group["rules"][0]["record"] == RECORD
        drift_rules = drift_group["rules"][1:]
        assert sorted(r["labels"]["feature"] for r in drift_rules) == sorted(features)
        assert {r["for"] for r in drift_rules} == {"0s"}
        assert f"[{WINDOW}]" in drift_group["rules"][0]["expr"]
        # What the rules select on: exactly what the static scrape config below provides.
        selected = set()
        for group in groups:
            for r in group["rules"]:
                selected |= set(re.findall(r"(\w+)=\"", r["expr"]))
        target_labels = {
            "namespace": namespace,
            "modelwerk_deployment": DEPLOYMENT,
            "modelwerk_version": str(VERSION),
            "modelwerk_ready": "true",
        }
        server_labels = {"model", "version", "feature", "outcome"}
        assert selected <= set(target_labels) | server_labels, selected

        # --- the real servers -------------------------------------------------------------------
        server, server_port = model_server(tmp_path, training, model=MODEL, version=VERSION)
        servers.append(server)
        server.start(timeout=120)
        webhook_url = f"http://{LOOPBACK}:{operator.http_port}/webhooks/alertmanager"
        am, am_port = alertmanager(
            tmp_path,
            webhook_url=webhook_url,
            token_file=token_file,
            group_by=["alertname", "namespace", "model"],
        )
        servers.append(am)
        am.start()
        prom, prom_port = prometheus(
            tmp_path,
            rule_groups=groups,
            target=f"{LOOPBACK}:{server_port}",
            target_labels=target_labels,
            alertmanager_target=f"{LOOPBACK}:{am_port}",
        )
        servers.append(prom)
        prom.start()
        prom_url = f"http://{LOOPBACK}:{prom_port}"
        am_url = f"http://{LOOPBACK}:{am_port}"

        def rules_healthy() -> bool:
            loaded = http_json(f"{prom_url}/api/v1/rules")["data"]["groups"]
            names = {g["name"] for g in loaded}
            rules = [r for g in loaded for r in g["rules"]]
            return names == {g["name"] for g in groups} and all(
                r["health"] == "ok" and r.get("lastEvaluation", "").startswith("20") for r in rules
            )

        wait_for("Prometheus evaluating the generated rules", rules_healthy, timeout=60)
        wait_for(
            "Prometheus sending to Alertmanager",
            lambda: http_json(f"{prom_url}/api/v1/alertmanagers")["data"]["activeAlertmanagers"],
            timeout=30,
        )

        traffic = Traffic(f"http://{LOOPBACK}:{server_port}/v1/models/{MODEL}:predict", iris_rows)
        traffic.start()
        try:
            # --- in distribution: the rule is evaluated, nothing drifts -----------------------
            wait_for(
                "a live mean for every feature",
                lambda: set(live_means(prom_url, namespace)) == set(features),
                timeout=60,
            )

            def in_distribution() -> str | None:
                means = live_means(prom_url, namespace)
                for name, value in means.items():
                    stats = training.baseline[name]
                    if abs(value - stats["mean"]) / stats["std"] > 1:
                        return f"{name}: live mean {value} far from {stats}"
                if alerts := drift_alerts(prom_url, namespace):
                    return f"drift alert with in-distribution traffic: {alerts}"
                if runs := retrain_runs(namespace, MODEL):
                    return f"retraining without drift: {[r['metadata']['name'] for r in runs]}"
                return None

            # Longer than the window: the whole window is in-distribution traffic.
            checks = hold("in-distribution traffic", in_distribution, seconds=WINDOW_SECONDS + 5)
            assert checks >= 5
            drift_rule_states = {
                r["labels"]["feature"]: r["state"]
                for g in http_json(f"{prom_url}/api/v1/rules")["data"]["groups"]
                for r in g["rules"]
                if r.get("name") == DRIFT_ALERT
            }
            assert drift_rule_states == dict.fromkeys(features, "inactive")
            assert [r["metadata"]["name"] for r in all_runs(namespace)] == ["iris-1"]
            assert triggers(namespace, MODEL) == []

            # --- skewed: drift on one feature, one retraining run -----------------------------
            traffic.set_shift({features.index(SKEWED): SKEW})
            firing = wait_for(
                f"{DRIFT_ALERT} firing for {SKEWED}",
                lambda: [a for a in drift_alerts(prom_url, namespace) if a["state"] == "firing"],
                timeout=90,
            )
            assert [a["labels"]["feature"] for a in firing] == [SKEWED]
            labels = firing[0]["labels"]
            assert labels["model"] == MODEL
            assert labels["version"] == str(VERSION)
            assert float(firing[0]["value"]) > THRESHOLD

            [run] = wait_for(
                "the retraining TrainingRun",
                lambda: retrain_runs(namespace, MODEL),
                timeout=60,
            )
            run_name = run["metadata"]["name"]
            assert run["spec"]["model"] == MODEL
            recorded = wait_for(
                "the trigger in the Model's status",
                lambda: [t for t in triggers(namespace, MODEL) if t.get("trainingRun")],
            )
            assert len(recorded) == 1
            assert recorded[0]["alert"] == DRIFT_ALERT
            assert recorded[0]["trainingRun"] == run_name
            assert recorded[0]["reason"] == "Alert"
            am_alerts = http_json(f"{am_url}/api/v2/alerts")
            assert any(
                a["labels"].get("alertname") == DRIFT_ALERT
                and a["labels"].get("feature") == SKEWED
                and a["status"]["state"] == "active"
                for a in am_alerts
            ), am_alerts

            # --- a second feature drifts: the group is re-sent with both alerts ---------------
            # The first alert arrives again (a repeated delivery: no new run), the second is a
            # new trigger within the cooldown (recorded, skipped).
            traffic.set_shift(
                {features.index(SKEWED): SKEW, features.index(SECOND_SKEWED): SECOND_SKEW}
            )
            skipped = wait_for(
                "the second drift alert recorded as skipped",
                lambda: [t for t in triggers(namespace, MODEL) if not t.get("trainingRun")],
                timeout=90,
            )
            assert skipped[0]["alert"] == DRIFT_ALERT
            assert skipped[0]["message"].startswith("in cooldown (1h) since the run started at ")
            wait_for(
                "the repeated delivery of the first alert",
                lambda: "duplicate delivery: already handled" in operator.log(),
                timeout=30,
            )
            firing = {
                a["labels"]["feature"]
                for a in drift_alerts(prom_url, namespace)
                if a["state"] == "firing"
            }
            assert firing == {SKEWED, SECOND_SKEWED}
            metrics = http_text(f"{am_url}/metrics")
            assert (
                metric_sum(metrics, "alertmanager_notifications_total", integration="webhook") >= 2
            )
            assert (
                metric_sum(
                    metrics, "alertmanager_notifications_failed_total", integration="webhook"
                )
                == 0
            )
            assert [r["metadata"]["name"] for r in retrain_runs(namespace, MODEL)] == [run_name]
            assert sorted(r["metadata"]["name"] for r in all_runs(namespace)) == sorted(
                ["iris-1", run_name]
            )
        finally:
            traffic.stop()
        assert traffic.sent > 0
        assert not traffic.failures, traffic.failures[:5]

        # --- the loop closes: the retraining run registers version 2 -------------------------
        wait_phase(namespace, run_name, "Succeeded")
        versions = wait_for(
            "version 2 from the retraining run",
            lambda: (lambda vs: vs if len(vs) == 2 else None)(
                ((get("model", MODEL, namespace) or {}).get("status") or {}).get("versions") or []
            ),
        )
        assert versions[1]["version"] == 2
        assert versions[1]["source"]["trainingRun"] == run_name
        assert [r["metadata"]["name"] for r in retrain_runs(namespace, MODEL)] == [run_name]
