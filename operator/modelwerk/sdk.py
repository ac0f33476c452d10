"""What training code imports: its parameters, its datasets, and ``report()`` to hand results back.

The pod contract
----------------
The operator's Job builder gives the training container these environment variables
(``RunParams.to_env()`` renders them):

=============================  ===============================================================
``MODELWERK_RUN``              the TrainingRun's name
``MODELWERK_MODEL``            the Model the result is registered to (absent if none)
``MODELWERK_SEED``             integer seed (absent if the spec has none)
``MODELWERK_HYPERPARAMETERS``  JSON object of strings, e.g. ``{"C": "1.0", "max_iter": "200"}``
``MODELWERK_DATASETS``         JSON list of ``{"name": ..., "uri": ..., "digest": ...}``
``MODELWERK_OUTPUT_URI``       where the artifact is registered, e.g. ``pvc://models/iris/iris-7``
``MODELWERK_OUTPUT_DIR``       the local directory (a mount of that location) to write it into
``MODELWERK_VALIDATION``       spec.validation as JSON, for ``modelwerk.validate`` (absent if none)
``MODELWERK_PARAMS_FILE``      path of a JSON file holding all of the above
=============================  ===============================================================

The params file (``RunParams.to_json()``)::

    {"run": "iris-7", "model": "iris", "seed": 42,
     "hyperparameters": {"C": "1.0"},
     "datasets": [{"name": "train", "uri": "s3://...", "digest": "sha256:..."}],
     "output": {"uri": "pvc://models/iris/iris-7", "dir": "/mnt/output"}}

When ``MODELWERK_PARAMS_FILE`` is set the file is authoritative; otherwise the variables are read.
Unknown keys are ignored so that images built against an older SDK keep working.

The container reports back through its termination message (``constants.TERMINATION_MESSAGE_PATH``,
overridable with ``MODELWERK_TERMINATION_MESSAGE_PATH`` for local runs), the compact JSON described
in ``modelwerk.report``. The Job must keep ``terminationMessagePolicy: File`` (the default):
``FallbackToLogsOnError`` would let a log tail stand in for a missing report. ``report()`` also
prints the report as one line on stdout, so ``kubectl logs`` shows it.

The artifact's URI defaults to ``MODELWERK_OUTPUT_URI`` joined with the artifact's path relative
to ``MODELWERK_OUTPUT_DIR``; outside a Modelwerk run (no variables at all) it is a ``file://`` URI.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelwerk import constants
from modelwerk.report import (
    Report,
    ReportError,
    build_report,
    sanitize_identifier,
    serialize_report,
)

__all__ = [
    "Dataset",
    "ParamsError",
    "Report",
    "ReportError",
    "RunParams",
    "SdkError",
    "baseline_from_matrix",
    "datasets",
    "file_digest",
    "hyperparameter",
    "output_dir",
    "params",
    "report",
    "sanitize_feature_names",
    "seed",
]

ENV_RUN: Final = "MODELWERK_RUN"
ENV_MODEL: Final = "MODELWERK_MODEL"
ENV_SEED: Final = "MODELWERK_SEED"
ENV_HYPERPARAMETERS: Final = "MODELWERK_HYPERPARAMETERS"
ENV_DATASETS: Final = "MODELWERK_DATASETS"
ENV_OUTPUT_URI: Final = "MODELWERK_OUTPUT_URI"
ENV_OUTPUT_DIR: Final = "MODELWERK_OUTPUT_DIR"
ENV_PARAMS_FILE: Final = "MODELWERK_PARAMS_FILE"
ENV_VALIDATION: Final = "MODELWERK_VALIDATION"
ENV_TERMINATION_MESSAGE_PATH: Final = "MODELWERK_TERMINATION_MESSAGE_PATH"


class SdkError(Exception):
    """A misuse of the SDK or a broken pod contract; the message says which."""


class ParamsError(SdkError):
    pass


class _Params(BaseModel):
    # ignore: an old SDK in a user's image must survive fields a newer operator adds.
    model_config = ConfigDict(extra="ignore", frozen=True)


class Dataset(_Params):
    name: str
    uri: str
    digest: str | None = None


class Output(_Params):
    uri: str | None = None
    dir: Path


class RunParams(_Params):
    run: str = Field(min_length=1)
    model: str | None = None
    seed: int | None = None
    hyperparameters: dict[str, str] = Field(default_factory=dict)
    datasets: list[Dataset] = Field(default_factory=list)
    output: Output
    validation: dict[str, Any] | None = None
    """spec.validation as JSON, for `python -m modelwerk.validate`."""

    def to_json(self) -> str:
        """The params file's content."""
        return self.model_dump_json(exclude_none=True)

    def to_env(self) -> dict[str, str]:
        """The environment variables of the contract (the file's path excepted)."""
        env = {
            ENV_RUN: self.run,
            ENV_HYPERPARAMETERS: json.dumps(self.hyperparameters, separators=(",", ":")),
            ENV_DATASETS: json.dumps(
                [d.model_dump(exclude_none=True) for d in self.datasets], separators=(",", ":")
            ),
            ENV_OUTPUT_DIR: str(self.output.dir),
        }
        if self.model is not None:
            env[ENV_MODEL] = self.model
        if self.seed is not None:
            env[ENV_SEED] = str(self.seed)
        if self.output.uri is not None:
            env[ENV_OUTPUT_URI] = self.output.uri
        if self.validation is not None:
            env[ENV_VALIDATION] = json.dumps(self.validation, separators=(",", ":"))
        return env


def params(environ: Mapping[str, str] | None = None) -> RunParams:
    """The run's parameters, from the params file if one is named, else from the environment."""
    env = os.environ if environ is None else environ
    path = env.get(ENV_PARAMS_FILE)
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise ParamsError(f"{ENV_PARAMS_FILE}={path} cannot be read: {err}") from err
        try:
            return RunParams.model_validate_json(text)
        except ValidationError as err:
            raise ParamsError(f"params file {path} is invalid: {err}") from err
    if not env.get(ENV_RUN):
        raise ParamsError(
            f"not running under Modelwerk: neither {ENV_PARAMS_FILE} nor {ENV_RUN} is set "
            f"(for a local run set {ENV_RUN}, {ENV_OUTPUT_DIR} and friends, see modelwerk.sdk)"
        )
    return _params_from_env(env)


def _params_from_env(env: Mapping[str, str]) -> RunParams:
    raw: dict[str, Any] = {
        "run": env[ENV_RUN],
        "model": env.get(ENV_MODEL) or None,
        "hyperparameters": _json_env(env, ENV_HYPERPARAMETERS, {}),
        "datasets": _json_env(env, ENV_DATASETS, []),
        "output": {"uri": env.get(ENV_OUTPUT_URI) or None, "dir": env.get(ENV_OUTPUT_DIR)},
        "validation": _json_env(env, ENV_VALIDATION, None),
    }
    if env.get(ENV_SEED):
        raw["seed"] = env[ENV_SEED]
    try:
        return RunParams.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(f"the {ENV_RUN}... environment is invalid: {err}") from err


def _json_env(env: Mapping[str, str], name: str, default: Any) -> Any:
    text = env.get(name)
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError as err:
        raise ParamsError(f"{name} is not valid JSON: {err}") from err


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"not a boolean: {text!r}")


@overload
def hyperparameter(name: str) -> str: ...
@overload
def hyperparameter[T](name: str, default: T) -> T: ...
@overload
def hyperparameter[T](name: str, default: T | None, type: Callable[[str], T]) -> T: ...
@overload
def hyperparameter[T](name: str, *, type: Callable[[str], T]) -> T: ...


def hyperparameter(
    name: str,
    default: Any = None,
    type: Callable[[str], Any] | None = None,
) -> Any:
    """One hyperparameter, converted by ``type`` (default: the type of ``default``, else str).

    Hyperparameters travel as strings; ``bool`` accepts true/false/1/0/yes/no/on/off.
    Missing without a default is an error, not None, so typos fail the run early.
    """
    values = params().hyperparameters
    if name not in values:
        if default is None:
            raise ParamsError(f"hyperparameter {name!r} is not set and has no default")
        return default
    convert: Callable[[str], Any] = type or (default.__class__ if default is not None else str)
    if convert is bool:
        convert = _parse_bool
    try:
        return convert(values[name])
    except (TypeError, ValueError) as err:
        raise ParamsError(f"hyperparameter {name}={values[name]!r}: {err}") from err


def seed(default: int | None = None) -> int:
    """The run's seed; ``default`` only when the run has none."""
    value = params().seed
    if value is not None:
        return value
    if default is None:
        raise ParamsError("the run has no seed and no default was given")
    return default


def datasets() -> list[Dataset]:
    return list(params().datasets)


def output_dir() -> Path:
    """The directory to write the artifact into; created if missing."""
    directory = params().output.dir
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def file_digest(path: str | Path) -> str:
    """``sha256:<hex>`` of a file, read in chunks (artifacts can be larger than memory)."""
    with open(path, "rb") as handle:
        return "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()


def sanitize_feature_names(names: Sequence[str]) -> list[str]:
    """Label-safe identifiers for feature names; two names that collapse to one are an error."""
    cleaned = [sanitize_identifier(name) for name in names]
    if len(set(cleaned)) != len(cleaned):
        raise SdkError(f"feature names collide after sanitizing: {list(names)} -> {cleaned}")
    return cleaned


def baseline_from_matrix(x: Any, feature_names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per-feature mean and population std of a 2-D array-like (rows are samples).

    Population std (ddof=0) matches what the server's counters give: sqrt(E[x^2] - E[x]^2).
    Names are sanitized; the result keeps the column order.
    """
    import numpy as np  # lazily: the SDK itself must import without the ml extra

    matrix = np.asarray(x, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise SdkError(f"expected a non-empty 2-D matrix, got shape {matrix.shape}")
    names = sanitize_feature_names(feature_names)
    if len(names) != matrix.shape[1]:
        raise SdkError(f"{len(names)} feature names for {matrix.shape[1]} columns")
    means = matrix.mean(axis=0)
    stds = matrix.std(axis=0)
    return {
        name: {"mean": float(mean), "std": float(std)}
        for name, mean, std in zip(names, means, stds, strict=True)
    }


def termination_message_path() -> Path:
    return Path(os.environ.get(ENV_TERMINATION_MESSAGE_PATH) or constants.TERMINATION_MESSAGE_PATH)


def report(
    metrics: Mapping[str, float],
    artifact: str | Path,
    baseline: Mapping[str, Mapping[str, float]] | None = None,
    artifact_uri: str | None = None,
) -> Report:
    """Hash the artifact, write the report as the termination message and print it.

    Raises ReportError (reason ReportMalformed or ReportTooLarge) rather than send a report the
    operator would reject or one cut short; nothing is written in that case.
    """
    path = Path(artifact)
    if not path.is_file():
        raise SdkError(f"artifact {path} is not a file (a directory cannot be digested)")
    uri = artifact_uri or _artifact_uri(path)
    built = build_report(
        metrics=metrics, artifact_uri=uri, digest=file_digest(path), baseline=baseline
    )
    text = serialize_report(built)
    target = termination_message_path()
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as err:
        raise SdkError(
            f"cannot write the report to {target}: {err} "
            f"(outside a pod, set {ENV_TERMINATION_MESSAGE_PATH})"
        ) from err
    print(text, file=sys.stdout, flush=True)
    return built


def _artifact_uri(path: Path) -> str:
    env = os.environ
    if not env.get(ENV_PARAMS_FILE) and not env.get(ENV_RUN):
        return path.resolve().as_uri()  # a local run outside Modelwerk
    run = params()
    if run.output.uri is None:
        return path.resolve().as_uri()
    try:
        relative = path.resolve().relative_to(run.output.dir.resolve())
    except ValueError as err:
        raise SdkError(
            f"artifact {path} is outside the output directory {run.output.dir}: write it there "
            "or pass artifact_uri"
        ) from err
    return f"{run.output.uri.rstrip('/')}/{relative.as_posix()}"
