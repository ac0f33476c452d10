"""The only package that talks to the Kubernetes API (import-linter keeps it so: pure modules,
the model server, the data validator and the kubectl plugin may not import it).

A small asyncio client over aiohttp (client.Kube), authenticated with the credentials kopf
resolved at login (kubeconfig or in-cluster service account), so the operator has one identity
and one TLS setup (tls). Writes are server-side apply for children (idempotent, field-owned) and
merge patches for status. The rest of the operator asks through the protocols (Api, LeaseApi)
and catches the errors; the names below are the package's whole surface."""

from __future__ import annotations

from collections.abc import Sequence

from modelwerk.k8s.client import Kube, resource_of
from modelwerk.k8s.crds import crd_serving
from modelwerk.k8s.errors import (
    ApiError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    NotLeader,
    retry_after,
)
from modelwerk.k8s.protocols import LIST_PAGE, Api, JsonDict, LeaseApi

__all__: Sequence[str] = [
    "LIST_PAGE",
    "Api",
    "ApiError",
    "Conflict",
    "Forbidden",
    "Invalid",
    "JsonDict",
    "Kube",
    "LeaseApi",
    "NotFound",
    "NotLeader",
    "crd_serving",
    "resource_of",
    "retry_after",
]
