"""Pure helpers for status: conditions in the Kubernetes convention, phases derived from them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Literal

ConditionStatus = Literal["True", "False", "Unknown"]
Condition = dict[str, Any]


TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_time(at: dt.datetime) -> str:
    """A Kubernetes timestamp (RFC 3339, whole seconds, `Z`) of an aware datetime; the inverse
    of parse_time."""
    return (at if at.tzinfo is None else at.astimezone(dt.UTC)).strftime(TIME_FORMAT)


def format_micro_time(at: dt.datetime) -> str:
    """A Kubernetes MicroTime (RFC 3339 with microseconds, `Z`), as Leases carry them."""
    return (at if at.tzinfo is None else at.astimezone(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> dt.datetime:
    """A Kubernetes timestamp (RFC 3339, `Z` for UTC) as an aware datetime."""
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def now() -> str:
    return format_time(dt.datetime.now(dt.UTC))


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int | None,
    *,
    at: str | None = None,
) -> list[Condition]:
    """Returns a new list with the condition set. lastTransitionTime moves only when the status
    flips, so re-asserting the same condition is not a change (and costs no write)."""
    old = get_condition(conditions, type_)
    flipped = old is None or old.get("status") != status
    cond: Condition = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": (at or now())
        if flipped or old is None
        else old.get("lastTransitionTime"),
    }
    if generation is not None:
        cond["observedGeneration"] = generation
    result = [cond if c.get("type") == type_ else dict(c) for c in conditions]
    if old is None:
        result.append(cond)
    return result


def get_condition(conditions: Sequence[Mapping[str, Any]], type_: str) -> Mapping[str, Any] | None:
    for cond in conditions:
        if cond.get("type") == type_:
            return cond
    return None


def is_true(conditions: Sequence[Mapping[str, Any]], type_: str) -> bool:
    cond = get_condition(conditions, type_)
    return bool(cond is not None and cond.get("status") == "True")


def status_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """True when writing `new` would change what is stored (the operator writes only then)."""
    return bool(_normalise(old or {}) != _normalise(new))


def _normalise(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _normalise(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """`new` as a JSON merge patch over `old`. A merge patch keeps every key it does not name, so
    a key `new` no longer has is sent as null, at any depth: otherwise a removed canary's status,
    a previous canary's measurements or the previous version's lineage would stay forever."""
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            patch[key] = merge_patch(before, value)
        else:
            patch[key] = value
    return patch
