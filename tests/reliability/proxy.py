"""A fault-injecting proxy between the operator and the apiserver: plain HTTP on 127.0.0.1 for
the operator (a kubeconfig without credentials), TLS with the test's client certificate to the
apiserver. It answers some requests itself (500/503, 409 on writes, 429 with Retry-After),
delays others, loses the response of some forwarded writes (the write happened, the client sees
a 504), cuts watch streams in the middle of an event, and on request stalls every open watch
(the connection stays up, nothing more is forwarded). Every request is logged with the fault it
got, so the test can count requests per second and check that Retry-After was honoured."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.reliability.apiclient import Endpoint

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass
class Faults:
    """Fractions of requests that get each fault (drawn independently per request)."""

    server_error: float = 0.0  # answered 500 or 503 without forwarding
    lost_response: float = 0.0  # writes only: forwarded, then answered 504
    conflict: float = 0.0  # writes only: answered 409 without forwarding
    throttle: float = 0.0  # answered 429 with Retry-After
    retry_after: int = 2
    latency: float = 0.0  # up to this many seconds added before forwarding
    truncate_watch: float = 0.0  # watch streams cut mid-event after a few events


@dataclass(frozen=True)
class Entry:
    at: float
    method: str
    path: str
    watch: bool
    fault: str | None
    name: str = ""  # a POST's object name: creates of different objects share the path


@dataclass
class Log:
    entries: list[Entry] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, entry: Entry) -> None:
        with self.lock:
            self.entries.append(entry)

    def snapshot(self, since: float = 0.0) -> list[Entry]:
        with self.lock:
            return [e for e in self.entries if e.at >= since]


def _status(code: int, reason: str, message: str) -> bytes:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code}
    return json.dumps({**body, "reason": reason, "message": message}).encode()


def _name(body: bytes) -> str:
    try:
        meta = json.loads(body).get("metadata") or {}
        return str(meta.get("name") or meta.get("generateName") or "")
    except (ValueError, AttributeError):
        return ""


class FaultProxy:
    def __init__(self, upstream: Endpoint, seed: int = 16) -> None:
        self.upstream = upstream
        self.faults = Faults()
        self.log = Log()
        self.port = 0
        self._random = random.Random(seed)
        self._stalled_before = 0.0  # watches opened before this moment forward nothing
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # --- control, from the test's thread ---------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def stall_watches(self) -> float:
        """Every watch stream open now goes silent; returns the moment (monotonic)."""
        self._stalled_before = time.monotonic()
        return self._stalled_before

    def kubeconfig(self, path: Path) -> str:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {"name": "proxy", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}
                    ],
                    "users": [{"name": "proxy", "user": {}}],
                    "contexts": [
                        {"name": "proxy", "context": {"cluster": "proxy", "user": "proxy"}}
                    ],
                    "current-context": "proxy",
                }
            )
        )
        return str(path)

    # --- the server, in the proxy's loop ----------------------------------------------------

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.upstream.context, limit=0),
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = int(server.sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        # The upstream session first: the watch streams it ends let their handlers return.
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _draw(self, method: str, watch: bool) -> str | None:
        f, r = self.faults, self._random
        if watch:
            return "truncate" if r.random() < f.truncate_watch else None
        if r.random() < f.server_error:
            return "5xx"
        if r.random() < f.throttle:
            return "429"
        if method in WRITES and r.random() < f.conflict:
            return "409"
        if method in WRITES and r.random() < f.lost_response:
            return "lost"
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        watch = request.query.get("watch") in ("true", "1")
        body = await request.read()
        fault = self._draw(request.method, watch)
        opened = time.monotonic()
        self.log.add(Entry(opened, request.method, request.path, watch, fault, _name(body)))
        if self.faults.latency:
            await asyncio.sleep(self._random.uniform(0, self.faults.latency))
        json_type = {"Content-Type": "application/json"}
        if fault == "5xx":
            code = self._random.choice([500, 503])
            return web.Response(
                status=code, body=_status(code, "InternalError", "injected"), headers=json_type
            )
        if fault == "429":
            headers = {**json_type, "Retry-After": str(self.faults.retry_after)}
            return web.Response(
                status=429, headers=headers, body=_status(429, "TooManyRequests", "injected")
            )
        if fault == "409":
            return web.Response(
                status=409,
                headers=json_type,
                body=_status(409, "Conflict", "injected: the object was modified"),
            )
        assert self._session is not None
        ep = self.upstream
        url = f"https://{ep.host}:{ep.port}{request.path_qs}"
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("content-type", "accept", "user-agent")
        }
        # Uncompressed from the apiserver: what we forward carries no Content-Encoding.
        headers["Accept-Encoding"] = "identity"
        try:
            return await self._forward(request, url, body, headers, watch, fault, opened)
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            # The apiserver is unreachable (restarting): what a load balancer in front would say.
            message = f"upstream: {type(err).__name__}"
            return web.Response(
                status=503, headers=json_type, body=_status(503, "ServiceUnavailable", message)
            )

    async def _forward(
        self,
        request: web.Request,
        url: str,
        body: bytes,
        headers: dict[str, str],
        watch: bool,
        fault: str | None,
        opened: float,
    ) -> web.StreamResponse:
        assert self._session is not None
        json_type = {"Content-Type": "application/json"}
        timeout = aiohttp.ClientTimeout(total=None if watch else 120)
        async with self._session.request(
            request.method, url, data=body or None, headers=headers, timeout=timeout
        ) as upstream:
            content_type = {
                "Content-Type": upstream.headers.get("Content-Type", "application/json")
            }
            if not watch:
                data = await upstream.read()
                if fault == "lost":
                    return web.Response(
                        status=504,
                        headers=json_type,
                        body=_status(504, "Timeout", "injected: response lost"),
                    )
                return web.Response(status=upstream.status, body=data, headers=content_type)
            response = web.StreamResponse(status=upstream.status, headers=content_type)
            await response.prepare(request)
            cut_after = self._random.randint(1, 5)
            events = 0
            try:
                async for line in upstream.content:
                    if opened < self._stalled_before:
                        continue  # stalled: the connection stays, the events go nowhere
                    if fault == "truncate" and events >= cut_after:
                        await response.write(line[: max(1, len(line) // 2)])
                        break
                    await response.write(line)
                    events += 1
                else:
                    await response.write_eof()
                    return response
            except (aiohttp.ClientError, OSError):
                pass  # the apiserver went away mid-stream: so does the stream, abruptly
            if request.transport is not None:
                request.transport.abort()
            return response
