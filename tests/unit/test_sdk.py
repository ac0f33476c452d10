"""The SDK side of the pod contract: params from env or file, hyperparameters, report()."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from modelwerk import sdk
from modelwerk.constants import REPORT_MAX_BYTES
from modelwerk.report import REASON_MALFORMED, REASON_TOO_LARGE, ReportError, parse_report


@pytest.fixture(autouse=True)
def no_modelwerk_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MODELWERK_"):
            monkeypatch.delenv(name)


@pytest.fixture
def run_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A run configured through env only; returns its output directory."""
    out = tmp_path / "out"
    monkeypatch.setenv(sdk.ENV_RUN, "iris-7")
    monkeypatch.setenv(sdk.ENV_MODEL, "iris")
    monkeypatch.setenv(sdk.ENV_SEED, "42")
    monkeypatch.setenv(
        sdk.ENV_HYPERPARAMETERS, '{"C": "0.5", "max_iter": "300", "warm": "yes", "name": "x"}'
    )
    monkeypatch.setenv(
        sdk.ENV_DATASETS, '[{"name": "train", "uri": "s3://d/iris.csv", "digest": "sha256:00"}]'
    )
    monkeypatch.setenv(sdk.ENV_OUTPUT_URI, "pvc://models/iris/iris-7/")
    monkeypatch.setenv(sdk.ENV_OUTPUT_DIR, str(out))
    monkeypatch.setenv(sdk.ENV_TERMINATION_MESSAGE_PATH, str(tmp_path / "termination-log"))
    return out


def test_params_from_env(run_env: Path) -> None:
    params = sdk.params()
    assert params.run == "iris-7"
    assert params.model == "iris"
    assert params.seed == 42
    assert params.hyperparameters["C"] == "0.5"
    assert params.datasets == [sdk.Dataset(name="train", uri="s3://d/iris.csv", digest="sha256:00")]
    assert params.output.dir == run_env
    assert sdk.seed() == 42
    assert sdk.datasets()[0].uri == "s3://d/iris.csv"


def test_params_file_wins_over_env(
    run_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "params.json"
    path.write_text(
        json.dumps(
            {
                "run": "from-file",
                "seed": 7,
                "hyperparameters": {"C": "2"},
                "output": {"uri": "pvc://m/x", "dir": str(tmp_path / "o")},
                "addedByANewerOperator": True,
            }
        )
    )
    monkeypatch.setenv(sdk.ENV_PARAMS_FILE, str(path))
    params = sdk.params()
    assert (params.run, params.seed, params.model) == ("from-file", 7, None)
    assert sdk.hyperparameter("C", 1.0) == 2.0


def test_neither_file_nor_env_is_a_clear_error() -> None:
    with pytest.raises(sdk.ParamsError) as caught:
        sdk.params()
    assert sdk.ENV_PARAMS_FILE in str(caught.value)
    assert sdk.ENV_RUN in str(caught.value)


def test_named_params_file_must_exist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(sdk.ENV_PARAMS_FILE, str(tmp_path / "absent.json"))
    with pytest.raises(sdk.ParamsError, match="cannot be read"):
        sdk.params()


def test_invalid_env_json(run_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sdk.ENV_HYPERPARAMETERS, "{C: 1}")
    with pytest.raises(sdk.ParamsError, match=sdk.ENV_HYPERPARAMETERS):
        sdk.params()


def test_hyperparameters_must_be_strings(run_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sdk.ENV_HYPERPARAMETERS, '{"C": {"nested": 1}}')
    with pytest.raises(sdk.ParamsError):
        sdk.params()


def test_to_env_and_to_json_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = sdk.RunParams(
        run="r",
        model="m",
        seed=3,
        hyperparameters={"a": "1"},
        datasets=[sdk.Dataset(name="d", uri="file:///d")],
        output=sdk.Output(uri="pvc://c/p", dir=tmp_path),
    )
    assert sdk.params(original.to_env()) == original
    path = tmp_path / "p.json"
    path.write_text(original.to_json())
    assert sdk.params({sdk.ENV_PARAMS_FILE: str(path)}) == original
    bare = sdk.RunParams(run="r", output=sdk.Output(dir=tmp_path))
    assert sdk.params(bare.to_env()) == bare


def test_hyperparameter_conversions(run_env: Path) -> None:
    assert sdk.hyperparameter("C", 1.0) == 0.5
    assert sdk.hyperparameter("max_iter", 100) == 300
    assert sdk.hyperparameter("warm", False) is True
    assert sdk.hyperparameter("name") == "x"
    assert sdk.hyperparameter("max_iter", type=float) == 300.0
    assert sdk.hyperparameter("absent", 0.1) == 0.1


def test_missing_hyperparameter_without_default(run_env: Path) -> None:
    with pytest.raises(sdk.ParamsError, match="'absent'"):
        sdk.hyperparameter("absent")
    with pytest.raises(sdk.ParamsError, match="'absent'"):
        sdk.hyperparameter("absent", type=int)


@pytest.mark.parametrize(("name", "default"), [("name", 1), ("name", 1.0), ("name", True)])
def test_unconvertible_hyperparameter(run_env: Path, name: str, default: object) -> None:
    with pytest.raises(sdk.ParamsError, match="name='x'"):
        sdk.hyperparameter(name, default)


def test_seed_default_only_when_unset(run_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert sdk.seed(default=1) == 42
    monkeypatch.delenv(sdk.ENV_SEED)
    assert sdk.seed(default=1) == 1
    with pytest.raises(sdk.ParamsError, match="no seed"):
        sdk.seed()


def write_artifact(directory: Path, content: bytes = b"model bytes") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "model.joblib"
    path.write_bytes(content)
    return path


def test_report_writes_termination_message_and_stdout(
    run_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = write_artifact(sdk.output_dir() / "sub")
    baseline = {"sepal_length_cm": {"mean": 5.841666666, "std": 0.83}}
    result = sdk.report({"accuracy": 0.9666666}, artifact, baseline=baseline)

    text = (tmp_path / "termination-log").read_text()
    assert capsys.readouterr().out == text + "\n"  # one line, same bytes
    parsed = parse_report(text)
    assert parsed == result
    assert parsed.artifact.uri == "pvc://models/iris/iris-7/sub/model.joblib"
    assert parsed.artifact.digest == "sha256:" + hashlib.sha256(b"model bytes").hexdigest()
    assert parsed.metrics == {"accuracy": 0.966667}
    assert parsed.feature_order == ["sepal_length_cm"]


def test_report_digest_streams_large_files(run_env: Path) -> None:
    content = os.urandom(3 * 1024 * 1024 + 17)
    artifact = write_artifact(sdk.output_dir(), content)
    result = sdk.report({}, artifact)
    assert result.artifact.digest == "sha256:" + hashlib.sha256(content).hexdigest()


def test_report_explicit_uri(run_env: Path, tmp_path: Path) -> None:
    artifact = write_artifact(tmp_path / "elsewhere")
    result = sdk.report({}, artifact, artifact_uri="s3://bucket/m.joblib")
    assert result.artifact.uri == "s3://bucket/m.joblib"


def test_report_artifact_outside_output_dir(run_env: Path, tmp_path: Path) -> None:
    artifact = write_artifact(tmp_path / "elsewhere")
    with pytest.raises(sdk.SdkError, match="outside the output directory"):
        sdk.report({}, artifact)


def test_report_outside_modelwerk_uses_file_uri(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(sdk.ENV_TERMINATION_MESSAGE_PATH, str(tmp_path / "t"))
    artifact = write_artifact(tmp_path)
    assert sdk.report({}, artifact).artifact.uri == artifact.resolve().as_uri()


def test_report_rejects_a_directory(run_env: Path) -> None:
    with pytest.raises(sdk.SdkError, match="not a file"):
        sdk.report({}, sdk.output_dir())


def test_too_large_report_raises_and_writes_nothing(run_env: Path, tmp_path: Path) -> None:
    artifact = write_artifact(sdk.output_dir())
    baseline = {f"feature_{i:03d}": {"mean": 1.5, "std": 0.25} for i in range(200)}
    with pytest.raises(ReportError) as caught:
        sdk.report({"accuracy": 1.0}, artifact, baseline=baseline)
    assert caught.value.reason == REASON_TOO_LARGE
    assert str(REPORT_MAX_BYTES) in str(caught.value)
    assert not (tmp_path / "termination-log").exists()


def test_nan_metric_raises_and_writes_nothing(run_env: Path, tmp_path: Path) -> None:
    artifact = write_artifact(sdk.output_dir())
    with pytest.raises(ReportError) as caught:
        sdk.report({"accuracy": float("nan")}, artifact)
    assert caught.value.reason == REASON_MALFORMED
    assert not (tmp_path / "termination-log").exists()


def test_unwritable_termination_path(run_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    artifact = write_artifact(sdk.output_dir())
    monkeypatch.setenv(sdk.ENV_TERMINATION_MESSAGE_PATH, str(run_env / "no" / "such" / "dir" / "t"))
    with pytest.raises(sdk.SdkError, match=sdk.ENV_TERMINATION_MESSAGE_PATH):
        sdk.report({}, artifact)


def test_baseline_from_matrix() -> None:
    rows = [[1.0, -2.0], [3.0, -4.0], [5.0, -6.0]]
    baseline = sdk.baseline_from_matrix(rows, ["Sepal length (cm)", "b"])
    assert list(baseline) == ["sepal_length_cm", "b"]
    assert baseline["sepal_length_cm"]["mean"] == pytest.approx(3.0)
    # Population std: what the server's counters estimate.
    assert baseline["b"]["std"] == pytest.approx((8 / 3) ** 0.5)


def test_baseline_names_must_match_and_not_collide() -> None:
    with pytest.raises(sdk.SdkError, match="1 feature names for 2 columns"):
        sdk.baseline_from_matrix([[1.0, 2.0]], ["a"])
    with pytest.raises(sdk.SdkError, match="collide"):
        sdk.baseline_from_matrix([[1.0, 2.0]], ["a b", "a-b"])
    with pytest.raises(sdk.SdkError, match="2-D"):
        sdk.baseline_from_matrix([1.0, 2.0], ["a", "b"])
