"""What every reconciler does the same way: build status on top of the stored one, post an
Event per transition, and apply a set of children, writing only those whose spec changed."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from modelwerk import constants, history
from modelwerk.builders.spechash import with_spec_hash
from modelwerk.kinds import Kind
from modelwerk.manager import Manager
from modelwerk.status import (
    ConditionStatus,
    get_condition,
    merge_patch,
    set_condition,
    status_changed,
)
from modelwerk.store import key_of

SPEC_HASH = constants.ANNOTATION_SPEC_HASH


class StatusBuilder:
    """Accumulates conditions over the stored status; lastTransitionTime moves on flips only."""

    def __init__(self, body: Mapping[str, Any], at: str) -> None:
        self.old: dict[str, Any] = dict(body.get("status") or {})
        self.status: dict[str, Any] = dict(self.old)
        self.generation = body["metadata"].get("generation")
        self.at = at

    def condition(self, type_: str, ok: bool | None, reason: str, message: str) -> None:
        value: ConditionStatus = "Unknown" if ok is None else ("True" if ok else "False")
        self.status["conditions"] = set_condition(
            self.status.get("conditions") or [],
            type_,
            value,
            reason,
            message,
            self.generation,
            at=self.at,
        )

    def finish(self, phase: str) -> dict[str, Any]:
        self.status["phase"] = phase
        self.status["observedGeneration"] = self.generation
        return self.status


def changed_conditions(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Conditions whose status or reason differ from the stored ones."""
    changed = []
    for cond in new.get("conditions") or []:
        before = get_condition(old.get("conditions") or [], cond["type"])
        if before is None or (before.get("status"), before.get("reason")) != (
            cond["status"],
            cond["reason"],
        ):
            changed.append(cond)
    return changed


async def post_transitions(
    mgr: Manager,
    body: Mapping[str, Any],
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    bad: Callable[[Mapping[str, Any]], bool],
    quiet_phases: Collection[str] = (),
) -> None:
    """One Event per phase change, summing up what changed with it, and a Warning for bad news
    that comes without one. Few events on purpose: each is an API write, and a run's lifecycle
    should cost a handful of writes, not one per condition. Entering a `quiet_phases` phase
    posts nothing unless something went wrong (the phase itself is in the status)."""
    changed = changed_conditions(old, new)
    troubles = [c for c in changed if bad(c)]
    phase = new.get("phase")
    if old.get("phase") != phase and (phase not in quiet_phases or troubles):
        summary = "; ".join(
            f"{c['type']}={c['status']}: {c.get('message') or c['reason']}" for c in changed
        )
        await mgr.kube.event(
            body,
            reason=str(new.get("phase")),
            message=summary or f"phase {new.get('phase')}",
            type_="Warning" if troubles else "Normal",
        )
        return
    for cond in troubles:
        await mgr.kube.event(
            body,
            reason=str(cond["reason"]),
            message=f"{cond['type']}={cond['status']}: {cond.get('message') or cond['reason']}",
            type_="Warning",
        )


async def write_status(
    mgr: Manager,
    kind: Kind,
    body: Mapping[str, Any],
    sb: StatusBuilder,
    phase: str,
    bad: Callable[[Mapping[str, Any]], bool],
    quiet_phases: Collection[str] = (),
    events: Sequence[tuple[str, str, str]] = (),
) -> dict[str, Any]:
    """Writes the built status only if it differs from the stored one, keeps the cache in step,
    and posts the transition's Events (and `events`: reason, message, type) after it.
    Returns the status as it now stands.

    Events are posted only by the write that records their transition: a status already saying
    so (another reconcile, or an operator before a restart, got there first) posts nothing, so
    no Event is posted twice for want of remembering it."""
    status = sb.finish(phase)
    if status_changed(sb.old, status):
        updated = await mgr.kube.patch_status(body, merge_patch(sb.old, status))
        mgr.store(kind).upsert(updated)
        await post_transitions(mgr, body, sb.old, status, bad, quiet_phases)
        for reason, message, type_ in events:
            await mgr.kube.event(body, reason=reason, message=message, type_=type_)
    return status


async def apply_children(
    mgr: Manager,
    kind: Kind,
    desired: Sequence[Mapping[str, Any]],
    observed: Sequence[Mapping[str, Any]],
    *,
    prune: bool = True,
) -> list[Mapping[str, Any]]:
    """Server-side applies each desired child whose spec hash differs from what is observed, and
    deletes observed children no longer desired. Returns the children as they now are.

    The one place every child gets its spec hash (builders may stamp it already; stamping is
    idempotent), so no child kind is re-applied on every reconcile for want of one."""
    by_name = {o["metadata"]["name"]: o for o in observed}
    result: list[Mapping[str, Any]] = []
    for manifest in map(with_spec_hash, desired):
        name = manifest["metadata"]["name"]
        current = by_name.pop(name, None)
        want = (manifest["metadata"].get("annotations") or {}).get(SPEC_HASH)
        have = ((current or {}).get("metadata", {}).get("annotations") or {}).get(SPEC_HASH)
        if current is not None and want is not None and want == have:
            result.append(current)
            continue
        applied = await mgr.kube.apply(manifest)
        result.append(mgr.store(kind).upsert(applied))
    if prune:
        for name, leftover in by_name.items():
            meta = leftover["metadata"]
            await mgr.kube.delete(kind, name, meta["namespace"])
            mgr.store(kind).remove(key_of(leftover))
    return result


async def post_dropped(
    mgr: Manager,
    body: Mapping[str, Any],
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    reason: str,
) -> None:
    """History entries that dropped out of the bounded list go to Events, one each (after the
    write: a crash in between loses the Event, never the count in historyTrimmed)."""
    for entry in history.dropped_between(old, new):
        await mgr.kube.event(body, reason=reason, message=history.describe(entry))
