"""The Seldon runtime under seldon-core 1.19's own microservice wrapper, as a real process."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
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

pytest.importorskip("seldon_core", reason="the seldon extra (seldon-core) is not installed")
joblib = pytest.importorskip("joblib")
pytest.importorskip("sklearn")

FEATURES = "sepal_length_cm,sepal_width_cm,petal_length_cm,petal_width_cm"
LABELS = {"model": "iris", "version": "4"}
SELDON_CLASS = "modelwerk.serving.seldon.SeldonModel"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return train(tmp_path_factory.mktemp("seldon-train"))


def wrapper() -> list[str]:
    script = Path(PYTHON).parent / "seldon-core-microservice"
    if script.exists():
        return [str(script)]
    found = shutil.which("seldon-core-microservice")
    return [found] if found else [PYTHON, "-m", "seldon_core.microservice"]


def model_env(trained: Trained, digest: str | None = None) -> dict[str, str]:
    return clean_env(
        MODELWERK_MODEL_URI=str(trained.artifact),
        MODELWERK_MODEL_DIGEST=digest or trained.report.artifact.digest,
        MODELWERK_MODEL_NAME="iris",
        MODELWERK_MODEL_VERSION="4",
        MODELWERK_FEATURE_NAMES=FEATURES,
        # As the SeldonDeployment builder sets it: metrics go to the scrape endpoint only.
        INCLUDE_METRICS_IN_CLIENT_RESPONSE="false",
    )


def ports_args(http_port: int, metrics_port: int) -> list[str]:
    # No gRPC workers: the REST path is under test, and a gRPC port would be one more to race.
    return [
        "--http-port",
        str(http_port),
        "--metrics-port",
        str(metrics_port),
        "--grpc-workers",
        "0",
    ]


@pytest.fixture(scope="module")
def seldon(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    http_port, metrics_port = free_port(), free_port()
    argv = [
        *wrapper(),
        SELDON_CLASS,
        "--service-type",
        "MODEL",
        *ports_args(http_port, metrics_port),
    ]
    api, metrics = f"http://127.0.0.1:{http_port}", f"http://127.0.0.1:{metrics_port}"
    with running(argv, model_env(trained), tmp_path_factory.mktemp("seldon-server")) as proc:
        wait_until(responds(f"{api}/health/ping"), server=proc, what="/health/ping")
        wait_until(responds(f"{metrics}/metrics"), server=proc, what="the metrics port")
        yield api, metrics


def iris_rows() -> list[list[float]]:
    from sklearn.datasets import load_iris

    data: Any = load_iris().data
    return [[float(v) for v in row] for row in data[::15]]


def test_predictions_equal_the_artifacts_own(seldon: tuple[str, str], trained: Trained) -> None:
    api, _ = seldon
    rows = iris_rows()
    expected = joblib.load(trained.artifact).predict(rows).tolist()
    assert len(set(expected)) == 3
    result = http("POST", f"{api}/api/v1.0/predictions", {"data": {"ndarray": rows}})
    assert result.status == 200, result.body
    assert result.json()["data"]["ndarray"] == expected
    # Metrics are for the scrape endpoint, not for clients.
    assert "metrics" not in result.json().get("meta", {})
    tensor = {"shape": [len(rows), 4], "values": [v for row in rows for v in row]}
    result = http("POST", f"{api}/api/v1.0/predictions", {"data": {"tensor": tensor}})
    assert result.json()["data"]["ndarray"] == expected


def test_health_status_and_metadata(seldon: tuple[str, str], trained: Trained) -> None:
    api, _ = seldon
    status = http("GET", f"{api}/health/status").json()
    assert status["jsonData"]["digest"] == trained.report.artifact.digest
    metadata = http("GET", f"{api}/metadata").json()
    assert metadata["name"] == "iris"
    assert metadata["versions"] == ["4"]
    assert metadata["inputs"][0]["schema"]["names"] == FEATURES.split(",")


def test_metrics_move_with_requests(seldon: tuple[str, str], trained: Trained) -> None:
    api, metrics = seldon
    rows = iris_rows()
    before = scrape(f"{metrics}/metrics")
    assert http("POST", f"{api}/api/v1.0/predictions", {"data": {"ndarray": rows}}).status == 200
    after = scrape(f"{metrics}/metrics")

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert moved("modelwerk_requests_total", outcome="success", **LABELS) == 1
    assert moved("modelwerk_request_duration_seconds_count", **LABELS) == 1
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
    assert present(
        after, "modelwerk_model_info", digest=trained.report.artifact.digest, method="predict"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"data": {"ndarray": [[1.0, 2.0, 3.0]]}}, "list of 4 numbers"),
        ({"data": {"ndarray": [[1.0, "x", 3.0, 4.0]]}}, "non-numeric"),
        ({"data": {"tensor": {"shape": [2, 4], "values": [1.0]}}}, "data.tensor"),
        ({"strData": "hello"}, "expected"),
    ],
)
def test_bad_requests_are_client_errors(
    seldon: tuple[str, str], body: dict[str, Any], message: str
) -> None:
    api, metrics = seldon
    before = scrape(f"{metrics}/metrics")
    result = http("POST", f"{api}/api/v1.0/predictions", body)
    assert result.status == 400
    assert message in result.json()["status"]["info"]
    after = scrape(f"{metrics}/metrics")
    name = "modelwerk_requests_total"
    errors = total(after, name, outcome="client_error", **LABELS)
    assert errors - total(before, name, outcome="client_error", **LABELS) == 1
    assert total(after, name, outcome="success", **LABELS) == total(
        before, name, outcome="success", **LABELS
    )


def test_wrong_digest_refuses_to_start(trained: Trained, tmp_path: Path) -> None:
    wrong = "sha256:" + "0" * 64
    argv = [
        *wrapper(),
        SELDON_CLASS,
        "--service-type",
        "MODEL",
        *ports_args(free_port(), free_port()),
    ]
    server = Server(argv, model_env(trained, digest=wrong), tmp_path)
    try:
        code = server.wait_exit(timeout=60)
    finally:
        server.terminate()
    assert code == 3
    assert "digest mismatch" in server.stderr
    assert wrong in server.stderr


def test_launched_through_modelwerk_serving(trained: Trained, tmp_path: Path) -> None:
    http_port, metrics_port = free_port(), free_port()
    argv = [
        PYTHON,
        "-m",
        "modelwerk.serving",
        "--runtime",
        "seldon",
        "--model-uri",
        str(trained.artifact),
        "--digest",
        trained.report.artifact.digest,
        "--model-name",
        "iris",
        "--model-version",
        "4",
        "--port",
        str(http_port),
        "--",
        "--metrics-port",
        str(metrics_port),
        "--grpc-workers",
        "0",
    ]
    api = f"http://127.0.0.1:{http_port}"
    with running(argv, clean_env(), tmp_path) as proc:
        wait_until(responds(f"{api}/health/ping"), server=proc, what="/health/ping")
        body = {"data": {"ndarray": [[5.1, 3.5, 1.4, 0.2]]}}
        result = http("POST", f"{api}/api/v1.0/predictions", body).json()
        assert result["data"]["ndarray"] == [0]
        assert "metrics" not in result.get("meta", {})


def test_grpc_messages_take_the_same_path(
    trained: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    """predict_raw with a SeldonMessage, the metrics then fed to Seldon's own store."""
    from seldon_core.metrics import SeldonMetrics
    from seldon_core.seldon_methods import handle_raw_custom_metrics
    from seldon_core.utils import json_to_seldon_message, seldon_message_to_json

    from modelwerk.serving.seldon import SeldonModel

    for key, value in model_env(trained).items():
        if key.startswith("MODELWERK_"):
            monkeypatch.setenv(key, value)
    # Seldon read INCLUDE_METRICS_IN_CLIENT_RESPONSE at import: it is true (the default) here.
    model = SeldonModel()
    rows = iris_rows()
    response = model.predict_raw(json_to_seldon_message({"data": {"ndarray": rows}}))
    as_json = seldon_message_to_json(response)
    expected = joblib.load(trained.artifact).predict(rows).tolist()
    assert as_json["data"]["ndarray"] == pytest.approx(expected)

    store = SeldonMetrics()
    try:
        handle_raw_custom_metrics(response, store, True, "predict")
        text, _ = store.generate_metrics()
    finally:
        del store
    assert "modelwerk_requests_total{" in text
    assert 'outcome="success"' in text
    assert "modelwerk_feature_value_count_total{" in text

    bad = model.predict_raw(json_to_seldon_message({"data": {"ndarray": [[1.0]]}}))
    assert seldon_message_to_json(bad)["status"]["code"] == 400
