"""A queued run (spec.queueName) and the Kueue Workload of its Job or JobSet (builders/kueue.py):
whether the operator can queue it at all, the Queued condition, and spec.suspend carried to the
Workload.

Kueue owns the Job's spec.suspend while the run is queued: it unsuspends the Job on admission
and suspends it again on eviction, and it resumes an admitted Job that anyone else suspends. So
the operator never writes the Job's suspend for a queued run; the run's own spec.suspend
becomes the Workload's spec.active (false: Kueue evicts the Workload and suspends the Job),
Kueue's documented way to stop a queued job."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from modelwerk import kinds
from modelwerk.api.trainingrun import TrainingRun
from modelwerk.builders import kueue
from modelwerk.builders.job import job_name
from modelwerk.manager import Manager
from modelwerk.reconcilers.common import StatusBuilder
from modelwerk.status import get_condition

REASON_NOT_INSTALLED: Final = "KueueNotInstalled"
CONDITION: Final = "Queued"


async def refused(mgr: Manager, run: TrainingRun) -> str | None:
    """Why a queued run cannot be queued here, or None: the Workload CRD must be installed and
    the operator's Kueue support on, else nobody would ever unsuspend its Job."""
    if kinds.enabled(kinds.WORKLOAD) and await mgr.crd_installed(kueue.CRD_NAME):
        return None
    return (
        f"spec.queueName is {run.spec.queue_name} and the CRD {kueue.CRD_NAME} is not installed "
        "(or the operator's Kueue support is off: MODELWERK_KUEUE, chart value kueue.enabled)"
    )


def workload_of(mgr: Manager, run: TrainingRun, job: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The Workload Kueue made for this Job or JobSet (its controller owner, by UID: a Workload
    of an earlier attempt's Job, being garbage-collected, is not this one's)."""
    key = (run.metadata.namespace or "", job_name(run))
    uid = job["metadata"].get("uid")
    for workload in mgr.store(kinds.WORKLOAD).by_index(kinds.BY_OWNER, key):
        refs = workload["metadata"].get("ownerReferences") or []
        if any(ref.get("controller") and ref.get("uid") == uid for ref in refs):
            return workload
    return None


def _suspended_by_us(sb: StatusBuilder) -> bool:
    running = get_condition(sb.old.get("conditions") or [], "Running") or {}
    return running.get("reason") == "Suspended"


async def carry_suspend(
    mgr: Manager, run: TrainingRun, workload: Mapping[str, Any] | None, sb: StatusBuilder
) -> Mapping[str, Any] | None:
    """spec.suspend -> the Workload's spec.active, a merge patch of that field only when they
    differ. Reactivated only when the run's status says the operator suspended it: Kueue also
    deactivates Workloads of its own accord (waitForPodsReady's requeuing limit), and the
    operator must not undo that."""
    if workload is None:
        return None  # not made yet: the next reconcile (the Workload's watch event) carries it
    want = not run.spec.suspend
    if kueue.active(workload) == want or (want and not _suspended_by_us(sb)):
        return workload
    meta = workload["metadata"]
    patched = await mgr.kube.patch(
        kinds.WORKLOAD, meta["name"], meta.get("namespace"), {"spec": {"active": want}}
    )
    mgr.store(kinds.WORKLOAD).upsert(patched)
    return patched


async def settle(
    mgr: Manager, run: TrainingRun, job: Mapping[str, Any], sb: StatusBuilder, finished: bool
) -> bool:
    """Carries spec.suspend to the Workload and sets the Queued condition; True while Kueue
    holds the Job (the run stays Pending). A finished Job keeps the condition it had, and its
    Workload, done too, is left as it is."""
    if finished:
        return False
    workload = await carry_suspend(mgr, run, workload_of(mgr, run, job), sb)
    held, reason, message = kueue.queued_condition(run, workload)
    sb.condition(CONDITION, held, reason, message)
    return held
