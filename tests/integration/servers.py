"""Local processes for the serving and canary tests, each cleaned up by its context manager:

- artifacts from the reference trainer (`python -m modelwerk.trainers.iris`), run outside any
  cluster with the SDK's variables pointing into a directory of the test;
- real model servers (`python -m modelwerk.serving --runtime native ...`) serving them;
- a real Prometheus (`/usr/bin/prometheus`) scraping the servers every second;
- a bounded traffic generator (a background thread at a modest, capped rate, for a capped time);
- the operator with flags and environment of its own, swapped in for the session operator.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelwerk import sdk
from modelwerk.serving.artifacts import file_digest
from tests.integration.cluster import apply, condition, get, get_list, kubectl, wait_for
from tests.integration.conftest import OperatorProcess, free_port
from tests.integration.trainingruns import model_manifest

PROMETHEUS = os.environ.get("MODELWERK_TEST_PROMETHEUS", "/usr/bin/prometheus")
SCRAPE_INTERVAL = "1s"

# One iris row per feature of the reference trainer (sepal length/width, petal length/width).
IRIS_ROWS: tuple[tuple[float, float, float, float], ...] = (
    (5.1, 3.5, 1.4, 0.2),
    (6.2, 2.9, 4.3, 1.3),
    (7.7, 3.0, 6.1, 2.3),
)


# --- artifacts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Artifact:
    """A model the reference trainer wrote, with the report it gave."""

    path: Path
    report: dict[str, Any]

    @property
    def uri(self) -> str:
        return str(self.report["artifact"]["uri"])

    @property
    def digest(self) -> str:
        return str(self.report["artifact"]["digest"])

    def declared_version(self, number: int) -> dict[str, Any]:
        """This artifact as a declared `spec.versions` entry of a Model."""
        return {
            "version": number,
            "artifact": {"uri": self.uri, "digest": self.digest},
            "metrics": dict(self.report["metrics"]),
            "baseline": self.report["baseline"],
        }


def train(workdir: Path, runs: Mapping[str, float], *, seed: int = 42) -> dict[str, Artifact]:
    """Runs the reference trainer once per run name (all at once), as a TrainingRun's container
    would, into `workdir/<run>`; the value is the hyperparameter C, so different values give
    different artifacts (and digests)."""
    procs: dict[str, tuple[subprocess.Popen[str], Path]] = {}
    try:
        for run, c in runs.items():
            out = workdir / run
            out.mkdir(parents=True)
            env = {k: v for k, v in os.environ.items() if not k.startswith("MODELWERK_")}
            env.update(
                {
                    sdk.ENV_RUN: run,
                    sdk.ENV_OUTPUT_DIR: str(out / "output"),
                    sdk.ENV_OUTPUT_URI: (out / "output").resolve().as_uri(),
                    sdk.ENV_TERMINATION_MESSAGE_PATH: str(out / "termination-log"),
                    sdk.ENV_SEED: str(seed),
                    sdk.ENV_HYPERPARAMETERS: json.dumps({"C": str(c), "max_iter": "200"}),
                }
            )
            proc = subprocess.Popen(
                [sys.executable, "-m", "modelwerk.trainers.iris"],
                env=env,
                cwd=out,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            procs[run] = (proc, out)
        artifacts: dict[str, Artifact] = {}
        for run, (proc, out) in procs.items():
            _, stderr = proc.communicate(timeout=300)
            if proc.returncode != 0:
                raise RuntimeError(f"reference trainer {run} exited {proc.returncode}:\n{stderr}")
            report: dict[str, Any] = json.loads((out / "termination-log").read_text("utf-8"))
            path = Path(urllib.parse.urlparse(report["artifact"]["uri"]).path)
            assert path.is_file(), report
            assert file_digest(path) == report["artifact"]["digest"], report
            artifacts[run] = Artifact(path=path, report=report)
        return artifacts
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


# --- processes ------------------------------------------------------------------------------


def _http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as err:
        return int(err.code), bytes(err.read())
    except OSError:
        return 0, b""


def _stop(proc: subprocess.Popen[Any], timeout: float = 15) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class ModelServer:
    artifact: Artifact
    model_name: str
    version: int
    log_path: Path
    deployment: str | None = None
    """The modelwerk Deployment this server stands in for: Prometheus labels its series with
    `modelwerk_deployment`, as the ServiceMonitor's relabelling does for a pod."""
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def target_labels(self) -> dict[str, str]:
        return {"modelwerk_deployment": self.deployment} if self.deployment else {}

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def predict_url(self) -> str:
        return f"{self.url}/v1/models/{self.model_name}:predict"

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modelwerk.serving",
                "--runtime",
                "native",
                "--model-uri",
                self.artifact.uri,
                "--digest",
                self.artifact.digest,
                "--model-name",
                self.model_name,
                "--model-version",
                str(self.version),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("MODELWERK_")},
        )
        log.close()

    def wait_ready(self) -> None:
        wait_for(f"model server v{self.version} ready", self._ready, timeout=60)

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(
                f"model server v{self.version} exited {self.proc.returncode}:\n"
                + self.log_path.read_text(errors="replace")
            )
        return _http_get(f"{self.url}/readyz")[0] == 200

    def metrics(self) -> str:
        code, body = _http_get(f"{self.url}/metrics")
        assert code == 200, code
        return body.decode()

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None


@contextlib.contextmanager
def model_servers(
    workdir: Path,
    model_name: str,
    artifacts: Mapping[int, Artifact],
    *,
    deployment: str | None = None,
) -> Iterator[dict[int, ModelServer]]:
    """One model server per version, all stopped on exit."""
    prefix = f"{deployment}-" if deployment else ""
    servers = {
        number: ModelServer(
            artifact,
            model_name,
            number,
            workdir / f"server-{prefix}v{number}.log",
            deployment=deployment,
        )
        for number, artifact in artifacts.items()
    }
    try:
        for server in servers.values():
            server.launch()
        for server in servers.values():
            server.wait_ready()
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@dataclass
class Prometheus:
    workdir: Path
    targets: Mapping[str, Mapping[str, str]]
    """Address -> the labels Prometheus adds to every series scraped from it."""
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if not Path(PROMETHEUS).is_file():
            raise RuntimeError(f"{PROMETHEUS} not found (MODELWERK_TEST_PROMETHEUS)")
        config = self.workdir / "prometheus.yml"
        config.write_text(
            json.dumps(  # YAML is a superset of JSON
                {
                    "global": {
                        "scrape_interval": SCRAPE_INTERVAL,
                        "scrape_timeout": SCRAPE_INTERVAL,
                        "evaluation_interval": SCRAPE_INTERVAL,
                    },
                    "scrape_configs": [
                        {
                            "job_name": "model-servers",
                            "static_configs": [
                                {"targets": [target], "labels": dict(labels)}
                                for target, labels in self.targets.items()
                            ],
                        }
                    ],
                },
                indent=1,
            )
        )
        log = (self.workdir / "prometheus.log").open("ab")
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for("Prometheus ready", self._ready, timeout=60)
        wait_for(
            f"Prometheus scraping {len(self.targets)} target(s)",
            lambda: self.query_value("count(up == 1) or vector(0)") == len(self.targets),
            timeout=30,
        )

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(
                f"prometheus exited {self.proc.returncode}:\n"
                + (self.workdir / "prometheus.log").read_text(errors="replace")
            )
        return _http_get(f"{self.url}/-/ready")[0] == 200

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        code, body = _http_get(url, timeout=10)
        assert code == 200, (code, body)
        result: list[dict[str, Any]] = json.loads(body)["data"]["result"]
        return result

    def query_value(self, promql: str) -> float | None:
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None


@contextlib.contextmanager
def prometheus(workdir: Path, servers: Sequence[ModelServer]) -> Iterator[Prometheus]:
    """Prometheus scraping `servers`, each with its target labels."""
    prom = Prometheus(workdir, {s.address: s.target_labels for s in servers})
    try:
        prom.start()
        yield prom
    finally:
        prom.stop()


# --- traffic --------------------------------------------------------------------------------


def predict_body(batch: int = 1) -> bytes:
    rows = [list(IRIS_ROWS[i % len(IRIS_ROWS)]) for i in range(batch)]
    return json.dumps({"instances": rows}).encode()


@dataclass
class Stream:
    """Requests to one URL: `rate` per second, each with `batch` instances."""

    url: str
    rate: float = 10.0
    batch: int = 1


class Traffic:
    """Sends predictions from a background thread, at most `max_rate` requests per second per
    stream and for at most `max_seconds`, until stopped. Streams can be added while it runs."""

    MAX_RATE = 50.0

    def __init__(self, *, max_seconds: float = 120.0) -> None:
        self.max_seconds = max_seconds
        self.streams: list[Stream] = []
        self.outcomes: dict[str, dict[int, int]] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)

    def add(self, stream: Stream) -> None:
        assert 0 < stream.rate <= self.MAX_RATE, stream
        with self._lock:
            self.streams.append(stream)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def count(self, url: str, status: int = 200) -> int:
        with self._lock:
            return self.outcomes.get(url, {}).get(status, 0)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        due: dict[int, float] = {}
        while not self._stop.is_set() and time.monotonic() < deadline:
            with self._lock:
                streams = list(enumerate(self.streams))
            now = time.monotonic()
            for index, stream in streams:
                if due.get(index, now) <= now:
                    due[index] = now + 1.0 / stream.rate
                    self._send(stream)
            next_due = min(due.values(), default=now + 0.05)
            self._stop.wait(max(0.0, min(next_due - time.monotonic(), 0.05)))

    def _send(self, stream: Stream) -> None:
        request = urllib.request.Request(
            stream.url,
            data=predict_body(stream.batch),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                status = int(resp.status)
                resp.read()
        except urllib.error.HTTPError as err:
            status = int(err.code)
        except OSError as err:
            status = 0
            if len(self.errors) < 20:
                self.errors.append(f"{stream.url}: {err}")
        with self._lock:
            per_url = self.outcomes.setdefault(stream.url, {})
            per_url[status] = per_url.get(status, 0) + 1


@contextlib.contextmanager
def traffic(*streams: Stream, max_seconds: float = 120.0) -> Iterator[Traffic]:
    gen = Traffic(max_seconds=max_seconds)
    for stream in streams:
        gen.add(stream)
    gen.start()
    try:
        yield gen
    finally:
        gen.stop()


# --- an operator of the test's own ----------------------------------------------------------


@contextlib.contextmanager
def own_operator(
    session_operator: OperatorProcess,
    kubeconfig: str,
    log_path: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
) -> Iterator[OperatorProcess]:
    """Stops the session operator (it watches every namespace), runs `modelwerk run *args` with
    `env` added to its environment, and on exit stops it and starts the session operator again."""
    if session_operator.proc is not None:
        session_operator.stop()
    proc = OperatorProcess(kubeconfig, log_path, *args, env=env)
    try:
        proc.start()
        yield proc
    finally:
        try:
            if proc.proc is not None:
                proc.stop()
        finally:
            session_operator.start()


# --- cluster-scoped state shared by concurrent test sessions ---------------------------------

CRD_LOCK = Path(tempfile.gettempdir()) / "modelwerk-test-seldon-crd.lock"


@contextlib.contextmanager
def seldon_crd_lock(*, exclusive: bool, timeout: float = 180) -> Iterator[None]:
    """A lock on the SeldonDeployment CRD across test sessions on one cluster (a flock on a
    file): a test that deletes the CRD holds it exclusively, one that needs the CRD holds it
    shared, so one session's deletion never pulls the CRD from under another's test."""
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    with CRD_LOCK.open("a") as handle:

        def acquired() -> bool:
            try:
                fcntl.flock(handle, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        wait_for(
            f"the {'exclusive' if exclusive else 'shared'} Seldon CRD lock {CRD_LOCK}",
            acquired,
            timeout=timeout,
            interval=0.5,
        )
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- kubectl watches ------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchEvent:
    type: str
    object: dict[str, Any]
    at: float


class Watch:
    """`kubectl get <kind> -w --output-watch-events -o json` in the background: every change of
    the selected objects, in the apiserver's order, so nothing between two polls is missed."""

    def __init__(self, kind: str, namespace: str, selector: str | None = None) -> None:
        args = [
            "kubectl",
            "get",
            kind,
            "-n",
            namespace,
            "-w",
            "--output-watch-events",
            "-o",
            "json",
        ]
        if selector:
            args += ["-l", selector]
        self.args = args
        self.events: list[WatchEvent] = []
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._thread = threading.Thread(target=self._read, name=f"watch-{kind}", daemon=True)

    def __enter__(self) -> Watch:
        self._proc = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=os.environ
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            _stop(self._proc, timeout=5)
        self._thread.join(timeout=10)

    def _read(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        decoder = json.JSONDecoder()
        buffer = ""
        for line in self._proc.stdout:
            buffer += line
            while True:
                stripped = buffer.lstrip()
                if not stripped:
                    buffer = ""
                    break
                try:
                    item, end = decoder.raw_decode(stripped)
                except json.JSONDecodeError:
                    break  # an incomplete document: read on
                buffer = stripped[end:]
                with self._lock:
                    self.events.append(WatchEvent(item["type"], item["object"], time.monotonic()))

    def snapshot(self) -> list[WatchEvent]:
        with self._lock:
            return list(self.events)

    def states(self) -> list[dict[str, dict[str, Any]]]:
        """The set of objects (by name) after each event."""
        current: dict[str, dict[str, Any]] = {}
        result = []
        for event in self.snapshot():
            name = event.object["metadata"]["name"]
            if event.type == "DELETED":
                current.pop(name, None)
            else:
                current[name] = event.object
            result.append(dict(current))
        return result


# --- the modelwerk Deployment as a user sees it ---------------------------------------------

MWD = "deployments.modelwerk.io"
API_VERSION = "modelwerk.io/v1alpha1"
LABEL_DEPLOYMENT = "modelwerk.io/deployment"
LABEL_MODEL_VERSION = "modelwerk.io/model-version"
LABEL_TRACK = "modelwerk.io/track"


def deployment_manifest(name: str, model: str, **spec: Any) -> dict[str, Any]:
    """A modelwerk Deployment; keyword arguments are spec fields by their camelCase names."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"model": model, **spec},
    }


def mwd(namespace: str, name: str) -> dict[str, Any]:
    obj = get(MWD, name, namespace)
    assert obj is not None, f"Deployment {namespace}/{name} is gone"
    return obj


def patch(kind: str, namespace: str, name: str, body: Mapping[str, Any]) -> None:
    kubectl("patch", kind, name, "-n", namespace, "--type=merge", "-p", json.dumps(body))


def reconciled(obj: Mapping[str, Any]) -> bool:
    status = obj.get("status") or {}
    return bool(status.get("observedGeneration") == obj["metadata"]["generation"])


def wait_mwd(
    namespace: str,
    name: str,
    what: str,
    predicate: Callable[[dict[str, Any]], bool],
    *,
    timeout: float = 60,
) -> dict[str, Any]:
    """Until the modelwerk Deployment, reconciled at its current generation, satisfies
    `predicate`; returns it."""

    def probe() -> dict[str, Any] | None:
        obj = get(MWD, name, namespace)
        return obj if obj is not None and reconciled(obj) and predicate(obj) else None

    return wait_for(f"Deployment {namespace}/{name}: {what}", probe, timeout=timeout)


def has_condition(
    obj: Mapping[str, Any], type_: str, status: str, reason: str | None = None
) -> bool:
    cond = condition(dict(obj), type_)
    return bool(
        cond and cond["status"] == status and (reason is None or cond.get("reason") == reason)
    )


def version_deployments(namespace: str, name: str) -> dict[int, dict[str, Any]]:
    """The apps Deployments of a modelwerk Deployment, by model version."""
    return {
        int(d["metadata"]["labels"][LABEL_MODEL_VERSION]): d
        for d in get_list("deployments.apps", namespace, f"{LABEL_DEPLOYMENT}={name}")
    }


def ready_replicas(deployments: Mapping[Any, Mapping[str, Any]]) -> int:
    return sum(int((d.get("status") or {}).get("readyReplicas") or 0) for d in deployments.values())


def pods_of(namespace: str, name: str, version: int | None = None) -> list[dict[str, Any]]:
    selector = f"{LABEL_DEPLOYMENT}={name}"
    if version is not None:
        selector += f",{LABEL_MODEL_VERSION}={version}"
    return [
        p
        for p in get_list("pods", namespace, selector)
        if not p["metadata"].get("deletionTimestamp")
    ]


def pod_ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    ready = any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []
    )
    return bool(status.get("phase") == "Running" and ready and status.get("podIP"))


def endpoint_addresses(namespace: str, service: str) -> set[str]:
    """Ready addresses of the Service's EndpointSlices (what kube-proxy would route to)."""
    addresses: set[str] = set()
    for eps in get_list(
        "endpointslices.discovery.k8s.io", namespace, f"kubernetes.io/service-name={service}"
    ):
        for endpoint in eps.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready", True):
                addresses.update(endpoint.get("addresses") or [])
    return addresses


def events_of(namespace: str, name: str, kind: str = "Deployment") -> list[dict[str, Any]]:
    return [
        e
        for e in get_list("events", namespace)
        if e["involvedObject"].get("name") == name
        and e["involvedObject"].get("kind") == kind
        and e["involvedObject"].get("apiVersion", "").startswith("modelwerk.io/")
    ]


def _model_status(namespace: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = (get("model", name, namespace) or {}).get("status") or {}
    return status


def model_with(namespace: str, *versions: dict[str, Any], name: str = "iris") -> None:
    apply(model_manifest(name, versions=list(versions)), namespace)
    wait_for(
        f"Model {name} to register {len(versions)} declared version(s)",
        lambda: len(_model_status(namespace, name).get("versions") or []) == len(versions),
    )


def available(version: int, ready: int) -> Callable[[dict[str, Any]], bool]:
    def check(obj: dict[str, Any]) -> bool:
        status = obj.get("status") or {}
        return (
            status.get("phase") == "Available"
            and status.get("currentVersion") == version
            and status.get("readyReplicas") == ready
            and has_condition(obj, "Ready", "True", "Serving")
        )

    return check


def wait_available(namespace: str, name: str, version: int, ready: int) -> dict[str, Any]:
    return wait_mwd(
        namespace, name, f"Available on version {version}, {ready} ready", available(version, ready)
    )


# --- shared by the Deployment tests (test_deployment.py, test_gateway.py, ...) -----------------


def declared(number: int, uri: str | None = None) -> dict[str, Any]:
    """A version registered from outside the cluster, with a digest and a training baseline."""
    return {
        "version": number,
        "artifact": {
            "uri": uri or f"s3://bucket/iris/declared-{number}/model.joblib",
            "digest": "sha256:" + f"{number:02x}" * 32,
        },
        "metrics": {"accuracy": 0.9 + number / 100},
        "baseline": {
            "features": {
                "sepal_length_cm": {"mean": 5.8, "std": 0.8},
                "petal_length_cm": {"mean": 3.8, "std": 1.8},
            },
            # The model's column order; the apiserver would lose the map's.
            "featureOrder": ["sepal_length_cm", "petal_length_cm"],
        },
    }


def apply_canary(namespace: str, *, runtime: str, replicas: int, percent: int) -> None:
    """Model iris with declared versions 1 and 2, and Deployment iris serving version 1 with a
    canary of version 2 at `percent` (no analysis)."""
    model_with(namespace, declared(1), declared(2))
    apply(
        deployment_manifest(
            "iris",
            "iris",
            version=1,
            runtime=runtime,
            replicas=replicas,
            canary={"version": 2, "trafficPercent": percent},
        ),
        namespace,
    )


def wait_pods(namespace: str, name: str, version: int, count: int) -> list[dict[str, Any]]:
    def probe() -> list[dict[str, Any]] | None:
        pods = pods_of(namespace, name, version)
        return pods if len(pods) == count and all(pod_ready(p) for p in pods) else None

    return wait_for(f"{count} ready pods of {name} v{version}", probe)


def wait_endpoints(namespace: str, service: str, ips: set[str]) -> set[str]:
    return wait_for(
        f"Service {service} endpoints {sorted(ips)}",
        lambda: found if (found := endpoint_addresses(namespace, service)) == ips else None,
    )


def report_seldon_state(namespace: str, name: str, state: str, *, replicas: int) -> None:
    """What Seldon's controller (absent here) would write: the SeldonDeployment's status."""
    kubectl(
        "patch",
        "seldondeployment",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"state": state, "replicas": replicas}}),
    )
