"""parse_report / serialize_report / build_report: the operator's view of a termination message."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelwerk.constants import REPORT_MAX_BYTES
from modelwerk.report import (
    REASON_MALFORMED,
    REASON_MISSING,
    REASON_TOO_LARGE,
    REASON_UNSUPPORTED_VERSION,
    ReportError,
    build_report,
    parse_report,
    sanitize_identifier,
    serialize_report,
)

DIGEST = "sha256:" + "ab" * 32


def valid() -> dict[str, Any]:
    return {
        "v": 1,
        "metrics": {"accuracy": 0.97, "f1_macro": 0.96},
        "artifact": {"uri": "pvc://models/iris/iris-7/model.joblib", "digest": DIGEST},
        "baseline": {
            "features": {
                "sepal_length_cm": {"mean": 5.84, "std": 0.83},
                "petal_width_cm": {"mean": 1.2, "std": 0.76},
            }
        },
    }


def reason_of(text: str | None) -> str:
    with pytest.raises(ReportError) as caught:
        parse_report(text)
    return caught.value.reason


def test_valid_report_parses_with_order_kept() -> None:
    report = parse_report(json.dumps(valid()))
    assert report.metrics == {"accuracy": 0.97, "f1_macro": 0.96}
    assert report.artifact.digest == DIGEST
    assert report.feature_order == ["sepal_length_cm", "petal_width_cm"]
    assert report.baseline is not None
    assert report.baseline.features["petal_width_cm"].std == 0.76


def test_baseline_is_optional_and_integers_are_numbers() -> None:
    raw = valid()
    del raw["baseline"]
    raw["metrics"] = {"epochs": 3}
    report = parse_report(json.dumps(raw))
    assert report.baseline is None
    assert report.feature_order == []
    assert report.metrics == {"epochs": 3.0}


@pytest.mark.parametrize("text", [None, "", "   \n"])
def test_missing(text: str | None) -> None:
    assert reason_of(text) == REASON_MISSING


def test_too_large_counts_bytes_not_characters() -> None:
    raw = valid()
    raw["artifact"]["uri"] = "pvc://models/" + "ü" * 2100  # 2 bytes each in UTF-8
    text = json.dumps(raw, ensure_ascii=False)
    assert len(text) < REPORT_MAX_BYTES < len(text.encode())
    assert reason_of(text) == REASON_TOO_LARGE


def test_exactly_at_the_limit_is_accepted() -> None:
    raw = valid()
    raw["metrics"].update({f"m{i:03d}": 0.5 for i in range(250)})
    text = json.dumps(raw, separators=(",", ":"))
    raw["artifact"]["uri"] += "x" * (REPORT_MAX_BYTES - len(text.encode()))
    padded = json.dumps(raw, separators=(",", ":"))
    assert len(padded.encode()) == REPORT_MAX_BYTES
    assert parse_report(padded).artifact.uri.endswith("x")


ARTIFACT = json.dumps({"uri": "u", "digest": DIGEST})


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "[1, 2]",
        '"a string"',
        f'{{"v": 1, "metrics": {{"accuracy": NaN}}, "artifact": {ARTIFACT}}}',
        f'{{"v": 1, "metrics": {{"loss": Infinity}}, "artifact": {ARTIFACT}}}',
        f'{{"metrics": {{}}, "artifact": {ARTIFACT}}}',
    ],
    ids=["syntax", "list", "string", "nan", "infinity", "no-version"],
)
def test_malformed_text(text: str) -> None:
    assert reason_of(text) == REASON_MALFORMED


def test_unsupported_version() -> None:
    raw = valid()
    raw["v"] = 2
    with pytest.raises(ReportError) as caught:
        parse_report(json.dumps(raw))
    assert caught.value.reason == REASON_UNSUPPORTED_VERSION
    assert "2" in caught.value.message


def _mutations() -> list[tuple[str, Any]]:
    return [
        ("digest without prefix", lambda r: r["artifact"].update(digest="ab" * 32)),
        ("md5 digest", lambda r: r["artifact"].update(digest="md5:" + "ab" * 16)),
        ("uppercase hex", lambda r: r["artifact"].update(digest="sha256:" + "AB" * 32)),
        ("short digest", lambda r: r["artifact"].update(digest="sha256:abc")),
        ("empty uri", lambda r: r["artifact"].update(uri="")),
        ("no artifact", lambda r: r.pop("artifact")),
        ("metric as string", lambda r: r["metrics"].update(accuracy="0.97")),
        ("metric as bool", lambda r: r["metrics"].update(accuracy=True)),
        ("metric name with space", lambda r: r["metrics"].update({"acc uracy": 1.0})),
        ("negative std", lambda r: r["baseline"]["features"]["sepal_length_cm"].update(std=-1)),
        ("feature name with dash", lambda r: r["baseline"]["features"].update({"a-b": {}})),
        ("missing mean", lambda r: r["baseline"]["features"]["sepal_length_cm"].pop("mean")),
        ("unknown field", lambda r: r.update(extra=1)),
    ]


@pytest.mark.parametrize(("name", "mutate"), _mutations(), ids=[m[0] for m in _mutations()])
def test_malformed_schema(name: str, mutate: Any) -> None:
    raw = valid()
    mutate(raw)
    with pytest.raises(ReportError) as caught:
        parse_report(json.dumps(raw))
    assert caught.value.reason == REASON_MALFORMED, name
    assert caught.value.message  # says where, for the condition message


def test_build_rounds_to_six_significant_digits_and_round_trips() -> None:
    report = build_report(
        metrics={"accuracy": 0.966666666666, "loss": 1234567.891},
        artifact_uri="file:///m",
        digest=DIGEST,
        baseline={"x": {"mean": 5.841666666, "std": 0.8374151}},
    )
    assert report.metrics == {"accuracy": 0.966667, "loss": 1234570.0}
    assert report.baseline is not None
    assert report.baseline.features["x"].mean == 5.84167
    text = serialize_report(report)
    assert " " not in text  # compact
    assert parse_report(text) == report
    assert report.metric_strings() == {"accuracy": "0.966667", "loss": "1.23457e+06"}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "0.9", True, None])
def test_build_rejects_non_numbers(bad: Any) -> None:
    with pytest.raises(ReportError) as caught:
        build_report(metrics={"accuracy": bad}, artifact_uri="u", digest=DIGEST)
    assert caught.value.reason == REASON_MALFORMED
    assert "accuracy" in caught.value.message


def test_build_accepts_numpy_scalars() -> None:
    np = pytest.importorskip("numpy")
    report = build_report(
        metrics={"a": np.float32(0.5), "b": np.int64(3)}, artifact_uri="u", digest=DIGEST
    )
    assert report.metrics == {"a": 0.5, "b": 3.0}


def test_serialize_refuses_to_truncate() -> None:
    baseline = {f"feature_{i:03d}": {"mean": 1.23456, "std": 0.123456} for i in range(120)}
    report = build_report(metrics={}, artifact_uri="u", digest=DIGEST, baseline=baseline)
    with pytest.raises(ReportError) as caught:
        serialize_report(report)
    assert caught.value.reason == REASON_TOO_LARGE
    assert str(REPORT_MAX_BYTES) in caught.value.message


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("sepal length (cm)", "sepal_length_cm"),
        ("Petal-Width", "petal_width"),
        ("  x  ", "x"),
        ("2nd", "f_2nd"),
        ("%%%", "feature"),
        ("a" * 80, "a" * 63),
    ],
)
def test_sanitize_identifier(raw: str, clean: str) -> None:
    assert sanitize_identifier(raw) == clean
