"""Building blocks shared by the three kinds: the base classes, Kubernetes-shaped string types,
references, conditions, and the helpers that attach CRD extensions to the fields they guard.

Every bound in here does double duty: pydantic enforces it when the operator parses an object,
and crdgen copies it into the CRD so the apiserver enforces it at `kubectl apply`. The CEL cost
estimator also needs them: an unbounded string, list or map anywhere under a rule makes the
apiserver reject the whole CRD.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from modelwerk.constants import API_VERSION

# --- CRD extension helpers ------------------------------------------------------------------

JsonDict = dict[str, Any]


def cel_string(text: str) -> str:
    """A CEL single-quoted string literal (regexes carry backslashes CEL would read as escapes)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def rule(expression: str, message: str, *, field_path: str | None = None) -> JsonDict:
    """One `x-kubernetes-validations` entry; the message is what `kubectl apply` prints."""
    entry: JsonDict = {"rule": expression, "message": message}
    if field_path is not None:
        entry["fieldPath"] = field_path
    return entry


def validations(*rules: JsonDict) -> JsonDict:
    return {"x-kubernetes-validations": list(rules)}


def list_map(*keys: str) -> JsonDict:
    """Lists merged by key under server-side apply, so two managers can own different entries."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


def keys_rule(pattern: str, max_length: int, what: str) -> JsonDict:
    # OpenAPI in a CRD cannot constrain map keys (no propertyNames/patternProperties in a
    # structural schema), so keys are checked by CEL.
    return rule(
        f"self.all(k, size(k) <= {max_length} && k.matches({cel_string(pattern)}))",
        f"{what} must be at most {max_length} characters and match {pattern}",
    )


def key_checker(pattern: str, max_length: int, what: str) -> Callable[[str], str]:
    compiled = re.compile(pattern)

    def check(key: str) -> str:
        if len(key) > max_length or not compiled.fullmatch(key):
            raise ValueError(
                f"{what} {key!r} must be at most {max_length} characters and match {pattern}"
            )
        return key

    return check


# --- patterns and string types --------------------------------------------------------------

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
LABEL_KEY = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_KEY_MAX = 253 + 1 + 63
LABEL_VALUE = r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$"
# Accepted by both Python's re (pydantic) and Go's RE2 (apiserver and CEL).
DIGEST = r"^sha256:[a-f0-9]{64}$"
URI = r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$"
GO_DURATION = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"
# Five cron fields or a predefined @schedule; a wrong field count is a common paste error.
CRON = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|\S+( +\S+){4})$"
# Env var, hyperparameter and metric names: no leading digit, no spaces or quotes to escape.
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
QUANTITY = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

DnsLabel = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=DNS1123_LABEL)]
"""Names that end up in label values and child object names (Models, aliases, datasets)."""
DnsSubdomain = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN)
]
"""Names of ordinary namespaced objects (Secrets, ServiceAccounts)."""
Digest = Annotated[str, StringConstraints(max_length=71, pattern=DIGEST)]
Uri = Annotated[str, StringConstraints(min_length=1, max_length=2048, pattern=URI)]
Duration = Annotated[str, StringConstraints(min_length=2, max_length=32, pattern=GO_DURATION)]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=IDENTIFIER)]
MetricName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=IDENTIFIER)]
Version = Annotated[int, Field(ge=1)]
"""Model version numbers: assigned from 1 up, never reused."""
MetricValue = Annotated[float, Field(allow_inf_nan=False)]

Quantity = Annotated[
    int | Annotated[str, StringConstraints(max_length=64, pattern=QUANTITY)],
    WithJsonSchema({"x-kubernetes-int-or-string": True, "pattern": QUANTITY, "maxLength": 64}),
]
"""A Kubernetes resource quantity, `1`, `500m` or `2Gi`, as in a pod's resources."""

ResourceName = Annotated[
    str, AfterValidator(key_checker(LABEL_KEY, LABEL_KEY_MAX, "resource name"))
]
ResourceList = Annotated[
    dict[ResourceName, Quantity],
    Field(
        max_length=16,
        json_schema_extra=validations(keys_rule(LABEL_KEY, LABEL_KEY_MAX, "resource names")),
    ),
]

LabelKey = Annotated[str, AfterValidator(key_checker(LABEL_KEY, LABEL_KEY_MAX, "label key"))]
LabelValue = Annotated[str, StringConstraints(max_length=63, pattern=LABEL_VALUE)]
Labels = Annotated[
    dict[LabelKey, LabelValue],
    Field(
        max_length=32,
        json_schema_extra=validations(keys_rule(LABEL_KEY, LABEL_KEY_MAX, "label keys")),
    ),
]

AliasName = Annotated[str, AfterValidator(key_checker(DNS1123_LABEL, 63, "alias"))]
Metrics = Annotated[dict[Annotated[str, Field(max_length=128)], MetricValue], Field(max_length=64)]
"""Metric name -> value. Numbers rather than the strings of the first sketch: the evaluation gate,
promotion and printer columns compare them, and the SDK reports floats anyway."""

# --- base classes ---------------------------------------------------------------------------


class ApiModel(BaseModel):
    """Spec side: unknown fields are errors, like the apiserver's strict field validation."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )


class StatusModel(BaseModel):
    """Status side: tolerant, so a status written by an older operator never blocks reconciling."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
        use_attribute_docstrings=True,
    )

    def to_dict(self) -> JsonDict:
        """The JSON form written to the status subresource."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ObjectMeta(BaseModel):
    """The few metadata fields the operator reads; everything else is kept but not typed."""

    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, extra="allow"
    )

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Resource(BaseModel):
    """A whole custom resource as kopf hands it over: apiVersion, kind, metadata, spec, status."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        use_attribute_docstrings=True,
    )

    api_version: str = API_VERSION
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Self:
        """Parse a kopf `body` (or any mapping, e.g. a loaded manifest)."""
        return cls.model_validate(plain(body))


def plain(value: Any) -> Any:
    """Deep-copies a kopf Body (mappings of views) into plain dicts and lists for pydantic."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


# --- enums ----------------------------------------------------------------------------------


class Direction(StrEnum):
    """Whether a larger (`max`) or smaller (`min`) metric value is better."""

    MAX = "max"
    MIN = "min"


ConditionStatus = Literal["True", "False", "Unknown"]

# --- references -----------------------------------------------------------------------------


class SecretRef(ApiModel):
    """A Secret in the object's own namespace: a name, never a namespace."""

    name: DnsSubdomain
    """The Secret's name, in the same namespace as the object that refers to it."""


class ArtifactRef(ApiModel):
    """A stored model artifact."""

    uri: Uri
    """Where the artifact file is. The model server reads `pvc://<claim>/<path>` (mounted
    read-only), `http://`, `https://`, `s3://` (credentials from the Model's storage.secretRef)
    and `file://`; any other scheme fails the serving pod."""
    digest: Digest | None = None
    """`sha256:<hex>` of the artifact file. A Deployment refuses to serve a version without one
    (reason NoDigest), and the model server refuses to start on a file that does not match."""


class DatasetRef(ApiModel):
    """A dataset a run reads, pinned by digest for reproducibility."""

    name: DnsLabel
    """Short name; the training code looks the dataset up by it."""
    uri: Uri
    """Where the dataset is. Handed to the training code (MODELWERK_DATASETS and the params
    file), which reads it; the operator never fetches it (the `validate` init container does,
    when spec.validation names the dataset)."""
    digest: Digest | None = None
    """`sha256:<hex>` of the dataset, recorded in the lineage and handed to the code; verified
    before training when spec.validation names the dataset."""


class CodeRef(ApiModel):
    """The source the training image was built from."""

    repository: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    """URL of the source repository, e.g. `https://github.com/org/repo`; recorded in the lineage,
    never fetched."""
    revision: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    """A commit SHA; a branch or tag is accepted but is not reproducible."""


class ResourceRequirements(ApiModel):
    """Compute resources, as in a container's `resources`."""

    requests: ResourceList | None = None
    """Resources reserved for the container, by resource name (`cpu`, `memory`,
    `nvidia.com/gpu`, ...) as Kubernetes quantities; unset: none (a LimitRange may set them)."""
    limits: ResourceList | None = None
    """Upper bounds for the container, by resource name as Kubernetes quantities: CPU above its
    limit is throttled, memory above it gets the container OOM-killed; unset: none."""


class FeatureStats(ApiModel):
    """A feature's statistics over the training data."""

    mean: MetricValue
    """Mean of the feature over the training data."""
    std: MetricValue
    """Population standard deviation of the feature over the training data; a feature with std 0
    (constant in training) gets no drift alert."""


class Baseline(ApiModel):
    """Per-feature statistics of the training data, the reference for drift detection."""

    features: Annotated[
        dict[Annotated[str, Field(max_length=128)], FeatureStats], Field(max_length=256)
    ] = Field(default_factory=dict)
    """Feature name -> training mean and std. A Deployment serving the version gets a drift alert
    per feature; without features, no drift alerts."""
    feature_order: (
        Annotated[list[Annotated[str, Field(max_length=128)]], Field(max_length=256)] | None
    ) = None
    """The model's input columns in order, handed to the model server as its feature names;
    unset: the names of `features`, sorted (a map's keys lose their order in the apiserver)."""


# --- status pieces --------------------------------------------------------------------------


class Condition(StatusModel):
    """The shape of metav1.Condition, so `kubectl wait --for=condition=…` works."""

    type: Annotated[str, StringConstraints(min_length=1, max_length=316)]
    """The condition's name, e.g. `Ready`; at most one entry per type."""
    status: ConditionStatus
    """`True`, `False` or `Unknown` (the operator cannot tell yet)."""
    reason: Annotated[str, StringConstraints(max_length=1024)] | None = None
    """CamelCase, machine-readable cause of the current status, e.g. `ModelNotFound`."""
    message: Annotated[str, StringConstraints(max_length=32768)] | None = None
    """Human-readable detail of the current status."""
    last_transition_time: datetime | None = None
    """When `status` last changed; a new reason or message with the same status keeps it."""
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The object's metadata.generation when the condition was set; lower than the current
    generation: the latest spec is not reconciled yet."""


Conditions = Annotated[list[Condition], Field(json_schema_extra=list_map("type"))]


class Lineage(StatusModel):
    """What exactly produced a model version: enough to run it again."""

    image: str | None = None
    """The image as run, by digest (from the pod's imageID); spec.image until a training pod
    has reported one."""
    code: CodeRef | None = None
    """The run's spec.code: the source the training image was built from."""
    datasets: Annotated[list[DatasetRef], Field(json_schema_extra=list_map("name"))] = Field(
        default_factory=list
    )
    """The run's spec.datasets, with their URIs and digests."""
    hyperparameters_hash: str | None = None
    """`sha256:<hex>` of the run's spec.hyperparameters as canonical JSON (sorted keys): equal
    hashes, equal hyperparameters."""
    seed: int | None = None
    """The run's spec.seed; absent when it had none."""
    workers: int | None = None
    """The run's spec.workers.replicas when it trained on several pods; absent: one pod."""
    attempt: int | None = None
    """A distributed run's gang attempt (from 0) that produced the result; absent: one pod."""
    engine: str | None = None
    """What ran a distributed run's gang, `IndexedJob` or `JobSet` (its status.workers.engine);
    absent: one pod."""


# --- durations ------------------------------------------------------------------------------

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> timedelta:
    """A Go-style duration (`90s`, `1m30s`, `6h`) as the schema's pattern admits it."""
    if not re.fullmatch(GO_DURATION, text):
        raise ValueError(f"not a duration: {text!r} (expected e.g. 30s, 5m, 1h30m)")
    seconds = sum(
        float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(text)
    )
    return timedelta(seconds=seconds)
