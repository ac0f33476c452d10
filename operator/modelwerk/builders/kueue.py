"""A queued TrainingRun (spec.queueName): what its Job or JobSet carries for Kueue, and how the
Kueue Workload that stands for it reads as the run's Queued condition. Pure functions.

Kueue (sigs.k8s.io/kueue) queues a Job that has the label `kueue.x-k8s.io/queue-name`: its
controller makes a Workload owned by the Job, admits it when the LocalQueue's ClusterQueue has
quota, and then unsuspends the Job. Kueue's webhook suspends such Jobs on create; the operator
creates them suspended itself, so nothing starts ahead of admission where the webhook is not
registered (or not yet ready)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from modelwerk.api.trainingrun import TrainingRun
from modelwerk.builders.common import Manifest

LABEL_QUEUE_NAME: Final = "kueue.x-k8s.io/queue-name"
WORKLOAD_API_VERSION: Final = "kueue.x-k8s.io/v1beta2"  # the version v0.17 stores
CRD_NAME: Final = "workloads.kueue.x-k8s.io"

REASON_ADMITTED: Final = "Admitted"
REASON_NO_WORKLOAD: Final = "WorkloadPending"
REASON_QUEUED: Final = "Queued"


def queued(run: TrainingRun) -> bool:
    return bool(run.spec.queue_name)


def add_to(run: TrainingRun, obj: Manifest) -> None:
    """Puts a Job or JobSet into the run's LocalQueue: the label Kueue watches for, and
    created suspended (Kueue alone unsuspends it, on admission)."""
    if not run.spec.queue_name:
        return
    obj["metadata"]["labels"][LABEL_QUEUE_NAME] = run.spec.queue_name
    obj["spec"]["suspend"] = True


def _condition(workload: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in (workload.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def _true(cond: Mapping[str, Any] | None) -> bool:
    return cond is not None and cond.get("status") == "True"


def admitted(workload: Mapping[str, Any] | None) -> bool:
    return workload is not None and _true(_condition(workload, "Admitted"))


def active(workload: Mapping[str, Any]) -> bool:
    """spec.active, default true: false is Kueue's way to stop a queued or admitted job."""
    return (workload.get("spec") or {}).get("active") is not False


def queued_condition(run: TrainingRun, workload: Mapping[str, Any] | None) -> tuple[bool, str, str]:
    """(status, reason, message) of the run's Queued condition, from Kueue's Workload: True
    while Kueue holds the Job, with the reason and message of the Workload's first condition
    that says why (QuotaReserved=False: e.g. `couldn't assign flavors to pod set main:
    insufficient quota ...`; Evicted; Admitted=False while admission checks run); False,
    reason Admitted, once it is admitted."""
    queue = run.spec.queue_name
    if workload is None:
        return (
            True,
            REASON_NO_WORKLOAD,
            f"the Job waits in LocalQueue {queue} for Kueue to create its Workload",
        )
    if admitted(workload):
        cq = ((workload.get("status") or {}).get("admission") or {}).get("clusterQueue")
        where = f" by ClusterQueue {cq}" if cq else ""
        return False, REASON_ADMITTED, f"admitted{where} from LocalQueue {queue}"
    for kind, wanted in (("Evicted", "True"), ("QuotaReserved", "False"), ("Admitted", "False")):
        cond = _condition(workload, kind)
        if cond is not None and cond.get("status") == wanted:
            reason = str(cond.get("reason") or kind)
            return True, reason, str(cond.get("message") or reason)
    return True, REASON_QUEUED, f"waiting in LocalQueue {queue}"


def owner_job(workload: Mapping[str, Any]) -> tuple[str, str] | None:
    """The (kind, name) of the Job or JobSet a Workload stands for (its controller owner)."""
    for ref in workload["metadata"].get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") in ("Job", "JobSet"):
            return str(ref["kind"]), str(ref["name"])
    return None
