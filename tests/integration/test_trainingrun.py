"""TrainingRun against the real control plane: the Job it creates, how it ends (success, failure
with the reason, bad reports), suspend/resume, TTL, a missing Model, and no writes once converged.

kwok plays the kubelet; the KWOK_SIM_* variables in a run's spec.env say how the simulated
training container ends (hack/kwok/stages.yaml). Reports are real: the reference trainer's."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from typing import Any

import pytest

from modelwerk import sdk
from tests.integration.cluster import KubectlError, apply, get, kubectl, wait_for
from tests.integration.conftest import OperatorProcess
from tests.integration.trainingruns import (
    API_VERSION,
    IMAGE,
    REFERENCE_HYPERPARAMETERS,
    REFERENCE_SEED,
    STORAGE_URI,
    api_writes,
    as_list,
    conditions_by_type,
    events_for,
    metric_sum,
    model_manifest,
    pods_of,
    reconcile_failures_logged,
    reference_report,
    run,
    run_manifest,
    wait_condition,
    wait_gone,
    wait_phase,
)

pytestmark = pytest.mark.integration


def _env(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0].get("env", [])}


def _versions(namespace: str, model: str) -> list[dict[str, Any]]:
    obj = get("model", model, namespace)
    assert obj is not None, f"Model {model} is gone"
    versions: list[dict[str, Any]] = (obj.get("status") or {}).get("versions") or []
    return versions


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _assert_baseline(stored: dict[str, Any], reported: dict[str, Any]) -> None:
    assert stored["features"] == reported["features"]
    # The apiserver sorts a map's keys; the model's column order, where kept, is a list.
    order = stored.get("featureOrder")
    if order is not None:
        assert order == list(reported["features"])


def _assert_operator_fine(operator: OperatorProcess, namespace: str, name: str) -> None:
    assert operator.healthy(), "operator health endpoint is not OK"
    failures = reconcile_failures_logged(operator.log(), "TrainingRun", namespace, name)
    assert not failures, "reconciles of the run raised:\n" + "\n".join(failures)


# --- 1. success -----------------------------------------------------------------------------


def test_successful_run_creates_restricted_job_and_registers_version(
    namespace: str, operator: OperatorProcess
) -> None:
    report = reference_report()
    apply(model_manifest("iris"), namespace)
    apply(run_manifest("iris-1", "iris", report=report.text, sim={"DURATION": "1s"}), namespace)

    obj = wait_phase(namespace, "iris-1", "Succeeded")
    meta, status = obj["metadata"], obj["status"]
    uid = meta["uid"]

    # The Job: owned by the run (garbage-collected with it), labelled for both run and Model.
    job = get("job", "iris-1", namespace)
    assert job is not None
    assert job["metadata"]["ownerReferences"] == [
        {
            "apiVersion": API_VERSION,
            "kind": "TrainingRun",
            "name": "iris-1",
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
        assert labels["modelwerk.io/trainingrun"] == "iris-1"
        assert labels["modelwerk.io/model"] == "iris"
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"].get("suspend") is False

    # The pod exists, so Pod Security admission (enforce=restricted) accepted it.
    pods = pods_of(namespace, "iris-1")
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    pod = pods[0]
    assert pod["status"]["phase"] == "Succeeded"
    pod_sc = pod["spec"]["securityContext"]
    assert pod_sc["runAsNonRoot"] is True
    assert pod_sc["runAsUser"] != 0
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["spec"]["containers"][0]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["privileged"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["runAsNonRoot"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["spec"]["restartPolicy"] == "Never"
    assert container["image"] == IMAGE
    assert container["terminationMessagePolicy"] == "File"
    assert container["terminationMessagePath"] == "/dev/termination-log"
    ns_labels = get("namespace", namespace)["metadata"]["labels"]  # type: ignore[index]
    assert ns_labels["pod-security.kubernetes.io/enforce"] == "restricted"

    # The pod contract: MODELWERK_* variables, the user's env, and the params file.
    env = _env(pod)
    assert env["TRAINING_MODE"] == "integration-test"
    assert env[sdk.ENV_RUN] == "iris-1"
    assert env[sdk.ENV_MODEL] == "iris"
    assert env[sdk.ENV_SEED] == str(REFERENCE_SEED)
    assert json.loads(env[sdk.ENV_HYPERPARAMETERS]) == REFERENCE_HYPERPARAMETERS
    assert json.loads(env[sdk.ENV_DATASETS]) == []
    assert env[sdk.ENV_OUTPUT_URI] == f"{STORAGE_URI}/iris-1"
    params_file = env[sdk.ENV_PARAMS_FILE]
    params = json.loads(pod["metadata"]["annotations"]["modelwerk.io/params"])
    assert params == {
        "run": "iris-1",
        "model": "iris",
        "seed": REFERENCE_SEED,
        "hyperparameters": REFERENCE_HYPERPARAMETERS,
        "datasets": [],
        "output": {"uri": f"{STORAGE_URI}/iris-1", "dir": env[sdk.ENV_OUTPUT_DIR]},
    }
    # What the SDK reads from the file and from the variables is one and the same.
    from_env = sdk.params({k: v for k, v in env.items() if k != sdk.ENV_PARAMS_FILE})
    assert from_env == sdk.RunParams.model_validate(params)
    # The file is the downward projection of that annotation, mounted where the variable says.
    params_volumes = [v for v in pod["spec"]["volumes"] if "downwardAPI" in v]
    assert len(params_volumes) == 1
    (item,) = params_volumes[0]["downwardAPI"]["items"]
    assert item["fieldRef"]["fieldPath"] == "metadata.annotations['modelwerk.io/params']"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    mount = mounts[params_volumes[0]["name"]]
    assert f"{mount['mountPath'].rstrip('/')}/{item['path']}" == params_file
    assert mount.get("readOnly") is True
    # Output goes to s3: a scratch emptyDir, no PVC to bind.
    output_mount = next(
        m for m in container["volumeMounts"] if m["mountPath"] == params["output"]["dir"]
    )
    output_volume = next(v for v in pod["spec"]["volumes"] if v["name"] == output_mount["name"])
    assert "emptyDir" in output_volume

    # Status: conditions, the report's content, reproducibility.
    conds = conditions_by_type(obj)
    for type_ in ("Accepted", "JobCreated", "Complete", "Evaluated", "Registered"):
        assert conds[type_]["status"] == "True", conds[type_]
        assert conds[type_]["observedGeneration"] == meta["generation"]
    assert conds["Running"]["status"] == "False"
    assert "Failed" not in conds
    assert status["observedGeneration"] == meta["generation"]
    assert status["jobName"] == "iris-1"
    assert status["attempts"] == 1
    assert status["modelVersion"] == 1
    assert _parse_time(status["completionTime"]) >= _parse_time(status["startTime"])
    data = report.data
    assert status["metrics"] == data["metrics"]
    assert status["artifact"] == data["artifact"]
    _assert_baseline(status["baseline"], data["baseline"])
    repro = status["reproducibility"]
    assert repro["image"].startswith(f"{IMAGE}@sha256:"), repro
    canonical = json.dumps(REFERENCE_HYPERPARAMETERS, sort_keys=True, separators=(",", ":"))
    assert (
        repro["hyperparametersHash"] == "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    )
    assert repro["seed"] == REFERENCE_SEED
    assert status["evaluation"]["passed"] is True

    # The registered version: everything needed to serve it and to trace it back to this run.
    model = get("model", "iris", namespace)
    assert model is not None
    versions = model["status"]["versions"]
    assert len(versions) == 1
    version = versions[0]
    assert version["version"] == 1
    assert version["artifact"] == data["artifact"]
    assert version["artifact"]["digest"].startswith("sha256:")
    assert version["metrics"] == data["metrics"]
    _assert_baseline(version["baseline"], data["baseline"])
    assert version["source"] == {"trainingRun": "iris-1", "uid": uid}
    assert version["lineage"] == repro
    assert model["status"]["latestVersion"] == 1
    assert model["status"]["phase"] == "Ready"

    # Events tell the story, one per phase change; none of them is a warning.
    def story() -> list[dict[str, Any]] | None:
        events = events_for(namespace, "iris-1")
        return events if "Succeeded" in {e["reason"] for e in events} else None

    events = wait_for("Events of the run", story)
    assert all(e["involvedObject"]["uid"] == uid for e in events)
    assert [e for e in events if e["type"] == "Warning"] == []
    assert any("JobCreated=True" in e["message"] for e in events)
    (succeeded,) = [e for e in events if e["reason"] == "Succeeded"]
    assert "Registered=True: version 1 of Model iris" in succeeded["message"]
    assert "Evaluated=True" in succeeded["message"]
    # Few events on purpose: at most one per phase (Pending, Running, Succeeded).
    assert len(events) <= 3, "\n".join(f"{e['reason']}: {e['message']}" for e in events)


# --- 2. failures, with the reason ------------------------------------------------------------


@pytest.mark.parametrize("backoff_limit", [0, 1])
def test_oom_killed_run_fails_with_reason(
    namespace: str, operator: OperatorProcess, backoff_limit: int
) -> None:
    apply(model_manifest("iris"), namespace)
    apply(
        run_manifest(
            "oom",
            "iris",
            report=reference_report().text,
            sim={"EXIT_CODE": "137", "REASON": "OOMKilled"},
            backoff_limit=backoff_limit,
        ),
        namespace,
    )
    obj = wait_phase(namespace, "oom", "Failed", timeout=90)
    conds = conditions_by_type(obj)
    failed = conds["Failed"]
    assert failed["status"] == "True"
    assert failed["reason"] == "OOMKilled"
    assert "137" in failed["message"], failed
    assert conds["Running"]["status"] == "False"
    # A failed container's report is never evaluated nor registered.
    assert "Evaluated" not in conds
    assert "Registered" not in conds
    assert obj["status"]["attempts"] == backoff_limit + 1
    assert len(pods_of(namespace, "oom")) == backoff_limit + 1
    assert obj["status"].get("completionTime")
    assert _versions(namespace, "iris") == []
    warnings = wait_for(
        "a warning Event about the failure",
        lambda: [
            e
            for e in events_for(namespace, "oom")
            if e["type"] == "Warning" and "137" in e["message"]
        ],
    )
    assert warnings


def test_deadline_exceeded(namespace: str, operator: OperatorProcess) -> None:
    apply(model_manifest("iris"), namespace)
    apply(
        run_manifest(
            "slow",
            "iris",
            report=reference_report().text,
            sim={"DURATION": "60s"},
            activeDeadlineSeconds=2,
        ),
        namespace,
    )
    wait_phase(namespace, "slow", "Running")
    obj = wait_phase(namespace, "slow", "Failed", timeout=60)
    failed = conditions_by_type(obj)["Failed"]
    assert failed["status"] == "True"
    assert failed["reason"] == "DeadlineExceeded", failed
    assert _versions(namespace, "iris") == []


def test_image_pull_backoff_is_reported_while_pending(
    namespace: str, operator: OperatorProcess
) -> None:
    apply(model_manifest("iris"), namespace)
    apply(
        run_manifest(
            "nopull", "iris", report=reference_report().text, sim={"WAITING": "ImagePullBackOff"}
        ),
        namespace,
    )
    obj = wait_condition("trainingrun", namespace, "nopull", "Running", "False", "ImagePullBackOff")
    assert obj["status"]["phase"] == "Pending"
    running = conditions_by_type(obj)["Running"]
    assert "ImagePullBackOff" in running["message"]
    assert "Failed" not in conditions_by_type(obj)
    job = get("job", "nopull", namespace)
    assert job is not None
    assert not [
        c for c in (job.get("status") or {}).get("conditions") or [] if c["status"] == "True"
    ]


def test_unschedulable_pod_surfaces_the_schedulers_reason(
    namespace: str, operator: OperatorProcess
) -> None:
    # The Model keeps its artifacts on a claim this namespace does not have.
    apply(model_manifest("iris", storage_uri="pvc://models/iris"), namespace)
    apply(run_manifest("noclaim", "iris", report=reference_report().text), namespace)
    obj = wait_condition("trainingrun", namespace, "noclaim", "Running", "False", "Unschedulable")
    assert obj["status"]["phase"] == "Pending"
    assert (
        'persistentvolumeclaim "models" not found' in conditions_by_type(obj)["Running"]["message"]
    )
    # Once the claim exists and is bound, the scheduler places the pod and the run goes on.
    volume = f"{namespace}-models"
    apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": volume},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "claimRef": {"namespace": namespace, "name": "models"},
                "hostPath": {"path": "/var/lib/modelwerk-test/models"},
            },
        }
    )
    try:
        apply(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "models"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "",
                    "volumeName": volume,
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            },
            namespace,
        )
        wait_phase(namespace, "noclaim", "Succeeded")
    finally:
        kubectl("delete", "persistentvolume", volume, "--wait=false", check=False)


# --- 3. bad reports --------------------------------------------------------------------------


def _oversize_report() -> str:
    """Valid JSON of more than 4096 bytes, yet at most 4096 characters (the CRD's limit on an env
    value counts characters): multi-byte characters in the artifact URI."""
    data = reference_report().data
    data["artifact"]["uri"] = "s3://bucket/" + "€" * 1500
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    assert len(text) <= 4096 < len(text.encode()), (len(text), len(text.encode()))
    return text


BAD_REPORTS = {
    "missing": (None, "ReportMissing"),
    "malformed-json": ('{"v":1,"metrics":{"accuracy":0.9', "ReportMalformed"),
    "malformed-schema": (
        '{"v":1,"metrics":{"accuracy":"high"},"artifact":{"uri":"s3://b/m"}}',
        "ReportMalformed",
    ),
    "unsupported-version": ('{"v":2,"metrics":{}}', "ReportVersionUnsupported"),
    "oversize": (_oversize_report, "ReportTooLarge"),
}


@pytest.mark.parametrize("case", list(BAD_REPORTS))
def test_bad_report_fails_run_with_clear_reason(
    namespace: str, operator: OperatorProcess, case: str
) -> None:
    text, reason = BAD_REPORTS[case]
    report = text() if callable(text) else text
    apply(model_manifest("iris"), namespace)
    apply(run_manifest("bad", "iris", report=report), namespace)

    obj = wait_phase(namespace, "bad", "Failed")
    conds = conditions_by_type(obj)
    # The training container itself succeeded; what it handed back is unusable.
    assert conds["Complete"]["status"] == "True"
    evaluated = conds["Evaluated"]
    assert evaluated["status"] == "False"
    assert evaluated["reason"] == reason, evaluated
    assert evaluated["message"]
    assert conds["Failed"]["reason"] == reason
    assert "Registered" not in conds or conds["Registered"]["status"] != "True"
    assert "modelVersion" not in obj["status"]
    assert not obj["status"].get("metrics")
    assert _versions(namespace, "iris") == []
    _assert_operator_fine(operator, namespace, "bad")


# --- 7. suspend / resume ---------------------------------------------------------------------


def test_suspend_and_resume(namespace: str, operator: OperatorProcess) -> None:
    apply(model_manifest("iris"), namespace)
    apply(run_manifest("paused", "iris", report=reference_report().text, suspend=True), namespace)

    obj = wait_condition("trainingrun", namespace, "paused", "Running", "False", "Suspended")
    assert obj["status"]["phase"] == "Pending"
    job = get("job", "paused", namespace)
    assert job is not None
    assert job["spec"]["suspend"] is True
    wait_for(
        "the Job controller to mark the Job suspended",
        lambda: any(
            c["type"] == "Suspended" and c["status"] == "True"
            for c in (get("job", "paused", namespace) or {}).get("status", {}).get("conditions", [])
        ),
    )
    assert pods_of(namespace, "paused") == []

    # Every other field is immutable (CEL); suspend is not.
    with pytest.raises(KubectlError, match="immutable"):
        kubectl(
            "patch",
            "trainingrun",
            "paused",
            "-n",
            namespace,
            "--type=merge",
            "-p",
            json.dumps({"spec": {"seed": 7}}),
        )
    kubectl(
        "patch",
        "trainingrun",
        "paused",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"suspend": False}}),
    )
    obj = wait_phase(namespace, "paused", "Succeeded")
    assert obj["status"]["modelVersion"] == 1
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"] == 2
    job = get("job", "paused", namespace)
    assert job is not None
    assert job["spec"]["suspend"] is False
    assert len(pods_of(namespace, "paused")) == 1


# --- 8. TTL ----------------------------------------------------------------------------------


def test_ttl_deletes_finished_run_but_keeps_registered_one(
    namespace: str, operator: OperatorProcess
) -> None:
    ttl = 2
    report = reference_report().text
    apply(model_manifest("iris"), namespace)
    apply(
        as_list(
            run_manifest("kept", "iris", report=report, ttlSecondsAfterFinished=ttl),
            run_manifest(
                "dropped",
                "iris",
                report=report,
                sim={"EXIT_CODE": "1", "REASON": "Error"},
                ttlSecondsAfterFinished=ttl,
            ),
        ),
        namespace,
    )
    kept = wait_phase(namespace, "kept", "Succeeded")
    assert kept["status"]["modelVersion"] == 1
    dropped = wait_phase(namespace, "dropped", "Failed")
    dropped_done = _parse_time(dropped["status"]["completionTime"])

    wait_gone("trainingrun", namespace, "dropped", timeout=30)
    gone_at = dt.datetime.now(dt.UTC)
    # Not before its TTL (timestamps have a one-second resolution).
    assert gone_at >= dropped_done + dt.timedelta(seconds=ttl - 1)
    wait_gone("job", namespace, "dropped", timeout=60)

    # The registered run is well past its own TTL by now, and stays: it is version 1's lineage.
    kept_done = _parse_time(kept["status"]["completionTime"])
    wait_for(
        "a moment clearly past the kept run's TTL",
        lambda: dt.datetime.now(dt.UTC) > kept_done + dt.timedelta(seconds=ttl + 1),
    )
    still = run(namespace, "kept")
    assert still is not None
    assert still["status"]["phase"] == "Succeeded"
    assert get("job", "kept", namespace) is not None


# --- 9. the Model does not exist (yet) -------------------------------------------------------


def test_run_waits_for_missing_model(namespace: str, operator: OperatorProcess) -> None:
    apply(run_manifest("early", "later", report=reference_report().text), namespace)
    obj = wait_condition("trainingrun", namespace, "early", "Accepted", "False", "ModelNotFound")
    assert obj["status"]["phase"] == "Pending"
    assert "later" in conditions_by_type(obj)["Accepted"]["message"]
    assert get("job", "early", namespace) is None

    apply(model_manifest("later"), namespace)
    obj = wait_phase(namespace, "early", "Succeeded")
    assert conditions_by_type(obj)["Accepted"]["status"] == "True"
    assert obj["status"]["modelVersion"] == 1
    assert _versions(namespace, "later")[0]["source"]["uid"] == obj["metadata"]["uid"]


# --- 10. no writes after convergence ---------------------------------------------------------


def _quiet_writes(operator: OperatorProcess, window: float = 3.0) -> float:
    """The operator's write count once its queues are empty and it wrote nothing for `window`
    seconds (other tests' namespaces may still be winding down)."""
    state: dict[str, float] = {}

    def probe() -> float | None:
        text = operator.metrics()
        writes = api_writes(text)
        depth = metric_sum(text, "modelwerk_workqueue_depth")
        now = time.monotonic()
        if depth != 0 or writes != state.get("writes"):
            state.update(writes=writes, since=now)
            return None
        return writes if now - state["since"] >= window else None

    return wait_for("the operator to stop writing", probe, timeout=120)


def test_no_writes_after_convergence(namespace: str, operator: OperatorProcess) -> None:
    apply(model_manifest("iris"), namespace)
    apply(run_manifest("steady", "iris", report=reference_report().text), namespace)
    wait_phase(namespace, "steady", "Succeeded")

    before = _quiet_writes(operator)
    reconciles = metric_sum(operator.metrics(), "modelwerk_reconcile_total", kind="TrainingRun")

    # A label is a watch event and a full reconcile, with nothing to change.
    kubectl("label", "trainingrun", "steady", "-n", namespace, "touched=yes")

    def reconciled() -> bool:
        text = operator.metrics()
        return (
            metric_sum(text, "modelwerk_reconcile_total", kind="TrainingRun") > reconciles
            and metric_sum(text, "modelwerk_workqueue_depth") == 0
        )

    wait_for("a reconcile of the touched run", reconciled)
    after = api_writes(operator.metrics())
    assert after == before, f"the operator wrote {after - before} time(s) for a converged run"
    obj = run(namespace, "steady")
    assert obj is not None
    assert obj["status"]["phase"] == "Succeeded"


# --- finished runs keep their outcome -------------------------------------------------------


def _reconciled_after(operator: OperatorProcess, action: Any) -> None:
    """Runs `action`, then waits until the operator reconciled a TrainingRun since and is idle."""
    before = metric_sum(operator.metrics(), "modelwerk_reconcile_total", kind="TrainingRun")
    action()

    def done() -> bool:
        text = operator.metrics()
        return (
            metric_sum(text, "modelwerk_reconcile_total", kind="TrainingRun") > before
            and metric_sum(text, "modelwerk_workqueue_depth") == 0
        )

    wait_for("a reconcile of the run", done)


@pytest.mark.parametrize("outcome", ["Succeeded", "Failed"])
def test_outcome_survives_deleted_pods(
    namespace: str, operator: OperatorProcess, outcome: str
) -> None:
    """Pods go away (pod GC, a drained node, a user): the run's verdict was taken and stays."""
    sim = {} if outcome == "Succeeded" else {"EXIT_CODE": "137", "REASON": "OOMKilled"}
    apply(model_manifest("iris"), namespace)
    apply(run_manifest("done", "iris", report=reference_report().text, sim=sim), namespace)
    before = wait_phase(namespace, "done", outcome)
    assert "@sha256:" in before["status"]["reproducibility"]["image"]

    def delete_pods() -> None:
        kubectl("delete", "pods", "-n", namespace, "-l", "modelwerk.io/trainingrun=done")
        wait_for("the run's pods to be gone", lambda: pods_of(namespace, "done") == [])

    _reconciled_after(operator, delete_pods)
    _reconciled_after(
        operator, lambda: kubectl("label", "trainingrun", "done", "-n", namespace, "touched=yes")
    )
    after = run(namespace, "done")
    assert after is not None
    assert after["status"] == before["status"]


def test_outcomes_survive_model_deletion(namespace: str, operator: OperatorProcess) -> None:
    """Deleting the Model (or the namespace going away) does not reopen finished runs."""
    report = reference_report()
    apply(model_manifest("iris"), namespace)
    apply(
        as_list(
            run_manifest("registered", "iris", report=report.text),
            run_manifest(
                "refused",
                "iris",
                report=report.text,
                evaluation={"metric": "accuracy", "threshold": 0.999},
            ),
        ),
        namespace,
    )
    before = {
        "registered": wait_phase(namespace, "registered", "Succeeded"),
        "refused": wait_phase(namespace, "refused", "Rejected"),
    }
    _reconciled_after(
        operator,
        lambda: kubectl("delete", "model", "iris", "-n", namespace, "--wait=true"),
    )
    _reconciled_after(
        operator,
        lambda: kubectl("label", "trainingrun", "--all", "-n", namespace, "touched=yes"),
    )
    for name, obj in before.items():
        after = run(namespace, name)
        assert after is not None
        assert after["status"] == obj["status"], name
