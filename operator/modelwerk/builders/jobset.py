"""A distributed TrainingRun's JobSet (spec.workers.engine jobSet, or auto with the JobSet CRD
installed): one replicated Job, the same Indexed Job gang as builders/gang.py builds, which the
JobSet controller restarts whole (failurePolicy.maxRestarts = spec.backoffLimit) when a worker
fails; the operator then only watches.

The JobSet's admission webhook is not relied on (it defaults fields when it is registered): every
field it would default is written here, so the JobSet is the same with or without it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from modelwerk.api.model import Model
from modelwerk.api.trainingrun import JOBSET_REPLICATED_JOB, TrainingRun
from modelwerk.builders import gang, kueue
from modelwerk.builders.common import Manifest
from modelwerk.builders.job import build_job, job_name

API_VERSION: Final = "jobset.x-k8s.io/v1alpha2"
CRD_NAME: Final = "jobsets.jobset.x-k8s.io"
# Its name is part of the workers' hostnames, which the CRD bounds (api/trainingrun.py).
REPLICATED_JOB: Final = JOBSET_REPLICATED_JOB
# Set by the JobSet controller on its child Jobs' pods: the restart the pod belongs to.
RESTART_ATTEMPT: Final = "jobset.sigs.k8s.io/restart-attempt"


def jobset_name(run: TrainingRun) -> str:
    return job_name(run)


def child_job_name(run: TrainingRun) -> str:
    """The JobSet controller names its Jobs `<jobset>-<replicatedJob>-<index>`; one here."""
    return f"{jobset_name(run)}-{REPLICATED_JOB}-0"


def build_jobset(
    run: TrainingRun, owner: Mapping[str, Any], model: Model | None = None
) -> Manifest:
    """The run's JobSet: the gang's Indexed Job as its only replicated Job."""
    job = build_job(run, owner, model, 0)
    meta, spec = job["metadata"], job["spec"]
    template = spec["template"]
    for labels in (meta["labels"], template["metadata"]["labels"]):
        # The attempt is the JobSet's restart count, not a label of ours.
        labels.pop(gang.LABEL_ATTEMPT, None)
    child_labels = dict(meta["labels"])
    # Kueue queues the JobSet as one Workload; its child Job must not be queued on its own.
    child_labels.pop(kueue.LABEL_QUEUE_NAME, None)
    # The JobSet's own headless Service (network.subdomain) publishes the hostnames, and the
    # JobSet sets the pods' subdomain; its suspend is carried to the Job by the controller.
    template["spec"].pop("subdomain", None)
    suspend = bool(spec.pop("suspend", False))
    container = template["spec"]["containers"][0]
    addr = gang.master_addr(run, child_job_name(run))
    restart = {"fieldRef": {"fieldPath": f"metadata.labels['{RESTART_ATTEMPT}']"}}
    env: list[Manifest] = []
    for var in container["env"]:
        if var["name"] in ("MASTER_ADDR", "PET_MASTER_ADDR"):
            var = {"name": var["name"], "value": addr}
        elif var["name"] == gang.ENV_ATTEMPT:
            var = {"name": gang.ENV_ATTEMPT, "valueFrom": restart}
        env.append(var)
    container["env"] = env
    return {
        "apiVersion": API_VERSION,
        "kind": "JobSet",
        "metadata": meta,
        "spec": {
            "suspend": suspend,
            "failurePolicy": {"maxRestarts": run.spec.backoff_limit},
            "successPolicy": {"operator": "All", "targetReplicatedJobs": [REPLICATED_JOB]},
            "startupPolicy": {"startupPolicyOrder": "AnyOrder"},
            "network": {
                "enableDNSHostnames": True,
                "subdomain": gang.service_name(run),
                "publishNotReadyAddresses": True,
            },
            "replicatedJobs": [
                {
                    "name": REPLICATED_JOB,
                    "replicas": 1,
                    "template": {"metadata": {"labels": child_labels}, "spec": spec},
                }
            ],
        },
    }
