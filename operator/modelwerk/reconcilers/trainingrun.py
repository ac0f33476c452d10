"""TrainingRun: Job -> pods -> report -> evaluation gate -> registered Model version.

The reconcile in steps, a module each: run_observed (what the cache holds), run_admission (up to
the run's own Job), run_lifecycle (the Job running, failed or complete), run_outcome (report,
gate, registration); every step writes status through run_status."""

from __future__ import annotations

from pydantic import ValidationError

from modelwerk import kinds
from modelwerk.controller import Controller, Watch, dependents, itself, owner
from modelwerk.manager import Manager
from modelwerk.reconcilers import run_admission, run_lifecycle
from modelwerk.reconcilers.common import StatusBuilder
from modelwerk.reconcilers.run_observed import observe
from modelwerk.reconcilers.run_status import KIND, write
from modelwerk.store import ObjectKey


async def reconcile(mgr: Manager, key: ObjectKey) -> float | None:
    body = mgr.store(KIND).get(key)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None
    sb = StatusBuilder(body, mgr.timestamp())
    try:
        obs = observe(mgr, key, body)
    except ValidationError as err:
        sb.condition("Accepted", False, "InvalidSpec", str(err)[:1024])
        await write(mgr, body, sb, "Failed")
        return None
    step = await run_admission.admit(mgr, obs, sb)
    if isinstance(step, run_admission.Done):
        return step.requeue
    return await run_lifecycle.follow(mgr, obs, sb, step)


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
