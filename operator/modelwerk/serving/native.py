"""The native runtime: the model core behind aiohttp, speaking KServe's v1 protocol and the Open
Inference Protocol (v2, see modelwerk.serving.v2).

Routes (v1)::

    POST /v1/models/<name>:predict   {"instances": [[...], ...]} -> {"predictions": [...]}
    POST /predict                    the same, without the name
    GET  /v1/models/<name>           {"name": ..., "ready": bool}
    GET  /healthz                    liveness: the process serves HTTP
    GET  /readyz                     readiness: 200 only once the artifact is fetched, verified
                                     and loaded, and 503 again from SIGTERM on
    GET  /metrics                    Prometheus exposition (see modelwerk.serving.metrics)

The port opens before the artifact is fetched, so a slow download doesn't trip liveness; a
digest mismatch or a failed load ends the process with exit code 3 (config errors: 2).
On SIGTERM readiness turns 503, in-flight requests finish (up to the grace period), and the
process exits 0. Pair it with a preStop delay so endpoints drop the pod before it stops listening.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from modelwerk.serving import jsonio, v2_http, workers
from modelwerk.serving.artifacts import ArtifactError, S3Credentials
from modelwerk.serving.config import EXIT_ARTIFACT, EXIT_CONFIG, ConfigError, ServerConfig
from modelwerk.serving.core import Inference, InvalidInput, ModelCore, load_core
from modelwerk.serving.httputil import error as _error
from modelwerk.serving.httputil import json_response, read_json, run_model
from modelwerk.serving.metrics import CLIENT_ERROR, SERVER_ERROR, SUCCESS, PrometheusMetrics

log = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 16 * 1024 * 1024
SHUTDOWN_GRACE_SECONDS: Final = 20.0
QUIET_PATHS: Final = ("/healthz", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready")


@dataclass
class State:
    config: ServerConfig
    metrics: PrometheusMetrics
    core: ModelCore | None = None
    stopping: bool = False
    load_error: BaseException | None = field(default=None, repr=False)

    @property
    def ready(self) -> bool:
        return self.core is not None and not self.stopping


STATE: Final = web.AppKey("state", State)


async def _predict(request: web.Request) -> web.Response:
    state = request.app[STATE]
    started = time.perf_counter()
    outcome, inference, response = await _answer(request, state)
    state.metrics.observe(outcome, time.perf_counter() - started, inference)
    return response


async def _answer(request: web.Request, state: State) -> tuple[str, Inference | None, web.Response]:
    name = request.match_info.get("name")
    if name is not None and name != state.config.model_name:
        return CLIENT_ERROR, None, _error(404, f"model {name!r} is not served here")
    core = state.core
    if core is None:
        return SERVER_ERROR, None, _error(503, "the model is not loaded yet")
    try:
        body = await read_json(request)
    except (jsonio.DecodeError, UnicodeDecodeError) as err:
        return CLIENT_ERROR, None, _error(400, f"the body is not valid JSON: {err}")
    except ConnectionResetError:
        # The client went away before its body arrived (a slow or dropped client): nobody reads
        # this answer, and it is the client's fault, not a traceback in the server's log.
        return CLIENT_ERROR, None, _error(400, "the connection closed before the body arrived")
    except web.HTTPRequestEntityTooLarge as err:
        return CLIENT_ERROR, None, _error(err.status, err.text or "the body is too large")
    if not isinstance(body, dict) or "instances" not in body:
        return CLIENT_ERROR, None, _error(400, 'expected {"instances": [[...], ...]}')
    instances = body["instances"]
    try:
        rows = len(instances) if isinstance(instances, list) else 0
        inference = await run_model(core.infer, instances, rows)
    except InvalidInput as err:
        return CLIENT_ERROR, None, _error(400, str(err))
    except Exception:
        log.exception("prediction failed")
        return SERVER_ERROR, None, _error(500, "prediction failed; see the server log")
    return SUCCESS, inference, json_response({"predictions": inference.labels})


async def _model_status(request: web.Request) -> web.Response:
    state = request.app[STATE]
    name = request.match_info["name"]
    if name != state.config.model_name:
        return _error(404, f"model {name!r} is not served here")
    return json_response({"name": name, "ready": state.ready})


async def _healthz(request: web.Request) -> web.Response:
    return json_response({"status": "alive"})


async def _readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.ready:
        return json_response({"status": "ready"})
    reason = "stopping" if state.stopping else "loading"
    return json_response({"status": reason}, status=503)


async def _metrics(request: web.Request) -> web.Response:
    body, content_type = request.app[STATE].metrics.exposition()
    # aiohttp refuses a content_type with parameters; set the full header instead.
    return web.Response(body=body, headers={"Content-Type": content_type})


def make_app(state: State) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[STATE] = state
    app.router.add_post("/v1/models/{name}:predict", _predict)
    app.router.add_post("/predict", _predict)
    app.router.add_get("/v1/models/{name}", _model_status)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    v2_http.add_routes(app, STATE)
    return app


async def serve(config: ServerConfig, *, s3_credentials: S3Credentials | None = None) -> int:
    """Serve until SIGTERM/SIGINT; return the process exit code."""
    state = State(config=config, metrics=PrometheusMetrics(config.model_name, config.model_version))
    runner = web.AppRunner(
        make_app(state),
        shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
        # Logging every request costs more than predicting one row: off unless asked for.
        access_log=logging.getLogger("aiohttp.access") if config.access_log else None,
    )
    await runner.setup()
    first = workers.parent()
    site = web.TCPSite(runner, config.host, config.port, reuse_port=config.workers > 1)
    if first is None:  # the first process listens at once, its workers only once loaded
        await site.start()
        log.info("listening on %s:%d", config.host, config.port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    others: workers.Workers | None = None
    try:
        code = await _load(state, s3_credentials)
        if code != 0:
            return code
        if first is not None:
            await site.start()
        elif config.workers > 1 and state.core is not None and state.core.artifact_path:
            others = workers.Workers(config, state.core.artifact_path)
            others.start()
        code = await _until_stopped(stop, first, others)
        log.info("stopping: readiness off, draining in-flight requests")
        return code
    finally:
        state.stopping = True
        if others is not None:
            others.terminate()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await runner.cleanup()
        if others is not None:
            await others.wait(SHUTDOWN_GRACE_SECONDS)


async def _until_stopped(
    stop: asyncio.Event, first: int | None, others: workers.Workers | None
) -> int:
    """Until SIGTERM, the first process' end (for a worker), or a worker that must end the
    server (for the first process; its exit code)."""
    waiting: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
    if first is not None:
        waiting.append(asyncio.ensure_future(workers.orphaned(first)))
    if others is not None:
        waiting.append(asyncio.ensure_future(others.watch()))
    done, pending = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    for future in pending:
        future.cancel()
    codes = [f.result() for f in done if type(f.result()) is int]
    return max(codes, default=0)


async def _load(state: State, s3_credentials: S3Credentials | None) -> int:
    config = state.config
    try:
        core = await asyncio.to_thread(load_core, config, s3_credentials=s3_credentials)
    except ConfigError as err:
        log.error("refusing to serve %s: %s", config.model_uri, err)
        return EXIT_CONFIG
    except ArtifactError as err:
        log.error("refusing to serve %s: %s", config.model_uri, err)
        return EXIT_ARTIFACT
    state.core = core
    state.metrics.set_info(core.digest)
    log.info(
        "serving model %s version %s (features: %s)",
        core.name,
        core.version,
        ", ".join(core.feature_names or ()) or "unknown",
    )
    return 0


class _QuietProbes(logging.Filter):
    """Drop access-log lines of probes and scrapes: they would drown the requests."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(f'"GET {path} ' in message for path in QUIET_PATHS)


def run(config: ServerConfig) -> int:
    import prometheus_client

    # The *_created series double the feature series and no rule uses them.
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    logging.getLogger("aiohttp.access").addFilter(_QuietProbes())
    return asyncio.run(serve(config, s3_credentials=S3Credentials.from_env()), loop_factory=_loop())


def _loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop (in the ml extra) when installed: a faster event loop for the same code."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return None
    return uvloop.new_event_loop
