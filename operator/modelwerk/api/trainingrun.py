"""TrainingRun: one reproducible training job whose result may become a Model version."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from modelwerk.api.common import (
    AGE,
    IDENTIFIER,
    NAME_FITS_LABEL,
    ApiModel,
    ArtifactRef,
    Baseline,
    CodeRef,
    Conditions,
    DatasetRef,
    Direction,
    DnsLabel,
    DnsSubdomain,
    Identifier,
    JsonDict,
    KindInfo,
    Lineage,
    MetricName,
    MetricValue,
    PrinterColumn,
    Resource,
    ResourceRequirements,
    StatusModel,
    Uri,
    Version,
    key_checker,
    keys_rule,
    list_map,
    rule,
    validations,
)

# Names the operator sets on the training container; a user's env entry must not shadow them.
RESERVED_ENV_PREFIX = "MODELWERK_"


class EnvVar(ApiModel):
    """A literal environment variable. No valueFrom: a run reads nothing it does not declare."""

    name: Identifier
    value: Annotated[str, StringConstraints(max_length=4096)] = ""

    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                f"!self.name.startsWith('{RESERVED_ENV_PREFIX}')",
                f"env names starting with {RESERVED_ENV_PREFIX} are reserved for the operator",
            )
        )
    )

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name.startswith(RESERVED_ENV_PREFIX):
            raise ValueError(
                f"env names starting with {RESERVED_ENV_PREFIX} are reserved for the operator"
            )
        return name


HyperparameterName = Annotated[str, AfterValidator(key_checker(IDENTIFIER, 128, "hyperparameter"))]
Hyperparameters = Annotated[
    dict[HyperparameterName, Annotated[str, StringConstraints(max_length=1024)]],
    Field(
        max_length=64,
        json_schema_extra=validations(keys_rule(IDENTIFIER, 128, "hyperparameter names")),
    ),
]


class Evaluation(ApiModel):
    """The gate between a finished run and a registered version."""

    metric: MetricName
    """The reported metric to judge, e.g. `accuracy`."""
    direction: Direction = Direction.MAX
    threshold: MetricValue | None = None
    """The metric must reach this value (>= for max, <= for min) or the run is Rejected."""
    must_beat: DnsLabel | None = None
    """A Model alias (e.g. `production`) whose version's metric the run must beat."""


class Output(ApiModel):
    uri: Uri
    """Where the training code writes the artifact; `{run}` is replaced by the run's name."""


class TrainingRunSpec(ApiModel):
    """What to run, on what data, with which parameters. Immutable after creation."""

    model: DnsLabel | None = None
    """The Model (same namespace) the result is registered to; none: just run."""
    image: Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"^\S+$")]
    """The training image; pin it by digest for a reproducible run."""
    command: Annotated[
        list[Annotated[str, StringConstraints(max_length=1024)]], Field(max_length=32)
    ] = Field(default_factory=list)
    args: Annotated[
        list[Annotated[str, StringConstraints(max_length=4096)]], Field(max_length=64)
    ] = Field(default_factory=list)
    env: Annotated[list[EnvVar], Field(max_length=64, json_schema_extra=list_map("name"))] = Field(
        default_factory=list
    )
    hyperparameters: Hyperparameters = Field(default_factory=dict)
    """Passed to the code as strings; their hash is part of the run's lineage."""
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None
    """Random seed handed to the code (numpy accepts up to 2^32-1)."""
    datasets: Annotated[
        list[DatasetRef], Field(max_length=16, json_schema_extra=list_map("name"))
    ] = Field(default_factory=list)
    code: CodeRef | None = None
    resources: ResourceRequirements | None = None
    service_account_name: DnsSubdomain | None = None
    """A ServiceAccount in the run's namespace; default: the namespace's `default`."""
    backoff_limit: Annotated[int, Field(ge=0, le=10)] = 2
    """Retries of the training pod before the run fails."""
    active_deadline_seconds: Annotated[int, Field(ge=1, le=30 * 24 * 3600)] | None = None
    ttl_seconds_after_finished: Annotated[int, Field(ge=0, le=365 * 24 * 3600)] | None = None
    """Delete the finished run after this long, unless its version is still registered."""
    suspend: bool = False
    """The only field that may change: pauses (true) or resumes (false) the run."""
    evaluation: Evaluation | None = None
    output: Output | None = None
    """Default: the Model's storage URI plus the run's name."""


def _immutable_spec_rule() -> JsonDict:
    # A transition rule on `spec` itself rather than `self == oldSelf` per field: per-field rules
    # never run when a field is added or removed, and optional fields must not appear later.
    parts = []
    for name, info in TrainingRunSpec.model_fields.items():
        if name == "suspend":
            continue
        key = info.alias or name
        same_presence = f"has(self.{key}) == has(oldSelf.{key})"
        parts.append(f"{same_presence} && (!has(self.{key}) || self.{key} == oldSelf.{key})")
    return rule(
        " && ".join(f"({part})" for part in parts),
        "spec is immutable except spec.suspend: create a new TrainingRun instead",
    )


class TrainingRunPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    REJECTED = "Rejected"
    """Finished, but the evaluation gate refused the result."""


class EvaluationResult(StatusModel):
    metric: str
    direction: Direction = Direction.MAX
    threshold: float | None = None
    value: float | None = None
    """The run's value of the metric."""
    baseline_value: float | None = None
    """The value of the `mustBeat` alias's version, when there was one."""
    passed: bool = False
    message: str | None = None


class TrainingRunStatus(StatusModel):
    phase: TrainingRunPhase | None = None
    conditions: Conditions = Field(default_factory=list)
    observed_generation: int | None = None
    job_name: str | None = None
    start_time: datetime | None = None
    completion_time: datetime | None = None
    attempts: int | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    artifact: ArtifactRef | None = None
    baseline: Baseline | None = None
    """Training-data statistics the code reported; copied to the registered version."""
    evaluation: EvaluationResult | None = None
    model_version: Version | None = None
    reproducibility: Lineage | None = None


TRAININGRUN_KIND = KindInfo(
    kind="TrainingRun",
    plural="trainingruns",
    short_names=("tr", "mwtr"),
    printer_columns=(
        PrinterColumn("Model", "string", ".spec.model"),
        PrinterColumn("Phase", "string", ".status.phase"),
        PrinterColumn("Metric", "number", ".status.evaluation.value"),
        PrinterColumn("Version", "integer", ".status.modelVersion"),
        AGE,
    ),
    root_validations=(NAME_FITS_LABEL,),
)


class TrainingRun(Resource):
    """One reproducible training job; when it passes its evaluation, its artifact becomes the
    next version of `spec.model`."""

    KIND: ClassVar[KindInfo] = TRAININGRUN_KIND

    kind: Literal["TrainingRun"] = "TrainingRun"
    spec: TrainingRunSpec = Field(json_schema_extra=validations(_immutable_spec_rule()))
    status: TrainingRunStatus = Field(default_factory=TrainingRunStatus)
