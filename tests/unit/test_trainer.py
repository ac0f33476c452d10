"""The reference trainer as the Job would run it: a subprocess following the pod contract."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.unit._serving_support import Trained, run_trainer, train

joblib = pytest.importorskip("joblib")
pytest.importorskip("sklearn")

FEATURES = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return train(tmp_path_factory.mktemp("train"), hyperparameters={"C": "0.5", "max_iter": "300"})


def test_report_describes_the_artifact(trained: Trained) -> None:
    report = trained.report
    assert report.artifact.uri == "pvc://models/iris/iris-1/model.joblib"
    expected = "sha256:" + hashlib.sha256(trained.artifact.read_bytes()).hexdigest()
    assert report.artifact.digest == expected
    assert trained.stdout.strip().splitlines()[-1] == trained.termination_text


def test_metrics_are_the_held_out_scores(trained: Trained) -> None:
    from sklearn.datasets import load_iris
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split

    data = load_iris()
    _, x_test, _, y_test = train_test_split(
        data.data, data.target, test_size=0.2, random_state=42, stratify=data.target
    )
    predicted = joblib.load(trained.artifact).predict(x_test)
    assert trained.report.metrics["accuracy"] == pytest.approx(
        accuracy_score(y_test, predicted), abs=1e-6
    )
    assert trained.report.metrics["f1_macro"] == pytest.approx(
        f1_score(y_test, predicted, average="macro"), abs=1e-6
    )
    assert trained.report.metrics["accuracy"] >= 0.9


def test_hyperparameters_reach_the_model(trained: Trained) -> None:
    model = joblib.load(trained.artifact)
    assert (model.C, model.max_iter, model.random_state) == (0.5, 300, 42)


def test_baseline_is_the_training_split(trained: Trained) -> None:
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    data = load_iris()
    x_train, *_ = train_test_split(
        data.data, data.target, test_size=0.2, random_state=42, stratify=data.target
    )
    assert trained.report.feature_order == FEATURES
    assert trained.report.baseline is not None
    for index, name in enumerate(FEATURES):
        stats = trained.report.baseline.features[name]
        assert stats.mean == pytest.approx(x_train[:, index].mean(), rel=1e-5)
        assert stats.std == pytest.approx(x_train[:, index].std(), rel=1e-5)


def test_same_seed_same_digest_other_seed_other_model(trained: Trained, tmp_path: Path) -> None:
    again = train(tmp_path / "again", hyperparameters={"C": "0.5", "max_iter": "300"})
    assert again.report.artifact.digest == trained.report.artifact.digest
    other = train(tmp_path / "other", seed=7, hyperparameters={"C": "0.5", "max_iter": "300"})
    assert other.report.artifact.digest != trained.report.artifact.digest


@pytest.mark.parametrize(
    ("hyperparameters", "message"),
    [({"C": "-1"}, "must be positive"), ({"C": "abc"}, "C='abc'")],
)
def test_bad_hyperparameters_fail_the_run(
    tmp_path: Path, hyperparameters: dict[str, str], message: str
) -> None:
    done = run_trainer(tmp_path, hyperparameters=hyperparameters)
    assert done.returncode == 2
    assert message in done.stderr
    assert not (tmp_path / "termination-log").exists()
