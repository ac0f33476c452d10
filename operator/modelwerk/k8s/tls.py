"""The TLS of the operator's session from kopf's ConnectionInfo: CA, insecure, client
certificate (kubeconfig's inline data written to files, as ssl only reads files)."""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from typing import Any

import kopf


def ssl_for(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    if not info.server.startswith("https"):
        return False
    if info.insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif info.ca_path:
        ctx = ssl.create_default_context(cafile=os.fsdecode(info.ca_path))
    elif info.ca_data:
        ca = info.ca_data if isinstance(info.ca_data, str) else info.ca_data.decode()
        ctx = ssl.create_default_context(cadata=_pem(ca))
    else:
        ctx = ssl.create_default_context()
    cert = _as_file(info.certificate_path, info.certificate_data)
    key = _as_file(info.private_key_path, info.private_key_data)
    if cert and key:
        ctx.load_cert_chain(cert, key)
    return ctx


def _pem(data: str) -> str:
    # kubeconfig carries base64 of the PEM; kopf passes it through undecoded.
    if "-----BEGIN" in data:
        return data
    return base64.b64decode(data).decode()


def _as_file(path: str | bytes | os.PathLike[Any] | None, data: str | bytes | None) -> str | None:
    if path:
        return os.fsdecode(path)
    if not data:
        return None
    text = data if isinstance(data, str) else data.decode()
    # ssl.load_cert_chain only reads files; the file lives as long as the process.
    handle = tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False)  # noqa: SIM115
    with handle:
        handle.write(_pem(text))
    return handle.name
