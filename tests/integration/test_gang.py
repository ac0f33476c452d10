"""A distributed TrainingRun (spec.workers.replicas = 4) against the real control plane: the
real Job controller runs the Indexed Job and its podFailurePolicy, kwok plays the kubelets.
Every worker carries the same KWOK_SIM_REPORT (they run the same code); the operator reads
worker 0's. KWOK_SIM_FAIL_WORKER makes one worker of one attempt fail (hack/kwok/stages.yaml).

There is no cluster DNS here: that the workers find each other through the headless Service is
not shown in this tier, only the hostnames, subdomain and Service that real clusters resolve."""

from __future__ import annotations

import json
import subprocess
import threading
from typing import Any

import pytest

from tests.integration.cluster import apply, get, kubectl
from tests.integration.conftest import OperatorProcess
from tests.integration.trainingruns import (
    conditions_by_type,
    model_manifest,
    pods_of,
    reference_report,
    run_manifest,
    wait_phase,
)

pytestmark = pytest.mark.integration

WORKERS = 4
ATTEMPT = "modelwerk.io/attempt"
INDEX = "batch.kubernetes.io/job-completion-index"


def gang(name: str, **kwargs: Any) -> dict[str, Any]:
    return run_manifest(
        name,
        "iris",
        report=reference_report().text,
        workers={"replicas": WORKERS, "engine": "indexedJob"},
        **kwargs,
    )


GANG_KEYS = ("workers", "attempt", "engine")


def versions(namespace: str) -> list[dict[str, Any]]:
    obj = get("model", "iris", namespace) or {}
    return list((obj.get("status") or {}).get("versions") or [])


class PodWatch:
    """Every watch event of a run's pods, from a `kubectl get -w` running beside the test: which
    pods were alive at once, which the polls of a test could miss."""

    def __init__(self, namespace: str, run: str) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._proc = subprocess.Popen(
            [
                "kubectl", "get", "pods", "-n", namespace, "-l",
                f"modelwerk.io/trainingrun={run}", "--watch", "--output-watch-events", "-o", "json",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        decoder, buffer = json.JSONDecoder(), ""
        for line in self._proc.stdout:
            buffer += line
            try:
                event, end = decoder.raw_decode(buffer.lstrip())
            except json.JSONDecodeError:
                continue
            buffer = buffer.lstrip()[end:]
            self.events.append((event["type"], event["object"]))

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=10)
        self._reader.join(timeout=10)

    def attempts_alive_at_once(self) -> set[frozenset[str]]:
        """The sets of attempts whose pods existed at the same moment, over the whole watch."""
        alive: dict[str, str] = {}
        seen: set[frozenset[str]] = set()
        for type_, pod in self.events:
            name = pod["metadata"]["name"]
            if type_ == "DELETED":
                alive.pop(name, None)
            else:
                alive[name] = pod["metadata"]["labels"].get(ATTEMPT, "?")
            if alive:
                seen.add(frozenset(alive.values()))
        return seen


def test_four_workers_register_once(namespace: str, operator: OperatorProcess) -> None:
    apply(model_manifest("iris"), namespace)
    apply(gang("dist"), namespace)
    obj = wait_phase(namespace, "dist", "Succeeded", timeout=120)
    assert obj["status"]["workers"] == {"replicas": WORKERS, "attempt": 0, "engine": "IndexedJob"}
    assert obj["status"]["reproducibility"]["workers"] == WORKERS
    assert [v["source"]["trainingRun"] for v in versions(namespace)] == ["dist"]
    gang_lineage = {k: versions(namespace)[0]["lineage"].get(k) for k in GANG_KEYS}
    assert gang_lineage == {"workers": WORKERS, "attempt": 0, "engine": "IndexedJob"}

    job = get("job", "dist", namespace)
    assert job is not None
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == WORKERS
    pods = pods_of(namespace, "dist")
    assert sorted(p["metadata"]["labels"][INDEX] for p in pods) == ["0", "1", "2", "3"]
    for pod in pods:
        index = pod["metadata"]["labels"][INDEX]
        # The Job controller's hostname plus our subdomain: `dist-<index>.dist`.
        assert pod["spec"]["hostname"] == f"dist-{index}"
        assert pod["spec"]["subdomain"] == "dist"
    service = get("service", "dist", namespace)
    assert service is not None
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    # Deleting the run takes the Service with it (owner reference).
    assert service["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]


def test_a_failed_worker_restarts_the_gang(namespace: str, operator: OperatorProcess) -> None:
    apply(model_manifest("iris"), namespace)
    watch = PodWatch(namespace, "flaky")
    try:
        apply(
            gang(
                "flaky",
                backoff_limit=2,
                sim={"FAIL_WORKER": "2/0", "EXIT_CODE": "3", "DURATION": "2s"},
            ),
            namespace,
        )
        obj = wait_phase(namespace, "flaky", "Succeeded", timeout=180)
    finally:
        watch.stop()
    assert obj["status"]["workers"] == {"replicas": WORKERS, "attempt": 1, "engine": "IndexedJob"}
    assert obj["status"]["reproducibility"]["attempt"] == 1
    assert [v["source"]["trainingRun"] for v in versions(namespace)] == ["flaky"]
    gang_lineage = {k: versions(namespace)[0]["lineage"].get(k) for k in GANG_KEYS}
    assert gang_lineage == {"workers": WORKERS, "attempt": 1, "engine": "IndexedJob"}
    job = get("job", "flaky", namespace)
    assert job is not None
    assert job["metadata"]["labels"][ATTEMPT] == "1"
    # All or nothing: attempt 0 had all four workers, and none of them was alive with attempt 1.
    created = {
        (o["metadata"]["labels"].get(ATTEMPT), o["metadata"]["name"]) for _, o in watch.events
    }
    assert len({n for a, n in created if a == "0"}) == WORKERS
    assert len({n for a, n in created if a == "1"}) == WORKERS
    assert frozenset({"0", "1"}) not in watch.attempts_alive_at_once()
    restarts = kubectl("get", "events", "-n", namespace, "--field-selector", "reason=Restarting")
    assert "worker 2" in restarts, restarts


def test_budget_exhausted_fails_with_the_workers_reason(
    namespace: str, operator: OperatorProcess
) -> None:
    apply(model_manifest("iris"), namespace)
    # No FAIL_WORKER: every worker of every attempt is OOM-killed.
    sim = {"EXIT_CODE": "137", "REASON": "OOMKilled"}
    apply(gang("doomed", backoff_limit=1, sim=sim), namespace)
    obj = wait_phase(namespace, "doomed", "Failed", timeout=180)
    assert obj["status"]["workers"] == {"replicas": WORKERS, "attempt": 1, "engine": "IndexedJob"}
    failed = conditions_by_type(obj)["Failed"]
    assert failed["reason"] == "OOMKilled", failed
    assert "137" in failed["message"], failed
    assert versions(namespace) == []
