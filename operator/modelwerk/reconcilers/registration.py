"""Writing a Model's status: compare-and-swap on its resourceVersion, and registering a run's
version exactly once. Shared by the Model and TrainingRun reconcilers and the retrain
triggers; the rules themselves are registry.py's."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from modelwerk import k8s, kinds, metrics, registry
from modelwerk.api.model import Model
from modelwerk.manager import Manager
from modelwerk.reconcilers.common import post_dropped
from modelwerk.status import merge_patch, status_changed
from modelwerk.store import key_of, newer

CAS_ATTEMPTS = 20
Compute = Callable[[Mapping[str, Any]], dict[str, Any] | None]


async def write_model_status(mgr: Manager, body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The status the Model's spec and registered versions make, written if it differs."""
    return await compare_and_swap(
        mgr, body, lambda current: registry.desired_status(current, mgr.timestamp())
    )


async def register_version(
    mgr: Manager, body: Mapping[str, Any], entry: Mapping[str, Any]
) -> Mapping[str, Any]:
    """Appends `entry` (without a number) as the next version, once per run UID: a retry after a
    crash or a conflict finds the version already there and returns it."""
    uid = entry["source"]["uid"]
    appended = False

    def compute(current: Mapping[str, Any]) -> dict[str, Any] | None:
        nonlocal appended
        appended = False
        versions = (current.get("status") or {}).get("versions") or []
        if registry.find_by_uid(versions, uid) is not None:
            return None
        at = mgr.timestamp()
        # Numbered after the declared versions too, even those the status has not merged yet
        # (a Model just created or edited): taking a declared number would refuse that version.
        merged = registry.resolve(Model.from_body(current), versions, at).versions
        appended = True
        return registry.desired_status(
            current, at, {**entry, "version": registry.next_number(merged)}
        )

    updated = await compare_and_swap(mgr, body, compute)
    version = registry.find_by_uid((updated.get("status") or {}).get("versions") or [], uid)
    if version is None:
        raise RuntimeError(f"version of run {uid} missing after registration")
    if appended:
        # Counted once the write that appended it succeeded (the last compute's decision).
        metrics.VERSIONS_REGISTERED.inc()
    return version


def _promoted(body: Mapping[str, Any], version: int) -> bool:
    promotions = (body.get("status") or {}).get("canaryPromotions") or []
    return any(int(p["version"]) == version for p in promotions)


async def record_canary_promotion(
    mgr: Manager, body: Mapping[str, Any], version: int, deployment: str
) -> Mapping[str, Any]:
    """Records that `deployment` promoted `version` from a canary, unless some Deployment did
    before (the first promotion stays): the evidence of protected aliases' requireCanary."""

    def compute(current: Mapping[str, Any]) -> dict[str, Any] | None:
        if _promoted(current, version):
            return None
        status = dict(current.get("status") or {})
        entry = {"version": version, "deployment": deployment, "at": mgr.timestamp()}
        promotions = [*(status.get("canaryPromotions") or []), entry]
        return {**status, "canaryPromotions": sorted(promotions, key=lambda p: p["version"])}

    if _promoted(body, version):
        return body  # the common case: recorded already, no lock taken
    return await compare_and_swap(mgr, body, compute)


async def compare_and_swap(
    mgr: Manager, body: Mapping[str, Any], compute: Compute
) -> Mapping[str, Any]:
    """Writes the computed status only if the Model is unchanged since it was read (its
    resourceVersion); on a conflict re-reads and recomputes. The status carries the whole
    version list, so this is what keeps concurrent registrations from losing one.

    Within this process the writes to one Model take turns and start from the newest copy in
    the cache (each write updates it), so twenty runs finishing together cost twenty writes,
    not a storm of conflicts; the resourceVersion still guards against any other writer."""
    key = key_of(body)
    async with mgr.lock((kinds.MODEL, key)):
        return await _compare_and_swap(mgr, _newest(body, mgr.store(kinds.MODEL).get(key)), compute)


def _newest(a: Mapping[str, Any], b: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return b if b is not None and newer(b, a) else a


async def _compare_and_swap(
    mgr: Manager, body: Mapping[str, Any], compute: Compute
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
            updated = await mgr.kube.patch_status(
                current,
                merge_patch(current.get("status") or {}, status),
                resource_version=meta["resourceVersion"],
            )
        except k8s.Conflict:
            current = await mgr.kube.get(kinds.MODEL, meta["name"], meta["namespace"])
            continue
        mgr.store(kinds.MODEL).upsert(updated)
        await post_dropped(mgr, updated, current.get("status") or {}, status, "AliasHistory")
        return updated
    raise RuntimeError(f"gave up writing the Model's status after {CAS_ATTEMPTS} conflicts")
