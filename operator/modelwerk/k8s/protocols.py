"""What the rest of the operator may ask of the API (Api; LeaseApi for the leader election):
implemented by client.Kube, and by the fake of the fast tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

from modelwerk.kinds import Kind

JsonDict = dict[str, Any]

LIST_PAGE: Final = 100
"""Objects per page when listing: the start-up listing's (wiring.sync_caches); kopf's are 5x."""


class Api(Protocol):
    """What reconcilers may ask of the API: Kube below, or the fake of the fast tests."""

    async def get(self, kind: Kind, name: str, namespace: str | None = None) -> JsonDict | None: ...

    async def list(
        self,
        kind: Kind,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> list[JsonDict]: ...

    async def list_each(
        self,
        kind: Kind,
        namespace: str | None,
        selector: str,
        into: Callable[[JsonDict], object],
        *,
        page: int = LIST_PAGE,
    ) -> None: ...

    async def crd_installed(self, name: str) -> bool: ...

    async def apply(self, manifest: Mapping[str, Any]) -> JsonDict: ...

    async def create(self, manifest: Mapping[str, Any]) -> JsonDict: ...

    async def delete(
        self, kind: Kind, name: str, namespace: str | None = None, *, uid: str | None = None
    ) -> bool: ...

    async def patch(
        self,
        kind: Kind,
        name: str,
        namespace: str | None,
        patch: Mapping[str, Any],
        *,
        subresource: str = "",
    ) -> JsonDict: ...

    async def patch_status(
        self,
        body: Mapping[str, Any],
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> JsonDict: ...

    async def event(
        self, involved: Mapping[str, Any], *, reason: str, message: str, type_: str = "Normal"
    ) -> None: ...

    async def close(self) -> None: ...


class LeaseApi(Protocol):
    """The leader election's Lease I/O (leader.py): never fenced (it keeps the fence open)."""

    async def get_lease(self, namespace: str, name: str) -> JsonDict | None: ...

    async def create_lease(
        self, namespace: str, name: str, spec: Mapping[str, Any]
    ) -> JsonDict: ...

    async def replace_lease(
        self, namespace: str, name: str, spec: Mapping[str, Any], resource_version: str
    ) -> JsonDict: ...
