"""The operator's own Prometheus metrics (served at /metrics by modelwerk.httpserver).

Names are part of the contract with the operator's PrometheusRule (monitoring issue) and the
benchmark, which counts API writes from `modelwerk_api_requests_total`.
"""

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILES = Counter(
    "modelwerk_reconcile_total",
    "Reconciles by kind and result (ok, requeue, error).",
    ["kind", "result"],
    registry=REGISTRY,
)
RECONCILE_DURATION = Histogram(
    "modelwerk_reconcile_duration_seconds",
    "Time spent in one reconcile, by kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "modelwerk_workqueue_depth", "Keys waiting to be reconciled.", ["kind"], registry=REGISTRY
)
OLDEST_PENDING = Gauge(
    "modelwerk_workqueue_oldest_pending_seconds",
    "Age of the oldest key waiting in the queue: grows when reconciles are stuck.",
    ["kind"],
    registry=REGISTRY,
)
OBJECTS = Gauge(
    "modelwerk_objects", "Objects seen, by kind and phase.", ["kind", "phase"], registry=REGISTRY
)
_PHASES_SEEN: dict[str, set[str]] = {}


def set_objects(kind: str, per_phase: Mapping[str, int]) -> None:
    """Sets the objects-per-phase gauge; phases no longer present drop to 0 rather than keep
    their last count."""
    seen = _PHASES_SEEN.setdefault(kind, set())
    seen.update(per_phase)
    for phase in seen:
        OBJECTS.labels(kind, phase).set(per_phase.get(phase, 0))


VERSIONS_REGISTERED = Counter(
    "modelwerk_model_versions_registered_total",
    "Model versions this operator registered.",
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "modelwerk_api_requests_total",
    "Requests the operator sent to the Kubernetes API, by verb, resource (plural[/subresource])"
    " and HTTP status.",
    ["verb", "resource", "code"],
    registry=REGISTRY,
)
API_LATENCY = Histogram(
    "modelwerk_api_request_duration_seconds",
    "Latency of the operator's Kubernetes API requests, by verb.",
    ["verb"],
    registry=REGISTRY,
)
EVENT_FAILURES = Counter(
    "modelwerk_event_post_failures_total",
    "Kubernetes Events that could not be posted (best effort).",
    registry=REGISTRY,
)
LEADER = Gauge(
    "modelwerk_leader",
    "1 while this replica holds the leader Lease (or runs without leader election), else 0.",
    registry=REGISTRY,
)
