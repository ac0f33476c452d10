"""TrainingRun: one reproducible training job whose result may become a Model version."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Final, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from modelwerk.api.common import (
    IDENTIFIER,
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
    Lineage,
    MetricName,
    MetricValue,
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
from modelwerk.api.kindinfo import AGE, NAME_FITS_LABEL, KindInfo, PrinterColumn
from modelwerk.api.validation import VALIDATION_NAMES_RULE, DataValidation, ValidationResult

# Names the operator sets on the training container; a user's env entry must not shadow them.
RESERVED_ENV_PREFIX = "MODELWERK_"


class EnvVar(ApiModel):
    """A literal environment variable. No valueFrom: a run reads nothing it does not declare."""

    name: Identifier
    """The variable's name; names starting with `MODELWERK_` are reserved for the operator."""
    value: Annotated[str, StringConstraints(max_length=4096)] = ""
    """The variable's literal value."""

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
    """The reported metric to judge, e.g. `accuracy`; a run that does not report it is
    Rejected."""
    direction: Direction = Direction.MAX
    threshold: MetricValue | None = None
    """The metric must reach this value (>= for max, <= for min) or the run is Rejected; unset:
    no threshold."""
    must_beat: DnsLabel | None = None
    """A Model alias (e.g. `production`) whose version's value of `metric` the run must strictly
    beat; not checked while the alias is unset or its version lacks the metric."""


MAX_WORKERS: Final = 64
"""The most workers a run may ask for: a bound on what one Indexed Job gang is meant for (a
bigger job wants a queue and a gang scheduler), and it keeps the workers' hostnames (index at
most 63) within a DNS label; see MAX_GANG_NAME and MAX_JOBSET_NAME."""
DEFAULT_MASTER_PORT: Final = 29500  # torchrun's default
# Set by the operator in every worker of a distributed run; spec.env must not shadow them.
RENDEZVOUS_ENV: Final = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "WORLD_SIZE",
    "RANK",
    "NODE_RANK",
    "PET_NNODES",
    "PET_NODE_RANK",
    "PET_MASTER_ADDR",
    "PET_MASTER_PORT",
)


class WorkersEngine(StrEnum):
    """What runs a distributed run's gang."""

    AUTO = "auto"
    """A JobSet if its CRD (jobsets.jobset.x-k8s.io) is installed, else an Indexed Job; taken
    once, when the run starts."""
    INDEXED_JOB = "indexedJob"
    """One Indexed Job per attempt, the gang restarted whole by the operator."""
    JOB_SET = "jobSet"
    """One JobSet (sigs.k8s.io/jobset), which restarts the gang itself (failurePolicy.maxRestarts
    = spec.backoffLimit)."""


class Workers(ApiModel):
    """Several pods training together as one gang (an Indexed Job, or a JobSet): worker 0 is the
    rendezvous master and reports. Every worker runs the same pod: spec.image, command, args,
    env and resources (one Job, one pod template)."""

    replicas: Annotated[int, Field(ge=1, le=MAX_WORKERS)]
    """Pods in the gang, 1 to 64 (WORLD_SIZE, PET_NNODES); 1: a plain single-pod run."""
    port: Annotated[int, Field(ge=1, le=65535)] = DEFAULT_MASTER_PORT
    """The rendezvous port on worker 0 (MASTER_PORT, PET_MASTER_PORT)."""
    engine: WorkersEngine = WorkersEngine.AUTO
    """`auto` (JobSet when its CRD is installed), `indexedJob` or `jobSet` (the run stays
    Pending, reason JobSetNotInstalled, until the CRD is there)."""


def _spec_rule_workers() -> tuple[JsonDict, ...]:
    many = "has(self.workers) && self.workers.replicas > 1"
    reserved = ", ".join(f"'{n}'" for n in RENDEZVOUS_ENV)
    return (
        rule(
            f"!({many}) || !has(self.validation)",
            "spec.validation runs in the single training pod: not with spec.workers.replicas > 1",
        ),
        rule(
            f"!({many}) || !has(self.env) || self.env.all(e, !(e.name in [{reserved}]))",
            f"env names {', '.join(RENDEZVOUS_ENV)} are set by the operator in a distributed run",
        ),
    )


JOBSET_REPLICATED_JOB: Final = "workers"
"""The one replicated Job of a distributed run's JobSet (builders/jobset.py)."""

# A distributed run's Service is named like the run (a DNS-1035 label: starts with a letter) and
# its workers' hostnames must be DNS labels, at most 63 characters, the index being at most
# MAX_WORKERS - 1 = 63 (2 digits):
#   Indexed Job `<run>`, hostname `<run>-<index>`:                     63 - 1 - 2 = 60
#   JobSet `<run>`, child Job `<run>-workers-0` (`<jobset>-<replicatedJob>-<jobIndex>`), hostname
#   `<run>-workers-0-<index>`:                                        63 - 11 - 2 = 50
# A run whose engine is `auto` may become a JobSet, so it gets the JobSet's bound.
HOSTNAME_MAX: Final = 63
_INDEX_DIGITS: Final = len(str(MAX_WORKERS - 1))
MAX_GANG_NAME: Final = HOSTNAME_MAX - len("-") - _INDEX_DIGITS
MAX_JOBSET_NAME: Final = HOSTNAME_MAX - len(f"-{JOBSET_REPLICATED_JOB}-0-") - _INDEX_DIGITS
_GANG = "!has(self.spec) || !has(self.spec.workers) || self.spec.workers.replicas == 1"
DISTRIBUTED_NAME_RULE: Final = rule(
    f"{_GANG} || "
    f"(self.metadata.name.size() <= {MAX_GANG_NAME} && self.metadata.name.matches('^[a-z]'))",
    "a distributed run's name (spec.workers.replicas > 1) must start with a letter and be at "
    f"most {MAX_GANG_NAME} characters: it names the headless Service and the workers' hostnames "
    "<run>-<index>",
)
JOBSET_NAME_RULE: Final = rule(
    f"{_GANG} || (has(self.spec.workers.engine) && "
    f"self.spec.workers.engine == '{WorkersEngine.INDEXED_JOB}') || "
    f"self.metadata.name.size() <= {MAX_JOBSET_NAME}",
    "a distributed run that may run on a JobSet (spec.workers.engine auto or jobSet) must have "
    f"a name of at most {MAX_JOBSET_NAME} characters: its workers' hostnames are "
    f"<run>-{JOBSET_REPLICATED_JOB}-0-<index>, at most {HOSTNAME_MAX} (engine indexedJob: "
    f"{MAX_GANG_NAME})",
)


class Output(ApiModel):
    """Where the run's artifact goes."""

    uri: Uri
    """Where the training code writes the artifact; `{run}` is replaced by the run's name.
    `pvc://<claim>/<path>` is mounted into the pod; for other schemes the code uploads from
    MODELWERK_OUTPUT_DIR itself."""


class TrainingRunSpec(ApiModel):
    """What to run, on what data, with which parameters. Immutable after creation."""

    model_config = ConfigDict(
        json_schema_extra=validations(VALIDATION_NAMES_RULE, *_spec_rule_workers())
    )

    model: DnsLabel | None = None
    """The Model (same namespace) the result is registered to; the run waits, Pending, until it
    exists. Unset: the run only trains and registers nothing."""
    image: Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"^\S+$")]
    """The training image; pin it by digest for a reproducible run (the digest actually run is
    recorded in status.reproducibility.image)."""
    command: Annotated[
        list[Annotated[str, StringConstraints(max_length=1024)]], Field(max_length=32)
    ] = Field(default_factory=list)
    """The training container's command, replacing the image's ENTRYPOINT; empty: the image's."""
    args: Annotated[
        list[Annotated[str, StringConstraints(max_length=4096)]], Field(max_length=64)
    ] = Field(default_factory=list)
    """Arguments to the command, replacing the image's CMD; empty: the image's."""
    env: Annotated[list[EnvVar], Field(max_length=64, json_schema_extra=list_map("name"))] = Field(
        default_factory=list
    )
    """Literal environment variables of the training container, besides the operator's
    MODELWERK_* ones. No valueFrom: storage credentials come from the Model's
    storage.secretRef."""
    hyperparameters: Hyperparameters = Field(default_factory=dict)
    """Name -> value, passed to the code as strings (MODELWERK_HYPERPARAMETERS and the params
    file); their hash is part of the run's lineage."""
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None
    """Random seed handed to the code as MODELWERK_SEED (numpy accepts up to 2^32-1); unset: none
    is passed and the code picks its own."""
    datasets: Annotated[
        list[DatasetRef], Field(max_length=16, json_schema_extra=list_map("name"))
    ] = Field(default_factory=list)
    """Datasets the run reads, handed to the code (MODELWERK_DATASETS and the params file) and
    recorded in the lineage."""
    validation: DataValidation | None = None
    """Expectations on the datasets, checked by an init container (`python -m
    modelwerk.validate` from spec.image) before training; a failed check ends the run Rejected
    (reason DataValidationFailed) without training. Unset: no checks."""
    code: CodeRef | None = None
    """The source the training image was built from; recorded in the lineage only."""
    resources: ResourceRequirements | None = None
    """Requests and limits of the training container; unset: none (a LimitRange may apply)."""
    service_account_name: DnsSubdomain | None = None
    """A ServiceAccount in the run's namespace for the training pod; unset: the namespace's
    `default`, with no API token mounted."""
    backoff_limit: Annotated[int, Field(ge=0, le=10)] = 2
    """Retries of a failed training pod before the run fails (the Job's backoffLimit): 2 means
    up to 3 attempts. With spec.workers.replicas > 1: restarts of the whole gang (a new Job per
    attempt) when any worker fails."""
    active_deadline_seconds: Annotated[int, Field(ge=1, le=30 * 24 * 3600)] | None = None
    """Seconds the run's Job may be active, all attempts together, before it fails (the Job's
    activeDeadlineSeconds, reason DeadlineExceeded); unset: no limit."""
    ttl_seconds_after_finished: Annotated[int, Field(ge=0, le=365 * 24 * 3600)] | None = None
    """Seconds after the run finishes (Succeeded, Failed or Rejected) before it and its Job are
    deleted; unset: kept. A run that registered a version is never deleted: it is its lineage."""
    suspend: bool = False
    """The only field that may change: true suspends the Job (a running training pod is stopped
    and the run shows Pending), false resumes it with a new pod."""
    evaluation: Evaluation | None = None
    """The gate a finished run must pass to be registered; unset: every run whose report is
    valid passes."""
    output: Output | None = None
    """Where the artifact goes; unset: the Model's storage.uri plus `/<run name>` (a run with a
    Model that has no storage then stays Pending, reason NoOutputLocation)."""
    workers: Workers | None = None
    """Train on several pods at once (an Indexed Job gang with a headless Service, all-or-nothing
    restarts); unset: one pod."""
    queue_name: DnsLabel | None = None
    """A Kueue LocalQueue of the run's namespace: the Job (or JobSet) is created suspended with
    the label `kueue.x-k8s.io/queue-name`, and Kueue starts it when the queue admits it; until
    then condition Queued is True with Kueue's reason and message, and the run stays Pending.
    spec.suspend then deactivates the run's Kueue Workload instead of suspending the Job (Kueue
    would resume an admitted Job). Unset: not queued."""

    @model_validator(mode="after")
    def _workers_fit(self) -> TrainingRunSpec:
        if self.workers is None:
            return self
        if self.workers.replicas > 1:
            if self.validation is not None:
                raise ValueError(
                    "spec.validation runs in the single training pod: not with "
                    "spec.workers.replicas > 1"
                )
            clash = sorted({e.name for e in self.env} & set(RENDEZVOUS_ENV))
            if clash:
                raise ValueError(f"env names {clash} are set by the operator in a distributed run")
        return self

    def distributed(self) -> bool:
        return self.workers is not None and self.workers.replicas > 1


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


FINISHED_PHASES: Final = frozenset(
    {TrainingRunPhase.SUCCEEDED, TrainingRunPhase.FAILED, TrainingRunPhase.REJECTED}
)
"""The phases a run never leaves."""


class EvaluationResult(StatusModel):
    """The evaluation gate's verdict on a finished run."""

    metric: str
    """The metric judged (spec.evaluation.metric); empty when the run has no gate."""
    direction: Direction = Direction.MAX
    threshold: float | None = None
    """The threshold applied (spec.evaluation.threshold)."""
    value: float | None = None
    """The run's value of the metric."""
    baseline_value: float | None = None
    """The value of the `mustBeat` alias's version, when there was one."""
    passed: bool = False
    """Whether the run passed; false: the run is Rejected and nothing is registered."""
    message: str | None = None
    """The verdict in words, e.g. `accuracy=0.97 beats production (version 3: 0.95)`."""


class WorkersStatus(StatusModel):
    replicas: int
    """Pods in the gang."""
    attempt: int = 0
    """The gang's attempt, from 0 (MODELWERK_ATTEMPT in its pods): a worker's failure ends the
    attempt, and a new one (a new Job) starts, up to spec.backoffLimit times, once every pod of
    the old one is gone. With a JobSet: its status.restarts."""
    engine: str | None = None
    """`IndexedJob` or `JobSet`: what runs the gang, chosen when the run starts."""


class TrainingRunStatus(StatusModel):
    phase: TrainingRunPhase | None = None
    """`Pending` (waiting for the Model, an output location or the pod; also while suspended),
    `Running`, `Succeeded` (passed the gate, registered if spec.model is set), `Failed` (the Job
    failed or was refused, or the report is missing or invalid) or `Rejected` (refused by the
    data validation or the evaluation gate)."""
    conditions: Conditions = Field(default_factory=list)
    """Types Accepted, JobCreated, Validated, Running, Complete, Failed, Evaluated and
    Registered, and Queued for a run with spec.queueName; their reason and message say what
    blocks or ended the run."""
    observed_generation: int | None = None
    """The metadata.generation this status was computed from."""
    job_name: str | None = None
    """The run's batch/v1 Job, named like the run."""
    start_time: datetime | None = None
    """When the Job started."""
    completion_time: datetime | None = None
    """When the Job completed or failed."""
    attempts: int | None = None
    """Pods the Job has run so far: failed, succeeded and active together."""
    metrics: dict[str, float] = Field(default_factory=dict)
    """Metric name -> value, as the training code reported them."""
    artifact: ArtifactRef | None = None
    """The artifact the training code reported (URI and sha256 digest)."""
    baseline: Baseline | None = None
    """Training-data statistics the code reported, else those of spec.validation's first
    dataset; copied to the registered version."""
    validation: ValidationResult | None = None
    """The data validation's verdict and every check with its observed value."""
    evaluation: EvaluationResult | None = None
    """The evaluation gate's verdict: taken once, and kept when the `mustBeat` alias moves
    later."""
    model_version: Version | None = None
    """The version this run registered in spec.model; absent until it is registered."""
    reproducibility: Lineage | None = None
    """What the run actually ran; becomes the registered version's lineage."""
    workers: WorkersStatus | None = None
    """A distributed run's gang (spec.workers.replicas > 1): its size and current attempt."""


TRAININGRUN_KIND = KindInfo(
    kind="TrainingRun",
    plural="trainingruns",
    short_names=("tr", "mwtr"),
    printer_columns=(
        PrinterColumn("Model", "string", ".spec.model"),
        PrinterColumn("Phase", "string", ".status.phase"),
        PrinterColumn("Metric", "number", ".status.evaluation.value"),
        PrinterColumn("Version", "integer", ".status.modelVersion"),
        PrinterColumn("Workers", "integer", ".spec.workers.replicas", priority=1),
        PrinterColumn("Attempt", "integer", ".status.workers.attempt", priority=1),
        AGE,
    ),
    root_validations=(NAME_FITS_LABEL, DISTRIBUTED_NAME_RULE, JOBSET_NAME_RULE),
)


class TrainingRun(Resource):
    """One reproducible training job; when it passes its evaluation, its artifact becomes the
    next version of `spec.model`."""

    KIND: ClassVar[KindInfo] = TRAININGRUN_KIND

    kind: Literal["TrainingRun"] = "TrainingRun"
    spec: TrainingRunSpec = Field(json_schema_extra=validations(_immutable_spec_rule()))
    status: TrainingRunStatus = Field(default_factory=TrainingRunStatus)
