"""Operator configuration: command-line flags, each with an environment variable fallback
(the Helm chart sets the environment)."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field


def _env(name: str, default: str) -> str:
    return os.environ.get(f"MODELWERK_{name}", default)


@dataclass(frozen=True)
class OperatorConfig:
    # Empty: watch the whole cluster. Otherwise only these namespaces (RBAC Roles only there);
    # glob patterns work too, at the price of a cluster-wide watch on namespaces.
    namespaces: tuple[str, ...] = field(
        default_factory=lambda: tuple(n for n in _env("NAMESPACES", "").split(",") if n)
    )
    http_host: str = field(default_factory=lambda: _env("HTTP_HOST", "0.0.0.0"))
    http_port: int = field(default_factory=lambda: int(_env("HTTP_PORT", "8080")))
    health_port: int = field(default_factory=lambda: int(_env("HEALTH_PORT", "8081")))
    workers: int = field(default_factory=lambda: int(_env("WORKERS", "8")))
    prometheus_url: str = field(default_factory=lambda: _env("PROMETHEUS_URL", ""))
    # Prometheus Operator adds a `namespace` label to scraped series; a Prometheus scraping
    # with static configs does not. Canary queries filter on it only when it exists.
    prometheus_namespace_label: bool = field(
        default_factory=lambda: _env("PROMETHEUS_NAMESPACE_LABEL", "true") == "true"
    )
    # How long "is this CRD installed?" is remembered: CRDs change rarely, reconciles often.
    crd_cache_seconds: float = field(default_factory=lambda: float(_env("CRD_CACHE_SECONDS", "60")))
    webhook_token_file: str = field(default_factory=lambda: _env("WEBHOOK_TOKEN_FILE", ""))
    serving_image: str = field(
        default_factory=lambda: _env("SERVING_IMAGE", "ghcr.io/modelwerk/model-server:0.1.0")
    )

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    def watches(self, namespace: str) -> bool:
        """Names may be globs (`team-*`), as kopf accepts them."""
        return self.clusterwide or any(fnmatch.fnmatchcase(namespace, n) for n in self.namespaces)
