"""Data validation before training: ``python -m modelwerk.validate``.

The operator runs this as the init container `validate` of a TrainingRun's Job when the run
has ``spec.validation``, from the training image, with the same environment, security context
and params file as the training container (datasets on ``pvc://`` mounted read-only). It reads
the expectations from the params file (``MODELWERK_PARAMS_FILE``, else
``MODELWERK_VALIDATION``), checks every named dataset, writes the verdict as its termination
message (``modelwerk.validate.wire``) and prints it on stdout.

Exit codes: 0 every check passed (training starts); 3 a check failed (``EXIT_FAILED``: the
Job's podFailurePolicy fails the Job at once, no retries, and the operator marks the run
Rejected, reason DataValidationFailed); 2 the pod contract is broken (no parameters).

Datasets: ``pvc://claim/path`` and ``file:///path`` (a file or a directory), ``http(s)://`` and
``s3://`` (one file, downloaded to /tmp; s3 needs the ``s3`` extra and the storage Secret's
credentials). CSV needs nothing beyond the standard library; Parquet needs pyarrow (the ``data``
extra): without it a Parquet dataset fails its ``read`` check, saying so.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from modelwerk import sdk
from modelwerk.api.validation import DatasetExpectation, DataValidation
from modelwerk.validate import checks, data, wire

EXIT_PASSED: Final = 0
EXIT_CONTRACT: Final = 2
EXIT_FAILED: Final = 3


def validate(
    spec: DataValidation, datasets: Mapping[str, sdk.Dataset], scratch: Path
) -> wire.ValidationReport:
    """Every check of `spec` against the datasets; the baseline from the first dataset."""
    results: list[checks.Check] = []
    summaries: list[dict[str, Any]] = []
    base = None
    for index, expectation in enumerate(spec.datasets):
        found, summary, stats = _one(expectation, datasets.get(expectation.name), scratch)
        results += found
        summaries.append(summary)
        if index == 0 and stats is not None:
            base = checks.baseline(expectation, stats)
    return wire.build(results, summaries, base)


def _one(
    expectation: DatasetExpectation, dataset: sdk.Dataset | None, scratch: Path
) -> tuple[list[checks.Check], dict[str, Any], data.TableStats | None]:
    name = expectation.name
    summary: dict[str, Any] = {"name": name}
    if dataset is None:
        return [checks.read_failure(name, "not in spec.datasets")], summary, None
    try:
        path = data.local_path(dataset.uri, scratch / name, dict(os.environ))
        fmt, files = data.data_files(path, expectation.format)
        summary["format"] = fmt
        digest_check = None
        if expectation.verify_digest and dataset.digest:
            summary["digest"] = data.digest(path)
            digest_check = checks.digest_check(name, dataset.digest, summary["digest"])
        stats = data.read_stats(files, fmt, [c.name for c in expectation.columns])
    except data.DataError as err:
        return [checks.read_failure(name, str(err))], summary, None
    summary["rows"] = stats.rows
    return checks.dataset_checks(expectation, stats, digest_check), summary, stats


def main() -> int:
    try:
        params = sdk.params()
        spec = DataValidation.model_validate(params.validation or {})
    except (sdk.SdkError, ValidationError) as err:
        print(f"modelwerk.validate: no usable expectations: {err}", file=sys.stderr)
        return EXIT_CONTRACT
    with tempfile.TemporaryDirectory(prefix="modelwerk-validate-") as scratch:
        report = validate(spec, {d.name: d for d in params.datasets}, Path(scratch))
    text = wire.serialize(report)
    target = sdk.termination_message_path()
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as err:
        print(f"modelwerk.validate: cannot write {target}: {err}", file=sys.stderr)
        return EXIT_CONTRACT
    print(text, flush=True)
    if not report.passed:
        failed = checks.first_failures(report.check_list())
        print(f"modelwerk.validate: data validation failed: {failed}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_PASSED
