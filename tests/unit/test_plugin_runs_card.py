"""`kubectl modelwerk runs`, `diff` and `card`: records and renderers on sample objects (golden
files), and the kubectl calls they make (one list for all runs)."""

from __future__ import annotations

import copy
import json
import subprocess
from typing import Any

import pytest
import yaml

from modelwerk import kubectl_plugin as plugin
from modelwerk.plugin import card as plugin_card
from modelwerk.plugin import runs as plugin_runs
from tests.unit import golden

DATA = "sha256:" + "7a" * 32
OTHER_DATA = "sha256:" + "e1" * 32
IMAGE = "ghcr.io/acme/iris-train@sha256:" + "5e" * 32
CODE = {"repository": "https://github.com/acme/iris", "revision": "3f2c1e9d"}
DATASET = {"name": "train", "uri": "s3://data/iris.csv", "digest": DATA}


def _lineage(seed: int = 42, digest: str = DATA, hp_hash: str = "1f") -> dict[str, Any]:
    return {
        "image": IMAGE,
        "code": CODE,
        "datasets": [{**DATASET, "digest": digest}],
        "hyperparametersHash": "sha256:" + hp_hash * 32,
        "seed": seed,
    }


def _run(
    name: str,
    uid: str,
    created: str,
    status: dict[str, Any],
    *,
    c: str = "1.0",
    digest: str = DATA,
    model: str = "iris",
) -> dict[str, Any]:
    return {
        "apiVersion": "modelwerk.io/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {"name": name, "namespace": "ml", "uid": uid, "creationTimestamp": created},
        "spec": {
            "model": model,
            "image": "ghcr.io/acme/iris-train:1",
            "hyperparameters": {"C": c, "max_iter": "200"},
            "seed": 42,
            "datasets": [{**DATASET, "digest": digest}],
            "code": CODE,
            "evaluation": {"metric": "accuracy", "threshold": 0.9},
        },
        "status": status,
    }


def _gate(value: float, passed: bool, message: str) -> dict[str, Any]:
    return {
        "metric": "accuracy",
        "direction": "max",
        "threshold": 0.9,
        "value": value,
        "passed": passed,
        "message": message,
    }


VALIDATION_OK = {
    "passed": True,
    "message": "3 checks passed on train",
    "datasets": [{"name": "train", "format": "csv", "digest": DATA, "rows": 150}],
    "checks": [
        {"name": "train/digest", "passed": True, "observed": DATA, "expected": DATA},
        {"name": "train/rows", "passed": True, "observed": "150", "expected": ">= 100"},
        {"name": "train/species/allowed", "passed": True, "observed": "3 categories"},
    ],
}
VALIDATION_BAD = {
    "passed": False,
    "message": "data validation failed: train/digest (observed "
    + OTHER_DATA
    + "); train/rows (observed 12)",
    "datasets": [{"name": "train", "format": "csv", "digest": OTHER_DATA, "rows": 12}],
    "checks": [
        {"name": "train/digest", "passed": False, "observed": OTHER_DATA, "expected": DATA},
        {"name": "train/rows", "passed": False, "observed": "12", "expected": ">= 100"},
        {"name": "train/species/allowed", "passed": True, "observed": "3 categories"},
    ],
}


def _cond(type_: str, status: str, reason: str) -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": reason}


RUNS = [
    _run(
        "iris-1",
        "u1",
        "2026-11-26T09:00:00Z",
        {
            "phase": "Succeeded",
            "startTime": "2026-11-26T09:00:05Z",
            "completionTime": "2026-11-26T09:02:35Z",
            "metrics": {"accuracy": 0.933333, "f1_macro": 0.93},
            "evaluation": _gate(0.933333, True, "accuracy=0.933333 passes"),
            "validation": VALIDATION_OK,
            "reproducibility": _lineage(),
            "modelVersion": 1,
            "artifact": {
                "uri": "s3://bucket/iris/iris-1/model.joblib",
                "digest": "sha256:" + "01" * 32,
            },
            "conditions": [
                _cond("Validated", "True", "Passed"),
                _cond("Evaluated", "True", "Passed"),
            ],
        },
    ),
    _run(
        "iris-3",
        "u3",
        "2026-11-26T11:00:00Z",
        {
            "phase": "Rejected",
            "startTime": "2026-11-26T11:00:04Z",
            "completionTime": "2026-11-26T11:00:09Z",
            "validation": VALIDATION_BAD,
            "reproducibility": _lineage(digest=OTHER_DATA),
            "conditions": [_cond("Validated", "False", "DataValidationFailed")],
        },
        digest=OTHER_DATA,
    ),
    _run(
        "iris-4",
        "u4",
        "2026-11-26T12:00:00Z",
        {
            "phase": "Rejected",
            "startTime": "2026-11-26T12:00:03Z",
            "completionTime": "2026-11-26T12:01:03Z",
            "metrics": {"accuracy": 0.8, "f1_macro": 0.79},
            "evaluation": _gate(0.8, False, "accuracy=0.8 does not meet the threshold >= 0.9"),
            "validation": VALIDATION_OK,
            "reproducibility": _lineage(hp_hash="2e"),
            "conditions": [_cond("Evaluated", "False", "BelowThreshold")],
        },
        c="0.01",
    ),
    _run(
        "iris-5",
        "u5",
        "2026-11-26T13:00:00Z",
        {
            "phase": "Failed",
            "startTime": "2026-11-26T13:00:02Z",
            "completionTime": "2026-11-26T13:00:30Z",
            "reproducibility": _lineage(),
            "conditions": [_cond("Failed", "True", "OOMKilled")],
        },
    ),
    _run("other-1", "u9", "2026-11-26T08:00:00Z", {"phase": "Succeeded"}, model="wine"),
]
V1 = {
    "version": 1,
    "artifact": {"uri": "s3://bucket/iris/iris-1/model.joblib", "digest": "sha256:" + "01" * 32},
    "metrics": {"accuracy": 0.933333, "f1_macro": 0.93},
    "baseline": {
        "features": {
            "sepal_length": {"mean": 5.84, "std": 0.83},
            "petal_width": {"mean": 1.2, "std": 0.76},
        },
        "featureOrder": ["sepal_length", "petal_width"],
    },
    "source": {"trainingRun": "iris-1", "uid": "u1"},
    "lineage": _lineage(),
    "registeredAt": "2026-11-26T09:02:40Z",
}
V2 = {
    "version": 2,
    "artifact": {"uri": "s3://bucket/iris/iris-2/model.joblib", "digest": "sha256:" + "02" * 32},
    "metrics": {"accuracy": 0.966667, "f1_macro": 0.96},
    "source": {"trainingRun": "iris-2", "uid": "u2"},  # the run is deleted
    "lineage": _lineage(seed=7),
    "registeredAt": "2026-11-26T10:05:00Z",
}
MODEL = {
    "apiVersion": "modelwerk.io/v1alpha1",
    "kind": "Model",
    "metadata": {"name": "iris", "namespace": "ml", "uid": "m"},
    "spec": {
        "description": "Iris species <classifier> | logistic regression",
        "framework": "sklearn",
        "card": {
            "intendedUse": "Teaching & demos: classify iris flowers from four measurements.",
            "limitations": "Trained on 150 flowers of three species; nothing else is in scope.",
            "owner": "ml-platform",
            "contact": "#ml-platform",
        },
        "promotion": {"alias": "candidate", "metric": "accuracy"},
    },
    "status": {
        "versions": [V1, V2],
        "aliases": {"production": 1, "candidate": 2},
        "latestVersion": 2,
    },
}
DEPLOYMENTS = [
    {
        "metadata": {"name": "iris", "namespace": "ml"},
        "spec": {"model": "iris", "alias": "production"},
        "status": {
            "phase": "Available",
            "currentVersion": 1,
            "endpoint": "http://iris.ml.svc:8000",
            "canary": {
                "version": 2,
                "trafficPercent": 10,
                "state": "Progressing",
                "stepStartedAt": "2026-11-26T10:10:00Z",
            },
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "RolledOut",
                    "lastTransitionTime": "2026-11-26T09:05:00Z",
                }
            ],
        },
    },
    {
        "metadata": {"name": "wine", "namespace": "ml"},
        "spec": {"model": "wine"},
        "status": {"currentVersion": 1},
    },
]


class FakeKubectl:
    """`kubectl get RESOURCE [NAME] -o json` from dicts; records every call."""

    def __init__(self) -> None:
        self.lists = {
            "trainingruns.modelwerk.io": RUNS,
            "deployments.modelwerk.io": DEPLOYMENTS,
        }
        self.objects = {("models.modelwerk.io", "iris"): MODEL}
        self.objects |= {("trainingruns.modelwerk.io", r["metadata"]["name"]): r for r in RUNS}
        self.calls: list[list[str]] = []

    def __call__(self, args: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        at = args.index("get")
        resource, rest = args[at + 1], args[at + 2 :]
        if rest[0] == "--output":
            body = {"apiVersion": "v1", "kind": "List", "items": self.lists[resource]}
            return subprocess.CompletedProcess(args, 0, json.dumps(body), "")
        obj = self.objects.get((resource, rest[0]))
        if obj is None:
            if "--ignore-not-found" in args:
                return subprocess.CompletedProcess(args, 0, "", "")
            return subprocess.CompletedProcess(
                args, 1, "", f'Error from server (NotFound): "{rest[0]}"'
            )
        return subprocess.CompletedProcess(args, 0, json.dumps(obj), "")


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str, FakeKubectl]:
    fake = FakeKubectl()
    code = plugin.main(list(argv), runner=fake)
    out, err = capsys.readouterr()
    return code, out, err, fake


# --- runs -----------------------------------------------------------------------------------


def test_model_runs_lists_every_run_of_the_model_and_versions_of_deleted_runs() -> None:
    records = plugin_runs.model_runs(MODEL, RUNS)
    assert [r["name"] for r in records] == ["iris-1", "iris-3", "iris-4", "iris-5", "iris-2"]
    deleted = records[-1]
    assert deleted["deleted"]
    assert deleted["modelVersion"] == 2
    assert deleted["metrics"]["accuracy"] == 0.966667
    assert records[1]["reason"] == "DataValidationFailed"
    assert records[1]["validation"]["failed"] == ["train/digest", "train/rows"]
    assert records[0]["durationSeconds"] == 150.0


def test_runs_table_is_the_golden_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err, fake = run_main(capsys, "runs", "iris", "-n", "ml")
    assert code == 0, err
    golden.check_text("runs_table.txt", out)
    lists = [c for c in fake.calls if c[c.index("get") + 2] == "--output"]
    assert len(lists) == 1  # all runs in one list call, whatever their number
    assert len(fake.calls) == 2  # and the Model


def test_runs_sorted_by_a_metric_best_first_missing_last(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _, _ = run_main(capsys, "runs", "iris", "--sort-by", "f1_macro", "-o", "json")
    assert code == 0
    names = [r["name"] for r in json.loads(out)["runs"]]
    assert names == ["iris-2", "iris-1", "iris-4", "iris-3", "iris-5"]


def test_sort_follows_a_min_gate() -> None:
    records = [{"name": n, "metrics": {"loss": v}} for n, v in (("a", 0.3), ("b", 0.1))]
    records.append(
        {"name": "c", "metrics": {}, "evaluation": {"metric": "loss", "direction": "min"}}
    )
    assert plugin_runs.metric_direction({}, records, "loss") == "min"
    ordered = plugin_runs.sort_records(records, "loss", descending=False)
    assert [r["name"] for r in ordered] == ["b", "a", "c"]


def test_runs_yaml_is_the_json_document(capsys: pytest.CaptureFixture[str]) -> None:
    _, as_json, _, _ = run_main(capsys, "runs", "iris", "-o", "json")
    _, as_yaml, _, _ = run_main(capsys, "runs", "iris", "-o", "yaml")
    assert yaml.safe_load(as_yaml) == json.loads(as_json)
    golden.check_text("runs.json", as_json)


def test_varying_hyperparameters_are_the_columns() -> None:
    records = plugin_runs.model_runs(MODEL, RUNS)
    assert plugin_runs.varying_hyperparameters(records) == ["C"]
    same = [r for r in records if r["name"] in ("iris-1", "iris-5")]
    assert plugin_runs.varying_hyperparameters(same) == ["C", "max_iter"]


# --- diff -----------------------------------------------------------------------------------


def test_diff_of_two_runs_shows_only_what_differs_with_deltas(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err, _ = run_main(capsys, "diff", "iris-1", "iris-4")
    assert code == 0, err
    golden.check_text("diff_runs.txt", out)
    _, as_json, _, _ = run_main(capsys, "diff", "iris-1", "iris-4", "-o", "json")
    rows = {r["field"]: r for r in json.loads(as_json)["differences"]}
    assert rows["metric accuracy"]["delta"] == pytest.approx(0.8 - 0.933333)
    assert rows["hyperparameter C"] == {"field": "hyperparameter C", "a": "1.0", "b": "0.01"}
    assert "image" not in rows  # equal: not shown
    assert "seed" not in rows


def test_diff_with_a_validation_rejected_run_names_its_failing_checks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _, _ = run_main(capsys, "diff", "iris-1", "iris-3", "-o", "json")
    assert code == 0
    rows = {r["field"]: r for r in json.loads(out)["differences"]}
    assert rows["validation"] == {"field": "validation", "a": "passed", "b": "failed"}
    assert rows["check train/rows"]["b"] == "FAIL 12"
    assert rows["dataset train"]["b"] == f"s3://data/iris.csv@{OTHER_DATA}"
    assert "check train/species/allowed" not in rows  # passed on both sides


def test_diff_of_two_versions_uses_the_registry_when_a_run_is_gone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err, _ = run_main(capsys, "diff", "iris:1", "iris:candidate")
    assert code == 0, err
    golden.check_text("diff_versions.txt", out)
    assert "IRIS:1" in out.splitlines()[0]
    assert "IRIS:2" in out.splitlines()[0]


def test_diff_of_identical_records_says_so() -> None:
    record = plugin_runs.run_record(RUNS[0])
    assert plugin_runs.differences(record, copy.deepcopy(record)) == []
    assert plugin_runs.diff_text(("a", "b"), []) == "a and b do not differ\n"


# --- card -----------------------------------------------------------------------------------


def test_card_markdown_is_the_golden_card(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err, _ = run_main(capsys, "card", "iris")  # the production alias: version 1
    assert code == 0, err
    golden.check_text("card_iris_1.md", out)
    for section in (
        "Intended use",
        "Limitations",
        "Training data",
        "Data validation",
        "Evaluation",
        "Lineage",
        "Baseline",
        "Serving",
        "Approvals",
    ):
        assert f"## {section}" in out or f"### {section}" in out, section
    # Values cannot turn into HTML or table syntax.
    assert "Iris species \\<classifier> \\| logistic regression" in out


def test_card_html_escapes_every_value(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _, _ = run_main(capsys, "card", "iris:1", "-o", "html")
    assert code == 0
    golden.check_text("card_iris_1.html", out)
    assert "&lt;classifier&gt;" in out
    assert "<classifier>" not in out
    assert "Teaching &amp; demos" in out


def test_card_of_a_version_whose_run_is_deleted_and_served_as_canary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _, _ = run_main(capsys, "card", "iris:2")
    assert code == 0
    assert "TrainingRun iris-2 (deleted)" in out
    assert "none recorded" in out
    assert (
        "| iris | canary | 10% | Available | http://iris.ml.svc:8000 | 2026-11-26T10:10:00Z |"
        in out
    )
    assert "No baseline" in out


def test_serving_rows_for_stable_and_canary() -> None:
    assert plugin_card.serving(DEPLOYMENTS, "iris", 1) == [
        ("iris", "stable", "90%", "Available", "http://iris.ml.svc:8000", "2026-11-26T09:05:00Z")
    ]
    assert plugin_card.serving(DEPLOYMENTS, "iris", 3) == []


def test_card_blocks_of_a_declared_version_have_no_run() -> None:
    declared = {"version": 9, "artifact": {"uri": "s3://x/m"}, "source": {"declared": True}}
    text = plugin_card.to_markdown(plugin_card.card_blocks(MODEL, declared, None, []))
    assert "declared in the Model's spec.versions" in text
    assert "Not served by any Deployment in namespace ml." in text


def test_markdown_cells_escape_pipes_and_newlines() -> None:
    block = plugin_card.table(("a",), [("x|y\nz",)])
    assert plugin_card.to_markdown([block]) == "| a |\n|---|\n| x\\|y z |\n"


# --- distributed runs -----------------------------------------------------------------------


def test_a_distributed_run_shows_its_workers_and_attempt() -> None:
    gang = _run(
        "iris-6",
        "u6",
        "2026-11-27T09:00:00Z",
        {
            "phase": "Succeeded",
            "workers": {"replicas": 4, "attempt": 1},
            "reproducibility": {**_lineage(), "workers": 4, "attempt": 1},
        },
    )
    gang["spec"]["workers"] = {"replicas": 4}
    records = plugin_runs.model_runs(MODEL, [*RUNS, gang])
    assert (records[-2]["name"], records[-2]["workers"], records[-2]["attempt"]) == (
        "iris-6",
        4,
        1,
    )
    assert records[0]["workers"] == 1
    assert records[0]["attempt"] is None
    table = plugin_runs.runs_table(records, ["accuracy"]).splitlines()
    column = table[0].index("WORKERS")
    assert table[0].split()[-3:] == ["WORKERS", "DURATION", "VERSION"]
    assert table[5][column:].startswith("4 (attempt 1)")
    assert table[1][column:].startswith("1 ")
    # Without a distributed run, no column (the golden table above).
    assert "WORKERS" not in plugin_runs.runs_table(records[:-2], ["accuracy"])


def test_a_deleted_distributed_run_keeps_its_workers_from_the_lineage() -> None:
    entry = {
        "version": 3,
        "source": {"trainingRun": "gone", "uid": "ug"},
        "lineage": {"workers": 8, "attempt": 0},
    }
    record = plugin_runs.version_record(MODEL, entry, None)
    assert (record["workers"], record["attempt"]) == (8, 0)
    assert plugin_runs.differences(record, {**record, "attempt": 2}) == [
        {"field": "attempt", "a": 0, "b": 2}
    ]


def test_a_gangs_record_names_its_engine_and_attempt() -> None:
    run = {
        "metadata": {"name": "dist"},
        "spec": {"workers": {"replicas": 4}},
        "status": {"workers": {"replicas": 4, "attempt": 2, "engine": "JobSet"}},
    }
    record = plugin_runs.run_record(run)
    assert (record["workers"], record["attempt"], record["engine"]) == (4, 2, "JobSet")
    assert plugin_runs._workers(record) == "4 JobSet (attempt 2)"
    single = plugin_runs.run_record({"metadata": {"name": "one"}, "spec": {}, "status": {}})
    assert plugin_runs._workers(single) == "1"


def _gang_entry(lineage: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": 5,
        "artifact": {"uri": "s3://bucket/iris/iris-g/model.joblib", "digest": DATA},
        "source": {"trainingRun": "iris-g", "uid": "ug"},
        "lineage": {**_lineage(), **lineage},
    }


def test_lineage_and_card_of_a_gangs_version_show_workers_engine_and_attempt() -> None:
    entry = _gang_entry({"workers": 4, "attempt": 1, "engine": "JobSet"})
    record = plugin.version_record(MODEL, entry)
    assert (record["workers"], record["attempt"], record["engine"]) == (4, 1, "JobSet")
    text = plugin.render_lineage({"versions": [record]})
    assert "  WORKERS           4 on JobSet, attempt 1\n" in text
    card = plugin_card.to_markdown(plugin_card.card_blocks(MODEL, entry, None, []))
    assert "- Workers: 4 on JobSet, attempt 1\n" in card
    # A registry record of a deleted run, as `runs` shows it.
    assert plugin_runs.version_record(MODEL, entry, None)["engine"] == "JobSet"


def test_a_single_pod_version_has_no_workers_line() -> None:
    entry = _gang_entry({})
    assert "WORKERS" not in plugin.render_lineage(
        {"versions": [plugin.version_record(MODEL, entry)]}
    )
    card = plugin_card.to_markdown(plugin_card.card_blocks(MODEL, entry, None, []))
    assert "Workers:" not in card


def test_an_older_gang_lineage_without_engine_takes_the_runs_status() -> None:
    entry = _gang_entry({"workers": 2, "attempt": 0})
    run = _run("iris-g", "ug", "2026-11-27T09:00:00Z", {"phase": "Succeeded", "modelVersion": 5})
    run["status"]["workers"] = {"replicas": 2, "attempt": 0, "engine": "IndexedJob"}
    run["status"]["reproducibility"] = entry["lineage"]
    card = plugin_card.to_markdown(plugin_card.card_blocks(MODEL, entry, run, []))
    assert "- Workers: 2 on IndexedJob, attempt 0\n" in card
    unregistered = plugin.run_record(run)
    assert (unregistered["workers"], unregistered["engine"]) == (2, "IndexedJob")
    assert (
        plugin.render_lineage({"versions": [plugin.version_record(MODEL, entry)]}).count(
            "WORKERS           2, attempt 0"
        )
        == 1
    )
