"""Queued TrainingRuns (spec.queueName) against the real control plane and the real Kueue
controller manager (tests/integration/kueue.py: built from its pinned Go module on first use,
run as a local process, its webhooks not registered); kwok plays the kubelets, the real Job
controller runs the Jobs, and the real JobSet controller (tests/integration/engines.py) a
distributed run's JobSet. Kueue, not the operator, decides when a Job starts: a ClusterQueue of
one CPU admits one run of one CPU at a time.

These tests run their own operator, started after Kueue's CRDs are installed, on namespaces of
their own prefix (the session's operator keeps its namespaces)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.cluster import ROOT, apply, get, get_list, kubectl, wait_for
from tests.integration.conftest import OperatorProcess
from tests.integration.engines import JobSetController, jobset_crds, running
from tests.integration.kueue import KueueController, kueue_crds
from tests.integration.test_restart_writes import quiet, writes_by_resource
from tests.integration.trainingruns import (
    conditions_by_type,
    model_manifest,
    reference_report,
    run_manifest,
    wait_condition,
    wait_gone,
    wait_phase,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600)]  # the first builds Kueue

PREFIX = f"mwkq{uuid.uuid4().hex[:4]}-"
KUEUE = "kueue.x-k8s.io/v1beta2"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
SAMPLES = ROOT / "manifests" / "samples"


@pytest.fixture(scope="module")
def jobset_controller(
    kubeconfig: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JobSetController]:
    """The real JobSet controller, for a queued distributed run on a JobSet; its CRD installed
    before Kueue starts, so Kueue's jobset integration is set up at once."""
    workdir = tmp_path_factory.mktemp("jobset")
    with running(JobSetController, "jobset", jobset_crds(), kubeconfig, workdir) as proc:
        yield proc


@pytest.fixture(scope="module")
def kueue_controller(
    kubeconfig: str, tmp_path_factory: pytest.TempPathFactory, jobset_controller: JobSetController
) -> Iterator[KueueController]:
    workdir = tmp_path_factory.mktemp("kueue")
    with running(KueueController, "kueue", kueue_crds(), kubeconfig, workdir) as proc:
        yield proc


@pytest.fixture(scope="module")
def kueue_operator(
    kubeconfig: str, crds: None, kueue_controller: KueueController
) -> Iterator[OperatorProcess]:
    log = kueue_controller.workdir / "operator.log"
    proc = OperatorProcess(kubeconfig, log, "--namespace", f"{PREFIX}*")
    proc.start()
    yield proc
    if proc.proc is not None:
        proc.stop()


@pytest.fixture
def queue(kubeconfig: str, kueue_controller: KueueController) -> Iterator[tuple[str, str]]:
    """A restricted namespace with a LocalQueue `team` of a ClusterQueue with one CPU (of a
    flavor of its own): (namespace, ClusterQueue)."""
    ns = f"{PREFIX}{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", ns)
    kubectl(
        "label", "namespace", ns,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )  # fmt: skip
    wait_for("default service account", lambda: get("serviceaccount", "default", ns))
    flavor, cq = f"rf-{ns}", f"cq-{ns}"
    apply({"apiVersion": KUEUE, "kind": "ResourceFlavor", "metadata": {"name": flavor}})
    apply(cluster_queue(cq, flavor, "1"))
    apply(
        {
            "apiVersion": KUEUE,
            "kind": "LocalQueue",
            "metadata": {"name": "team"},
            "spec": {"clusterQueue": cq},
        },
        ns,
    )
    yield ns, cq
    kubectl("delete", "namespace", ns, "--wait=false", check=False)
    kubectl("delete", "clusterqueue", cq, "--wait=false", check=False)
    kubectl("delete", "resourceflavor", flavor, "--wait=false", check=False)


def cluster_queue(name: str, flavor: str, cpu: str) -> dict[str, Any]:
    return {
        "apiVersion": KUEUE,
        "kind": "ClusterQueue",
        "metadata": {"name": name},
        "spec": {
            "namespaceSelector": {},  # every namespace
            "resourceGroups": [
                {
                    "coveredResources": ["cpu"],
                    "flavors": [
                        {"name": flavor, "resources": [{"name": "cpu", "nominalQuota": cpu}]}
                    ],
                }
            ],
        },
    }


def queued(name: str, cpu: str = "1", workers: int = 1, **sim: str) -> dict[str, Any]:
    extra = {"workers": {"replicas": workers, "engine": "jobSet"}} if workers > 1 else {}
    return run_manifest(
        name,
        "iris",
        report=reference_report().text,
        sim=sim or None,
        queueName="team",
        resources={"requests": {"cpu": cpu}, "limits": {"cpu": cpu}},
        **extra,
    )


def versions(namespace: str) -> list[str]:
    obj = get("model", "iris", namespace) or {}
    return [v["source"]["trainingRun"] for v in (obj.get("status") or {}).get("versions") or []]


def workloads(namespace: str) -> list[dict[str, Any]]:
    return get_list("workloads.kueue.x-k8s.io", namespace)


def operator_log_tail(operator: OperatorProcess, kueue: KueueController) -> str:
    return f"operator:\n{operator.log()[-2000:]}\nkueue:\n{kueue.log()[-3000:]}"


def test_a_run_within_quota_is_admitted_trains_and_registers_once(
    queue: tuple[str, str], kueue_operator: OperatorProcess, kueue_controller: KueueController
) -> None:
    ns, cq = queue
    apply(model_manifest("iris"), ns)
    apply(queued("small"), ns)
    try:
        obj = wait_phase(ns, "small", "Succeeded", timeout=180)
    except AssertionError as err:
        logs = operator_log_tail(kueue_operator, kueue_controller)
        raise AssertionError(f"{err}\n{logs}") from err
    cond = conditions_by_type(obj)["Queued"]
    assert (cond["status"], cond["reason"]) == ("False", "Admitted"), cond
    assert cq in cond["message"]
    assert versions(ns) == ["small"]
    job = get("job", "small", ns)
    assert job is not None
    assert job["metadata"]["labels"][QUEUE_LABEL] == "team"
    assert job["spec"]["suspend"] is False  # Kueue unsuspended it, and it stayed so
    [wl] = workloads(ns)
    assert wl["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    # Converged: nothing more to write, for the run or Kueue's Workload.
    before = writes_by_resource(quiet(kueue_operator))
    assert not any("jobs" in k and k.startswith("patch") for k in before), before
    assert writes_by_resource(quiet(kueue_operator, window=6.0)) == before


def test_a_run_over_quota_stays_queued_with_kueues_message_until_quota_frees(
    queue: tuple[str, str], kueue_operator: OperatorProcess, kueue_controller: KueueController
) -> None:
    ns, _ = queue
    apply(model_manifest("iris"), ns)
    apply(queued("first", DURATION="600s"), ns)
    wait_condition("trainingrun", ns, "first", "Running", "True", timeout=120)
    apply(queued("second"), ns)
    try:
        obj = wait_condition("trainingrun", ns, "second", "Queued", "True", "Pending", timeout=90)
    except AssertionError as err:
        logs = operator_log_tail(kueue_operator, kueue_controller)
        raise AssertionError(f"{err}\n{logs}") from err
    cond = conditions_by_type(obj)["Queued"]
    assert "insufficient unused quota for cpu" in cond["message"], cond
    assert obj["status"]["phase"] == "Pending"
    job = get("job", "second", ns)
    assert job is not None
    assert job["spec"]["suspend"] is True
    assert get_list("pods", ns, "modelwerk.io/trainingrun=second") == []

    # The first run goes: its quota is freed, Kueue admits the second, which trains.
    kubectl("delete", "trainingrun", "first", "-n", ns, "--wait=false")
    obj = wait_phase(ns, "second", "Succeeded", timeout=180)
    assert conditions_by_type(obj)["Queued"]["reason"] == "Admitted"
    assert versions(ns) == ["second"]


def test_a_queued_jobset_is_admitted_as_one_workload_and_registers_once(
    queue: tuple[str, str], kueue_operator: OperatorProcess, kueue_controller: KueueController
) -> None:
    ns, _ = queue
    apply(model_manifest("iris"), ns)
    apply(queued("gang", cpu="500m", workers=2), ns)  # 2 x 500m: the ClusterQueue's one CPU
    try:
        obj = wait_phase(ns, "gang", "Succeeded", timeout=240)
    except AssertionError as err:
        logs = operator_log_tail(kueue_operator, kueue_controller)
        raise AssertionError(f"{err}\n{logs}") from err
    assert obj["status"]["workers"]["engine"] == "JobSet"
    assert conditions_by_type(obj)["Queued"]["reason"] == "Admitted"
    assert versions(ns) == ["gang"]
    jobset = get("jobset", "gang", ns)
    assert jobset is not None
    assert jobset["metadata"]["labels"][QUEUE_LABEL] == "team"
    [wl] = workloads(ns)  # the JobSet's: its child Job is not queued on its own
    assert wl["metadata"]["ownerReferences"][0]["uid"] == jobset["metadata"]["uid"]
    [child] = get_list("job", ns)
    assert QUEUE_LABEL not in child["metadata"]["labels"]


def test_spec_suspend_of_an_admitted_run_deactivates_its_workload_and_resumes(
    queue: tuple[str, str], kueue_operator: OperatorProcess, kueue_controller: KueueController
) -> None:
    ns, _ = queue
    apply(model_manifest("iris"), ns)
    apply(queued("paused", DURATION="20s"), ns)
    wait_condition("trainingrun", ns, "paused", "Running", "True", timeout=120)
    patch = json.dumps({"spec": {"suspend": True}})
    kubectl("patch", "trainingrun", "paused", "-n", ns, "--type=merge", "-p", patch)
    wait_condition("trainingrun", ns, "paused", "Running", "False", "Suspended", timeout=60)
    [wl] = workloads(ns)
    assert wl["spec"]["active"] is False
    # Kueue evicts the deactivated Workload and suspends the Job itself; it stays suspended.
    wait_for(
        "the Job suspended by Kueue",
        lambda: ((get("job", "paused", ns) or {}).get("spec") or {}).get("suspend") is True,
        timeout=60,
    )
    patch = json.dumps({"spec": {"suspend": False}})
    kubectl("patch", "trainingrun", "paused", "-n", ns, "--type=merge", "-p", patch)
    obj = wait_phase(ns, "paused", "Succeeded", timeout=180)
    assert conditions_by_type(obj)["Queued"]["reason"] == "Admitted"
    [wl] = workloads(ns)
    assert wl["spec"]["active"] is True
    assert versions(ns) == ["paused"]


def test_the_samples_kueue_objects_are_valid(
    queue: tuple[str, str], kueue_controller: KueueController
) -> None:
    ns, _ = queue
    out = kubectl("apply", "--dry-run=server", "-n", ns, "-f", str(SAMPLES / "kueue-queue.yaml"))
    assert out.count("(server dry run)") == 3, out


def test_deleting_a_queued_run_leaves_nothing_behind(
    queue: tuple[str, str], kueue_operator: OperatorProcess, kueue_controller: KueueController
) -> None:
    ns, _ = queue
    apply(model_manifest("iris"), ns)
    apply(queued("huge", cpu="2"), ns)  # more than the ClusterQueue has: never admitted
    obj = wait_condition("trainingrun", ns, "huge", "Queued", "True", "Pending", timeout=90)
    assert "insufficient quota for cpu" in conditions_by_type(obj)["Queued"]["message"]
    wait_for("its Workload", lambda: workloads(ns) or None, timeout=30)
    kubectl("delete", "trainingrun", "huge", "-n", ns)
    wait_gone("job", ns, "huge", timeout=60)
    wait_for("no Workload left", lambda: workloads(ns) == [], timeout=60)
    assert json.loads(kubectl("get", "pods", "-n", ns, "-o", "json"))["items"] == []
