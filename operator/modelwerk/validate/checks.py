"""The checks: a dataset's statistics against its expectations. Pure; no I/O.

Each check is named `<dataset>/<check>` or `<dataset>/<column>/<check>` and carries what was
observed, so a failure says what the data looked like, not only that it was wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from modelwerk.api.validation import ColumnExpectation, DatasetExpectation, RowCount
from modelwerk.report import format_number, sanitize_identifier
from modelwerk.validate.data import ColumnStats, TableStats

# Values outside `allowed` quoted in the observed text, most frequent first.
OUTSIDE_SHOWN = 3


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    observed: str


def bounds_text(low: float | None, high: float | None) -> str:
    """What a min/max pair asks, as the status shows it: `>= 1`, `<= 9`, `1..9`."""
    if low is not None and high is not None:
        return f"{format_number(low)}..{format_number(high)}"
    if low is not None:
        return f">= {format_number(low)}"
    return f"<= {format_number(high)}" if high is not None else "any"


def digest_check(name: str, expected: str, observed: str) -> Check:
    return Check(f"{name}/digest", observed == expected.lower(), observed)


def read_failure(name: str, error: str) -> Check:
    return Check(f"{name}/read", False, error)


def row_check(name: str, rows: RowCount, observed: int) -> Check:
    passed = (rows.min is None or observed >= rows.min) and (
        rows.max is None or observed <= rows.max
    )
    return Check(f"{name}/rows", passed, str(observed))


def dataset_checks(
    expectation: DatasetExpectation, stats: TableStats, digest: Check | None
) -> list[Check]:
    name = expectation.name
    checks = [digest] if digest is not None else []
    if expectation.rows is not None:
        checks.append(row_check(name, expectation.rows, stats.rows))
    for column in expectation.columns:
        checks += column_checks(f"{name}/{column.name}", column, stats.columns[column.name])
    return checks


def column_checks(prefix: str, expect: ColumnExpectation, stats: ColumnStats) -> list[Check]:
    if not stats.present:
        return [Check(f"{prefix}/present", not expect.required, "missing")]
    checks = [Check(f"{prefix}/present", True, "present")]
    if expect.type is not None:
        observed = stats.observed_type or "no values"
        checks.append(Check(f"{prefix}/type", stats.fits(str(expect.type)), observed))
    non_numeric = stats.values - stats.count
    if expect.min is not None:
        checks.append(_range(f"{prefix}/min", stats.min, non_numeric, low=expect.min))
    if expect.max is not None:
        checks.append(_range(f"{prefix}/max", stats.max, non_numeric, high=expect.max))
    if expect.allowed is not None:
        checks.append(_allowed(f"{prefix}/allowed", stats, frozenset(expect.allowed)))
    if expect.max_null_fraction is not None:
        total = stats.nulls + stats.values
        fraction = stats.nulls / total if total else 0.0
        checks.append(
            Check(
                f"{prefix}/nulls",
                fraction <= expect.max_null_fraction,
                f"{format_number(fraction)} ({stats.nulls} of {total})",
            )
        )
    return checks


def _range(
    name: str,
    value: float | None,
    non_numeric: int,
    *,
    low: float | None = None,
    high: float | None = None,
) -> Check:
    if non_numeric:
        return Check(name, False, f"{non_numeric} non-numeric values")
    if value is None:
        return Check(name, True, "no values")
    passed = (low is None or value >= low) and (high is None or value <= high)
    return Check(name, passed, format_number(value))


def _allowed(name: str, stats: ColumnStats, allowed: frozenset[str]) -> Check:
    outside = [(text, n) for text, n in stats.categories.most_common() if text not in allowed]
    unknown = stats.overflow  # values past the category cap were not kept: they may be outside
    if not outside and not unknown:
        return Check(name, True, f"{len(stats.categories)} categories")
    count = sum(n for _, n in outside) + unknown
    shown = ", ".join(f"{text!r} ({n})" for text, n in outside[:OUTSIDE_SHOWN])
    more = "" if len(outside) <= OUTSIDE_SHOWN else ", ..."
    return Check(name, False, f"{count} values outside: {shown}{more}".rstrip(": "))


def baseline(
    expectation: DatasetExpectation, stats: TableStats
) -> dict[str, dict[str, float]] | None:
    """Mean and population std of the dataset's numeric feature columns, in declared order,
    under their sanitized names (a name that collides with an earlier one is left out)."""
    features: dict[str, dict[str, float]] = {}
    for column in expectation.columns:
        observed = stats.columns[column.name]
        numeric = column.type in (None, "int", "float") and observed.values == observed.count
        if not column.feature or not observed.present or not observed.count or not numeric:
            continue
        name = sanitize_identifier(column.name)
        if name not in features:
            features[name] = {"mean": observed.mean, "std": observed.std}
    return features or None


def first_failures(checks: Sequence[Check], limit: int = 3) -> str:
    failed = [c for c in checks if not c.passed]
    text = "; ".join(f"{c.name} (observed {c.observed})" for c in failed[:limit])
    return text + (f"; and {len(failed) - limit} more" if len(failed) > limit else "")
