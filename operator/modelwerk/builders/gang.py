"""A distributed TrainingRun (spec.workers.replicas > 1): its Job as an Indexed Job gang and the
headless Service that gives the workers stable hostnames `<job>-<index>.<service>`.

One Job per attempt, all or nothing: any worker's failure fails the Job at once (backoffLimit 0,
a podFailurePolicy), and the operator replaces the whole gang (reconcilers/gang.py). A plain
Job would retry the one failed pod alone, into a rendezvous that has moved on without it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from modelwerk import constants
from modelwerk.api.trainingrun import TrainingRun
from modelwerk.builders.common import Manifest, base_labels, child_metadata

LABEL_ATTEMPT: Final = f"{constants.LABEL_PREFIX}/attempt"
# Set by the Job controller on every pod of an Indexed Job: the annotation is the documented
# downward-API source, the label (Kubernetes >= 1.28) is what the pod cache keeps.
COMPLETION_INDEX: Final = "batch.kubernetes.io/job-completion-index"
ENV_ATTEMPT: Final = "MODELWERK_ATTEMPT"
PORT_NAME: Final = "rendezvous"


def service_name(run: TrainingRun) -> str:
    # A CRD rule makes a distributed run's name a DNS-1035 label: a valid Service name.
    return run.metadata.name or ""


def hostname(job: str, index: int) -> str:
    """The hostname the Job controller gives worker `index` of an Indexed Job (with a subdomain):
    a DNS label, which bounds the run's name (api/trainingrun.py, MAX_GANG_NAME)."""
    return f"{job}-{index}"


def master_addr(run: TrainingRun, job: str) -> str:
    """Worker 0's hostname; resolved through the pod's DNS search path (`<ns>.svc...`)."""
    return f"{hostname(job, 0)}.{service_name(run)}"


def _index_env(name: str) -> Manifest:
    path = f"metadata.annotations['{COMPLETION_INDEX}']"
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def rendezvous_env(run: TrainingRun, job: str, attempt: int) -> list[Manifest]:
    """What `torchrun` (PET_*), torch.distributed's env:// (MASTER_*, WORLD_SIZE, RANK) and
    the like read; one process per pod: RANK is the pod's index."""
    assert run.spec.workers is not None
    size, port = str(run.spec.workers.replicas), str(run.spec.workers.port)
    addr = master_addr(run, job)
    return [
        {"name": "MASTER_ADDR", "value": addr},
        {"name": "MASTER_PORT", "value": port},
        {"name": "WORLD_SIZE", "value": size},
        _index_env("RANK"),
        _index_env("NODE_RANK"),
        {"name": "PET_NNODES", "value": size},
        _index_env("PET_NODE_RANK"),
        {"name": "PET_MASTER_ADDR", "value": addr},
        {"name": "PET_MASTER_PORT", "value": port},
        {"name": ENV_ATTEMPT, "value": str(attempt)},
    ]


def add_to_job(run: TrainingRun, job: Manifest, attempt: int) -> None:
    """Turns a single-pod run's Job into attempt `attempt` of its gang; a run without
    spec.workers.replicas > 1 is left as it is."""
    if run.spec.workers is None or not run.spec.distributed():
        return
    replicas = run.spec.workers.replicas
    spec = job["spec"]
    template = spec["template"]
    for labels in (job["metadata"]["labels"], template["metadata"]["labels"]):
        labels[LABEL_ATTEMPT] = str(attempt)
    spec["completionMode"] = "Indexed"
    spec["completions"] = replicas
    spec["parallelism"] = replicas
    # The gang is restarted whole by the operator, never a pod at a time by the Job.
    spec["backoffLimit"] = 0
    rules = spec.setdefault("podFailurePolicy", {"rules": []})["rules"]
    container = template["spec"]["containers"][0]
    rules.append(
        {
            # Any worker exiting non-zero fails the Job now: the Job controller stops the others
            # rather than waiting for them to finish (or hang) on a broken rendezvous.
            "action": "FailJob",
            "onExitCodes": {
                "containerName": container["name"],
                "operator": "NotIn",
                "values": [0],
            },
        }
    )
    template["spec"]["subdomain"] = service_name(run)
    env = container["env"]
    ours = len(env) - len(run.spec.env)
    # Before the user's own env (kept last, as in a single-pod run); CRD rules keep them apart.
    gang = rendezvous_env(run, job["metadata"]["name"], attempt)
    container["env"] = env[:ours] + gang + env[ours:]
    container["ports"] = [
        {"name": PORT_NAME, "containerPort": run.spec.workers.port, "protocol": "TCP"}
    ]


def build_service(run: TrainingRun, owner: Mapping[str, Any]) -> Manifest:
    """The headless Service behind the workers' hostnames. Not-ready pods are published: a
    worker looks its peers up before any of them could pass a readiness check."""
    assert run.spec.workers is not None
    name = service_name(run)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(
            name,
            run.metadata.namespace,
            owner,
            base_labels(
                "training",
                **{constants.LABEL_TRAININGRUN: name, constants.LABEL_MODEL: run.spec.model},
            ),
        ),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {
                constants.LABEL_COMPONENT: "training",
                constants.LABEL_TRAININGRUN: name,
            },
            "ports": [
                {
                    "name": PORT_NAME,
                    "port": run.spec.workers.port,
                    "targetPort": run.spec.workers.port,
                    "protocol": "TCP",
                }
            ],
        },
    }
