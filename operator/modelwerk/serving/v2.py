"""The Open Inference Protocol (KServe v2) over REST, beside v1 on the native runtime.

Routes (``[...]`` optional; a version other than the served one is a 404)::

    GET  /v2                                        server metadata
    GET  /v2/health/live                            200 {"live": true}
    GET  /v2/health/ready                           200 {"ready": true}, 503 while loading/stopping
    GET  /v2/models/<name>[/versions/<v>]           model metadata (inputs and outputs)
    GET  /v2/models/<name>[/versions/<v>]/ready     200 {"name", "ready": true}, else 503
    POST /v2/models/<name>[/versions/<v>]/infer     typed tensors in, typed tensors out

The model takes a matrix of rows x features. A request gives it as either

- one input of shape ``[rows, features]`` (any name; the metadata calls it ``input-0``), or
- one input per feature, named after the features (the metadata's ``parameters.feature_names``),
  each of shape ``[rows]`` or ``[rows, 1]``;

with a numeric datatype (FP16/32/64, INT8..64, UINT8..64) and ``data`` in row-major order, flat
or nested as the shape. Outputs: ``predict`` (the labels; INT64, FP64, BOOL or BYTES as they
come) and, when asked for by name and the model has it, ``predict_proba`` (FP64, rows x
classes). Every error is ``{"error": "..."}``: 400 for a bad request (a wrong shape, datatype,
count or value says which and what the model takes), 404 for another model or version, 503
before the artifact is verified and loaded. Triton's binary tensor extension is refused (400).
Requests count in the same metrics as v1's (modelwerk.serving.metrics).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt
from aiohttp import web

from modelwerk.serving import jsonio
from modelwerk.serving.core import Inference, InvalidInput, ModelCore
from modelwerk.serving.httputil import error, json_response, read_json, run_model
from modelwerk.serving.metrics import CLIENT_ERROR, SERVER_ERROR, SUCCESS

if TYPE_CHECKING:
    from modelwerk.serving.native import State

log = logging.getLogger(__name__)

INPUT_NAME: Final = "input-0"
OUTPUT_PREDICT: Final = "predict"
OUTPUT_PROBA: Final = "predict_proba"
SERVER_NAME: Final = "modelwerk"
# Triton's binary tensor extension announces the JSON part's length in this header.
BINARY_HEADER: Final = "Inference-Header-Content-Length"

_FLOATS: Final = frozenset({"FP16", "FP32", "FP64"})
_INTS: Final = {
    name: np.iinfo(dtype)
    for name, dtype in (
        ("INT8", np.int8),
        ("INT16", np.int16),
        ("INT32", np.int32),
        ("INT64", np.int64),
        ("UINT8", np.uint8),
        ("UINT16", np.uint16),
        ("UINT32", np.uint32),
        ("UINT64", np.uint64),
    )
}
NUMERIC: Final = (*sorted(_FLOATS), *_INTS)
_INT_TYPES: Final = frozenset({int})
_NUMBER_TYPES: Final = frozenset({int, float})


class NotFound(LookupError):
    """Another model or version than the one served (HTTP 404)."""


@dataclass(frozen=True)
class InferRequest:
    matrix: npt.NDArray[np.float64]
    outputs: tuple[str, ...]
    id: str | None


# --- the protocol, pure --------------------------------------------------------------------


def check_target(core: ModelCore, name: str, version: str | None) -> None:
    if name != core.name:
        raise NotFound(f"model {name!r} is not served here (this server serves {core.name!r})")
    if version is not None and version != core.version:
        raise NotFound(
            f"model {name!r} has no version {version!r} here (this server serves version "
            f"{core.version!r})"
        )


def outputs_of(core: ModelCore) -> tuple[str, ...]:
    proba = callable(getattr(core.estimator, "predict_proba", None))
    return (OUTPUT_PREDICT, OUTPUT_PROBA) if proba else (OUTPUT_PREDICT,)


def model_metadata(core: ModelCore) -> dict[str, Any]:
    width = core.n_features or -1
    classes = core.classes
    outputs: list[dict[str, Any]] = [
        {"name": OUTPUT_PREDICT, "datatype": label_datatype(classes or [0.0]), "shape": [-1]}
    ]
    if OUTPUT_PROBA in outputs_of(core):
        outputs.append(
            {"name": OUTPUT_PROBA, "datatype": "FP64", "shape": [-1, len(classes or []) or -1]}
        )
    parameters: dict[str, Any] = {"digest": core.digest}
    if core.feature_names:
        parameters["feature_names"] = list(core.feature_names)
    if classes is not None:
        parameters["classes"] = classes
    return {
        "name": core.name,
        "versions": [core.version],
        "platform": "sklearn",
        "inputs": [{"name": INPUT_NAME, "datatype": "FP64", "shape": [-1, width]}],
        "outputs": outputs,
        "parameters": parameters,
    }


def parse_infer(body: object, core: ModelCore) -> InferRequest:
    """The request as the model's float matrix, or InvalidInput saying what is wrong."""
    if not isinstance(body, dict):
        raise InvalidInput('expected an inference request {"inputs": [{...}, ...]}')
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput("'inputs' must be a non-empty list of tensors")
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("'id' must be a string")
    tensors = [_tensor(item, index) for index, item in enumerate(inputs)]
    matrix = _one_matrix(tensors, core) if len(tensors) == 1 else _by_feature(tensors, core)
    rows = matrix.shape[0]
    if rows == 0:
        raise InvalidInput("the request has no rows")
    if rows > core.max_instances:
        raise InvalidInput(f"{rows} rows exceed the limit of {core.max_instances} per request")
    return InferRequest(matrix, _requested(body.get("outputs"), core), request_id)


def infer_response(
    core: ModelCore, request: InferRequest, inference: Inference, proba: list[Any] | None
) -> dict[str, Any]:
    outputs: list[dict[str, Any]] = []
    for name in request.outputs:
        if name == OUTPUT_PREDICT:
            labels = inference.labels
            outputs.append(
                {
                    "name": OUTPUT_PREDICT,
                    "datatype": label_datatype(labels),
                    "shape": [len(labels)],
                    "data": labels,
                }
            )
        else:
            assert proba is not None
            width = len(proba[0]) if proba else 0
            outputs.append(
                {
                    "name": OUTPUT_PROBA,
                    "datatype": "FP64",
                    "shape": [len(proba), width],
                    "data": list(chain.from_iterable(proba)),
                }
            )
    response: dict[str, Any] = {"model_name": core.name, "model_version": core.version}
    if request.id is not None:
        response["id"] = request.id
    response["outputs"] = outputs
    return response


def label_datatype(labels: list[Any]) -> str:
    kinds = set(map(type, labels))
    if kinds <= {bool}:
        return "BOOL"
    if kinds <= _INT_TYPES:
        return "INT64"
    if kinds <= _NUMBER_TYPES:
        return "FP64"
    return "BYTES"


@dataclass(frozen=True)
class _Tensor:
    name: str
    shape: tuple[int, ...]
    values: npt.NDArray[np.float64]


def _tensor(item: object, index: int) -> _Tensor:
    if not isinstance(item, dict):
        raise InvalidInput(f"input {index} must be a tensor object")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"input {index} needs a 'name'")
    what = f"input {name!r}"
    shape = item.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    ):
        raise InvalidInput(f"{what}: 'shape' must be a list of non-negative integers")
    datatype = item.get("datatype")
    if datatype not in _FLOATS and datatype not in _INTS:
        raise InvalidInput(
            f"{what}: datatype {datatype!r} is not accepted; the model takes numbers: "
            + ", ".join(NUMERIC)
        )
    if "data" not in item:
        raise InvalidInput(f"{what}: no 'data' (the binary tensor extension is not supported)")
    flat = _flatten(item["data"], shape, what)
    return _Tensor(name, tuple(shape), _values(flat, datatype, what))


def _flatten(data: object, shape: list[int], what: str) -> list[Any]:
    """The elements in row-major order: `data` flat, or nested exactly as `shape`."""
    if not isinstance(data, list):
        raise InvalidInput(f"{what}: 'data' must be a list")
    count = math.prod(shape)
    if data and isinstance(data[0], list):
        level: list[Any] = data
        if len(level) != shape[0]:
            raise InvalidInput(f"{what}: nested 'data' does not have shape {shape}")
        for size in shape[1:]:
            if not all(isinstance(part, list) and len(part) == size for part in level):
                raise InvalidInput(f"{what}: nested 'data' does not have shape {shape}")
            level = list(chain.from_iterable(level))
        data = level
    if len(data) != count:
        raise InvalidInput(f"{what}: shape {shape} needs {count} values, 'data' has {len(data)}")
    return data


def _values(flat: list[Any], datatype: str, what: str) -> npt.NDArray[np.float64]:
    kinds = set(map(type, flat))
    if datatype in _FLOATS:
        if not kinds <= _NUMBER_TYPES:
            raise InvalidInput(f"{what}: {datatype} data must be numbers, not {_names(kinds)}")
        try:
            values = np.array(flat, dtype=np.float64)
        except OverflowError as err:  # an int beyond float range, e.g. 10**400
            raise InvalidInput(f"{what}: a value is out of the {datatype} range") from err
        if not np.isfinite(values).all():
            raise InvalidInput(f"{what}: non-finite values (NaN or infinity) are not accepted")
        return values
    if not kinds <= _INT_TYPES:
        raise InvalidInput(f"{what}: {datatype} data must be integers, not {_names(kinds)}")
    limits = _INTS[datatype]
    if flat and (min(flat) < limits.min or max(flat) > limits.max):
        raise InvalidInput(f"{what}: a value is out of the {datatype} range")
    return np.array(flat, dtype=np.float64)


def _names(kinds: set[type]) -> str:
    bad = sorted(k.__name__ for k in kinds - _NUMBER_TYPES) or sorted(k.__name__ for k in kinds)
    plain = {"str": "strings", "bool": "booleans", "NoneType": "null", "list": "lists"}
    return " or ".join(plain.get(name, name) for name in bad)


def _expected(core: ModelCore) -> str:
    width = core.n_features
    names = f" ({', '.join(core.feature_names)})" if core.feature_names else ""
    return f"[rows, {width}]{names}" if width else "[rows, features]"


def _one_matrix(tensors: list[_Tensor], core: ModelCore) -> npt.NDArray[np.float64]:
    tensor = tensors[0]
    width = core.n_features
    if len(tensor.shape) != 2 or (width is not None and tensor.shape[1] != width):
        single = width == 1 and len(tensor.shape) == 1
        if not single:
            raise InvalidInput(
                f"input {tensor.name!r} has shape {list(tensor.shape)}; model {core.name} takes "
                f"{_expected(core)}, or one input per feature of shape [rows]"
            )
        return tensor.values.reshape(-1, 1)
    if tensor.shape[1] == 0:
        raise InvalidInput(f"input {tensor.name!r} has no features")
    return tensor.values.reshape(tensor.shape)


def _by_feature(tensors: list[_Tensor], core: ModelCore) -> npt.NDArray[np.float64]:
    names = core.feature_names
    if not names:
        raise InvalidInput(
            f"{len(tensors)} inputs given; model {core.name} has no feature names, so it takes "
            f"one input of shape {_expected(core)}"
        )
    given = {t.name: t for t in tensors}
    if len(given) != len(tensors) or set(given) != set(names):
        raise InvalidInput(
            f"{len(tensors)} inputs ({', '.join(t.name for t in tensors)}); model {core.name} "
            f"takes one input of shape {_expected(core)} or one per feature, named "
            + ", ".join(names)
        )
    rows = {t.shape[0] for t in tensors}
    if len(rows) != 1 or any(len(t.shape) > 2 or math.prod(t.shape[1:]) != 1 for t in tensors):
        raise InvalidInput(
            "per-feature inputs must all have shape [rows] (or [rows, 1]) with the same rows"
        )
    return np.column_stack([given[name].values for name in names])


def _requested(outputs: object, core: ModelCore) -> tuple[str, ...]:
    if outputs is None:
        return (OUTPUT_PREDICT,)
    available = outputs_of(core)
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise InvalidInput("'outputs' must be a list of {\"name\": ...}")
    names = tuple(dict.fromkeys(o["name"] for o in outputs))
    unknown = [n for n in names if n not in available]
    if unknown:
        raise InvalidInput(
            f"model {core.name} has no output {', '.join(map(repr, unknown))}; its outputs: "
            + ", ".join(available)
        )
    return names or (OUTPUT_PREDICT,)


# --- aiohttp handlers ----------------------------------------------------------------------


def add_routes(app: web.Application, key: web.AppKey[State]) -> None:
    """The v2 routes on `app`, reading the server's State under `key`."""

    async def live(request: web.Request) -> web.Response:
        return json_response({"live": True})

    async def ready(request: web.Request) -> web.Response:
        is_ready = request.app[key].ready
        return json_response({"ready": is_ready}, status=200 if is_ready else 503)

    async def server_metadata(request: web.Request) -> web.Response:
        from modelwerk import __version__

        return json_response({"name": SERVER_NAME, "version": __version__, "extensions": []})

    def target(request: web.Request) -> ModelCore:
        state = request.app[key]
        name, version = request.match_info["name"], request.match_info.get("version")
        if state.core is None:
            if name != state.config.model_name:
                raise NotFound(f"model {name!r} is not served here")
            raise LookupError("the model is not loaded yet")
        check_target(state.core, name, version)
        return state.core

    async def metadata(request: web.Request) -> web.Response:
        try:
            return json_response(model_metadata(target(request)))
        except NotFound as err:
            return error(404, str(err))
        except LookupError as err:
            return error(503, str(err))

    async def model_ready(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            target(request)
        except NotFound as err:
            return error(404, str(err))
        except LookupError:
            return json_response({"name": name, "ready": False}, status=503)
        is_ready = request.app[key].ready
        return json_response({"name": name, "ready": is_ready}, status=200 if is_ready else 503)

    async def infer(request: web.Request) -> web.Response:
        state = request.app[key]
        started = time.perf_counter()
        outcome, inference, response = await _infer(request, target)
        state.metrics.observe(outcome, time.perf_counter() - started, inference)
        return response

    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        app.router.add_get(prefix, metadata)
        app.router.add_get(f"{prefix}/ready", model_ready)
        app.router.add_post(f"{prefix}/infer", infer)
    app.router.add_get("/v2", server_metadata)
    app.router.add_get("/v2/health/live", live)
    app.router.add_get("/v2/health/ready", ready)


async def _infer(request: web.Request, target: Any) -> tuple[str, Inference | None, web.Response]:
    try:
        core: ModelCore = target(request)
    except NotFound as err:
        return CLIENT_ERROR, None, error(404, str(err))
    except LookupError as err:
        return SERVER_ERROR, None, error(503, str(err))
    if BINARY_HEADER in request.headers:
        message = "the binary tensor extension is not supported: send the tensors as JSON"
        return CLIENT_ERROR, None, error(400, message)
    try:
        body = await read_json(request)
    except (jsonio.DecodeError, UnicodeDecodeError) as err:
        return CLIENT_ERROR, None, error(400, f"the body is not valid JSON: {err}")
    except web.HTTPRequestEntityTooLarge as err:
        return CLIENT_ERROR, None, error(err.status, err.text or "the body is too large")
    try:
        parsed = parse_infer(body, core)
        inference, proba = await run_model(_predict, (core, parsed), parsed.matrix.shape[0])
    except InvalidInput as err:
        return CLIENT_ERROR, None, error(400, str(err))
    except Exception:
        log.exception("inference failed")
        return SERVER_ERROR, None, error(500, "inference failed; see the server log")
    return SUCCESS, inference, json_response(infer_response(core, parsed, inference, proba))


def _predict(target: tuple[ModelCore, InferRequest]) -> tuple[Inference, list[Any] | None]:
    core, parsed = target
    inference = core.infer_matrix(parsed.matrix)
    proba = None
    if OUTPUT_PROBA in parsed.outputs:
        proba = np.asarray(core.estimator.predict_proba(parsed.matrix)).tolist()
    return inference, proba
