"""The data validation step of a training Job: an init container, its volumes, and the pod
failure policy that ends the Job at once when the data is refused.

The init container is the training container with another command: same image, environment,
security context, resources and params file, so it reads the data exactly as training would.
It mounts no output; the claims of `pvc://` datasets it mounts read-only.
"""

from __future__ import annotations

import copy
import urllib.parse
from typing import Any

from modelwerk.api.trainingrun import TrainingRun
from modelwerk.builders.common import Manifest
from modelwerk.validate import EXIT_FAILED

CONTAINER_NAME = "validate"
COMMAND = ["python", "-m", "modelwerk.validate"]
PVC_ROOT = "/mnt/pvc"


def spec_json(run: TrainingRun) -> dict[str, Any] | None:
    """spec.validation as the params file carries it."""
    if run.spec.validation is None:
        return None
    return run.spec.validation.model_dump(by_alias=True, exclude_none=True, mode="json")


def _claims(run: TrainingRun) -> list[str]:
    names = {e.name for e in run.spec.validation.datasets} if run.spec.validation else set()
    claims = []
    for dataset in run.spec.datasets:
        if dataset.name in names and dataset.uri.startswith("pvc://"):
            claim = urllib.parse.urlsplit(dataset.uri).netloc
            if claim and claim not in claims:
                claims.append(claim)
    return claims


def add_to_job(run: TrainingRun, job_spec: Manifest) -> None:
    """With spec.validation: the `validate` init container, read-only dataset claims, and a
    podFailurePolicy failing the Job on the validator's EXIT_FAILED (a retry would read the
    same data). Without it, the Job is left as it is."""
    if run.spec.validation is None:
        return
    pod_spec = job_spec["template"]["spec"]
    train = pod_spec["containers"][0]
    init: Manifest = {k: copy.deepcopy(v) for k, v in train.items() if k not in ("command", "args")}
    init["name"] = CONTAINER_NAME
    init["command"] = list(COMMAND)
    # Scratch and the params file; not the output: validation writes no artifact.
    mounts = [m for m in train.get("volumeMounts") or [] if m["name"] in ("scratch", "params")]
    # One volume per claim: data on the output's claim reuses the output volume (mounted
    # read-only here). A second volume of the same claim would be one mount on the node, and its
    # readOnly would make the training container's output read-only too.
    by_claim = {
        v["persistentVolumeClaim"]["claimName"]: v["name"]
        for v in pod_spec["volumes"]
        if "persistentVolumeClaim" in v
    }
    for index, claim in enumerate(_claims(run)):
        volume = by_claim.get(claim)
        if volume is None:
            volume = f"data-{index}"
            pod_spec["volumes"].append(
                {"name": volume, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
            )
        mounts.append({"name": volume, "mountPath": f"{PVC_ROOT}/{claim}", "readOnly": True})
    init["volumeMounts"] = copy.deepcopy(mounts)
    pod_spec["initContainers"] = [init]
    job_spec["podFailurePolicy"] = {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": CONTAINER_NAME,
                    "operator": "In",
                    "values": [EXIT_FAILED],
                },
            }
        ]
    }
