"""Retrain triggers: starting TrainingRuns from a Model's retrain policy, on alerts (the
webhook calls `fire`) and on schedule (the Model reconciler calls `on_schedule`). Not a
reconciler of its own: the decisions are retrain.py's, this is their I/O."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from modelwerk import k8s, kinds, retrain
from modelwerk.api.model import Model
from modelwerk.api.trainingrun import FINISHED_PHASES
from modelwerk.manager import Manager
from modelwerk.reconcilers.registration import compare_and_swap
from modelwerk.status import parse_time
from modelwerk.store import ObjectKey

log = logging.getLogger(__name__)


def _unfinished_triggered_runs(mgr: Manager, key: ObjectKey) -> int:
    return sum(
        1
        for run in mgr.store(kinds.TRAININGRUN).by_index(kinds.BY_MODEL, key)
        if retrain.LABEL_RETRAIN in (run["metadata"].get("labels") or {})
        and (run.get("status") or {}).get("phase") not in FINISHED_PHASES
    )


async def fire(mgr: Manager, key: ObjectKey, trigger: retrain.Trigger) -> str:
    """Applies the policy to one trigger, starts at most one run for it, records it in the
    Model's status. Serialised per Model, so maxConcurrent holds under concurrent deliveries."""
    async with mgr.lock(("retrain", key)):
        body = mgr.store(kinds.MODEL).get(key)
        if body is None:
            # Right after a start the cache may not have listed the Model yet, and Alertmanager
            # would not resend before its repeat_interval: ask the apiserver before giving up.
            fresh = await mgr.kube.get(kinds.MODEL, key[1], key[0])
            if fresh is None:
                return f"Model {key[0]}/{key[1]} not found"
            body = mgr.store(kinds.MODEL).upsert(fresh)
        model = Model.from_body(body)
        reason = retrain.ignored(model, trigger)
        if reason is not None:
            return reason
        triggers = ((body.get("status") or {}).get("retrain") or {}).get("triggers") or []
        if retrain.seen(triggers, trigger.key):
            return "duplicate delivery: already handled"
        at = mgr.now()
        decision = retrain.decide(
            model, trigger, triggers, _unfinished_triggered_runs(mgr, key), at
        )
        run_name = None
        if decision.start:
            manifest = retrain.build_run(body, trigger)
            run_name = manifest["metadata"]["name"]
            try:
                created = await mgr.kube.create(manifest)
                mgr.store(kinds.TRAININGRUN).upsert(created)
            except k8s.Conflict:
                pass  # created by an earlier attempt of this very trigger
            await mgr.kube.event(
                body,
                reason="RetrainStarted",
                message=f"{trigger.reason} {trigger.alert or trigger.key}: "
                f"started TrainingRun {run_name}",
            )
        else:
            await mgr.kube.event(
                body,
                reason="RetrainSkipped",
                type_="Warning" if trigger.reason == "Alert" else "Normal",
                message=f"{trigger.reason} {trigger.alert or trigger.key}: {decision.message}",
            )

        def compute(current: Mapping[str, Any]) -> dict[str, Any] | None:
            status = dict(current.get("status") or {})
            recorded = (status.get("retrain") or {}).get("triggers") or []
            if retrain.seen(recorded, trigger.key):
                return None
            status["retrain"] = {
                "triggers": retrain.record(recorded, trigger, at, decision, run_name)
            }
            return status

        await compare_and_swap(mgr, body, compute)
        return decision.message if run_name is None else f"started {run_name}"


async def on_schedule(mgr: Manager, body: Mapping[str, Any]) -> float | None:
    """Fires a due scheduled trigger; returns seconds until the next one."""
    model = Model.from_body(body)
    policy = model.spec.retrain
    if policy is None or not policy.schedule:
        return None
    at = mgr.now()
    triggers = ((body.get("status") or {}).get("retrain") or {}).get("triggers") or []
    scheduled = [t["at"] for t in triggers if t.get("reason") == "Schedule"]
    since_text = max(scheduled) if scheduled else body["metadata"]["creationTimestamp"]
    since = parse_time(since_text)
    due = retrain.due_schedule(policy.schedule, since, at)
    if due is not None:
        key = (model.metadata.namespace or "", model.metadata.name or "")
        await fire(mgr, key, retrain.Trigger("Schedule", retrain.schedule_key(due)))
    return max(1.0, (retrain.next_schedule(policy.schedule, at) - at).total_seconds())
