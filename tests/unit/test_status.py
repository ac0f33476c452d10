"""status.py (conditions, change detection) and the Model's desired status."""

from __future__ import annotations

import copy
import random
import re
from typing import Any

import pytest

from modelwerk.api.model import ModelStatus
from modelwerk.registry import desired_status, next_number
from modelwerk.status import get_condition, is_true, now, set_condition, status_changed

T0 = "2024-05-01T10:00:00Z"
T1 = "2024-05-01T11:00:00Z"
T2 = "2024-05-01T12:00:00Z"


def cond(type_: str, status: str, reason: str = "R", at: str = T0, **extra: Any) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": f"{type_} is {status}",
        "lastTransitionTime": at,
        **extra,
    }


# --- set_condition --------------------------------------------------------------------------


def test_new_condition_is_appended_with_the_given_time() -> None:
    existing = [cond("Accepted", "True")]
    result = set_condition(existing, "Ready", "False", "Waiting", "not yet", 3, at=T1)
    assert result == [
        cond("Accepted", "True"),
        {
            "type": "Ready",
            "status": "False",
            "reason": "Waiting",
            "message": "not yet",
            "lastTransitionTime": T1,
            "observedGeneration": 3,
        },
    ]


def test_reasserting_the_same_status_keeps_the_transition_time() -> None:
    existing = [cond("Ready", "True", reason="Old", at=T0, observedGeneration=1)]
    result = set_condition(existing, "Ready", "True", "New", "new message", 2, at=T2)
    (ready,) = result
    assert ready["lastTransitionTime"] == T0
    # Everything but the transition time follows the latest call.
    assert ready["reason"] == "New"
    assert ready["message"] == "new message"
    assert ready["observedGeneration"] == 2


@pytest.mark.parametrize(
    ("before", "after"), [("True", "False"), ("False", "Unknown"), ("Unknown", "True")]
)
def test_a_status_flip_moves_the_transition_time(before: str, after: Any) -> None:
    existing = [cond("Ready", before, at=T0)]
    (ready,) = set_condition(existing, "Ready", after, "Flipped", "m", 1, at=T2)
    assert ready["status"] == after
    assert ready["lastTransitionTime"] == T2


def test_other_conditions_are_untouched_and_order_is_kept() -> None:
    existing = [
        cond("Accepted", "True", observedGeneration=1),
        cond("Ready", "False"),
        cond("Complete", "Unknown", custom="kept"),
    ]
    before = copy.deepcopy(existing)
    result = set_condition(existing, "Ready", "True", "Done", "ok", 5, at=T2)
    assert [c["type"] for c in result] == ["Accepted", "Ready", "Complete"]
    assert result[0] == before[0]
    assert result[2] == before[2]
    assert result[1]["lastTransitionTime"] == T2
    # A new list; the input is not modified.
    assert existing == before
    assert result is not existing
    assert result[0] is not existing[0]


def test_no_generation_no_observed_generation() -> None:
    (ready,) = set_condition([], "Ready", "True", "R", "m", None, at=T0)
    assert "observedGeneration" not in ready
    # observedGeneration 0 is a generation, not "none".
    (ready,) = set_condition([], "Ready", "True", "R", "m", 0, at=T0)
    assert ready["observedGeneration"] == 0


def test_default_time_is_now_in_the_kubernetes_format() -> None:
    (ready,) = set_condition([], "Ready", "True", "R", "m", 1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", ready["lastTransitionTime"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", now())


def test_reasserting_is_not_a_change() -> None:
    status = {"conditions": set_condition([], "Ready", "True", "R", "m", 1, at=T0)}
    again = {"conditions": set_condition(status["conditions"], "Ready", "True", "R", "m", 1, at=T2)}
    assert not status_changed(status, again)


def test_get_condition_and_is_true() -> None:
    conditions = [cond("Ready", "True"), cond("Failed", "False"), cond("Odd", "Unknown")]
    found = get_condition(conditions, "Failed")
    assert found is not None
    assert found["status"] == "False"
    assert get_condition(conditions, "Missing") is None
    assert is_true(conditions, "Ready")
    assert not is_true(conditions, "Failed")
    assert not is_true(conditions, "Odd")
    assert not is_true(conditions, "Missing")
    assert not is_true([], "Ready")


# --- status_changed -------------------------------------------------------------------------


def test_status_changed_detects_real_changes() -> None:
    old = {"phase": "Pending", "conditions": [cond("Ready", "False")], "versions": [{"version": 1}]}
    assert not status_changed(old, copy.deepcopy(old))
    assert status_changed(old, {**old, "phase": "Ready"})
    assert status_changed(old, {**old, "extra": 1})
    assert status_changed(old, {**old, "versions": [{"version": 1}, {"version": 2}]})
    assert status_changed(old, {**old, "versions": [{"version": 1, "metrics": {"a": 1.0}}]})
    assert status_changed(old, {**old, "conditions": [cond("Ready", "True")]})


def test_status_changed_ignores_nulls_and_key_order() -> None:
    old = {"phase": "Ready", "aliases": {"a": 1, "b": 2}}
    assert not status_changed(old, {"aliases": {"b": 2, "a": 1}, "phase": "Ready"})
    assert not status_changed(old, {**old, "latestVersion": None})
    assert not status_changed(
        {"versions": [{"version": 1}]}, {"versions": [{"version": 1, "lineage": None}]}
    )


def test_status_changed_list_order_matters() -> None:
    a = {"conditions": [cond("A", "True"), cond("B", "True")]}
    b = {"conditions": [cond("B", "True"), cond("A", "True")]}
    assert status_changed(a, b)


def test_status_changed_from_nothing() -> None:
    assert status_changed(None, {"phase": "Pending"})
    assert not status_changed(None, {})
    assert not status_changed({}, {"phase": None})


# --- the Model's desired status -------------------------------------------------------------


def digest(n: int) -> str:
    return "sha256:" + f"{n:02x}" * 32


def version(number: int, art: int | None = None, **extra: Any) -> dict[str, Any]:
    n = number if art is None else art
    return {
        "version": number,
        "artifact": {"uri": f"s3://models/iris/v{n}", "digest": digest(n)},
        "metrics": {"accuracy": 0.5 + number / 100},
        "source": {"trainingRun": f"iris-{number}", "uid": f"uid-{number}"},
        "registeredAt": T0,
        **extra,
    }


def model_body(
    spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None, generation: int = 4
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "modelwerk.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "iris", "namespace": "ml", "generation": generation},
        "spec": spec or {},
    }
    if status is not None:
        body["status"] = status
    return body


def test_empty_model_is_pending() -> None:
    status = desired_status(model_body(), T1)
    assert status["phase"] == "Pending"
    assert status["versions"] == []
    assert status["aliases"] == {}
    assert status["observedGeneration"] == 4
    assert "latestVersion" not in status
    ready = get_condition(status["conditions"], "Ready")
    assert ready is not None
    assert ready["status"] == "True"
    assert ready["reason"] == "Resolved"
    assert ready["message"] == "no version registered yet"
    assert ready["lastTransitionTime"] == T1
    assert ready["observedGeneration"] == 4


def test_model_with_versions_is_ready_with_the_latest_version() -> None:
    body = model_body(status={"versions": [version(1), version(3), version(2)]})
    status = desired_status(body, T1)
    assert status["phase"] == "Ready"
    assert status["latestVersion"] == 3
    assert [v["version"] for v in status["versions"]] == [1, 2, 3]
    ready = get_condition(status["conditions"], "Ready")
    assert ready is not None
    assert ready["message"] == "3 version(s) registered"


def test_new_version_is_appended_and_promoted() -> None:
    spec = {"promotion": {"alias": "candidate", "metric": "accuracy"}}
    body = model_body(spec, {"versions": [version(1), version(2)], "aliases": {"candidate": 2}})
    new = version(3)
    status = desired_status(body, T1, new)
    assert status["latestVersion"] == 3
    assert status["versions"][-1] == new
    assert status["aliases"] == {"candidate": 3}


def test_declared_versions_count_for_latest_version() -> None:
    spec = {"versions": [{"version": 5, "artifact": {"uri": "s3://elsewhere/m5"}}]}
    status = desired_status(model_body(spec, {"versions": [version(1)]}), T1)
    assert status["latestVersion"] == 5
    assert status["phase"] == "Ready"
    assert status["versions"][-1]["source"] == {"declared": True}
    assert status["versions"][-1]["registeredAt"] == T1


def test_conflict_degrades_the_model_without_touching_the_version() -> None:
    spec = {"versions": [{"version": 1, "artifact": {"uri": "s3://other/m", "digest": digest(77)}}]}
    registered = version(1)
    body = model_body(spec, {"versions": [registered]})
    status = desired_status(body, T1)
    assert status["phase"] == "Degraded"
    assert status["versions"] == [registered]
    assert status["latestVersion"] == 1
    ready = get_condition(status["conditions"], "Ready")
    assert ready is not None
    assert ready["status"] == "False"
    assert ready["reason"] == "VersionConflict"
    assert "declared version 1 collides" in ready["message"]


def test_resolving_the_conflict_makes_the_model_ready_again() -> None:
    bad = {"versions": [{"version": 1, "artifact": {"uri": "s3://other/m", "digest": digest(77)}}]}
    degraded = desired_status(model_body(bad, {"versions": [version(1)]}), T1)
    # Same problem later: the transition time stays.
    still = desired_status(model_body(bad, degraded), T2)
    assert still == degraded
    assert not status_changed(degraded, still)
    # The user fixes the number: the declared version is merged, Ready flips and its time moves.
    fixed = {
        "versions": [{"version": 2, "artifact": {"uri": "s3://other/m", "digest": digest(77)}}]
    }
    ready_status = desired_status(model_body(fixed, degraded), T2)
    assert ready_status["phase"] == "Ready"
    ready = get_condition(ready_status["conditions"], "Ready")
    assert ready is not None
    assert ready["status"] == "True"
    assert ready["lastTransitionTime"] == T2
    assert [v["version"] for v in ready_status["versions"]] == [1, 2]


def test_unknown_status_fields_are_kept() -> None:
    retrain = {"triggers": [{"at": T0, "reason": "Manual", "trainingRun": "iris-9"}]}
    body = model_body(status={"versions": [version(1)], "retrain": retrain})
    assert desired_status(body, T1)["retrain"] == retrain


def test_stale_latest_version_is_dropped_when_nothing_is_registered() -> None:
    status = desired_status(model_body(status={"latestVersion": 3, "versions": []}), T1)
    assert "latestVersion" not in status


# Property-style: whatever the spec declares, what is registered stays exactly as it was.


def generated_case(seed: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    rng = random.Random(seed)
    numbers = sorted(rng.sample(range(1, 11), rng.randint(0, 6)))
    versions = [version(n) for n in numbers]
    for v in versions:
        if rng.random() < 0.3:
            del v["metrics"]["accuracy"]
        if rng.random() < 0.3:
            v["lineage"] = {"image": f"img@{digest(v['version'])}", "seed": v["version"]}
    rng.shuffle(versions)  # the stored order is not trusted
    declared: list[dict[str, Any]] = []
    used: set[int] = set()
    for _ in range(rng.randint(0, 4)):
        kind = rng.choice(["identical", "collide", "same-digest", "new"])
        if kind in ("identical", "collide") and numbers:
            n = rng.choice(numbers)
            art = (
                version(n)["artifact"]
                if kind == "identical"
                else version(n, art=100 + n)["artifact"]
            )
        elif kind == "same-digest" and numbers:
            n = rng.randint(11, 20)
            art = {"uri": f"s3://copy/{n}", "digest": digest(rng.choice(numbers))}
        else:
            n = rng.randint(1, 20)
            art = version(n, art=200 + n)["artifact"]
        if n in used:
            continue
        used.add(n)
        declared.append({"version": n, "artifact": art, "metrics": {"accuracy": rng.random()}})
    spec: dict[str, Any] = {"versions": declared}
    if rng.random() < 0.6:
        spec["promotion"] = {
            "alias": "candidate",
            "metric": "accuracy",
            "direction": rng.choice(["max", "min"]),
        }
    if rng.random() < 0.5:
        spec["aliases"] = {"production": rng.randint(1, 22)}
    conditions = []
    if rng.random() < 0.5:
        conditions = [cond("Ready", rng.choice(["True", "False"]), at=T0, observedGeneration=1)]
    status = {"versions": versions, "conditions": conditions, "aliases": {"stale": 1}}
    new = None
    if rng.random() < 0.5:
        new = version(next_number(versions), art=250)
        del new["source"]["trainingRun"]
    return model_body(spec, status, generation=rng.randint(1, 9)), new


@pytest.mark.parametrize("seed", range(40))
def test_registered_versions_are_never_dropped_or_modified(seed: int) -> None:
    body, new = generated_case(seed)
    before = copy.deepcopy(body)
    status = desired_status(body, T1, new)

    assert body == before, "the input body was modified"
    for registered in before["status"]["versions"]:
        assert registered in status["versions"]
    if new is not None:
        assert new in status["versions"]
    numbers = [int(v["version"]) for v in status["versions"]]
    assert numbers == sorted(set(numbers)), "version numbers must be unique and sorted"
    assert len(numbers) >= len(before["status"]["versions"]) + (new is not None)
    assert status["latestVersion" if numbers else "phase"] == (
        max(numbers) if numbers else "Pending"
    )
    assert set(status["aliases"].values()) <= set(numbers)

    ready = get_condition(status["conditions"], "Ready")
    assert ready is not None
    assert ready["observedGeneration"] == before["metadata"]["generation"]
    assert status["observedGeneration"] == before["metadata"]["generation"]
    if ready["status"] == "False":
        assert status["phase"] == "Degraded"
    else:
        assert status["phase"] == ("Ready" if numbers else "Pending")
    # What is written must parse back as a ModelStatus.
    ModelStatus.model_validate(status)


@pytest.mark.parametrize("seed", range(40))
def test_desired_status_is_a_fixed_point(seed: int) -> None:
    """Reconciling again with nothing new changes nothing, so nothing is written again."""
    body, new = generated_case(seed)
    first = desired_status(body, T1, new)
    second = desired_status({**body, "status": first}, T2)
    assert not status_changed(first, second)
