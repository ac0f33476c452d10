"""TrainingRun: Job -> pods -> report -> evaluation gate -> registered Model version."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from modelwerk import k8s, registry
from modelwerk.api.model import Model
from modelwerk.api.trainingrun import TrainingRun
from modelwerk.builders.job import OutputError, build_job, hyperparameters_hash, job_name
from modelwerk.reconcilers import model as model_reconciler
from modelwerk.reconcilers.common import StatusBuilder, write_status
from modelwerk.report import REASON_MISSING, ReportError, parse_report
from modelwerk.runtime import Runtime
from modelwerk.status import get_condition, now, parse_time
from modelwerk.store import ObjectKey

KIND = "TrainingRun"
log = logging.getLogger(__name__)

# A completed Job whose succeeded pod is not (yet) in the cache: how long to wait for it before
# the report counts as missing, and how often to look again meanwhile.
REPORT_WAIT_SECONDS = 30.0
REPORT_RETRY_SECONDS = 2.0

# Container waiting reasons that mean the run cannot make progress by itself.
STUCK_REASONS = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "CrashLoopBackOff",
        "RunContainerError",
    }
)


@dataclass
class Observed:
    """What the cache says about a run's world."""

    run: TrainingRun
    body: Mapping[str, Any]
    model: Model | None
    model_body: Mapping[str, Any] | None
    job: Mapping[str, Any] | None
    pods: Sequence[Mapping[str, Any]]


def _time(value: str | None) -> dt.datetime | None:
    return parse_time(value) if value else None


def _job_condition(job: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    cond = get_condition((job.get("status") or {}).get("conditions") or [], type_)
    return cond if cond is not None and cond.get("status") == "True" else None


def _main_container(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == "train":
            return dict(status)
    return {}


def _newest(pods: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "", default=None)


def _succeeded_pod(pods: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    done = [p for p in pods if (p.get("status") or {}).get("phase") == "Succeeded"]
    return _newest(done)


def _image_id(pods: Sequence[Mapping[str, Any]]) -> str | None:
    for pod in sorted(
        pods, key=lambda p: p["metadata"].get("creationTimestamp") or "", reverse=True
    ):
        image_id = _main_container(pod).get("imageID")
        if image_id:
            # Runtimes prefix the digest with a scheme (docker-pullable://); keep ref@digest.
            return str(image_id).split("://", 1)[-1]
    return None


def _failure_detail(pods: Sequence[Mapping[str, Any]]) -> tuple[str | None, str]:
    """The last failed container's reason (OOMKilled, Error...) and a readable message."""
    failed = [p for p in pods if (p.get("status") or {}).get("phase") == "Failed"]
    pod = _newest(failed)
    if pod is None:
        return None, ""
    term = (_main_container(pod).get("state") or {}).get("terminated") or {}
    reason = term.get("reason")
    code = term.get("exitCode")
    message = f"container exited with code {code}" + (f" ({reason})" if reason else "")
    if term.get("message"):
        message += f": {str(term['message'])[:512]}"
    return reason, message


def lineage(run: TrainingRun, image_id: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "image": image_id or run.spec.image,
        "hyperparametersHash": hyperparameters_hash(dict(run.spec.hyperparameters)),
        "datasets": [d.model_dump(mode="json", exclude_none=True) for d in run.spec.datasets],
    }
    if run.spec.code is not None:
        result["code"] = run.spec.code.model_dump(mode="json", exclude_none=True)
    if run.spec.seed is not None:
        result["seed"] = run.spec.seed
    return result


def evaluate(
    run: TrainingRun, metrics: Mapping[str, float], model_status: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The evaluation gate's verdict: threshold and, with `mustBeat`, the alias's version."""
    gate = run.spec.evaluation
    if gate is None:
        return {"metric": "", "passed": True, "message": "no evaluation gate"}
    result: dict[str, Any] = {"metric": gate.metric, "direction": str(gate.direction)}
    if gate.threshold is not None:
        result["threshold"] = gate.threshold
    value = metrics.get(gate.metric)
    if value is None:
        reported = ", ".join(sorted(metrics)) or "none"
        return {
            **result,
            "passed": False,
            "message": f"metric {gate.metric!r} was not reported (reported: {reported})",
        }
    result["value"] = value
    direction = gate.direction
    if gate.threshold is not None and (registry.better(gate.threshold, value, direction)):
        word = ">=" if str(direction) == "max" else "<="
        return {
            **result,
            "passed": False,
            "message": f"{gate.metric}={value:g} does not meet the threshold "
            f"{word} {gate.threshold:g}",
        }
    if gate.must_beat:
        status = model_status or {}
        held = registry.metric_of_alias(
            status.get("versions") or [], status.get("aliases") or {}, gate.must_beat, gate.metric
        )
        if held is not None and held[1] is not None:
            number, other = held[0], held[1]
            result["baselineValue"] = other
            if not registry.better(value, other, direction):
                return {
                    **result,
                    "passed": False,
                    "message": f"{gate.metric}={value:g} does not beat {gate.must_beat} "
                    f"(version {number}: {other:g})",
                }
            return {
                **result,
                "passed": True,
                "message": f"{gate.metric}={value:g} beats {gate.must_beat} "
                f"(version {number}: {other:g})",
            }
    return {**result, "passed": True, "message": f"{gate.metric}={value:g} passes"}


def observe(rt: Runtime, key: ObjectKey, body: Mapping[str, Any]) -> Observed:
    run = TrainingRun.from_body(body)
    model_body = None
    if run.spec.model:
        model_body = rt.store("Model").get((key[0], run.spec.model))
    return Observed(
        run=run,
        body=body,
        model=Model.from_body(model_body) if model_body is not None else None,
        model_body=model_body,
        job=rt.store("Job").get((key[0], job_name(run))),
        pods=rt.store("Pod").by_index("run", key),
    )


async def reconcile(rt: Runtime, key: ObjectKey) -> float | None:
    body = rt.store(KIND).get(key)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None
    sb = StatusBuilder(body)
    try:
        obs = observe(rt, key, body)
    except ValidationError as err:
        sb.condition("Accepted", False, "InvalidSpec", str(err)[:1024])
        await _write(rt, body, sb, "Failed")
        return None
    requeue = await _reconcile(rt, obs, sb)
    return requeue


async def _reconcile(rt: Runtime, obs: Observed, sb: StatusBuilder) -> float | None:
    run, body = obs.run, obs.body
    # Only a run yet to finish waits for its Model: a finished one keeps its outcome when the
    # Model is deleted later (or the namespace goes away, Models first).
    if run.spec.model and obs.model is None and not _finished(sb.old):
        sb.condition(
            "Accepted",
            False,
            "ModelNotFound",
            f"Model {run.spec.model!r} does not exist in namespace "
            f"{run.metadata.namespace}; the run starts once it does",
        )
        await _write(rt, body, sb, "Pending")
        return None  # the Model's watch event wakes this run

    job = obs.job
    if job is None and not _finished(sb.old):
        try:
            desired = build_job(run, body, obs.model)
        except OutputError as err:
            sb.condition("Accepted", False, "NoOutputLocation", str(err))
            await _write(rt, body, sb, "Pending")
            return None
        sb.condition("Accepted", True, "Accepted", "spec is valid")
        try:
            job = await rt.kube.create(desired)
        except k8s.Conflict:
            job = await rt.kube.get(
                "batch/v1", "Job", desired["metadata"]["name"], run.metadata.namespace
            )
        except k8s.Invalid as err:
            # Admission (Pod Security, quota, policy) refused what the run asks for.
            sb.condition("JobCreated", False, "JobRejected", err.message)
            await _write(rt, body, sb, "Failed")
            return None
        if job is not None:
            rt.store("Job").upsert(job)
    if job is None:
        return await _write(rt, body, sb, sb.old.get("phase") or "Pending")

    owners = [o.get("uid") for o in job["metadata"].get("ownerReferences") or []]
    if run.metadata.uid not in owners:
        sb.condition(
            "JobCreated",
            False,
            "NameConflict",
            f"a Job named {job['metadata']['name']} exists and is not this run's",
        )
        return await _write(rt, body, sb, "Failed")
    sb.condition("Accepted", True, "Accepted", "spec is valid")
    sb.condition("JobCreated", True, "JobCreated", f"Job {job['metadata']['name']}")
    sb.status["jobName"] = job["metadata"]["name"]

    # suspend is the one mutable field: carry it to the Job (a merge patch of that field only).
    if bool((job.get("spec") or {}).get("suspend")) != run.spec.suspend and not _job_finished(job):
        job = await rt.kube.patch(
            "batch/v1",
            "Job",
            job["metadata"]["name"],
            run.metadata.namespace,
            {"spec": {"suspend": run.spec.suspend}},
        )
        rt.store("Job").upsert(job)

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
    image_id = _image_id(pods) or _recorded_image(sb.old)
    sb.status["reproducibility"] = lineage(run, image_id)

    failed = _job_condition(job, "Failed")
    complete = _job_condition(job, "Complete")
    if failed is not None:
        return await _failed(rt, obs, sb, failed)
    if complete is not None:
        sb.status["completionTime"] = jstatus.get("completionTime") or complete.get(
            "lastTransitionTime"
        )
        sb.condition("Running", False, "Completed", "the training pod finished")
        sb.condition("Complete", True, "Completed", "the training container exited 0")
        return await _finished_run(rt, obs, sb)

    if run.spec.suspend or _job_condition(job, "Suspended"):
        sb.condition("Running", False, "Suspended", "spec.suspend is true: the Job is suspended")
        return await _write(rt, body, sb, "Pending")
    newest = _newest(pods)
    waiting = (_main_container(newest).get("state") or {}).get("waiting") if newest else None
    if waiting and waiting.get("reason") in STUCK_REASONS:
        sb.condition(
            "Running",
            False,
            str(waiting["reason"]),
            str(waiting.get("message") or waiting["reason"]),
        )
        return await _write(rt, body, sb, "Pending")
    if (
        int(jstatus.get("active", 0)) > 0
        and newest
        and (newest.get("status") or {}).get("phase") == "Running"
    ):
        sb.condition("Running", True, "PodRunning", f"pod {newest['metadata']['name']} is running")
        return await _write(rt, body, sb, "Running")
    if newest and (newest.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        # The pod ended and the Job controller has yet to say what that means for the Job (done,
        # or another attempt): still running, not back to pending.
        sb.condition(
            "Running",
            True,
            "PodTerminated",
            f"pod {newest['metadata']['name']} ended; waiting for the Job's verdict",
        )
        return await _write(rt, body, sb, "Running")
    unscheduled = _unscheduled(newest) if newest else None
    if unscheduled is not None:
        sb.condition("Running", False, *unscheduled)
        return await _write(rt, body, sb, "Pending")
    sb.condition("Running", False, "PodPending", "waiting for the training pod to start")
    return await _write(rt, body, sb, "Pending")


def _unscheduled(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """The scheduler's reason and message when it could not place the pod (e.g. Unschedulable:
    `persistentvolumeclaim "models" not found`): the user's next step, not "waiting"."""
    cond = get_condition((pod.get("status") or {}).get("conditions") or [], "PodScheduled")
    if cond is None or cond.get("status") != "False":
        return None
    reason = str(cond.get("reason") or "Unschedulable")
    return reason, str(cond.get("message") or reason)


async def _failed(
    rt: Runtime, obs: Observed, sb: StatusBuilder, failed: Mapping[str, Any]
) -> float | None:
    job_reason = str(failed.get("reason") or "Failed")
    pod_reason, detail = _failure_detail(obs.pods)
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
    return await _write(rt, obs.body, sb, "Failed")


async def _finished_run(rt: Runtime, obs: Observed, sb: StatusBuilder) -> float | None:
    run, body = obs.run, obs.body
    if _concluded(sb.old):
        # The report was read, the verdict taken and the version registered once; what changes
        # later (the pods garbage-collected, the Model deleted, an alias moved) does not reopen
        # the run.
        return await _write(rt, body, sb, str(sb.old["phase"]))
    pod = _succeeded_pod(obs.pods)
    if pod is None:
        waited = _seconds_since(sb.status.get("completionTime"))
        if waited is not None and waited < REPORT_WAIT_SECONDS:
            # The Job's watch event can overtake its pod's: the pod that completed the Job is
            # on its way to the cache. Judging now would fail a good run as ReportMissing.
            await _write(rt, body, sb, str(sb.old.get("phase") or "Running"))
            return REPORT_RETRY_SECONDS
    message = (
        ((_main_container(pod).get("state") or {}).get("terminated") or {}).get("message")
        if pod is not None
        else None
    )
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
        return await _write(rt, body, sb, "Failed")
    sb.status["metrics"] = dict(report.metrics)
    artifact = report.artifact.model_dump(mode="json", exclude_none=True)
    sb.status["artifact"] = artifact
    if report.baseline is not None:
        sb.status["baseline"] = {
            **report.baseline.model_dump(mode="json", exclude_none=True),
            "featureOrder": report.feature_order,
        }

    # The Model's status as its spec makes it now: declared versions and aliases count even
    # before the Model's own reconcile has written them (the gate reads the alias, registration
    # looks up the run's UID).
    model_status = (
        model_reconciler.desired_status(obs.model_body, sb.at) if obs.model_body else None
    )
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
        return await _write(rt, body, sb, "Rejected")
    sb.condition("Evaluated", True, "Passed", str(verdict.get("message")))

    if not run.spec.model:
        sb.condition("Registered", False, "NoModel", "spec.model is empty: nothing to register")
        return await _write(rt, body, sb, "Succeeded")
    if obs.model_body is None:
        sb.condition("Registered", False, "ModelNotFound", f"Model {run.spec.model!r} is gone")
        return await _write(rt, body, sb, "Failed")

    version = already
    if version is None:
        entry = {
            "artifact": artifact,
            "metrics": dict(report.metrics),
            "source": {"trainingRun": run.metadata.name, "uid": run.metadata.uid},
            "lineage": sb.status["reproducibility"],
            "registeredAt": now(),
        }
        if report.baseline is not None:
            entry["baseline"] = sb.status["baseline"]
        version = await model_reconciler.register_version(rt, obs.model_body, entry)
    sb.status["modelVersion"] = int(version["version"])
    sb.condition(
        "Registered", True, "Registered", f"version {version['version']} of Model {run.spec.model}"
    )
    return await _write(rt, body, sb, "Succeeded")


def _finished(status: Mapping[str, Any]) -> bool:
    return status.get("phase") in ("Succeeded", "Failed", "Rejected")


def _concluded(status: Mapping[str, Any]) -> bool:
    """Finished, and its report read and judged (a verdict is taken once)."""
    evaluated = get_condition(status.get("conditions") or [], "Evaluated")
    return _finished(status) and evaluated is not None


def _recorded_image(status: Mapping[str, Any]) -> str | None:
    image = (status.get("reproducibility") or {}).get("image")
    return str(image) if image and "@" in str(image) else None


def _seconds_since(value: str | None, at: dt.datetime | None = None) -> float | None:
    moment = _time(value)
    if moment is None:
        return None
    return ((at or dt.datetime.now(dt.UTC)) - moment).total_seconds()


def _job_finished(job: Mapping[str, Any]) -> bool:
    return _job_condition(job, "Complete") is not None or _job_condition(job, "Failed") is not None


async def _write(
    rt: Runtime, body: Mapping[str, Any], sb: StatusBuilder, phase: str
) -> float | None:
    # Pending (Job created) and the outcome get an Event; Running, which follows within
    # seconds, only shows in the status: one write less per run.
    status = await write_status(rt, KIND, body, sb, phase, _bad, quiet_phases=("Running",))
    delay = ttl_remaining(body, status)
    if delay is None or delay > 0:
        return delay
    meta = body["metadata"]
    await rt.kube.delete(body["apiVersion"], KIND, meta["name"], meta["namespace"], uid=meta["uid"])
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


def ttl_remaining(
    body: Mapping[str, Any], status: Mapping[str, Any], at: dt.datetime | None = None
) -> float | None:
    """Seconds until a finished run is deleted by its TTL (<= 0: now); None: never."""
    ttl = (body.get("spec") or {}).get("ttlSecondsAfterFinished")
    if ttl is None or not _finished(status) or status.get("modelVersion"):
        # A run whose version is registered stays: it is that version's lineage.
        return None
    # Runs refused before their Job existed have no completionTime: their newest condition
    # marks when they ended.
    finished = _time(status.get("completionTime")) or max(
        (t for c in status.get("conditions") or [] if (t := _time(c.get("lastTransitionTime")))),
        default=None,
    )
    if finished is None:
        return None
    current = at or dt.datetime.now(dt.UTC)
    return (finished + dt.timedelta(seconds=int(ttl)) - current).total_seconds()
