"""The validation report: what the `validate` init container hands the operator through its
termination message. Pure; shared by the validator (writes) and the operator (reads).

Compact JSON of at most ``constants.REPORT_MAX_BYTES`` bytes::

    {"v": 1, "kind": "validation", "passed": false,
     "datasets": [{"name": "train", "format": "csv", "digest": "sha256:...", "rows": 150}],
     "checks": [["train/digest", 1, "sha256:..."], ["train/rows", 0, "12"], ...],
     "omitted": 0,
     "baseline": {"sepal_length": {"mean": 5.84, "std": 0.83}, ...}}

A check is `[name, passed (0/1), observed]`, in spec order. When the whole does not fit, the
report sheds, in this order: the observed values of passing checks, passing checks (counted in
`omitted`), the baseline, and finally failing checks from the end; what is left still says
which checks failed first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelwerk.constants import REPORT_MAX_BYTES
from modelwerk.report import round_number
from modelwerk.validate.checks import Check

KIND: Final = "validation"
OBSERVED_MAX = 200


class WireError(ValueError):
    """A termination message that is not a validation report."""


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class DatasetSummary(_Wire):
    name: str
    format: str | None = None
    digest: str | None = None
    rows: int | None = None


class ValidationReport(_Wire):
    v: Literal[1] = 1
    kind: Literal["validation"] = KIND
    passed: bool
    datasets: list[DatasetSummary] = Field(default_factory=list)
    checks: list[tuple[str, Annotated[int, Field(ge=0, le=1)], str | None]] = Field(
        default_factory=list
    )
    omitted: int = 0
    baseline: dict[str, dict[str, float]] | None = None

    def check_list(self) -> list[Check]:
        return [Check(name, bool(ok), observed or "") for name, ok, observed in self.checks]


def build(
    checks: Sequence[Check],
    datasets: Sequence[Mapping[str, Any]],
    baseline: Mapping[str, Mapping[str, float]] | None,
) -> ValidationReport:
    return ValidationReport(
        passed=all(c.passed for c in checks),
        datasets=[DatasetSummary.model_validate(d) for d in datasets],
        checks=[(c.name, int(c.passed), c.observed[:OBSERVED_MAX]) for c in checks],
        baseline=(
            {
                name: {"mean": round_number(s["mean"]), "std": round_number(s["std"])}
                for name, s in baseline.items()
            }
            if baseline
            else None
        ),
    )


def _text(report: ValidationReport) -> str:
    return json.dumps(
        report.model_dump(mode="json", exclude_none=True), separators=(",", ":"), allow_nan=False
    )


def serialize(report: ValidationReport, limit: int = REPORT_MAX_BYTES) -> str:
    """The termination message: the whole report if it fits, else shortened (see above)."""
    text = _text(report)
    if len(text.encode()) <= limit:
        return text
    checks = [(n, ok, None if ok else obs) for n, ok, obs in report.checks]
    report = report.model_copy(update={"checks": checks})
    text = _text(report)
    if len(text.encode()) <= limit:
        return text
    failing = [c for c in report.checks if not c[1]]
    report = report.model_copy(
        update={"checks": failing, "omitted": report.omitted + len(checks) - len(failing)}
    )
    for candidate in (report, report.model_copy(update={"baseline": None})):
        text = _text(candidate)
        if len(text.encode()) <= limit:
            return text
    report = report.model_copy(update={"baseline": None})
    while report.checks and len(_text(report).encode()) > limit:
        report = report.model_copy(update={"checks": report.checks[:-1]})
    return _text(report)


def parse(text: str | None) -> ValidationReport:
    if not text or not text.strip():
        raise WireError("the validate container left no termination message")
    try:
        raw = json.loads(text)
    except ValueError as err:
        raise WireError(f"not valid JSON: {err}") from err
    if not isinstance(raw, dict) or raw.get("kind") != KIND:
        raise WireError("not a validation report")
    try:
        return ValidationReport.model_validate(raw)
    except ValidationError as err:
        raise WireError(str(err)[:512]) from err
