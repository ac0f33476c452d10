"""Model: merge declared versions, resolve aliases, fire scheduled retraining. Versions from
finished runs are registered by the TrainingRun reconciler (reconcilers/registration.py)."""

from __future__ import annotations

from modelwerk import kinds
from modelwerk.controller import Controller, Watch, itself
from modelwerk.manager import Manager
from modelwerk.reconcilers import triggers
from modelwerk.reconcilers.registration import write_model_status
from modelwerk.store import ObjectKey


async def reconcile(mgr: Manager, key: ObjectKey) -> float | None:
    body = mgr.store(kinds.MODEL).get(key)
    if body is None:
        return None
    updated = await write_model_status(mgr, body)
    return await triggers.on_schedule(mgr, updated)


CONTROLLER = Controller(
    kind=kinds.MODEL,
    reconcile=reconcile,
    watches=(Watch(kinds.MODEL, itself),),
)
