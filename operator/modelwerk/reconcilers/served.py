"""What a Deployment serves, shared by the native and the Seldon runtime: the versions with
their replicas, the children it owns, and the status of a version that serves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelwerk import kinds
from modelwerk.api.deployment import Deployment
from modelwerk.builders.modelserver import ServedVersion
from modelwerk.kinds import Kind
from modelwerk.manager import Manager
from modelwerk.reconcilers.common import StatusBuilder, apply_children
from modelwerk.store import ObjectKey

# What each runtime applies, and prunes after a switch to the other.
NATIVE_KINDS = (kinds.APPS_DEPLOYMENT, kinds.SERVICE, kinds.HPA, kinds.PDB, kinds.HTTP_ROUTE)
SELDON_KINDS = (kinds.SELDON_DEPLOYMENT,)


def served_version(
    entry: Mapping[str, Any], track: str, replicas: int, storage_secret: str | None = None
) -> ServedVersion:
    baseline = entry.get("baseline") or {}
    # The report's column order when recorded; sorted names are the best guess otherwise.
    features = baseline.get("featureOrder") or sorted(baseline.get("features") or {})
    return ServedVersion(
        number=int(entry["version"]),
        artifact_uri=str(entry["artifact"]["uri"]),
        digest=entry["artifact"].get("digest"),
        feature_names=tuple(features),
        track=track,  # type: ignore[arg-type]
        replicas=replicas,
        storage_secret=storage_secret,
    )


@dataclass
class Plan:
    """What to serve: the stable version (or the one being rolled to) and the canary."""

    target: Mapping[str, Any]
    canary: Mapping[str, Any] | None = None
    canary_percent: int = 0
    canary_status: dict[str, Any] | None = None
    previous: Mapping[str, Any] | None = None
    """The version served until `target` is ready (a zero-downtime switch)."""
    requeue_after: float | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)


def storage_secret(mgr: Manager, dep: Deployment) -> str | None:
    """The Model's storage credentials Secret (same namespace), for s3:// artifacts."""
    model = mgr.store(kinds.MODEL).get((dep.metadata.namespace or "", dep.spec.model)) or {}
    name = ((model.get("spec") or {}).get("storage") or {}).get("secretRef", {}).get("name")
    return str(name) if name else None


def owned_children(mgr: Manager, kind: Kind, key: ObjectKey) -> list[Mapping[str, Any]]:
    return list(mgr.store(kind).by_index(kinds.BY_OWNER, key))


async def prune(mgr: Manager, of_kinds: Sequence[Kind], key: ObjectKey) -> None:
    """Children of the other runtime (after a runtime switch) are removed."""
    for kind in of_kinds:
        owned = owned_children(mgr, kind, key)
        if owned:
            await apply_children(mgr, kind, [], owned)


def mark_serving(sb: StatusBuilder, plan: Plan, entry: Mapping[str, Any]) -> str:
    number = int(entry["version"])
    sb.status["currentVersion"] = number
    set_lineage(sb, entry)
    sb.condition("Ready", True, "Serving", f"version {number} is serving")
    sb.condition("Progressing", False, "RolledOut", f"version {number} is rolled out")
    sb.condition("Degraded", False, "Healthy", "all served versions are ready")
    return "Available"


def set_lineage(sb: StatusBuilder, entry: Mapping[str, Any]) -> None:
    lineage = dict(entry.get("lineage") or {})
    source = entry.get("source") or {}
    if source.get("trainingRun"):
        lineage["trainingRun"] = source["trainingRun"]
    sb.status["lineage"] = lineage


def serving_other_runtime(sb: StatusBuilder, what: str, target: int) -> None:
    current = sb.old.get("currentVersion")
    version = f"version {current}" if current is not None else "the previous version"
    sb.condition(
        "Ready",
        True,
        "ServingPrevious",
        f"{what} keeps serving {version} until version {target} is ready on the new runtime",
    )


def seldon_available(sdep: Mapping[str, Any]) -> bool:
    return (sdep.get("status") or {}).get("state") == "Available"
