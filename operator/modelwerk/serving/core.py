"""The model core both front ends share: load a verified sklearn artifact, validate, predict."""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from modelwerk.report import sanitize_identifier
from modelwerk.serving.artifacts import (
    ArtifactError,
    S3Credentials,
    fetch_artifact,
    verify_digest,
)
from modelwerk.serving.config import ConfigError, ServerConfig

log = logging.getLogger(__name__)


class InvalidInput(ValueError):
    """The request is wrong (HTTP 400); the message tells the client what to fix."""


@dataclass(frozen=True)
class FeatureTotals:
    """One request's contribution to a feature's counters.

    The sum is split by sign because a counter must never decrease: Prometheus' rate() would
    read a decrease as a restart.
    """

    count: float
    positive: float  # sum of the positive values
    negative: float  # sum of the magnitudes of the negative values
    squares: float


@dataclass(frozen=True)
class Inference:
    labels: list[Any]
    features: dict[str, FeatureTotals]


class ModelCore:
    def __init__(
        self,
        estimator: Any,
        *,
        name: str,
        version: str,
        digest: str,
        feature_names: Sequence[str] | None = None,
        max_instances: int = 10_000,
    ) -> None:
        if not callable(getattr(estimator, "predict", None)):
            raise ArtifactError(f"the artifact is a {type(estimator).__name__}, not a model")
        self.estimator = estimator
        self.name = name
        self.version = version
        self.digest = digest
        self.max_instances = max_instances
        expected: int | None = getattr(estimator, "n_features_in_", None)
        names = _feature_names(estimator, feature_names, expected)
        self.feature_names: tuple[str, ...] | None = names
        self.n_features: int | None = len(names) if names else expected
        self.artifact_path: Path | None = None
        """The verified local file it was loaded from (set by load_core)."""

    @property
    def classes(self) -> list[Any] | None:
        classes = getattr(self.estimator, "classes_", None)
        return None if classes is None else list(np.asarray(classes).tolist())

    def validate(self, instances: object) -> npt.NDArray[np.float64]:
        """The instances as a float matrix, or InvalidInput saying what is wrong."""
        if not isinstance(instances, list) or not instances:
            raise InvalidInput("'instances' must be a non-empty list of rows")
        if len(instances) > self.max_instances:
            raise InvalidInput(
                f"{len(instances)} instances exceed the limit of {self.max_instances} per request"
            )
        width = self.n_features or (len(instances[0]) if isinstance(instances[0], list) else 0)
        for index, row in enumerate(instances):
            if not isinstance(row, list) or len(row) != width:
                raise InvalidInput(
                    f"instance {index} must be a list of {width} numbers"
                    + (f" ({', '.join(self.feature_names)})" if self.feature_names else "")
                )
            for value in row:
                # bool is an int in Python but never a feature value in JSON.
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise InvalidInput(f"instance {index} has a non-numeric value {value!r}")
                if not _finite(value):
                    raise InvalidInput(f"instance {index} has a non-finite value {value!r}")
        if width == 0:
            raise InvalidInput("instances must have at least one feature")
        return np.asarray(instances, dtype=float)

    def infer(self, instances: object) -> Inference:
        return self.infer_matrix(self.validate(instances))

    def infer_matrix(self, matrix: npt.NDArray[np.float64]) -> Inference:
        """Predict for an already validated float matrix (rows x n_features)."""
        labels = np.asarray(self.estimator.predict(matrix)).tolist()
        return Inference(labels=labels, features=self._totals(matrix))

    def predict(self, instances: object) -> list[Any]:
        return self.infer(instances).labels

    def predict_proba(self, instances: object) -> list[list[float]]:
        if not callable(getattr(self.estimator, "predict_proba", None)):
            raise InvalidInput(f"model {self.name} does not give probabilities")
        matrix = self.validate(instances)
        result: list[list[float]] = np.asarray(self.estimator.predict_proba(matrix)).tolist()
        return result

    def feature_label(self, index: int) -> str:
        return self.feature_names[index] if self.feature_names else f"f{index}"

    def _totals(self, matrix: npt.NDArray[np.float64]) -> dict[str, FeatureTotals]:
        count = float(matrix.shape[0])
        positive = np.clip(matrix, 0, None).sum(axis=0)
        negative = np.clip(-matrix, 0, None).sum(axis=0)
        squares = np.square(matrix).sum(axis=0)
        return {
            self.feature_label(i): FeatureTotals(
                count, float(positive[i]), float(negative[i]), float(squares[i])
            )
            for i in range(matrix.shape[1])
        }


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float range, e.g. 10**400
        return False


def _feature_names(
    estimator: Any, explicit: Sequence[str] | None, expected: int | None
) -> tuple[str, ...] | None:
    if explicit:
        names = tuple(explicit)
        if expected is not None and len(names) != expected:
            raise ConfigError(
                f"{len(names)} feature names given ({', '.join(names)}) but the model takes "
                f"{expected} features"
            )
        return names
    fitted = getattr(estimator, "feature_names_in_", None)
    if fitted is not None:
        return tuple(sanitize_identifier(str(name)) for name in fitted)
    if expected is not None:
        return tuple(f"f{i}" for i in range(expected))
    return None


def load_core(config: ServerConfig, *, s3_credentials: S3Credentials | None = None) -> ModelCore:
    """Fetch, verify and load the artifact; raise ArtifactError if it must not be served."""
    import joblib

    # Only remote URIs write here; local ones are read in place.
    dest = config.artifact_dir or Path(tempfile.gettempdir()) / f"modelwerk-artifact-{os.getpid()}"
    path = fetch_artifact(config.model_uri, dest, s3_credentials=s3_credentials)
    verify_digest(path, config.digest)
    log.info("artifact %s verified (%s)", path, config.digest)
    try:
        # Unpickling runs code from the artifact: only ever after the digest check above.
        estimator = joblib.load(path)
    except Exception as err:  # a corrupt pickle can raise nearly anything
        raise ArtifactError(f"cannot load {path} with joblib: {err}") from err
    core = ModelCore(
        estimator,
        name=config.model_name,
        version=config.model_version,
        digest=config.digest,
        feature_names=config.feature_names,
        max_instances=config.max_instances,
    )
    core.artifact_path = path
    return core
