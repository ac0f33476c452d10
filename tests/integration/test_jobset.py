"""A distributed TrainingRun on a JobSet (spec.workers.engine) against the real control plane and
the real JobSet controller (tests/integration/engines.py: built from its pinned Go module on
first use, run as a local process); kwok plays the kubelets, the real Job controller runs the
JobSet's Indexed Job. The JobSet controller, not the operator, restarts the gang.

These tests run their own operator, started after the JobSet CRD is installed, on namespaces of
their own prefix: the session's operator keeps its namespaces (and its Indexed Jobs)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.cluster import apply, get, get_list, kubectl, wait_for
from tests.integration.conftest import OperatorProcess
from tests.integration.engines import JobSetController, jobset_crds, running
from tests.integration.trainingruns import (
    conditions_by_type,
    model_manifest,
    pods_of,
    reference_report,
    run_manifest,
    wait_phase,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600)]  # the first builds JobSet

WORKERS = 4
PREFIX = f"mwjs{uuid.uuid4().hex[:4]}-"
RESTART = "jobset.sigs.k8s.io/restart-attempt"
INDEX = "batch.kubernetes.io/job-completion-index"


@pytest.fixture(scope="module")
def jobset_controller(
    kubeconfig: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JobSetController]:
    workdir = tmp_path_factory.mktemp("jobset")
    with running(JobSetController, "jobset", jobset_crds(), kubeconfig, workdir) as proc:
        yield proc


@pytest.fixture(scope="module")
def jobset_operator(
    kubeconfig: str, crds: None, jobset_controller: JobSetController
) -> Iterator[OperatorProcess]:
    log = jobset_controller.workdir / "operator.log"
    proc = OperatorProcess(kubeconfig, log, "--namespace", f"{PREFIX}*")
    proc.start()
    yield proc
    if proc.proc is not None:
        proc.stop()


@pytest.fixture
def js_namespace(kubeconfig: str) -> Iterator[str]:
    name = f"{PREFIX}{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    kubectl(
        "label", "namespace", name,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )  # fmt: skip
    wait_for("default service account", lambda: get("serviceaccount", "default", name))
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def gang(name: str, **kwargs: Any) -> dict[str, Any]:
    workers = {"replicas": WORKERS, "engine": kwargs.pop("engine", "auto")}
    return run_manifest(name, "iris", report=reference_report().text, workers=workers, **kwargs)


def versions(namespace: str) -> list[dict[str, Any]]:
    obj = get("model", "iris", namespace) or {}
    return list((obj.get("status") or {}).get("versions") or [])


def test_four_workers_on_a_jobset_register_once(
    js_namespace: str, jobset_operator: OperatorProcess
) -> None:
    ns = js_namespace
    apply(model_manifest("iris"), ns)
    apply(gang("dist"), ns)  # auto: the CRD is installed
    obj = wait_phase(ns, "dist", "Succeeded", timeout=180)
    assert obj["status"]["workers"] == {"replicas": WORKERS, "attempt": 0, "engine": "JobSet"}
    assert [v["source"]["trainingRun"] for v in versions(ns)] == ["dist"]
    gang_lineage = {k: versions(ns)[0]["lineage"].get(k) for k in ("workers", "attempt", "engine")}
    assert gang_lineage == {"workers": WORKERS, "attempt": 0, "engine": "JobSet"}
    assert conditions_by_type(obj)["JobCreated"]["message"] == "JobSet dist"

    jobset = get("jobset", "dist", ns)
    assert jobset is not None
    assert jobset["spec"]["failurePolicy"]["maxRestarts"] == 0
    assert jobset["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    # No Job of the operator's own: the JobSet controller made the one Job.
    jobs = [j["metadata"]["name"] for j in get_list("job", ns)]
    assert jobs == ["dist-workers-0"]
    pods = pods_of(ns, "dist")
    assert sorted(p["metadata"]["labels"][INDEX] for p in pods) == ["0", "1", "2", "3"]
    for pod in pods:
        env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
        assert env["MASTER_ADDR"]["value"] == "dist-workers-0-0.dist"
        assert pod["spec"]["subdomain"] == "dist"
    service = get("service", "dist", ns)
    assert service is not None
    assert service["spec"]["clusterIP"] == "None"


def test_a_failed_worker_restarts_the_jobset_gang(
    js_namespace: str, jobset_operator: OperatorProcess
) -> None:
    ns = js_namespace
    apply(model_manifest("iris"), ns)
    sim = {"FAIL_WORKER": "2/0", "EXIT_CODE": "3", "DURATION": "2s"}
    apply(gang("flaky", engine="jobSet", backoff_limit=2, sim=sim), ns)
    obj = wait_phase(ns, "flaky", "Succeeded", timeout=240)
    assert obj["status"]["workers"] == {"replicas": WORKERS, "attempt": 1, "engine": "JobSet"}
    assert (get("jobset", "flaky", ns) or {})["status"]["restarts"] == 1
    assert [v["source"]["trainingRun"] for v in versions(ns)] == ["flaky"]
    assert versions(ns)[0]["lineage"]["attempt"] == 1
    assert versions(ns)[0]["lineage"]["engine"] == "JobSet"
    # The report counted is worker 0's of the attempt that succeeded.
    pods = pods_of(ns, "flaky")
    assert {p["metadata"]["labels"][RESTART] for p in pods} == {"1"}


def test_budget_exhausted_fails_with_the_workers_reason(
    js_namespace: str, jobset_operator: OperatorProcess
) -> None:
    ns = js_namespace
    apply(model_manifest("iris"), ns)
    sim = {"FAIL_WORKER": "3/0", "EXIT_CODE": "137", "REASON": "OOMKilled"}
    apply(gang("doomed", engine="jobSet", backoff_limit=0, sim=sim), ns)
    obj = wait_phase(ns, "doomed", "Failed", timeout=180)
    failed = conditions_by_type(obj)["Failed"]
    assert failed["reason"] == "OOMKilled", failed
    assert "worker 3" in failed["message"], failed
    assert versions(ns) == []
