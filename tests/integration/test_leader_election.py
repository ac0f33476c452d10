"""Two operator replicas with leader election against the real apiserver: one holds the Lease
and writes, the other keeps its caches warm, writes nothing and refuses webhook deliveries with
503; when the leader freezes (SIGSTOP) past the lease, the follower takes over and reconciles,
and the old leader, woken, finds the Lease taken and stops by itself."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import apply, condition, get, kubectl, wait_for
from tests.integration.conftest import OperatorProcess
from tests.integration.trainingruns import api_writes, metric_sum, model_manifest

pytestmark = pytest.mark.integration

LEASE = "modelwerk-ha-test"
# Short, in client-go's proportions, so the failover is quick to observe.
TIMING = {"MODELWERK_LEASE_DURATION": "6", "MODELWERK_RENEW_DEADLINE": "4"}
TOKEN = "ha-test-token"


@pytest.fixture
def own_namespace(kubeconfig: str, crds: None) -> Iterator[str]:
    """Outside the session operator's namespace pattern: only this test's replicas act here."""
    name = f"ha-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def scrape(proc: OperatorProcess) -> str | None:
    try:
        return proc.metrics()
    except OSError:
        return None


def leading(proc: OperatorProcess) -> bool:
    text = scrape(proc)
    return text is not None and metric_sum(text, "modelwerk_leader") == 1


def deliver(proc: OperatorProcess) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{proc.http_port}/webhooks/alertmanager",
        data=json.dumps({"version": "4", "alerts": []}).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def resolved(namespace: str, name: str) -> dict[str, Any] | None:
    body = get("models.modelwerk.io", name, namespace)
    ready = condition(body, "Ready")
    if body is None or ready is None or ready.get("reason") != "Resolved":
        return None
    return (
        body if body["status"].get("observedGeneration") == body["metadata"]["generation"] else None
    )


def test_one_leader_writes_and_a_frozen_leader_is_replaced_without_split_brain(
    kubeconfig: str, own_namespace: str, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    env = {**TIMING, "MODELWERK_RETRY_PERIOD": "1", "MODELWERK_WEBHOOK_TOKEN_FILE": str(token)}
    args = ("--namespace", own_namespace, "--leader-elect")
    args += ("--leader-election-namespace", own_namespace, "--leader-election-id", LEASE)
    replicas = [
        OperatorProcess(kubeconfig, tmp_path / f"replica-{i}.log", *args, env=env) for i in range(2)
    ]
    try:
        for proc in replicas:
            proc.start()
        wait_for("one replica leading", lambda: any(leading(p) for p in replicas), timeout=30)
        leader, follower = sorted(replicas, key=leading, reverse=True)
        assert not leading(follower)

        apply(model_manifest("first"), own_namespace)
        wait_for("Model first reconciled", lambda: resolved(own_namespace, "first"), timeout=30)
        # The follower saw it too (its cache is warm) but wrote nothing.
        follower_metrics = scrape(follower)
        assert follower_metrics is not None
        assert metric_sum(follower_metrics, "modelwerk_objects", kind="Model") >= 1
        assert api_writes(follower_metrics) == 0
        assert deliver(follower) == 503
        assert deliver(leader) == 200

        assert leader.proc is not None
        os.kill(leader.proc.pid, signal.SIGSTOP)
        frozen = time.monotonic()
        wait_for("the follower leading", lambda: leading(follower), timeout=30)
        takeover = time.monotonic() - frozen
        # No sooner than the lease allows (the frozen leader's renewal was at most a retry
        # period before), no later than lease + a few retries.
        assert 6 - 1.5 <= takeover <= 6 + 5, takeover
        apply(model_manifest("second"), own_namespace)
        wait_for("Model second reconciled", lambda: resolved(own_namespace, "second"), timeout=30)
        after = scrape(follower)
        assert after is not None
        assert api_writes(after) > 0

        lease = json.loads(kubectl("get", "lease", LEASE, "-n", own_namespace, "-o", "json"))[
            "spec"
        ]
        os.kill(leader.proc.pid, signal.SIGCONT)
        # Woken, the old leader finds the Lease taken and stops on its own, taking nothing back.
        code = leader.proc.wait(timeout=30)
        leader.proc = None
        log = leader.log()
        assert "lost the Lease" in log, log
        assert "Traceback" not in log, log
        assert code == 0, log
        now = json.loads(kubectl("get", "lease", LEASE, "-n", own_namespace, "-o", "json"))["spec"]
        assert now["holderIdentity"] == lease["holderIdentity"]
        assert now["leaseTransitions"] == lease["leaseTransitions"] == 1
        assert leading(follower)
    finally:
        for proc in replicas:
            if proc.proc is not None:
                os.kill(proc.proc.pid, signal.SIGCONT)
                proc.kill()
