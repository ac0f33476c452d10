"""The retrain policy's pure decisions (modelwerk.retrain): which trigger starts a run, what
run, what the Model's status records, and when a schedule is due.

The webhook and the reconciler around them run against the real control plane in
tests/integration/test_webhook.py and tests/e2e/test_closed_loop.py."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from modelwerk import constants, retrain
from modelwerk.api.model import Model
from modelwerk.api.trainingrun import TrainingRun
from modelwerk.naming import MAX_NAME

UTC = dt.UTC
T0 = dt.datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)
ALERT = "ModelwerkDataDrift"
TEMPLATE: dict[str, Any] = {
    "image": "registry.example.com/iris-train@sha256:" + "a" * 64,
    "command": ["python", "-m", "modelwerk.trainers.iris"],
    "hyperparameters": {"C": "1.0"},
    "seed": 42,
    "env": [{"name": "LOG_LEVEL", "value": "info"}],
}
BODY: dict[str, Any] = {
    "apiVersion": "modelwerk.io/v1alpha1",
    "kind": "Model",
    "metadata": {
        "name": "iris",
        "namespace": "ml-team",
        "uid": "uid-iris",
        "creationTimestamp": "2026-11-26T09:00:00Z",
    },
    "spec": {
        "retrain": {
            "template": TEMPLATE,
            "onAlerts": [ALERT, "ModelwerkHighErrorRate"],
            "cooldown": "1h",
            "maxConcurrent": 1,
        }
    },
}


def body(**retrain_spec: Any) -> dict[str, Any]:
    out = copy.deepcopy(BODY)
    out["spec"]["retrain"].update(retrain_spec)
    return out


def model(**retrain_spec: Any) -> Model:
    return Model.from_body(body(**retrain_spec))


def bare_model() -> Model:
    out = copy.deepcopy(BODY)
    del out["spec"]["retrain"]
    return Model.from_body(out)


def alert(fingerprint: str = "f1", starts_at: str = "2026-11-26T09:58:00.123Z") -> retrain.Trigger:
    return retrain.Trigger("Alert", retrain.alert_key(fingerprint, starts_at), ALERT)


def started(
    at: dt.datetime, run: str = "iris-retrain-x", key: str = "alert:f0:t"
) -> dict[str, Any]:
    """A recorded trigger that started a run."""
    return {
        "at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reason": "Alert",
        "alert": ALERT,
        "key": key,
        "message": "started",
        "trainingRun": run,
    }


def skipped(at: dt.datetime, key: str, reason: str = "Alert") -> dict[str, Any]:
    return {
        "at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reason": reason,
        "key": key,
        "message": "in cooldown",
    }


# --- keys and names -------------------------------------------------------------------------


def test_keys() -> None:
    assert retrain.alert_key("abc", "2026-11-26T09:58:00Z") == "alert:abc:2026-11-26T09:58:00Z"
    at = dt.datetime(2026, 11, 26, 3, 0, 59, 999, tzinfo=UTC)
    assert retrain.schedule_key(at) == "schedule:2026-11-26T03:00Z"


def test_run_name_is_stable_per_key_and_fits() -> None:
    key = retrain.alert_key("f1", "t1")
    assert retrain.run_name("iris", key) == retrain.run_name("iris", key)
    assert retrain.run_name("iris", key).startswith("iris-retrain-")
    assert retrain.run_name("iris", key) != retrain.run_name("iris", retrain.alert_key("f2", "t1"))
    # The same alert firing again later (a new startsAt) is a new trigger.
    assert retrain.run_name("iris", key) != retrain.run_name("iris", retrain.alert_key("f1", "t2"))
    long = retrain.run_name("m" * 63, key)
    assert len(long) <= MAX_NAME <= 63
    assert long != retrain.run_name("m" * 63, retrain.alert_key("f2", "t1"))


def test_seen() -> None:
    triggers = [started(T0, key="k1"), skipped(T0, "k2")]
    assert retrain.seen(triggers, "k1")
    assert retrain.seen(triggers, "k2")
    assert not retrain.seen(triggers, "k3")
    assert not retrain.seen([], "k1")


# --- which triggers concern the Model -------------------------------------------------------


def test_ignored() -> None:
    assert retrain.ignored(model(), alert()) is None
    other = retrain.Trigger("Alert", "alert:f:t", "ModelwerkNoTraffic")
    assert retrain.ignored(model(), other) == (
        "ignored: alert ModelwerkNoTraffic is not in spec.retrain.onAlerts"
    )
    assert retrain.ignored(bare_model(), alert()) == "ignored: the Model has no spec.retrain"
    # onAlerts empty: alerts never start runs.
    assert retrain.ignored(model(onAlerts=[]), alert()) is not None
    # A schedule is not filtered by onAlerts.
    assert retrain.ignored(model(), retrain.Trigger("Schedule", "schedule:x")) is None


# --- decide ---------------------------------------------------------------------------------


def test_first_alert_starts() -> None:
    assert retrain.decide(model(), alert(), [], 0, T0) == retrain.Decision(True, "started")


def test_no_policy_and_unlisted_alerts_start_nothing() -> None:
    assert retrain.decide(bare_model(), alert(), [], 0, T0) == retrain.Decision(
        False, "the Model has no spec.retrain"
    )
    other = retrain.Trigger("Alert", "alert:f:t", "ModelwerkNoTraffic")
    decision = retrain.decide(model(), other, [], 0, T0)
    assert not decision.start
    assert "not in spec.retrain.onAlerts" in decision.message


def test_cooldown_counts_from_the_last_started_run() -> None:
    last = T0 - dt.timedelta(minutes=59, seconds=59)
    triggers = [started(T0 - dt.timedelta(hours=5)), started(last), skipped(T0, "k")]
    decision = retrain.decide(model(), alert("f2"), triggers, 0, T0)
    assert decision == retrain.Decision(
        False, f"in cooldown (1h) since the run started at {last:%Y-%m-%dT%H:%M:%SZ}"
    )
    # Exactly one cooldown later: starts.
    assert retrain.decide(model(), alert("f2"), triggers, 0, last + dt.timedelta(hours=1)).start


def test_skipped_triggers_do_not_start_a_cooldown() -> None:
    triggers = [skipped(T0 - dt.timedelta(minutes=1), "k1"), skipped(T0, "k2")]
    assert retrain.decide(model(), alert(), triggers, 0, T0).start


def test_cooldown_zero() -> None:
    assert retrain.decide(model(cooldown="0s"), alert(), [started(T0)], 0, T0).start


def test_max_concurrent() -> None:
    old = [started(T0 - dt.timedelta(hours=2))]
    decision = retrain.decide(model(), alert(), old, 1, T0)
    assert decision == retrain.Decision(False, "1 triggered run(s) unfinished (maxConcurrent 1)")
    assert retrain.decide(model(maxConcurrent=3), alert(), old, 2, T0).start
    assert not retrain.decide(model(maxConcurrent=3), alert(), old, 3, T0).start


def test_cooldown_is_checked_before_max_concurrent() -> None:
    decision = retrain.decide(model(), alert(), [started(T0)], 1, T0)
    assert decision.message.startswith("in cooldown")


def test_schedule_triggers_ignore_on_alerts_but_not_cooldown() -> None:
    trigger = retrain.Trigger("Schedule", retrain.schedule_key(T0))
    assert retrain.decide(model(onAlerts=[]), trigger, [], 0, T0).start
    assert not retrain.decide(model(), trigger, [started(T0)], 0, T0).start


# --- build_run ------------------------------------------------------------------------------


def test_build_run_is_the_template_named_after_the_trigger() -> None:
    trigger = alert()
    manifest = retrain.build_run(body(), trigger)
    name = retrain.run_name("iris", trigger.key)
    assert manifest["apiVersion"] == constants.API_VERSION
    assert manifest["kind"] == "TrainingRun"
    assert manifest["metadata"] == {
        "name": name,
        "namespace": "ml-team",
        "labels": {
            "app.kubernetes.io/managed-by": "modelwerk",
            "modelwerk.io/model": "iris",
            "modelwerk.io/retrain": "alert",
        },
        "annotations": {"modelwerk.io/retrain-trigger": trigger.key},
    }
    spec = manifest["spec"]
    assert spec["model"] == "iris"  # defaulted to the Model
    assert spec["image"] == TEMPLATE["image"]
    assert spec["command"] == TEMPLATE["command"]
    assert spec["hyperparameters"] == {"C": "1.0"}
    assert spec["seed"] == 42
    assert spec["env"] == [{"name": "LOG_LEVEL", "value": "info"}]
    assert None not in spec.values()
    # A valid TrainingRun, camelCase as the apiserver wants it.
    run = TrainingRun.from_body(manifest)
    assert run.spec.model == "iris"
    assert "backoffLimit" in spec
    assert "backoff_limit" not in spec


def test_build_run_schedule_label_and_template_model() -> None:
    trigger = retrain.Trigger("Schedule", retrain.schedule_key(T0))
    manifest = retrain.build_run(body(template={**TEMPLATE, "model": "iris"}), trigger)
    assert manifest["metadata"]["labels"][retrain.LABEL_RETRAIN] == "schedule"
    assert manifest["metadata"]["annotations"] == {
        constants.ANNOTATION_RETRAIN_TRIGGER: "schedule:2026-11-26T10:00Z"
    }
    assert manifest["spec"]["model"] == "iris"


def test_build_run_does_not_touch_the_body() -> None:
    given = body()
    before = copy.deepcopy(given)
    retrain.build_run(given, alert())
    assert given == before


# --- record ---------------------------------------------------------------------------------


def test_record_appends_newest_last() -> None:
    earlier = [skipped(T0 - dt.timedelta(minutes=3), "k0")]
    at = T0 + dt.timedelta(microseconds=700)
    trigger = alert()
    out = retrain.record(earlier, trigger, at, retrain.Decision(True, "started"), "iris-r-1")
    assert out[:-1] == earlier
    assert out[-1] == {
        "at": "2026-11-26T10:00:00Z",
        "reason": "Alert",
        "key": trigger.key,
        "message": "started",
        "alert": ALERT,
        "trainingRun": "iris-r-1",
    }
    assert earlier == [skipped(T0 - dt.timedelta(minutes=3), "k0")]  # not mutated


def test_record_skipped_has_no_run() -> None:
    decision = retrain.Decision(False, "in cooldown (1h) since ...")
    out = retrain.record([], alert(), T0, decision, None)
    assert "trainingRun" not in out[0]
    assert out[0]["message"] == decision.message
    schedule = retrain.record([], retrain.Trigger("Schedule", "schedule:x"), T0, decision, None)
    assert "alert" not in schedule[0]
    assert schedule[0]["reason"] == "Schedule"


def test_record_keeps_the_newest_entries() -> None:
    history = [
        skipped(T0 + dt.timedelta(minutes=i), f"k{i}") for i in range(retrain.MAX_RECORDED_TRIGGERS)
    ]
    out = retrain.record(history, alert(), T0, retrain.Decision(False, "x"), None)
    assert len(out) == retrain.MAX_RECORDED_TRIGGERS
    assert [t["key"] for t in out] == [f"k{i}" for i in range(1, 20)] + [alert().key]


def test_record_never_drops_what_cooldown_and_schedule_count_from() -> None:
    """A flapping alert skipped more often than the history holds must not end the cooldown,
    nor push out the last scheduled trigger."""
    history = [started(T0, run="iris-r-0", key="run0"), skipped(T0, "sched0", reason="Schedule")]
    decision = retrain.Decision(False, "in cooldown")
    for i in range(3 * retrain.MAX_RECORDED_TRIGGERS):
        history = retrain.record(history, alert(f"flap{i}"), T0, decision, None)
        assert len(history) <= retrain.MAX_RECORDED_TRIGGERS
    keys = [t["key"] for t in history]
    assert keys[:2] == ["run0", "sched0"]
    assert keys[-1] == alert(f"flap{3 * retrain.MAX_RECORDED_TRIGGERS - 1}").key
    assert len(history) == retrain.MAX_RECORDED_TRIGGERS
    # And so the cooldown still holds.
    assert not retrain.decide(model(), alert("new"), history, 0, T0).start
    # Older started runs are not pinned, only the newest.
    history = retrain.record(history, alert("r1"), T0, retrain.Decision(True, "started"), "r1")
    for i in range(retrain.MAX_RECORDED_TRIGGERS):
        history = retrain.record(history, alert(f"more{i}"), T0, decision, None)
    runs = [t.get("trainingRun") for t in history if t.get("trainingRun")]
    assert runs == ["r1"]


# --- schedules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "since", "at", "due"),
    [
        # Not yet: the first time after `since` is still ahead.
        ("0 3 * * *", "2026-11-26T03:00:30", "2026-11-26T10:00:00", None),
        # Due: 03:00 lies in (since, at].
        ("0 3 * * *", "2026-11-25T12:00:00", "2026-11-26T03:00:01", "2026-11-26T03:00:00"),
        # Exactly on the scheduled time.
        ("0 3 * * *", "2026-11-25T12:00:00", "2026-11-26T03:00:00", "2026-11-26T03:00:00"),
        # since exactly on it: already done.
        ("0 3 * * *", "2026-11-26T03:00:00", "2026-11-26T03:00:40", None),
        # Missed ones (operator down for days) collapse into the latest.
        ("0 3 * * *", "2026-11-20T12:00:00", "2026-11-26T09:00:00", "2026-11-26T03:00:00"),
        ("* * * * *", "2026-11-26T09:58:00", "2026-11-26T10:00:00.5", "2026-11-26T10:00:00"),
        ("* * * * *", "2026-11-26T10:00:00", "2026-11-26T10:00:59.9", None),
        ("@daily", "2026-11-25T12:00:00", "2026-11-26T00:00:10", "2026-11-26T00:00:00"),
        ("0 3 * * 0", "2026-11-23T00:00:00", "2026-11-29T04:00:00", "2026-11-29T03:00:00"),
    ],
)
def test_due_schedule(schedule: str, since: str, at: str, due: str | None) -> None:
    def t(text: str) -> dt.datetime:
        return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)

    expected = None if due is None else t(due)
    assert retrain.due_schedule(schedule, t(since), t(at)) == expected


def test_next_schedule() -> None:
    at = dt.datetime(2026, 11, 26, 2, 59, 59, 500_000, tzinfo=UTC)
    assert retrain.next_schedule("0 3 * * *", at) == dt.datetime(2026, 11, 26, 3, tzinfo=UTC)
    at = dt.datetime(2026, 11, 26, 3, 0, 0, 1, tzinfo=UTC)
    assert retrain.next_schedule("0 3 * * *", at) == dt.datetime(2026, 11, 27, 3, tzinfo=UTC)
    assert retrain.next_schedule("* * * * *", T0) == T0 + dt.timedelta(minutes=1)


def test_a_schedule_fires_once_per_scheduled_time() -> None:
    """Driving due_schedule as on_schedule does (since: the last scheduled trigger's recorded
    time), across a day of reconciles every 7 minutes: one trigger per scheduled time."""
    schedule = "*/30 * * * *"
    since = T0 - dt.timedelta(seconds=30)  # the Model's creation
    fired: list[dt.datetime] = []
    at = T0
    while at < T0 + dt.timedelta(days=1):
        due = retrain.due_schedule(schedule, since, at)
        if due is not None:
            fired.append(due)
            # Recorded with second precision, as record() writes it.
            since = at.replace(microsecond=0)
        at += dt.timedelta(minutes=7, microseconds=123)
    assert len(fired) == len(set(fired)) == 48
    assert fired[0] == T0
