"""The reference trainer's training data when a run names its own: the dataset called `iris`
as a CSV or Parquet file (or a folder of them) with the iris features under their sanitized
names and `target` as the class name, the layout `sklearn://datasets/iris` has when the data
validator reads it. A retraining run whose template points at a dataset that the data pipeline
keeps current thus trains on what the model now sees, not on the bundled 150 flowers."""

from __future__ import annotations

import csv
import math
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from modelwerk import sdk
from modelwerk.validate import data

TARGET: Final = "target"


def read(uri: str, features: Sequence[str], classes: Sequence[str]) -> tuple[Any, Any]:
    """The feature matrix (rows x `features`, in that order) and the class indices (into
    `classes`) of the dataset at `uri`; any unreadable row is an SdkError naming it."""
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="iris-data-") as scratch:
        try:
            fmt, files = data.data_files(data.local_path(uri, Path(scratch)), None)
        except data.DataError as err:
            raise sdk.SdkError(f"dataset iris ({uri}): {err}") from err
        index = {name: i for i, name in enumerate(classes)}
        x: list[list[float]] = []
        y: list[int] = []
        for where, row in _rows(files, fmt, [*features, TARGET]):
            try:
                values = [float(row[name]) for name in features]
            except (TypeError, ValueError) as err:
                raise sdk.SdkError(f"{where}: not a number: {err}") from err
            if not all(math.isfinite(v) for v in values):
                raise sdk.SdkError(f"{where}: not a finite number: {values}")
            label = str(row[TARGET])
            if label not in index:
                raise sdk.SdkError(f"{where}: target {label!r} is none of {list(classes)}")
            x.append(values)
            y.append(index[label])
    if not x:
        raise sdk.SdkError(f"dataset iris ({uri}) has no rows")
    return np.asarray(x, dtype=float), np.asarray(y, dtype=int)


def _rows(
    files: Sequence[Path], fmt: str, columns: Sequence[str]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, {column: value}) for every row of every file, checking the columns first."""
    for path in files:
        if fmt == "parquet":
            yield from _parquet_rows(path, columns)
            continue
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            _require(path, reader.fieldnames or [], columns)
            for line, row in enumerate(reader, start=2):
                yield f"{path.name} line {line}", row


def _parquet_rows(path: Path, columns: Sequence[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as err:
        raise sdk.SdkError("Parquet data needs pyarrow (the data extra)") from err
    table = pq.read_table(path)
    _require(path, table.column_names, columns)
    for number, row in enumerate(table.select(list(columns)).to_pylist(), start=1):
        yield f"{path.name} row {number}", row


def _require(path: Path, present: Sequence[str], columns: Sequence[str]) -> None:
    if missing := [c for c in columns if c not in present]:
        raise sdk.SdkError(f"{path.name}: missing columns {missing} (has {list(present)})")
