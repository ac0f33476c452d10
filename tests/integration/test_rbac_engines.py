"""Least privilege with the optional engines on (chart values jobSet.enabled=true and
kueue.enabled=true), measured as test_rbac.py measures the default install: the real operator
runs with the chart's ServiceAccount token (watchNamespaces mode) against the real JobSet and
Kueue controllers (tests/integration/engines.py, as test_jobset.py and test_kueue.py run them)
through every path that needs a JobSet or Workload verb, and the apiserver's audit log says that
each JobSet and Workload verb granted was used, and that nothing was used without a grant or
refused.

The rest of the grants is test_rbac.py's tour; the effective permissions with the engines on, in
both install modes, are test_rbac.test_effective_permissions_are_the_readmes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import other_operators_paused
from tests.integration.cluster import apply, get, kubectl, wait_for
from tests.integration.conftest import OperatorProcess
from tests.integration.engines import JobSetController, jobset_crds, running
from tests.integration.kueue import KueueController, kueue_crds
from tests.integration.test_helm import helm, install, service_account, token_kubeconfig
from tests.integration.test_kueue import KUEUE, cluster_queue
from tests.integration.test_rbac import (  # noqa: F401  (fixtures audit, namespaces)
    RELEASE,
    audit,
    namespaces,
    requests_of,
    used,
)
from tests.integration.trainingruns import (
    conditions_by_type,
    model_manifest,
    reference_report,
    run_manifest,
    wait_condition,
    wait_phase,
)
from tests.unit.test_chart import (
    EXPECTED_CRD_READ_NAMESPACED,
    EXPECTED_JOBSET,
    EXPECTED_KUEUE,
    EXPECTED_NAMESPACED,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600)]  # the first builds both

OPTIONAL = {**EXPECTED_JOBSET, **EXPECTED_KUEUE}


@pytest.fixture(scope="module")
def engines(kubeconfig: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The real JobSet controller, then the real Kueue controller (its jobset integration set
    up at once), their CRDs installed before the operator starts."""
    js_dir, kq_dir = tmp_path_factory.mktemp("jobset"), tmp_path_factory.mktemp("kueue")
    with (
        running(JobSetController, "jobset", jobset_crds(), kubeconfig, js_dir),
        running(KueueController, "kueue", kueue_crds(), kubeconfig, kq_dir),
    ):
        yield


@pytest.fixture
def queue(namespaces: list[str]) -> Iterator[str]:  # noqa: F811  (test_rbac's fixture)
    """A LocalQueue `team` in the watched namespace, of a ClusterQueue with one CPU."""
    ns = namespaces[1]
    flavor, cq = f"rf-{ns}", f"cq-{ns}"
    apply({"apiVersion": KUEUE, "kind": "ResourceFlavor", "metadata": {"name": flavor}})
    apply(cluster_queue(cq, flavor, "1"))
    local = {"apiVersion": KUEUE, "kind": "LocalQueue", "metadata": {"name": "team"}}
    apply({**local, "spec": {"clusterQueue": cq}}, ns)
    yield ns
    kubectl("delete", "clusterqueue", cq, "--wait=false", check=False)
    kubectl("delete", "resourceflavor", flavor, "--wait=false", check=False)


def foreign_jobset(name: str) -> dict[str, Any]:
    """A suspended JobSet that is not a run's, written with the fields the JobSet webhook
    would default (it is not registered here)."""
    pod = {
        "restartPolicy": "Never",
        "containers": [{"name": "c", "image": "registry.example.com/x"}],
    }
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {"name": name},
        "spec": {
            "suspend": True,
            "failurePolicy": {"maxRestarts": 0},
            "successPolicy": {"operator": "All", "targetReplicatedJobs": ["w"]},
            "startupPolicy": {"startupPolicyOrder": "AnyOrder"},
            "network": {"enableDNSHostnames": True, "publishNotReadyAddresses": True},
            "replicatedJobs": [
                {"name": "w", "replicas": 1, "template": {"spec": {"template": {"spec": pod}}}}
            ],
        },
    }


def gang(name: str, **spec: Any) -> dict[str, Any]:
    workers = {"replicas": 2, "engine": "jobSet"}
    return run_manifest(name, "iris", report=reference_report().text, workers=workers, **spec)


def _tour(ns: str) -> None:
    """Every JobSet and Workload verb, each waited for until it shows."""
    apply(model_manifest("iris"), ns)
    # jobsets list/watch, create: a run on a JobSet, created suspended; jobsets patch: its
    # suspend carried to the JobSet.
    apply(gang("js-held", suspend=True), ns)
    wait_for("js-held's JobSet", lambda: (get("jobset", "js-held", ns) or {}).get("spec"))
    kubectl("patch", "trainingrun", "js-held", "-n", ns, "--type=merge", "-p",
            json.dumps({"spec": {"suspend": False}}))  # fmt: skip
    wait_for(
        "the JobSet resumed",
        lambda: (get("jobset", "js-held", ns) or {})["spec"].get("suspend") is False,
    )
    # jobsets get: a JobSet of that name exists already, not the run's.
    apply(foreign_jobset("js-taken"), ns)
    apply(gang("js-taken"), ns)
    wait_condition("trainingrun", ns, "js-taken", "JobCreated", "False", "NameConflict")
    # workloads list/watch: a queued run, admitted; workloads patch: its spec.suspend is the
    # Workload's spec.active.
    resources = {"requests": {"cpu": "1"}, "limits": {"cpu": "1"}}
    queued = run_manifest(
        "q-paused",
        "iris",
        report=reference_report().text,
        sim={"DURATION": "60s"},
        queueName="team",
        resources=resources,
    )
    apply(queued, ns)
    wait_condition("trainingrun", ns, "q-paused", "Running", "True", timeout=120)
    kubectl("patch", "trainingrun", "q-paused", "-n", ns, "--type=merge", "-p",
            json.dumps({"spec": {"suspend": True}}))  # fmt: skip
    wait_condition("trainingrun", ns, "q-paused", "Running", "False", "Suspended", timeout=60)
    obj = wait_phase(ns, "js-held", "Succeeded", timeout=180)
    assert obj["status"]["workers"]["engine"] == "JobSet"
    assert conditions_by_type(obj)["Registered"]["status"] == "True"


@pytest.mark.usefixtures("engines")
def test_the_jobset_and_kueue_grants_are_used_and_nothing_ungranted(
    namespaces: list[str],  # noqa: F811  (test_rbac's fixture)
    queue: str,
    crds: None,
    audit: tuple[Path, int],  # noqa: F811  (test_rbac's fixture)
    tmp_path: Path,
) -> None:
    release_ns, ns = namespaces
    install(
        "install",
        release_ns,
        f"watchNamespaces={{{ns}}}",
        "jobSet.enabled=true",
        "kueue.enabled=true",
        extra=["--skip-crds"],
    )
    try:
        user = service_account(release_ns)
        config = token_kubeconfig(tmp_path / "kubeconfig", release_ns, user.rsplit(":", 1)[1])
        with other_operators_paused():
            # As the chart sets them with both values on.
            env = {"MODELWERK_JOBSET": "true", "MODELWERK_KUEUE": "true"}
            operator = OperatorProcess(str(config), tmp_path / "operator.log", "-n", ns, env=env)
            operator.start()
            try:
                _tour(ns)
            except AssertionError as err:
                raise AssertionError(f"{err}\noperator:\n{operator.log()[-3000:]}") from err
            finally:
                if operator.proc is not None:
                    operator.stop()
        events = requests_of(audit[0], audit[1], user)
    finally:
        helm("uninstall", RELEASE, "--namespace", release_ns, "--wait", check=False)

    exercised, refused = used(events)
    assert [r for r in refused if "namespaces" not in r] == []
    unused = {k: sorted(v - exercised.get(k, set())) for k, v in OPTIONAL.items()}
    assert {k: v for k, v in unused.items() if v} == {}, "granted but never used"
    granted = {**EXPECTED_NAMESPACED, **EXPECTED_CRD_READ_NAMESPACED, **OPTIONAL}
    ungranted = {
        k: sorted(v - granted.get(k, set()))
        for k, v in exercised.items()
        if k != ("", "namespaces")
    }
    assert {k: v for k, v in ungranted.items() if v} == {}, "used without a grant"
