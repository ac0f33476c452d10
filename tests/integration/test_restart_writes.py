"""No write without a change, counted by the operator's own request counters (its /metrics)
against the real apiserver: a converged monitored Deployment costs nothing across a restart, a
serving pod replaced costs only Deployment status writes, and a restart writes nothing with
runs Pending (unschedulable), Failed and Rejected, Deployments Degraded or waiting, and a Model
with a conflict.

Each test runs its own operator for its namespace (the session's is paused), so every request
counted is about this test's objects, and a restart starts the counters from zero."""

from __future__ import annotations

import time
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.cluster import apply, get, kubectl, wait_for
from tests.integration.conftest import OperatorProcess
from tests.integration.servers import (
    MWD,
    deployment_manifest,
    has_condition,
    model_with,
    pods_of,
    wait_available,
    wait_mwd,
)
from tests.integration.test_deployment import declared
from tests.integration.trainingruns import (
    WRITE_VERBS,
    metric_sum,
    model_manifest,
    reference_report,
    run_manifest,
    wait_condition,
    wait_phase,
)

pytestmark = pytest.mark.integration


def writes_by_resource(text: str) -> dict[str, float]:
    """The operator's API writes so far, as `verb resource` -> count."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "modelwerk_api_requests_total" and s.labels["verb"] in WRITE_VERBS:
                key = f"{s.labels['verb']} {s.labels['resource']}"
                out[key] = out.get(key, 0) + s.value
    return {k: v for k, v in out.items() if v}


def quiet(operator: OperatorProcess, *, reconciled: float = 1, window: float = 4.0) -> str:
    """The metrics once the operator has reconciled `reconciled` times, its queues are empty and
    it wrote nothing for `window` seconds."""
    state: dict[str, Any] = {}

    def probe() -> str | None:
        text = operator.metrics()
        writes = writes_by_resource(text)
        busy = metric_sum(text, "modelwerk_workqueue_depth") != 0
        done = metric_sum(text, "modelwerk_reconcile_total") >= reconciled
        now = time.monotonic()
        if busy or not done or writes != state.get("writes"):
            state.update(writes=writes, since=now)
            return None
        return text if now - state["since"] >= window else None

    return wait_for("the operator to be idle", probe, timeout=120)


def restart(proc: OperatorProcess, reconciled: float) -> dict[str, float]:
    """Stops and starts the operator; its writes until it has reconciled `reconciled` objects
    and is idle (its counters start at zero)."""
    proc.stop()
    proc.start()
    return writes_by_resource(quiet(proc, reconciled=reconciled))


def test_a_monitored_deployment_costs_no_writes_once_converged(
    namespace: str, operator_here: OperatorProcess
) -> None:
    model_with(namespace, declared(1))
    apply(
        deployment_manifest(
            "iris", "iris", version=1, runtime="native", replicas=2, pdb={"minAvailable": 1}
        ),
        namespace,
    )
    wait_available(namespace, "iris", version=1, ready=2)
    wait_mwd(
        namespace,
        "iris",
        "MonitoringReady=True",
        lambda o: has_condition(o, "MonitoringReady", "True"),
    )
    for kind in ("prometheusrule", "servicemonitor", "poddisruptionbudget", "service"):
        assert get(kind, "iris", namespace) is not None, kind
    before = writes_by_resource(quiet(operator_here, reconciled=2))

    # A serving pod replaced: readyReplicas goes down and up again, nothing else is written.
    victim = pods_of(namespace, "iris", 1)[0]["metadata"]["name"]
    kubectl("delete", "pod", victim, "-n", namespace, "--wait=false")
    wait_for(
        "the replacement pod",
        lambda: victim not in {p["metadata"]["name"] for p in pods_of(namespace, "iris", 1)},
    )
    wait_available(namespace, "iris", version=1, ready=2)
    after = writes_by_resource(quiet(operator_here, reconciled=2))
    added = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    assert set(added) <= {"patch deployments/status"}, added
    assert added.get("patch deployments/status", 0) <= 2, added
    obj = get(MWD, "iris", namespace)
    assert obj is not None
    assert obj["status"]["phase"] == "Available"

    assert restart(operator_here, reconciled=2) == {}


def test_a_restart_writes_nothing_in_any_state(
    namespace: str, operator_here: OperatorProcess
) -> None:
    report = reference_report().text
    # Runs: one whose pod cannot be scheduled (its Model's claim does not exist), one killed for
    # memory, one refused by the gate.
    apply(model_manifest("noclaim", storage_uri="pvc://models/iris"), namespace)
    apply(model_manifest("iris"), namespace)
    apply(run_manifest("stuck", "noclaim", report=report), namespace)
    apply(run_manifest("oom", "iris", sim={"EXIT_CODE": "137", "REASON": "OOMKilled"}), namespace)
    gate = {"metric": "accuracy", "threshold": 0.9999}
    apply(run_manifest("gated", "iris", report=report, evaluation=gate), namespace)
    # A Model with an alias naming no version; Deployments: one without a Model, one whose pods
    # cannot be scheduled (Ready=False), one serving on while asking for an alias not set.
    apply(model_manifest("conflict", aliases={"production": 7}), namespace)
    model_with(namespace, declared(1), name="served")
    model_with(namespace, declared(1, "pvc://models/iris/v1/model.joblib"), name="claimless")
    apply(deployment_manifest("orphan", "missing", version=1, runtime="native"), namespace)
    apply(deployment_manifest("waiting", "claimless", version=1, runtime="native"), namespace)
    apply(deployment_manifest("degraded", "served", version=1, runtime="native"), namespace)
    wait_available(namespace, "degraded", version=1, ready=1)
    apply(
        deployment_manifest("degraded", "served", alias="production", runtime="native"), namespace
    )

    wait_condition("trainingrun", namespace, "stuck", "Running", "False", "Unschedulable")
    wait_phase(namespace, "oom", "Failed")
    wait_phase(namespace, "gated", "Rejected")
    wait_condition("model", namespace, "conflict", "Ready", "False", "VersionConflict")
    wait_mwd(namespace, "orphan", "Pending", lambda o: o["status"].get("phase") == "Pending")
    wait_mwd(
        namespace,
        "waiting",
        "Ready=False, RollingOut",
        lambda o: has_condition(o, "Ready", "False", "RollingOut"),
    )
    wait_mwd(namespace, "degraded", "Degraded", lambda o: o["status"].get("phase") == "Degraded")
    quiet(operator_here, reconciled=9)

    objects = 3 + 4 + 3  # runs, Models, Deployments
    for attempt in range(2):
        assert restart(operator_here, reconciled=objects) == {}, f"restart {attempt + 1}"
