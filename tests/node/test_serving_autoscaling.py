"""#17 item 5 on the real node: the HPAs the operator creates scale on real CPU. metrics-server
(its pinned Go module, tests/node/metrics_server.py) reads the model-server pods' CPU from the
real kubelet; kube-controller-manager's HPA controller reads it through the aggregated API.
Load through the Service makes each version's HPA add a replica of that version, and the
canary's share of requests stays within the README's bound once it has scaled.

(The kwok tier, tests/integration/test_autoscaling.py, checks what the operator writes into the
HPAs, version switches and zero writes; without metrics-server it cannot see CPU.) Named to
sort after test_installed.py, which must run before any file that starts the session operator.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import apply, get, get_list, wait_for
from tests.integration.conftest import OperatorProcess
from tests.node.conftest import Image, RealNode
from tests.node.metrics_server import metrics_server
from tests.node.test_serving import (
    _deployment,
    _model,
    _proxied_endpoints,
    _served_by,
    _service_url,
    _train_on_host,
    _version,
)

# minReplicas 2, maxReplicas 4 at a 50 % canary: each version's HPA gets 1..2 (builders/replicas).
# The target is low against the 50m CPU request so that this machine's load generator, sharing
# two cores with the server, is enough to pass it.
AUTOSCALING = {"minReplicas": 2, "maxReplicas": 4, "targetCPUUtilizationPercentage": 20}
PERCENT = 50


@pytest.fixture(scope="module")
def metrics_api(real_node: RealNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    node = get("node", real_node.name)
    assert node is not None
    (address,) = [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"]
    workdir = tmp_path_factory.mktemp("metrics-server")
    with metrics_server(real_node.kubeconfig, real_node.name, address, workdir):
        yield


def _ready_by_version(namespace: str) -> dict[str, set[str]]:
    ready: dict[str, set[str]] = {}
    for pod in get_list("pods", namespace, "modelwerk.io/deployment=iris"):
        statuses = pod["status"].get("containerStatuses") or []
        if (
            pod["metadata"].get("deletionTimestamp") is None
            and statuses
            and all(s["ready"] for s in statuses)
        ):
            version = pod["metadata"]["labels"]["modelwerk.io/model-version"]
            ready.setdefault(version, set()).add(pod["status"]["podIP"])
    return ready


def _hpas_measuring(namespace: str) -> dict[str, dict[str, Any]] | None:
    """The HPAs by target, once each reports a CPU utilisation it read from metrics-server."""
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in get_list("hpa", namespace)}
    for hpa in hpas.values():
        current = (hpa.get("status") or {}).get("currentMetrics") or []
        utilisations = [(m.get("resource") or {}).get("current", {}) for m in current]
        if not any(u.get("averageUtilization") is not None for u in utilisations):
            return None
    return hpas if len(hpas) == 2 else None


class Load:
    """Requests through the Service from threads, each on a new connection (kube-proxy picks
    an endpoint per connection, so every pod gets its share of the CPU)."""

    def __init__(self, url: str, threads: int = 6) -> None:
        self.url, self.stop, self.sent, self.errors = url, threading.Event(), 0, 0
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                _served_by(self.url)
                self.sent += 1
            except OSError:
                self.errors += 1  # a pod going away mid-request; counted, not fatal

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)


def test_load_through_the_service_scales_each_version_and_the_split_holds(
    real_node: RealNode,
    namespace: str,
    operator: OperatorProcess,
    models_claim: Path,
    images: dict[str, Image],
    metrics_api: None,
) -> None:
    started = time.monotonic()
    timeline: list[str] = []

    def mark(what: str) -> None:
        timeline.append(f"{time.monotonic() - started:6.1f} s  {what}")

    uris, digests = [], []
    for number, seed in ((1, 42), (2, 7)):
        artifact = _train_on_host(models_claim / "iris" / f"v{number}", seed=seed)
        uris.append(f"pvc://models/{artifact.relative_to(models_claim)}")
        digests.append("sha256:" + hashlib.sha256(artifact.read_bytes()).hexdigest())
    apply(_model([_version(n, uris[n - 1], digests[n - 1]) for n in (1, 2)]), namespace)
    manifest = _deployment(1, canary={"version": 2, "trafficPercent": PERCENT})
    del manifest["spec"]["replicas"]
    manifest["spec"]["autoscaling"] = AUTOSCALING
    apply(manifest, namespace)

    def counts() -> dict[str, int]:
        return {v: len(ips) for v, ips in _ready_by_version(namespace).items()}

    wait_for("1 ready pod of each version", lambda: counts() == {"1": 1, "2": 1}, timeout=300)
    mark(f"serving at the HPAs' minimum: {counts()}")
    hpas = wait_for("both HPAs reading CPU from metrics-server", lambda: _hpas_measuring(namespace),
                    timeout=180)  # fmt: skip
    assert {
        name: (h["spec"]["minReplicas"], h["spec"]["maxReplicas"]) for name, h in hpas.items()
    } == {
        "iris-v1": (1, 2),
        "iris-v2": (1, 2),
    }
    mark("both HPAs measuring: " + ", ".join(
        f"{n} {h['status']['currentMetrics'][0]['resource']['current']['averageUtilization']} %"
        for n, h in sorted(hpas.items())))  # fmt: skip
    url = _service_url(namespace)
    with Load(url) as load:
        wait_for("each version scaled to 2 ready pods", lambda: counts() == {"1": 2, "2": 2},
                 timeout=420, interval=2)  # fmt: skip
        mark(f"scaled under load: {counts()} after {load.sent} requests")
        for name in ("iris-v1", "iris-v2"):
            scaled = get("deployment", name, namespace)
            assert scaled is not None, name
            assert scaled["spec"]["replicas"] == 2, name
        pods = set().union(*_ready_by_version(namespace).values())
        wait_for("kube-proxy balancing over the 4 ready pods",
                 lambda: _proxied_endpoints(namespace, "iris") == pods, timeout=120)  # fmt: skip
        # Sampled while the load keeps the HPAs at their maximum.
        requests, served = 400, {"1": 0, "2": 0}
        for _ in range(requests):
            served[_served_by(url)] += 1
        mark(f"split under load: {served}; load sent {load.sent}, {load.errors} errors")
    print("\n" + "\n".join(timeline))
    share = 100 * served["2"] / requests
    # README: the replica split is within 50/replicas percentage points (4 ready pods here).
    assert abs(share - PERCENT) <= 50 / 4, served
