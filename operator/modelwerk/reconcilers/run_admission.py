"""A TrainingRun up to its Job (or JobSet): the Model it waits for, the engine of a distributed
run, the queue, the Job built and created (admission may refuse it), and the check that the Job
found under the run's name is the run's own."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelwerk import k8s, kinds
from modelwerk.builders import kueue as kueue_builder
from modelwerk.builders.job import OutputError, build_job
from modelwerk.builders.jobset import CRD_NAME, build_jobset
from modelwerk.jobstate import finished
from modelwerk.kinds import Kind
from modelwerk.manager import Manager
from modelwerk.reconcilers import gang, jobset, kueue, refusals
from modelwerk.reconcilers.common import StatusBuilder
from modelwerk.reconcilers.netpol import ensure_training_policy
from modelwerk.reconcilers.run_observed import Observed
from modelwerk.reconcilers.run_status import write


@dataclass(frozen=True)
class Admitted:
    """The run's Job (or JobSet, as the API returned it), and the engine it runs on."""

    job: Mapping[str, Any]
    engine: str | None  # jobset.ENGINE_*; None for a run with one worker
    kind: Kind

    @property
    def on_jobset(self) -> bool:
        return self.engine == jobset.ENGINE_JOBSET


@dataclass(frozen=True)
class Done:
    """The reconcile ends here (status written): when to look again."""

    requeue: float | None


async def admit(mgr: Manager, obs: Observed, sb: StatusBuilder) -> Admitted | Done:
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
        await write(mgr, body, sb, "Pending")
        return Done(None)  # the Model's watch event wakes this run

    engine = await jobset.engine(mgr, run, sb) if gang.distributed(run) else None
    on_jobset = engine == jobset.ENGINE_JOBSET
    kind = kinds.JOBSET if on_jobset else kinds.JOB
    if gang.distributed(run) and engine is None and obs.job is None and not finished(sb.old):
        missing = (
            f"spec.workers.engine is jobSet and the CRD {CRD_NAME} is not installed "
            "(or the operator's JobSet engine is off: MODELWERK_JOBSET, chart value jobSet.enabled)"
        )
        sb.condition("Accepted", False, jobset.REASON_NOT_INSTALLED, missing)
        await write(mgr, body, sb, "Pending")
        # CRDs have no watch here: look again (manager.crd_installed caches a minute)
        return Done(60.0)
    if on_jobset:
        jobset.settle(mgr, obs, sb)
    elif gang.distributed(run) and not await gang.settle(mgr, obs, sb):
        return Done(await write(mgr, body, sb, "Running"))  # an old attempt's pods are going
    job = obs.job
    unqueued = (
        await kueue.refused(mgr, run)
        if job is None and not finished(sb.old) and kueue_builder.queued(run)
        else None
    )
    if unqueued is not None:
        sb.condition("Accepted", False, kueue.REASON_NOT_INSTALLED, unqueued)
        await write(mgr, body, sb, "Pending")
        return Done(60.0)  # as for JobSets: CRDs have no watch here
    if job is None and not finished(sb.old):
        try:
            desired = (
                build_jobset(run, body, obs.model)
                if on_jobset
                else build_job(run, body, obs.model, gang.attempt(sb))
            )
        except OutputError as err:
            sb.condition("Accepted", False, "NoOutputLocation", str(err))
            await write(mgr, body, sb, "Pending")
            return Done(None)
        ns, account = run.metadata.namespace or "", run.spec.service_account_name
        if (refused := await refusals.service_account_refused(mgr, ns, account)) is not None:
            sb.condition("JobCreated", False, "ServiceAccountNotAllowed", refused)
            return Done(await write(mgr, body, sb, "Failed"))
        sb.condition("Accepted", True, "Accepted", "spec is valid")
        await ensure_training_policy(mgr, run, body)
        try:
            job = await mgr.kube.create(desired)
        except k8s.Conflict:
            job = await mgr.kube.get(kind, desired["metadata"]["name"], run.metadata.namespace)
        except k8s.Invalid as err:
            # Admission (Pod Security, quota, policy) refused what the run asks for.
            sb.condition("JobCreated", False, "JobRejected", err.message)
            await write(mgr, body, sb, "Failed")
            return Done(None)
        if job is not None:
            mgr.store(kind).upsert(job)
            if gang.distributed(run) and not on_jobset:
                await gang.ensure_service(mgr, run, body)
    if job is None:
        return Done(await write(mgr, body, sb, sb.old.get("phase") or "Pending"))

    owners = [o.get("uid") for o in job["metadata"].get("ownerReferences") or []]
    if run.metadata.uid not in owners:
        sb.condition(
            "JobCreated",
            False,
            "NameConflict",
            f"a {kind.kind} named {job['metadata']['name']} exists and is not this run's",
        )
        return Done(await write(mgr, body, sb, "Failed"))
    sb.condition("Accepted", True, "Accepted", "spec is valid")
    sb.condition("JobCreated", True, "JobCreated", f"{kind.kind} {job['metadata']['name']}")
    sb.status["jobName"] = job["metadata"]["name"]
    return Admitted(job=job, engine=engine, kind=kind)
