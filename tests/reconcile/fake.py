"""An in-memory apiserver with the interface of k8s.Kube (k8s.Api), and a clock to move by hand.

Enough of the apiserver's semantics for the reconcilers' decisions: resourceVersions that grow
with every write, server-side apply that keeps status, merge patches with resourceVersion
preconditions (Conflict), create refusing an existing name, deletes with a uid precondition.
Every request is checked against the RBAC verbs kinds.py grants (kinds.require, as k8s.Kube
does), every write is recorded, and every status written to one of our kinds is validated
against its typed status model in api/ (unknown keys included), so a reconciler cannot write a
status the CRD would not describe.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from modelwerk import k8s, kinds
from modelwerk.api.deployment import DeploymentStatus
from modelwerk.api.model import ModelStatus
from modelwerk.api.trainingrun import TrainingRunStatus
from modelwerk.kinds import Kind
from modelwerk.status import format_time, merge_patch

STATUS_MODELS: dict[Kind, type[BaseModel]] = {
    kinds.MODEL: ModelStatus,
    kinds.TRAININGRUN: TrainingRunStatus,
    kinds.DEPLOYMENT: DeploymentStatus,
}
Key = tuple[str, str, str, str]  # apiVersion, kind, namespace, name


@dataclass
class Clock:
    at: dt.datetime = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += dt.timedelta(seconds=seconds)


@dataclass(frozen=True)
class Write:
    verb: str  # apply | create | patch | status | delete | event
    kind: str  # str(Kind), e.g. "apps/Deployment"
    name: str
    body: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __repr__(self) -> str:
        return f"{self.verb} {self.kind} {self.name}"


def label(kind: Kind) -> str:
    """How tests name a kind: ours by kind alone, others with their group (apps/Deployment)."""
    return kind.kind if kind.group == kinds.MODEL.group else str(kind)


def unknown_keys(model: type[BaseModel], data: Any, path: str = "status") -> list[str]:
    """Keys in `data` that the pydantic model (and its nested models) does not define."""
    if not isinstance(data, Mapping):
        return []
    fields = {(f.alias or name): f for name, f in model.model_fields.items()}
    fields |= {name: f for name, f in model.model_fields.items()}
    found = []
    for key, value in data.items():
        f = fields.get(key)
        if f is None:
            found.append(f"{path}.{key}")
            continue
        for nested in _models_in(f.annotation):
            items = value if isinstance(value, list) else [value]
            for item in items:
                found += unknown_keys(nested, item, f"{path}.{key}")
    return found


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []


class FakeKube:
    def __init__(self, clock: Clock, crds: set[str] | None = None) -> None:
        self.clock = clock
        self.objects: dict[Key, dict[str, Any]] = {}
        self.writes: list[Write] = []
        self.crds = set(crds or ())
        self.conflicts = 0
        """How many of the next status patches with a resourceVersion fail with 409."""
        self._rv = itertools.count(100)
        self._uid = itertools.count(1)

    # --- helpers for tests ---------------------------------------------------------------

    def put(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Stores an object as a client (or another controller) would, without recording it."""
        obj = copy.deepcopy(dict(body))
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", "ns")
        meta.setdefault("uid", f"uid-{meta['name']}")
        meta.setdefault("generation", 1)
        meta.setdefault("creationTimestamp", format_time(self.clock()))
        meta["resourceVersion"] = str(next(self._rv))
        self.objects[self._key(obj)] = obj
        return copy.deepcopy(obj)

    def find(self, kind: Kind, name: str, namespace: str = "ns") -> dict[str, Any] | None:
        return self.objects.get((kind.api_version, kind.kind, namespace, name))

    def mark(self) -> int:
        return len(self.writes)

    def since(self, mark: int) -> list[Write]:
        return self.writes[mark:]

    @staticmethod
    def _key(body: Mapping[str, Any]) -> Key:
        meta = body["metadata"]
        return (body["apiVersion"], body["kind"], meta.get("namespace") or "", meta["name"])

    def _bump(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        return copy.deepcopy(obj)

    # --- k8s.Api --------------------------------------------------------------------------

    async def get(
        self, kind: Kind, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        kinds.require(kind, "get")
        found = self.objects.get((kind.api_version, kind.kind, namespace or "", name))
        return copy.deepcopy(found) if found is not None else None

    async def list(
        self,
        kind: Kind,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        kinds.require(kind, "list")
        return [
            copy.deepcopy(o)
            for (api, k, ns, _), o in sorted(self.objects.items())
            if (api, k) == (kind.api_version, kind.kind)
            and (namespace is None or ns == namespace)
            and all(
                (o["metadata"].get("labels") or {}).get(a) == b for a, b in (labels or {}).items()
            )
            and all(_field(o, path) == value for path, value in (fields or {}).items())
        ]

    async def list_each(
        self,
        kind: Kind,
        namespace: str | None,
        selector: str,
        into: Callable[[dict[str, Any]], object],
        *,
        page: int = 100,
    ) -> None:
        """`selector`: label keys that must be present, comma-separated (all the operator uses)."""
        if kind.group and kind.group != "modelwerk.io" and not self._served(kind):
            raise k8s.NotFound(404, "NotFound", f"the server could not find {kind.plural}")
        keys = [k for k in selector.split(",") if k]
        for obj in await self.list(kind, namespace):
            if all(k in (obj["metadata"].get("labels") or {}) for k in keys):
                into(obj)

    def _served(self, kind: Kind) -> bool:
        """Whether the fake serves `kind`: built-in groups always, others with their CRD."""
        builtin = {"apps", "batch", "policy", "autoscaling", "networking.k8s.io"}
        return kind.group in builtin or f"{kind.plural}.{kind.group}" in self.crds

    async def crd_installed(self, name: str) -> bool:
        kinds.require(kinds.CRD, "get")
        return name in self.crds

    async def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        kind = kinds.of_body(manifest)
        kinds.require(kind, "patch")
        kinds.require(kind, "create")
        key = self._key(manifest)
        self.writes.append(Write("apply", label(kind), key[3], manifest))
        current = self.objects.get(key)
        if current is None:
            return self._create(manifest)
        desired = copy.deepcopy(dict(manifest))
        if {k: v for k, v in desired.items() if k not in ("metadata", "status")} != {
            k: v for k, v in current.items() if k not in ("metadata", "status")
        }:
            current["metadata"]["generation"] = int(current["metadata"]["generation"]) + 1
        for k, v in desired.items():
            if k == "metadata":
                for mk in ("labels", "annotations", "ownerReferences"):
                    if mk in v:
                        current["metadata"][mk] = v[mk]
            elif k != "status":
                current[k] = v
        return self._bump(current)

    async def create(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        kind = kinds.of_body(manifest)
        kinds.require(kind, "create")
        name = manifest["metadata"].get("name") or manifest["metadata"]["generateName"] + "x"
        self.writes.append(Write("create", label(kind), name, manifest))
        if self._key({**manifest, "metadata": {**manifest["metadata"], "name": name}}) in (
            self.objects
        ):
            raise k8s.Conflict(409, "AlreadyExists", f"{kind} {name} already exists")
        return self._create({**manifest, "metadata": {**manifest["metadata"], "name": name}})

    def _create(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(dict(manifest))
        meta = obj["metadata"]
        meta["uid"] = f"uid-{next(self._uid)}"
        meta["generation"] = 1
        meta["creationTimestamp"] = format_time(self.clock())
        obj.setdefault("status", {})
        self.objects[self._key(obj)] = obj
        return self._bump(obj)

    async def delete(
        self, kind: Kind, name: str, namespace: str | None = None, *, uid: str | None = None
    ) -> bool:
        kinds.require(kind, "delete")
        self.writes.append(Write("delete", label(kind), name))
        key = (kind.api_version, kind.kind, namespace or "", name)
        current = self.objects.get(key)
        if current is None:
            return False
        if uid and current["metadata"].get("uid") != uid:
            raise k8s.Conflict(409, "Conflict", "uid precondition failed")
        del self.objects[key]
        return True

    async def patch(
        self,
        kind: Kind,
        name: str,
        namespace: str | None,
        patch: Mapping[str, Any],
        *,
        subresource: str = "",
    ) -> dict[str, Any]:
        kinds.require(kind, "patch", subresource)
        key = (kind.api_version, kind.kind, namespace or "", name)
        self.writes.append(
            Write("status" if subresource == "status" else "patch", label(kind), name, patch)
        )
        current = self.objects.get(key)
        if current is None:
            raise k8s.NotFound(404, "NotFound", f"{kind} {name} not found")
        expected = (patch.get("metadata") or {}).get("resourceVersion")
        if expected is not None:
            if self.conflicts > 0:
                self.conflicts -= 1
                self._bump(current)  # someone else wrote meanwhile
                raise k8s.Conflict(409, "Conflict", "the object has been modified")
            if expected != current["metadata"]["resourceVersion"]:
                raise k8s.Conflict(409, "Conflict", "the object has been modified")
        body = {k: v for k, v in patch.items() if k != "metadata"}
        if subresource == "status":
            body = {"status": body.get("status") or {}}
        else:
            body.pop("status", None)
        merged = _merge(current, body)
        if subresource == "status" and kind in STATUS_MODELS:
            model = STATUS_MODELS[kind]
            model.model_validate(merged.get("status") or {})
            unknown = unknown_keys(model, merged.get("status") or {})
            assert not unknown, f"{kind} {name}: status keys the API does not define: {unknown}"
        self.objects[key] = merged
        return self._bump(merged)

    async def patch_status(
        self,
        body: Mapping[str, Any],
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        patch: dict[str, Any] = {"status": dict(status)}
        if resource_version:
            patch["metadata"] = {"resourceVersion": resource_version}
        meta = body["metadata"]
        return await self.patch(
            kinds.of_body(body), meta["name"], meta.get("namespace"), patch, subresource="status"
        )

    async def event(
        self, involved: Mapping[str, Any], *, reason: str, message: str, type_: str = "Normal"
    ) -> None:
        kinds.require(kinds.EVENT, "create")
        self.writes.append(
            Write(
                "event",
                label(kinds.of_body(involved)),
                involved["metadata"]["name"],
                {"reason": reason, "message": message, "type": type_},
            )
        )

    async def close(self) -> None:
        return None


def _field(obj: Mapping[str, Any], path: str) -> str:
    """A field selector's value: `involvedObject.uid` of an Event, `metadata.name`."""
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return "" if value is None else str(value)


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


__all__ = ["Clock", "FakeKube", "Write", "merge_patch", "unknown_keys"]
