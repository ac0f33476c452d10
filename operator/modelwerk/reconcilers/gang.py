"""A distributed TrainingRun's gang (spec.workers.replicas > 1), all or nothing: one Indexed Job
per attempt (builders/gang.py). When a worker fails, the Job fails whole; the next attempt is
recorded in status first, then the old Job is deleted, and the new Job is created only once
every pod of the old attempt is gone from the pod cache: no worker of an old attempt ever
meets one of the new in a rendezvous. The report comes from worker 0.

Hooks called by the TrainingRun reconcile (reconcilers/run_admission.py, run_lifecycle.py);
runs with one worker never get here."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from modelwerk import k8s, kinds
from modelwerk.api.trainingrun import TrainingRun
from modelwerk.builders.gang import COMPLETION_INDEX, LABEL_ATTEMPT, build_service
from modelwerk.jobstate import failure_detail, finished, main_container, succeeded_pod
from modelwerk.manager import Manager
from modelwerk.reconcilers.common import StatusBuilder
from modelwerk.status import get_condition


class Observed(Protocol):
    """What of reconcilers/run_observed.Observed the gang reads and narrows."""

    run: TrainingRun
    body: Mapping[str, Any]
    job: Mapping[str, Any] | None
    pods: Sequence[Mapping[str, Any]]


REASON_RESTARTING = "Restarting"
# The Job's Failed reasons a new attempt may cure; DeadlineExceeded (spec.activeDeadlineSeconds)
# and the like end the run.
RESTARTABLE = frozenset({"PodFailurePolicy", "BackoffLimitExceeded"})


def distributed(run: TrainingRun) -> bool:
    return run.spec.distributed()


def _label_int(body: Mapping[str, Any], label: str) -> int | None:
    value = (body["metadata"].get("labels") or {}).get(label)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def attempt(sb: StatusBuilder) -> int:
    return int((sb.status.get("workers") or {}).get("attempt") or 0)


def _index(pod: Mapping[str, Any]) -> int:
    found = _label_int(pod, COMPLETION_INDEX)
    return found if found is not None else -1


async def settle(mgr: Manager, obs: Observed, sb: StatusBuilder) -> bool:
    """Records the gang in status and narrows `obs` to the current attempt. False while an old
    attempt's Job or pods are still there (its Job is deleted here, if need be): the caller
    writes status and waits for their deletion events."""
    run = obs.run
    assert run.spec.workers is not None
    recorded = int((sb.old.get("workers") or {}).get("attempt") or 0)
    job_attempt = (_label_int(obs.job, LABEL_ATTEMPT) or 0) if obs.job is not None else 0
    # The Job's label wins over a status that lags behind it (never tear down a newer attempt).
    current = max(recorded, job_attempt)
    sb.status["workers"] = {
        "replicas": run.spec.workers.replicas,
        "attempt": current,
        "engine": "IndexedJob",
    }
    stale_job = obs.job is not None and job_attempt < current
    if obs.job is not None and stale_job:
        meta = obs.job["metadata"]
        if not meta.get("deletionTimestamp"):
            await mgr.kube.delete(kinds.JOB, meta["name"], meta["namespace"], uid=meta.get("uid"))
        obs.job = None
    stale_pods = [p for p in obs.pods if (_label_int(p, LABEL_ATTEMPT) or 0) < current]
    if stale_job or stale_pods:
        before = get_condition(sb.old.get("conditions") or [], "Running")
        if before is None or before.get("reason") != REASON_RESTARTING:
            sb.condition(
                "Running",
                False,
                REASON_RESTARTING,
                f"attempt {current} starts once every pod of attempt {current - 1} is gone",
            )
        return False
    obs.pods = [p for p in obs.pods if _label_int(p, LABEL_ATTEMPT) == current]
    return True


async def ensure_service(mgr: Manager, run: TrainingRun, owner: Mapping[str, Any]) -> None:
    """The headless Service, created with each attempt's Job. Not cached (the Service cache
    holds serving children): one create per attempt, AlreadyExists meaning it is there."""
    with contextlib.suppress(k8s.Conflict):
        await mgr.kube.create(build_service(run, owner))


def first_failure(pods: Sequence[Mapping[str, Any]]) -> tuple[Mapping[str, Any] | None, str]:
    """The worker that failed first (the others were stopped because of it) and its story."""
    failed = [
        p
        for p in pods
        if (p.get("status") or {}).get("phase") == "Failed"
        and ((main_container(p).get("state") or {}).get("terminated") or {}).get("exitCode")
    ]

    def ended(pod: Mapping[str, Any]) -> tuple[str, int]:
        term = (main_container(pod).get("state") or {}).get("terminated") or {}
        return str(term.get("finishedAt") or ""), _index(pod)

    pod = min(failed, key=ended, default=None)
    if pod is None:
        return None, ""
    _, detail = failure_detail([pod])
    return pod, f"worker {_index(pod)}: {detail}"


def culprits(run: TrainingRun, pods: Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
    """The pods whose failure is the run's: for a gang, the worker that failed first."""
    if not distributed(run):
        return pods
    pod, _ = first_failure(pods)
    return [pod] if pod is not None else pods


def restart(obs: Observed, sb: StatusBuilder, failed: Mapping[str, Any]) -> bool:
    """A failed attempt with budget left (spec.backoffLimit): records the next attempt in `sb`.
    The caller writes status before deleting the old Job, so the operator restarted in
    between still knows the attempt is over."""
    run = obs.run
    now = attempt(sb)
    if finished(sb.old) or now >= run.spec.backoff_limit:
        return False
    if str(failed.get("reason") or "") not in RESTARTABLE:
        return False
    _, detail = first_failure(obs.pods)
    sb.status["workers"] = {**sb.status["workers"], "attempt": now + 1}
    sb.condition(
        "Running",
        False,
        REASON_RESTARTING,
        f"attempt {now} failed ({detail or failed.get('message') or 'a worker failed'}); "
        f"attempt {now + 1} of {run.spec.backoff_limit + 1} starts once its pods are gone",
    )
    return True


async def teardown(mgr: Manager, obs: Observed, job: Mapping[str, Any], message: str) -> None:
    """Deletes the failed attempt's Job (its pods follow by ownerReference) and says so."""
    meta = job["metadata"]
    await mgr.kube.delete(kinds.JOB, meta["name"], meta["namespace"], uid=meta.get("uid"))
    mgr.store(kinds.JOB).remove((meta["namespace"], meta["name"]))
    await mgr.kube.event(obs.body, reason=REASON_RESTARTING, message=message, type_="Warning")


def report_pod(run: TrainingRun, pods: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The succeeded pod whose report counts: worker 0's in a gang."""
    if not distributed(run):
        return succeeded_pod(pods)
    return succeeded_pod([p for p in pods if _index(p) == 0])
