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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import hold, http_json
from tests.integration.cluster import apply, get, get_list, kubectl, wait_for
from tests.integration.test_security import as_user, author_role, refused
from tests.integration.trainingruns import (
    conditions_by_type,
    metric_sum,
    pods_of,
    wait_condition,
    wait_phase,
)
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
from tests.node.test_serving import SAMPLES, _deployment
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
