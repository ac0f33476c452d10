"""TrainingRuns on the real node: the reference trainer in the trainer image built here trains,
the SDK writes the report to the termination message, the artifact lands on the `models` volume,
and the operator registers the version with the digest of the image that ran. Failures are the
real kubelet's: a non-zero exit, and a container killed by its memory limit."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from tests.integration.cluster import apply, get
from tests.integration.conftest import OperatorProcess
from tests.integration.trainingruns import (
    API_VERSION,
    REFERENCE_HYPERPARAMETERS,
    conditions_by_type,
    pods_of,
    wait_condition,
    wait_phase,
)
from tests.node.conftest import Image, RealNode

TRAIN = ["python", "-m", "modelwerk.trainers.iris"]


def _model() -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Model",
        "metadata": {"name": "iris"},
        "spec": {"storage": {"uri": "pvc://models/iris"}},
    }


def _run(name: str, image: Image, command: list[str], memory: str = "1Gi") -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainingRun",
        "metadata": {"name": name},
        "spec": {
            "model": "iris",
            "image": image.ref,
            "command": command,
            "hyperparameters": REFERENCE_HYPERPARAMETERS,
            "seed": 42,
            "datasets": [{"name": "iris", "uri": "sklearn://datasets/iris"}],
            "backoffLimit": 0,
            "resources": {
                "requests": {"cpu": "100m", "memory": "64Mi"},
                "limits": {"memory": memory},
            },
            "evaluation": {"metric": "accuracy", "direction": "max", "threshold": 0.9},
        },
    }


def test_run_trains_in_its_container_and_registers(
    real_node: RealNode,
    namespace: str,
    operator: OperatorProcess,
    models_claim: Path,
    images: dict[str, Image],
) -> None:
    trainer = images["trainer"]
    apply(_model(), namespace)
    apply(_run("iris-1", trainer, TRAIN), namespace)
    obj = wait_phase(namespace, "iris-1", "Succeeded", timeout=300)
    status = obj["status"]
    # The digest of the image that ran, as the node reports it: a real sha256 manifest digest.
    assert status["reproducibility"]["image"] == trainer.image_id
    assert trainer.digest.startswith("sha256:")
    assert len(trainer.digest) == 71
    (pod,) = pods_of(namespace, "iris-1")
    assert pod["spec"]["nodeName"] == real_node.name
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 0
    assert '"metrics"' in term["message"]
    assert status["metrics"]["accuracy"] >= 0.9

    # The artifact is on the volume, and its digest is the one registered.
    model = get("model", "iris", namespace)
    assert model is not None
    (version,) = model["status"]["versions"]
    assert version["version"] == 1
    artifact = version["artifact"]
    assert artifact["uri"].startswith("pvc://models/iris/iris-1")
    relative = artifact["uri"].removeprefix("pvc://models/")
    on_disk = models_claim / relative
    files = [on_disk] if on_disk.is_file() else sorted(p for p in on_disk.rglob("*") if p.is_file())
    assert files, f"nothing written under {on_disk}"
    assert any(
        "sha256:" + hashlib.sha256(f.read_bytes()).hexdigest() == artifact["digest"] for f in files
    ), (artifact, files)
    assert version["lineage"]["image"] == trainer.image_id


def test_nonzero_exit_fails_the_run(
    real_node: RealNode,
    namespace: str,
    operator: OperatorProcess,
    models_claim: Path,
    images: dict[str, Image],
) -> None:
    apply(_model(), namespace)
    apply(_run("exit3", images["trainer"], ["python", "-c", "raise SystemExit(3)"]), namespace)
    obj = wait_phase(namespace, "exit3", "Failed", timeout=180)
    failed = conditions_by_type(obj)["Failed"]
    assert failed["status"] == "True"
    assert "container exited with code 3 (Error)" in failed["message"], failed
    assert "Registered" not in conditions_by_type(obj)


def test_memory_limit_kills_the_run_with_oomkilled(
    real_node: RealNode,
    namespace: str,
    operator: OperatorProcess,
    models_claim: Path,
    images: dict[str, Image],
) -> None:
    apply(_model(), namespace)
    # Touches 512 MiB against a 64 MiB limit: the kernel's OOM killer, reported by the kubelet.
    hog = ["python", "-c", "b = bytearray(512 * 1024 * 1024); print(len(b))"]
    apply(_run("oom", images["trainer"], hog, memory="64Mi"), namespace)
    obj = wait_phase(namespace, "oom", "Failed", timeout=180)
    failed = conditions_by_type(obj)["Failed"]
    assert failed["reason"] == "OOMKilled", failed
    assert "137" in failed["message"], failed
    (pod,) = pods_of(namespace, "oom")
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["reason"] == "OOMKilled"
    assert term["exitCode"] == 137


def _parquet(path: Path, species: list[str]) -> str:
    """An iris-like Parquet file on the volume, readable by the pods' user; returns its digest."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = len(species)
    table = pa.table(
        {
            "sepal_length": pa.array([4.5 + 0.1 * i for i in range(n)], pa.float64()),
            "species": pa.array(species, pa.string()),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    for p in (path.parent, path):
        os.chown(p, 65532, 65532)
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _validated_run(name: str, image: Image, uri: str, digest: str) -> dict[str, Any]:
    body = _run(name, image, TRAIN)
    body["spec"]["datasets"] = [{"name": "train", "uri": uri, "digest": digest}]
    body["spec"]["validation"] = {
        "datasets": [
            {
                "name": "train",
                "rows": {"min": 10},
                "columns": [
                    {"name": "sepal_length", "type": "float", "min": 4, "max": 8},
                    {
                        "name": "species",
                        "type": "string",
                        "allowed": ["setosa", "versicolor"],
                        "feature": False,
                    },
                ],
            }
        ]
    }
    return body


def test_parquet_data_is_validated_in_the_trainer_image(
    real_node: RealNode,
    namespace: str,
    operator: OperatorProcess,
    models_claim: Path,
    images: dict[str, Image],
) -> None:
    """The `validate` init container runs in the trainer image on the node, reads Parquet from
    the volume with pyarrow, passes good data to training and refuses bad data with exit 3."""
    trainer = images["trainer"]
    apply(_model(), namespace)
    good = _parquet(models_claim / "data" / "good.parquet", ["setosa", "versicolor"] * 6)
    bad = _parquet(models_claim / "data" / "bad.parquet", ["setosa", "virginica", "setosa"])
    apply(_validated_run("good", trainer, "pvc://models/data/good.parquet", good), namespace)
    apply(_validated_run("bad", trainer, "pvc://models/data/bad.parquet", bad), namespace)

    passed = wait_phase(namespace, "good", "Succeeded", timeout=300)["status"]
    assert passed["validation"]["passed"] is True, passed["validation"]
    assert {d["name"]: d["rows"] for d in passed["validation"]["datasets"]} == {"train": 12}
    assert passed["modelVersion"] == 1

    refused = wait_phase(namespace, "bad", "Rejected", timeout=300)
    assert conditions_by_type(refused)["Validated"]["reason"] == "DataValidationFailed"
    failed = {c["name"] for c in refused["status"]["validation"]["checks"] if not c["passed"]}
    assert {"train/rows", "train/species/allowed"} <= failed, failed
    (pod,) = pods_of(namespace, "bad")
    (init,) = pod["status"]["initContainerStatuses"]
    assert init["state"]["terminated"]["exitCode"] == 3
    # The lineage of a run refused before training names the image its validator ran.
    assert refused["status"]["reproducibility"]["image"] == trainer.image_id
    # Training never started.
    assert "terminated" not in (pod["status"]["containerStatuses"][0].get("state") or {})


def test_a_missing_storage_secret_holds_the_run_until_it_exists(
    real_node: RealNode,
    namespace: str,
    operator: OperatorProcess,
    models_claim: Path,
    images: dict[str, Image],
) -> None:
    """The Model's storage.secretRef names no Secret: the real kubelet refuses to start the
    container (CreateContainerConfigError), which the run shows as Running=False with the
    kubelet's message; once the Secret exists the kubelet starts it and the run trains."""
    model = _model()
    model["spec"]["storage"]["secretRef"] = {"name": "iris-storage"}
    apply(model, namespace)
    apply(_run("nosecret", images["trainer"], TRAIN), namespace)
    obj = wait_condition(
        "trainingrun",
        namespace,
        "nosecret",
        "Running",
        "False",
        "CreateContainerConfigError",
        timeout=180,
    )
    running = conditions_by_type(obj)["Running"]
    assert 'secret "iris-storage" not found' in running["message"], running
    assert obj["status"]["phase"] == "Pending", obj["status"]
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "iris-storage"},
        "stringData": {"MODELWERK_TEST_STORE_TOKEN": "not-a-real-credential"},
    }
    apply(secret, namespace)
    done = wait_phase(namespace, "nosecret", "Succeeded", timeout=300)
    assert done["status"]["modelVersion"] == 1
