"""Straight to the apiserver from the test, without a kubectl process per request (the
bad-input scenario sends thousands): the kubeconfig's server and client certificate, one
keep-alive HTTPS connection."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    context: ssl.SSLContext


def _file(user: dict[str, Any], key: str) -> str:
    if key in user:
        return str(user[key])
    data = base64.b64decode(user[f"{key}-data"])
    with tempfile.NamedTemporaryFile(delete=False, suffix=".pem") as handle:
        handle.write(data)
    return handle.name


def endpoint(kubeconfig: str) -> Endpoint:
    """The current context's apiserver, with an SSL context holding its CA and our client cert."""
    config = yaml.safe_load(Path(kubeconfig).read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c for c in config["clusters"] if c["name"] == context["context"]["cluster"])
    user = next(u for u in config["users"] if u["name"] == context["context"]["user"])["user"]
    url = urlsplit(cluster["cluster"]["server"])
    ctx = ssl.create_default_context(cafile=_file(cluster["cluster"], "certificate-authority"))
    ctx.load_cert_chain(_file(user, "client-certificate"), _file(user, "client-key"))
    return Endpoint(url.hostname or "127.0.0.1", url.port or 443, ctx)


class Client:
    def __init__(self, kubeconfig: str) -> None:
        self.endpoint = endpoint(kubeconfig)
        self._conn: http.client.HTTPSConnection | None = None

    def _connection(self) -> http.client.HTTPSConnection:
        if self._conn is None:
            ep = self.endpoint
            self._conn = http.client.HTTPSConnection(
                ep.host, ep.port, context=ep.context, timeout=30
            )
        return self._conn

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, dict[str, Any]]:
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers={"Content-Type": content_type})
                response = conn.getresponse()
                raw = response.read()
                break
            except (http.client.HTTPException, OSError):
                conn.close()
                self._conn = None
                if attempt == 2:
                    raise
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {"raw": raw[:500].decode(errors="replace")}
        return response.status, parsed if isinstance(parsed, dict) else {"value": parsed}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
