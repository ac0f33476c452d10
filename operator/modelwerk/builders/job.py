"""TrainingRun -> batch/v1 Job."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from modelwerk import constants, contract, sdk
from modelwerk.api.model import Model
from modelwerk.api.trainingrun import TrainingRun
from modelwerk.builders import gang, kueue, validation
from modelwerk.builders.common import (
    CONTAINER_SECURITY_CONTEXT,
    POD_SECURITY_CONTEXT,
    Manifest,
    base_labels,
    child_metadata,
)

CONTAINER_NAME = "train"
PARAMS_DIR = "/etc/modelwerk"
PARAMS_FILE = f"{PARAMS_DIR}/params.json"
SCRATCH_DIR = contract.SCRATCH_DIR
LOCAL_OUTPUT_DIR = "/var/run/modelwerk/output"
PVC_ROOT = contract.PVC_ROOT
ANNOTATION_PARAMS = f"{constants.LABEL_PREFIX}/params"


class OutputError(ValueError):
    """The run has nowhere to put its artifact."""


@dataclass(frozen=True)
class OutputLocation:
    uri: str | None
    dir: str
    claim: str | None = None


def output_location(run: TrainingRun, model: Model | None) -> OutputLocation:
    """Where the artifact goes: the run's `output.uri`, else the Model's storage plus the run's
    name. A `pvc://claim/path` is mounted; any other scheme is the training code's to upload to,
    from a local scratch directory."""
    name = run.metadata.name or ""
    if run.spec.output is not None:
        uri: str | None = run.spec.output.uri.replace("{run}", name)
    elif model is not None and model.spec.storage is not None:
        uri = f"{model.spec.storage.uri.rstrip('/')}/{name}"
    elif run.spec.model is not None:
        raise OutputError(
            f"Model {run.spec.model!r} has no spec.storage.uri and the run has no spec.output.uri: "
            "the artifact would have nowhere to go"
        )
    else:
        uri = None
    pvc = contract.parse_pvc(uri) if uri is not None else None
    if pvc is not None:
        return OutputLocation(
            uri=uri, dir=str(PurePosixPath(PVC_ROOT, pvc.claim, pvc.path)), claim=pvc.claim
        )
    return OutputLocation(uri=uri, dir=LOCAL_OUTPUT_DIR)


def hyperparameters_hash(hyperparameters: dict[str, str]) -> str:
    canonical = json.dumps(hyperparameters, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def run_params(run: TrainingRun, output: OutputLocation) -> sdk.RunParams:
    return sdk.RunParams(
        run=run.metadata.name or "",
        model=run.spec.model,
        seed=run.spec.seed,
        hyperparameters=dict(run.spec.hyperparameters),
        datasets=[sdk.Dataset(name=d.name, uri=d.uri, digest=d.digest) for d in run.spec.datasets],
        output=sdk.Output(uri=output.uri, dir=output.dir),
        validation=validation.spec_json(run),
    )


def job_name(run: TrainingRun) -> str:
    # The run's name is already a DNS label (CRD rule), so the Job can share it: one run, one Job.
    return run.metadata.name or ""


def build_job(
    run: TrainingRun, owner: Mapping[str, Any], model: Model | None = None, attempt: int = 0
) -> Manifest:
    """The run's Job; with spec.workers.replicas > 1 attempt `attempt` of its gang."""
    output = output_location(run, model)
    params = run_params(run, output)
    name = job_name(run)
    labels = base_labels(
        "training",
        **{constants.LABEL_TRAININGRUN: name, constants.LABEL_MODEL: run.spec.model},
    )
    env = [{"name": k, "value": v} for k, v in sorted(params.to_env().items())]
    env.append({"name": sdk.ENV_PARAMS_FILE, "value": PARAMS_FILE})
    env += [{"name": e.name, "value": e.value} for e in run.spec.env]
    if model is not None and model.spec.storage is not None and model.spec.storage.secret_ref:
        # Storage credentials from a Secret in the run's own namespace (a name, never a namespace).
        secret_env = {"secretRef": {"name": model.spec.storage.secret_ref.name, "optional": False}}
        env_from: list[Manifest] = [secret_env]
    else:
        env_from = []

    volumes: list[Manifest] = [
        {"name": "scratch", "emptyDir": {}},
        {
            "name": "params",
            "downwardAPI": {
                "items": [
                    {
                        "path": "params.json",
                        "fieldRef": {"fieldPath": f"metadata.annotations['{ANNOTATION_PARAMS}']"},
                    }
                ]
            },
        },
    ]
    mounts: list[Manifest] = [
        {"name": "scratch", "mountPath": SCRATCH_DIR},
        {"name": "params", "mountPath": PARAMS_DIR, "readOnly": True},
    ]
    if output.claim is not None:
        volumes.append({"name": "output", "persistentVolumeClaim": {"claimName": output.claim}})
        mounts.append({"name": "output", "mountPath": f"{PVC_ROOT}/{output.claim}"})
    else:
        volumes.append({"name": "output", "emptyDir": {}})
        mounts.append({"name": "output", "mountPath": LOCAL_OUTPUT_DIR})

    container: Manifest = {
        "name": CONTAINER_NAME,
        "image": run.spec.image,
        "env": env,
        "volumeMounts": mounts,
        "securityContext": copy.deepcopy(CONTAINER_SECURITY_CONTEXT),
        "terminationMessagePath": constants.TERMINATION_MESSAGE_PATH,
        # File, not FallbackToLogsOnError: a log tail must never pass for a missing report.
        "terminationMessagePolicy": "File",
    }
    if run.spec.command:
        container["command"] = list(run.spec.command)
    if run.spec.args:
        container["args"] = list(run.spec.args)
    if env_from:
        container["envFrom"] = env_from
    if run.spec.resources is not None:
        container["resources"] = run.spec.resources.model_dump(
            by_alias=True, exclude_none=True, mode="json"
        )

    pod_spec: Manifest = {
        "restartPolicy": "Never",
        "securityContext": copy.deepcopy(POD_SECURITY_CONTEXT),
        "containers": [container],
        "volumes": volumes,
        "enableServiceLinks": False,
    }
    if run.spec.service_account_name:
        pod_spec["serviceAccountName"] = run.spec.service_account_name
    else:
        # Training code has no business with the Kubernetes API unless a service account is
        # asked for explicitly.
        pod_spec["automountServiceAccountToken"] = False

    job_spec: Manifest = {
        "backoffLimit": run.spec.backoff_limit,
        "suspend": run.spec.suspend,
        # The operator reads the pods' termination messages; they must outlive the Job's
        # completion, so no Job TTL: the run's own TTL deletes the run and, with it, the Job.
        "template": {
            "metadata": {
                "labels": dict(labels),
                "annotations": {ANNOTATION_PARAMS: params.to_json()},
            },
            "spec": pod_spec,
        },
    }
    if run.spec.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = run.spec.active_deadline_seconds
    validation.add_to_job(run, job_spec)

    job: Manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": child_metadata(name, run.metadata.namespace, owner, labels),
        "spec": job_spec,
    }
    gang.add_to_job(run, job, attempt)
    kueue.add_to(run, job)
    return job
