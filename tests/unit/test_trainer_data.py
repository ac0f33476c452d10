"""The reference trainer on a run's own `iris` dataset (CSV or Parquet), as the retraining runs
of the real-node closed loop use it, against the same computation done here."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from tests.unit._serving_support import run_trainer, train

joblib = pytest.importorskip("joblib")
np = pytest.importorskip("numpy")
pytest.importorskip("sklearn")

FEATURES = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]


def _iris(shift: float = 0.0) -> tuple[Any, Any, list[str]]:
    from sklearn.datasets import load_iris

    data = load_iris()
    x = data.data.copy()
    x[:, 2] += shift
    return x, data.target, list(data.target_names)


def _write_csv(path: Path, shifts: list[float]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*FEATURES, "target"])
        for shift in shifts:
            x, y, names = _iris(shift)
            for row, target in zip(x, y, strict=True):
                writer.writerow([*(repr(float(v)) for v in row), names[target]])
    return path


def _expected(shifts: list[float]) -> tuple[float, list[float]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import train_test_split

    parts = [_iris(s) for s in shifts]
    x = np.vstack([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, random_state=42, stratify=y
    )
    model = LogisticRegression(max_iter=200, random_state=42).fit(x_train, y_train)
    return float(accuracy_score(y_test, model.predict(x_test))), list(x_train.mean(axis=0))


def test_the_iris_dataset_is_what_it_trains_on(tmp_path: Path) -> None:
    shifts = [0.0, 10.0]  # the bundled flowers, and the same flowers with drifted petals
    data = _write_csv(tmp_path / "iris.csv", shifts)
    trained = train(tmp_path / "run", datasets=[{"name": "iris", "uri": data.as_uri()}])
    accuracy, means = _expected(shifts)
    assert trained.report.metrics["accuracy"] == pytest.approx(accuracy, abs=1e-6)
    baseline = trained.report.baseline
    assert baseline is not None
    assert list(baseline.features) == FEATURES
    got = [baseline.features[f].mean for f in FEATURES]
    assert got == pytest.approx(means, rel=1e-5)  # 6 significant digits
    # Trained on the drifted petals too: their training mean is far from the bundled 3.76.
    assert baseline.features["petal_length_cm"].mean > 8
    # Classes keep the bundled indices, so every version answers in the same vocabulary.
    model = joblib.load(trained.artifact)
    assert list(model.classes_) == [0, 1, 2]


def test_the_bundled_data_unless_the_iris_dataset_names_other_data(tmp_path: Path) -> None:
    plain = train(tmp_path / "plain")
    bundled = train(
        tmp_path / "bundled",
        datasets=[
            {"name": "iris", "uri": "sklearn://datasets/iris"},
            {"name": "train", "uri": "pvc://elsewhere/x.parquet"},
        ],
    )
    assert bundled.report.artifact.digest == plain.report.artifact.digest
    assert bundled.report.metrics == plain.report.metrics


def test_parquet_is_read_too(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    x, y, names = _iris(10.0)
    columns = {f: pa.array(x[:, i]) for i, f in enumerate(FEATURES)}
    columns["target"] = pa.array([names[t] for t in y])
    pq.write_table(pa.table(columns), tmp_path / "iris.parquet")
    from_csv = train(
        tmp_path / "csv",
        datasets=[{"name": "iris", "uri": _write_csv(tmp_path / "c.csv", [10.0]).as_uri()}],
    )
    from_parquet = train(
        tmp_path / "pq", datasets=[{"name": "iris", "uri": (tmp_path / "iris.parquet").as_uri()}]
    )
    assert from_parquet.report.metrics == from_csv.report.metrics
    assert from_parquet.report.baseline == from_csv.report.baseline


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("sepal_length_cm,target\n1.0,setosa\n", "missing columns ['sepal_width_cm'"),
        (",".join([*FEATURES, "target"]) + "\n1,2,3,x,setosa\n", "line 2: not a number"),
        (",".join([*FEATURES, "target"]) + "\n1,2,3,4,tulip\n", "target 'tulip' is none of"),
        (",".join([*FEATURES, "target"]) + "\n1,2,nan,4,setosa\n", "not a finite number"),
        (",".join([*FEATURES, "target"]) + "\n", "has no rows"),
    ],
)
def test_bad_data_fails_the_run_with_the_reason(tmp_path: Path, content: str, message: str) -> None:
    data = tmp_path / "bad.csv"
    data.write_text(content)
    done = run_trainer(tmp_path / "run", datasets=[{"name": "iris", "uri": data.as_uri()}])
    assert done.returncode == 2, done.stderr
    assert message in done.stderr, done.stderr


def test_a_missing_dataset_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.csv"
    done = run_trainer(tmp_path / "run", datasets=[{"name": "iris", "uri": missing.as_uri()}])
    assert done.returncode == 2
    assert f"dataset iris ({missing.as_uri()})" in done.stderr
    assert "does not exist" in done.stderr
