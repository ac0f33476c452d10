"""What a reconciler declares beside itself: the kind it reconciles and the watches that wake
it, each a kind and how an object of that kind maps to the keys to reconcile (as
controller-runtime's For/Owns/Watches). wiring.py turns the declarations into caches, kopf
handlers and queues; nothing else needs to know what wakes whom."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from modelwerk.kinds import BY_OWNER, Index, Kind
from modelwerk.manager import Manager
from modelwerk.store import ObjectKey, key_of

Mapper = Callable[[Manager, Mapping[str, Any]], list[ObjectKey]]
Reconcile = Callable[[Manager, ObjectKey], Awaitable[float | None]]


def itself(_: Manager, body: Mapping[str, Any]) -> list[ObjectKey]:
    """For: the object is the one to reconcile."""
    return [key_of(body)]


def owner(kind: Kind) -> Mapper:
    """Owns: a child wakes the owner its owner label names (kinds.Cache.owner_label), or its
    controller owner reference (kinds.Cache.owner_refs)."""
    cache = kind.cache
    find = cache.indexes().get(BY_OWNER) if cache is not None else None
    if find is None:
        raise ValueError(f"{kind} names no owner")

    def owner_of(_: Manager, body: Mapping[str, Any]) -> list[ObjectKey]:
        return [key for key in find(body) if isinstance(key, tuple)]

    return owner_of


def dependents(kind: Kind, index: Index) -> Mapper:
    """Watches: an object wakes the objects of `kind` found under its key in `index` (a Model
    wakes the runs and Deployments that name it)."""

    def found(mgr: Manager, body: Mapping[str, Any]) -> list[ObjectKey]:
        return [key_of(b) for b in mgr.store(kind).by_index(index, key_of(body))]

    return found


@dataclass(frozen=True)
class Watch:
    kind: Kind
    map: Mapper


@dataclass(frozen=True)
class Controller:
    kind: Kind
    reconcile: Reconcile
    watches: tuple[Watch, ...]
