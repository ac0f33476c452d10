"""The `kubectl modelwerk` plugin: its formatting on sample statuses, target parsing, the rerun
manifest, and the kubectl command lines it runs (with a fake kubectl)."""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Mapping
from typing import Any

import pytest
import yaml

from modelwerk import kubectl_plugin as plugin

D1 = "sha256:" + "3b" * 32
D2 = "sha256:" + "9c" * 32
DATA = "sha256:" + "7a" * 32
IMAGE = "ghcr.io/acme/iris-train@sha256:" + "5e" * 32
HASH = "sha256:" + "1f" * 32
LINEAGE = {
    "image": IMAGE,
    "code": {"repository": "https://github.com/acme/iris", "revision": "3f2c1e9d"},
    "datasets": [{"name": "train", "uri": "s3://data/iris.csv", "digest": DATA}],
    "hyperparametersHash": HASH,
    "seed": 42,
}


def model(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelwerk.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "iris", "namespace": "ml", "uid": "m-uid"},
        "spec": {"promotion": {"alias": "candidate", "metric": "accuracy"}},
        "status": status,
    }


V1 = {
    "version": 1,
    "artifact": {"uri": "s3://bucket/iris/imported/model.joblib", "digest": D1},
    "metrics": {"accuracy": 0.93},
    "source": {"declared": True},
    "registeredAt": "2026-11-26T09:00:00Z",
}
V2 = {
    "version": 2,
    "artifact": {"uri": "s3://bucket/iris/iris-7/model.joblib", "digest": D2},
    "metrics": {"accuracy": 0.9666666667, "f1": 0.96, "loss": 0.125},
    "source": {"trainingRun": "iris-7", "uid": "run-uid-7"},
    "lineage": LINEAGE,
    "registeredAt": "2026-11-26T10:00:00Z",
}
IRIS = model(
    phase="Ready",
    latestVersion=2,
    versions=[V2, V1],  # out of order on purpose: the table sorts
    aliases={"production": 1, "candidate": 2, "staging": 2},
    conditions=[{"type": "Ready", "status": "True", "reason": "Resolved", "message": "2"}],
)
RUN = {
    "apiVersion": "modelwerk.io/v1alpha1",
    "kind": "TrainingRun",
    "metadata": {
        "name": "iris-7",
        "namespace": "ml",
        "uid": "run-uid-7",
        "labels": {"app.kubernetes.io/instance": "ml-apps"},
        "annotations": {
            "argocd.argoproj.io/tracking-id": "ml-apps:modelwerk.io/TrainingRun:ml/iris-7",
            "modelwerk.io/retrain-trigger": "alert:abc",
        },
        "resourceVersion": "812",
        "generation": 2,
        "creationTimestamp": "2026-11-26T09:30:00Z",
        "managedFields": [{"manager": "kubectl"}],
    },
    "spec": {
        "model": "iris",
        "image": IMAGE,
        "hyperparameters": {"max_iter": "200", "C": "1.0"},
        "seed": 42,
        "suspend": True,
        "backoffLimit": 2,
        "evaluation": {"metric": "accuracy", "threshold": 0.9},
    },
    "status": {"phase": "Succeeded", "modelVersion": 2, "reproducibility": LINEAGE},
}
DEPLOYMENT = {
    "apiVersion": "modelwerk.io/v1alpha1",
    "kind": "Deployment",
    "metadata": {"name": "iris", "namespace": "ml"},
    "spec": {"model": "iris", "alias": "production", "canary": {"alias": "candidate"}},
    "status": {
        "phase": "Available",
        "currentVersion": 1,
        "endpoint": "http://iris.ml.svc:8000",
        "canary": {"version": 2, "trafficPercent": 10, "state": "Progressing"},
        "lineage": {**LINEAGE, "trainingRun": "iris-1"},
    },
}


# --- formatting -----------------------------------------------------------------------------


def test_format_table_aligns_columns_three_spaces_apart() -> None:
    out = plugin.format_table(["A", "LONGER"], [["wide-cell", "x"], ["y", ""]])
    assert out == "A           LONGER\nwide-cell   x\ny\n"


def test_format_metric() -> None:
    assert plugin.format_metric(0.9666666667) == "0.966667"
    assert plugin.format_metric(1.0) == "1"
    assert plugin.format_metric(1234567.0) == "1.23457e+06"
    assert plugin.format_metric(None) == "<none>"
    assert plugin.format_metric(True) == "True"


def test_short_digest() -> None:
    assert plugin.short_digest(D1) == "sha256:3b3b3b3b3b3b"
    assert plugin.short_digest(None) == "<none>"
    assert plugin.short_digest("") == "<none>"


def test_versions_table() -> None:
    assert plugin.versions_table(IRIS) == (
        "VERSION   ALIASES             ACCURACY   F1       LOSS     DIGEST"
        "                SOURCE     REGISTERED\n"
        "1         production          0.93       <none>   <none>   sha256:3b3b3b3b3b3b"
        "   declared   2026-11-26T09:00:00Z\n"
        "2         candidate,staging   0.966667   0.96     0.125    sha256:9c9c9c9c9c9c"
        "   iris-7     2026-11-26T10:00:00Z\n"
    )


def test_metric_columns_put_the_promotion_metric_first() -> None:
    obj = copy.deepcopy(IRIS)
    obj["spec"]["promotion"]["metric"] = "loss"
    assert plugin.metric_names(obj) == ["loss", "accuracy", "f1"]
    obj["spec"].pop("promotion")
    assert plugin.metric_names(obj) == ["accuracy", "f1", "loss"]


def test_versions_table_of_an_empty_registry_has_only_headers() -> None:
    empty = model(phase="Pending", versions=[], aliases={})
    assert plugin.versions_table(empty) == ("VERSION   ALIASES   DIGEST   SOURCE   REGISTERED\n")


def test_versions_document_is_the_raw_registry_sorted() -> None:
    doc = plugin.versions_document(IRIS)
    assert doc["model"] == "iris"
    assert doc["namespace"] == "ml"
    assert doc["latestVersion"] == 2
    assert [v["version"] for v in doc["versions"]] == [1, 2]
    assert doc["versions"][1] == V2


def test_model_warning_only_when_not_ready() -> None:
    assert plugin.model_warning(IRIS) is None
    bad = model(
        phase="Degraded",
        conditions=[
            {"type": "Ready", "status": "False", "reason": "VersionConflict", "message": "v1"}
        ],
    )
    assert plugin.model_warning(bad) == "warning: Model iris is not Ready: VersionConflict: v1"


# --- lineage --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["iris"], plugin.Target("Deployment", "iris")),
        (["deployment/iris"], plugin.Target("Deployment", "iris")),
        (["mwd/iris"], plugin.Target("Deployment", "iris")),
        (["deployments.modelwerk.io/iris"], plugin.Target("Deployment", "iris")),
        (["deployment", "iris"], plugin.Target("Deployment", "iris")),
        (["model/iris:3"], plugin.Target("Model", "iris", "3")),
        (["mwm/iris:production"], plugin.Target("Model", "iris", "production")),
        (["model", "iris"], plugin.Target("Model", "iris")),
        (["tr/iris-7"], plugin.Target("TrainingRun", "iris-7")),
        (["TrainingRun/iris-7"], plugin.Target("TrainingRun", "iris-7")),
    ],
)
def test_parse_target(words: list[str], expected: plugin.Target) -> None:
    assert plugin.parse_target(words) == expected


@pytest.mark.parametrize(
    "words",
    [["pod/iris"], ["deployment/iris:3"], ["model/"], ["model/iris:"], ["a", "b", "c"]],
)
def test_parse_target_refuses(words: list[str]) -> None:
    with pytest.raises(plugin.PluginError) as err:
        plugin.parse_target(words)
    assert err.value.code == 2


def test_find_version_by_number_alias_and_latest() -> None:
    assert plugin.find_version(IRIS, "1")["version"] == 1
    assert plugin.find_version(IRIS, 2)["version"] == 2
    assert plugin.find_version(IRIS, "production")["version"] == 1
    assert plugin.find_version(IRIS, None)["version"] == 2
    with pytest.raises(plugin.PluginError, match=r"no alias 'prod' \(aliases: candidate"):
        plugin.find_version(IRIS, "prod")
    with pytest.raises(plugin.PluginError, match="no version 9"):
        plugin.find_version(IRIS, "9")
    with pytest.raises(plugin.PluginError, match="no version registered yet"):
        plugin.find_version(model(versions=[]), None)


def test_version_record_joins_registry_entry_and_run() -> None:
    record = plugin.version_record(IRIS, V2, RUN)
    assert record == {
        "model": "iris",
        "version": 2,
        "aliases": ["candidate", "staging"],
        "artifact": V2["artifact"],
        "metrics": V2["metrics"],
        "registeredAt": "2026-11-26T10:00:00Z",
        "declared": False,
        "trainingRun": "iris-7",
        "trainingRunUid": "run-uid-7",
        "image": IMAGE,
        "code": LINEAGE["code"],
        "datasets": LINEAGE["datasets"],
        "hyperparametersHash": HASH,
        "seed": 42,
        "workers": 1,
        "attempt": None,
        "engine": None,
        "run": {
            "phase": "Succeeded",
            "hyperparameters": {"max_iter": "200", "C": "1.0"},
            "rerunOf": None,
        },
    }


def test_version_record_of_a_deleted_or_replaced_run() -> None:
    assert plugin.version_record(IRIS, V2, None)["run"] is None
    other = copy.deepcopy(RUN)
    other["metadata"]["uid"] = "someone-else"
    assert plugin.version_record(IRIS, V2, other)["run"] is None


def test_render_lineage_of_a_model_version() -> None:
    text = plugin.render_lineage({"versions": [plugin.version_record(IRIS, V2, RUN)]})
    assert text == (
        "iris:2\n"
        "  ALIASES           candidate,staging\n"
        "  TRAINING RUN      iris-7 (Succeeded)\n"
        f"  IMAGE             {IMAGE}\n"
        "  CODE              https://github.com/acme/iris@3f2c1e9d\n"
        f"  DATASET train     s3://data/iris.csv@{DATA}\n"
        f"  HYPERPARAMETERS   {HASH} (C=1.0, max_iter=200)\n"
        "  SEED              42\n"
        "  METRICS           accuracy=0.966667, f1=0.96, loss=0.125\n"
        f"  ARTIFACT          s3://bucket/iris/iris-7/model.joblib@{D2}\n"
        "  REGISTERED        2026-11-26T10:00:00Z\n"
    )


def test_render_lineage_of_a_declared_version() -> None:
    text = plugin.render_lineage({"versions": [plugin.version_record(IRIS, V1)]})
    assert "TRAINING RUN      none: declared in the Model's spec.versions\n" in text
    assert "  IMAGE             <none>\n" in text
    assert "  DATASETS          <none>\n" in text


def test_served_versions() -> None:
    assert plugin.served_versions(DEPLOYMENT) == [("stable", 1), ("canary", 2)]
    promoted = copy.deepcopy(DEPLOYMENT)
    promoted["status"]["canary"] = {"version": 2, "trafficPercent": 100, "state": "Promoted"}
    promoted["status"]["currentVersion"] = 2
    assert plugin.served_versions(promoted) == [("stable", 2)]
    pending = {
        "metadata": {"name": "iris"},
        "status": {
            "phase": "Pending",
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "AliasNotSet", "message": "no"}
            ],
        },
    }
    with pytest.raises(plugin.PluginError, match=r"serves no version yet .phase Pending: Alias"):
        plugin.served_versions(pending)


def test_render_lineage_of_a_deployment_with_canary() -> None:
    doc = plugin.deployment_document(
        DEPLOYMENT,
        [
            {"role": "stable", **plugin.version_record(IRIS, V1)},
            {"role": "canary", **plugin.version_record(IRIS, V2, RUN)},
        ],
    )
    text = plugin.render_lineage(doc)
    assert text.startswith(
        "Deployment ml/iris: Available, serving Model iris version 1 at "
        "http://iris.ml.svc:8000; canary version 2 at 10%\n\nstable  iris:1\n"
    )
    assert "\ncanary  iris:2\n  ALIASES           candidate,staging\n" in text
    assert json.loads(json.dumps(doc))["deployment"]["currentVersion"] == 1


def test_record_from_deployment_lineage_when_the_model_is_gone() -> None:
    record = plugin.record_from_deployment(DEPLOYMENT, 1)
    assert record["trainingRun"] == "iris-1"
    assert record["image"] == IMAGE
    assert record["metrics"] == {}
    text = plugin.render_lineage({"versions": [record]})
    assert "TRAINING RUN      iris-1\n" in text
    assert "METRICS           <none>\n" in text


def test_run_record_of_an_unregistered_run() -> None:
    rejected = copy.deepcopy(RUN)
    rejected["status"] = {
        "phase": "Rejected",
        "metrics": {"accuracy": 0.5},
        "artifact": {"uri": "s3://x/y", "digest": D1},
    }
    record = plugin.run_record(rejected)
    assert record["version"] is None
    assert record["image"] == IMAGE  # from the spec until the pod reports its imageID
    assert record["seed"] == 42
    text = plugin.render_lineage(
        {
            "trainingRun": {"name": "iris-7", "namespace": "ml", "phase": "Rejected"},
            "versions": [record],
        }
    )
    assert text.startswith(
        "TrainingRun ml/iris-7: Rejected, not registered as a model version\n\n"
        "iris (unregistered)\n"
    )


# --- rerun ----------------------------------------------------------------------------------


def test_rerun_manifest_copies_the_spec_and_nothing_else() -> None:
    manifest = plugin.rerun_manifest(RUN)
    expected_spec = {k: v for k, v in RUN["spec"].items() if k != "suspend"}
    assert manifest == {
        "apiVersion": "modelwerk.io/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {
            "generateName": "iris-7-",
            "namespace": "ml",
            "annotations": {"modelwerk.io/rerun-of": "iris-7"},
        },
        "spec": expected_spec,
    }
    assert RUN["spec"]["suspend"] is True, "the old run is not modified"


def test_rerun_manifest_with_a_name_and_of_a_generated_run() -> None:
    assert plugin.rerun_manifest(RUN, "iris-8")["metadata"]["name"] == "iris-8"
    assert "generateName" not in plugin.rerun_manifest(RUN, "iris-8")["metadata"]
    generated = copy.deepcopy(RUN)
    generated["metadata"]["generateName"] = "iris-"
    assert plugin.generate_name(generated) == "iris-"
    long = copy.deepcopy(RUN)
    long["metadata"]["name"] = "r" * 63
    assert len(plugin.generate_name(long)) == 58


# --- the command line, with a fake kubectl --------------------------------------------------


class FakeKubectl:
    """Answers `kubectl get <resource> <name> -o json` from a dict; records every call."""

    def __init__(self, objects: Mapping[tuple[str, str], Mapping[str, Any]]) -> None:
        self.objects = objects
        self.calls: list[tuple[list[str], str | None]] = []

    def __call__(self, args: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
        self.calls.append((args, stdin))
        verb_at = next(i for i, a in enumerate(args) if a in ("get", "create"))
        if args[verb_at] == "create":
            manifest = json.loads(stdin or "{}")
            meta = manifest["metadata"]
            meta.setdefault("name", meta.pop("generateName", "") + "x7k2q")
            return subprocess.CompletedProcess(args, 0, json.dumps(manifest), "")
        resource, name = args[verb_at + 1], args[verb_at + 2]
        obj = self.objects.get((resource, name))
        if obj is None:
            if "--ignore-not-found" in args:
                return subprocess.CompletedProcess(args, 0, "", "")
            message = f'Error from server (NotFound): {resource} "{name}" not found\n'
            return subprocess.CompletedProcess(args, 1, "", message)
        return subprocess.CompletedProcess(args, 0, json.dumps(obj), "")


OBJECTS = {
    ("models.modelwerk.io", "iris"): IRIS,
    ("trainingruns.modelwerk.io", "iris-7"): RUN,
    ("deployments.modelwerk.io", "iris"): DEPLOYMENT,
}


def run_main(
    capsys: pytest.CaptureFixture[str], *argv: str, objects: Mapping[Any, Any] = OBJECTS
) -> tuple[int, str, str, FakeKubectl]:
    fake = FakeKubectl(objects)
    code = plugin.main(list(argv), runner=fake)
    out, err = capsys.readouterr()
    return code, out, err, fake


def test_versions_passes_kubeconfig_context_and_namespace(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBECTL_PATH", raising=False)
    code, out, err, fake = run_main(
        capsys, "versions", "iris", "-n", "ml", "--kubeconfig", "/tmp/kc", "--context", "dev"
    )
    assert code == 0, err
    assert out == plugin.versions_table(IRIS)
    assert fake.calls == [
        (
            [
                "kubectl",
                "--kubeconfig",
                "/tmp/kc",
                "--context",
                "dev",
                "--namespace",
                "ml",
                "get",
                "models.modelwerk.io",
                "iris",
                "--output",
                "json",
            ],
            None,
        )
    ]


def test_common_flags_also_before_the_subcommand(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECTL_PATH", "/opt/bin/kubectl")
    code, _, _, fake = run_main(capsys, "-n", "ml", "versions", "iris", "-o", "json")
    assert code == 0
    assert fake.calls[0][0][:3] == ["/opt/bin/kubectl", "--namespace", "ml"]


def test_versions_json_and_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _, _ = run_main(capsys, "versions", "iris", "-o", "json")
    assert json.loads(out) == plugin.versions_document(IRIS)
    _, out, _, _ = run_main(capsys, "versions", "iris", "-o", "yaml")
    assert yaml.safe_load(out) == plugin.versions_document(IRIS)


def test_versions_of_an_empty_registry_says_so_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    empty = {("models.modelwerk.io", "iris"): model(phase="Pending", versions=[])}
    code, out, err, _ = run_main(capsys, "versions", "iris", objects=empty)
    assert code == 0
    assert out == ""
    assert err == "No versions registered for Model iris in namespace ml.\n"


def test_kubectl_errors_are_passed_through_with_its_exit_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err, _ = run_main(capsys, "versions", "nope")
    assert code == 1
    assert out == ""
    assert err == 'Error from server (NotFound): models.modelwerk.io "nope" not found\n'


def test_lineage_of_a_deployment_reads_deployment_model_and_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err, fake = run_main(capsys, "lineage", "deployment/iris", "-o", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert [(v["role"], v["version"]) for v in doc["versions"]] == [("stable", 1), ("canary", 2)]
    assert doc["versions"][1]["run"]["phase"] == "Succeeded"
    fetched = [call[0][call[0].index("get") + 1 : call[0].index("get") + 3] for call in fake.calls]
    assert fetched == [
        ["deployments.modelwerk.io", "iris"],
        ["models.modelwerk.io", "iris"],
        ["trainingruns.modelwerk.io", "iris-7"],
    ]


def test_lineage_of_a_deployment_whose_model_is_gone(capsys: pytest.CaptureFixture[str]) -> None:
    objects = {("deployments.modelwerk.io", "iris"): DEPLOYMENT}
    code, out, err, _ = run_main(capsys, "lineage", "iris", objects=objects)
    assert code == 0, err
    assert "stable  iris:1\n" in out
    assert "TRAINING RUN      iris-1\n" in out
    assert "canary" not in out.split("\n\n", 1)[1]


def test_lineage_of_a_model_version_and_of_a_run(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _, _ = run_main(capsys, "lineage", "model/iris:candidate")
    assert code == 0
    assert out == plugin.render_lineage({"versions": [plugin.version_record(IRIS, V2, RUN)]})
    code, out, _, _ = run_main(capsys, "lineage", "trainingrun/iris-7", "-o", "yaml")
    assert code == 0
    doc = yaml.safe_load(out)
    assert doc["trainingRun"]["modelVersion"] == 2
    assert doc["versions"][0]["version"] == 2


def test_lineage_refuses_an_unknown_kind(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err, fake = run_main(capsys, "lineage", "pod/iris")
    assert code == 2
    assert err.startswith("error: unknown kind 'pod'")
    assert fake.calls == []


def test_rerun_creates_and_prints_the_name(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBECTL_PATH", raising=False)
    code, out, err, fake = run_main(capsys, "rerun", "iris-7", "-n", "ml")
    assert code == 0, err
    assert out == "iris-7-x7k2q\n"
    args, stdin = fake.calls[-1]
    assert args == ["kubectl", "--namespace", "ml", "create", "--filename", "-", "--output", "json"]
    assert json.loads(stdin or "") == plugin.rerun_manifest(RUN)


def test_rerun_output_forms(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _, _ = run_main(capsys, "rerun", "iris-7", "--name", "iris-8", "-o", "name")
    assert out == "trainingrun.modelwerk.io/iris-8\n"
    _, out, _, _ = run_main(capsys, "rerun", "iris-7", "--name", "iris-8", "-o", "json")
    assert json.loads(out)["metadata"]["annotations"] == {"modelwerk.io/rerun-of": "iris-7"}


def test_rerun_dry_run_creates_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _, fake = run_main(capsys, "rerun", "iris-7", "--dry-run")
    assert code == 0
    assert yaml.safe_load(out) == plugin.rerun_manifest(RUN)
    assert all("create" not in call[0] for call in fake.calls)


def test_missing_kubectl_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECTL_PATH", "/nonexistent/kubectl")
    code = plugin.main(["versions", "iris"])
    assert code == 1
    assert capsys.readouterr().err.startswith("error: cannot run /nonexistent/kubectl")
