"""Kube: one aiohttp session to the apiserver, authenticated with the credentials kopf resolved
at login, and every request the operator sends (reads, the leader Lease, server-side apply,
merge patches, Events), counted and timed per resource."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp
import kopf

from modelwerk import constants, kinds, metrics, status
from modelwerk.k8s.crds import crd_serving
from modelwerk.k8s.errors import ApiError, NotFound, NotLeader, error_from, retry_after
from modelwerk.k8s.protocols import LIST_PAGE, JsonDict
from modelwerk.k8s.tls import ssl_for
from modelwerk.kinds import Kind


def resource_of(path: str) -> str:
    """The resource an API path addresses, as the request counters label it: its plural, with
    the subresource (`deployments/status`), without group, namespace or name."""
    parts = path.split("?")[0].strip("/").split("/")
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
    if rest[:1] == ["namespaces"] and len(rest) > 2:
        rest = rest[2:]
    if not rest:
        return ""
    return rest[0] if len(rest) < 3 else f"{rest[0]}/{rest[2]}"


class Kube:
    """One HTTP session to the apiserver. Create with `Kube.connect(info)`, close with `close()`.

    `fence`, when set (leader election), is asked before every write: a write it refuses raises
    NotLeader without reaching the apiserver."""

    def __init__(
        self, server: str, session: aiohttp.ClientSession, *, checked: bool = True
    ) -> None:
        self._server = server.rstrip("/")
        self._session = session
        self.fence: Callable[[], bool] | None = None
        self._checked = checked

    @classmethod
    def connect(
        cls, info: kopf.ConnectionInfo, *, user_agent: str = "modelwerk", checked: bool = True
    ) -> Kube:
        """`checked=False` for clients that are not the operator (the benchmark acts as a user
        too): requests outside the operator's RBAC table are then sent, not refused."""
        ssl_context = ssl_for(info)
        headers = {"User-Agent": user_agent}
        if info.token:
            headers["Authorization"] = f"{info.scheme or 'Bearer'} {info.token}"
        elif info.username and info.password:
            basic = base64.b64encode(f"{info.username}:{info.password}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        connector = aiohttp.TCPConnector(ssl=ssl_context, limit=64)
        session = aiohttp.ClientSession(
            connector=connector,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=60, sock_connect=10),
        )
        return cls(info.server, session, checked=checked)

    async def close(self) -> None:
        await self._session.close()

    def _require(self, kind: Kind, verb: str, subresource: str = "") -> None:
        if self._checked:
            kinds.require(kind, verb, subresource)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        fenced: bool = True,
    ) -> JsonDict:
        if fenced and method != "GET" and self.fence is not None and not self.fence():
            raise NotLeader()
        url = self._server + path
        if params:
            url += "?" + urlencode(params)
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        verb = method.lower()
        with metrics.API_LATENCY.labels(verb).time():
            async with self._session.request(method, url, data=data, headers=headers) as resp:
                text = await resp.text()
                metrics.API_REQUESTS.labels(verb, resource_of(path), str(resp.status)).inc()
                if resp.status >= 400:
                    raise error_from(
                        resp.status, text, retry_after(resp.headers.get("Retry-After"))
                    )
                result: JsonDict = json.loads(text) if text else {}
                return result

    # --- reads -------------------------------------------------------------------------------

    async def get(self, kind: Kind, name: str, namespace: str | None = None) -> JsonDict | None:
        self._require(kind, "get")
        path = kind.path(namespace, name)
        try:
            return await self._request("GET", path)
        except NotFound:
            return None

    async def list(
        self,
        kind: Kind,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> list[JsonDict]:
        self._require(kind, "list")
        params = {}
        if labels:
            params["labelSelector"] = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        if fields:
            params["fieldSelector"] = ",".join(f"{k}={v}" for k, v in sorted(fields.items()))
        result = await self._request("GET", kind.path(namespace), params=params)
        items: list[JsonDict] = result.get("items", [])
        return items

    async def list_each(
        self,
        kind: Kind,
        namespace: str | None,
        selector: str,
        into: Callable[[JsonDict], object],
        *,
        page: int = LIST_PAGE,
    ) -> None:
        """Lists in pages of `page` objects (label selector `selector`, may be empty), handing
        each object to `into`: only one page is ever held, not the whole list."""
        self._require(kind, "list")
        params = {"limit": str(page)}
        if selector:
            params["labelSelector"] = selector
        while True:
            result = await self._request("GET", kind.path(namespace), params=params)
            for item in result.get("items", []):
                # A list's items carry neither apiVersion nor kind.
                into({"apiVersion": kind.api_version, "kind": kind.kind, **item})
            token = (result.get("metadata") or {}).get("continue")
            if not token:
                return
            params["continue"] = token

    async def crd_installed(self, name: str) -> bool:
        crd = await self.get(kinds.CRD, name)
        return crd is not None and crd_serving(crd)

    # --- the leader Lease -----------------------------------------------------------------------

    async def get_lease(self, namespace: str, name: str) -> JsonDict | None:
        try:
            return await self._request("GET", kinds.LEASE.path(namespace, name))
        except NotFound:
            return None

    async def create_lease(self, namespace: str, name: str, spec: Mapping[str, Any]) -> JsonDict:
        body = {
            "apiVersion": kinds.LEASE.api_version,
            "kind": "Lease",
            "metadata": {"name": name, "namespace": namespace},
            "spec": dict(spec),
        }
        return await self._request("POST", kinds.LEASE.path(namespace), body=body, fenced=False)

    async def replace_lease(
        self, namespace: str, name: str, spec: Mapping[str, Any], resource_version: str
    ) -> JsonDict:
        """PUT with the resourceVersion read: 409 if another replica wrote in between."""
        body = {
            "apiVersion": kinds.LEASE.api_version,
            "kind": "Lease",
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": resource_version},
            "spec": dict(spec),
        }
        path = kinds.LEASE.path(namespace, name)
        return await self._request("PUT", path, body=body, fenced=False)

    # --- writes ------------------------------------------------------------------------------

    async def apply(self, manifest: Mapping[str, Any]) -> JsonDict:
        """Server-side apply: creates or updates the fields the operator owns, leaves the rest."""
        meta = manifest["metadata"]
        kind = kinds.of_body(manifest)
        self._require(kind, "patch")
        self._require(kind, "create")  # the apiserver checks it too when the object is absent
        path = kind.path(meta.get("namespace"), meta["name"])
        params = {"fieldManager": constants.FIELD_MANAGER, "force": "true"}
        return await self._request(
            "PATCH", path, params=params, body=manifest, content_type="application/apply-patch+yaml"
        )

    async def create(self, manifest: Mapping[str, Any]) -> JsonDict:
        meta = manifest["metadata"]
        kind = kinds.of_body(manifest)
        self._require(kind, "create")
        params = {"fieldManager": constants.FIELD_MANAGER}
        path = kind.path(meta.get("namespace"))
        return await self._request("POST", path, params=params, body=manifest)

    async def delete(
        self, kind: Kind, name: str, namespace: str | None = None, *, uid: str | None = None
    ) -> bool:
        """Deletes in the background (children follow by ownerReference); False if already gone."""
        self._require(kind, "delete")
        body: JsonDict = {"propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            await self._request("DELETE", kind.path(namespace, name), body=body)
        except NotFound:
            return False
        return True

    async def patch(
        self,
        kind: Kind,
        name: str,
        namespace: str | None,
        patch: Mapping[str, Any],
        *,
        subresource: str = "",
    ) -> JsonDict:
        """JSON merge patch. Put metadata.resourceVersion in the patch for compare-and-swap."""
        self._require(kind, "patch", subresource)
        path = kind.path(namespace, name, subresource)
        params = {"fieldManager": constants.FIELD_MANAGER}
        return await self._request(
            "PATCH", path, params=params, body=patch, content_type="application/merge-patch+json"
        )

    async def patch_status(
        self,
        body: Mapping[str, Any],
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> JsonDict:
        meta = body["metadata"]
        patch: JsonDict = {"status": dict(status)}
        if resource_version:
            patch["metadata"] = {"resourceVersion": resource_version}
        return await self.patch(
            kinds.of_body(body),
            meta["name"],
            meta.get("namespace"),
            patch,
            subresource="status",
        )

    async def event(
        self,
        involved: Mapping[str, Any],
        *,
        reason: str,
        message: str,
        type_: str = "Normal",
    ) -> None:
        """Posts a core/v1 Event about an object; never raises (events are best effort)."""
        meta = involved["metadata"]
        now = status.now()
        namespace = meta.get("namespace") or "default"
        manifest: JsonDict = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{meta['name']}.",
                "namespace": meta.get("namespace") or "default",
            },
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": meta["name"],
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": constants.FIELD_MANAGER},
            "reportingComponent": constants.FIELD_MANAGER,
        }
        self._require(kinds.EVENT, "create")
        try:
            await self._request(
                "POST",
                kinds.EVENT.path(namespace),
                body=manifest,
            )
        except (TimeoutError, ApiError, aiohttp.ClientError):
            metrics.EVENT_FAILURES.inc()
