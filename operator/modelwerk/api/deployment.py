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
    AGE,
    NAME_FITS_LABEL,
    ApiModel,
    Conditions,
    DnsLabel,
    DnsSubdomain,
    Duration,
    KindInfo,
    Labels,
    Lineage,
    PrinterColumn,
    Resource,
    ResourceRequirements,
    StatusModel,
    Version,
    parse_duration,
    rule,
    validations,
)

Percent = Annotated[int, Field(ge=0, le=100)]

_ONE_OF_VERSION_ALIAS = "set exactly one of version or alias"


def _exactly_one_of_version_alias(where: str) -> dict[str, Any]:
    return validations(
        rule("has(self.version) != has(self.alias)", f"{where}: {_ONE_OF_VERSION_ALIAS}")
    )


class _VersionOrAlias(ApiModel):
    version: Version | None = None
    """A fixed version number."""
    alias: DnsLabel | None = None
    """A Model alias (e.g. `production`), followed as it moves."""

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.version is None) == (self.alias is None):
            raise ValueError(_ONE_OF_VERSION_ALIAS)
        return self


class Runtime(StrEnum):
    AUTO = "auto"
    """Seldon if its CRD is installed, else native."""
    NATIVE = "native"
    """An apps/v1 Deployment and a Service per served version."""
    SELDON = "seldon"
    """One SeldonDeployment with a predictor per served version."""


class Autoscaling(ApiModel):
    """A HorizontalPodAutoscaler on CPU for each served version; replaces `replicas`."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                "self.minReplicas <= self.maxReplicas",
                "autoscaling.minReplicas must not exceed autoscaling.maxReplicas",
            )
        )
    )

    min_replicas: Annotated[int, Field(ge=1, le=1000)] = 1
    max_replicas: Annotated[int, Field(ge=1, le=1000)]
    target_cpu_utilization_percentage: Annotated[int, Field(ge=1, le=100)] = Field(
        default=80, alias="targetCPUUtilizationPercentage"
    )

    @model_validator(mode="after")
    def _min_le_max(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError("autoscaling.minReplicas must not exceed autoscaling.maxReplicas")
        return self


_STEPS_INCREASING = "canary.analysis.steps must be strictly increasing"


class Analysis(ApiModel):
    """Step the canary's traffic up while it stays within the limits; roll back when not."""

    interval: Duration = "1m"
    """How long each step is observed before the next."""
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
    """Traffic percentages of the canary, one per interval, increasing; 100 promotes it."""
    max_error_rate_percent: Annotated[float, Field(ge=0, le=100)] | None = None
    max_latency_p99_ms: Annotated[int, Field(ge=1, le=600_000)] | None = None

    @model_validator(mode="after")
    def _increasing(self) -> Self:
        if any(a >= b for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise ValueError(_STEPS_INCREASING)
        return self


class Canary(_VersionOrAlias):
    """A second version that gets part of the traffic."""

    model_config = ConfigDict(json_schema_extra=_exactly_one_of_version_alias("spec.canary"))

    traffic_percent: Percent = 10
    """Share of requests sent to the canary; with `analysis`, the starting share."""
    analysis: Analysis | None = None


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
    """Alert when |live mean - training mean| / training std exceeds this for a feature."""
    window: Annotated[
        PrometheusDuration,
        Field(
            json_schema_extra=validations(rule("duration(self) > duration('0s')", _WINDOW_POSITIVE))
        ),
    ] = "10m"
    """The window of the live mean (a PromQL rate window): at least a few scrape intervals."""
    for_: PrometheusDuration = Field(default="5m", alias="for")
    """How long the drift must last before the alert fires (the rule's `for`; 0s: at once)."""

    @field_validator("window")
    @classmethod
    def _window_positive(cls, value: str) -> str:
        if parse_duration(value).total_seconds() <= 0:
            raise ValueError(_WINDOW_POSITIVE)
        return value


class Monitoring(ApiModel):
    """PrometheusRule and ServiceMonitor for the served model (when their CRDs exist)."""

    enabled: bool = True
    latency_p99_ms: Annotated[int, Field(ge=1, le=600_000)] | None = None
    """Alert when the 99th percentile latency exceeds this."""
    error_rate_percent: Annotated[float, Field(ge=0, le=100)] | None = None
    drift: Drift | None = None
    labels: Labels = Field(default_factory=dict)
    """Added to the PrometheusRule and ServiceMonitor, for Prometheus' rule/monitor selectors."""


_PDB_VALUE = r"^([0-9]+|[0-9]{1,3}%)$"
PdbValue = Annotated[
    Annotated[int, Field(ge=0)]
    | Annotated[str, StringConstraints(max_length=4, pattern=_PDB_VALUE)],
    WithJsonSchema(
        {"x-kubernetes-int-or-string": True, "pattern": _PDB_VALUE, "maxLength": 4, "minimum": 0}
    ),
]


class PodDisruptionBudget(ApiModel):
    min_available: PdbValue
    """A number of pods or a percentage, e.g. `1` or `50%`."""


class DeploymentSpec(_VersionOrAlias):
    """Which Model version to serve and how."""

    model_config = ConfigDict(json_schema_extra=_exactly_one_of_version_alias("spec"))

    model: DnsLabel
    """The Model (same namespace) to serve."""
    runtime: Runtime = Runtime.AUTO
    replicas: Annotated[int, Field(ge=0, le=1000)] = 1
    """Ignored while `autoscaling` is set."""
    autoscaling: Autoscaling | None = None
    resources: ResourceRequirements | None = None
    canary: Canary | None = None
    # Defaulted to {} so the apiserver fills in monitoring.enabled=true and the stored object
    # says monitoring is on.
    monitoring: Monitoring = Field(default_factory=Monitoring, json_schema_extra={"default": {}})
    service_account_name: DnsSubdomain | None = None
    """A ServiceAccount in the Deployment's namespace for the model server pods."""
    pdb: PodDisruptionBudget | None = None


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


class CanaryStatus(StatusModel):
    version: Version | None = None
    traffic_percent: int | None = None
    step: int | None = None
    """Index into spec.canary.analysis.steps."""
    step_started_at: datetime | None = None
    """When the current analysis step began; the next starts `interval` later."""
    state: CanaryState | None = None
    error_rate_percent: float | None = None
    """The canary's error rate measured at the last analysis step."""
    latency_p99_ms: float | None = None
    """The canary's p99 latency measured at the last analysis step."""


class DeploymentLineage(Lineage):
    training_run: str | None = None


class DeploymentStatus(StatusModel):
    phase: DeploymentPhase | None = None
    conditions: Conditions = Field(default_factory=list)
    observed_generation: int | None = None
    runtime: Runtime | None = None
    """The runtime in use (what `auto` resolved to)."""
    current_version: Version | None = None
    canary: CanaryStatus | None = None
    endpoint: str | None = None
    replicas: int | None = None
    ready_replicas: int | None = None
    lineage: DeploymentLineage | None = None
    rejected_versions: list[Version] = Field(default_factory=list)
    """Canary versions rolled back by analysis; not tried again."""


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
