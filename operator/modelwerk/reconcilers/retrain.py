"""Starting TrainingRuns from a Model's retrain policy: on alerts (webhook) and on schedule."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from modelwerk import constants, k8s, retrain
from modelwerk.api.model import Model
from modelwerk.reconcilers import model as model_reconciler
from modelwerk.runtime import Runtime
from modelwerk.status import parse_time
from modelwerk.store import ObjectKey

log = logging.getLogger(__name__)
FINISHED = ("Succeeded", "Failed", "Rejected")


def _unfinished_triggered_runs(rt: Runtime, key: ObjectKey) -> int:
    return sum(
        1
        for run in rt.store("TrainingRun").by_index("model", key)
        if retrain.LABEL_RETRAIN in (run["metadata"].get("labels") or {})
        and (run.get("status") or {}).get("phase") not in FINISHED
    )


async def fire(rt: Runtime, key: ObjectKey, trigger: retrain.Trigger) -> str:
    """Applies the policy to one trigger, starts at most one run for it, records it in the
    Model's status. Serialised per Model, so maxConcurrent holds under concurrent deliveries."""
    async with rt.lock(("retrain", key)):
        body = rt.store("Model").get(key)
        if body is None:
            # Right after a start the cache may not have listed the Model yet, and Alertmanager
            # would not resend before its repeat_interval: ask the apiserver before giving up.
            fresh = await rt.kube.get(constants.API_VERSION, "Model", key[1], key[0])
            if fresh is None:
                return f"Model {key[0]}/{key[1]} not found"
            body = rt.store("Model").upsert(fresh)
        model = Model.from_body(body)
        reason = retrain.ignored(model, trigger)
        if reason is not None:
            return reason
        triggers = ((body.get("status") or {}).get("retrain") or {}).get("triggers") or []
        if retrain.seen(triggers, trigger.key):
            return "duplicate delivery: already handled"
        at = dt.datetime.now(dt.UTC)
        decision = retrain.decide(model, trigger, triggers, _unfinished_triggered_runs(rt, key), at)
        run_name = None
        if decision.start:
            manifest = retrain.build_run(body, trigger)
            run_name = manifest["metadata"]["name"]
            try:
                created = await rt.kube.create(manifest)
                rt.store("TrainingRun").upsert(created)
            except k8s.Conflict:
                pass  # created by an earlier attempt of this very trigger
            await rt.kube.event(
                body,
                reason="RetrainStarted",
                message=f"{trigger.reason} {trigger.alert or trigger.key}: "
                f"started TrainingRun {run_name}",
            )
        else:
            await rt.kube.event(
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

        await model_reconciler.compare_and_swap(rt, body, compute)
        return decision.message if run_name is None else f"started {run_name}"


async def on_schedule(rt: Runtime, body: Mapping[str, Any]) -> float | None:
    """Fires a due scheduled trigger; returns seconds until the next one."""
    model = Model.from_body(body)
    policy = model.spec.retrain
    if policy is None or not policy.schedule:
        return None
    at = dt.datetime.now(dt.UTC)
    triggers = ((body.get("status") or {}).get("retrain") or {}).get("triggers") or []
    scheduled = [t["at"] for t in triggers if t.get("reason") == "Schedule"]
    since_text = max(scheduled) if scheduled else body["metadata"]["creationTimestamp"]
    since = parse_time(since_text)
    due = retrain.due_schedule(policy.schedule, since, at)
    if due is not None:
        key = (model.metadata.namespace or "", model.metadata.name or "")
        await fire(rt, key, retrain.Trigger("Schedule", retrain.schedule_key(due)))
    return max(1.0, (retrain.next_schedule(policy.schedule, at) - at).total_seconds())
