"""The latest state of watched objects, kept in memory from kopf's watch events.

This is the operator's informer cache: reconcilers read from here instead of asking the
apiserver, so a converged object costs no API calls at all. Stores keep a projection of each
object (only the fields reconcilers use) to keep memory flat at 10,000s of objects.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from modelwerk.projections import Body, ObjectKey

__all__ = ["Body", "ObjectKey", "Store", "key_of", "newer"]


def key_of(body: Mapping[str, Any]) -> ObjectKey:
    meta = body["metadata"]
    return (meta.get("namespace") or "", meta["name"])


def _keep_all(body: Mapping[str, Any]) -> Body:
    return dict(body)


class Store:
    def __init__(
        self,
        project: Callable[[Mapping[str, Any]], Body] = _keep_all,
        indexes: Mapping[Any, Callable[[Mapping[str, Any]], Iterable[Hashable]]] | None = None,
        keep: Callable[[Mapping[str, Any]], bool] | None = None,
    ) -> None:
        self._project = project
        # Which objects are worth keeping at all (wiring.py: not the children of finished runs).
        self._keep = keep
        self._objects: dict[ObjectKey, Body] = {}
        self._index_funcs = dict(indexes or {})
        self._indexes: dict[Hashable, defaultdict[Hashable, set[ObjectKey]]] = {
            name: defaultdict(set) for name in self._index_funcs
        }

    def __len__(self) -> int:
        return len(self._objects)

    def upsert(self, body: Mapping[str, Any]) -> Body:
        key = key_of(body)
        current = self._objects.get(key)
        if current is not None and newer(current, body):
            # A write-through from our own response can be newer than a late watch event.
            return current
        self._unindex(key)
        if self._keep is not None and not self._keep(body):
            # Not worth keeping: not even projected (at start-up most listed pods and Jobs).
            self._objects.pop(key, None)
            return dict(body)
        projected = self._project(body)
        self._objects[key] = projected
        for name, func in self._index_funcs.items():
            for value in func(projected):
                self._indexes[name][value].add(key)
        return projected

    def remove(self, key: ObjectKey) -> None:
        self._unindex(key)
        self._objects.pop(key, None)

    def _unindex(self, key: ObjectKey) -> None:
        old = self._objects.get(key)
        if old is None:
            return
        for name, func in self._index_funcs.items():
            for value in func(old):
                keys = self._indexes[name].get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self._indexes[name][value]

    def get(self, key: ObjectKey) -> Body | None:
        return self._objects.get(key)

    def by_index(self, index: Hashable, value: Hashable) -> list[Body]:
        return [self._objects[k] for k in sorted(self._indexes[index].get(value, ()))]

    def values(self) -> Iterable[Body]:
        return self._objects.values()


def newer(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Is `a` a later state of the object than `b`? resourceVersions are opaque, but from one
    etcd they are increasing integers; when either does not parse, the answer is no."""
    try:
        return int(a["metadata"]["resourceVersion"]) > int(b["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return False
