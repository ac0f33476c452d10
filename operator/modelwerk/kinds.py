"""Every kind the operator touches, in one table: its API path, whether and how it is cached
(projection, owner label, indexes), and the RBAC verbs it needs.

Derived from this table: the API client's paths (k8s/), the server-side label selectors of the
watches (settings.py), the kopf handlers (handlers/), the caches and their indexes (wiring.py),
the children a Deployment watches (reconcilers/deployment.py) and the chart's RBAC rules
(hack/gen-chart.py writes them into helm/modelwerk/files/). A `Kind` is also the typed key of
its cache: `mgr.store(kinds.JOB)`, never a string mypy cannot check.

To add a kind: one entry here (and in `ALL`); see docs/design.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

from modelwerk import constants, projections
from modelwerk.projections import Body

# Least privilege: each kind is granted exactly the verbs some code path uses (see `require`,
# which k8s.Kube and the fast tests' fake call on every request, and the chart's integration test,
# which checks in the apiserver's audit log that the operator's ServiceAccount uses every verb
# granted to it).
WATCH: Final = frozenset({"list", "watch"})
"""kopf's list + watch, which fill the caches."""
APPLY: Final = WATCH | {"create", "patch", "delete"}
"""Server-side apply is a PATCH that creates the object when it is absent (the apiserver then
also checks `create`); pruning deletes. Children are read from the caches, never fetched."""
STATUS: Final = frozenset({"patch"})
"""A merge patch of /status: the operator never reads or replaces the subresource on its own."""


@dataclass(frozen=True)
class Index:
    """The typed name of a secondary index of the caches."""

    name: str


# Objects that name a Model in spec.model, found by the Model's (namespace, name).
BY_MODEL: Final = Index("model")
# Children, found by their owner's (namespace, name); the cache's owner label names the owner.
BY_OWNER: Final = Index("owner")

IndexFunc = Callable[[Mapping[str, Any]], Iterable[Hashable]]


@dataclass(frozen=True)
class Cache:
    """How a kind is kept in memory: what of each object (projection), and, for children,
    the label naming their owner. Only objects with that label are watched (the apiserver
    filters them) and they are indexed under BY_OWNER."""

    project: Callable[[Mapping[str, Any]], Body]
    owner_label: str | None = None
    by_model: bool = False
    owner_refs: tuple[str, ...] = ()
    """For objects another controller makes, which carry no label of ours (Kueue's Workloads):
    indexed under BY_OWNER by their controller owner of these kinds (a run's Job or JobSet,
    named like the run), and watched unfiltered in the watched namespaces."""

    def indexes(self) -> dict[Index, IndexFunc]:
        out: dict[Index, IndexFunc] = {}
        if self.owner_label is not None:
            out[BY_OWNER] = projections.owner_by_label(self.owner_label)
        elif self.owner_refs:
            out[BY_OWNER] = projections.owner_by_reference(self.owner_refs)
        if self.by_model:
            out[BY_MODEL] = projections.model_of
        return out


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str
    namespaced: bool = True
    verbs: frozenset[str] = field(default=frozenset(), compare=False)
    """What the operator does with it (the chart's RBAC rules)."""
    clusterwide_verbs: frozenset[str] = field(default=frozenset(), compare=False)
    """Granted besides `verbs` only when the operator watches every namespace."""
    status_verbs: frozenset[str] = field(default=frozenset(), compare=False)
    """On its /status subresource."""
    also_groups: tuple[str, ...] = field(default=(), compare=False)
    """Further API groups granted the same verbs (Events exist in two)."""
    cache: Cache | None = field(default=None, compare=False)
    """None: never watched, only read or written when needed."""
    enabled_by: str | None = field(default=None, compare=False)
    """An engine the operator uses only when enabled (env MODELWERK_<this>, default true; the
    chart's `<engine>.enabled` value, default false, which also grants its RBAC): JobSet,
    Kueue."""

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    def __str__(self) -> str:
        return f"{self.group}/{self.kind}" if self.group else self.kind

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        root = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        parts = [root]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{quote(namespace)}")
        parts.append(self.plural)
        if name:
            parts.append(quote(name))
        if sub:
            parts.append(sub)
        return "/".join(parts)


def _ours(kind: str, plural: str, verbs: frozenset[str]) -> Kind:
    return Kind(
        constants.API_VERSION,
        kind,
        plural,
        verbs=verbs,
        status_verbs=STATUS,
        cache=Cache(projections.resource, by_model=kind != "Model"),
    )


def _child(api_version: str, kind: str, plural: str) -> Kind:
    """A child of a modelwerk Deployment: applied, watched, pruned."""
    return Kind(
        api_version,
        kind,
        plural,
        verbs=APPLY,
        cache=Cache(projections.child, owner_label=constants.LABEL_DEPLOYMENT),
    )


# The operator writes only the status of its own kinds, never their spec or metadata.
# get: a registration re-reads the Model after losing a compare-and-swap, and an alert for a
# Model not in the cache yet asks the apiserver.
MODEL: Final = _ours("Model", constants.MODEL_PLURAL, WATCH | {"get"})
# create: retraining triggers start runs; delete: ttlSecondsAfterFinished.
TRAININGRUN: Final = _ours(
    "TrainingRun", constants.TRAININGRUN_PLURAL, WATCH | {"create", "delete"}
)
DEPLOYMENT: Final = _ours("Deployment", constants.DEPLOYMENT_PLURAL, WATCH)

# A TrainingRun's Job and its pods.
JOB: Final = Kind(
    "batch/v1",
    "Job",
    "jobs",
    # get: after a create conflict, whose Job is it; patch: spec.suspend; delete: a distributed
    # run's failed attempt, before the next one (reconcilers/gang.py). Otherwise Jobs go with
    # their run (ownerReference).
    verbs=WATCH | {"create", "delete", "get", "patch"},
    cache=Cache(projections.job, owner_label=constants.LABEL_TRAININGRUN),
)
# A distributed run's JobSet (spec.workers.engine, reconcilers/jobset.py): created once, suspend
# patched; its CRD may be missing (the cache then stays empty). Its child Jobs and their pods
# carry the run's label, so the Job and Pod caches hold them too.
JOBSET: Final = Kind(
    "jobset.x-k8s.io/v1alpha2",
    "JobSet",
    "jobsets",
    # get: after a create conflict, whose JobSet is it; patch: spec.suspend.
    verbs=WATCH | {"create", "get", "patch"},
    cache=Cache(projections.jobset, owner_label=constants.LABEL_TRAININGRUN),
    enabled_by="JOBSET",
)
# Kueue's Workload of a queued run's Job or JobSet (spec.queueName, reconcilers/kueue.py): made
# by Kueue, owned by the Job; read for the Queued condition. patch: spec.active, how a queued
# run's spec.suspend reaches Kueue (Kueue would resume an admitted Job suspended directly).
WORKLOAD: Final = Kind(
    "kueue.x-k8s.io/v1beta2",
    "Workload",
    "workloads",
    verbs=WATCH | {"patch"},
    cache=Cache(projections.workload, owner_refs=("Job", "JobSet")),
    enabled_by="KUEUE",
)
POD: Final = Kind(
    "v1",
    "Pod",
    "pods",
    verbs=WATCH,
    cache=Cache(projections.pod, owner_label=constants.LABEL_TRAININGRUN),
)

# A Deployment's children.
APPS_DEPLOYMENT: Final = _child("apps/v1", "Deployment", "deployments")
SERVICE: Final = _child("v1", "Service", "services")
HPA: Final = _child("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers")
PDB: Final = _child("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets")
SELDON_DEPLOYMENT: Final = _child(
    "machinelearning.seldon.io/v1", "SeldonDeployment", "seldondeployments"
)
PROMETHEUS_RULE: Final = _child("monitoring.coreos.com/v1", "PrometheusRule", "prometheusrules")
SERVICE_MONITOR: Final = _child("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors")
POD_MONITOR: Final = _child("monitoring.coreos.com/v1", "PodMonitor", "podmonitors")
# The serving pods' policy (config network_policy); a TrainingRun's is created, never watched.
NETWORK_POLICY: Final = _child("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies")
# The native runtime's exact split, when the Gateway API's HTTPRoute CRD is installed.
HTTP_ROUTE: Final = _child("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes")

# A TrainingRun naming a ServiceAccount runs as it only when the ServiceAccount allows it
# (its annotation); the object holds no token since Kubernetes 1.24.
SERVICE_ACCOUNT: Final = Kind("v1", "ServiceAccount", "serviceaccounts", verbs=frozenset({"get"}))
# One core/v1 Event per transition, posted, never updated (kopf's own posting is off). list:
# a Job whose pods cannot be created (a ResourceQuota) says so only in its Events.
EVENT: Final = Kind("v1", "Event", "events", verbs=frozenset({"create", "list"}))
CRD: Final = Kind(
    "apiextensions.k8s.io/v1",
    "CustomResourceDefinition",
    "customresourcedefinitions",
    namespaced=False,
    # The operator asks whether Seldon's and the Prometheus Operator's CRDs exist.
    verbs=frozenset({"get"}),
    # kopf's resource scanning watches CRDs, and runs only cluster-wide (settings.py turns it
    # off for exact namespace names, which is what the chart passes).
    clusterwide_verbs=WATCH,
)

# The leader election's Lease, in the operator's own namespace only: not in ALL, so the rules
# for the watched namespaces never include it (the chart grants it with a Role of its own).
LEASE: Final = Kind(
    "coordination.k8s.io/v1", "Lease", "leases", verbs=frozenset({"get", "create", "update"})
)

ALL: Final[tuple[Kind, ...]] = (
    MODEL,
    TRAININGRUN,
    DEPLOYMENT,
    JOB,
    JOBSET,
    WORKLOAD,
    POD,
    SERVICE_ACCOUNT,
    APPS_DEPLOYMENT,
    SERVICE,
    HPA,
    PDB,
    SELDON_DEPLOYMENT,
    PROMETHEUS_RULE,
    SERVICE_MONITOR,
    POD_MONITOR,
    NETWORK_POLICY,
    HTTP_ROUTE,
    EVENT,
    CRD,
)
CACHED: Final = tuple(k for k in ALL if k.cache is not None)
_BY_API: Final = {(k.api_version, k.kind): k for k in ALL}


def owned_by(label: str) -> tuple[Kind, ...]:
    """The cached kinds whose objects name their owner with `label`."""
    return tuple(k for k in CACHED if k.cache is not None and k.cache.owner_label == label)


def of(api_version: str, kind: str) -> Kind:
    try:
        return _BY_API[(api_version, kind)]
    except KeyError:
        raise ValueError(f"modelwerk does not manage {kind} in {api_version}") from None


def of_body(body: Mapping[str, Any]) -> Kind:
    return of(str(body["apiVersion"]), str(body["kind"]))


def enabled(kind: Kind) -> bool:
    """Whether the operator uses the kind at all (watches, caches, creates): see enabled_by."""
    if kind.enabled_by is None:
        return True
    return os.environ.get(f"MODELWERK_{kind.enabled_by}", "true") == "true"


class NotGranted(Exception):
    """A request the table grants no verb for: a bug, found before the apiserver's 403."""


def granted(kind: Kind, *, clusterwide: bool = True) -> frozenset[str]:
    return kind.verbs | (kind.clusterwide_verbs if clusterwide else frozenset())


def require(kind: Kind, verb: str, subresource: str = "") -> None:
    """Raises NotGranted unless the table grants `verb` on the kind (or its subresource) in
    every install mode. k8s.Kube calls it before each request, the fast tests' fake too, so a
    code path needing a verb the chart does not grant fails in every tier, whoever runs it."""
    allowed = kind.status_verbs if subresource == "status" else kind.verbs
    if subresource not in ("", "status") or verb not in allowed:
        resource = f"{kind.plural}/{subresource}" if subresource else kind.plural
        raise NotGranted(f"{verb} {resource}.{kind.group or 'core'} is not in kinds.py's table")


def rbac_rules(
    *, namespaced: bool, clusterwide: bool = True, enabled_by: str | None = None
) -> list[dict[str, Any]]:
    """The RBAC rules for the namespaced kinds (a Role per watched namespace, or a ClusterRole),
    or for the cluster-scoped ones (for a cluster-wide install, or one watching `namespaces`
    only): one rule per kind, and one per status subresource. `enabled_by`: only the kinds of
    that optional engine (granted by the chart when it is enabled); None: the others."""
    rules: list[dict[str, Any]] = []
    for k in ALL:
        verbs = granted(k, clusterwide=clusterwide)
        if k.namespaced != namespaced or not verbs or k.enabled_by != enabled_by:
            continue
        rules.append(
            {
                "apiGroups": [k.group, *k.also_groups],
                "resources": [k.plural],
                "verbs": sorted(verbs),
            }
        )
        if k.status_verbs:
            rules.append(
                {
                    "apiGroups": [k.group],
                    "resources": [f"{k.plural}/status"],
                    "verbs": sorted(k.status_verbs),
                }
            )
    return rules
