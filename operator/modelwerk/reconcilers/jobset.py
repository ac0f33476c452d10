"""A distributed run on a JobSet (builders/jobset.py): which engine a run uses, and the JobSet
seen as the Job reconcilers/run_lifecycle.py reads (conditions Complete/Failed, active pods), so
the rest of the run's life (report from worker 0, the gate, registration) is the same as on an
Indexed Job. The JobSet controller restarts the gang; the operator records its restarts as the
attempt and never deletes or recreates anything itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from modelwerk import kinds
from modelwerk.api.trainingrun import TrainingRun, WorkersEngine
from modelwerk.builders.jobset import CRD_NAME, RESTART_ATTEMPT, jobset_name
from modelwerk.manager import Manager
from modelwerk.reconcilers.common import StatusBuilder
from modelwerk.reconcilers.gang import Observed

ENGINE_JOBSET: Final = "JobSet"
ENGINE_INDEXED: Final = "IndexedJob"
REASON_NOT_INSTALLED: Final = "JobSetNotInstalled"


async def engine(mgr: Manager, run: TrainingRun, sb: StatusBuilder) -> str | None:
    """The engine of a distributed run: the one recorded once it started (a CRD installed or
    removed later does not move a running gang), else spec.workers.engine, `auto` asking
    whether the JobSet CRD is installed. None: jobSet asked for and not installed."""
    assert run.spec.workers is not None
    recorded = (sb.old.get("workers") or {}).get("engine")
    if recorded in (ENGINE_JOBSET, ENGINE_INDEXED):
        return str(recorded)
    choice = run.spec.workers.engine
    if choice == WorkersEngine.INDEXED_JOB:
        return ENGINE_INDEXED
    # Turned off (env MODELWERK_JOBSET): neither watched nor, by the chart, granted.
    installed = kinds.enabled(kinds.JOBSET) and await mgr.crd_installed(CRD_NAME)
    if installed:
        return ENGINE_JOBSET
    return None if choice == WorkersEngine.JOB_SET else ENGINE_INDEXED


def restarts(jobset: Mapping[str, Any] | None) -> int:
    return int(((jobset or {}).get("status") or {}).get("restarts") or 0)


def settle(mgr: Manager, obs: Observed, sb: StatusBuilder) -> None:
    """Points `obs.job` at the run's JobSet, records the attempt (its restarts) and narrows the
    pods to the current attempt's: a report or failure of an earlier attempt is not the run's."""
    run = obs.run
    assert run.spec.workers is not None
    key = (run.metadata.namespace or "", jobset_name(run))
    obs.job = mgr.store(kinds.JOBSET).get(key)
    now = max(restarts(obs.job), int((sb.old.get("workers") or {}).get("attempt") or 0))
    sb.status["workers"] = {
        "replicas": run.spec.workers.replicas,
        "attempt": now,
        "engine": ENGINE_JOBSET,
    }
    mine = str(restarts(obs.job))
    obs.pods = [
        p for p in obs.pods if (p["metadata"].get("labels") or {}).get(RESTART_ATTEMPT) == mine
    ]


def _condition(jobset: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in (jobset.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return dict(cond)
    return None


def as_job(jobset: Mapping[str, Any]) -> Mapping[str, Any]:
    """The JobSet in the shape of a Job's status: Completed -> Complete, Failed, Suspended, and
    the active/succeeded counts of its child Jobs."""
    status = jobset.get("status") or {}
    conditions = []
    for ours, theirs in (
        ("Complete", "Completed"),
        ("Failed", "Failed"),
        ("Suspended", "Suspended"),
    ):
        found = _condition(jobset, theirs)
        if found is not None:
            conditions.append({**found, "type": ours})
    counts = status.get("replicatedJobsStatus") or []
    return {
        "metadata": jobset["metadata"],
        "spec": dict(jobset.get("spec") or {}),
        "status": {
            "conditions": conditions,
            "active": sum(int(c.get("active") or 0) for c in counts),
            "succeeded": sum(int(c.get("succeeded") or 0) for c in counts),
            "failed": restarts(jobset) + sum(int(c.get("failed") or 0) for c in counts),
            **(
                {"startTime": jobset["metadata"]["creationTimestamp"]}
                if jobset["metadata"].get("creationTimestamp")
                else {}
            ),
        },
    }
