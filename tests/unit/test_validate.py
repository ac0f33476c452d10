"""modelwerk.validate: digests, statistics and checks on CSV and Parquet, the wire format and its
4 KiB budget, the validator as a real process, the Job's init container, and the status the
operator makes of a report."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from modelwerk.api.trainingrun import TrainingRun
from modelwerk.api.validation import ColumnExpectation, DatasetExpectation, DataValidation
from modelwerk.builders.job import build_job
from modelwerk.constants import REPORT_MAX_BYTES
from modelwerk.reconcilers import validation as status_of
from modelwerk.sdk import Dataset
from modelwerk.validate import checks, data, validate, wire
from tests.unit import golden

ROWS = [
    # sepal_length, petal_width, species, comment
    ("5.1", "0.2", "setosa", "a"),
    ("4.9", "", "setosa", ""),
    ("7.0", "1.4", "versicolor", "b"),
    ("6.3", "2.5", "virginica", ""),
    ("5.8", "nan", "virginica", "c"),
]
HEADER = ("sepal_length", "petal_width", "species", "comment")


def write_csv(path: Path, rows: list[tuple[str, ...]] = ROWS) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def expectation(**overrides: Any) -> DatasetExpectation:
    raw: dict[str, Any] = {
        "name": "train",
        "rows": {"min": 3, "max": 10},
        "columns": [
            {"name": "sepal_length", "type": "float", "min": 4.0, "max": 8.0},
            {"name": "petal_width", "type": "float", "maxNullFraction": 0.5},
            {"name": "species", "type": "string", "allowed": ["setosa", "versicolor", "virginica"]},
        ],
    }
    raw.update(overrides)
    return DatasetExpectation.model_validate(raw)


def by_name(found: list[checks.Check]) -> dict[str, checks.Check]:
    return {c.name: c for c in found}


def run_checks(path: Path, exp: DatasetExpectation, digest: str | None = None) -> dict[str, Any]:
    report = validate(
        DataValidation(datasets=[exp]),
        {"train": Dataset(name="train", uri=path.as_uri(), digest=digest)},
        path.parent / "scratch",
    )
    return {"report": report, "checks": by_name(report.check_list())}


# --- digests --------------------------------------------------------------------------------


def test_file_digest_is_the_sha256_of_its_bytes(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv")
    assert data.digest(path) == sha256(path)


def test_directory_digest_is_the_sha256sum_manifest_sorted_by_path(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    (root / "b").mkdir(parents=True)
    (root / "a.csv").write_text("x\n1\n")
    (root / "b" / "Z.csv").write_text("x\n2\n")
    (root / "B.csv").write_text("x\n3\n")
    (root / "link.csv").symlink_to(root / "a.csv")  # symlinks are not part of the manifest
    # What `sha256sum` prints for these paths in `LC_ALL=C sort` order (uppercase first).
    lines = [
        f"{hashlib.sha256((root / rel).read_bytes()).hexdigest()}  {rel}\n"
        for rel in ("B.csv", "a.csv", "b/Z.csv")
    ]
    assert data.digest(root) == "sha256:" + hashlib.sha256("".join(lines).encode()).hexdigest()


def test_coreutils_pipeline_from_the_docs_gives_the_same_directory_digest(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    (root / "part").mkdir(parents=True)
    (root / "part" / "1.csv").write_text("x\n1\n")
    (root / "0.csv").write_text("x\n0\n")
    out = subprocess.run(
        "find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum",
        shell=True,
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert data.digest(root) == "sha256:" + out.split()[0]


# --- checks on CSV --------------------------------------------------------------------------


def test_good_csv_passes_every_check_with_observed_values(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv")
    result = run_checks(path, expectation(), digest=sha256(path))
    found = result["checks"]
    assert result["report"].passed
    assert found["train/digest"].observed == sha256(path)
    assert found["train/rows"].observed == "5"
    assert found["train/sepal_length/min"].observed == "4.9"
    assert found["train/sepal_length/max"].observed == "7"
    assert found["train/sepal_length/type"].observed == "float"
    # One empty cell and one NaN among five: 0.4.
    assert found["train/petal_width/nulls"].observed == "0.4 (2 of 5)"
    assert found["train/species/allowed"].observed == "3 categories"


def test_each_expectation_can_fail_on_its_own(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv")
    strict = expectation(
        rows={"min": 6},
        columns=[
            {"name": "sepal_length", "type": "int", "min": 5.0, "max": 6.5},
            {"name": "petal_width", "maxNullFraction": 0.2},
            {"name": "species", "allowed": ["setosa"]},
            {"name": "missing"},
            {"name": "optional", "required": False, "type": "int"},
        ],
    )
    result = run_checks(path, strict, digest="sha256:" + "0" * 64)
    found = result["checks"]
    assert not result["report"].passed
    failed = {name for name, check in found.items() if not check.passed}
    assert failed == {
        "train/digest",
        "train/rows",
        "train/sepal_length/type",
        "train/sepal_length/min",
        "train/sepal_length/max",
        "train/petal_width/nulls",
        "train/species/allowed",
        "train/missing/present",
    }
    assert found["train/species/allowed"].observed == (
        "3 values outside: 'virginica' (2), 'versicolor' (1)"
    )
    assert found["train/sepal_length/type"].observed == "float"
    assert found["train/optional/present"].passed  # not required: missing is fine
    assert "train/optional/type" not in found  # and nothing else is checked on it


def test_type_inference_and_non_numeric_ranges(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("i,f,b,s\n1,1.5,true,x\n-2,3,FALSE,y\n")
    exp = DatasetExpectation.model_validate(
        {
            "name": "train",
            "columns": [
                {"name": "i", "type": "float"},  # an int column is a float column too
                {"name": "f", "type": "float"},
                {"name": "b", "type": "bool"},
                {"name": "s", "min": 0},  # untyped but ranged: text is not a number
            ],
        }
    )
    found = run_checks(path, exp)["checks"]
    assert found["train/i/type"].passed
    assert found["train/i/type"].observed == "int"
    assert found["train/f/type"].observed == "float"
    assert found["train/b/type"].passed
    assert found["train/b/type"].observed == "bool"
    assert not found["train/s/min"].passed
    assert found["train/s/min"].observed == "2 non-numeric values"


def test_unreadable_dataset_is_a_failed_read_check(tmp_path: Path) -> None:
    result = run_checks(tmp_path / "absent.csv", expectation())
    assert not result["report"].passed
    assert list(result["checks"]) == ["train/read"]
    assert "does not exist" in result["checks"]["train/read"].observed


def test_dataset_not_in_params_fails_read(tmp_path: Path) -> None:
    report = validate(DataValidation(datasets=[expectation()]), {}, tmp_path)
    assert report.check_list() == [checks.Check("train/read", False, "not in spec.datasets")]


def test_baseline_is_mean_and_population_std_of_numeric_feature_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv")
    exp = expectation(
        columns=[
            {"name": "petal_width", "type": "float"},
            {"name": "sepal_length", "type": "float"},
            {"name": "species", "type": "string"},
            {"name": "comment", "feature": False},
        ]
    )
    report = run_checks(path, exp)["report"]
    sepal = [float(r[0]) for r in ROWS]
    petal = [float(r[1]) for r in ROWS if r[1] and r[1] != "nan"]
    assert report.baseline is not None
    assert list(report.baseline) == ["petal_width", "sepal_length"]  # declared order
    assert report.baseline["sepal_length"]["mean"] == pytest.approx(statistics.mean(sepal), 1e-5)
    assert report.baseline["sepal_length"]["std"] == pytest.approx(statistics.pstdev(sepal), 1e-5)
    assert report.baseline["petal_width"]["std"] == pytest.approx(statistics.pstdev(petal), 1e-5)


def test_directory_of_csv_shards_is_one_table(tmp_path: Path) -> None:
    root = tmp_path / "shards"
    root.mkdir()
    write_csv(root / "0.csv", ROWS[:2])
    write_csv(root / "1.csv", ROWS[2:])
    (root / "README").write_text("not data")
    result = run_checks(root, expectation(), digest=data.digest(root))
    assert result["report"].passed
    assert result["checks"]["train/rows"].observed == "5"
    assert result["report"].datasets[0].format == "csv"


# --- Parquet ----------------------------------------------------------------------------------


def test_parquet_gives_the_same_checks_as_csv(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = write_csv(tmp_path / "d.csv")
    table = pa.table(
        {
            "sepal_length": [float(r[0]) for r in ROWS],
            "petal_width": [None if not r[1] else float(r[1]) for r in ROWS],
            "species": [r[2] for r in ROWS],
        }
    )
    parquet = tmp_path / "d.parquet"
    pq.write_table(table, parquet)
    exp = expectation()
    from_csv = run_checks(path, exp)["report"]
    from_parquet = run_checks(parquet, exp)["report"]
    assert from_parquet.datasets[0].format == "parquet"
    assert from_parquet.check_list() == from_csv.check_list()
    assert from_parquet.baseline == from_csv.baseline


def test_parquet_types_come_from_the_schema(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    parquet = tmp_path / "t.parquet"
    pq.write_table(pa.table({"n": pa.array([1, 2], pa.int16()), "s": ["1", "2"]}), parquet)
    exp = DatasetExpectation.model_validate(
        {"name": "train", "columns": [{"name": "n", "type": "float"}, {"name": "s", "type": "int"}]}
    )
    found = run_checks(parquet, exp)["checks"]
    assert found["train/n/type"].passed  # int16 is a valid float column
    assert not found["train/s/type"].passed  # strings of digits are still strings
    assert found["train/s/type"].observed == "string"


# --- the wire format --------------------------------------------------------------------------


def test_report_round_trips(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv")
    report = run_checks(path, expectation())["report"]
    assert wire.parse(wire.serialize(report)) == report


def test_oversize_report_keeps_the_failures_first(tmp_path: Path) -> None:
    many = [checks.Check(f"train/column_{i:03}/present", True, "present") for i in range(300)]
    bad = [checks.Check("train/rows", False, "12"), checks.Check("train/digest", False, "x" * 71)]
    base = {f"feature_{i}": {"mean": 1.0, "std": 2.0} for i in range(20)}
    report = wire.build([*many[:10], *bad, *many[10:]], [{"name": "train"}], base)
    text = wire.serialize(report)
    assert len(text.encode()) <= REPORT_MAX_BYTES
    parsed = wire.parse(text)
    assert not parsed.passed
    assert [c.name for c in parsed.check_list()][:2] == ["train/rows", "train/digest"]
    assert parsed.omitted == 300


def test_not_a_validation_report_is_refused() -> None:
    with pytest.raises(wire.WireError):
        wire.parse('{"v":1,"metrics":{}}')
    with pytest.raises(wire.WireError):
        wire.parse("")


# --- the API ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "column",
    [
        {"name": "x", "min": 2, "max": 1},
        {"name": "x", "type": "string", "min": 1},
        {"name": "x", "maxNullFraction": 1.5},
        {"name": "x", "unknownCheck": True},
    ],
)
def test_bad_expectations_are_refused(column: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ColumnExpectation.model_validate(column)


def test_row_bounds_must_be_ordered() -> None:
    with pytest.raises(ValidationError):
        DatasetExpectation.model_validate({"name": "d", "rows": {"min": 5, "max": 1}})


# --- the validator as a process ---------------------------------------------------------------


def _run_validator(tmp_path: Path, params: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    params_file = tmp_path / "params.json"
    params_file.write_text(json.dumps(params))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELWERK_")}
    env["MODELWERK_PARAMS_FILE"] = str(params_file)
    env["MODELWERK_TERMINATION_MESSAGE_PATH"] = str(tmp_path / "termination-log")
    return subprocess.run(
        [sys.executable, "-m", "modelwerk.validate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _params(path: Path, exp: DatasetExpectation, digest: str | None = None) -> dict[str, Any]:
    dataset: dict[str, Any] = {"name": "train", "uri": path.as_uri()}
    if digest:
        dataset["digest"] = digest
    return {
        "run": "r",
        "datasets": [dataset],
        "output": {"dir": str(path.parent / "out")},
        "validation": {"datasets": [exp.model_dump(by_alias=True, exclude_none=True)]},
    }


def test_validator_process_exit_codes_and_termination_message(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv")
    good = _run_validator(tmp_path, _params(path, expectation(), sha256(path)))
    assert good.returncode == 0, good.stderr
    written = (tmp_path / "termination-log").read_text()
    assert written == good.stdout.strip()
    assert wire.parse(written).passed

    bad = _run_validator(tmp_path, _params(path, expectation(rows={"min": 100})))
    assert bad.returncode == 3
    assert "train/rows (observed 5)" in bad.stderr
    assert not wire.parse((tmp_path / "termination-log").read_text()).passed

    broken = _run_validator(tmp_path, {"run": "r", "output": {"dir": "/tmp"}})
    assert broken.returncode == 2


# --- the Job and the status -------------------------------------------------------------------


def _run(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "modelwerk.io/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {"name": "iris-7", "namespace": "ml", "uid": "u-7", "generation": 1},
        "spec": {
            "model": "iris",
            "image": "ghcr.io/acme/trainer@sha256:" + "cd" * 32,
            "command": ["python", "train.py"],
            "output": {"uri": "pvc://models/iris/{run}"},
            "datasets": [
                {
                    "name": "train",
                    "uri": "pvc://data/iris/train.csv",
                    "digest": "sha256:" + "a" * 64,
                },
                {"name": "extra", "uri": "s3://bucket/extra.parquet"},
            ],
            "validation": {
                "datasets": [
                    expectation().model_dump(by_alias=True, exclude_none=True),
                    {"name": "extra", "format": "parquet"},
                ]
            },
            "resources": {"limits": {"memory": "1Gi"}},
            **spec,
        },
    }
    return body


def test_job_with_validation_is_the_golden_manifest() -> None:
    body = _run()
    golden.check_json("job_with_validation.json", build_job(TrainingRun.from_body(body), body))


def test_init_container_is_the_training_container_with_another_command() -> None:
    body = _run()
    job = build_job(TrainingRun.from_body(body), body)
    pod = job["spec"]["template"]["spec"]
    train, init = pod["containers"][0], pod["initContainers"][0]
    assert init["command"] == ["python", "-m", "modelwerk.validate"]
    for key in ("image", "env", "securityContext", "resources", "terminationMessagePolicy"):
        assert init[key] == train[key], key
    assert {m["name"] for m in init["volumeMounts"]} == {"scratch", "params", "data-0"}
    assert all(m.get("readOnly") for m in init["volumeMounts"] if m["name"] != "scratch")
    params = json.loads(job["spec"]["template"]["metadata"]["annotations"]["modelwerk.io/params"])
    assert params["validation"]["datasets"][0]["name"] == "train"
    rule = job["spec"]["podFailurePolicy"]["rules"][0]
    assert rule["onExitCodes"] == {"containerName": "validate", "operator": "In", "values": [3]}


def test_data_on_the_output_claim_shares_its_volume() -> None:
    """One volume per claim: a second volume of the output's claim would be one mount on the
    node, and its readOnly would leave the training container unable to write its artifact."""
    body = _run()
    body["spec"]["datasets"][0]["uri"] = "pvc://models/data/train.csv"
    job = build_job(TrainingRun.from_body(body), body)
    pod = job["spec"]["template"]["spec"]
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert claims == ["models"]
    (output,) = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert "readOnly" not in output["persistentVolumeClaim"]
    train, init = pod["containers"][0], pod["initContainers"][0]
    data = [m for m in init["volumeMounts"] if m["name"] == output["name"]]
    assert data == [{"name": output["name"], "mountPath": "/mnt/pvc/models", "readOnly": True}]
    written = [m for m in train["volumeMounts"] if m["name"] == output["name"]]
    assert [m.get("readOnly", False) for m in written] == [False]


def test_job_without_validation_has_no_init_container() -> None:
    body = _run()
    del body["spec"]["validation"]
    job = build_job(TrainingRun.from_body(body), body)
    assert "initContainers" not in job["spec"]["template"]["spec"]
    assert "podFailurePolicy" not in job["spec"]


def _pod(report: str, created: str = "2026-12-01T10:00:00Z") -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "creationTimestamp": created},
        "status": {
            "phase": "Failed",
            "initContainerStatuses": [
                {"name": "validate", "state": {"terminated": {"exitCode": 3, "message": report}}}
            ],
        },
    }


def test_status_from_a_failing_report_is_the_golden_status(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv")
    exp = expectation(rows={"min": 100}, columns=[{"name": "species", "allowed": ["setosa"]}])
    report = run_checks(path, exp)["report"]
    body = _run()
    body["spec"]["validation"] = {"datasets": [exp.model_dump(by_alias=True, exclude_none=True)]}
    run = TrainingRun.from_body(body)
    status = status_of.observe(run, [_pod(wire.serialize(report))], {})
    golden.check_json("validation_status_failed.json", status)
    assert status is not None
    assert not status["passed"]
    assert status["message"].startswith("data validation failed: train/rows (observed 5)")


def test_recorded_verdict_stands_when_the_pods_are_gone() -> None:
    run = TrainingRun.from_body(_run())
    recorded = {"passed": False, "message": "data validation failed: x", "checks": []}
    assert status_of.observe(run, [], {"validation": recorded}) == recorded
    assert status_of.observe(run, [], {}) is None


def test_a_message_that_is_no_report_is_not_a_verdict() -> None:
    run = TrainingRun.from_body(_run())
    assert status_of.observe(run, [_pod("Traceback: No module named modelwerk")], {}) is None


def test_baseline_from_the_report_keeps_the_declared_order(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv")
    report = run_checks(path, expectation())["report"]
    base = status_of.baseline([_pod(wire.serialize(report))])
    assert base is not None
    assert base["featureOrder"] == ["sepal_length", "petal_width"]
    assert math.isclose(base["features"]["sepal_length"]["mean"], 5.82, rel_tol=1e-6)


def test_init_container_shares_no_objects_with_the_training_container() -> None:
    # Deep copies: a later edit of one container (a test, a mutating caller) leaves the other.
    body = _run()
    pod = build_job(TrainingRun.from_body(body), body)["spec"]["template"]["spec"]
    pod["initContainers"][0]["env"].append({"name": "X", "value": "1"})
    assert {"name": "X", "value": "1"} not in pod["containers"][0]["env"]


def test_the_sample_run_passes_its_own_validation(tmp_path: Path) -> None:
    # The sample's digest and bounds hold for sklearn's iris data as the validator reads it,
    # and its baseline has the names the reference trainer reports.
    pytest.importorskip("sklearn")
    sample = Path(__file__).resolve().parents[2] / "manifests" / "samples" / "trainingrun.yaml"
    spec = TrainingRun.from_body(yaml.safe_load(sample.read_text())).spec
    assert spec.validation is not None
    datasets = {d.name: Dataset(name=d.name, uri=d.uri, digest=d.digest) for d in spec.datasets}
    report = validate(spec.validation, datasets, tmp_path)
    assert report.passed, [c for c in report.check_list() if not c.passed]
    assert "iris/digest" in {c.name for c in report.check_list()}
    assert report.baseline is not None
    assert list(report.baseline) == [
        "sepal_length_cm",
        "sepal_width_cm",
        "petal_length_cm",
        "petal_width_cm",
    ]


def test_a_stuck_validate_container_is_what_the_pod_waits_for() -> None:
    pod = {
        "metadata": {"name": "p"},
        "status": {
            "initContainerStatuses": [
                {"name": "validate", "state": {"waiting": {"reason": "ImagePullBackOff"}}}
            ],
            "containerStatuses": [
                {"name": "train", "state": {"waiting": {"reason": "PodInitializing"}}}
            ],
        },
    }
    assert status_of.init_waiting(pod) == {"reason": "ImagePullBackOff"}
    assert status_of.init_waiting({"metadata": {}, "status": {}}) is None
    assert status_of.init_waiting(None) is None


def test_image_digest_of_a_run_rejected_before_training_comes_from_the_validator() -> None:
    pod = _pod("{}")
    pod["status"]["initContainerStatuses"][0]["imageID"] = "docker-pullable://t@sha256:" + "e" * 64
    assert status_of.init_image_id([pod]) == "t@sha256:" + "e" * 64
    assert status_of.init_image_id([_pod("{}")]) is None
