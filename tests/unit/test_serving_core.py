"""ModelCore, its configuration and its metrics, in process with a real sklearn model."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from modelwerk.serving.artifacts import ArtifactError, DigestMismatch
from modelwerk.serving.config import ConfigError, ServerConfig
from modelwerk.serving.core import FeatureTotals, InvalidInput, ModelCore, load_core
from modelwerk.serving.metrics import CLIENT_ERROR, SUCCESS, PrometheusMetrics, seldon_metrics
from tests.unit._serving_support import total

np = pytest.importorskip("numpy")
joblib = pytest.importorskip("joblib")
pytest.importorskip("sklearn")

DIGEST = "sha256:" + "0" * 64


@pytest.fixture(scope="module")
def estimator() -> Any:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    data = load_iris()
    return LogisticRegression(max_iter=300, random_state=0).fit(data.data, data.target)


@pytest.fixture
def core(estimator: Any) -> ModelCore:
    return ModelCore(
        estimator,
        name="iris",
        version="4",
        digest=DIGEST,
        feature_names=["sl", "sw", "pl", "pw"],
        max_instances=5,
    )


ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def test_predict_matches_sklearn(core: ModelCore, estimator: Any) -> None:
    assert core.predict(ROWS) == estimator.predict(np.array(ROWS)).tolist()
    assert core.predict([[5, 3, 1, 0]]) == estimator.predict(np.array([[5.0, 3, 1, 0]])).tolist()
    probabilities = core.predict_proba(ROWS)
    np.testing.assert_allclose(probabilities, estimator.predict_proba(np.array(ROWS)))
    assert core.classes == [0, 1, 2]


@pytest.mark.parametrize(
    ("instances", "message"),
    [
        (None, "non-empty list"),
        ([], "non-empty list"),
        ({"a": 1}, "non-empty list"),
        ([[1, 2, 3]], "list of 4 numbers (sl, sw, pl, pw)"),
        ([[1, 2, 3, 4], [1, 2, 3]], "instance 1"),
        ([1, 2, 3, 4], "instance 0 must be a list"),
        ([[1, 2, "3", 4]], "non-numeric value '3'"),
        ([[1, 2, None, 4]], "non-numeric value None"),
        ([[1, 2, True, 4]], "non-numeric value True"),
        ([[1, 2, float("nan"), 4]], "non-finite"),
        ([[1, 2, 10**400, 4]], "non-finite"),
        ([[1, 2, 3, 4]] * 6, "exceed the limit of 5"),
    ],
)
def test_invalid_input(core: ModelCore, instances: object, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        core.predict(instances)
    assert message in str(caught.value)


def test_feature_totals_split_by_sign(core: ModelCore) -> None:
    inference = core.infer([[1.0, -2.0, 0.0, 4.0], [3.0, 2.0, -1.0, 4.0]])
    assert inference.features["sl"] == FeatureTotals(2, 4.0, 0.0, 10.0)
    assert inference.features["sw"] == FeatureTotals(2, 2.0, 2.0, 8.0)
    assert inference.features["pl"] == FeatureTotals(2, 0.0, 1.0, 1.0)


def test_feature_names_default_and_mismatch(estimator: Any) -> None:
    unnamed = ModelCore(estimator, name="m", version="1", digest=DIGEST)
    assert unnamed.feature_names == ("f0", "f1", "f2", "f3")
    with pytest.raises(ConfigError, match="takes 4 features"):
        ModelCore(estimator, name="m", version="1", digest=DIGEST, feature_names=["a", "b"])


def test_not_a_model_is_refused() -> None:
    with pytest.raises(ArtifactError, match="not a model"):
        ModelCore({"weights": [1]}, name="m", version="1", digest=DIGEST)


def test_load_core_verifies_before_loading(estimator: Any, tmp_path: Path) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(estimator, path)
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = load_core(ServerConfig(model_uri=str(path), digest=digest, model_name="iris"))
    assert loaded.predict(ROWS) == estimator.predict(np.array(ROWS)).tolist()
    with pytest.raises(DigestMismatch):
        load_core(ServerConfig(model_uri=str(path), digest=DIGEST))


def test_load_core_refuses_a_corrupt_artifact(tmp_path: Path) -> None:
    path = tmp_path / "model.joblib"
    path.write_bytes(b"not a pickle")
    digest = "sha256:" + hashlib.sha256(b"not a pickle").hexdigest()
    with pytest.raises(ArtifactError, match="cannot load"):
        load_core(ServerConfig(model_uri=str(path), digest=digest))


def test_config_explicit_over_env() -> None:
    env = {
        "MODELWERK_MODEL_URI": "/env/model",
        "MODELWERK_MODEL_DIGEST": DIGEST,
        "MODELWERK_MODEL_NAME": "env-name",
        "MODELWERK_FEATURE_NAMES": "a, b ,c",
        "MODELWERK_PORT": "9001",
    }
    config = ServerConfig.resolve({"model_uri": "/flag/model", "model_version": 5}, env)
    assert config.model_uri == "/flag/model"
    assert config.model_name == "env-name"
    assert config.model_version == "5"
    assert config.feature_names == ("a", "b", "c")
    assert config.port == 9001


@pytest.mark.parametrize(
    ("explicit", "message"),
    [
        ({}, "no model URI"),
        ({"model_uri": "/m"}, "no model digest"),
        ({"model_uri": "/m", "digest": DIGEST, "port": "http"}, "not a number"),
        ({"model_uri": "/m", "digest": DIGEST, "feature_names": ", ,"}, "name no feature"),
    ],
)
def test_config_errors(explicit: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ServerConfig.resolve(explicit, {})


def test_prometheus_metrics_exposition(core: ModelCore) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    metrics = PrometheusMetrics("iris", "4")
    metrics.set_info(DIGEST)
    metrics.observe(SUCCESS, 0.12, core.infer([[1.0, -2.0, 0.0, 4.0], [3.0, 2.0, -1.0, 4.0]]))
    metrics.observe(CLIENT_ERROR, 0.001)
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain")
    samples = [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    ]
    labels = {"model": "iris", "version": "4"}
    assert total(samples, "modelwerk_model_info", digest=DIGEST, **labels) == 1
    assert total(samples, "modelwerk_requests_total", outcome="success", **labels) == 1
    assert total(samples, "modelwerk_requests_total", outcome="client_error", **labels) == 1
    assert total(samples, "modelwerk_requests_total", outcome="server_error", **labels) == 0
    assert total(samples, "modelwerk_request_duration_seconds_count", **labels) == 2
    assert total(samples, "modelwerk_request_duration_seconds_bucket", le="0.15", **labels) == 2
    assert total(samples, "modelwerk_request_duration_seconds_bucket", le="0.1", **labels) == 1
    sw = {"feature": "sw", **labels}
    assert total(samples, "modelwerk_feature_value_count_total", **sw) == 2
    assert total(samples, "modelwerk_feature_value_positive_sum_total", **sw) == 2
    assert total(samples, "modelwerk_feature_value_negative_sum_total", **sw) == 2
    assert total(samples, "modelwerk_feature_value_squares_sum_total", **sw) == 8
    assert total(samples, "modelwerk_predictions_total", **labels) == 2


def test_seldon_metric_dicts_pass_seldons_validation(core: ModelCore) -> None:
    seldon_core_metrics = pytest.importorskip("seldon_core.metrics")
    items = seldon_metrics(
        model="iris",
        version="4",
        digest=DIGEST,
        outcome=SUCCESS,
        seconds=0.25,
        inference=core.infer(ROWS),
    )
    assert seldon_core_metrics.validate_metrics(items)
    timer = next(item for item in items if item["type"] == "TIMER")
    assert timer["value"] == 250.0  # Seldon takes milliseconds
    keys = {item["key"] for item in items}
    assert {"modelwerk_requests", "modelwerk_feature_value_count", "modelwerk_model_info"} <= keys
    # Fresh tag dicts: Seldon writes "method" into them.
    again = seldon_metrics(model="iris", version="4", digest=DIGEST)
    assert all(item["tags"] is not again[0]["tags"] for item in items)


def test_metric_names_import_without_numpy() -> None:
    """The operator's monitoring builder imports the names; numpy is the ml extra's."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['numpy'] = None\n"
        "from modelwerk.serving import metrics\n"
        "print(metrics.FEATURE_COUNT_TOTAL, metrics.REQUESTS_TOTAL)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "modelwerk_feature_value_count_total",
        "modelwerk_requests_total",
    ]
