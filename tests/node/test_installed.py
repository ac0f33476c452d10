"""The operator installed in the cluster by the real `helm` from helm/modelwerk, as the ONLY
operator process: its image built here runs on the real node under the chart's ServiceAccount
and RBAC (no admin credentials), its probes pass, its /metrics answers through its Service.
One install serves the whole module: cluster-wide first, then `helm upgrade` to
`watchNamespaces` (Roles instead of the ClusterRole).

Runs before the other files of tests/node (alphabetical order), whose local operator process
(the conftest's session fixture) starts only after this module uninstalled the chart.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import (
    Server,
    Traffic,
    alertmanager,
    hold,
    http_json,
    http_text,
    retrain_runs,
    triggers,
    write_token,
)
from tests.integration.cluster import apply, get, get_list, kubectl, wait_for
from tests.integration.test_security import as_user, author_role, refused
from tests.integration.trainingruns import (
    conditions_by_type,
    metric_sum,
    pods_of,
    wait_condition,
    wait_phase,
)
from tests.node import closed_loop as loop
from tests.node import monitoring
from tests.node.conftest import Image, RealNode
from tests.node.installed import (
    Installed,
    helm,
    kubeconfig,
    local_operators,
    operator_image,
    predict,
    real_node_namespace,
)
from tests.node.test_serving import DIRECT, SAMPLES, _deployment, _served_by
from tests.node.test_training import TRAIN, _model, _run


@pytest.fixture(scope="module")
def installed(real_node: RealNode, crds: None, images: dict[str, Image]) -> Iterator[Installed]:
    # Prometheus Operator's CRDs first: the operator then makes ServiceMonitors and rules.
    monitoring.install_crds()
    release = Installed(real_node_namespace("op"), operator_image())
    image_ids = set(real_node.ctr("images", "ls", "-q").split())
    assert release.operator.image_id in image_ids, "hack/images.sh import operator"
    release.install("install", images["model-server"])
    yield release
    helm("uninstall", "mw", "-n", release.namespace, "--wait", "--timeout", "120s")
    kubectl("delete", "namespace", release.namespace, "--timeout=120s", check=False, timeout=150)


def _lifecycle(namespace: str, models_claim: Path, images: dict[str, Image], run: str) -> None:
    """TrainingRun in the trainer image -> registered version 1 -> Deployment serving it on the
    real node -> predictions through its Service: all done by the chart's operator."""
    apply(_model(), namespace)
    apply(_run(run, images["trainer"], TRAIN), namespace)
    status = wait_phase(namespace, run, "Succeeded", timeout=300)["status"]
    assert status["modelVersion"] == 1
    model = get("model", "iris", namespace)
    assert model is not None
    (version,) = model["status"]["versions"]
    on_disk = models_claim / version["artifact"]["uri"].removeprefix("pvc://models/")
    files = [on_disk] if on_disk.is_file() else [p for p in on_disk.rglob("*") if p.is_file()]
    digests = {"sha256:" + hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    assert version["artifact"]["digest"] in digests
    apply(_deployment(1), namespace)

    def serving() -> dict[str, Any] | None:
        obj = get("deployments.modelwerk.io", "iris", namespace)
        status = (obj or {}).get("status") or {}
        return obj if status.get("phase") == "Available" and status.get("currentVersion") else None

    wait_for("version 1 served", serving, timeout=240)
    predictions = wait_for(
        "an answer through the ClusterIP", lambda: predict(namespace, "iris", SAMPLES)
    )
    assert len(predictions) == len(SAMPLES)
    assert predictions[0] != predictions[1], predictions  # setosa and virginica


def test_chart_operator_runs_on_the_node_probed_and_scraped(
    real_node: RealNode, installed: Installed
) -> None:
    pod = installed.wait_ready()
    assert pod["spec"]["nodeName"] == real_node.name
    assert pod["spec"]["serviceAccountName"] == installed.fullname
    (container,) = pod["spec"]["containers"]
    assert container["imagePullPolicy"] == "Never"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    (status,) = pod["status"]["containerStatuses"]
    assert status["imageID"] == installed.operator.image_id
    # Past the liveness probe's first checks with no restart: the kubelet probed and found it live.
    hold(
        "the operator restarted (liveness probe failed?)",
        lambda: (
            None
            if installed.wait_ready()["status"]["containerStatuses"][0]["restartCount"] == 0
            else "restarted"
        ),
        seconds=25,
        interval=5,
    )
    text = installed.metrics()
    assert "modelwerk_reconcile_total" in text
    wait_for("the Lease held by the chart's pod", installed.leads, timeout=60)
    assert local_operators(kubeconfig()) == []


def test_cluster_wide_lifecycle_with_only_the_chart_operator(
    namespace: str, installed: Installed, models_claim: Path, images: dict[str, Image]
) -> None:
    assert local_operators(kubeconfig()) == []
    before = metric_sum(installed.metrics(), "modelwerk_model_versions_registered_total")
    _lifecycle(namespace, models_claim, images, "iris-1")
    after = metric_sum(installed.metrics(), "modelwerk_model_versions_registered_total")
    assert after == before + 1
    # Nothing was refused to the chart's ServiceAccount on the way.
    forbidden = metric_sum(installed.metrics(), "modelwerk_api_requests_total", code="403")
    assert forbidden == 0


def test_a_user_without_secret_rbac_gets_none_through_the_operator(
    namespace: str, installed: Installed, models_claim: Path, images: dict[str, Image]
) -> None:
    author_role(namespace)
    apply(_model(), namespace)
    user = "trainingrun-author"
    wait_for(
        "the author's Role in effect",
        lambda: kubectl("auth", "can-i", "create", "trainingruns.modelwerk.io", "-n", namespace,
                        f"--as={user}", check=False).strip() == "yes",
    )  # fmt: skip
    for who in (user, installed.service_account):
        for verb in ("get", "list", "watch"):
            answer = kubectl("auth", "can-i", verb, "secrets", "-n", namespace, f"--as={who}",
                             check=False)  # fmt: skip
            assert answer.strip() == "no", (who, verb)
    # A ServiceAccount's token only where the namespace's admin allowed it (not `default`).
    body = _run("as-default", images["trainer"], TRAIN)
    body["spec"]["serviceAccountName"] = "default"
    body["metadata"]["namespace"] = namespace
    assert not isinstance(as_user("apply", "-f", "-", input=json.dumps(body)), Exception)
    wait_condition(
        "trainingrun", namespace, "as-default", "JobCreated", "False", "ServiceAccountNotAllowed"
    )
    assert get("job.batch", "as-default", namespace) is None
    # Secret-bearing fields are not part of the API.
    bad = _run("bad", images["trainer"], TRAIN)
    bad["metadata"]["namespace"] = namespace
    bad["spec"]["volumes"] = [{"name": "s", "secret": {"secretName": "anything"}}]
    refused(
        as_user("apply", "--validate=strict", "-f", "-", input=json.dumps(bad)), "unknown field"
    )
    # The author's ordinary run trains on the node in a pod with no Secret and no token mounted.
    plain = _run("plain", images["trainer"], TRAIN)
    plain["metadata"]["namespace"] = namespace
    assert not isinstance(as_user("apply", "-f", "-", input=json.dumps(plain)), Exception)
    wait_phase(namespace, "plain", "Succeeded", timeout=300)
    (pod,) = pods_of(namespace, "plain")
    assert pod["spec"]["automountServiceAccountToken"] is False
    for volume in pod["spec"].get("volumes") or []:
        assert "secret" not in volume, volume
        assert "projected" not in volume, volume
    for c in pod["spec"]["containers"] + pod["spec"].get("initContainers", []):
        assert not any(
            m["mountPath"].startswith("/var/run/secrets") for m in c.get("volumeMounts") or []
        )
        assert not any(
            "valueFrom" in e and "secretKeyRef" in e["valueFrom"] for e in c.get("env") or []
        )


@pytest.fixture(scope="module")
def prometheus_operator(
    installed: Installed, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """The real Prometheus Operator watching the cluster, a `Prometheus` resource in its own
    namespace; yields that namespace and a work folder."""
    workdir = tmp_path_factory.mktemp("monitoring")
    namespace = real_node_namespace("mon")
    # Its StatefulSet's pods go to kwok nodes (this namespace is not opted in to the real node).
    kubectl("annotate", "namespace", namespace, "scheduler.alpha.kubernetes.io/node-selector-")
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce-")
    proc = monitoring.PrometheusOperator(monitoring.component_bin("prometheus-operator"), workdir)
    proc.start()
    token = monitoring.prometheus_access(namespace, workdir)
    apply(monitoring.prometheus_resource(namespace, token), namespace)
    yield namespace, workdir
    proc.stop()
    kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    kubectl("delete", "clusterrole,clusterrolebinding", f"{namespace}-prometheus", check=False)


def test_prometheus_scrapes_the_serving_pods_through_the_generated_config(
    real_node: RealNode,
    namespace: str,
    installed: Installed,
    models_claim: Path,
    images: dict[str, Image],
    prometheus_operator: tuple[str, Path],
) -> None:
    """No hand-written scrape config: the operator's ServiceMonitor, turned into Prometheus'
    configuration by the Prometheus Operator, is what finds the serving pods on the node."""
    mon, workdir = prometheus_operator
    _lifecycle(namespace, models_claim, images, "iris-m")
    (monitor,) = get_list("servicemonitors.monitoring.coreos.com", namespace)
    job = f"serviceMonitor/{namespace}/{monitor['metadata']['name']}/"
    config = monitoring.wait_config_has(mon, job)
    wait_for(
        "the generated rules in a ConfigMap",
        lambda: any(
            namespace in key
            for cm in get_list("configmaps", mon, f"prometheus-name={monitoring.NAME}")
            for key in (cm.get("data") or {})
        ),
        timeout=60,
    )
    prom, port = monitoring.prometheus(config, mon, workdir)
    prom.start()
    try:
        base = f"http://127.0.0.1:{port}/api/v1"
        for _ in range(5):
            predict(namespace, "iris", SAMPLES)
        pods = get_list("pods", namespace, "modelwerk.io/deployment=iris")
        ips = {p["status"]["podIP"] for p in pods if p["spec"]["nodeName"] == real_node.name}
        assert ips, pods
        selector = (
            f'namespace="{namespace}",modelwerk_deployment="iris",'
            'modelwerk_version="1",modelwerk_ready="true"'
        )
        query = f"modelwerk_feature_value_count_total{{{selector}}}"

        def series() -> list[Any] | None:
            found = http_json(f"{base}/query", params={"query": query})["data"]["result"]
            return found or None

        def scraped() -> list[Any] | None:
            targets = http_json(f"{base}/targets")["data"]["activeTargets"]
            ours = [t for t in targets if t["scrapePool"].startswith(job)]
            return ours if ours and all(t["health"] == "up" for t in ours) else None

        def dropped() -> list[dict[str, str]]:
            data = http_json(f"{base}/targets", params={"state": "dropped"})["data"]
            return [
                {k: v for k, v in t["discoveredLabels"].items() if "service" in k or "port" in k}
                for t in data["droppedTargets"]
            ]

        try:
            wait_for("the serving pods scraped", scraped, timeout=120, interval=2)
        except AssertionError as err:
            raise AssertionError(f"{err}; dropped: {dropped()}") from None
        found = wait_for("the serving pods' series", series, timeout=60, interval=2)
        assert {s["metric"]["instance"].rsplit(":", 1)[0] for s in found} <= ips, found
        assert sum(float(s["value"][1]) for s in found) >= 5 * len(SAMPLES) * 4
        groups = http_json(f"{base}/rules")["data"]["groups"]
        assert any(namespace in g["file"] for g in groups), [g["file"] for g in groups]
    finally:
        prom.stop()


def test_drift_retrains_on_new_data_and_the_canary_promotes_it(
    real_node: RealNode,
    namespace: str,
    installed: Installed,
    models_claim: Path,
    images: dict[str, Image],
    prometheus_operator: tuple[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue #11's loop with nothing simulated: version 1 serves on the node; drifted traffic
    makes the generated drift rule fire in Prometheus; Alertmanager delivers it to the chart's
    operator with the chart's token; the retraining run trains in the trainer image on data that
    includes the drifted flowers and registers version 2; the sample's promotion policy moves
    `candidate` to it, and the Deployment's canary analysis, reading the real pods' series in
    Prometheus, promotes it."""
    mon, workdir = prometheus_operator
    workdir = workdir / "loop"
    workdir.mkdir()
    host = loop.node_address(real_node.name)
    prom_port = monitoring.free_port()
    token = secrets.token_urlsafe(32)
    token_file = workdir / "token"
    write_token(token_file, token)
    installed.install(
        "upgrade", images["model-server"], "webhook.enabled=true", f"webhook.token={token}",
        f"prometheus.url=http://{host}:{prom_port}",
    )  # fmt: skip
    timeline = loop.Timeline()
    servers: list[Server] = []
    traffic: Traffic | None = None
    try:
        # --- version 1 from the live dataset, served with a canary policy on `candidate` ----
        loop.write_dataset(models_claim, drifted=False)
        template = loop.training_spec(images["trainer"].ref, TRAIN)
        apply(loop.model(template), namespace)
        apply(loop.first_run(template), namespace)
        wait_phase(namespace, f"{loop.MODEL}-1", "Succeeded", timeout=300)
        apply(loop.deployment(), namespace)
        wait_for("version 1 served", lambda: loop.serving(namespace, 1), timeout=240)
        wait_condition("deployments.modelwerk.io", namespace, loop.DEPLOYMENT,
                       "CanaryAnalysis", "True", "SameAsStable")  # fmt: skip

        # --- Alertmanager, and Prometheus as the Prometheus Operator configures it ----------
        service = get("service", installed.fullname, installed.namespace)
        assert service is not None
        webhook = f"http://{service['spec']['clusterIP']}:8080/webhooks/alertmanager"
        am, am_port = alertmanager(
            workdir, webhook_url=webhook, token_file=token_file,
            group_by=["alertname", "namespace", "model"], listen=host,
        )  # fmt: skip
        servers.append(am)
        am.start()
        apply(loop.external_alertmanager(mon, host, am_port), mon)
        token_path = workdir.parent / "token"
        apply(loop.alerting(monitoring.prometheus_resource(mon, token_path), mon), mon)
        (monitor,) = get_list("servicemonitors.monitoring.coreos.com", namespace)
        config = monitoring.wait_config_has(
            mon, f"serviceMonitor/{namespace}/{monitor['metadata']['name']}/"
        )
        config = wait_for("alerting in the generated config",
                          lambda: (c if (c := monitoring.generated_config(mon)) and
                                   (c.get("alerting") or {}).get("alertmanagers") else None),
                          timeout=120)  # fmt: skip
        wait_for(
            "the drift rules in the rule ConfigMaps", lambda: loop.drift_rules_in(mon, namespace)
        )
        prom, _ = monitoring.prometheus(config, mon, workdir, listen=host, port=prom_port)
        servers.append(prom)
        prom.start()
        base = f"http://{host}:{prom_port}/api/v1"
        wait_for("Prometheus sending to the Alertmanager Service",
                 lambda: http_json(f"{base}/alertmanagers")["data"]["activeAlertmanagers"],
                 timeout=90)  # fmt: skip

        # --- traffic through the Service: in distribution, then drifted ----------------------
        traffic = Traffic(f"{loop.service(namespace)}/v1/models/{loop.MODEL}:predict",
                          loop.traffic_rows(), max_seconds=1200, max_requests=200_000,
                          opener=DIRECT)  # fmt: skip
        traffic.start()
        record = f'modelwerk:feature_value_mean:rate{loop.DRIFT_WINDOW}{{namespace="{namespace}"}}'
        wait_for("a live mean per feature in Prometheus",
                 lambda: len(http_json(f"{base}/query", params={"query": record})["data"][
                     "result"]) == len(loop.FEATURES), timeout=180, interval=2)  # fmt: skip
        assert loop.firing(base, namespace) == []
        assert retrain_runs(namespace, loop.MODEL) == []
        traffic.set_shift({loop.FEATURES.index(loop.SKEWED): loop.SKEW})
        timeline.add(loop.now(), f"traffic drifts: {loop.SKEWED} + {loop.SKEW}")
        loop.write_dataset(models_claim, drifted=True)  # the pipeline labels the new flowers
        firing = wait_for("the drift alert firing", lambda: loop.firing(base, namespace),
                          timeout=240, interval=2)  # fmt: skip
        assert [a["labels"]["feature"] for a in firing] == [loop.SKEWED]
        assert firing[0]["labels"]["version"] == "1"
        timeline.add(firing[0]["activeAt"], "drift alert active in Prometheus")

        # --- the retraining run: delivered, trained on the new data, registered -------------
        (run,) = wait_for("the retraining TrainingRun",
                          lambda: retrain_runs(namespace, loop.MODEL), timeout=120)  # fmt: skip
        name = run["metadata"]["name"]
        timeline.add(
            run["metadata"]["creationTimestamp"], f"TrainingRun {name} created by the webhook"
        )
        (trigger,) = [t for t in triggers(namespace, loop.MODEL) if t.get("trainingRun")]
        assert (trigger["alert"], trigger["trainingRun"]) == ("ModelwerkDataDrift", name)
        timeline.add(trigger["at"], "alert delivered by Alertmanager to the chart's webhook")
        delivered = http_text(f"http://{host}:{am_port}/metrics")
        assert metric_sum(delivered, "alertmanager_notifications_total", integration="webhook") >= 1
        failed = "alertmanager_notifications_failed_total"
        assert metric_sum(delivered, failed, integration="webhook") == 0
        done = wait_phase(namespace, name, "Succeeded", timeout=400)
        (pod,) = pods_of(namespace, name)
        assert pod["spec"]["nodeName"] == real_node.name
        assert pod["spec"]["containers"][0]["image"] == images["trainer"].ref
        v1, v2 = wait_for("version 2 registered", lambda: loop.versions(namespace, 2), timeout=60)
        timeline.add(v2["registeredAt"], f"version 2 registered (from {name})")
        assert v2["source"]["trainingRun"] == name
        assert v2["artifact"]["digest"] != v1["artifact"]["digest"]
        assert v2["metrics"] != v1["metrics"], (v1["metrics"], v2["metrics"])
        assert done["status"]["metrics"]["accuracy"] >= 0.9  # its gate
        # Trained on the drifted flowers too: half its data has petals SKEW longer, so its
        # training mean moved by about SKEW/2 (the 80 % training split takes either half
        # unevenly), where version 1's was the bundled flowers'.
        moved = (v2["baseline"]["features"][loop.SKEWED]["mean"]
                 - v1["baseline"]["features"][loop.SKEWED]["mean"])  # fmt: skip
        assert abs(moved - loop.SKEW / 2) < 1, moved

        # --- promotion: `candidate` moves, the canary analysis promotes it -------------------
        promoted = wait_for("the canary promoted", lambda: loop.promoted(namespace), timeout=420,
                            interval=2)  # fmt: skip
        model = get("model", loop.MODEL, namespace)
        assert model is not None
        assert model["status"]["aliases"]["candidate"] == 2
        assert [(p["version"], p["deployment"]) for p in model["status"]["canaryPromotions"]] == [
            (2, loop.DEPLOYMENT)
        ]
        canary = promoted["status"]["canary"]
        assert canary["errorRatePercent"] == 0
        assert 0 < canary["latencyP99Ms"] < 2000  # measured on the pods' real requests
        history = promoted["status"]["history"]
        started = [h for h in history if h["reason"] == "CanaryStarted" and h.get("canary") == 2]
        (done_at,) = [h for h in history if h["reason"] == "CanaryPromoted"]
        timeline.add(started[0]["at"], "canary version 2 started (candidate)")
        timeline.add(done_at["at"], "canary version 2 promoted by analysis")
        url = loop.service(namespace)
        wait_for("every answer from version 2",
                 lambda: {_served_by(url) for _ in range(20)} == {"2"}, timeout=180)  # fmt: skip
    finally:
        if traffic is not None:
            traffic.stop()
        for server in reversed(servers):
            server.stop()
        kubectl("delete", "service,endpoints", "alertmanager", "-n", mon, check=False)
    assert traffic.sent > 0
    assert not traffic.failures, traffic.failures[:5]
    with capsys.disabled():
        print("\n" + timeline.render())
    assert [what for _, what in sorted(timeline.marks)][-1].endswith("promoted by analysis")


def test_watch_namespaces_mode_serves_only_its_namespaces(
    namespace: str, installed: Installed, models_claim: Path, images: dict[str, Image]
) -> None:
    other = real_node_namespace("un")
    try:
        installed.install("upgrade", images["model-server"], f"watchNamespaces={{{namespace}}}")
        assert local_operators(kubeconfig()) == []
        sa = installed.service_account
        assert kubectl("auth", "can-i", "list", "trainingruns.modelwerk.io", "-A", f"--as={sa}",
                       check=False).strip() == "no"  # fmt: skip
        assert kubectl("auth", "can-i", "list", "trainingruns.modelwerk.io", "-n", namespace,
                       f"--as={sa}", check=False).strip() == "yes"  # fmt: skip
        wait_for("the Lease held by the upgraded pod", installed.leads, timeout=60)
        apply(_model(), other)
        apply(_run("ignored", images["trainer"], TRAIN), other)
        _lifecycle(namespace, models_claim, images, "iris-w")
        run = get("trainingrun", "ignored", other)
        assert run is not None
        assert not conditions_by_type(run), run.get("status")
        assert get("job.batch", "ignored", other) is None
    finally:
        kubectl("delete", "namespace", other, "--wait=false", check=False)
