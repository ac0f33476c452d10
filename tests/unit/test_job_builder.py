"""builders/job.py: TrainingRun -> batch/v1 Job, the output location and the params contract."""

from __future__ import annotations

import copy
import hashlib
import json
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from modelwerk import sdk
from modelwerk.api.model import Model
from modelwerk.api.trainingrun import TrainingRun
from modelwerk.builders.job import (
    ANNOTATION_PARAMS,
    LOCAL_OUTPUT_DIR,
    OutputError,
    OutputLocation,
    build_job,
    hyperparameters_hash,
    output_location,
    run_params,
)

SAMPLES = pathlib.Path(__file__).resolve().parents[2] / "manifests" / "samples"
NAMESPACE = "ml"
RUN_UID = "0b6f3e0e-1111-4c2a-9a53-6f0c6d7e0001"
DIGEST = "sha256:" + "ab" * 32
# The sample's dataset digest: sklearn's iris data as the validator renders it to CSV.
IRIS_DIGEST = "sha256:022e70f476b0dc3bee5dd54641c6ccb2a3f55d511086af15c59a7b1ad5241331"


def sample(kind: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((SAMPLES / f"{kind}.yaml").read_text("utf-8"))
    return loaded


def run_body(**spec: Any) -> dict[str, Any]:
    """The sample run as the apiserver would hand it over (namespace, uid), spec overridden."""
    body = sample("trainingrun")
    # Its validation init container and pod failure policy: tests/unit/test_validate.py.
    body["spec"].pop("validation", None)
    body["metadata"] |= {"namespace": NAMESPACE, "uid": RUN_UID, "generation": 1}
    body["spec"] |= spec
    return body


def model_of(**spec: Any) -> Model:
    body = sample("model")
    body["metadata"]["namespace"] = NAMESPACE
    body["spec"] |= spec
    return Model.from_body(body)


def model_without_storage() -> Model:
    body = sample("model")
    del body["spec"]["storage"]
    return Model.from_body(body)


def build(body: dict[str, Any], model: Model | None) -> dict[str, Any]:
    return build_job(TrainingRun.from_body(body), body, model)


def pod_spec(job: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = job["spec"]["template"]["spec"]
    return spec


def container(job: dict[str, Any]) -> dict[str, Any]:
    containers = pod_spec(job)["containers"]
    assert len(containers) == 1
    only: dict[str, Any] = containers[0]
    return only


def env_of(job: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(job)["env"]}


# --- the golden Job -------------------------------------------------------------------------

SAMPLE_PARAMS_JSON = (
    '{"run":"iris-1","model":"iris","seed":42,'
    '"hyperparameters":{"C":"1.0","max_iter":"200"},'
    '"datasets":[{"name":"iris","uri":"sklearn://datasets/iris","digest":"' + IRIS_DIGEST + '"}],'
    '"output":{"uri":"pvc://models/iris/iris-1","dir":"/mnt/pvc/models/iris/iris-1"}}'
)
SAMPLE_LABELS = {
    "app.kubernetes.io/managed-by": "modelwerk",
    "app.kubernetes.io/part-of": "modelwerk",
    "app.kubernetes.io/component": "training",
    "modelwerk.io/trainingrun": "iris-1",
    "modelwerk.io/model": "iris",
}
EXPECTED_SAMPLE_JOB: dict[str, Any] = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {
        "name": "iris-1",
        "namespace": "ml",
        "labels": SAMPLE_LABELS,
        "ownerReferences": [
            {
                "apiVersion": "modelwerk.io/v1alpha1",
                "kind": "TrainingRun",
                "name": "iris-1",
                "uid": RUN_UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    },
    "spec": {
        "backoffLimit": 1,
        "suspend": False,
        "activeDeadlineSeconds": 1800,
        "template": {
            "metadata": {
                "labels": SAMPLE_LABELS,
                "annotations": {"modelwerk.io/params": SAMPLE_PARAMS_JSON},
            },
            "spec": {
                "restartPolicy": "Never",
                "enableServiceLinks": False,
                "automountServiceAccountToken": False,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 65532,
                    "runAsGroup": 65532,
                    "fsGroup": 65532,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": "train",
                        "image": "ghcr.io/modelwerk/iris-trainer:0.1.0",
                        "command": ["python", "-m", "modelwerk.trainers.iris"],
                        "env": [
                            {
                                "name": "MODELWERK_DATASETS",
                                "value": '[{"name":"iris","uri":"sklearn://datasets/iris",'
                                f'"digest":"{IRIS_DIGEST}"}}]',
                            },
                            {
                                "name": "MODELWERK_HYPERPARAMETERS",
                                "value": '{"C":"1.0","max_iter":"200"}',
                            },
                            {"name": "MODELWERK_MODEL", "value": "iris"},
                            {
                                "name": "MODELWERK_OUTPUT_DIR",
                                "value": "/mnt/pvc/models/iris/iris-1",
                            },
                            {"name": "MODELWERK_OUTPUT_URI", "value": "pvc://models/iris/iris-1"},
                            {"name": "MODELWERK_RUN", "value": "iris-1"},
                            {"name": "MODELWERK_SEED", "value": "42"},
                            {
                                "name": "MODELWERK_PARAMS_FILE",
                                "value": "/etc/modelwerk/params.json",
                            },
                            {"name": "LOG_LEVEL", "value": "info"},
                        ],
                        "volumeMounts": [
                            {"name": "scratch", "mountPath": "/tmp"},
                            {"name": "params", "mountPath": "/etc/modelwerk", "readOnly": True},
                            {"name": "output", "mountPath": "/mnt/pvc/models"},
                        ],
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "privileged": False,
                            "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True,
                            "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "resources": {
                            "requests": {"cpu": "500m", "memory": "512Mi"},
                            "limits": {"memory": "1Gi"},
                        },
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File",
                    }
                ],
                "volumes": [
                    {"name": "scratch", "emptyDir": {}},
                    {
                        "name": "params",
                        "downwardAPI": {
                            "items": [
                                {
                                    "path": "params.json",
                                    "fieldRef": {
                                        "fieldPath": "metadata.annotations['modelwerk.io/params']"
                                    },
                                }
                            ]
                        },
                    },
                    {"name": "output", "persistentVolumeClaim": {"claimName": "models"}},
                ],
            },
        },
    },
}


def test_sample_job_is_exactly_the_golden_dict() -> None:
    job = build(run_body(), model_of())
    assert job == EXPECTED_SAMPLE_JOB


def test_sample_job_is_json_serialisable_and_key_order_independent() -> None:
    job = build(run_body(), model_of())
    # What goes to the apiserver is JSON; a tuple or a pydantic object would break it.
    assert json.loads(json.dumps(job)) == EXPECTED_SAMPLE_JOB


def test_building_twice_gives_the_same_job() -> None:
    body = run_body()
    assert build(body, model_of()) == build(copy.deepcopy(body), model_of())


def test_build_does_not_modify_its_inputs() -> None:
    body = run_body()
    before = copy.deepcopy(body)
    build(body, model_of())
    assert body == before


# --- restricted security --------------------------------------------------------------------


def walk(value: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """Every (path, key, value) of every mapping in a nested structure."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield path, key, child
            yield from walk(child, f"{path}.{key}")
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from walk(child, f"{path}[{index}]")


def job_variants() -> list[dict[str, Any]]:
    secret_model = model_of(storage={"uri": "s3://bucket/iris", "secretRef": {"name": "s3-creds"}})
    return [
        build(run_body(), model_of()),
        build(run_body(serviceAccountName="trainer"), model_of()),
        build(run_body(output={"uri": "s3://bucket/{run}"}), model_of()),
        build(run_body(), secret_model),
        build(run_body(model=None, evaluation=None), None),
    ]


@pytest.mark.parametrize("job", job_variants())
def test_no_host_access_or_privilege_anywhere(job: dict[str, Any]) -> None:
    forbidden = {"hostPath", "hostNetwork", "hostPID", "hostIPC", "hostPort", "hostUsers"}
    for path, key, value in walk(job):
        assert key not in forbidden, f"{path}.{key} present"
        if key in ("privileged", "allowPrivilegeEscalation"):
            assert value is False, f"{path}.{key} = {value!r}"
        if key == "runAsNonRoot":
            assert value is True, f"{path}.{key} = {value!r}"
        if key == "runAsUser":
            assert value != 0, f"{path}.{key} runs as root"
    # Only volume kinds that give no access to the node or to other namespaces.
    for volume in pod_spec(job)["volumes"]:
        kinds = set(volume) - {"name"}
        assert kinds <= {"emptyDir", "downwardAPI", "persistentVolumeClaim"}, volume


@pytest.mark.parametrize("job", job_variants())
def test_restricted_security_context_fields_present(job: dict[str, Any]) -> None:
    pod = pod_spec(job)["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert isinstance(pod["runAsUser"], int)
    assert pod["runAsUser"] > 0
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    ctr = container(job)["securityContext"]
    assert ctr["allowPrivilegeEscalation"] is False
    assert ctr["privileged"] is False
    assert ctr["readOnlyRootFilesystem"] is True
    assert ctr["runAsNonRoot"] is True
    assert ctr["capabilities"] == {"drop": ["ALL"]}
    assert ctr["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert pod_spec(job)["enableServiceLinks"] is False
    # With a read-only root filesystem the code can only write to mounted volumes.
    mounts = {m["mountPath"] for m in container(job)["volumeMounts"]}
    assert "/tmp" in mounts
    # A log tail must never stand in for a missing report.
    assert container(job)["terminationMessagePolicy"] == "File"


def test_returned_jobs_share_no_mutable_state() -> None:
    # Checked by identity rather than by mutating: a mutation would leak into the module
    # constants, and so into every other test of this session.
    first = build(run_body(), model_of())
    second = build(run_body(), model_of())
    assert container(first)["securityContext"] is not container(second)["securityContext"]
    assert pod_spec(first)["securityContext"] is not pod_spec(second)["securityContext"]
    assert first["metadata"]["labels"] is not first["spec"]["template"]["metadata"]["labels"]


# --- service account ------------------------------------------------------------------------


def test_without_service_account_the_token_is_not_mounted() -> None:
    pod = pod_spec(build(run_body(), model_of()))
    assert pod["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in pod
    assert "serviceAccount" not in pod


def test_service_account_name_is_used_when_given() -> None:
    pod = pod_spec(build(run_body(serviceAccountName="trainer"), model_of()))
    assert pod["serviceAccountName"] == "trainer"
    # Asking for a service account is asking for its token: the builder leaves the default.
    assert "automountServiceAccountToken" not in pod


# --- environment ----------------------------------------------------------------------------


def test_user_env_comes_after_the_operator_env() -> None:
    body = run_body(env=[{"name": "B_VAR", "value": "2"}, {"name": "A_VAR", "value": "1"}])
    names = [e["name"] for e in container(build(body, model_of()))["env"]]
    operator_names = [n for n in names if n.startswith("MODELWERK_")]
    assert names[: len(operator_names)] == operator_names
    # The user's entries follow, in the order the user gave (not sorted).
    assert names[len(operator_names) :] == ["B_VAR", "A_VAR"]
    assert names[len(operator_names) - 1] == sdk.ENV_PARAMS_FILE


def test_env_without_model_seed_or_output_omits_those_variables() -> None:
    body = run_body(model=None, seed=None, evaluation=None)
    env = env_of(build(body, None))
    assert sdk.ENV_MODEL not in env
    assert sdk.ENV_SEED not in env
    assert sdk.ENV_OUTPUT_URI not in env
    assert env[sdk.ENV_OUTPUT_DIR] == LOCAL_OUTPUT_DIR
    assert env[sdk.ENV_RUN] == "iris-1"


def test_storage_secret_is_exposed_through_env_from() -> None:
    model = model_of(storage={"uri": "s3://bucket/iris", "secretRef": {"name": "s3-creds"}})
    ctr = container(build(run_body(), model))
    assert ctr["envFrom"] == [{"secretRef": {"name": "s3-creds", "optional": False}}]


def test_no_env_from_without_a_storage_secret() -> None:
    assert "envFrom" not in container(build(run_body(), model_of()))


def test_optional_container_and_job_fields_are_omitted_when_unset() -> None:
    body = run_body(command=[], args=[], activeDeadlineSeconds=None, resources=None)
    job = build(body, model_of())
    ctr = container(job)
    assert "command" not in ctr
    assert "args" not in ctr
    assert "resources" not in ctr
    assert "activeDeadlineSeconds" not in job["spec"]
    # A Job TTL would delete the pods whose termination messages carry the report.
    assert "ttlSecondsAfterFinished" not in job["spec"]


def test_args_and_suspend_are_carried() -> None:
    job = build(run_body(args=["--fast"], suspend=True, backoffLimit=0), model_of())
    assert container(job)["args"] == ["--fast"]
    assert job["spec"]["suspend"] is True
    assert job["spec"]["backoffLimit"] == 0


def test_labels_without_model() -> None:
    job = build(run_body(model=None, evaluation=None), None)
    labels = job["metadata"]["labels"]
    assert "modelwerk.io/model" not in labels
    assert labels["modelwerk.io/trainingrun"] == "iris-1"
    assert job["spec"]["template"]["metadata"]["labels"] == labels


# --- output location ------------------------------------------------------------------------


def location(model: Model | None = None, /, **spec: Any) -> OutputLocation:
    return output_location(TrainingRun.from_body(run_body(**spec)), model)


def test_output_on_a_pvc_is_mounted_under_its_claim() -> None:
    loc = location(model_of(), output={"uri": "pvc://data/runs/{run}/out"})
    assert loc == OutputLocation(
        uri="pvc://data/runs/iris-1/out", dir="/mnt/pvc/data/runs/iris-1/out", claim="data"
    )


def test_pvc_output_mounts_the_claim() -> None:
    job = build(run_body(output={"uri": "pvc://data/{run}"}), model_of())
    assert {"name": "output", "persistentVolumeClaim": {"claimName": "data"}} in pod_spec(job)[
        "volumes"
    ]
    assert {"name": "output", "mountPath": "/mnt/pvc/data"} in container(job)["volumeMounts"]
    assert env_of(job)[sdk.ENV_OUTPUT_DIR] == "/mnt/pvc/data/iris-1"


def test_pvc_output_without_path_is_the_claims_root() -> None:
    loc = location(None, model=None, evaluation=None, output={"uri": "pvc://data"})
    assert loc == OutputLocation(uri="pvc://data", dir="/mnt/pvc/data", claim="data")


def test_s3_output_is_uploaded_from_a_local_directory() -> None:
    loc = location(model_of(), output={"uri": "s3://bucket/{run}/model"})
    assert loc == OutputLocation(uri="s3://bucket/iris-1/model", dir=LOCAL_OUTPUT_DIR, claim=None)
    job = build(run_body(output={"uri": "s3://bucket/{run}/model"}), model_of())
    assert {"name": "output", "emptyDir": {}} in pod_spec(job)["volumes"]
    assert {"name": "output", "mountPath": LOCAL_OUTPUT_DIR} in container(job)["volumeMounts"]
    assert not any("persistentVolumeClaim" in v for v in pod_spec(job)["volumes"])
    assert env_of(job)[sdk.ENV_OUTPUT_URI] == "s3://bucket/iris-1/model"


def test_every_run_placeholder_is_substituted() -> None:
    loc = location(model_of(), output={"uri": "s3://bucket/{run}/{run}.joblib"})
    assert loc.uri == "s3://bucket/iris-1/iris-1.joblib"


def test_run_output_wins_over_model_storage() -> None:
    loc = location(model_of(storage={"uri": "pvc://models/iris"}), output={"uri": "gs://b/{run}"})
    assert loc.uri == "gs://b/iris-1"
    assert loc.claim is None


def test_model_storage_is_the_fallback_plus_the_run_name() -> None:
    assert location(model_of(storage={"uri": "s3://bucket/iris/"})) == OutputLocation(
        uri="s3://bucket/iris/iris-1", dir=LOCAL_OUTPUT_DIR, claim=None
    )
    assert location(model_of()) == OutputLocation(
        uri="pvc://models/iris/iris-1", dir="/mnt/pvc/models/iris/iris-1", claim="models"
    )


def test_model_without_storage_and_run_without_output_is_an_error() -> None:
    with pytest.raises(OutputError, match=r"no spec\.storage\.uri"):
        location(model_without_storage())
    with pytest.raises(OutputError):
        build(run_body(), model_without_storage())


def test_a_missing_model_is_an_output_error_too() -> None:
    with pytest.raises(OutputError):
        location(None)


def test_no_model_and_no_output_writes_to_a_local_directory() -> None:
    assert location(None, model=None, evaluation=None) == OutputLocation(
        uri=None, dir=LOCAL_OUTPUT_DIR, claim=None
    )


# --- hyperparameters hash -------------------------------------------------------------------


def test_hyperparameters_hash_is_stable_under_key_order() -> None:
    forward = {"C": "1.0", "max_iter": "200", "penalty": "l2"}
    backward = dict(reversed(list(forward.items())))
    assert list(forward) != list(backward)
    assert hyperparameters_hash(forward) == hyperparameters_hash(backward)


def test_hyperparameters_hash_is_sha256_of_canonical_json() -> None:
    canonical = b'{"C":"1.0","max_iter":"200"}'
    expected = "sha256:" + hashlib.sha256(canonical).hexdigest()
    assert hyperparameters_hash({"max_iter": "200", "C": "1.0"}) == expected


def test_hyperparameters_hash_changes_with_any_value_or_key() -> None:
    base = hyperparameters_hash({"C": "1.0"})
    assert hyperparameters_hash({"C": "1.00"}) != base
    assert hyperparameters_hash({"c": "1.0"}) != base
    assert hyperparameters_hash({}) != base
    assert hyperparameters_hash({"C": "1.0", "x": ""}) != base


# --- the params contract --------------------------------------------------------------------

RICH_SPEC: dict[str, Any] = {
    "hyperparameters": {"max_iter": "200", "C": "0.5", "note": 'has "quotes" and spaces'},
    "seed": 0,
    "datasets": [
        {"name": "train", "uri": "s3://data/train.csv", "digest": DIGEST},
        {"name": "eval", "uri": "https://example.com/eval.csv"},
    ],
    "output": {"uri": "s3://bucket/{run}"},
}


def test_params_annotation_round_trips_through_the_sdk() -> None:
    body = run_body(**RICH_SPEC)
    run = TrainingRun.from_body(body)
    job = build_job(run, body, model_of())
    text = job["spec"]["template"]["metadata"]["annotations"][ANNOTATION_PARAMS]
    parsed = sdk.RunParams.model_validate_json(text)
    assert parsed == run_params(run, output_location(run, model_of()))
    assert parsed.run == "iris-1"
    assert parsed.model == "iris"
    assert parsed.seed == 0
    assert parsed.hyperparameters == RICH_SPEC["hyperparameters"]
    assert [d.model_dump() for d in parsed.datasets] == [
        {"name": "train", "uri": "s3://data/train.csv", "digest": DIGEST},
        {"name": "eval", "uri": "https://example.com/eval.csv", "digest": None},
    ]
    assert parsed.output.uri == "s3://bucket/iris-1"
    assert parsed.output.dir == pathlib.Path(LOCAL_OUTPUT_DIR)
    assert parsed.to_json() == text


def test_params_file_and_env_describe_the_same_run(tmp_path: pathlib.Path) -> None:
    job = build(run_body(**RICH_SPEC), model_of())
    env = env_of(job)
    text = job["spec"]["template"]["metadata"]["annotations"][ANNOTATION_PARAMS]
    params_file = tmp_path / "params.json"
    params_file.write_text(text, encoding="utf-8")

    from_file = sdk.params({sdk.ENV_PARAMS_FILE: str(params_file)})
    without_file = {k: v for k, v in env.items() if k != sdk.ENV_PARAMS_FILE}
    from_env = sdk.params(without_file)
    assert from_file == from_env
    assert from_env.seed == 0


def test_params_file_path_matches_the_downward_api_mount() -> None:
    job = build(run_body(), model_of())
    params_file = pathlib.PurePosixPath(env_of(job)[sdk.ENV_PARAMS_FILE])
    mount = next(m for m in container(job)["volumeMounts"] if m["name"] == "params")
    volume = next(v for v in pod_spec(job)["volumes"] if v["name"] == "params")
    item = volume["downwardAPI"]["items"][0]
    assert params_file == pathlib.PurePosixPath(mount["mountPath"], item["path"])
    assert item["fieldRef"]["fieldPath"] == f"metadata.annotations['{ANNOTATION_PARAMS}']"
    assert ANNOTATION_PARAMS in job["spec"]["template"]["metadata"]["annotations"]
