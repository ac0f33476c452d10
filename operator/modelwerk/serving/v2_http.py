"""The Open Inference Protocol (modelwerk.serving.v2) on the native server's aiohttp app."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from aiohttp import web

from modelwerk.serving import jsonio
from modelwerk.serving.core import Inference, InvalidInput, ModelCore
from modelwerk.serving.httputil import error, json_response, read_json, run_model
from modelwerk.serving.metrics import CLIENT_ERROR, SERVER_ERROR, SUCCESS
from modelwerk.serving.v2 import (
    BINARY_HEADER,
    OUTPUT_PROBA,
    SERVER_NAME,
    InferRequest,
    NotFound,
    check_target,
    infer_response,
    model_metadata,
    parse_infer,
)

if TYPE_CHECKING:
    from modelwerk.serving.native import State

log = logging.getLogger(__name__)


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
    except ConnectionResetError:
        # The client went away before its body arrived: its fault, and nobody reads the answer.
        return CLIENT_ERROR, None, error(400, "the connection closed before the body arrived")
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
