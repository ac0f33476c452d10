"""Operator configuration: command-line flags, each with an environment variable fallback
(the Helm chart sets the environment)."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field

from modelwerk.builders.netpol import NetworkPolicyConfig


def _env(name: str, default: str) -> str:
    return os.environ.get(f"MODELWERK_{name}", default)


@dataclass(frozen=True)
class OperatorConfig:
    # Namespaces to watch, comma-separated (flag --namespace, repeatable). Empty: the whole
    # cluster. Otherwise only these namespaces (RBAC Roles only there); glob patterns work too,
    # at the price of a cluster-wide watch on namespaces.
    namespaces: tuple[str, ...] = field(
        default_factory=lambda: tuple(n for n in _env("NAMESPACES", "").split(",") if n)
    )
    # Address the metrics/webhook server (http_port) and the liveness endpoint (health_port)
    # listen on; 0.0.0.0: every interface.
    http_host: str = field(default_factory=lambda: _env("HTTP_HOST", "0.0.0.0"))
    # Port of the Prometheus metrics (/metrics) and the Alertmanager webhook
    # (/webhooks/alertmanager); flag --http-port.
    http_port: int = field(default_factory=lambda: int(_env("HTTP_PORT", "8080")))
    # Port of the liveness endpoint (/healthz), apart from http_port so a slow scrape never fails
    # a probe; flag --health-port.
    health_port: int = field(default_factory=lambda: int(_env("HEALTH_PORT", "8081")))
    # Reconciles run at once per kind (Model, TrainingRun, Deployment); one object is never
    # reconciled twice at once.
    workers: int = field(default_factory=lambda: int(_env("WORKERS", "8")))
    # Prometheus base URL for canary analysis, e.g. http://prometheus-operated.monitoring:9090
    # (flag --prometheus-url). Empty: a canary with analysis holds at its step (NoPrometheus).
    prometheus_url: str = field(default_factory=lambda: _env("PROMETHEUS_URL", ""))
    # Prometheus Operator adds a `namespace` label to scraped series; a Prometheus scraping
    # with static configs does not. Canary queries filter on it only when this is `true` (any
    # other text: false).
    prometheus_namespace_label: bool = field(
        default_factory=lambda: _env("PROMETHEUS_NAMESPACE_LABEL", "true") == "true"
    )
    # Seconds "is this CRD installed?" is remembered: CRDs change rarely, reconciles often. Bounds
    # how soon `runtime: auto` and monitoring notice Seldon or Prometheus Operator CRDs come or go.
    crd_cache_seconds: float = field(default_factory=lambda: float(_env("CRD_CACHE_SECONDS", "60")))
    # File holding the bearer token Alertmanager must send to /webhooks/alertmanager, read on
    # every delivery. Empty or unreadable: every delivery is refused with 401.
    webhook_token_file: str = field(default_factory=lambda: _env("WEBHOOK_TOKEN_FILE", ""))
    # Image of the model server in every serving pod, native and Seldon runtime alike; changing
    # it restarts the serving pods.
    serving_image: str = field(
        default_factory=lambda: _env("SERVING_IMAGE", "ghcr.io/modelwerk/model-server:0.1.0")
    )
    # NetworkPolicies for serving and training pods (the chart's `networkPolicy` values, as
    # JSON: {"ingressFrom": [peers], "egress": [rules]}). Empty: none are created.
    network_policy: NetworkPolicyConfig | None = field(
        default_factory=lambda: NetworkPolicyConfig.parse(_env("NETWORK_POLICY", ""))
    )

    # Seconds without any event on a watch stream (the apiserver sends a bookmark about once a
    # minute on a quiet one) after which the stream counts as silently stalled (a dead
    # connection no error reports) and is reopened from the last version seen: the bound on how
    # long a stall can hide changes. kopf's default, 70 s: bookmarks every 60 s, events kept 75.
    watch_inactivity_seconds: float = field(
        default_factory=lambda: float(_env("WATCH_INACTIVITY_SECONDS", "70"))
    )

    # Leader election (flag --leader-elect): several replicas, one Lease; only its holder
    # reconciles, answers the webhook and fires schedules. Off: this process is the only one.
    leader_elect: bool = field(default_factory=lambda: _env("LEADER_ELECT", "false") == "true")
    # Where the Lease lives (the operator's own namespace: the chart sets POD_NAMESPACE) and
    # its name; replicas of one installation share both.
    leader_election_namespace: str = field(
        default_factory=lambda: _env(
            "LEADER_ELECTION_NAMESPACE", os.environ.get("POD_NAMESPACE", "default")
        )
    )
    leader_election_id: str = field(
        default_factory=lambda: _env("LEADER_ELECTION_ID", "modelwerk-operator")
    )
    # client-go's defaults: a Lease not renewed for lease_duration may be taken; the leader
    # stops writing once its last renewal is older than renew_deadline; renewals and attempts
    # every retry_period (seconds).
    lease_duration: float = field(default_factory=lambda: float(_env("LEASE_DURATION", "15")))
    renew_deadline: float = field(default_factory=lambda: float(_env("RENEW_DEADLINE", "10")))
    retry_period: float = field(default_factory=lambda: float(_env("RETRY_PERIOD", "2")))

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    def watches(self, namespace: str) -> bool:
        """Names may be globs (`team-*`), as kopf accepts them."""
        return self.clusterwide or any(fnmatch.fnmatchcase(namespace, n) for n in self.namespaces)
