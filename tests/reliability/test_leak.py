"""Leak: TrainingRuns created and deleted in batches (each run reconciled: its Job and pod
created, then all three deleted), CYCLES times in all (small in CI; 10,000 with --size large).
The operator's RSS after the last batch is gone stays within RSS_BOUND_MB of its RSS after the
first (warm-up) batch, and its caches hold nothing of them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.integration.cluster import apply, get_list, wait_for
from tests.integration.conftest import OperatorProcess
from tests.integration.trainingruns import metric_sum, model_manifest, run_manifest
from tests.reliability import figures
from tests.reliability.apiclient import Client

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

SCENARIO = "leak (create/delete)"
BATCH = 50
RSS_BOUND_MB = 16.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_create_delete_cycles_leave_the_operator_s_memory_flat(
    kubeconfig: str, own_namespace: str, tmp_path: Path
) -> None:
    ns = own_namespace
    cycles = figures.sized(200, 10_000)
    client = Client(kubeconfig)
    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log", "--namespace", ns)
    runs_path = f"/apis/modelwerk.io/v1alpha1/namespaces/{ns}/trainingruns"

    def gone() -> bool:
        """The batch's runs out of the operator's cache, their Jobs and pods out of the
        apiserver (the garbage collector's work; their deletions then reach the caches)."""
        runs = metric_sum(operator.metrics(), "modelwerk_objects", kind="TrainingRun")
        label = "modelwerk.io/trainingrun"
        return runs == 0 and not get_list("jobs", ns, label) and not get_list("pods", ns, label)

    def batch(index: int) -> None:
        names = [f"leak-{index}-{i}" for i in range(BATCH)]
        for name in names:
            # Long enough that every run is seen running, deleted before it ends.
            body = run_manifest(name, "iris", sim={"DURATION": "600s"})
            status, answer = client.request("POST", runs_path, json.dumps(body).encode())
            assert status == 201, answer

        def all_jobs() -> bool:
            return len(get_list("jobs", ns, "modelwerk.io/trainingrun")) == BATCH

        wait_for(f"batch {index}: {BATCH} Jobs", all_jobs, timeout=120, interval=0.5)
        for name in names:
            status, answer = client.request("DELETE", f"{runs_path}/{name}")
            assert status == 200, answer
        wait_for(f"batch {index}: all deleted", gone, timeout=120, interval=0.5)

    try:
        operator.start()
        apply(model_manifest("iris"), ns)
        assert operator.proc is not None
        pid = operator.proc.pid
        started = time.monotonic()
        batch(0)
        warm = rss_mb(pid)
        batches = max(2, cycles // BATCH)
        for index in range(1, batches):
            batch(index)
        took = time.monotonic() - started
        end = rss_mb(pid)
        log = operator.log()
    finally:
        operator.kill()
        client.close()

    done = batches * BATCH
    grown = end - warm
    figures.record(SCENARIO, "create/delete cycles (run + Job + pod each)", done)
    figures.record(
        SCENARIO, "operator RSS after warm-up / after the last", f"{warm:.0f} / {end:.0f} MB"
    )
    figures.record(
        SCENARIO,
        "RSS growth",
        f"{grown:+.1f} MB ({grown * 1024 / done:+.2f} KB/cycle)",
        f"≤ {RSS_BOUND_MB:g} MB",
    )
    figures.record(SCENARIO, "cycles per second", f"{done / took:.1f}")
    assert grown <= RSS_BOUND_MB, (warm, end)
    assert "Traceback" not in log, log[-5000:]
