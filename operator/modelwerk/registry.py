"""The Model registry's rules, as pure functions over a Model's status.

Versions are append-only: nothing here rewrites or drops a registered version. Numbers come from
`next_number` under compare-and-swap on the Model's resourceVersion (see
reconcilers/registration.py), and a run's UID makes its registration idempotent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelwerk import history
from modelwerk.api.common import Direction
from modelwerk.api.model import Model, ModelPhase
from modelwerk.status import set_condition

Version = dict[str, Any]


def find_by_uid(versions: Sequence[Mapping[str, Any]], uid: str) -> Mapping[str, Any] | None:
    for version in versions:
        if (version.get("source") or {}).get("uid") == uid:
            return version
    return None


def find_number(versions: Sequence[Mapping[str, Any]], number: int) -> Mapping[str, Any] | None:
    for version in versions:
        if version.get("version") == number:
            return version
    return None


def next_number(versions: Sequence[Mapping[str, Any]]) -> int:
    return max((int(v["version"]) for v in versions), default=0) + 1


def better(a: float, b: float, direction: Direction | str) -> bool:
    """Is `a` strictly better than `b`?"""
    return a > b if Direction(direction) == Direction.MAX else a < b


@dataclass
class Resolution:
    versions: list[Version]
    aliases: dict[str, int]
    problems: list[str] = field(default_factory=list)


def resolve(model: Model, versions: Sequence[Mapping[str, Any]], now: str) -> Resolution:
    """Merges declared versions into the registered ones and resolves aliases.

    A declared version whose number or digest is already registered with a different artifact is
    refused (reported in `problems`), never overwritten."""
    merged: list[Version] = [dict(v) for v in versions]
    problems: list[str] = []
    for declared in model.spec.versions:
        existing = find_number(merged, declared.version)
        artifact = declared.artifact.model_dump(mode="json", exclude_none=True)
        if existing is not None:
            if existing.get("artifact") != artifact:
                problems.append(
                    f"declared version {declared.version} collides with registered version "
                    f"{declared.version} ({existing.get('artifact', {}).get('uri')}); "
                    "registered versions are never overwritten: declare a new number"
                )
            continue
        same_digest = [
            v
            for v in merged
            if artifact.get("digest") and v.get("artifact", {}).get("digest") == artifact["digest"]
        ]
        if same_digest:
            problems.append(
                f"declared version {declared.version} has the digest of registered version "
                f"{same_digest[0]['version']}: one artifact, one version"
            )
            continue
        entry: Version = {
            "version": declared.version,
            "artifact": artifact,
            "metrics": dict(declared.metrics),
            "source": {"declared": True},
            "registeredAt": now,
        }
        if declared.baseline is not None:
            entry["baseline"] = declared.baseline.model_dump(mode="json", exclude_none=True)
        merged.append(entry)
    merged.sort(key=lambda v: int(v["version"]))

    aliases: dict[str, int] = {}
    promotion = model.spec.promotion
    if promotion is not None:
        best: Mapping[str, Any] | None = None
        for version in merged:
            value = (version.get("metrics") or {}).get(promotion.metric)
            if value is None:
                continue
            # Ties go to the newer version: re-training to the same score moves the alias on.
            if best is None or not better(
                best["metrics"][promotion.metric], value, promotion.direction
            ):
                best = version
        if best is not None:
            aliases[promotion.alias] = int(best["version"])
    for alias, number in sorted(model.spec.aliases.items()):
        if find_number(merged, number) is None:
            problems.append(f"alias {alias!r} names version {number}, which is not registered")
            continue
        aliases[alias] = number
    return Resolution(versions=merged, aliases=aliases, problems=problems)


def metric_of_alias(
    versions: Sequence[Mapping[str, Any]], aliases: Mapping[str, int], alias: str, metric: str
) -> tuple[int, float | None] | None:
    """The version an alias points to and its value of `metric`; None if the alias is unset."""
    number = aliases.get(alias)
    if number is None:
        return None
    version = find_number(versions, number)
    value = None if version is None else (version.get("metrics") or {}).get(metric)
    return number, (None if value is None else float(value))


def desired_status(
    body: Mapping[str, Any], at: str, new_version: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The Model's status from its spec and registered versions (plus one being registered)."""
    model = Model.from_body(body)
    old: dict[str, Any] = dict(body.get("status") or {})
    versions = list(old.get("versions") or [])
    if new_version is not None:
        versions.append(dict(new_version))
    resolution = resolve(model, versions, at)
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
        phase = ModelPhase.DEGRADED
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
        phase = ModelPhase.READY if resolution.versions else ModelPhase.PENDING
    status = {
        **old,
        "versions": resolution.versions,
        "aliases": resolution.aliases,
        "conditions": conditions,
        "phase": str(phase),
        "observedGeneration": generation,
    }
    moves = history.alias_moves(model, old.get("aliases") or {}, resolution.aliases, at)
    status, _ = history.append(status, moves)
    if resolution.versions:
        status["latestVersion"] = max(int(v["version"]) for v in resolution.versions)
    else:
        status.pop("latestVersion", None)
    return status


class Unresolvable(LookupError):
    """A version or alias that names no servable version; `reason` is a condition reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def lookup(
    status: Mapping[str, Any], model: str, version: int | None = None, alias: str | None = None
) -> Mapping[str, Any]:
    """The registered version an alias or a number names, in a Model's status: the one
    resolution the Deployment reconciler and the kubectl plugin share."""
    versions = status.get("versions") or []
    if alias is not None:
        number = (status.get("aliases") or {}).get(alias)
        if number is None:
            raise Unresolvable("AliasNotSet", f"Model {model} has no alias {alias!r}")
    else:
        number = version
    entry = find_number(versions, int(number or 0))
    if entry is None:
        raise Unresolvable("VersionNotFound", f"Model {model} has no version {number}")
    return entry
