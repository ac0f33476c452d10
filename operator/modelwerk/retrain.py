"""The retrain policy as pure decisions: may this trigger start a run, and what run.

Triggers are idempotent by key: an alert's fingerprint with its start time (Alertmanager resends
a firing alert every repeat_interval), or the scheduled minute. The key also names the run, so
even a race between two deliveries creates one TrainingRun, not two."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from croniter import croniter

from modelwerk import constants
from modelwerk.api.common import parse_duration
from modelwerk.api.model import Model
from modelwerk.naming import child_name
from modelwerk.status import format_time, parse_time

MAX_RECORDED_TRIGGERS = 20
LABEL_RETRAIN = f"{constants.LABEL_PREFIX}/retrain"


@dataclass(frozen=True)
class Trigger:
    reason: str  # Alert | Schedule
    key: str
    alert: str | None = None


@dataclass(frozen=True)
class Decision:
    start: bool
    message: str


def alert_key(fingerprint: str, starts_at: str) -> str:
    return f"alert:{fingerprint}:{starts_at}"


def schedule_key(at: dt.datetime) -> str:
    return f"schedule:{at.strftime('%Y-%m-%dT%H:%MZ')}"


def run_name(model: str, key: str) -> str:
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    return child_name(model, "retrain", digest)


def seen(triggers: Sequence[Mapping[str, Any]], key: str) -> bool:
    return any(t.get("key") == key for t in triggers)


def ignored(model: Model, trigger: Trigger) -> str | None:
    """Why an alert is none of this Model's business (no retrain policy, or not one of its
    onAlerts), else None. Such alerts are answered but leave no trace on the Model: every alert
    of a Deployment carries its Model's labels, and recording each would flood the status and
    push out the triggers that cooldown and idempotency are read from."""
    policy = model.spec.retrain
    if trigger.reason != "Alert":
        return None
    if policy is None:
        return "ignored: the Model has no spec.retrain"
    if trigger.alert not in policy.on_alerts:
        return f"ignored: alert {trigger.alert} is not in spec.retrain.onAlerts"
    return None


def decide(
    model: Model,
    trigger: Trigger,
    triggers: Sequence[Mapping[str, Any]],
    unfinished_runs: int,
    at: dt.datetime,
) -> Decision:
    policy = model.spec.retrain
    if policy is None:
        return Decision(False, "the Model has no spec.retrain")
    if trigger.reason == "Alert" and trigger.alert not in policy.on_alerts:
        return Decision(False, f"alert {trigger.alert} is not in spec.retrain.onAlerts")
    cooldown = parse_duration(policy.cooldown)
    started = [parse_time(t["at"]) for t in triggers if t.get("trainingRun")]
    if started and at - max(started) < cooldown:
        return Decision(
            False,
            f"in cooldown ({policy.cooldown}) since the run started at {format_time(max(started))}",
        )
    if unfinished_runs >= policy.max_concurrent:
        return Decision(
            False,
            f"{unfinished_runs} triggered run(s) unfinished "
            f"(maxConcurrent {policy.max_concurrent})",
        )
    return Decision(True, "started")


def build_run(model_body: Mapping[str, Any], trigger: Trigger) -> dict[str, Any]:
    """The TrainingRun a trigger starts: the Model's template, named after the trigger's key."""
    model = Model.from_body(model_body)
    assert model.spec.retrain is not None
    name = model.metadata.name or ""
    spec = model.spec.retrain.template.model_dump(by_alias=True, exclude_none=True, mode="json")
    spec["model"] = name
    return {
        "apiVersion": constants.API_VERSION,
        "kind": "TrainingRun",
        "metadata": {
            "name": run_name(name, trigger.key),
            "namespace": model.metadata.namespace,
            "labels": {
                constants.LABEL_MANAGED_BY: constants.MANAGED_BY,
                constants.LABEL_MODEL: name,
                LABEL_RETRAIN: trigger.reason.lower(),
            },
            "annotations": {constants.ANNOTATION_RETRAIN_TRIGGER: trigger.key},
        },
        "spec": spec,
    }


def record(
    triggers: Sequence[Mapping[str, Any]],
    trigger: Trigger,
    at: dt.datetime,
    decision: Decision,
    run: str | None,
) -> list[dict[str, Any]]:
    entry: dict[str, Any] = {
        "at": format_time(at),
        "reason": trigger.reason,
        "key": trigger.key,
        "message": decision.message,
    }
    if trigger.alert:
        entry["alert"] = trigger.alert
    if run:
        entry["trainingRun"] = run
    entries = [*(dict(t) for t in triggers), entry]
    # Oldest first out, except the newest trigger that started a run (cooldown counts from it)
    # and the newest scheduled one (the schedule counts from it): a flapping alert skipped 20
    # times in a cooldown must not end the cooldown.
    pinned = {
        _last(entries, lambda t: bool(t.get("trainingRun"))),
        _last(entries, lambda t: t.get("reason") == "Schedule"),
    }
    surplus = len(entries) - MAX_RECORDED_TRIGGERS
    kept = []
    for index, item in enumerate(entries):
        if surplus > 0 and index not in pinned:
            surplus -= 1
            continue
        kept.append(item)
    return kept


def _last(entries: Sequence[Mapping[str, Any]], pred: Callable[[Mapping[str, Any]], bool]) -> int:
    return max((i for i, t in enumerate(entries) if pred(t)), default=-1)


def due_schedule(schedule: str, since: dt.datetime, at: dt.datetime) -> dt.datetime | None:
    """The latest scheduled time in (since, at], if any: missed ones collapse into one run."""
    # croniter's get_prev is strictly before its start: from `at` exactly on a scheduled time it
    # would return the one before, and next_schedule(at) the one after, skipping `at` itself.
    latest: dt.datetime = croniter(schedule, at + dt.timedelta(microseconds=1)).get_prev(
        dt.datetime
    )
    return latest if latest > since else None


def next_schedule(schedule: str, at: dt.datetime) -> dt.datetime:
    nxt: dt.datetime = croniter(schedule, at).get_next(dt.datetime)
    return nxt
