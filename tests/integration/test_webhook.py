"""The Alertmanager webhook receiver of a real operator process against the real control plane:
`POST /webhooks/alertmanager` on the operator's --http-port, with the bearer token from the file
named by MODELWERK_WEBHOOK_TOKEN_FILE.

One operator for the module, watching only its own namespace (the session's operators are paused
meanwhile); each test has Models of its own there. The schedule path is unit-tested
(tests/unit/test_retrain.py): a cron schedule's first due time is up to a minute away.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modelwerk.webhook import MAX_BODY
from tests.e2e.helpers import (
    DRIFT_ALERT,
    LABEL_MODEL,
    LABEL_RETRAIN,
    Reply,
    create_namespace,
    delete_namespace,
    firing_alert,
    payload,
    post_webhook,
    retrain_model,
    retrain_runs,
    retrain_template,
    triggers,
    webhook_operator,
    write_token,
)
from tests.integration.cluster import apply, get, get_list, wait_for
from tests.integration.conftest import OperatorProcess
from tests.integration.trainingruns import (
    TrainerReport,
    events_for,
    model_manifest,
    reference_report,
    wait_phase,
)

pytestmark = pytest.mark.integration

STARTS_AT = "2026-11-26T10:00:00.123Z"


@dataclass(frozen=True)
class Receiver:
    namespace: str
    operator: OperatorProcess
    token: str
    token_file: Path

    def post(self, body: Any, **kwargs: Any) -> Reply:
        kwargs.setdefault("token", self.token)
        return post_webhook(self.operator.http_port, body, **kwargs)


@pytest.fixture(scope="module")
def receiver(
    kubeconfig: str, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Receiver]:
    namespace = create_namespace("mw-webhook")
    workdir = tmp_path_factory.mktemp("webhook")
    token_file = workdir / "token"
    token = write_token(token_file)
    try:
        with webhook_operator(kubeconfig, workdir / "operator.log", token_file, namespace) as op:
            yield Receiver(namespace, op, token, token_file)
            # Refused and ignored deliveries are answered, never crash a handler.
            assert "Traceback" not in op.log(), op.log()
    finally:
        delete_namespace(namespace)


@pytest.fixture(scope="module")
def report() -> TrainerReport:
    return reference_report()


def create_model(receiver: Receiver, manifest: dict[str, Any]) -> str:
    """Creates the Model and waits until the operator has seen it (its status is written from
    the operator's cache, which the webhook reads too)."""
    name = str(manifest["metadata"]["name"])
    apply(manifest, receiver.namespace)
    wait_for(
        f"Model {name} reconciled",
        lambda: ((get("model", name, receiver.namespace) or {}).get("status") or {}).get("phase"),
    )
    return name


def drift(receiver: Receiver, model: str, fingerprint: str, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("starts_at", STARTS_AT)
    kwargs.setdefault("feature", "petal_length_cm")
    return firing_alert(
        DRIFT_ALERT,
        namespace=receiver.namespace,
        model=model,
        fingerprint=fingerprint,
        modelwerk_deployment=model,
        version="1",
        **kwargs,
    )


def runs_of(receiver: Receiver, model: str) -> list[dict[str, Any]]:
    """Every TrainingRun of the Model, triggered or not."""
    return [
        run
        for run in get_list("trainingruns", receiver.namespace)
        if run["spec"].get("model") == model
        or (run["metadata"].get("labels") or {}).get(LABEL_MODEL) == model
    ]


def test_alert_starts_exactly_one_run(receiver: Receiver, report: TrainerReport) -> None:
    ns = receiver.namespace
    model = create_model(receiver, retrain_model("drifty", retrain_template(report)))
    first = payload(drift(receiver, model, "fp-petal"))

    # Five copies of the first delivery at once: one run.
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        replies = list(pool.map(lambda _: receiver.post(first), range(5)))
    assert [r.status for r in replies] == [200] * 5
    results = sorted(r for reply in replies for r in reply.results)
    started = [r for r in results if r.startswith("started ")]
    assert len(started) == 1, results
    assert results.count("duplicate delivery: already handled") == 4, results
    run_name = started[0].removeprefix("started ")

    runs = retrain_runs(ns, model)
    assert [r["metadata"]["name"] for r in runs] == [run_name]
    run = runs[0]
    assert run["metadata"]["labels"][LABEL_RETRAIN] == "alert"
    assert run["metadata"]["annotations"]["modelwerk.io/retrain-trigger"] == (
        f"alert:fp-petal:{STARTS_AT}"
    )
    assert run["spec"]["model"] == model
    assert run["spec"]["image"] == retrain_template(report)["image"]

    [trigger] = triggers(ns, model)
    assert trigger["reason"] == "Alert"
    assert trigger["alert"] == DRIFT_ALERT
    assert trigger["trainingRun"] == run_name
    assert trigger["key"] == f"alert:fp-petal:{STARTS_AT}"
    assert trigger["message"] == "started"

    # Alertmanager repeats the alert (repeat_interval, a changed group): nothing new.
    again = receiver.post(first)
    assert (again.status, again.results) == (200, ["duplicate delivery: already handled"])
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        replies = list(pool.map(lambda _: receiver.post(first), range(5)))
    assert {(r.status, tuple(r.results)) for r in replies} == {
        (200, ("duplicate delivery: already handled",))
    }
    assert [r["metadata"]["name"] for r in retrain_runs(ns, model)] == [run_name]
    assert len(triggers(ns, model)) == 1

    # The run is a real one: it succeeds and registers the retrained version.
    wait_phase(ns, run_name, "Succeeded")
    versions = wait_for(
        "the retrained version",
        lambda: ((get("model", model, ns) or {}).get("status") or {}).get("versions"),
    )
    assert [v["source"]["trainingRun"] for v in versions] == [run_name]

    # Another alert (another fingerprint) within the cooldown: recorded, skipped.
    other = receiver.post(payload(drift(receiver, model, "fp-sepal", feature="sepal_width_cm")))
    assert other.status == 200
    [message] = other.results
    assert message.startswith("in cooldown (1h) since the run started at "), message
    # The first alert firing anew (a new startsAt) is a new trigger, in cooldown too.
    refired = receiver.post(
        payload(drift(receiver, model, "fp-petal", starts_at="2026-11-26T11:00:00Z"))
    )
    assert refired.results[0].startswith("in cooldown (1h)")
    assert [r["metadata"]["name"] for r in runs_of(receiver, model)] == [run_name]
    recorded = triggers(ns, model)
    assert [t["key"] for t in recorded] == [
        f"alert:fp-petal:{STARTS_AT}",
        f"alert:fp-sepal:{STARTS_AT}",
        "alert:fp-petal:2026-11-26T11:00:00Z",
    ]
    for skipped in recorded[1:]:
        assert "trainingRun" not in skipped
        assert skipped["alert"] == DRIFT_ALERT
        assert skipped["message"].startswith("in cooldown (1h) since the run started at ")

    reasons = [e["reason"] for e in events_for(ns, model, kind="Model")]
    assert "RetrainStarted" in reasons
    assert "RetrainSkipped" in reasons


def test_max_concurrent(receiver: Receiver, report: TrainerReport) -> None:
    """Without a cooldown, maxConcurrent holds back a second run while the first is unfinished
    (its simulated container runs for 10 minutes)."""
    ns = receiver.namespace
    template = retrain_template(report, sim={"DURATION": "10m"})
    model = create_model(receiver, retrain_model("busy", template, cooldown="0s", max_concurrent=1))
    first = receiver.post(payload(drift(receiver, model, "fp-1")))
    assert first.results[0].startswith("started ")
    second = receiver.post(payload(drift(receiver, model, "fp-2")))
    assert second.results == ["1 triggered run(s) unfinished (maxConcurrent 1)"]
    assert len(retrain_runs(ns, model)) == 1
    recorded = triggers(ns, model)
    assert len(recorded) == 2
    assert "trainingRun" not in recorded[1]
    assert recorded[1]["message"] == "1 triggered run(s) unfinished (maxConcurrent 1)"


def test_alerts_the_model_does_not_ask_for_start_nothing(
    receiver: Receiver, report: TrainerReport
) -> None:
    ns = receiver.namespace
    model = create_model(receiver, retrain_model("picky", retrain_template(report)))
    bare = create_model(receiver, model_manifest("bare"))
    alerts = [
        firing_alert("ModelwerkNoTraffic", namespace=ns, model=model, fingerprint="a1"),
        drift(receiver, model, "a2", status="resolved"),
        firing_alert(DRIFT_ALERT, namespace=ns, model=None, fingerprint="a3"),
        firing_alert(DRIFT_ALERT, namespace=None, model=model, fingerprint="a4"),
        firing_alert(DRIFT_ALERT, namespace="elsewhere", model=model, fingerprint="a5"),
        drift(receiver, bare, "a6"),
    ]
    reply = receiver.post(payload(*alerts))
    assert reply.status == 200
    assert reply.results == [
        "ignored: alert ModelwerkNoTraffic is not in spec.retrain.onAlerts",
        "ignored: not firing",
        "ignored: no namespace/model labels",
        "ignored: no namespace/model labels",
        "ignored: namespace elsewhere is not watched",
        "ignored: the Model has no spec.retrain",
    ]
    for name in (model, bare):
        assert runs_of(receiver, name) == []
        # No trace on the Model: every alert of a Deployment carries its Model's labels.
        assert triggers(ns, name) == []


def test_unknown_model_is_reported(receiver: Receiver) -> None:
    reply = receiver.post(payload(drift(receiver, "no-such-model", "u1")))
    assert reply.status == 200
    assert reply.results == [f"Model {receiver.namespace}/no-such-model not found"]
    assert runs_of(receiver, "no-such-model") == []


def test_refused_deliveries_create_nothing(receiver: Receiver, report: TrainerReport) -> None:
    model = create_model(receiver, retrain_model("guarded", retrain_template(report)))
    body = payload(drift(receiver, model, "g1"))

    refused = {
        "no token": receiver.post(body, token=None),
        "wrong token": receiver.post(body, token=receiver.token + "x"),
        "empty token": receiver.post(body, token=""),
        "not a bearer token": receiver.post(body, scheme="Basic"),
        "malformed JSON": receiver.post(b'{"version": "4", "alerts": [{'),
        "not a payload": receiver.post({"version": "4", "alerts": "all of them"}),
        "alert without fingerprint": receiver.post(
            {
                "version": "4",
                "alerts": [{k: v for k, v in body["alerts"][0].items() if k != "fingerprint"}],
            }
        ),
    }
    statuses = {what: reply.status for what, reply in refused.items()}
    assert statuses == {
        "no token": 401,
        "wrong token": 401,
        "empty token": 401,
        "not a bearer token": 401,
        "malformed JSON": 400,
        "not a payload": 400,
        "alert without fingerprint": 400,
    }
    assert refused["no token"].body == {"error": "unauthorized"}
    assert refused["malformed JSON"].body == {"error": "malformed payload"}
    assert runs_of(receiver, model) == []
    assert triggers(receiver.namespace, model) == []

    # The token file is read on every delivery: a rotated token takes effect at once.
    rotated = write_token(receiver.token_file)
    try:
        assert receiver.post(body).status == 401
        accepted = receiver.post(
            payload(
                firing_alert(
                    "Unrelated", namespace=receiver.namespace, model=model, fingerprint="g2"
                )
            ),
            token=rotated,
        )
        assert accepted.status == 200
        assert accepted.results == ["ignored: alert Unrelated is not in spec.retrain.onAlerts"]
    finally:
        write_token(receiver.token_file, receiver.token)
    assert runs_of(receiver, model) == []


def test_oversized_deliveries_are_refused_unread(receiver: Receiver, report: TrainerReport) -> None:
    """Above the receiver's limit a delivery is a 413 whether it announces its length or streams
    it chunked, and nothing is started; without the token it is a 401 before any of it is read."""
    model = create_model(receiver, retrain_model("big", retrain_template(report)))
    alert = drift(receiver, model, "big1")
    alert["annotations"]["padding"] = "x" * (MAX_BODY + 1)
    body = payload(alert)
    announced = receiver.post(body)
    assert (announced.status, announced.body) == (413, {"error": "body too large"})
    assert receiver.post(body, token=None).status == 401

    def chunks() -> Iterator[bytes]:
        data = json.dumps(body).encode()
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]

    conn = http.client.HTTPConnection("127.0.0.1", receiver.operator.http_port, timeout=30)
    try:
        conn.request(
            "POST",
            "/webhooks/alertmanager",
            body=chunks(),
            headers={
                "Authorization": f"Bearer {receiver.token}",
                "Content-Type": "application/json",
            },
            encode_chunked=True,
        )
        streamed = conn.getresponse().status
    finally:
        conn.close()
    assert streamed == 413
    assert runs_of(receiver, model) == []
    assert triggers(receiver.namespace, model) == []
