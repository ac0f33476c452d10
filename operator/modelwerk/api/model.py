"""Model: the registry entry. Versions, aliases, automatic promotion and closed-loop retraining."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import Field, StringConstraints

from modelwerk.api.common import (
    AGE,
    CRON,
    DNS1123_LABEL,
    NAME_FITS_LABEL,
    READY,
    AliasName,
    ApiModel,
    ArtifactRef,
    Baseline,
    Conditions,
    Direction,
    DnsLabel,
    Duration,
    KindInfo,
    Lineage,
    MetricName,
    Metrics,
    PrinterColumn,
    Resource,
    SecretRef,
    StatusModel,
    Uri,
    Version,
    keys_rule,
    list_map,
    rule,
    validations,
)
from modelwerk.api.trainingrun import TrainingRunSpec


class Framework(StrEnum):
    """How the model server loads the artifact."""

    SKLEARN = "sklearn"
    XGBOOST = "xgboost"
    LIGHTGBM = "lightgbm"
    ONNX = "onnx"
    PYTORCH = "pytorch"
    TENSORFLOW = "tensorflow"
    CUSTOM = "custom"


class Storage(ApiModel):
    """Default artifact location for runs of this Model."""

    uri: Uri
    secret_ref: SecretRef | None = None
    """Credentials for the store, a Secret in the Model's namespace."""


class DeclaredVersion(ApiModel):
    """A version registered from outside the cluster (GitOps), e.g. a model trained elsewhere."""

    version: Version
    artifact: ArtifactRef
    metrics: Metrics = Field(default_factory=dict)
    baseline: Baseline | None = None


Aliases = Annotated[
    dict[AliasName, Version],
    Field(
        max_length=16,
        json_schema_extra=validations(keys_rule(DNS1123_LABEL, 63, "alias names")),
    ),
]


class Promotion(ApiModel):
    """Point `alias` at each newly registered version that is better on `metric`."""

    alias: DnsLabel
    metric: MetricName
    direction: Direction = Direction.MAX


class Retrain(ApiModel):
    """Start a TrainingRun from `template` on a schedule, on alerts, or on request."""

    template: TrainingRunSpec
    """A TrainingRun spec; `model` defaults to this Model."""
    schedule: Annotated[str, StringConstraints(max_length=128, pattern=CRON)] | None = None
    """Cron schedule (five fields or @daily etc.), in the operator's time zone (UTC)."""
    on_alerts: Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=253)]],
        Field(max_length=16),
    ] = Field(default_factory=list)
    """Alert names (Alertmanager `alertname`) that trigger a run through the operator's webhook."""
    cooldown: Duration = "6h"
    """Minimum time between two triggered runs, so a flapping alert does not train in a loop."""
    max_concurrent: Annotated[int, Field(ge=1, le=10)] = 1
    """Triggered runs of this Model that may be unfinished at once."""


class ModelSpec(ApiModel):
    """Everything is optional: a bare Model is an empty registry that TrainingRuns fill."""

    description: Annotated[str, StringConstraints(max_length=1024)] | None = None
    framework: Framework | None = None
    """How to load artifacts; none: guessed from the artifact's file extension."""
    storage: Storage | None = None
    versions: Annotated[
        list[DeclaredVersion], Field(max_length=64, json_schema_extra=list_map("version"))
    ] = Field(default_factory=list)
    aliases: Aliases = Field(default_factory=dict)
    """Declared alias -> version, e.g. `production: 3`; wins over automatic promotion."""
    promotion: Promotion | None = None
    retrain: Retrain | None = None


class ModelPhase(StrEnum):
    PENDING = "Pending"
    """No version registered yet."""
    READY = "Ready"
    DEGRADED = "Degraded"
    """Something was refused (e.g. a declared version colliding with a registered one)."""


class VersionSource(StatusModel):
    training_run: str | None = None
    uid: str | None = None
    """The run's UID: the idempotency key of its registration."""
    declared: bool | None = None
    """Registered from spec.versions rather than by a run."""


class ModelVersion(StatusModel):
    version: Version
    artifact: ArtifactRef
    metrics: dict[str, float] = Field(default_factory=dict)
    baseline: Baseline | None = None
    source: VersionSource | None = None
    lineage: Lineage | None = None
    registered_at: datetime | None = None


class RetrainReason(StrEnum):
    ALERT = "Alert"
    SCHEDULE = "Schedule"
    MANUAL = "Manual"


class RetrainTrigger(StatusModel):
    at: datetime
    reason: RetrainReason
    alert: str | None = None
    training_run: str | None = None
    """The run the trigger started; none if it was skipped (cooldown, maxConcurrent)."""
    message: str | None = None
    key: str | None = None
    """Idempotency key (alert fingerprint and start, or the scheduled time): a repeated
    delivery of the same alert finds its key here and starts nothing."""


class RetrainStatus(StatusModel):
    triggers: list[RetrainTrigger] = Field(default_factory=list)
    """Newest last."""


class ModelStatus(StatusModel):
    phase: ModelPhase | None = None
    conditions: Conditions = Field(default_factory=list)
    observed_generation: int | None = None
    latest_version: Version | None = None
    versions: Annotated[list[ModelVersion], Field(json_schema_extra=list_map("version"))] = Field(
        default_factory=list
    )
    """Append-only: entries are never rewritten or dropped."""
    aliases: dict[str, Version] = Field(default_factory=dict)
    retrain: RetrainStatus | None = None


MODEL_KIND = KindInfo(
    kind="Model",
    plural="models",
    short_names=("mwm",),
    printer_columns=(
        PrinterColumn("Latest", "integer", ".status.latestVersion"),
        PrinterColumn("Production", "integer", ".status.aliases.production"),
        PrinterColumn("Candidate", "integer", ".status.aliases.candidate"),
        READY,
        AGE,
    ),
    root_validations=(
        NAME_FITS_LABEL,
        rule(
            "!has(self.spec) || !has(self.spec.retrain) || !has(self.spec.retrain.template.model)"
            " || self.spec.retrain.template.model == self.metadata.name",
            "spec.retrain.template.model must be empty or this Model's own name",
            field_path=".spec.retrain.template.model",
        ),
    ),
)


class Model(Resource):
    """A model in the registry: its versions (registered by TrainingRuns or declared), its
    aliases, automatic promotion and closed-loop retraining."""

    KIND: ClassVar[KindInfo] = MODEL_KIND

    kind: Literal["Model"] = "Model"
    spec: ModelSpec = Field(default_factory=ModelSpec)
    status: ModelStatus = Field(default_factory=ModelStatus)
