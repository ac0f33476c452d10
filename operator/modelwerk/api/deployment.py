"""Deployment: serve a Model version, optionally with a canary, and monitor it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from modelwerk.api.common import (
    ApiModel,
    Conditions,
    DnsLabel,
    DnsSubdomain,
    Duration,
    Labels,
    Lineage,
    Resource,
    ResourceRequirements,
    StatusModel,
    Version,
    parse_duration,
    rule,
    validations,
)
from modelwerk.api.governance import HISTORY_LIMIT, Guard, GuardStatus, ServingChange
from modelwerk.api.kindinfo import AGE, NAME_FITS_LABEL, KindInfo, PrinterColumn

Percent = Annotated[int, Field(ge=0, le=100)]

_ONE_OF_VERSION_ALIAS = "set exactly one of version or alias"


def _exactly_one_of_version_alias(where: str) -> dict[str, Any]:
    return validations(
        rule("has(self.version) != has(self.alias)", f"{where}: {_ONE_OF_VERSION_ALIAS}")
    )


class _VersionOrAlias(ApiModel):
    version: Version | None = None
    """A fixed version number of the Model; set exactly one of `version` and `alias`."""
    alias: DnsLabel | None = None
    """A Model alias (e.g. `production`), followed as it moves; set exactly one of `version` and
    `alias`."""

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.version is None) == (self.alias is None):
            raise ValueError(_ONE_OF_VERSION_ALIAS)
        return self


class ServingRuntime(StrEnum):
    """How the served versions run."""

    AUTO = "auto"
    """Seldon if its CRD is installed, else native."""
    NATIVE = "native"
    """An apps/v1 Deployment and a Service per served version."""
    SELDON = "seldon"
    """One SeldonDeployment with a predictor per served version."""


class Autoscaling(ApiModel):
    """CPU autoscaling of each served version; replaces `replicas`. Native runtime: an HPA per
    version, both bounds split between stable and canary by the canary's share; Seldon: each
    predictor scales within the full bounds."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                "self.minReplicas <= self.maxReplicas",
                "autoscaling.minReplicas must not exceed autoscaling.maxReplicas",
            )
        )
    )

    min_replicas: Annotated[int, Field(ge=1, le=1000)] = 1
    """Fewest model server pods; with a native canary, each version still keeps at least one."""
    max_replicas: Annotated[int, Field(ge=1, le=1000)]
    """Most model server pods."""
    target_cpu_utilization_percentage: Annotated[int, Field(ge=1, le=100)] = Field(
        default=80, alias="targetCPUUtilizationPercentage"
    )
    """Average CPU use the HPA aims for, in percent of the pods' CPU request: set
    `resources.requests.cpu`, or the HPA cannot compute it."""

    @model_validator(mode="after")
    def _min_le_max(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError("autoscaling.minReplicas must not exceed autoscaling.maxReplicas")
        return self


_STEPS_INCREASING = "canary.analysis.steps must be strictly increasing"


class Analysis(ApiModel):
    """Step the canary's traffic up while it stays within the limits; roll back when not.
    Measured in Prometheus: without the operator's Prometheus URL, or while the canary gets no
    requests, the canary holds at its step."""

    interval: Duration = "1m"
    """How long each step lasts; also the Prometheus window its error rate and p99 latency are
    measured over."""
    steps: Annotated[
        list[Annotated[int, Field(ge=1, le=100)]],
        Field(
            min_length=1,
            max_length=10,
            # A set: duplicates are rejected, so sorted means strictly increasing.
            json_schema_extra={
                "x-kubernetes-list-type": "set",
                **validations(rule("self.isSorted()", _STEPS_INCREASING)),
            },
        ),
    ] = [10, 50, 100]
    """The canary's traffic share in percent at each step, one step per interval, strictly
    increasing; once the last step passes, the canary is promoted to all traffic."""
    max_error_rate_percent: Annotated[float, Field(ge=0, le=100)] | None = None
    """Roll back when the canary's share of server errors (5xx) over `interval`, in percent,
    exceeds this; unset: not checked."""
    max_latency_p99_ms: Annotated[int, Field(ge=1, le=600_000)] | None = None
    """Roll back when the canary's 99th percentile latency over `interval`, in milliseconds,
    exceeds this; unset: not checked."""

    @model_validator(mode="after")
    def _increasing(self) -> Self:
        if any(a >= b for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise ValueError(_STEPS_INCREASING)
        return self


class Canary(_VersionOrAlias):
    """A second version that gets part of the traffic."""

    model_config = ConfigDict(json_schema_extra=_exactly_one_of_version_alias("spec.canary"))

    traffic_percent: Percent = 10
    """Share of requests, in percent, sent to the canary without `analysis`; ignored with
    `analysis`, whose steps set it. Native runtime: realised as the share of ready pods."""
    analysis: Analysis | None = None
    """Automatic stepping and rollback, measured in Prometheus: without the operator's
    Prometheus URL, or while the canary gets no requests, it holds at its step. Unset: the canary
    keeps `trafficPercent` until the spec changes."""


# Durations that go into PrometheusRules: what both Prometheus and CEL's duration() read
# (integers, units in descending order, each at most once; no `1.5m`, no `us`).
PROMETHEUS_DURATION = r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?$"
PrometheusDuration = Annotated[
    str, StringConstraints(min_length=2, max_length=32, pattern=PROMETHEUS_DURATION)
]
_WINDOW_POSITIVE = "drift.window must be longer than 0s"


class Drift(ApiModel):
    """Alert on a shift of live feature means against the training baseline."""

    threshold: Annotated[float, Field(gt=0, le=1000)] = 3.0
    """Alert (ModelwerkDataDrift) when |live mean - training mean| / training std exceeds this
    for a feature."""
    window: Annotated[
        PrometheusDuration,
        Field(
            json_schema_extra=validations(rule("duration(self) > duration('0s')", _WINDOW_POSITIVE))
        ),
    ] = "10m"
    """The window of the live mean (a PromQL rate window): at least a few scrape intervals
    (15s each)."""
    for_: PrometheusDuration = Field(default="5m", alias="for")
    """How long the drift must last before the alert fires (the rule's `for`; 0s: at once)."""

    @field_validator("window")
    @classmethod
    def _window_positive(cls, value: str) -> str:
        if parse_duration(value).total_seconds() <= 0:
            raise ValueError(_WINDOW_POSITIVE)
        return value


class Monitoring(ApiModel):
    """A PrometheusRule with alerts per served version, and a ServiceMonitor (native) or
    PodMonitor (Seldon) to scrape the model servers. Needs the Prometheus Operator's CRDs;
    without them the MonitoringReady condition is False and nothing is created."""

    enabled: bool = True
    """Set false to remove the monitor and PrometheusRule (and create none); MonitoringReady is
    then False, reason Disabled."""
    latency_p99_ms: Annotated[int, Field(ge=1, le=600_000)] | None = None
    """Alert (ModelwerkHighLatencyP99) when a version's 99th percentile latency over 5m exceeds
    this many milliseconds, for 5m; unset: 500."""
    error_rate_percent: Annotated[float, Field(ge=0, le=100)] | None = None
    """Alert (ModelwerkHighErrorRate) when more than this percentage of a version's requests
    fail with a server error over 5m, for 5m; unset: 1."""
    drift: Drift | None = None
    """Alerts on a shift of live feature means against the training baseline, for each served
    version that has one; unset: threshold 3, window 10m, for 5m."""
    labels: Labels = Field(default_factory=dict)
    """Added to the PrometheusRule and the monitor, for Prometheus' rule/monitor selectors; the
    operator's own labels win on a clash."""


_PDB_VALUE = r"^([0-9]+|[0-9]{1,3}%)$"
PdbValue = Annotated[
    Annotated[int, Field(ge=0)]
    | Annotated[str, StringConstraints(max_length=4, pattern=_PDB_VALUE)],
    WithJsonSchema(
        {"x-kubernetes-int-or-string": True, "pattern": _PDB_VALUE, "maxLength": 4, "minimum": 0}
    ),
]


class PodDisruptionBudget(ApiModel):
    """A PodDisruptionBudget for the model server pods."""

    min_available: PdbValue
    """A number of pods or a percentage, e.g. `1` or `50%`."""


_HOSTNAME = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class ParentRef(ApiModel):
    """A Gateway the HTTPRoute attaches to (Gateway API `parentRefs`)."""

    name: DnsSubdomain
    """The Gateway's name."""
    namespace: DnsLabel | None = None
    """The Gateway's namespace; unset: the Deployment's (a Gateway elsewhere must allow routes
    from this namespace in its listener's `allowedRoutes`)."""
    section_name: DnsSubdomain | None = None
    """One listener of the Gateway; unset: every listener that allows the route."""
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    """The listeners on this port only."""


class Gateway(ApiModel):
    """Where the native runtime's HTTPRoute attaches (with the Gateway API's HTTPRoute CRD
    installed; ignored without it)."""

    parent_refs: Annotated[list[ParentRef], Field(min_length=1, max_length=32)]
    """Gateways to attach to. Without `spec.gateway` the route's parent is the Deployment's own
    Service (the Gateway API's mesh binding, GAMMA): a mesh that implements it splits every
    request addressed to `http://<name>.<namespace>.svc:8000`."""
    hostnames: Annotated[
        list[Annotated[str, StringConstraints(max_length=253, pattern=_HOSTNAME)]],
        Field(max_length=16),
    ] = Field(default_factory=list)
    """Host names the route answers for on those Gateways; empty: every host of the listener."""


class DeploymentSpec(_VersionOrAlias):
    """Which Model version to serve and how."""

    model_config = ConfigDict(json_schema_extra=_exactly_one_of_version_alias("spec"))

    model: DnsLabel
    """The Model (same namespace) to serve; while it does not exist nothing new rolls out
    (Pending, or Degraded while an earlier version keeps serving)."""
    runtime: ServingRuntime = ServingRuntime.AUTO
    """`native`: an apps/v1 Deployment per served version behind one Service; `seldon`: one
    SeldonDeployment (Seldon Core v1); `auto`: seldon if its CRD is installed, else native. After
    a switch the old runtime serves until the new one is ready."""
    replicas: Annotated[int, Field(ge=0, le=1000)] = 1
    """Model server pods in total, split between stable and canary by the canary's share (at
    least one each); 0: none. Ignored while `autoscaling` is set."""
    autoscaling: Autoscaling | None = None
    resources: ResourceRequirements | None = None
    """Requests and limits of the model server container; unset: none (a LimitRange may apply).
    Changing them restarts the serving pods."""
    canary: Canary | None = None
    """A second version that gets part of the traffic; unset: only the stable version is
    served. A version that analysis rolled back is not tried again (status.rejectedVersions)."""
    guard: Guard | None = None
    """Watch each version for `window` after it becomes current and switch back on a breach
    (needs the operator's Prometheus URL); unset: a current version is not watched."""
    # Defaulted to {} so the apiserver fills in monitoring.enabled=true and the stored object
    # says monitoring is on.
    monitoring: Monitoring = Field(default_factory=Monitoring, json_schema_extra={"default": {}})
    service_account_name: DnsSubdomain | None = None
    """A ServiceAccount in the Deployment's namespace for the model server pods; unset: the
    namespace's `default`, with no API token mounted."""
    pdb: PodDisruptionBudget | None = None
    """A PodDisruptionBudget over the model server pods (native: every version; Seldon: the
    stable predictor only); unset: none."""
    gateway: Gateway | None = None
    """Native runtime with the Gateway API's HTTPRoute CRD installed: the Gateways its
    HTTPRoute attaches to; unset: the Deployment's own Service (mesh)."""


class DeploymentPhase(StrEnum):
    PENDING = "Pending"
    PROGRESSING = "Progressing"
    AVAILABLE = "Available"
    DEGRADED = "Degraded"


class CanaryState(StrEnum):
    PROGRESSING = "Progressing"
    """Serving its share of traffic; with analysis, stepping through the steps."""
    PROMOTED = "Promoted"
    """Analysis passed every step: the canary version now serves all traffic."""
    ROLLED_BACK = "RolledBack"
    """A step breached a limit: the canary was removed and its version rejected."""


class TrafficSplit(StrEnum):
    HTTP_ROUTE = "HTTPRoute"
    """Per request, exactly by the HTTPRoute's backendRefs weights (one Service per version)."""
    REPLICAS = "Replicas"
    """By ready pods behind the one Service, per connection, within 50/replicas percentage
    points (no HTTPRoute CRD)."""
    SELDON = "Seldon"
    """Per request, by the SeldonDeployment's predictor traffic weights."""


class CanaryStatus(StatusModel):
    """Where the canary stands."""

    version: Version | None = None
    """The canary version, resolved from spec.canary."""
    traffic_percent: int | None = None
    """The canary's traffic share in percent as set: trafficPercent or the current step's; 100
    once promoted, 0 once rolled back."""
    step: int | None = None
    """Index into spec.canary.analysis.steps."""
    step_started_at: datetime | None = None
    """When the current analysis step began; the next starts `interval` later."""
    state: CanaryState | None = None
    """`Progressing`; `Promoted`: passed every step and serves all traffic while spec.canary
    names it (update spec.version or the alias before removing spec.canary); `RolledBack`:
    breached a limit, removed and added to rejectedVersions."""
    error_rate_percent: float | None = None
    """The canary's error rate measured at the last analysis step."""
    latency_p99_ms: float | None = None
    """The canary's p99 latency measured at the last analysis step."""


class DeploymentLineage(Lineage):
    """What produced the served version: enough to run it again."""

    training_run: str | None = None
    """The TrainingRun that registered the version; absent for a declared version."""


class DeploymentStatus(StatusModel):
    phase: DeploymentPhase | None = None
    """`Pending`: nothing resolvable to serve yet; `Progressing`: rolling out; `Available`: the
    target version is ready; `Degraded`: the target cannot be served (what served before keeps
    serving)."""
    conditions: Conditions = Field(default_factory=list)
    """Types Ready, Progressing, Degraded, CanaryAnalysis and MonitoringReady; their reason and
    message say what blocks."""
    observed_generation: int | None = None
    """The metadata.generation this status was computed from."""
    runtime: ServingRuntime | None = None
    """The runtime in use (what `auto` resolved to)."""
    current_version: Version | None = None
    """The stable version serving, set once it is ready; during a switch the previous version
    stays here until the new one is ready."""
    canary: CanaryStatus | None = None
    """Where the canary stands; absent without spec.canary."""
    traffic_split: TrafficSplit | None = None
    """How traffic is split between the served versions: `HTTPRoute` (per request, exact),
    `Replicas` (by ready pods) or `Seldon`."""
    endpoint: str | None = None
    """`http://<name>.<namespace>.svc:8000`, the in-cluster URL of the native runtime's Service
    (with Seldon that Service is removed once the SeldonDeployment is Available)."""
    replicas: int | None = None
    """Model server pods wanted across the served versions, from spec.replicas (not the
    HPA's count)."""
    ready_replicas: int | None = None
    """Ready model server pods across the served versions."""
    lineage: DeploymentLineage | None = None
    """Lineage of currentVersion: what produced it."""
    rejected_versions: list[Version] = Field(default_factory=list)
    """Canary versions rolled back by analysis; not tried again."""
    history: Annotated[list[ServingChange], Field(max_length=HISTORY_LIMIT)] | None = None
    """Every change of what is served (currentVersion, canary version, canary traffic), oldest
    first, at most 50: older entries are posted as Events (reason ServingHistory) when they
    drop out."""
    history_trimmed: int | None = None
    """How many entries have dropped out of history into Events."""
    guard: GuardStatus | None = None
    """The guard over currentVersion; absent without spec.guard."""


DEPLOYMENT_KIND = KindInfo(
    kind="Deployment",
    plural="deployments",
    # Never `deploy`: that would shadow apps/v1 Deployment in `kubectl get deploy`.
    short_names=("mwd", "mwdeploy"),
    printer_columns=(
        PrinterColumn("Model", "string", ".spec.model"),
        PrinterColumn("Version", "integer", ".status.currentVersion"),
        PrinterColumn("Canary", "integer", ".status.canary.version"),
        PrinterColumn("Traffic", "integer", ".status.canary.trafficPercent"),
        PrinterColumn("Phase", "string", ".status.phase"),
        PrinterColumn("Ready", "integer", ".status.readyReplicas"),
        AGE,
    ),
    root_validations=(NAME_FITS_LABEL,),
)


class Deployment(Resource):
    """Serves a version of a Model (fixed or through an alias), optionally with a canary, and
    monitors latency, errors and feature drift."""

    KIND: ClassVar[KindInfo] = DEPLOYMENT_KIND

    kind: Literal["Deployment"] = "Deployment"
    spec: DeploymentSpec
    status: DeploymentStatus = Field(default_factory=DeploymentStatus)
