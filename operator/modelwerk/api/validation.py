"""Data validation: what a TrainingRun expects of its datasets, checked before it trains.

`spec.validation` names datasets of `spec.datasets` and says what must hold for each (digest,
row count, columns with type, range, allowed values, null fraction). The Job then gets an init
container running `python -m modelwerk.validate` from the training image; its verdict comes
back in the init container's termination message and lands in `status.validation`.

Bounds are tight on purpose: the TrainingRun's immutability rule compares the whole spec in
one CEL expression, and the apiserver refuses a CRD whose rules could cost too much.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from modelwerk.api.common import (
    ApiModel,
    DnsLabel,
    MetricValue,
    StatusModel,
    list_map,
    rule,
    validations,
)

MAX_DATASETS = 8
MAX_COLUMNS = 64
MAX_ALLOWED = 32


class ColumnType(StrEnum):
    """A column's type as the validator sees it: CSV cells are parsed, Parquet types mapped
    (any integer type is `int`, float/double/decimal `float`, string `string`, bool `bool`)."""

    INT = "int"
    FLOAT = "float"
    STRING = "string"
    BOOL = "bool"


class DataFormat(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"


_RANGE_RULE = rule(
    "!has(self.min) || !has(self.max) || self.min <= self.max", "min must not exceed max"
)


class ColumnExpectation(ApiModel):
    """What must hold for one column."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    """The column's name as in the CSV header or the Parquet schema."""
    type: ColumnType | None = None
    """`int`, `float` (an int column passes too), `string` or `bool`; unset: not checked. In
    CSV every non-empty cell must parse as the type."""
    required: bool = True
    """The column must exist; false: a missing column passes and its other checks are skipped."""
    min: MetricValue | None = None
    """Smallest allowed value (numeric columns; null cells are not compared)."""
    max: MetricValue | None = None
    """Largest allowed value (numeric columns; null cells are not compared)."""
    allowed: (
        Annotated[
            list[Annotated[str, StringConstraints(max_length=64)]],
            Field(min_length=1, max_length=MAX_ALLOWED),
        ]
        | None
    ) = None
    """The categories the column may hold, compared as text (a CSV cell as written; a Parquet
    value as its string form, booleans as `true`/`false`); null cells are not compared."""
    max_null_fraction: Annotated[float, Field(ge=0, le=1)] | None = None
    """Largest allowed fraction of null cells (empty in CSV, NaN counts as null), 0..1; unset:
    any."""
    feature: bool = True
    """Whether a numeric column is a model input, counted into the baseline the validator
    reports (set false for labels and ids)."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            _RANGE_RULE,
            rule(
                "!has(self.type) || self.type == 'int' || self.type == 'float'"
                " || (!has(self.min) && !has(self.max))",
                "min and max apply to int and float columns only",
            ),
        )
    )

    @model_validator(mode="after")
    def _consistent(self) -> ColumnExpectation:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"column {self.name}: min {self.min} exceeds max {self.max}")
        numeric = self.type in (None, ColumnType.INT, ColumnType.FLOAT)
        if not numeric and (self.min is not None or self.max is not None):
            raise ValueError(f"column {self.name}: min and max apply to int and float columns")
        return self


class RowCount(ApiModel):
    """Bounds on a dataset's number of data rows (a CSV header is not a row)."""

    min: Annotated[int, Field(ge=0)] | None = None
    """Fewest data rows allowed; unset: no lower bound."""
    max: Annotated[int, Field(ge=0)] | None = None
    """Most data rows allowed; unset: no upper bound."""

    model_config = ConfigDict(json_schema_extra=validations(_RANGE_RULE))

    @model_validator(mode="after")
    def _ordered(self) -> RowCount:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"rows: min {self.min} exceeds max {self.max}")
        return self


class DatasetExpectation(ApiModel):
    """The checks for one of spec.datasets."""

    name: DnsLabel
    """The dataset, by its name in spec.datasets."""
    format: DataFormat | None = None
    """`csv` or `parquet`; unset: from the file extension (`.csv`, `.parquet`, `.pq`). A
    directory is read as all its files of that format, in path order."""
    verify_digest: bool = True
    """Check the dataset's spec.datasets digest, when it has one: `sha256:` of the file, or
    for a directory of the manifest `<sha256 hex>  <relative path>` per regular file, sorted
    by path, one per line (what `sha256sum` prints, run from the directory)."""
    rows: RowCount | None = None
    """Bounds on the number of data rows; unset: any."""
    columns: Annotated[
        list[ColumnExpectation],
        Field(max_length=MAX_COLUMNS, json_schema_extra=list_map("name")),
    ] = Field(default_factory=list)
    """Column expectations; columns not listed are not checked. The numeric columns listed
    (minus `feature: false`) of the first dataset make the baseline."""


class DataValidation(ApiModel):
    """Expectations on the run's datasets, checked in the run's pod before training starts."""

    datasets: Annotated[
        list[DatasetExpectation],
        Field(min_length=1, max_length=MAX_DATASETS, json_schema_extra=list_map("name")),
    ]
    """One entry per dataset to check; each must name an entry of spec.datasets."""


VALIDATION_NAMES_RULE = rule(
    "!has(self.validation) || self.validation.datasets.all(v,"
    " has(self.datasets) && self.datasets.exists(d, d.name == v.name))",
    "spec.validation.datasets must name datasets of spec.datasets",
)


# --- status -------------------------------------------------------------------------------


class ValidationCheck(StatusModel):
    """One check and its outcome."""

    name: str
    """`<dataset>/<check>` or `<dataset>/<column>/<check>`, e.g. `train/rows`,
    `train/digest`, `train/petal_width/max`."""
    passed: bool
    """Whether the data met the expectation."""
    observed: str | None = None
    """What the validator found, e.g. `150` rows, the digest, `max 9.7`."""
    expected: str | None = None
    """What the spec asks, e.g. `>= 100`."""


class ObservedDataset(StatusModel):
    """A dataset as the validator read it."""

    name: str
    """The dataset's name in spec.datasets."""
    format: str | None = None
    """`csv` or `parquet`, as read."""
    digest: str | None = None
    """`sha256:` of the data as read (see spec.validation.datasets[].verifyDigest); only when
    the dataset declares a digest to verify."""
    rows: int | None = None
    """Data rows read."""


class ValidationResult(StatusModel):
    """The data validation's verdict, from the init container's report."""

    passed: bool
    """False: the run is Rejected (reason DataValidationFailed) and never trains."""
    message: str | None = None
    """The verdict in words, naming the first failing checks."""
    datasets: list[ObservedDataset] = Field(default_factory=list)
    """Each dataset as the validator read it."""
    checks: list[ValidationCheck] = Field(default_factory=list)
    """Every check, in spec order (failing ones only when the report had to be shortened)."""
    omitted: int | None = None
    """Passing checks left out of the report to fit the 4 KiB termination message."""
