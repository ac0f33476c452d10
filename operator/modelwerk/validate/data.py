"""Reading datasets for validation: where they are, their digest, and per-column statistics.

CSV is read with the standard library's `csv` module (no dependency: any trainer image can
validate CSV); Parquet needs pyarrow (the `data` extra), read batch by batch so memory stays
flat. Both feed the same streaming accumulators, so a column means the same in either format.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import re
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelwerk.serving import artifacts

_INT = re.compile(r"^[+-]?[0-9]+$")
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
_BATCH_ROWS = 65536
EXTENSIONS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


class DataError(Exception):
    """The dataset cannot be read; the message says why (it becomes the observed value)."""


# --- where the data is --------------------------------------------------------------------


def local_path(uri: str, scratch: Path, env: dict[str, str] | None = None) -> Path:
    """A local file or directory holding the dataset at `uri`. `pvc://` is mounted (read-only)
    by the Job, `file://` is in the image; http(s):// and s3:// (one file) are downloaded."""
    parsed = urllib.parse.urlsplit(uri)
    scheme = parsed.scheme.lower()
    if scheme == "sklearn":
        return sklearn_csv(parsed.path.rsplit("/", 1)[-1], scratch)
    if scheme in ("pvc", "file") or (scheme == "" and uri.startswith("/")):
        try:
            if scheme == "pvc":
                path = artifacts.pvc_path(uri)
            else:
                path = Path(urllib.request.url2pathname(parsed.path))
        except artifacts.ArtifactError as err:
            raise DataError(str(err)) from err
        if not path.exists():
            raise DataError(f"{path} does not exist")
        return path
    try:
        return artifacts.fetch_artifact(
            uri, scratch, s3_credentials=artifacts.S3Credentials.from_env(env)
        )
    except artifacts.ArtifactError as err:
        raise DataError(str(err)) from err


SKLEARN_DATASETS = frozenset({"iris", "wine", "breast_cancer"})


def sklearn_csv(name: str, scratch: Path) -> Path:
    """`sklearn://datasets/<name>`, the data bundled with scikit-learn that the reference
    trainer reads, written as CSV: the features under their sanitized names (as the trainer's
    baseline names them) and `target` as the class name. Deterministic, so it has a stable
    digest."""
    if name not in SKLEARN_DATASETS:
        raise DataError(f"sklearn://datasets/{name}: only {sorted(SKLEARN_DATASETS)}")
    try:
        from sklearn import datasets as bundled
    except ImportError as err:
        raise DataError("sklearn:// needs scikit-learn (the ml extra)") from err
    from modelwerk.report import sanitize_identifier

    loaded = getattr(bundled, f"load_{name}")()
    scratch.mkdir(parents=True, exist_ok=True)
    path = scratch / f"{name}.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([*(sanitize_identifier(f) for f in loaded.feature_names), "target"])
        for row, target in zip(loaded.data, loaded.target, strict=True):
            writer.writerow([*(repr(float(v)) for v in row), loaded.target_names[target]])
    return path


def data_files(path: Path, fmt: str | None) -> tuple[str, list[Path]]:
    """The format and the files to read: the file itself, or a directory's files of the
    format (recursively, sorted by relative path)."""
    if path.is_file():
        found = fmt or EXTENSIONS.get(path.suffix.lower())
        if found is None:
            raise DataError(f"cannot tell the format of {path.name}: set format (csv|parquet)")
        return found, [path]
    files = regular_files(path)
    if fmt is None:
        kinds = {EXTENSIONS[f.suffix.lower()] for f in files if f.suffix.lower() in EXTENSIONS}
        if len(kinds) != 1:
            raise DataError(f"cannot tell the format of directory {path}: set format")
        fmt = kinds.pop()
    chosen = [f for f in files if EXTENSIONS.get(f.suffix.lower()) == fmt]
    if not chosen:
        raise DataError(f"directory {path} holds no {fmt} files")
    return fmt, chosen


def regular_files(directory: Path) -> list[Path]:
    """Every regular file below `directory` (symlinks excluded), sorted by POSIX relative
    path as bytes: the order `LC_ALL=C sort` gives."""
    found = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in files:
            candidate = Path(root, name)
            if candidate.is_file() and not candidate.is_symlink():
                found.append(candidate)
    return sorted(found, key=lambda p: p.relative_to(directory).as_posix().encode())


def digest(path: Path) -> str:
    """`sha256:` of a file; for a directory, of its manifest: `<hex>  <relative path>\\n` per
    regular file in `regular_files` order, which is what
    `find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum` prints."""
    if path.is_file():
        return artifacts.file_digest(path)
    manifest = hashlib.sha256()
    for file in regular_files(path):
        hexdigest = artifacts.file_digest(file).removeprefix("sha256:")
        manifest.update(f"{hexdigest}  {file.relative_to(path).as_posix()}\n".encode())
    return "sha256:" + manifest.hexdigest()


# --- statistics ---------------------------------------------------------------------------


@dataclass
class ColumnStats:
    """Streaming statistics of one column; `add_text` for CSV cells, `add_value` for typed
    (Parquet) values."""

    name: str
    present: bool = True
    arrow_type: str | None = None
    """For Parquet: the schema's type mapped to int/float/string/bool/other."""
    nulls: int = 0
    values: int = 0
    not_int: int = 0
    not_float: int = 0
    not_bool: int = 0
    literal_bool: bool = True
    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    min: float | None = None
    max: float | None = None
    categories: Counter[str] = field(default_factory=Counter)
    category_cap: int = 256
    """Distinct texts kept; beyond it, `overflow` counts the values not kept."""
    overflow: int = 0

    def add_text(self, cell: str | None) -> None:
        text = (cell or "").strip()
        if not text:
            self.nulls += 1
            return
        number: float | None
        try:
            number = float(text)
        except ValueError:
            number = None
        if number is not None and math.isnan(number):
            self.nulls += 1
            return
        self.values += 1
        if not _INT.match(text):
            self.not_int += 1
        lowered = text.lower()
        if lowered not in _TRUE and lowered not in _FALSE:
            self.not_bool += 1
        if lowered not in ("true", "false"):
            self.literal_bool = False
        if number is None or math.isinf(number):
            self.not_float += 1
        else:
            self._number(number)
        self._category(text)

    def add_value(self, value: Any) -> None:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            self.nulls += 1
            return
        self.values += 1
        if isinstance(value, bool):
            self._category("true" if value else "false")
            return
        if isinstance(value, int | float) and math.isfinite(value):
            self._number(float(value))
        self._category(str(value))

    def _number(self, number: float) -> None:
        # Welford's update: a stable mean and variance in one pass.
        self.count += 1
        delta = number - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (number - self.mean)
        self.min = number if self.min is None else min(self.min, number)
        self.max = number if self.max is None else max(self.max, number)

    def _category(self, text: str) -> None:
        if text in self.categories or len(self.categories) < self.category_cap:
            self.categories[text] += 1
        else:
            self.overflow += 1

    @property
    def std(self) -> float:
        """Population standard deviation (as the SDK's baseline and the drift alert use)."""
        return math.sqrt(self.m2 / self.count) if self.count else 0.0

    @property
    def observed_type(self) -> str | None:
        """The narrowest type every non-null value fits; None without values."""
        if self.arrow_type is not None:
            return self.arrow_type
        if not self.values:
            return None
        if not self.not_int:
            return "int"
        if not self.not_float:
            return "float"
        if self.literal_bool:
            return "bool"
        return "string"

    def fits(self, expected: str) -> bool:
        if self.arrow_type is not None:
            return self.arrow_type == expected or (expected == "float" and self.arrow_type == "int")
        bad = {"int": self.not_int, "float": self.not_float, "bool": self.not_bool}
        return bad.get(expected, 0) == 0


@dataclass
class TableStats:
    format: str
    rows: int
    columns: dict[str, ColumnStats]


def read_stats(files: Sequence[Path], fmt: str, columns: Iterable[str]) -> TableStats:
    wanted = list(dict.fromkeys(columns))
    if fmt == "csv":
        return _csv_stats(files, wanted)
    return _parquet_stats(files, wanted)


def _csv_stats(files: Sequence[Path], wanted: list[str]) -> TableStats:
    stats = {name: ColumnStats(name) for name in wanted}
    rows = 0
    seen: set[str] | None = None
    for file in files:
        try:
            with open(file, newline="", encoding="utf-8-sig") as handle:
                reader = csv.reader(handle)
                header = next(reader, None)
                if header is None:
                    continue
                header = [h.strip() for h in header]
                seen = set(header) if seen is None else seen & set(header)
                index = {name: header.index(name) for name in wanted if name in header}
                for row in reader:
                    if not row:
                        continue  # a blank line is no row
                    rows += 1
                    for name, i in index.items():
                        stats[name].add_text(row[i] if i < len(row) else None)
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise DataError(f"cannot read {file.name} as CSV: {err}") from err
    for name, column in stats.items():
        column.present = seen is not None and name in seen
    return TableStats("csv", rows, stats)


def _arrow_kind(arrow_type: Any) -> str:
    import pyarrow as pa

    types = pa.types
    if types.is_boolean(arrow_type):
        return "bool"
    if types.is_integer(arrow_type):
        return "int"
    if types.is_floating(arrow_type) or types.is_decimal(arrow_type):
        return "float"
    if types.is_string(arrow_type) or types.is_large_string(arrow_type):
        return "string"
    if types.is_dictionary(arrow_type):
        return _arrow_kind(arrow_type.value_type)
    return str(arrow_type)


def _parquet_stats(files: Sequence[Path], wanted: list[str]) -> TableStats:
    try:
        import pyarrow.parquet as pq
    except ImportError as err:
        raise DataError(
            "Parquet needs pyarrow, which this image lacks: install modelwerk[data]"
        ) from err
    stats = {name: ColumnStats(name) for name in wanted}
    rows = 0
    seen: set[str] | None = None
    for file in files:
        try:
            parquet = pq.ParquetFile(file)
            schema = parquet.schema_arrow
            names = set(schema.names)
            seen = names if seen is None else seen & names
            present = [name for name in wanted if name in names]
            for name in present:
                stats[name].arrow_type = _arrow_kind(schema.field(name).type)
            rows += parquet.metadata.num_rows
            for batch in _batches(parquet, present):
                for name in present:
                    column = stats[name]
                    for value in batch.column(name).to_pylist():
                        column.add_value(value)
        except (OSError, ValueError) as err:  # ArrowInvalid is a ValueError
            raise DataError(f"cannot read {file.name} as Parquet: {err}") from err
    for name, column in stats.items():
        column.present = seen is not None and name in seen
    return TableStats("parquet", rows, stats)


def _batches(parquet: Any, columns: list[str]) -> Iterator[Any]:
    if not columns:
        return iter(())
    return iter(parquet.iter_batches(batch_size=_BATCH_ROWS, columns=columns))
