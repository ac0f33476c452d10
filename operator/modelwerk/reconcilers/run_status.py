"""A TrainingRun's status write, shared by every step of its reconcile: which conditions earn a
Warning Event, and the run's TTL (deleted once it ran out)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelwerk import kinds
from modelwerk.jobstate import STUCK_REASONS, ttl_remaining
from modelwerk.manager import Manager
from modelwerk.reconcilers.common import StatusBuilder, write_status

KIND = kinds.TRAININGRUN


async def write(
    mgr: Manager, body: Mapping[str, Any], sb: StatusBuilder, phase: str
) -> float | None:
    # Pending (Job created) and the outcome get an Event; Running, which follows within
    # seconds, only shows in the status: one write less per run.
    status = await write_status(mgr, KIND, body, sb, phase, bad, quiet_phases=("Running",))
    delay = ttl_remaining(body, status, mgr.now())
    if delay is None or delay > 0:
        return delay
    meta = body["metadata"]
    await mgr.kube.delete(KIND, meta["name"], meta["namespace"], uid=meta["uid"])
    return None


def bad(cond: Mapping[str, Any]) -> bool:
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
