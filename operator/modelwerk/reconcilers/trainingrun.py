"""TrainingRun: Job -> pods -> report -> evaluation gate -> registered Model version."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from modelwerk import k8s, kinds, registry
from modelwerk.api.model import Model
from modelwerk.api.trainingrun import TrainingRun
from modelwerk.builders import kueue as kueue_builder
from modelwerk.builders.job import OutputError, build_job, job_name
from modelwerk.builders.jobset import CRD_NAME, build_jobset
from modelwerk.controller import Controller, Watch, dependents, itself, owner
from modelwerk.evaluation import evaluate, lineage
from modelwerk.jobstate import (
    STUCK_REASONS,
    concluded,
    failure_detail,
    finished,
    image_id,
    job_condition,
    job_finished,
    main_container,
    newest,
    recorded_image,
    seconds_since,
    termination_message,
    ttl_remaining,
    unschedulable,
)
from modelwerk.manager import Manager
from modelwerk.reconcilers import gang, jobset, kueue, refusals, validation
from modelwerk.reconcilers.common import StatusBuilder, write_status
from modelwerk.reconcilers.netpol import ensure_training_policy
from modelwerk.reconcilers.registration import register_version
from modelwerk.report import REASON_MISSING, ReportError, parse_report
from modelwerk.status import get_condition
from modelwerk.store import ObjectKey

KIND = kinds.TRAININGRUN
log = logging.getLogger(__name__)

# A completed Job whose succeeded pod is not (yet) in the cache: how long to wait for it before
# the report counts as missing, and how often to look again meanwhile.
REPORT_WAIT_SECONDS = 30.0
REPORT_RETRY_SECONDS = 2.0


@dataclass
class Observed:
    """What the cache says about a run's world."""

    run: TrainingRun
    body: Mapping[str, Any]
    model: Model | None
    model_body: Mapping[str, Any] | None
    job: Mapping[str, Any] | None
    pods: Sequence[Mapping[str, Any]]


def observe(mgr: Manager, key: ObjectKey, body: Mapping[str, Any]) -> Observed:
    run = TrainingRun.from_body(body)
    model_body = None
    if run.spec.model:
        model_body = mgr.store(kinds.MODEL).get((key[0], run.spec.model))
    return Observed(
        run=run,
        body=body,
        model=Model.from_body(model_body) if model_body is not None else None,
        model_body=model_body,
        job=mgr.store(kinds.JOB).get((key[0], job_name(run))),
        pods=mgr.store(kinds.POD).by_index(kinds.BY_OWNER, key),
    )


async def reconcile(mgr: Manager, key: ObjectKey) -> float | None:
    body = mgr.store(KIND).get(key)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None
    sb = StatusBuilder(body, mgr.timestamp())
    try:
        obs = observe(mgr, key, body)
    except ValidationError as err:
        sb.condition("Accepted", False, "InvalidSpec", str(err)[:1024])
        await _write(mgr, body, sb, "Failed")
        return None
    requeue = await _reconcile(mgr, obs, sb)
    return requeue


async def _reconcile(mgr: Manager, obs: Observed, sb: StatusBuilder) -> float | None:
    run, body = obs.run, obs.body
    # Only a run yet to finish waits for its Model: a finished one keeps its outcome when the
    # Model is deleted later (or the namespace goes away, Models first).
    if run.spec.model and obs.model is None and not finished(sb.old):
        sb.condition(
            "Accepted",
            False,
            "ModelNotFound",
            f"Model {run.spec.model!r} does not exist in namespace "
            f"{run.metadata.namespace}; the run starts once it does",
        )
        await _write(mgr, body, sb, "Pending")
        return None  # the Model's watch event wakes this run

    engine = await jobset.engine(mgr, run, sb) if gang.distributed(run) else None
    on_jobset = engine == jobset.ENGINE_JOBSET
    kind = kinds.JOBSET if on_jobset else kinds.JOB
    if gang.distributed(run) and engine is None and obs.job is None and not finished(sb.old):
        missing = (
            f"spec.workers.engine is jobSet and the CRD {CRD_NAME} is not installed "
            "(or the operator's JobSet engine is off: MODELWERK_JOBSET, chart value jobSet.enabled)"
        )
        sb.condition("Accepted", False, jobset.REASON_NOT_INSTALLED, missing)
        await _write(mgr, body, sb, "Pending")
        return 60.0  # CRDs have no watch here: look again (manager.crd_installed caches a minute)
    if on_jobset:
        jobset.settle(mgr, obs, sb)
    elif gang.distributed(run) and not await gang.settle(mgr, obs, sb):
        return await _write(mgr, body, sb, "Running")  # an old attempt's pods are going
    job = obs.job
    unqueued = (
        await kueue.refused(mgr, run)
        if job is None and not finished(sb.old) and kueue_builder.queued(run)
        else None
    )
    if unqueued is not None:
        sb.condition("Accepted", False, kueue.REASON_NOT_INSTALLED, unqueued)
        await _write(mgr, body, sb, "Pending")
        return 60.0  # as for JobSets: CRDs have no watch here
    if job is None and not finished(sb.old):
        try:
            desired = (
                build_jobset(run, body, obs.model)
                if on_jobset
                else build_job(run, body, obs.model, gang.attempt(sb))
            )
        except OutputError as err:
            sb.condition("Accepted", False, "NoOutputLocation", str(err))
            await _write(mgr, body, sb, "Pending")
            return None
        ns, account = run.metadata.namespace or "", run.spec.service_account_name
        if (refused := await refusals.service_account_refused(mgr, ns, account)) is not None:
            sb.condition("JobCreated", False, "ServiceAccountNotAllowed", refused)
            return await _write(mgr, body, sb, "Failed")
        sb.condition("Accepted", True, "Accepted", "spec is valid")
        await ensure_training_policy(mgr, run, body)
        try:
            job = await mgr.kube.create(desired)
        except k8s.Conflict:
            job = await mgr.kube.get(kind, desired["metadata"]["name"], run.metadata.namespace)
        except k8s.Invalid as err:
            # Admission (Pod Security, quota, policy) refused what the run asks for.
            sb.condition("JobCreated", False, "JobRejected", err.message)
            await _write(mgr, body, sb, "Failed")
            return None
        if job is not None:
            mgr.store(kind).upsert(job)
            if gang.distributed(run) and not on_jobset:
                await gang.ensure_service(mgr, run, body)
    if job is None:
        return await _write(mgr, body, sb, sb.old.get("phase") or "Pending")

    owners = [o.get("uid") for o in job["metadata"].get("ownerReferences") or []]
    if run.metadata.uid not in owners:
        sb.condition(
            "JobCreated",
            False,
            "NameConflict",
            f"a {kind.kind} named {job['metadata']['name']} exists and is not this run's",
        )
        return await _write(mgr, body, sb, "Failed")
    sb.condition("Accepted", True, "Accepted", "spec is valid")
    sb.condition("JobCreated", True, "JobCreated", f"{kind.kind} {job['metadata']['name']}")
    sb.status["jobName"] = job["metadata"]["name"]

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
    sb.status["reproducibility"] = lineage(run, ran, gang.attempt(sb), engine)
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
            requeue = await _write(mgr, body, sb, "Running")
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
        return await _finished_run(mgr, obs, sb)

    if run.spec.suspend or (job_condition(job, "Suspended") and not kueue_builder.queued(run)):
        sb.condition("Running", False, "Suspended", "spec.suspend is true: the Job is suspended")
        return await _write(mgr, body, sb, "Pending")
    if held or (kueue_builder.queued(run) and (job.get("spec") or {}).get("suspend")):
        # Admitted, but Kueue has yet to unsuspend the Job: still its to start.
        sb.condition("Running", False, kueue.CONDITION, f"Kueue holds the {kind.kind}")
        return await _write(mgr, body, sb, "Pending")
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
        return await _write(mgr, body, sb, "Pending")
    if (
        int(jstatus.get("active", 0)) > 0
        and latest
        and (latest.get("status") or {}).get("phase") == "Running"
    ):
        sb.condition("Running", True, "PodRunning", f"pod {latest['metadata']['name']} is running")
        return await _write(mgr, body, sb, "Running")
    if latest and (latest.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        # The pod ended and the Job controller has yet to say what that means for the Job (done,
        # or another attempt): still running, not back to pending.
        sb.condition(
            "Running",
            True,
            "PodTerminated",
            f"pod {latest['metadata']['name']} ended; waiting for the Job's verdict",
        )
        return await _write(mgr, body, sb, "Running")
    unscheduled = unschedulable(latest) if latest else None
    if unscheduled is not None:
        sb.condition("Running", False, *unscheduled)
        return await _write(mgr, body, sb, "Pending")
    why, again = await refusals.refused(mgr, job) if latest is None else (None, None)
    pending = ("PodPending", "waiting for the training pod to start")
    sb.condition("Running", False, *(why or pending))
    requeue = await _write(mgr, body, sb, "Pending")
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
    return await _write(mgr, obs.body, sb, "Rejected")


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
    return await _write(mgr, obs.body, sb, "Failed")


async def _finished_run(mgr: Manager, obs: Observed, sb: StatusBuilder) -> float | None:
    run, body = obs.run, obs.body
    if concluded(sb.old):
        # The report was read, the verdict taken and the version registered once; what changes
        # later (the pods garbage-collected, the Model deleted, an alias moved) does not reopen
        # the run.
        return await _write(mgr, body, sb, str(sb.old["phase"]))
    pod = gang.report_pod(run, obs.pods)
    if pod is None:
        waited = seconds_since(sb.status.get("completionTime"), mgr.now())
        if waited is not None and waited < REPORT_WAIT_SECONDS:
            # The Job's watch event can overtake its pod's: the pod that completed the Job is
            # on its way to the cache. Judging now would fail a good run as ReportMissing.
            await _write(mgr, body, sb, str(sb.old.get("phase") or "Running"))
            return REPORT_RETRY_SECONDS
    message = termination_message(pod)
    try:
        if pod is None:
            raise ReportError(
                REASON_MISSING,
                f"the Job completed {REPORT_WAIT_SECONDS:g}s ago or more, but its succeeded pod "
                "is gone: the report cannot be read",
            )
        report = parse_report(message)
    except ReportError as err:
        sb.condition("Evaluated", False, err.reason, err.message)
        sb.condition("Failed", True, err.reason, err.message)
        return await _write(mgr, body, sb, "Failed")
    sb.status["metrics"] = dict(report.metrics)
    artifact = report.artifact.model_dump(mode="json", exclude_none=True)
    sb.status["artifact"] = artifact
    if report.baseline is not None:
        sb.status["baseline"] = {
            **report.baseline.model_dump(mode="json", exclude_none=True),
            "featureOrder": report.feature_order,
        }
    elif (validated := validation.baseline(obs.pods)) is not None:
        sb.status["baseline"] = validated  # training reported none: the data's statistics

    # The Model's status as its spec makes it now: declared versions and aliases count even
    # before the Model's own reconcile has written them (the gate reads the alias, registration
    # looks up the run's UID).
    model_status = registry.desired_status(obs.model_body, sb.at) if obs.model_body else None
    already = registry.find_by_uid(
        (model_status or {}).get("versions") or [], run.metadata.uid or ""
    )
    if already is None:
        verdict = evaluate(run, report.metrics, model_status)
        if "evaluation" in sb.old and get_condition(sb.old.get("conditions") or [], "Evaluated"):
            # The verdict is taken once: a later promotion of `mustBeat` must not flip it.
            verdict = sb.old["evaluation"]
    else:
        verdict = sb.old.get("evaluation") or evaluate(run, report.metrics, None)
    sb.status["evaluation"] = verdict
    if not verdict.get("passed"):
        sb.condition(
            "Evaluated",
            False,
            "BelowThreshold" if "threshold" in str(verdict.get("message")) else "GateFailed",
            str(verdict.get("message")),
        )
        sb.condition("Registered", False, "Rejected", "the evaluation gate refused the result")
        return await _write(mgr, body, sb, "Rejected")
    sb.condition("Evaluated", True, "Passed", str(verdict.get("message")))

    if not run.spec.model:
        sb.condition("Registered", False, "NoModel", "spec.model is empty: nothing to register")
        return await _write(mgr, body, sb, "Succeeded")
    if obs.model_body is None:
        sb.condition("Registered", False, "ModelNotFound", f"Model {run.spec.model!r} is gone")
        return await _write(mgr, body, sb, "Failed")

    version = already
    if version is None:
        entry = {
            "artifact": artifact,
            "metrics": dict(report.metrics),
            "source": {"trainingRun": run.metadata.name, "uid": run.metadata.uid},
            "lineage": sb.status["reproducibility"],
            "registeredAt": mgr.timestamp(),
            "gate": gate_record(verdict, sb.status.get("validation")),
        }
        if sb.status.get("baseline"):
            entry["baseline"] = sb.status["baseline"]
        version = await register_version(mgr, obs.model_body, entry)
    sb.status["modelVersion"] = int(version["version"])
    sb.condition(
        "Registered", True, "Registered", f"version {version['version']} of Model {run.spec.model}"
    )
    return await _write(mgr, body, sb, "Succeeded")


def gate_record(verdict: Mapping[str, Any], checked: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a protected alias's admission policy reads off a version (status.versions[].gate):
    the evidence is copied from the run when it registers, by the operator, the only writer of
    Model status the policy admits."""
    gate: dict[str, Any] = {"metric": str(verdict.get("metric") or ""), "passed": True}
    if checked is not None:
        gate["dataValidated"] = bool(checked.get("passed"))
    return gate


async def _write(
    mgr: Manager, body: Mapping[str, Any], sb: StatusBuilder, phase: str
) -> float | None:
    # Pending (Job created) and the outcome get an Event; Running, which follows within
    # seconds, only shows in the status: one write less per run.
    status = await write_status(mgr, KIND, body, sb, phase, _bad, quiet_phases=("Running",))
    delay = ttl_remaining(body, status, mgr.now())
    if delay is None or delay > 0:
        return delay
    meta = body["metadata"]
    await mgr.kube.delete(KIND, meta["name"], meta["namespace"], uid=meta["uid"])
    return None


def _bad(cond: Mapping[str, Any]) -> bool:
    """Conditions worth a Warning: failures, refusals and stuck pods; a gate's rejection is the
    gate working, not bad news."""
    if cond["type"] == "Failed":
        return bool(cond["status"] == "True")
    if cond["type"] == "Running":
        return cond["status"] == "False" and cond["reason"] in STUCK_REASONS
    if cond["type"] == "Registered":
        return cond["status"] == "False" and cond["reason"] not in ("Rejected", "NoModel")
    return (
        cond["type"] in ("Accepted", "JobCreated")
        and cond["status"] == "False"
        and (cond["reason"] != "ModelNotFound")
    )


CONTROLLER = Controller(
    kind=KIND,
    reconcile=reconcile,
    watches=(
        Watch(KIND, itself),
        Watch(kinds.JOB, owner(kinds.JOB)),
        Watch(kinds.JOBSET, owner(kinds.JOBSET)),
        Watch(kinds.WORKLOAD, owner(kinds.WORKLOAD)),
        Watch(kinds.POD, owner(kinds.POD)),
        # Runs waiting for their Model (ModelNotFound), or gated on one of its aliases.
        Watch(kinds.MODEL, dependents(KIND, kinds.BY_MODEL)),
    ),
)
