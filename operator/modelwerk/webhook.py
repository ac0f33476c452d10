"""The Alertmanager webhook receiver: firing alerts named in a Model's `retrain.onAlerts` start a
retraining run. Every request must carry the bearer token from the operator's Secret; anything
unauthenticated or malformed is refused and logged, never acted on."""

from __future__ import annotations

import hmac
import logging
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelwerk import retrain
from modelwerk.manager import Manager
from modelwerk.reconcilers import triggers

log = logging.getLogger(__name__)
PATH = "/webhooks/alertmanager"
MAX_BODY = 1 << 20


class Alert(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: str
    labels: dict[str, str]
    starts_at: str = Field(alias="startsAt")
    fingerprint: str = Field(min_length=1, max_length=128)


class Payload(BaseModel):
    """Alertmanager's webhook body (version 4)."""

    model_config = ConfigDict(extra="ignore")
    version: str
    alerts: list[Alert] = Field(max_length=1000)


def _authorised(request: web.Request, token_file: str) -> bool:
    if not token_file:
        return False
    try:
        expected = Path(token_file).read_text().strip()
    except OSError:
        log.error("webhook token file %s unreadable: refusing all deliveries", token_file)
        return False
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # The scheme is case-insensitive (RFC 9110); the token is compared in constant time, so it
    # cannot leak through response timing.
    return (
        bool(expected)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(given.strip().encode(), expected.encode())
    )


def handler(mgr: Manager) -> Any:
    async def receive(request: web.Request) -> web.Response:
        peer = request.remote
        if not _authorised(request, mgr.config.webhook_token_file):
            log.warning("refused unauthenticated Alertmanager delivery from %s", peer)
            return web.json_response({"error": "unauthorized"}, status=401)
        if not mgr.leading():
            # Alertmanager retries a 5xx; the Service may reach the leader next time.
            return web.json_response({"error": "not the leader"}, status=503)
        if request.content_length is not None and request.content_length > MAX_BODY:
            return web.json_response({"error": "body too large"}, status=413)
        try:
            payload = Payload.model_validate_json(await request.read())
        except ValidationError as err:
            log.warning("refused malformed Alertmanager delivery from %s: %s", peer, err)
            return web.json_response({"error": "malformed payload"}, status=400)
        results = []
        for alert in payload.alerts:
            results.append(await _handle(mgr, alert))
        return web.json_response({"results": results})

    return receive


async def _handle(mgr: Manager, alert: Alert) -> dict[str, str]:
    name = alert.labels.get("alertname", "")
    namespace, model = alert.labels.get("namespace"), alert.labels.get("model")
    result = {"alert": name, "fingerprint": alert.fingerprint}
    if alert.status != "firing":
        return {**result, "result": "ignored: not firing"}
    if not namespace or not model:
        return {**result, "result": "ignored: no namespace/model labels"}
    if not mgr.config.watches(namespace):
        return {**result, "result": f"ignored: namespace {namespace} is not watched"}
    trigger = retrain.Trigger("Alert", retrain.alert_key(alert.fingerprint, alert.starts_at), name)
    message = await triggers.fire(mgr, (namespace, model), trigger)
    log.info("alert %s for %s/%s: %s", name, namespace, model, message)
    return {**result, "result": message}
