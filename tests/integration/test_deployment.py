"""The Deployment reconciler against the real control plane, with the operator as a process:
native serving (apps Deployments on kwok nodes behind one Service), the zero-downtime version
switch, unresolvable versions and aliases, changes that must not restart pods, a canary split by
replicas, and the Seldon runtime (explicit and `auto`) against Seldon's real CRD schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import apply, condition, get, get_list, kubectl, wait_for
from tests.integration.conftest import UPSTREAM_CRDS, OperatorProcess
from tests.integration.servers import (
    LABEL_DEPLOYMENT,
    LABEL_TRACK,
    MWD,
    Watch,
    apply_canary,
    available,
    declared,
    deployment_manifest,
    has_condition,
    model_with,
    own_operator,
    patch,
    pods_of,
    ready_replicas,
    reconciled,
    report_seldon_state,
    seldon_crd_lock,
    version_deployments,
    wait_available,
    wait_endpoints,
    wait_mwd,
    wait_pods,
)
from tests.integration.trainingruns import (
    model_manifest,
    reference_report,
    run_manifest,
    wait_phase,
)

pytestmark = pytest.mark.integration

SELDON_CRD = "seldondeployments.machinelearning.seldon.io"
SELDON_CRD_FILE = UPSTREAM_CRDS / "machinelearning.seldon.io_seldondeployments.yaml"


def _versions(namespace: str, model: str) -> list[dict[str, Any]]:
    obj = get("model", model, namespace) or {}
    versions: list[dict[str, Any]] = (obj.get("status") or {}).get("versions") or []
    return versions


def env_of(pod_or_template: dict[str, Any]) -> dict[str, str]:
    spec = pod_or_template["spec"]
    return {e["name"]: e.get("value", "") for e in spec["containers"][0].get("env") or []}


# --- 1. native serving of a version registered by a TrainingRun -----------------------------


def test_native_serves_a_version_registered_by_a_run(
    namespace: str, operator: OperatorProcess
) -> None:
    report = reference_report()
    apply(model_manifest("iris"), namespace)
    apply(run_manifest("iris-train", "iris", report=report.text), namespace)
    run = wait_phase(namespace, "iris-train", "Succeeded")
    assert run["status"]["modelVersion"] == 1
    run_image = run["status"]["reproducibility"]["image"]

    apply(deployment_manifest("iris", "iris", version=1, runtime="native", replicas=2), namespace)
    obj = wait_available(namespace, "iris", version=1, ready=2)

    # One apps Deployment for the version, owned by ours, with two Running pods on kwok nodes.
    children = version_deployments(namespace, "iris")
    assert list(children) == [1]
    v1 = children[1]
    assert v1["metadata"]["name"] == "iris-v1"
    owner = v1["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "Deployment",
        "iris",
        obj["metadata"]["uid"],
        True,
    )
    assert v1["spec"]["replicas"] == 2
    pods = wait_pods(namespace, "iris", 1, 2)
    for pod in pods:
        assert pod["spec"]["nodeName"].startswith("kwok-"), pod["spec"]["nodeName"]
        assert pod["status"]["phase"] == "Running"
        env = env_of(pod)
        # The registered artifact, verified by the server against the run's digest.
        assert env["MODELWERK_MODEL_URI"] == report.data["artifact"]["uri"]
        assert env["MODELWERK_MODEL_DIGEST"] == report.data["artifact"]["digest"]
        assert env["MODELWERK_MODEL_NAME"] == "iris"
        assert env["MODELWERK_MODEL_VERSION"] == "1"
        # In the model's column order (the report's), not the apiserver's sorted map keys:
        # per-feature metrics, and drift, depend on it.
        columns = list(report.data["baseline"]["features"])
        assert columns != sorted(columns)
        assert env["MODELWERK_FEATURE_NAMES"].split(",") == columns

    # The Service selects exactly those pods: its EndpointSlices list both pod IPs.
    service = get("service", "iris", namespace)
    assert service is not None
    assert service["spec"]["selector"] == {
        "app.kubernetes.io/component": "serving",
        LABEL_DEPLOYMENT: "iris",
    }
    assert service["spec"]["ports"][0]["port"] == 8000
    wait_endpoints(namespace, "iris", {p["status"]["podIP"] for p in pods})

    status = obj["status"]
    assert status["runtime"] == "native"
    assert status["endpoint"] == f"http://iris.{namespace}.svc:8000"
    assert (status["replicas"], status["readyReplicas"]) == (2, 2)
    assert status["lineage"]["trainingRun"] == "iris-train"
    assert status["lineage"]["image"] == run_image
    assert run_image.startswith(run["spec"]["image"] + "@sha256:")
    assert status["lineage"]["seed"] == run["spec"]["seed"]
    assert has_condition(obj, "Progressing", "False", "RolledOut")
    assert has_condition(obj, "Degraded", "False")

    # A version declared next to it (trained elsewhere) has no run: switching to it leaves
    # nothing of version 1's lineage behind.
    patch("model", namespace, "iris", {"spec": {"versions": [declared(2)]}})
    wait_for("version 2 declared", lambda: len(_versions(namespace, "iris")) == 2)
    patch(MWD, namespace, "iris", {"spec": {"version": 2}})
    obj = wait_available(namespace, "iris", version=2, ready=2)
    assert obj["status"]["lineage"] == {}


# --- 2. zero-downtime switch from version 1 to version 2 ------------------------------------


def test_version_switch_keeps_the_old_version_until_the_new_one_is_available(
    namespace: str, operator: OperatorProcess, models_claim: str
) -> None:
    # Version 2 lives on the claim: its pods mount it read-only and still get scheduled.
    model_with(namespace, declared(1), declared(2, f"pvc://{models_claim}/iris/2/model.joblib"))
    apply(deployment_manifest("iris", "iris", version=1, runtime="native", replicas=2), namespace)
    wait_available(namespace, "iris", version=1, ready=2)
    v1_pods = {p["metadata"]["uid"] for p in wait_pods(namespace, "iris", 1, 2)}

    with (
        Watch("deployments.apps", namespace, f"{LABEL_DEPLOYMENT}=iris") as apps,
        Watch(MWD, namespace) as ours,
    ):
        wait_for(
            "the watch to list iris-v1 with 2 ready",
            lambda: any(ready_replicas(s) == 2 for s in apps.states()),
        )
        wait_for("the watch to list the Deployment", ours.snapshot)
        patch(MWD, namespace, "iris", {"spec": {"version": 2}})
        obj = wait_available(namespace, "iris", version=2, ready=2)
        wait_for("iris-v1 deleted", lambda: list(version_deployments(namespace, "iris")) == [2])
        wait_for(
            "the watch to see iris-v1 deleted",
            lambda: any(e.type == "DELETED" for e in apps.snapshot()),
        )

    states = apps.states()
    # At no moment between the first listing and the end did fewer than 2 pods serve.
    assert min(ready_replicas(s) for s in states) >= 2, [
        {n: (d.get("status") or {}).get("readyReplicas") for n, d in s.items()} for s in states
    ]
    events = apps.snapshot()
    deleted = [i for i, e in enumerate(events) if e.type == "DELETED"]
    assert [events[i].object["metadata"]["name"] for i in deleted] == ["iris-v1"]
    # v2 was available (2 updated, available replicas) before v1 went.
    v2_available = [
        i
        for i, e in enumerate(events)
        if e.object["metadata"]["name"] == "iris-v2"
        and (e.object.get("status") or {}).get("availableReplicas") == 2
    ]
    assert v2_available
    assert v2_available[0] < deleted[0]
    # Both versions served side by side for a while.
    assert any(set(s) == {"iris-v1", "iris-v2"} for s in states)

    # Our Deployment said Ready all along: ServingPrevious while v2 came up.
    readiness = [
        (condition(e.object, "Ready") or {}) for e in ours.snapshot() if e.type != "DELETED"
    ]
    assert all(c.get("status") == "True" for c in readiness), readiness
    assert any(c.get("reason") == "ServingPrevious" for c in readiness), readiness

    assert obj["status"]["currentVersion"] == 2
    v2 = version_deployments(namespace, "iris")[2]
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in v2["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert claims == [models_claim]
    env = env_of(v2["spec"]["template"])
    assert env["MODELWERK_MODEL_URI"] == f"pvc://{models_claim}/iris/2/model.joblib"
    assert env["MODELWERK_FEATURE_NAMES"] == "sepal_length_cm,petal_length_cm"
    v2_pods = wait_pods(namespace, "iris", 2, 2)
    assert not v1_pods & {p["metadata"]["uid"] for p in v2_pods}
    wait_for("v1 pods gone", lambda: not pods_of(namespace, "iris", 1))
    wait_endpoints(namespace, "iris", {p["status"]["podIP"] for p in v2_pods})


# --- 3. unresolvable versions, aliases and Models -------------------------------------------


def test_unresolvable_version_alias_and_model(namespace: str, operator: OperatorProcess) -> None:
    model_with(namespace, declared(1))
    apply(deployment_manifest("iris", "iris", version=1, runtime="native", replicas=1), namespace)
    wait_available(namespace, "iris", version=1, ready=1)
    before = version_deployments(namespace, "iris")[1]

    patch(MWD, namespace, "iris", {"spec": {"version": 99}})
    obj = wait_mwd(
        namespace, "iris", "VersionNotFound", lambda o: has_condition(o, "Ready", "False")
    )
    ready = condition(obj, "Ready")
    assert ready is not None
    assert ready["reason"] == "VersionNotFound"
    assert "99" in ready["message"]
    assert has_condition(obj, "Degraded", "True", "VersionNotFound")
    assert obj["status"]["phase"] == "Degraded"
    assert obj["status"]["currentVersion"] == 1
    # The old version keeps serving, untouched.
    after = version_deployments(namespace, "iris")
    assert list(after) == [1]
    assert after[1]["metadata"]["uid"] == before["metadata"]["uid"]
    assert after[1]["metadata"]["generation"] == before["metadata"]["generation"]
    assert after[1]["status"]["readyReplicas"] == 1

    patch(MWD, namespace, "iris", {"spec": {"version": None, "alias": "production"}})
    obj = wait_mwd(
        namespace,
        "iris",
        "AliasNotSet",
        lambda o: has_condition(o, "Ready", "False", "AliasNotSet"),
    )
    assert "production" in (condition(obj, "Ready") or {})["message"]
    assert has_condition(obj, "Degraded", "True", "AliasNotSet")
    assert list(version_deployments(namespace, "iris")) == [1]

    # Once the alias exists the Deployment follows it, and is healthy again.
    patch("model", namespace, "iris", {"spec": {"aliases": {"production": 1}}})
    obj = wait_available(namespace, "iris", version=1, ready=1)
    assert has_condition(obj, "Degraded", "False")
    assert version_deployments(namespace, "iris")[1]["metadata"]["uid"] == before["metadata"]["uid"]

    # A Deployment of a Model that does not exist waits for it, serving nothing.
    apply(deployment_manifest("ghost", "no-such-model", version=1, runtime="native"), namespace)
    obj = wait_mwd(
        namespace, "ghost", "ModelNotFound", lambda o: has_condition(o, "Ready", "False")
    )
    assert (condition(obj, "Ready") or {})["reason"] == "ModelNotFound"
    assert obj["status"]["phase"] == "Pending"
    assert "currentVersion" not in obj["status"]
    assert version_deployments(namespace, "ghost") == {}


# --- 4. changes that must not restart serving pods ------------------------------------------


def _pod_identity(namespace: str) -> tuple[dict[str, Any], set[str], set[str]]:
    v1 = version_deployments(namespace, "iris")[1]
    replicasets = {
        rs["metadata"]["name"]
        for rs in get_list("replicasets.apps", namespace, f"{LABEL_DEPLOYMENT}=iris")
    }
    pods = {p["metadata"]["uid"] for p in pods_of(namespace, "iris", 1)}
    return v1, replicasets, pods


def test_unrelated_changes_do_not_restart_pods(
    namespace: str, operator: OperatorProcess, upstream_crds: Path
) -> None:
    model_with(namespace, declared(1))
    apply(
        deployment_manifest(
            "iris",
            "iris",
            version=1,
            runtime="native",
            replicas=2,
            monitoring={"labels": {"team": "a"}, "latencyP99Ms": 250},
        ),
        namespace,
    )
    wait_available(namespace, "iris", version=1, ready=2)
    wait_pods(namespace, "iris", 1, 2)
    wait_for(
        "ServiceMonitor labelled team=a",
        lambda: (
            ((get("servicemonitor", "iris", namespace) or {}).get("metadata") or {})
            .get("labels", {})
            .get("team")
            == "a"
        ),
    )
    before, replicasets, pods = _pod_identity(namespace)
    assert len(replicasets) == 1
    assert len(pods) == 2

    # Monitoring: the monitor and rules change, the version Deployment not at all.
    patch(
        MWD,
        namespace,
        "iris",
        {"spec": {"monitoring": {"labels": {"team": "b"}, "latencyP99Ms": 300}}},
    )
    wait_mwd(namespace, "iris", "reconciled", reconciled)
    wait_for(
        "ServiceMonitor relabelled team=b",
        lambda: (
            ((get("servicemonitor", "iris", namespace) or {}).get("metadata") or {})
            .get("labels", {})
            .get("team")
            == "b"
        ),
    )
    after, replicasets_after, pods_after = _pod_identity(namespace)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert (replicasets_after, pods_after) == (replicasets, pods)

    # Replicas: one more pod; the template, the ReplicaSet and the existing pods stay.
    patch(MWD, namespace, "iris", {"spec": {"replicas": 3}})
    wait_available(namespace, "iris", version=1, ready=3)
    wait_pods(namespace, "iris", 1, 3)
    after, replicasets_after, pods_after = _pod_identity(namespace)
    assert after["spec"]["replicas"] == 3
    assert after["spec"]["template"] == before["spec"]["template"]
    assert replicasets_after == replicasets
    assert pods < pods_after


# --- 5. a canary without analysis: traffic split by replicas --------------------------------


def test_canary_without_analysis_splits_replicas(namespace: str, operator: OperatorProcess) -> None:
    apply_canary(namespace, runtime="native", replicas=4, percent=50)
    obj = wait_available(namespace, "iris", version=1, ready=4)
    children = version_deployments(namespace, "iris")
    assert sorted(children) == [1, 2]
    assert children[1]["spec"]["replicas"] == 2
    assert children[2]["spec"]["replicas"] == 2
    assert children[1]["metadata"]["labels"][LABEL_TRACK] == "stable"
    assert children[2]["metadata"]["labels"][LABEL_TRACK] == "canary"
    canary = obj["status"]["canary"]
    assert (canary["version"], canary["trafficPercent"]) == (2, 50)
    assert canary["state"] == "Progressing"
    assert has_condition(obj, "CanaryAnalysis", "True", "NoAnalysis")
    assert obj["status"]["replicas"] == 4
    # The Service sends each version its share: 2 of the 4 ready pods are the canary's.
    pods = wait_pods(namespace, "iris", 1, 2) + wait_pods(namespace, "iris", 2, 2)
    wait_endpoints(namespace, "iris", {p["status"]["podIP"] for p in pods})

    # Without the canary, version 1 takes all the replicas and the canary's status goes.
    patch(MWD, namespace, "iris", {"spec": {"canary": None}})
    obj = wait_mwd(
        namespace,
        "iris",
        "no canary",
        lambda o: "canary" not in o["status"] and available(1, 4)(o),
    )
    assert condition(obj, "CanaryAnalysis") is None
    wait_for("v2 removed", lambda: list(version_deployments(namespace, "iris")) == [1])
    assert version_deployments(namespace, "iris")[1]["spec"]["replicas"] == 4


# --- 6. the Seldon runtime ------------------------------------------------------------------


def test_seldon_runtime_builds_one_seldondeployment(
    namespace: str, operator: OperatorProcess, seldon_crd: None
) -> None:
    apply_canary(namespace, runtime="seldon", replicas=4, percent=25)
    apply(deployment_manifest("auto", "iris", version=2, runtime="auto", replicas=1), namespace)

    def waiting(obj: dict[str, Any]) -> bool:
        return obj["status"].get("phase") == "Progressing" and has_condition(
            obj, "Progressing", "True", "WaitingForSeldon"
        )

    obj = wait_mwd(namespace, "iris", "waiting for Seldon", waiting)
    auto = wait_mwd(namespace, "auto", "waiting for Seldon", waiting)
    assert obj["status"]["runtime"] == "seldon"
    assert auto["status"]["runtime"] == "seldon"  # auto: the CRD is installed
    assert has_condition(obj, "Ready", "False", "WaitingForSeldon")
    assert "currentVersion" not in obj["status"]

    # Accepted by the apiserver against Seldon's own schema (unknown fields would be pruned):
    # the predictors arrive whole, with their traffic weights and the pod spec.
    sdep = get("seldondeployment", "iris", namespace)
    assert sdep is not None
    assert sdep["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    predictors = {p["name"]: p for p in sdep["spec"]["predictors"]}
    assert sorted(predictors) == ["v1", "v2"]
    assert (predictors["v1"]["traffic"], predictors["v2"]["traffic"]) == (75, 25)
    assert (predictors["v1"]["replicas"], predictors["v2"]["replicas"]) == (3, 1)
    for number, predictor in ((1, predictors["v1"]), (2, predictors["v2"])):
        assert predictor["annotations"] == {"seldon.io/no-engine": "true"}
        assert predictor["graph"]["name"] == "model"
        container = predictor["componentSpecs"][0]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["MODELWERK_MODEL_VERSION"] == str(number)
        assert env["MODELWERK_MODEL_DIGEST"] == declared(number)["artifact"]["digest"]
        assert container["securityContext"]["runAsNonRoot"] is True
        assert container["readinessProbe"]["httpGet"]["path"] == "/health/status"
    auto_sdep = get("seldondeployment", "auto", namespace)
    assert auto_sdep is not None
    assert [p["traffic"] for p in auto_sdep["spec"]["predictors"]] == [100]

    # No native children for either.
    assert get_list("deployments.apps", namespace, LABEL_DEPLOYMENT) == []
    assert get_list("services", namespace, LABEL_DEPLOYMENT) == []

    # Seldon's controller (absent here) would report the state; the Deployment follows it.
    report_seldon_state(namespace, "iris", "Available", replicas=4)
    obj = wait_available(namespace, "iris", version=1, ready=4)
    assert obj["status"]["canary"]["version"] == 2


@pytest.fixture
def seldon_crd(upstream_crds: Path) -> Iterator[None]:
    """The SeldonDeployment CRD, not deleted by another session's test while this one runs."""
    with seldon_crd_lock(exclusive=False):
        install_seldon_crd()
        yield


@pytest.fixture
def auto_operator(
    operator: OperatorProcess,
    kubeconfig: str,
    namespace: str,
    upstream_crds: Path,
    tmp_path: Path,
) -> Iterator[OperatorProcess]:
    """Without the SeldonDeployment CRD, an operator of this test's own (watching only its
    namespace, not caching CRD presence). The CRD is installed again afterwards.

    The CRD is cluster-scoped: deleting it also deletes every SeldonDeployment of the cluster,
    and concurrent sessions on the same cluster would see it vanish. The exclusive lock keeps
    this test apart from the tests of other sessions that take `seldon_crd`."""
    with seldon_crd_lock(exclusive=True):
        kubectl("delete", "crd", SELDON_CRD, "--wait=true", timeout=120)
        try:
            with own_operator(
                operator,
                kubeconfig,
                tmp_path / "operator.log",
                "--namespace",
                namespace,
                env={"MODELWERK_CRD_CACHE_SECONDS": "0"},
            ) as proc:
                yield proc
        finally:
            install_seldon_crd()


def install_seldon_crd() -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(SELDON_CRD_FILE), timeout=120)
    wait_for(
        "the SeldonDeployment CRD established",
        lambda: any(
            c["type"] == "Established" and c["status"] == "True"
            for c in ((get("crd", SELDON_CRD) or {}).get("status") or {}).get("conditions") or []
        ),
    )


def test_auto_runtime_follows_the_seldon_crd(
    namespace: str, auto_operator: OperatorProcess
) -> None:
    assert get("crd", SELDON_CRD) is None
    model_with(namespace, declared(1))
    apply(deployment_manifest("iris", "iris", version=1, runtime="auto", replicas=2), namespace)

    def native_available(obj: dict[str, Any]) -> bool:
        crd = get("crd", SELDON_CRD)
        if crd is not None:
            managers = [m.get("manager") for m in crd["metadata"].get("managedFields") or []]
            raise AssertionError(
                "the SeldonDeployment CRD came back during the test, installed by someone else "
                f"at {crd['metadata']['creationTimestamp']} (managers {managers}): another test "
                f"session on this cluster that does not take {seldon_crd_lock.__name__}?"
            )
        return available(1, 2)(obj)

    obj = wait_mwd(namespace, "iris", "native, Available on version 1", native_available)
    assert obj["status"]["runtime"] == "native"
    assert list(version_deployments(namespace, "iris")) == [1]
    assert get("service", "iris", namespace) is not None

    # Seldon Core gets installed: the next reconcile moves the Deployment to it, and the native
    # pods keep serving until Seldon reports the SeldonDeployment Available.
    install_seldon_crd()
    kubectl("annotate", MWD, "iris", "-n", namespace, "test.modelwerk.io/nudge=1")
    obj = wait_mwd(
        namespace,
        "iris",
        "runtime seldon, native still serving",
        lambda o: (
            o["status"].get("runtime") == "seldon"
            and has_condition(o, "Progressing", "True", "WaitingForSeldon")
        ),
    )
    assert has_condition(obj, "Ready", "True", "ServingPrevious"), obj["status"]
    assert obj["status"]["readyReplicas"] == 2
    assert obj["status"]["currentVersion"] == 1
    sdep = get("seldondeployment", "iris", namespace)
    assert sdep is not None
    assert [(p["name"], p["traffic"]) for p in sdep["spec"]["predictors"]] == [("v1", 100)]
    assert version_deployments(namespace, "iris")[1]["status"]["readyReplicas"] == 2
    assert get("service", "iris", namespace) is not None

    # Watching exact namespace names, the operator does not scan for CRDs (settings.py): it
    # watches SeldonDeployments, and so sees Seldon's status, from its next start.
    auto_operator.stop()
    auto_operator.start()
    report_seldon_state(namespace, "iris", "Available", replicas=2)
    obj = wait_available(namespace, "iris", version=1, ready=2)
    wait_for("the native children gone", lambda: not version_deployments(namespace, "iris"))
    wait_for("the native Service gone", lambda: get("service", "iris", namespace) is None)
