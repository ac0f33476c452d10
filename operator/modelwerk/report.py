"""The training report: what a run hands back to the operator through its termination message.

Shared by the SDK (which writes it) and the operator (which reads it); pure, no I/O.

Wire format, version 1, compact JSON of at most ``constants.REPORT_MAX_BYTES`` bytes (UTF-8)::

    {"v": 1,
     "metrics": {"accuracy": 0.97, "f1_macro": 0.96},
     "artifact": {"uri": "pvc://models/iris/iris-7/model.joblib", "digest": "sha256:<64 hex>"},
     "baseline": {"features": {"sepal_length_cm": {"mean": 5.84, "std": 0.83}, ...}}}

- metric and feature names are identifiers (``[A-Za-z_][A-Za-z0-9_]{0,62}``): they end up in
  Prometheus label values and PromQL expressions, where anything else would need escaping;
- every number is finite (JSON has no NaN; Python's json module would let one through);
- ``baseline`` is optional; the order of ``baseline.features`` is the model's input column order
  (the operator must keep it explicitly: Kubernetes does not preserve JSON key order).
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from modelwerk.constants import REPORT_MAX_BYTES

REPORT_VERSION: Final = 1

# Reasons double as condition reasons on the TrainingRun, hence CamelCase.
REASON_MISSING: Final = "ReportMissing"
REASON_TOO_LARGE: Final = "ReportTooLarge"
REASON_MALFORMED: Final = "ReportMalformed"
REASON_UNSUPPORTED_VERSION: Final = "ReportVersionUnsupported"

IDENTIFIER_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
DIGEST_PATTERN: Final = r"^sha256:[0-9a-f]{64}$"

Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class ReportError(Exception):
    """A report that cannot be used; ``reason`` is meant for a condition's reason field."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class _Strict(BaseModel):
    # strict: "0.97" or true must not quietly become a metric value.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Artifact(_Strict):
    uri: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    digest: Annotated[str, StringConstraints(pattern=DIGEST_PATTERN)]


class FeatureStats(_Strict):
    mean: FiniteFloat
    std: Annotated[float, Field(allow_inf_nan=False, ge=0)]


class Baseline(_Strict):
    features: dict[Identifier, FeatureStats] = Field(default_factory=dict)


class Report(_Strict):
    v: Literal[1] = REPORT_VERSION
    metrics: dict[Identifier, FiniteFloat] = Field(default_factory=dict)
    artifact: Artifact
    baseline: Baseline | None = None

    @property
    def feature_order(self) -> list[str]:
        """Feature names in the model's input column order."""
        return list(self.baseline.features) if self.baseline else []

    def metric_strings(self) -> dict[str, str]:
        """Metrics as the short decimal strings the CRD status carries."""
        return {name: format_number(value) for name, value in self.metrics.items()}


def format_number(value: float) -> str:
    return format(value, ".6g")


def round_number(value: float) -> float:
    """Six significant digits: keeps the report compact and far below the 4 KiB limit."""
    return float(format_number(value))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name} is not allowed")


def parse_report(text: str | None) -> Report:
    """Parse and validate a termination message; raise ReportError for anything unusable."""
    if text is None or not text.strip():
        raise ReportError(REASON_MISSING, "the training container left no termination message")
    size = len(text.encode("utf-8"))
    if size > REPORT_MAX_BYTES:
        raise ReportError(
            REASON_TOO_LARGE, f"report is {size} bytes, the limit is {REPORT_MAX_BYTES}"
        )
    try:
        raw = json.loads(text, parse_constant=_reject_constant)
    except ValueError as err:  # JSONDecodeError is a ValueError, so is our NaN rejection
        raise ReportError(REASON_MALFORMED, f"not valid JSON: {err}") from err
    if not isinstance(raw, dict):
        raise ReportError(REASON_MALFORMED, f"expected a JSON object, got {type(raw).__name__}")
    if "v" not in raw:
        raise ReportError(REASON_MALFORMED, "the report has no version field 'v'")
    if raw["v"] != REPORT_VERSION:
        raise ReportError(
            REASON_UNSUPPORTED_VERSION,
            f"report version {raw['v']!r} is not supported (expected {REPORT_VERSION})",
        )
    try:
        return Report.model_validate(raw)
    except ValidationError as err:
        raise ReportError(REASON_MALFORMED, _summarize(err)) from err


def serialize_report(report: Report) -> str:
    """Compact JSON for the termination message; raise ReportError rather than truncate."""
    text = json.dumps(
        report.model_dump(mode="json", exclude_none=True),
        separators=(",", ":"),
        allow_nan=False,
    )
    size = len(text.encode("utf-8"))
    if size > REPORT_MAX_BYTES:
        raise ReportError(
            REASON_TOO_LARGE,
            f"report is {size} bytes, the limit is {REPORT_MAX_BYTES}: report fewer metrics or "
            "baseline features (a feature costs about 50 bytes)",
        )
    return text


def build_report(
    *,
    metrics: Mapping[str, float],
    artifact_uri: str,
    digest: str,
    baseline: Mapping[str, Mapping[str, float]] | None = None,
) -> Report:
    """Validate and round the parts of a report; raise ReportError(ReportMalformed) if invalid."""
    try:
        raw: dict[str, Any] = {
            "v": REPORT_VERSION,
            "metrics": {name: _rounded(name, value) for name, value in metrics.items()},
            "artifact": {"uri": artifact_uri, "digest": digest},
        }
        if baseline is not None:
            raw["baseline"] = {
                "features": {
                    name: {
                        "mean": _rounded(f"{name}.mean", stats["mean"]),
                        "std": _rounded(f"{name}.std", stats["std"]),
                    }
                    for name, stats in baseline.items()
                }
            }
        return Report.model_validate(raw)
    except KeyError as err:
        raise ReportError(
            REASON_MALFORMED, f"baseline feature stats need 'mean' and 'std', missing {err}"
        ) from err
    except ValidationError as err:
        raise ReportError(REASON_MALFORMED, _summarize(err)) from err


def _rounded(name: str, value: float) -> float:
    # numbers.Real admits numpy scalars; bool is excluded since float(True) would pass.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ReportError(REASON_MALFORMED, f"{name}: expected a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ReportError(REASON_MALFORMED, f"{name}: non-finite value {value!r}")
    return round_number(number)


def _summarize(err: ValidationError) -> str:
    parts = []
    for item in err.errors(include_url=False):
        where = ".".join(str(p) for p in item["loc"]) or "report"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts[:5]) + ("; ..." if len(parts) > 5 else "")


def sanitize_identifier(name: str) -> str:
    """Turn a column name like 'sepal length (cm)' into 'sepal_length_cm'."""
    cleaned = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")
    if not cleaned:
        cleaned = "feature"
    if cleaned[0].isdigit():
        cleaned = f"f_{cleaned}"
    return cleaned[:63]
