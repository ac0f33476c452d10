"""The history of what was aliased and served when, as pure functions over old and new status.

An entry is appended in the same status write that makes the change, computed from the stored
status (what was) and the new one (what is): a restarted operator compares the same two and
finds the change already recorded, so nothing is doubled, and a change made while it was down
is recorded once when it comes back. No change, no entry, no write. Changes faster than one
reconcile (two edits between two looks) collapse into one entry, from the first state to the
last. The list is bounded (api.governance.HISTORY_LIMIT); entries that drop out are returned so
the caller can post them as Events, and counted in historyTrimmed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from modelwerk.api.governance import (
    ANNOTATION_MOVE_REASON,
    ANNOTATION_MOVED_BY,
    HISTORY_LIMIT,
    AliasMoveReason,
    ServingChangeReason,
)
from modelwerk.api.model import Model

Entry = dict[str, Any]


def alias_moves(
    model: Model, old: Mapping[str, int], new: Mapping[str, int], at: str
) -> list[Entry]:
    """One entry per alias whose version differs between the stored and the new status."""
    protected = {p.alias for p in model.spec.protection.aliases} if model.spec.protection else set()
    promoted = model.spec.promotion.alias if model.spec.promotion else None
    annotations = model.metadata.annotations or {}
    moves = []
    for alias in sorted(set(old) | set(new)):
        before, after = old.get(alias), new.get(alias)
        if before == after:
            continue
        declared = alias in model.spec.aliases or alias != promoted
        entry: Entry = {
            "at": at,
            "alias": alias,
            "reason": str(AliasMoveReason.DECLARED if declared else AliasMoveReason.PROMOTED),
        }
        if before is not None:
            entry["from"] = before
        if after is not None:
            entry["to"] = after
        # Only a protected alias's move is attributed: there the admission policy has checked
        # that the request moving it set the annotation to its own username.
        if alias in protected and annotations.get(ANNOTATION_MOVED_BY):
            entry["by"] = annotations[ANNOTATION_MOVED_BY]
            if reason := annotations.get(ANNOTATION_MOVE_REASON):
                entry["message"] = reason[:256]
        moves.append(entry)
    return moves


def serving_change(
    old: Mapping[str, Any], new: Mapping[str, Any], at: str, *, reverted: bool = False
) -> Entry | None:
    """The entry for a Deployment whose served version, canary or canary traffic changed."""

    def served(status: Mapping[str, Any]) -> tuple[Any, Any, Any, Any]:
        canary = status.get("canary") or {}
        return (
            status.get("currentVersion"),
            canary.get("version"),
            canary.get("trafficPercent"),
            canary.get("state"),
        )

    before, after = served(old), served(new)
    if before == after:
        return None
    if after[3] != before[3] and after[3] == "Promoted":
        # First: the write that records the promotion may also be the one where the promoted
        # version became current (its pods were ready already); it is still the promotion.
        reason = ServingChangeReason.CANARY_PROMOTED
    elif before[0] != after[0]:
        reason = ServingChangeReason.REVERTED if reverted else ServingChangeReason.SWITCHED
    elif after[3] != before[3] and after[3] == "RolledBack":
        reason = ServingChangeReason.ROLLED_BACK
    elif after[1] is None:
        reason = ServingChangeReason.CANARY_REMOVED
    elif after[1] != before[1]:
        reason = ServingChangeReason.CANARY_STARTED
    else:
        reason = ServingChangeReason.CANARY_STEPPED
    entry: Entry = {"at": at, "reason": str(reason)}
    if after[0] is not None:
        entry["version"] = after[0]
    if after[1] is not None:
        entry["canary"] = after[1]
        if after[2] is not None:
            entry["trafficPercent"] = after[2]
    return entry


def append(
    status: Mapping[str, Any], entries: Sequence[Entry], limit: int = HISTORY_LIMIT
) -> tuple[dict[str, Any], list[Entry]]:
    """`status` with `entries` appended to its history, bounded to `limit`; and the entries
    that dropped out, oldest first."""
    if not entries:
        return dict(status), []
    history = [*(status.get("history") or []), *entries]
    dropped = history[: max(0, len(history) - limit)]
    out = {**status, "history": history[len(dropped) :]}
    if dropped:
        out["historyTrimmed"] = int(status.get("historyTrimmed") or 0) + len(dropped)
    return out, dropped


def dropped_between(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Entry]:
    """The entries of the stored history that a written status no longer holds."""
    count = int(new.get("historyTrimmed") or 0) - int(old.get("historyTrimmed") or 0)
    return list((old.get("history") or [])[: max(0, count)])


def describe(entry: Mapping[str, Any]) -> str:
    """One line for an Event: `production 2 -> 3 (Declared, by alice) at ...`."""
    if "alias" in entry:
        what = f"{entry['alias']} {entry.get('from', '-')} -> {entry.get('to', '-')}"
    else:
        what = f"version {entry.get('version', '-')}"
        if "canary" in entry:
            what += f", canary {entry['canary']} at {entry.get('trafficPercent', 0)}%"
    by = f", by {entry['by']}" if entry.get("by") else ""
    return f"{what} ({entry['reason']}{by}) at {entry['at']}"
