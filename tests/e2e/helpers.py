"""Helpers for the closed-loop tests (tests/e2e/test_closed_loop.py and
tests/integration/test_webhook.py): an operator of our own with the webhook token, Alertmanager
webhook payloads, Models with a retrain policy, and the real servers around the operator
(model server, Prometheus, Alertmanager) as child processes on the loopback interface.

Every wait polls with a deadline (tests.integration.cluster.wait_for); traffic loops are
bounded in requests and time; every process is stopped by whoever started it, in `finally`.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modelwerk import sdk
from tests.integration.cluster import get, get_list, kubectl, wait_for
from tests.integration.conftest import OperatorProcess, free_port
from tests.integration.trainingruns import (
    API_VERSION,
    REFERENCE_HYPERPARAMETERS,
    REFERENCE_SEED,
    STORAGE_URI,
    TrainerReport,
    run_manifest,
)

WEBHOOK_PATH = "/webhooks/alertmanager"
DRIFT_ALERT = "ModelwerkDataDrift"
LABEL_RETRAIN = "modelwerk.io/retrain"
LABEL_MODEL = "modelwerk.io/model"
LOOPBACK = "127.0.0.1"

# --- namespaces and operators ---------------------------------------------------------------


def create_namespace(prefix: str) -> str:
    """A namespace enforcing Pod Security `restricted`, as the `namespace` fixture makes them
    (for module-scoped use)."""
    name = f"{prefix}-{secrets.token_hex(4)}"
    kubectl("create", "namespace", name)
    kubectl(
        "label",
        "namespace",
        name,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    wait_for("default service account", lambda: get("serviceaccount", "default", name))
    return name


def delete_namespace(name: str) -> None:
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def running_operators() -> list[OperatorProcess]:
    """The operators this test session has started and not stopped: the session `operator`
    fixture's (tests/integration's, or another conftest's copy of it) and any a test left
    running. Found among live objects, not through pytest's private fixture state."""
    return [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, OperatorProcess) and obj.proc is not None and obj.proc.poll() is None
    ]


@contextlib.contextmanager
def other_operators_paused() -> Iterator[None]:
    """Stops this session's running operators, and starts them again afterwards: the session
    operator watches the `namespace` fixture's namespaces (or the whole cluster) and would
    reconcile ours too, racing the operator under test."""
    paused = running_operators()
    for proc in paused:
        proc.stop()
    try:
        yield
    finally:
        for proc in paused:
            proc.start()


def write_token(path: Path, token: str | None = None) -> str:
    token = token or secrets.token_urlsafe(32)
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token


@contextlib.contextmanager
def webhook_operator(
    kubeconfig: str, log_path: Path, token_file: Path, namespace: str
) -> Iterator[OperatorProcess]:
    """`modelwerk run -n <namespace>` with MODELWERK_WEBHOOK_TOKEN_FILE set, after pausing the
    session's other operators; stops it (and resumes those) on exit, also when it fails to
    start."""
    with other_operators_paused():
        proc = OperatorProcess(
            kubeconfig,
            log_path,
            "-n",
            namespace,
            env={"MODELWERK_WEBHOOK_TOKEN_FILE": str(token_file)},
        )
        try:
            proc.start()
            yield proc
        finally:
            _stop_operator(proc)


def _stop_operator(proc: OperatorProcess) -> None:
    if proc.proc is None:
        return
    if proc.proc.poll() is not None:
        proc.kill()  # reaps it
        return
    try:
        proc.stop()
    except subprocess.TimeoutExpired:
        proc.kill()


# --- Alertmanager's webhook -----------------------------------------------------------------


def firing_alert(
    alertname: str,
    *,
    namespace: str | None,
    model: str | None,
    fingerprint: str,
    starts_at: str = "2026-11-26T10:00:00.000Z",
    status: str = "firing",
    **labels: str,
) -> dict[str, Any]:
    """One alert as Alertmanager's webhook (version 4) sends it."""
    all_labels = {"alertname": alertname, "severity": "warning", **labels}
    if namespace is not None:
        all_labels["namespace"] = namespace
    if model is not None:
        all_labels["model"] = model
    return {
        "status": status,
        "labels": all_labels,
        "annotations": {"summary": f"{alertname} (test)"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph",
        "fingerprint": fingerprint,
    }


def payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    """Alertmanager's webhook body (version 4) around `alerts`."""
    common = dict(alerts[0]["labels"]) if alerts else {}
    for alert in alerts[1:]:
        common = {k: v for k, v in common.items() if alert["labels"].get(k) == v}
    return {
        "version": "4",
        "groupKey": '{}:{alertname="' + str(common.get("alertname", "")) + '"}',
        "truncatedAlerts": 0,
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "receiver": "modelwerk",
        "groupLabels": {k: v for k, v in common.items() if k == "alertname"},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": list(alerts),
    }


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]

    @property
    def results(self) -> list[str]:
        return [r["result"] for r in self.body.get("results", [])]


def post_webhook(
    port: int,
    body: Mapping[str, Any] | bytes,
    *,
    token: str | None,
    scheme: str = "Bearer",
    timeout: float = 30,
) -> Reply:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"{scheme} {token}"
    request = urllib.request.Request(
        f"http://{LOOPBACK}:{port}{WEBHOOK_PATH}", data=data, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(response.status, json.loads(response.read() or b"{}"))
    except urllib.error.HTTPError as err:
        text = err.read()
        try:
            parsed = json.loads(text) if text else {}
        except json.JSONDecodeError:
            parsed = {"raw": text.decode(errors="replace")}
        return Reply(err.code, parsed)


# --- Models, runs, triggers -----------------------------------------------------------------


def retrain_template(report: TrainerReport, **spec: Any) -> dict[str, Any]:
    """A TrainingRun spec (no model: the Model's own is filled in) whose simulated container
    ends with `report`."""
    body: dict[str, Any] = run_manifest("template", None, report=report.text, **spec)["spec"]
    return body


def retrain_model(
    name: str,
    template: Mapping[str, Any],
    *,
    on_alerts: Sequence[str] = (DRIFT_ALERT,),
    cooldown: str = "1h",
    max_concurrent: int = 1,
    storage_uri: str = STORAGE_URI,
) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Model",
        "metadata": {"name": name},
        "spec": {
            "storage": {"uri": storage_uri},
            "retrain": {
                "template": dict(template),
                "onAlerts": list(on_alerts),
                "cooldown": cooldown,
                "maxConcurrent": max_concurrent,
            },
        },
    }


def retrain_runs(namespace: str, model: str, reason: str = "alert") -> list[dict[str, Any]]:
    """TrainingRuns the retrain policy started for `model` (label modelwerk.io/retrain)."""
    return get_list("trainingruns", namespace, f"{LABEL_RETRAIN}={reason},{LABEL_MODEL}={model}")


def all_runs(namespace: str) -> list[dict[str, Any]]:
    return get_list("trainingruns", namespace)


def triggers(namespace: str, model: str) -> list[dict[str, Any]]:
    body = get("model", model, namespace) or {}
    found: list[dict[str, Any]] = ((body.get("status") or {}).get("retrain") or {}).get(
        "triggers"
    ) or []
    return found


# --- training -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalTraining:
    report: TrainerReport
    artifact: Path

    @property
    def uri(self) -> str:
        return str(self.report.data["artifact"]["uri"])

    @property
    def digest(self) -> str:
        return str(self.report.data["artifact"]["digest"])

    @property
    def baseline(self) -> dict[str, dict[str, float]]:
        features: dict[str, dict[str, float]] = self.report.data["baseline"]["features"]
        return features

    @property
    def feature_names(self) -> list[str]:
        """In the column order of the training matrix (the report keeps it)."""
        return list(self.baseline)


def train_locally(workdir: Path) -> LocalTraining:
    """Runs the reference trainer (`python -m modelwerk.trainers.iris`) with the SDK's
    variables pointing into `workdir`: a real artifact at a file:// URI the model server can
    load, and its real report (metrics, digest, per-feature baseline)."""
    output = workdir / "output"
    output.mkdir(parents=True)
    message = workdir / "termination-log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELWERK_")}
    env.update(
        {
            sdk.ENV_TERMINATION_MESSAGE_PATH: str(message),
            sdk.ENV_OUTPUT_DIR: str(output),
            sdk.ENV_OUTPUT_URI: output.resolve().as_uri(),
            sdk.ENV_RUN: "e2e-reference",
            sdk.ENV_SEED: str(REFERENCE_SEED),
            sdk.ENV_HYPERPARAMETERS: json.dumps(REFERENCE_HYPERPARAMETERS),
        }
    )
    proc = subprocess.run(
        [sys.executable, "-m", "modelwerk.trainers.iris"],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"reference trainer exited {proc.returncode}:\n{proc.stderr}")
    training = LocalTraining(TrainerReport(message.read_text(encoding="utf-8")), output)
    assert training.uri == (output / "model.joblib").resolve().as_uri(), training.uri
    return training


# --- child processes ------------------------------------------------------------------------


def binary(env_name: str, *names: str) -> str:
    """A server binary from the environment variable, else the first of `names` on PATH."""
    given = os.environ.get(env_name)
    candidates = [given] if given else list(names)
    for candidate in candidates:
        path = shutil.which(candidate)
        if path:
            return path
    raise RuntimeError(
        f"none of {candidates} found (set {env_name}); Debian: apt-get install "
        "--no-install-recommends prometheus prometheus-alertmanager (hack/bootstrap.sh)"
    )


class Server:
    """A child process with a log file and an HTTP readiness URL."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, ready_url: str) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.ready_url = ready_url
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 60, env: Mapping[str, str] | None = None) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                start_new_session=True,
            )
        wait_for(f"{self.name} ready at {self.ready_url}", self.ready, timeout=timeout)

    def ready(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited; log:\n{self.log()[-4000:]}")
        try:
            with urllib.request.urlopen(self.ready_url, timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def stop(self, timeout: float = 20) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def http_json(url: str, *, params: Mapping[str, str] | None = None, timeout: float = 10) -> Any:
    if params:
        url = f"{url}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def http_text(url: str, *, timeout: float = 10) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode())


def model_server(
    workdir: Path, training: LocalTraining, *, model: str, version: int
) -> tuple[Server, int]:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "modelwerk.serving",
        "--runtime",
        "native",
        "--model-uri",
        training.uri,
        "--digest",
        training.digest,
        "--model-name",
        model,
        "--model-version",
        str(version),
        "--feature-names",
        ",".join(training.feature_names),
        "--host",
        LOOPBACK,
        "--port",
        str(port),
    ]
    server = Server(
        "model server", argv, workdir / "model-server.log", f"http://{LOOPBACK}:{port}/readyz"
    )
    return server, port


def alertmanager(
    workdir: Path,
    *,
    webhook_url: str,
    token_file: Path,
    group_by: Sequence[str],
    listen: str = LOOPBACK,
) -> tuple[Server, int]:
    """Alertmanager (0.25 syntax) routing everything to one webhook receiver with a bearer
    token read from `token_file`; clustering off, listening on `listen` (the loopback unless
    a Prometheus elsewhere must reach it)."""
    port = free_port()
    config = {
        "route": {
            "receiver": "modelwerk",
            "group_by": list(group_by),
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1m",
        },
        "receivers": [
            {
                "name": "modelwerk",
                "webhook_configs": [
                    {
                        "url": webhook_url,
                        "send_resolved": False,
                        "http_config": {"authorization": {"credentials_file": str(token_file)}},
                    }
                ],
            }
        ],
    }
    config_file = workdir / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    storage = workdir / "alertmanager-data"
    storage.mkdir()
    argv = [
        binary("ALERTMANAGER", "prometheus-alertmanager", "alertmanager"),
        f"--config.file={config_file}",
        f"--storage.path={storage}",
        f"--web.listen-address={listen}:{port}",
        "--cluster.listen-address=",  # no HA gossip: nothing listens beyond the one port
        "--log.level=debug",
    ]
    return Server(
        "alertmanager", argv, workdir / "alertmanager.log", f"http://{listen}:{port}/-/ready"
    ), port


def prometheus(
    workdir: Path,
    *,
    rule_groups: Sequence[Mapping[str, Any]],
    target: str,
    target_labels: Mapping[str, str],
    alertmanager_target: str,
) -> tuple[Server, int]:
    """Prometheus scraping one static target every second, evaluating `rule_groups` every
    second and alerting to one Alertmanager; listening on the loopback only."""
    port = free_port()
    rules_file = workdir / "rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": list(rule_groups)}, sort_keys=False))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(rules_file)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager_target]}]}]},
        "scrape_configs": [
            {
                "job_name": "modelwerk-serving",
                "static_configs": [{"targets": [target], "labels": dict(target_labels)}],
            }
        ],
    }
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    storage = workdir / "prometheus-data"
    storage.mkdir()
    argv = [
        binary("PROMETHEUS", "prometheus"),
        f"--config.file={config_file}",
        f"--storage.tsdb.path={storage}",
        f"--web.listen-address={LOOPBACK}:{port}",
        "--log.level=debug",
    ]
    return Server(
        "prometheus", argv, workdir / "prometheus.log", f"http://{LOOPBACK}:{port}/-/ready"
    ), port


# --- traffic --------------------------------------------------------------------------------


class Traffic(threading.Thread):
    """Sends batches of rows to the model server at a steady pace until stopped, at most
    `max_requests` requests or `max_seconds`; `shift` moves feature columns by a constant."""

    def __init__(
        self,
        url: str,
        rows: Sequence[Sequence[float]],
        *,
        batch: int = 10,
        interval: float = 0.05,
        max_requests: int = 20_000,
        max_seconds: float = 400,
        opener: urllib.request.OpenerDirector | None = None,
    ) -> None:
        super().__init__(name="traffic", daemon=True)
        self.url = url
        self.rows = [list(r) for r in rows]
        self.batch = batch
        self.interval = interval
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.shift: dict[int, float] = {}
        # The default honours the environment's proxies; a ClusterIP needs a direct opener.
        self.opener = opener or urllib.request.build_opener()
        self.sent = 0
        self.failures: list[str] = []
        self._stop_event = threading.Event()
        self._lock = threading.Lock()

    def set_shift(self, shift: Mapping[int, float]) -> None:
        with self._lock:
            self.shift = dict(shift)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)

    def run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        position = 0
        while (
            not self._stop_event.is_set()
            and self.sent < self.max_requests
            and time.monotonic() < deadline
        ):
            with self._lock:
                shift = dict(self.shift)
            instances = []
            for _ in range(self.batch):
                row = list(self.rows[position % len(self.rows)])
                position += 1
                for column, delta in shift.items():
                    row[column] += delta
                instances.append(row)
            body = json.dumps({"instances": instances}).encode()
            request = urllib.request.Request(
                self.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
            )
            try:
                with self.opener.open(request, timeout=5) as response:
                    response.read()
            except OSError as err:
                self.failures.append(str(err))
            self.sent += 1
            # Pacing between requests (and the stop signal), not a wait for a condition.
            self._stop_event.wait(self.interval)


def hold(what: str, probe: Callable[[], str | None], *, seconds: float, interval: float = 1) -> int:
    """Asserts that `probe` reports no problem (returns None) at every check for `seconds`;
    returns the number of checks made."""
    deadline = time.monotonic() + seconds
    checks = 0
    while True:
        problem = probe()
        checks += 1
        if problem is not None:
            raise AssertionError(f"{what}: {problem}")
        if time.monotonic() >= deadline:
            return checks
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
