"""Model: the registry entry. Versions, aliases, automatic promotion and closed-loop retraining."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import Field, StringConstraints

from modelwerk.api.card import ModelCard
from modelwerk.api.common import (
    CRON,
    DNS1123_LABEL,
    AliasName,
    ApiModel,
    ArtifactRef,
    Baseline,
    Conditions,
    Direction,
    DnsLabel,
    Duration,
    Lineage,
    MetricName,
    Metrics,
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
from modelwerk.api.governance import (
    HISTORY_LIMIT,
    NO_PROMOTION_OF_PROTECTED,
    AliasMove,
    CanaryPromotion,
    Protection,
    VersionGate,
)
from modelwerk.api.kindinfo import AGE, NAME_FITS_LABEL, READY, KindInfo, PrinterColumn
from modelwerk.api.trainingrun import TrainingRunSpec


class Framework(StrEnum):
    """The framework the artifacts were made with (informational)."""

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
    """Base URI of run outputs: a run without spec.output writes to `<uri>/<run name>`.
    `pvc://<claim>/<path>` is mounted into the training pod; for other schemes the training code
    uploads the artifact itself."""
    secret_ref: SecretRef | None = None
    """Credentials for the store: a Secret in the Model's namespace whose keys become environment
    variables (envFrom) of the training and model server pods, e.g. `AWS_ACCESS_KEY_ID`. The pods
    do not start while it is missing."""


class DeclaredVersion(ApiModel):
    """A version registered from outside the cluster (GitOps), e.g. a model trained elsewhere."""

    version: Version
    """The version number. A number or digest already registered with a different artifact is
    refused (the Model goes Degraded, reason VersionConflict); runs register above the highest."""
    artifact: ArtifactRef
    """The artifact; without a digest the version is registered but no Deployment serves it."""
    metrics: Metrics = Field(default_factory=dict)
    """Metric name -> value, as a run would report them; read by spec.promotion and by runs'
    evaluation.mustBeat."""
    baseline: Baseline | None = None
    """Training-data statistics, for drift alerts and the model server's feature names; unset:
    no drift alerts for this version."""


Aliases = Annotated[
    dict[AliasName, Version],
    Field(
        max_length=16,
        json_schema_extra=validations(keys_rule(DNS1123_LABEL, 63, "alias names")),
    ),
]


class Promotion(ApiModel):
    """Keep `alias` on the version with the best value of `metric`, re-evaluated whenever a
    version is registered or declared."""

    alias: DnsLabel
    """The alias to move, e.g. `candidate`; an entry of the same name in spec.aliases wins."""
    metric: MetricName
    """The metric to compare; versions without it are not considered, and a tie goes to the
    newer version."""
    direction: Direction = Direction.MAX


class Retrain(ApiModel):
    """Start a TrainingRun from `template` on a schedule or when one of `onAlerts` fires."""

    template: TrainingRunSpec
    """The spec of each triggered TrainingRun (named `<model>-retrain-<hash>`); its `model` is
    always this Model."""
    schedule: Annotated[str, StringConstraints(max_length=128, pattern=CRON)] | None = None
    """Cron schedule (five fields or @daily etc.) in UTC; unset: no scheduled runs. Times missed
    while the operator was down collapse into one run; cooldown and maxConcurrent apply."""
    on_alerts: Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=253)]],
        Field(max_length=16),
    ] = Field(default_factory=list)
    """Alert names (Alertmanager `alertname`) that start a run when delivered to the operator's
    webhook; the alert must carry `namespace` and `model` labels naming this Model."""
    cooldown: Duration = "6h"
    """Minimum time between two triggered runs, counted from the last trigger that started one;
    triggers within it are recorded and skipped, so a flapping alert does not train in a loop."""
    max_concurrent: Annotated[int, Field(ge=1, le=10)] = 1
    """Triggered runs of this Model that may be unfinished at once; a trigger beyond it is
    skipped. Runs created by hand do not count."""


class ModelSpec(ApiModel):
    """Everything is optional: a bare Model is an empty registry that TrainingRuns fill."""

    description: Annotated[str, StringConstraints(max_length=1024)] | None = None
    """Free text for people, shown first in the model card; the operator does not read it."""
    card: ModelCard | None = None
    """Intended use, limitations, owner and contact for `kubectl modelwerk card`."""
    framework: Framework | None = None
    """The framework the artifacts were made with, for information only: neither the operator
    nor the bundled model server reads it (the server loads every artifact with joblib)."""
    storage: Storage | None = None
    """Default artifact location of this Model's runs; unset: each run needs spec.output."""
    versions: Annotated[
        list[DeclaredVersion], Field(max_length=64, json_schema_extra=list_map("version"))
    ] = Field(default_factory=list)
    """Versions registered from outside the cluster (GitOps), merged into status.versions;
    removing an entry here does not unregister the version."""
    aliases: Aliases = Field(default_factory=dict)
    """Declared alias -> version, e.g. `production: 3`; wins over spec.promotion. An alias naming
    an unregistered version is not set (the Model goes Degraded, reason VersionConflict)."""
    promotion: Promotion | None = None
    """Keep an alias on the best version by a metric; unset: aliases move only through
    spec.aliases."""
    retrain: Retrain | None = None
    """Closed-loop retraining: start a TrainingRun from a template on a schedule or on alerts;
    unset: the Model starts no TrainingRuns and ignores alerts."""
    protection: Protection | None = None
    """Protected aliases: who may move them and which versions they may name, enforced at apply
    by the apiserver's admission policy (installed by the chart); unset: any editor of the
    Model may move any alias."""


class ModelPhase(StrEnum):
    PENDING = "Pending"
    """No version registered yet."""
    READY = "Ready"
    DEGRADED = "Degraded"
    """Something was refused (e.g. a declared version colliding with a registered one)."""


class VersionSource(StatusModel):
    """Where a version came from: a TrainingRun or spec.versions."""

    training_run: str | None = None
    """The name of the TrainingRun that registered the version."""
    uid: str | None = None
    """The run's UID: the idempotency key of its registration."""
    declared: bool | None = None
    """Registered from spec.versions rather than by a run."""


class ModelVersion(StatusModel):
    version: Version
    """The version number: unique within the Model, never reused."""
    artifact: ArtifactRef
    metrics: dict[str, float] = Field(default_factory=dict)
    """Metric name -> value, as the run reported them (or as declared)."""
    baseline: Baseline | None = None
    source: VersionSource | None = None
    """Where the version came from: a TrainingRun or spec.versions."""
    lineage: Lineage | None = None
    """What produced the version (image digest, code, datasets, hyperparameters, seed); absent
    for declared versions."""
    registered_at: datetime | None = None
    """When the operator registered the version."""
    gate: VersionGate | None = None
    """The verdicts the version's run passed (evaluation gate, data validation); absent for
    declared versions."""


class RetrainReason(StrEnum):
    ALERT = "Alert"
    SCHEDULE = "Schedule"
    MANUAL = "Manual"


class RetrainTrigger(StatusModel):
    """One trigger the operator handled, whether it started a run or not."""

    at: datetime
    """When the operator handled the trigger (UTC); cooldown counts from the newest trigger
    that started a run."""
    reason: RetrainReason
    """What fired: `Alert` (the Alertmanager webhook) or `Schedule`; the operator does not
    write `Manual` itself."""
    alert: str | None = None
    """The alert's name (`alertname`), for an `Alert` trigger."""
    training_run: str | None = None
    """The run the trigger started; none if it was skipped (cooldown, maxConcurrent)."""
    message: str | None = None
    """The decision: `started`, or why no run was started."""
    key: str | None = None
    """Idempotency key (alert fingerprint and start, or the scheduled time): a repeated
    delivery of the same alert finds its key here and starts nothing."""


class RetrainStatus(StatusModel):
    """The retrain triggers handled for spec.retrain, kept for cooldown and deduplication."""

    triggers: list[RetrainTrigger] = Field(default_factory=list)
    """Newest last, at most 20: the oldest are dropped first, except the newest trigger that
    started a run and the newest scheduled one."""


class ModelStatus(StatusModel):
    phase: ModelPhase | None = None
    """`Pending`: no version registered yet; `Ready`; `Degraded`: a declared version or alias
    was refused (see the Ready condition's message)."""
    conditions: Conditions = Field(default_factory=list)
    """Type `Ready` (reasons Resolved, VersionConflict); `kubectl wait --for=condition=Ready`
    works."""
    observed_generation: int | None = None
    """The metadata.generation this status was computed from."""
    latest_version: Version | None = None
    """The highest registered version number; absent until the first version."""
    versions: Annotated[list[ModelVersion], Field(json_schema_extra=list_map("version"))] = Field(
        default_factory=list
    )
    """Every registered version, by number. Append-only: entries are never rewritten or
    dropped."""
    aliases: dict[str, Version] = Field(default_factory=dict)
    """Alias -> version as resolved from spec.promotion and spec.aliases (which wins); what
    Deployments and runs' evaluation.mustBeat follow."""
    retrain: RetrainStatus | None = None
    """Retrain triggers handled for spec.retrain; absent until the first."""
    history: Annotated[list[AliasMove], Field(max_length=HISTORY_LIMIT)] | None = None
    """Every change of status.aliases, oldest first, at most 50: older entries are posted as
    Events (reason AliasHistory) when they drop out."""
    history_trimmed: int | None = None
    """How many entries have dropped out of history into Events."""
    canary_promotions: Annotated[
        list[CanaryPromotion], Field(json_schema_extra=list_map("version"))
    ] = Field(default_factory=list)
    """The versions a Deployment of this Model promoted from a canary (one entry per version:
    the first promotion), for protected aliases' `requireCanary`. Append-only, like versions."""


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
        NO_PROMOTION_OF_PROTECTED,
    ),
)


class Model(Resource):
    """A model in the registry: its versions (registered by TrainingRuns or declared), its
    aliases, automatic promotion and closed-loop retraining."""

    KIND: ClassVar[KindInfo] = MODEL_KIND

    kind: Literal["Model"] = "Model"
    spec: ModelSpec = Field(default_factory=ModelSpec)
    status: ModelStatus = Field(default_factory=ModelStatus)
