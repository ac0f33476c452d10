"""The operator as a process, as a user runs it: it answers its health endpoint, serves its
Prometheus metrics, reconciles a Model against the real apiserver, and stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.cluster import apply, condition, get, wait_for
from tests.integration.conftest import OperatorProcess

pytestmark = pytest.mark.integration


def model(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "modelwerk.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name},
        "spec": {"description": "integration test", "framework": "sklearn"},
    }


def reconciled(namespace: str, name: str) -> dict[str, Any] | None:
    """The Model once its status reflects its current generation with Ready=True/Resolved."""
    body = get("models.modelwerk.io", name, namespace)
    ready = condition(body, "Ready")
    if body is None or ready is None:
        return None
    status = body.get("status", {})
    generation = body["metadata"]["generation"]
    if status.get("observedGeneration") != generation:
        return None
    if (ready["status"], ready.get("reason")) != ("True", "Resolved"):
        return None
    return body


def reconcile_count(text: str, kind: str, result: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "modelwerk_reconcile_total"
                and sample.labels.get("kind") == kind
                and sample.labels.get("result") == result
            ):
                total += sample.value
    return total


def scrape(operator: OperatorProcess) -> str | None:
    try:
        return operator.metrics()
    except OSError:  # the metrics server starts a moment after the health endpoint
        return None


def test_operator_reports_healthy(operator: OperatorProcess) -> None:
    assert operator.healthy()
    assert operator.proc is not None
    assert operator.proc.poll() is None


def test_metrics_count_a_reconciled_model(operator: OperatorProcess, namespace: str) -> None:
    before = reconcile_count(wait_for("metrics endpoint", lambda: scrape(operator)), "Model", "ok")

    apply(model("iris"), namespace)
    body = wait_for(
        "Model iris Ready=True/Resolved at its generation",
        lambda: reconciled(namespace, "iris"),
        timeout=30,
    )
    ready = condition(body, "Ready")
    assert ready is not None
    assert ready["observedGeneration"] == body["metadata"]["generation"]
    assert body["status"]["phase"] == "Pending"  # an empty registry
    assert "latestVersion" not in body["status"]

    # A spec change bumps the generation; the operator catches up with it.
    edited = model("iris")
    edited["spec"]["description"] = "edited"
    apply(edited, namespace)
    body = wait_for(
        "Model iris reconciled at generation 2",
        lambda: (b := reconciled(namespace, "iris")) and b["metadata"]["generation"] >= 2 and b,
        timeout=30,
    )

    with urllib.request.urlopen(f"http://127.0.0.1:{operator.http_port}/metrics", timeout=5) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    assert "# TYPE modelwerk_reconcile_total counter" in text
    assert 'modelwerk_reconcile_total{kind="Model",result="ok"}' in text
    assert reconcile_count(text, "Model", "ok") >= before + 1
    # Gauges of the present: objects per phase (this Model is Pending: an empty registry) and
    # the age of the oldest unfinished reconcile, which the operator's own alert watches.
    pending = [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "modelwerk_objects" and s.labels == {"kind": "Model", "phase": "Pending"}
    ]
    assert pending
    assert pending[0] >= 1
    assert 'modelwerk_workqueue_oldest_pending_seconds{kind="Model"}' in text
    assert "Traceback" not in operator.log(), operator.log()


def test_sigterm_stops_cleanly(kubeconfig: str, crds: None, namespace: str, tmp_path: Path) -> None:
    # Its own process, watching only this test's namespace so it does not compete with the
    # session operator for other tests' objects.
    proc = OperatorProcess(kubeconfig, tmp_path / "operator.log", "--namespace", namespace)
    try:
        proc.start()
        # It does real work before the signal: reconciles a Model in its namespace.
        apply(model("sigterm"), namespace)
        wait_for("Model reconciled", lambda: reconciled(namespace, "sigterm"), timeout=30)
        # By this process, not only by the session operator that may also be running.
        wait_for(
            "a Model reconcile counted by this process",
            lambda: (text := scrape(proc)) and reconcile_count(text, "Model", "ok") >= 1,
            timeout=30,
        )

        started = time.monotonic()
        code = proc.stop(signal.SIGTERM, timeout=30)
        elapsed = time.monotonic() - started
    finally:
        proc.kill()
    log = proc.log()
    assert code == 0, f"exit code {code}; log:\n{log}"
    assert elapsed < 30
    assert "Traceback" not in log, log
    assert "[ERROR" not in log, log
    assert "SIGTERM" in log, log  # stopped by the signal handler, not killed
    # Its ports are released: nothing answers any more.
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{proc.health_port}/healthz", timeout=2)
