"""Why a run's pod does not exist.

A ServiceAccount the run may not use, checked before the Job is created: whoever may create
TrainingRuns must not thereby run as any identity of the namespace.

Pods the Job controller cannot create: a ResourceQuota, a LimitRange or an admission policy
refuses them. The Job carries no condition for that, only Warning Events `FailedCreate` (and it
retries with backoff), so a run whose Job has had no pod for a few seconds reads its Job's
Events, looks again every RECHECK_SECONDS while it has none, and stops once a pod exists."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from modelwerk import constants, kinds
from modelwerk.jobstate import seconds_since
from modelwerk.manager import Manager

# A Job's first pod normally follows within a second; before this, no Events are read.
GRACE_SECONDS: Final = 5.0
RECHECK_SECONDS: Final = 15.0
REASON_QUOTA: Final = "QuotaExceeded"
REASON_REFUSED: Final = "PodCreationRefused"


def verdict(events: Sequence[Mapping[str, Any]]) -> tuple[str, str] | None:
    """(reason, message) of the newest FailedCreate Event, or None without one."""
    if not events:
        return None
    latest = max(
        events,
        key=lambda e: (
            str(e.get("lastTimestamp") or e.get("eventTime") or "")
            + str((e.get("metadata") or {}).get("creationTimestamp") or "")
        ),
    )
    message = str(latest.get("message") or "the Job controller cannot create the pod")
    reason = REASON_QUOTA if "exceeded quota" in message else REASON_REFUSED
    return reason, f"the Job's pod is refused: {message}"


async def refused(mgr: Manager, job: Mapping[str, Any]) -> tuple[tuple[str, str] | None, float]:
    """For a Job without pods: why its pods are refused (or None), and when to look again."""
    age = seconds_since(job["metadata"].get("creationTimestamp"), mgr.now())
    if age is not None and age < GRACE_SECONDS:
        return None, GRACE_SECONDS - age
    events = await mgr.kube.list(
        kinds.EVENT,
        job["metadata"]["namespace"],
        fields={"involvedObject.uid": str(job["metadata"]["uid"]), "reason": "FailedCreate"},
    )
    return verdict(events), RECHECK_SECONDS


async def service_account_refused(mgr: Manager, namespace: str, name: str | None) -> str | None:
    """Why the run may not run as ServiceAccount `name` (None: it may, or names none)."""
    if not name:
        return None
    account = await mgr.kube.get(kinds.SERVICE_ACCOUNT, name, namespace)
    annotation = constants.ANNOTATION_TRAININGRUNS_ALLOWED
    if account is None:
        return f"ServiceAccount {name} does not exist in namespace {namespace}"
    if ((account["metadata"].get("annotations") or {}).get(annotation)) != "true":
        return (
            f"ServiceAccount {name} does not allow TrainingRuns to run as it: its namespace's "
            f'admin may annotate it {annotation}="true"'
        )
    return None
