"""The native runtime as a real process on a free port, serving an artifact the trainer made."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.unit._serving_support import (
    PYTHON,
    Server,
    Trained,
    clean_env,
    free_port,
    http,
    present,
    responds,
    running,
    scrape,
    total,
    train,
    wait_until,
)

joblib = pytest.importorskip("joblib")
pytest.importorskip("sklearn")

FEATURES = "sepal_length_cm,sepal_width_cm,petal_length_cm,petal_width_cm"
LABELS = {"model": "iris", "version": "4"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return train(tmp_path_factory.mktemp("native-train"))


def server_argv(trained: Trained, port: int, digest: str | None = None) -> list[str]:
    return [
        PYTHON,
        "-m",
        "modelwerk.serving",
        "--runtime",
        "native",
        "--model-uri",
        str(trained.artifact),
        "--digest",
        digest or trained.report.artifact.digest,
        "--model-name",
        "iris",
        "--model-version",
        "4",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--feature-names",
        FEATURES,
    ]


@pytest.fixture(scope="module")
def server(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    logdir = tmp_path_factory.mktemp("native-server")
    with running(server_argv(trained, port), clean_env(), logdir) as proc:
        wait_until(responds(f"{base}/readyz"), server=proc, what="/readyz")
        yield base


def iris_rows() -> list[list[float]]:
    from sklearn.datasets import load_iris

    data: Any = load_iris().data
    return [[float(v) for v in row] for row in data[::15]]


def test_probes(server: str) -> None:
    assert http("GET", f"{server}/healthz").status == 200
    assert http("GET", f"{server}/readyz").json() == {"status": "ready"}
    assert http("GET", f"{server}/v1/models/iris").json() == {"name": "iris", "ready": True}


def test_predictions_equal_the_artifacts_own(server: str, trained: Trained) -> None:
    rows = iris_rows()
    expected = joblib.load(trained.artifact).predict(rows).tolist()
    assert len(set(expected)) == 3  # the sample covers every class, so a mix-up would show
    kserve = http("POST", f"{server}/v1/models/iris:predict", {"instances": rows})
    assert kserve.status == 200
    assert kserve.json() == {"predictions": expected}
    plain = http("POST", f"{server}/predict", {"instances": rows})
    assert plain.json() == {"predictions": expected}


def test_metrics_move_with_requests(server: str, trained: Trained) -> None:
    rows = iris_rows()
    before = scrape(f"{server}/metrics")
    assert http("POST", f"{server}/predict", {"instances": rows}).status == 200
    after = scrape(f"{server}/metrics")

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert moved("modelwerk_requests_total", outcome="success", **LABELS) == 1
    assert moved("modelwerk_request_duration_seconds_count", **LABELS) == 1
    assert moved("modelwerk_request_duration_seconds_bucket", le="+Inf", **LABELS) == 1
    assert moved("modelwerk_predictions_total", **LABELS) == len(rows)
    feature = {"feature": "petal_length_cm", **LABELS}
    assert moved("modelwerk_feature_value_count_total", **feature) == len(rows)
    assert moved("modelwerk_feature_value_positive_sum_total", **feature) == pytest.approx(
        sum(row[2] for row in rows)
    )
    assert moved("modelwerk_feature_value_squares_sum_total", **feature) == pytest.approx(
        sum(row[2] ** 2 for row in rows)
    )
    assert present(after, "modelwerk_feature_value_negative_sum_total", **feature)
    digest = trained.report.artifact.digest
    assert total(after, "modelwerk_model_info", digest=digest, **LABELS) == 1


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/predict", {"instances": [[1.0, 2.0, 3.0]]}, 400, "list of 4 numbers"),
        ("/predict", {"instances": [[1.0, "x", 3.0, 4.0]]}, 400, "non-numeric"),
        ("/predict", {"rows": [[1.0, 2.0, 3.0, 4.0]]}, 400, "instances"),
        ("/predict", b"{not json", 400, "not valid JSON"),
        ("/v1/models/other:predict", {"instances": [[1.0, 2.0, 3.0, 4.0]]}, 404, "other"),
    ],
)
def test_bad_requests_are_client_errors(
    server: str, path: str, body: Any, status: int, message: str
) -> None:
    before = scrape(f"{server}/metrics")
    if isinstance(body, bytes):
        result = http("POST", f"{server}{path}", raw=body)
    else:
        result = http("POST", f"{server}{path}", body)
    assert result.status == status
    assert message in result.json()["error"]
    after = scrape(f"{server}/metrics")
    key = ("modelwerk_requests_total",)
    assert (
        total(after, *key, outcome="client_error", **LABELS)
        - total(before, *key, outcome="client_error", **LABELS)
        == 1
    )
    assert total(after, *key, outcome="success", **LABELS) == total(
        before, *key, outcome="success", **LABELS
    )
    feature = {"feature": "sepal_length_cm", **LABELS}
    assert total(after, "modelwerk_feature_value_count_total", **feature) == total(
        before, "modelwerk_feature_value_count_total", **feature
    )


def test_wrong_digest_refuses_to_start(trained: Trained, tmp_path: Path) -> None:
    wrong = "sha256:" + "0" * 64
    server = Server(server_argv(trained, free_port(), digest=wrong), clean_env(), tmp_path)
    try:
        code = server.wait_exit(timeout=60)
    finally:
        server.terminate()
    assert code == 3
    assert "digest mismatch" in server.stderr
    assert wrong in server.stderr
    assert trained.report.artifact.digest in server.stderr


def test_missing_digest_is_a_config_error(trained: Trained, tmp_path: Path) -> None:
    argv = server_argv(trained, free_port())
    del argv[argv.index("--digest") : argv.index("--digest") + 2]
    server = Server(argv, clean_env(), tmp_path)
    try:
        assert server.wait_exit(timeout=60) == 2
    finally:
        server.terminate()
    assert "MODELWERK_MODEL_DIGEST" in server.stderr


def test_env_configuration_and_sigterm(trained: Trained, tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(
        MODELWERK_MODEL_URI=trained.artifact.as_uri(),
        MODELWERK_MODEL_DIGEST=trained.report.artifact.digest,
        MODELWERK_MODEL_NAME="iris",
        MODELWERK_MODEL_VERSION="9",
        MODELWERK_HOST="127.0.0.1",
        MODELWERK_PORT=str(port),
    )
    base = f"http://127.0.0.1:{port}"
    server = Server([PYTHON, "-m", "modelwerk.serving"], env, tmp_path)
    try:
        wait_until(responds(f"{base}/readyz"), server=server, what="/readyz")
        samples = scrape(f"{base}/metrics")
        assert total(samples, "modelwerk_model_info", model="iris", version="9") == 1
        # Without feature names the columns are labelled by position.
        assert http("POST", f"{base}/predict", {"instances": [[5.1, 3.5, 1.4, 0.2]]}).status == 200
        assert present(
            scrape(f"{base}/metrics"), "modelwerk_feature_value_count_total", feature="f3"
        )
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait_exit(timeout=30) == 0
    finally:
        server.terminate()
    assert "stopping" in server.stderr


@pytest.fixture
def gated_artifact_server(trained: Trained) -> Iterator[tuple[str, threading.Event]]:
    """Serves the artifact over HTTP, but only once the test opens the gate."""
    gate = threading.Event()
    payload = trained.artifact.read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            gate.wait(timeout=60)
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/model.joblib", gate
    finally:
        gate.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def test_not_ready_until_the_download_is_verified(
    trained: Trained, tmp_path: Path, gated_artifact_server: tuple[str, threading.Event]
) -> None:
    uri, gate = gated_artifact_server
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = server_argv(trained, port)
    argv[argv.index("--model-uri") + 1] = uri
    argv += ["--artifact-dir", str(tmp_path / "artifacts")]
    with running(argv, clean_env(), tmp_path / "logs") as server:
        wait_until(responds(f"{base}/healthz"), server=server, what="/healthz")
        loading = http("GET", f"{base}/readyz")
        assert (loading.status, loading.json()) == (503, {"status": "loading"})
        # The same through the Open Inference Protocol: not ready, and no inference.
        assert http("GET", f"{base}/v2/health/live").status == 200
        assert http("GET", f"{base}/v2/health/ready").status == 503
        assert http("GET", f"{base}/v2/models/iris/ready").json() == {
            "name": "iris",
            "ready": False,
        }
        v2_body = {
            "inputs": [
                {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [6.7, 3.0, 5.2, 2.3]}
            ]
        }
        assert http("POST", f"{base}/v2/models/iris/infer", v2_body).status == 503
        gate.set()
        wait_until(responds(f"{base}/readyz"), server=server, what="/readyz")
        result = http("POST", f"{base}/predict", {"instances": [[6.7, 3.0, 5.2, 2.3]]})
        assert result.json() == {"predictions": [2]}
        v2 = http("POST", f"{base}/v2/models/iris/infer", v2_body)
        assert v2.json()["outputs"][0]["data"] == [2]
    assert (tmp_path / "artifacts" / "model.joblib").read_bytes() == trained.artifact.read_bytes()
