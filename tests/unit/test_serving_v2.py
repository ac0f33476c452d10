"""The Open Inference Protocol (v2) on the native runtime, as a real process, spoken to by clients
written against the protocol, not by our server code: request bodies as JSON text in the shape of
the spec's own examples, and NVIDIA's `tritonclient` HTTP client."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.unit._serving_support import (
    PYTHON,
    Trained,
    clean_env,
    free_port,
    http,
    responds,
    running,
    scrape,
    total,
    train,
    wait_until,
)

joblib = pytest.importorskip("joblib")
np = pytest.importorskip("numpy")
httpclient = pytest.importorskip("tritonclient.http")
triton_utils = pytest.importorskip("tritonclient.utils")

FEATURES = ("sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm")
LABELS = {"model": "iris", "version": "4"}
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return train(tmp_path_factory.mktemp("v2-train"))


@pytest.fixture(scope="module")
def server(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    argv = [
        PYTHON,
        "-m",
        "modelwerk.serving",
        "--model-uri",
        str(trained.artifact),
        "--digest",
        trained.report.artifact.digest,
        "--model-name",
        "iris",
        "--model-version",
        "4",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--feature-names",
        ",".join(FEATURES),
    ]
    base = f"http://127.0.0.1:{port}"
    with running(argv, clean_env(), tmp_path_factory.mktemp("v2-server")) as proc:
        wait_until(responds(f"{base}/v2/health/ready"), server=proc, what="/v2/health/ready")
        yield base


@pytest.fixture
def client(server: str) -> Iterator[Any]:
    triton = httpclient.InferenceServerClient(url=server.removeprefix("http://"))
    try:
        yield triton
    finally:
        triton.close()


def model(trained: Trained) -> Any:
    return joblib.load(trained.artifact)


# --- the spec's examples, as JSON text -----------------------------------------------------

# The spec's inference request example (id, one input, one requested output), for this model.
SPEC_REQUEST = b"""
{
  "id" : "42",
  "inputs" : [
    {
      "name" : "input0",
      "shape" : [ 3, 4 ],
      "datatype" : "FP32",
      "data" : [ 5.1, 3.5, 1.4, 0.2, 6.2, 2.9, 4.3, 1.3, 7.7, 3.0, 6.1, 2.3 ]
    }
  ],
  "outputs" : [
    {
      "name" : "predict"
    }
  ]
}
"""


def test_spec_example_request(server: str, trained: Trained) -> None:
    result = http("POST", f"{server}/v2/models/iris/infer", raw=SPEC_REQUEST)
    assert result.status == 200, result.body
    expected = model(trained).predict(ROWS).tolist()
    assert len(set(expected)) == 3
    assert result.json() == {
        "model_name": "iris",
        "model_version": "4",
        "id": "42",
        "outputs": [{"name": "predict", "datatype": "INT64", "shape": [3], "data": expected}],
    }


def test_nested_data_and_versioned_path(server: str, trained: Trained) -> None:
    body = {"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP64", "data": ROWS}]}
    result = http("POST", f"{server}/v2/models/iris/versions/4/infer", body)
    assert result.status == 200, result.body
    assert result.json()["outputs"][0]["data"] == model(trained).predict(ROWS).tolist()
    assert "id" not in result.json()


def test_health_and_metadata(server: str, trained: Trained) -> None:
    assert http("GET", f"{server}/v2/health/live").json() == {"live": True}
    assert http("GET", f"{server}/v2/health/ready").json() == {"ready": True}
    for path in ("/v2/models/iris/ready", "/v2/models/iris/versions/4/ready"):
        assert http("GET", f"{server}{path}").json() == {"name": "iris", "ready": True}
    server_meta = http("GET", f"{server}/v2").json()
    assert server_meta["name"] == "modelwerk"
    assert server_meta["extensions"] == []
    meta = http("GET", f"{server}/v2/models/iris").json()
    assert meta == http("GET", f"{server}/v2/models/iris/versions/4").json()
    assert meta["name"] == "iris"
    assert meta["versions"] == ["4"]
    assert meta["platform"] == "sklearn"
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert meta["outputs"] == [
        {"name": "predict", "datatype": "INT64", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
    ]
    assert meta["parameters"]["feature_names"] == list(FEATURES)
    assert meta["parameters"]["digest"] == trained.report.artifact.digest
    for path in (
        "/v2/models/other",
        "/v2/models/iris/versions/5",
        "/v2/models/iris/versions/5/ready",
    ):
        result = http("GET", f"{server}{path}")
        assert result.status == 404
        assert "not served here" in result.json()["error"] or "no version" in result.json()["error"]


# --- tritonclient ---------------------------------------------------------------------------


def test_tritonclient_health_metadata_and_infer(client: Any, trained: Trained) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    assert client.is_model_ready("iris", "4")
    assert not client.is_model_ready("iris", "5")
    assert client.get_model_metadata("iris", "4")["inputs"][0]["shape"] == [-1, 4]

    rows = np.array(ROWS, dtype=np.float32)
    tensor = httpclient.InferInput("input-0", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=False)
    outputs = [
        httpclient.InferRequestedOutput("predict", binary_data=False),
        httpclient.InferRequestedOutput("predict_proba", binary_data=False),
    ]
    result = client.infer("iris", [tensor], model_version="4", outputs=outputs, request_id="7")
    estimator = model(trained)
    as_served = rows.astype(np.float64)
    assert result.as_numpy("predict").tolist() == estimator.predict(as_served).tolist()
    np.testing.assert_allclose(result.as_numpy("predict_proba"), estimator.predict_proba(as_served))
    assert result.get_response()["id"] == "7"


def test_tritonclient_one_input_per_feature(client: Any, trained: Trained) -> None:
    columns = np.array(ROWS).T
    inputs = []
    for name, column, datatype in zip(
        FEATURES, columns, ("FP64", "FP32", "FP64", "FP16"), strict=True
    ):
        tensor = httpclient.InferInput(name, [len(column)], datatype)
        dtype = {"FP64": np.float64, "FP32": np.float32, "FP16": np.float16}[datatype]
        tensor.set_data_from_numpy(column.astype(dtype), binary_data=False)
        inputs.append(tensor)
    result = client.infer("iris", list(reversed(inputs)))
    assert result.as_numpy("predict").tolist() == model(trained).predict(ROWS).tolist()


def test_tritonclient_gets_the_protocol_errors(client: Any) -> None:
    wrong = httpclient.InferInput("input-0", [1, 3], "FP64")
    wrong.set_data_from_numpy(np.array([[1.0, 2.0, 3.0]]), binary_data=False)
    with pytest.raises(triton_utils.InferenceServerException) as err:
        client.infer("iris", [wrong])
    assert err.value.status() == "400"
    assert "has shape [1, 3]; model iris takes [rows, 4] (sepal_length_cm" in err.value.message()

    good = httpclient.InferInput("input-0", [1, 4], "FP64")
    good.set_data_from_numpy(np.array([ROWS[0]]), binary_data=False)
    with pytest.raises(triton_utils.InferenceServerException) as err:
        client.infer("other", [good])
    assert err.value.status() == "404"

    # tritonclient's default: Triton's binary tensor extension, which this server refuses.
    binary = httpclient.InferInput("input-0", [1, 4], "FP64")
    binary.set_data_from_numpy(np.array([ROWS[0]]))
    with pytest.raises(triton_utils.InferenceServerException) as err:
        client.infer("iris", [binary])
    assert err.value.status() == "400"
    assert "binary tensor extension" in err.value.message()


# --- bad requests: 4xx with a message, never a 500 ------------------------------------------


def tensor(shape: list[int], datatype: str, data: Any, name: str = "input-0") -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def infer_body(*inputs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"inputs": list(inputs), **extra}


ROW = [5.1, 3.5, 1.4, 0.2]
BAD = [
    (infer_body(tensor([1, 3], "FP32", ROW[:3])), 400, "takes [rows, 4]"),
    (infer_body(tensor([4], "FP32", ROW)), 400, "has shape [4]"),
    (infer_body(tensor([2, 4], "FP32", ROW)), 400, "needs 8 values, 'data' has 4"),
    (infer_body(tensor([2, 4], "FP32", [ROW, ROW[:3]])), 400, "does not have shape [2, 4]"),
    (infer_body(tensor([1, 4], "BOOL", [True] * 4)), 400, "datatype 'BOOL' is not accepted"),
    (infer_body(tensor([1, 4], "BYTES", ["a"] * 4)), 400, "datatype 'BYTES' is not accepted"),
    (infer_body(tensor([1, 4], "FP7", ROW)), 400, "FP16, FP32, FP64, INT8"),
    (infer_body(tensor([1, 4], "FP32", [5.1, "3.5", 1.4, 0.2])), 400, "not strings"),
    (infer_body(tensor([1, 4], "FP32", [5.1, None, 1.4, 0.2])), 400, "not null"),
    (infer_body(tensor([1, 4], "INT64", [5, True, 1, 0])), 400, "not booleans"),
    (infer_body(tensor([1, 4], "INT32", [5, 3.5, 1, 0])), 400, "must be integers"),
    (infer_body(tensor([1, 4], "INT8", [5, 300, 1, 0])), 400, "out of the INT8 range"),
    (infer_body(tensor([1, 4], "UINT8", [5, -1, 1, 0])), 400, "out of the UINT8 range"),
    (infer_body(tensor([1, 4], "FP64", [5, 10**400, 1, 0])), 400, "not valid JSON"),
    (infer_body(tensor([0, 4], "FP64", [])), 400, "no rows"),
    (infer_body(tensor([1, -4], "FP64", ROW)), 400, "non-negative integers"),
    (infer_body({"name": "input-0", "shape": [1, 4], "datatype": "FP64"}), 400, "no 'data'"),
    (
        infer_body(
            *(tensor([1], "FP64", [v], name) for v, name in zip(ROW, FEATURES[:3], strict=False))
        ),
        400,
        "one per feature, named sepal_length_cm",
    ),
    (
        infer_body(tensor([1, 4], "FP64", ROW), outputs=[{"name": "scores"}]),
        400,
        "no output 'scores'",
    ),
    (infer_body(tensor([1, 4], "FP64", ROW), id=42), 400, "'id' must be a string"),
    ({"instances": [ROW]}, 400, "'inputs' must be a non-empty list"),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD)
def test_bad_requests_are_client_errors(server: str, body: Any, status: int, message: str) -> None:
    before = scrape(f"{server}/metrics")
    result = http("POST", f"{server}/v2/models/iris/infer", body)
    assert (result.status, message in result.json()["error"]) == (status, True), result.body
    after = scrape(f"{server}/metrics")
    key = "modelwerk_requests_total"
    assert (
        total(after, key, outcome="client_error", **LABELS)
        - total(before, key, outcome="client_error", **LABELS)
        == 1
    )
    assert total(after, key, outcome="success", **LABELS) == total(
        before, key, outcome="success", **LABELS
    )


@pytest.mark.parametrize(
    ("raw", "headers", "message"),
    [
        (b"{not json", {}, "not valid JSON"),
        # JSON has no NaN: orjson refuses the body, Python's json takes it and validation then
        # refuses the value.
        (
            b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64",'
            b' "data": [1, NaN, 2, 3]}]}',
            {},
            "non-finite|not valid JSON",
        ),
        (
            json.dumps(infer_body(tensor([1, 4], "FP64", ROW))).encode(),
            {"Inference-Header-Content-Length": "10"},
            "binary tensor extension",
        ),
    ],
)
def test_bad_bodies(server: str, raw: bytes, headers: dict[str, str], message: str) -> None:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{server}/v2/models/iris/infer",
        data=raw,
        method="POST",
        headers={"Content-Type": "application/json", **headers},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code == 400
    assert re.search(message, json.loads(err.value.read())["error"])


def test_non_finite_values_are_refused_whatever_the_json_parser(trained: Trained) -> None:
    from modelwerk.serving.core import InvalidInput, ModelCore
    from modelwerk.serving.v2 import parse_infer

    core = ModelCore(model(trained), name="iris", version="4", digest="sha256:x")
    for value in (float("nan"), float("inf"), 10**400):
        body = infer_body(tensor([1, 4], "FP64", [1.0, value, 2.0, 3.0]))
        with pytest.raises(InvalidInput, match=r"non-finite|out of the FP64 range"):
            parse_infer(body, core)


def test_wrong_model_or_version_is_a_404(server: str) -> None:
    body = infer_body(tensor([1, 4], "FP64", ROW))
    other = http("POST", f"{server}/v2/models/other/infer", body)
    assert other.status == 404
    assert "'other' is not served here" in other.json()["error"]
    version = http("POST", f"{server}/v2/models/iris/versions/3/infer", body)
    assert version.status == 404
    assert "no version '3'" in version.json()["error"]


def test_v2_requests_move_the_same_metrics(server: str) -> None:
    before = scrape(f"{server}/metrics")
    body = infer_body(tensor([3, 4], "FP64", [v for row in ROWS for v in row]))
    assert http("POST", f"{server}/v2/models/iris/infer", body).status == 200
    after = scrape(f"{server}/metrics")

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert moved("modelwerk_requests_total", outcome="success", **LABELS) == 1
    assert moved("modelwerk_request_duration_seconds_count", **LABELS) == 1
    assert moved("modelwerk_predictions_total", **LABELS) == 3
    feature = {"feature": "petal_width_cm", **LABELS}
    assert moved("modelwerk_feature_value_count_total", **feature) == 3
    assert moved("modelwerk_feature_value_positive_sum_total", **feature) == pytest.approx(
        sum(row[3] for row in ROWS)
    )
    assert moved("modelwerk_feature_value_squares_sum_total", **feature) == pytest.approx(
        sum(row[3] ** 2 for row in ROWS)
    )
