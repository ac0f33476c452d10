"""What a Deployment serves, shared by the native and the Seldon runtime: the versions with
their replicas, the children it owns, and the status of a version that serves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelwerk.api.deployment import Deployment
from modelwerk.builders import serving
from modelwerk.reconcilers.common import StatusBuilder, apply_children
from modelwerk.runtime import Runtime
from modelwerk.store import ObjectKey

NATIVE_STORES = ("apps/Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget")
SELDON_STORES = ("SeldonDeployment",)


def served_version(
    entry: Mapping[str, Any], track: str, replicas: int, storage_secret: str | None = None
) -> serving.ServedVersion:
    baseline = entry.get("baseline") or {}
    # The report's column order when recorded; sorted names are the best guess otherwise.
    features = baseline.get("featureOrder") or sorted(baseline.get("features") or {})
    return serving.ServedVersion(
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


def storage_secret(rt: Runtime, dep: Deployment) -> str | None:
    """The Model's storage credentials Secret (same namespace), for s3:// artifacts."""
    model = rt.store("Model").get((dep.metadata.namespace or "", dep.spec.model)) or {}
    name = ((model.get("spec") or {}).get("storage") or {}).get("secretRef", {}).get("name")
    return str(name) if name else None


def owned_children(rt: Runtime, store: str, key: ObjectKey) -> list[Mapping[str, Any]]:
    return list(rt.store(store).by_index("owner", key))


async def prune(rt: Runtime, stores: Sequence[str], key: ObjectKey) -> None:
    """Children of the other runtime (after a runtime switch) are removed."""
    for store in stores:
        owned = owned_children(rt, store, key)
        if owned:
            await apply_children(rt, store, [], owned)


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
