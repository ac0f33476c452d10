"""The Seldon runtime: the model core as a Seldon Core v1 (1.19) Python model class.

Launched by Seldon's wrapper (the ``seldon`` extra, BSL 1.1)::

    MODELWERK_MODEL_URI=... MODELWERK_MODEL_DIGEST=sha256:... MODELWERK_MODEL_NAME=iris \\
    MODELWERK_MODEL_VERSION=4 MODELWERK_FEATURE_NAMES=a,b,c \\
    seldon-core-microservice modelwerk.serving.seldon.SeldonModel --service-type MODEL \\
        [--http-port 9000 --metrics-port 6000 --grpc-port 5000]

or ``python -m modelwerk.serving --runtime seldon ...``; the settings can also come as Seldon
parameters (``PREDICTIVE_UNIT_PARAMETERS``: model_uri, digest, model_name, model_version,
feature_names). Requests: ``POST /api/v1.0/predictions`` with ``{"data": {"ndarray": [[...]]}}``
or ``{"data": {"tensor": {"shape": [n, d], "values": [...]}}}``; the response's
``data.ndarray`` holds the predicted labels.

Why these choices, from seldon_core 1.19's source:

- the artifact is fetched, verified and loaded in ``__init__``: the wrapper builds the object in
  its main process before forking gunicorn, gRPC and metrics processes, so a bad artifact stops
  the whole thing with our exit code instead of leaving a half-started group;
- Seldon's metrics endpoint (``--metrics-port``, path ``$PREDICTIVE_UNIT_METRICS_ENDPOINT``,
  ``/prometheus`` in a SeldonDeployment) serves only what reaches its shared SeldonMetrics
  store, not prometheus_client's default registry (it lives in another process). So the series
  of modelwerk.serving.metrics travel as Seldon custom metrics;
- ``predict_raw`` rather than ``predict``: with ``predict`` an exception skips the custom
  metrics, so client errors could not be counted. ``predict_raw`` answers every request itself,
  errors included (``status.code`` becomes the HTTP status), with the metrics in ``meta``;
- set ``INCLUDE_METRICS_IN_CLIENT_RESPONSE=false`` in the container: Seldon's default (true)
  also returns those metrics (a few KiB) to every client; the scrape endpoint gets them either
  way.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from modelwerk.serving.artifacts import ArtifactError, S3Credentials
from modelwerk.serving.config import EXIT_ARTIFACT, EXIT_CONFIG, ConfigError, ServerConfig
from modelwerk.serving.core import Inference, InvalidInput, ModelCore, load_core
from modelwerk.serving.metrics import CLIENT_ERROR, SERVER_ERROR, SUCCESS, seldon_metrics

log = logging.getLogger(__name__)


class SeldonModel:
    def __init__(
        self,
        model_uri: str | None = None,
        digest: str | None = None,
        model_name: str | None = None,
        model_version: str | None = None,
        feature_names: str | None = None,
        artifact_dir: str | None = None,
    ) -> None:
        explicit = {
            "model_uri": model_uri,
            "digest": digest,
            "model_name": model_name,
            "model_version": model_version,
            "feature_names": feature_names,
            "artifact_dir": artifact_dir,
        }
        try:
            config = ServerConfig.resolve(explicit)
            self.core: ModelCore = load_core(config, s3_credentials=S3Credentials.from_env())
        except ConfigError as err:
            log.error("refusing to serve: %s", err)
            raise SystemExit(EXIT_CONFIG) from err
        except ArtifactError as err:
            log.error("refusing to serve: %s", err)
            raise SystemExit(EXIT_ARTIFACT) from err
        log.info("serving model %s version %s", self.core.name, self.core.version)

    def load(self) -> None:
        """Nothing left to do: ``__init__`` loaded and verified the artifact."""

    def predict_raw(self, request: Any) -> Any:
        if isinstance(request, dict):
            return self._answer(request)
        # gRPC hands over a SeldonMessage: answer through the same JSON path.
        from seldon_core.utils import json_to_seldon_message, seldon_message_to_json

        response = self._answer(seldon_message_to_json(request))
        # Proto JSON drops zero values, and Seldon then reads a metric without "value";
        # a zero counter increment changes nothing anyway.
        meta = response.get("meta", {})
        meta["metrics"] = [m for m in meta.get("metrics", []) if m["value"] != 0]
        return json_to_seldon_message(response)

    def predict(self, X: Any, features_names: Any = None, **_: Any) -> list[Any]:
        """For direct use only: the wrapper calls ``predict_raw``."""
        return self.core.predict(np.asarray(X).tolist())

    def health_status(self) -> dict[str, Any]:
        return {
            "model": self.core.name,
            "version": self.core.version,
            "digest": self.core.digest,
            "ready": True,
        }

    def metrics(self) -> list[dict[str, Any]]:
        # Called on health checks too, so model_info shows up before the first prediction.
        return seldon_metrics(
            model=self.core.name, version=self.core.version, digest=self.core.digest
        )

    def init_metadata(self) -> dict[str, Any]:
        schema: dict[str, Any] = {}
        if self.core.feature_names:
            schema["names"] = list(self.core.feature_names)
        if self.core.n_features:
            schema["shape"] = [self.core.n_features]
        return {
            "name": self.core.name,
            "versions": [self.core.version],
            "platform": "sklearn",
            "inputs": [{"messagetype": "ndarray", "schema": schema}],
            "outputs": [{"messagetype": "ndarray", "schema": {"shape": [1]}}],
            "custom": {"digest": self.core.digest},
        }

    def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            inference = self.core.infer(instances_from_request(request))
        except InvalidInput as err:
            return self._failure(400, str(err), CLIENT_ERROR, started)
        except Exception:
            log.exception("prediction failed")
            return self._failure(
                500, "prediction failed; see the server log", SERVER_ERROR, started
            )
        return {
            "data": {"names": [], "ndarray": inference.labels},
            "meta": {"metrics": self._metrics(SUCCESS, started, inference)},
        }

    def _failure(self, code: int, message: str, outcome: str, started: float) -> dict[str, Any]:
        return {
            "status": {
                "code": code,
                "info": message,
                "reason": "MICROSERVICE_BAD_DATA" if code < 500 else "MICROSERVICE_INTERNAL_ERROR",
                "status": "FAILURE",
            },
            "meta": {"metrics": self._metrics(outcome, started, None)},
        }

    def _metrics(
        self, outcome: str, started: float, inference: Inference | None
    ) -> list[dict[str, Any]]:
        return seldon_metrics(
            model=self.core.name,
            version=self.core.version,
            digest=self.core.digest,
            outcome=outcome,
            seconds=time.perf_counter() - started,
            inference=inference,
        )


def instances_from_request(request: dict[str, Any]) -> list[Any]:
    """Rows from a Seldon JSON message's ``data.ndarray`` or ``data.tensor``."""
    data = request.get("data")
    if not isinstance(data, dict):
        raise InvalidInput('expected {"data": {"ndarray": [[...], ...]}} or data.tensor')
    if "ndarray" in data:
        rows = data["ndarray"]
        if not isinstance(rows, list):
            raise InvalidInput("data.ndarray must be a list of rows")
        return rows
    tensor = data.get("tensor")
    if isinstance(tensor, dict):
        shape, values = tensor.get("shape"), tensor.get("values")
        if (
            not isinstance(shape, list)
            or len(shape) != 2
            or not all(isinstance(n, int | float) and n == int(n) and n > 0 for n in shape)
            or not isinstance(values, list)
            or len(values) != int(shape[0]) * int(shape[1])
        ):
            raise InvalidInput("data.tensor needs shape [rows, features] and rows*features values")
        width = int(shape[1])
        return [values[i : i + width] for i in range(0, len(values), width)]
    raise InvalidInput("data must hold ndarray or tensor")
