"""Model: merge declared versions, resolve aliases, register versions from finished runs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from modelwerk import k8s, registry
from modelwerk.api.model import Model
from modelwerk.reconcilers import retrain as retrain_reconciler
from modelwerk.runtime import Runtime
from modelwerk.status import merge_patch, now, set_condition, status_changed
from modelwerk.store import ObjectKey, newer

KIND = "Model"
CAS_ATTEMPTS = 20
log = logging.getLogger(__name__)


def desired_status(
    body: Mapping[str, Any], at: str, new_version: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The Model's status from its spec and registered versions (plus one being registered)."""
    model = Model.from_body(body)
    old: dict[str, Any] = dict(body.get("status") or {})
    versions = list(old.get("versions") or [])
    if new_version is not None:
        versions.append(dict(new_version))
    resolution = registry.resolve(model, versions, at)
    generation = body["metadata"].get("generation")
    conditions = old.get("conditions") or []
    if resolution.problems:
        conditions = set_condition(
            conditions,
            "Ready",
            "False",
            "VersionConflict",
            "; ".join(resolution.problems),
            generation,
            at=at,
        )
        phase = "Degraded"
    else:
        count = len(resolution.versions)
        conditions = set_condition(
            conditions,
            "Ready",
            "True",
            "Resolved",
            f"{count} version(s) registered" if count else "no version registered yet",
            generation,
            at=at,
        )
        phase = "Ready" if resolution.versions else "Pending"
    status = {
        **old,
        "versions": resolution.versions,
        "aliases": resolution.aliases,
        "conditions": conditions,
        "phase": phase,
        "observedGeneration": generation,
    }
    if resolution.versions:
        status["latestVersion"] = max(int(v["version"]) for v in resolution.versions)
    else:
        status.pop("latestVersion", None)
    return status


async def reconcile(rt: Runtime, key: ObjectKey) -> float | None:
    body = rt.store(KIND).get(key)
    if body is None:
        return None
    updated = await write_status(rt, body)
    return await retrain_reconciler.on_schedule(rt, updated)


async def write_status(rt: Runtime, body: Mapping[str, Any]) -> Mapping[str, Any]:
    return await compare_and_swap(rt, body, lambda current: desired_status(current, now()))


async def register_version(
    rt: Runtime, body: Mapping[str, Any], entry: Mapping[str, Any]
) -> Mapping[str, Any]:
    """Appends `entry` (without a number) as the next version, once per run UID: a retry after a
    crash or a conflict finds the version already there and returns it."""
    uid = entry["source"]["uid"]

    def compute(current: Mapping[str, Any]) -> dict[str, Any] | None:
        versions = (current.get("status") or {}).get("versions") or []
        if registry.find_by_uid(versions, uid) is not None:
            return None
        at = now()
        # Numbered after the declared versions too, even those the status has not merged yet
        # (a Model just created or edited): taking a declared number would refuse that version.
        merged = registry.resolve(Model.from_body(current), versions, at).versions
        return desired_status(current, at, {**entry, "version": registry.next_number(merged)})

    updated = await compare_and_swap(rt, body, compute)
    version = registry.find_by_uid((updated.get("status") or {}).get("versions") or [], uid)
    if version is None:
        raise RuntimeError(f"version of run {uid} missing after registration")
    return version


async def compare_and_swap(
    rt: Runtime,
    body: Mapping[str, Any],
    compute: Callable[[Mapping[str, Any]], dict[str, Any] | None],
) -> Mapping[str, Any]:
    """Writes the computed status only if the Model is unchanged since it was read (its
    resourceVersion); on a conflict re-reads and recomputes. The status carries the whole
    version list, so this is what keeps concurrent registrations from losing one.

    Within this process the writes to one Model take turns and start from the newest copy in
    the cache (each write updates it), so twenty runs finishing together cost twenty writes,
    not a storm of conflicts; the resourceVersion still guards against any other writer."""
    key = (body["metadata"].get("namespace") or "", body["metadata"]["name"])
    async with rt.lock((KIND, key)):
        return await _compare_and_swap(rt, _newest(body, rt.store(KIND).get(key)), compute)


def _newest(a: Mapping[str, Any], b: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return b if b is not None and newer(b, a) else a


async def _compare_and_swap(
    rt: Runtime,
    body: Mapping[str, Any],
    compute: Callable[[Mapping[str, Any]], dict[str, Any] | None],
) -> Mapping[str, Any]:
    current: Mapping[str, Any] | None = body
    for _ in range(CAS_ATTEMPTS):
        if current is None:
            raise k8s.NotFound(404, "NotFound", "the Model was deleted")
        status = compute(current)
        if status is None or not status_changed(current.get("status"), status):
            return current
        meta = current["metadata"]
        try:
            updated = await rt.kube.patch_status(
                current,
                merge_patch(current.get("status") or {}, status),
                resource_version=meta["resourceVersion"],
            )
        except k8s.Conflict:
            current = await rt.kube.get(
                current["apiVersion"], KIND, meta["name"], meta["namespace"]
            )
            continue
        rt.store(KIND).upsert(updated)
        return updated
    raise RuntimeError(f"gave up writing the Model's status after {CAS_ATTEMPTS} conflicts")
