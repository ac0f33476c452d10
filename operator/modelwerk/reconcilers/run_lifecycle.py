"""A TrainingRun's Job once it exists: its suspend (or Kueue's hold), attempts, lineage and the
data validation, then what its conditions and newest pod say: failed (or a gang restarts),
complete (on to run_outcome), suspended, held, stuck, running or pending."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelwerk.builders import kueue as kueue_builder
from modelwerk.evaluation import lineage
from modelwerk.jobstate import (
    STUCK_REASONS,
    failure_detail,
    image_id,
    job_condition,
    job_finished,
    main_container,
    newest,
    recorded_image,
    unschedulable,
)
from modelwerk.manager import Manager
from modelwerk.reconcilers import gang, jobset, kueue, refusals, run_outcome, validation
from modelwerk.reconcilers.common import StatusBuilder
from modelwerk.reconcilers.run_admission import Admitted
from modelwerk.reconcilers.run_observed import Observed
from modelwerk.reconcilers.run_status import write
from modelwerk.status import get_condition


async def follow(
    mgr: Manager, obs: Observed, sb: StatusBuilder, admitted: Admitted
) -> float | None:
    run, body = obs.run, obs.body
    job, kind, on_jobset = admitted.job, admitted.kind, admitted.on_jobset
    held = False
    if kueue_builder.queued(run):
        # Kueue owns the Job's suspend: spec.suspend goes to its Workload instead.
        done = job_finished(jobset.as_job(job) if on_jobset else job)
        held = await kueue.settle(mgr, run, job, sb, done)
    # suspend is the one mutable field: carry it to the Job (a merge patch of that field only).
    elif bool((job.get("spec") or {}).get("suspend")) != run.spec.suspend and not job_finished(job):
        job = await mgr.kube.patch(
            kind,
            job["metadata"]["name"],
            run.metadata.namespace,
            {"spec": {"suspend": run.spec.suspend}},
        )
        mgr.store(kind).upsert(job)
    if on_jobset:
        job = jobset.as_job(job)  # read like a Job from here on

    jstatus = job.get("status") or {}
    pods = obs.pods
    sb.status["attempts"] = (
        int(jstatus.get("failed", 0))
        + int(jstatus.get("succeeded", 0))
        + int(jstatus.get("active", 0))
    )
    if jstatus.get("startTime"):
        sb.status.setdefault("startTime", jstatus["startTime"])
    # The digest actually run is read from the pods; once they are gone (pod GC, a drained node)
    # the one recorded while they were there stands.
    ran = image_id(pods) or validation.init_image_id(pods) or recorded_image(sb.old)
    sb.status["reproducibility"] = lineage(run, ran, gang.attempt(sb), admitted.engine)
    checked = validation.observe(run, pods, sb.old)
    if checked is not None:
        sb.status["validation"] = checked
        ok = bool(checked["passed"])
        reason = validation.REASON_PASSED if ok else validation.REASON_FAILED
        sb.condition("Validated", ok, reason, str(checked["message"]))
        if not ok:
            return await _rejected_data(mgr, obs, sb, job)

    failed = job_condition(job, "Failed")
    complete = job_condition(job, "Complete")
    if failed is not None:
        if gang.distributed(run) and not on_jobset and gang.restart(obs, sb, failed):
            # Status first: an operator restarted before the delete still knows the attempt.
            requeue = await write(mgr, body, sb, "Running")
            restarting = get_condition(sb.status["conditions"], "Running") or {}
            await gang.teardown(mgr, obs, job, str(restarting.get("message")))
            return requeue
        return await _failed(mgr, obs, sb, failed)
    if complete is not None:
        sb.status["completionTime"] = jstatus.get("completionTime") or complete.get(
            "lastTransitionTime"
        )
        sb.condition("Running", False, "Completed", "the training pod finished")
        sb.condition("Complete", True, "Completed", "the training container exited 0")
        return await run_outcome.finished_run(mgr, obs, sb)

    if run.spec.suspend or (job_condition(job, "Suspended") and not kueue_builder.queued(run)):
        sb.condition("Running", False, "Suspended", "spec.suspend is true: the Job is suspended")
        return await write(mgr, body, sb, "Pending")
    if held or (kueue_builder.queued(run) and (job.get("spec") or {}).get("suspend")):
        # Admitted, but Kueue has yet to unsuspend the Job: still its to start.
        sb.condition("Running", False, kueue.CONDITION, f"Kueue holds the {kind.kind}")
        return await write(mgr, body, sb, "Pending")
    latest = newest(pods)
    waiting = (main_container(latest).get("state") or {}).get("waiting") if latest else None
    waiting = validation.init_waiting(latest) or waiting
    if waiting and waiting.get("reason") in STUCK_REASONS:
        sb.condition(
            "Running",
            False,
            str(waiting["reason"]),
            str(waiting.get("message") or waiting["reason"]),
        )
        return await write(mgr, body, sb, "Pending")
    if (
        int(jstatus.get("active", 0)) > 0
        and latest
        and (latest.get("status") or {}).get("phase") == "Running"
    ):
        sb.condition("Running", True, "PodRunning", f"pod {latest['metadata']['name']} is running")
        return await write(mgr, body, sb, "Running")
    if latest and (latest.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        # The pod ended and the Job controller has yet to say what that means for the Job (done,
        # or another attempt): still running, not back to pending.
        sb.condition(
            "Running",
            True,
            "PodTerminated",
            f"pod {latest['metadata']['name']} ended; waiting for the Job's verdict",
        )
        return await write(mgr, body, sb, "Running")
    unscheduled = unschedulable(latest) if latest else None
    if unscheduled is not None:
        sb.condition("Running", False, *unscheduled)
        return await write(mgr, body, sb, "Pending")
    why, again = await refusals.refused(mgr, job) if latest is None else (None, None)
    pending = ("PodPending", "waiting for the training pod to start")
    sb.condition("Running", False, *(why or pending))
    requeue = await write(mgr, body, sb, "Pending")
    return min((d for d in (requeue, again) if d is not None), default=None)


async def _rejected_data(
    mgr: Manager, obs: Observed, sb: StatusBuilder, job: Mapping[str, Any]
) -> float | None:
    failed = job_condition(job, "Failed")
    ended = validation.finished_at(obs.pods) or (failed or {}).get("lastTransitionTime")
    if ended:
        sb.status.setdefault("completionTime", ended)
    why = "the data validation refused the datasets"
    sb.condition("Running", False, validation.REASON_FAILED, f"{why}: training never started")
    sb.condition("Registered", False, "Rejected", why)
    return await write(mgr, obs.body, sb, "Rejected")


async def _failed(
    mgr: Manager, obs: Observed, sb: StatusBuilder, failed: Mapping[str, Any]
) -> float | None:
    job_reason = str(failed.get("reason") or "Failed")
    pod_reason, detail = failure_detail(gang.culprits(obs.run, obs.pods))
    if gang.distributed(obs.run):
        detail = gang.first_failure(obs.pods)[1] or detail  # "worker <index>: ..."
    reason = pod_reason if pod_reason and pod_reason not in ("Error", "Completed") else job_reason
    message = str(failed.get("message") or job_reason)
    if detail:
        message = f"{message}; {detail}"
    before = get_condition(sb.old.get("conditions") or [], "Failed")
    if not detail and before is not None and before.get("status") == "True":
        # The failed pods are gone (pod GC, a drained node): the reason read from them stands.
        reason, message = str(before.get("reason") or reason), str(before.get("message") or message)
    sb.status["completionTime"] = failed.get("lastTransitionTime")
    sb.condition("Running", False, "Failed", "the Job failed")
    sb.condition("Failed", True, reason, message)
    return await write(mgr, obs.body, sb, "Failed")
