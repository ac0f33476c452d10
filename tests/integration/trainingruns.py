"""Helpers for the TrainingRun and registry integration tests: a real report from the reference
trainer, TrainingRun and Model manifests, waits on a run's phase and conditions, Events, and the
operator's Prometheus metrics."""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from modelwerk import sdk
from tests.integration.cluster import condition, get, kubectl, wait_for

API_VERSION = "modelwerk.io/v1alpha1"
# Never pulled: kwok simulates the container. Not pinned by digest, so the imageID kwok reports
# (`<image>@sha256:<hash of the reference>`) differs from spec.image, as a real runtime's would.
IMAGE = "registry.example.com/modelwerk/iris-trainer:0.1.0"
STORAGE_URI = "s3://bucket/iris"
REFERENCE_SEED = 42
REFERENCE_HYPERPARAMETERS = {"C": "1.0", "max_iter": "200"}
TERMINAL_PHASES = frozenset({"Succeeded", "Failed", "Rejected"})
WRITE_VERBS = ("patch", "post", "put", "delete")

# --- the report ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainerReport:
    text: str
    """The termination message exactly as the trainer wrote it."""

    @property
    def data(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.text)
        return parsed

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.data["metrics"])

    @property
    def accuracy(self) -> float:
        return float(self.data["metrics"]["accuracy"])


@functools.cache
def reference_report() -> TrainerReport:
    """Runs `python -m modelwerk.trainers.iris` once per test session, outside any cluster, with
    the SDK's variables pointing into a temporary directory, and returns the report it wrote."""
    workdir = Path(tempfile.mkdtemp(prefix="modelwerk-iris-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    message = workdir / "termination-log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELWERK_")}
    env.update(
        {
            sdk.ENV_TERMINATION_MESSAGE_PATH: str(message),
            sdk.ENV_OUTPUT_DIR: str(workdir / "output"),
            sdk.ENV_OUTPUT_URI: f"{STORAGE_URI}/reference",
            sdk.ENV_RUN: "reference",
            sdk.ENV_SEED: str(REFERENCE_SEED),
            sdk.ENV_HYPERPARAMETERS: json.dumps(REFERENCE_HYPERPARAMETERS),
        }
    )
    proc = subprocess.run(
        [sys.executable, "-m", "modelwerk.trainers.iris"],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"reference trainer exited {proc.returncode}:\n{proc.stderr}")
    text = message.read_text(encoding="utf-8")
    # The trainer also prints the report on stdout; both must agree.
    assert text.strip() == proc.stdout.strip().splitlines()[-1], proc.stdout
    return TrainerReport(text)


# --- manifests ----------------------------------------------------------------------------


def model_manifest(
    name: str,
    *,
    storage_uri: str | None = STORAGE_URI,
    versions: list[dict[str, Any]] | None = None,
    aliases: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if storage_uri is not None:
        spec["storage"] = {"uri": storage_uri}
    if versions:
        spec["versions"] = versions
    if aliases:
        spec["aliases"] = dict(aliases)
    return {"apiVersion": API_VERSION, "kind": "Model", "metadata": {"name": name}, "spec": spec}


def run_manifest(
    name: str,
    model: str | None,
    *,
    report: str | None = None,
    sim: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    backoff_limit: int = 0,
    seed: int | None = REFERENCE_SEED,
    hyperparameters: Mapping[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A TrainingRun whose simulated container ends the way `report` and `sim` say.

    `report` becomes KWOK_SIM_REPORT (the termination message); `sim` holds the other KWOK_SIM_*
    hooks without their prefix (e.g. `{"DURATION": "3s"}`); further keyword arguments are spec
    fields by their camelCase names (`evaluation=...`, `ttlSecondsAfterFinished=2`)."""
    variables = {"TRAINING_MODE": "integration-test", **(env or {})}
    if report is not None:
        variables["KWOK_SIM_REPORT"] = report
    for key, value in (sim or {}).items():
        variables[f"KWOK_SIM_{key}"] = value
    body: dict[str, Any] = {
        "image": IMAGE,
        "command": ["python", "-m", "modelwerk.trainers.iris"],
        "env": [{"name": k, "value": v} for k, v in variables.items()],
        "backoffLimit": backoff_limit,
        "hyperparameters": dict(
            REFERENCE_HYPERPARAMETERS if hyperparameters is None else hyperparameters
        ),
        **spec,
    }
    if model is not None:
        body["model"] = model
    if seed is not None:
        body["seed"] = seed
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainingRun",
        "metadata": {"name": name},
        "spec": body,
    }


def as_list(*manifests: dict[str, Any]) -> dict[str, Any]:
    """One kubectl apply for many objects, so they are created at (nearly) the same moment."""
    return {"apiVersion": "v1", "kind": "List", "items": list(manifests)}


# --- waits --------------------------------------------------------------------------------


def run(namespace: str, name: str) -> dict[str, Any] | None:
    return get("trainingrun", name, namespace)


def wait_phase(namespace: str, name: str, phase: str, *, timeout: float = 60) -> dict[str, Any]:
    """Until the run's phase is `phase`; fails at once if it settles in another final phase."""

    def probe() -> dict[str, Any] | None:
        obj = run(namespace, name)
        current = ((obj or {}).get("status") or {}).get("phase")
        if current == phase:
            return obj
        if current in TERMINAL_PHASES and phase in TERMINAL_PHASES:
            raise AssertionError(
                f"run {name} ended {current}, expected {phase}: "
                f"{json.dumps(obj['status'] if obj else None, indent=1)}"
            )
        return None

    return wait_for(f"TrainingRun {namespace}/{name} phase {phase}", probe, timeout=timeout)


def wait_condition(
    kind: str,
    namespace: str,
    name: str,
    type_: str,
    status: str,
    reason: str | None = None,
    *,
    timeout: float = 60,
) -> dict[str, Any]:
    """Until the object has condition `type_` with `status` (and `reason`); returns the object."""

    def probe() -> dict[str, Any] | None:
        obj = get(kind, name, namespace)
        cond = condition(obj, type_)
        if cond and cond.get("status") == status and (reason is None or cond["reason"] == reason):
            return obj
        return None

    what = f"{kind} {namespace}/{name} condition {type_}={status}" + (
        f" reason {reason}" if reason else ""
    )
    return wait_for(what, probe, timeout=timeout)


def wait_gone(kind: str, namespace: str, name: str, *, timeout: float = 60) -> None:
    wait_for(
        f"{kind} {namespace}/{name} to be deleted",
        lambda: get(kind, name, namespace) is None,
        timeout=timeout,
    )


def conditions_by_type(obj: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def events_for(namespace: str, name: str, kind: str = "TrainingRun") -> list[dict[str, Any]]:
    out = kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        f"involvedObject.name={name},involvedObject.kind={kind}",
        "-o",
        "json",
    )
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def pods_of(namespace: str, run_name: str) -> list[dict[str, Any]]:
    out = kubectl(
        "get", "pods", "-n", namespace, "-l", f"modelwerk.io/trainingrun={run_name}", "-o", "json"
    )
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


# --- the operator's metrics ---------------------------------------------------------------


def metric_sum(text: str, name: str, **labels: str | tuple[str, ...]) -> float:
    """Sum of the samples of `name` whose labels match (a tuple: any of these values)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name != name:
                continue
            if all(
                sample.labels.get(k) in (v if isinstance(v, tuple) else (v,))
                for k, v in labels.items()
            ):
                total += sample.value
    return total


def api_writes(text: str) -> float:
    return metric_sum(text, "modelwerk_api_requests_total", verb=WRITE_VERBS)


def reconcile_failures_logged(log: str, kind: str, namespace: str, name: str) -> list[str]:
    """Lines where the work queue reports a failed reconcile of this object (see workqueue.py)."""
    needle = f"{kind} ('{namespace}', '{name}'): reconcile failed"
    return [line for line in log.splitlines() if needle in line]
