"""The closed loop on the real node, for tests/node/test_installed.py: the chart's operator, the
real Prometheus Operator's configuration, Prometheus and Alertmanager (Debian's) beside the
cluster, the trainer image retraining on data that includes the drifted distribution.

Where things run and how they reach each other:
- Prometheus (built from its module, see monitoring.py) and Alertmanager run on this machine,
  listening on the node's address (this machine is the real node), so the operator's pod
  reaches Prometheus for its canary analysis (`prometheus.url`).
- Prometheus finds Alertmanager the way the Prometheus Operator configures it: the `Prometheus`
  resource's `alerting.alertmanagers` names a Service, here one without a selector whose
  Endpoints are this machine's Alertmanager (the usual way to point at an Alertmanager outside
  the cluster).
- Alertmanager delivers to the chart's Service (its ClusterIP, which this machine routes) with
  the chart's webhook token.
- The retraining run's dataset is a CSV on the `models` volume that the test, playing the data
  pipeline, extends with labelled flowers of the drifted distribution once the drift begins.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.helpers import http_json
from tests.integration.cluster import get, get_list
from tests.integration.trainingruns import API_VERSION, REFERENCE_HYPERPARAMETERS
from tests.node import monitoring

MODEL = "iris"
DEPLOYMENT = "iris-loop"
DATA = "data/iris-live.csv"  # on the `models` volume
DATA_URI = f"pvc://models/{DATA}"
FEATURES = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]
SKEWED = "petal_length_cm"
SKEW = 10.0  # 5.7 training standard deviations
THRESHOLD = 3
DRIFT_WINDOW = "1m"  # four scrapes of the generated ServiceMonitor's 15 s interval
ANALYSIS_INTERVAL = "45s"  # each canary step's Prometheus window: three scrapes
POD_USER = 65532


def node_address(node: str) -> str:
    body = get("node", node)
    assert body is not None
    (address,) = [a["address"] for a in body["status"]["addresses"] if a["type"] == "InternalIP"]
    return str(address)


def _iris(shift: float = 0.0) -> list[list[Any]]:
    from sklearn.datasets import load_iris

    data = load_iris()
    column = FEATURES.index(SKEWED)
    rows = []
    for values, target in zip(data.data, data.target, strict=True):
        row: list[Any] = [float(v) for v in values]
        row[column] += shift
        rows.append([*row, str(data.target_names[target])])
    return rows


def write_dataset(claim: Path, *, drifted: bool) -> Path:
    """The live dataset: the 150 flowers, and with `drifted` as many again measured in the
    drifted way (the data pipeline has labelled what the model now sees)."""
    path = claim / DATA
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = _iris() + (_iris(SKEW) if drifted else [])
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([*FEATURES, "target"])
        writer.writerows([*(repr(v) for v in row[:-1]), row[-1]] for row in rows)
    for p in (path.parent, path):
        os.chown(p, POD_USER, POD_USER)
    return path


def traffic_rows() -> list[list[float]]:
    """The flowers in a fixed shuffled order, so any stretch of traffic is in distribution."""
    rows = [[float(v) for v in row[:-1]] for row in _iris()]
    random.Random(7).shuffle(rows)
    return rows


def training_spec(image: str, command: Sequence[str]) -> dict[str, Any]:
    return {
        "image": image,
        "command": list(command),
        "hyperparameters": REFERENCE_HYPERPARAMETERS,
        "seed": 42,
        "datasets": [{"name": "iris", "uri": DATA_URI}],
        "backoffLimit": 0,
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "1Gi"}},
        "evaluation": {"metric": "accuracy", "direction": "max", "threshold": 0.9},
    }


def model(template: dict[str, Any]) -> dict[str, Any]:
    """The sample's promotion policy (`candidate` on the best accuracy, a tie to the newer
    version) and a retrain policy on the drift alert."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Model",
        "metadata": {"name": MODEL},
        "spec": {
            "storage": {"uri": f"pvc://models/{MODEL}"},
            "promotion": {"alias": "candidate", "metric": "accuracy", "direction": "max"},
            "retrain": {
                "template": template,
                "onAlerts": ["ModelwerkDataDrift"],
                "cooldown": "1h",
                "maxConcurrent": 1,
            },
        },
    }


def first_run(template: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainingRun",
        "metadata": {"name": f"{MODEL}-1"},
        "spec": {**template, "model": MODEL},
    }


def deployment() -> dict[str, Any]:
    """Version 1, and the `candidate` alias as its canary with an analysis of two steps."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Deployment",
        "metadata": {"name": DEPLOYMENT},
        "spec": {
            "model": MODEL,
            "version": 1,
            "runtime": "native",
            "replicas": 2,
            "resources": {
                "requests": {"cpu": "50m", "memory": "128Mi"},
                "limits": {"memory": "512Mi"},
            },
            "canary": {
                "alias": "candidate",
                "trafficPercent": 50,
                "analysis": {
                    "interval": ANALYSIS_INTERVAL,
                    "steps": [50, 100],
                    "maxErrorRatePercent": 5,
                    "maxLatencyP99Ms": 2000,
                },
            },
            "monitoring": {
                "drift": {"threshold": THRESHOLD, "window": DRIFT_WINDOW, "for": "0s"},
            },
        },
    }


def external_alertmanager(namespace: str, address: str, port: int) -> dict[str, Any]:
    """A Service without a selector and its Endpoints: Alertmanager on this machine."""
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "alertmanager", "namespace": namespace},
                "spec": {"ports": [{"name": "web", "port": port, "targetPort": port}]},
            },
            {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": "alertmanager", "namespace": namespace},
                "subsets": [
                    {"addresses": [{"ip": address}], "ports": [{"name": "web", "port": port}]}
                ],
            },
        ],
    }


def alerting(resource: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The `Prometheus` resource sending its alerts to that Service."""
    spec = {
        **resource["spec"],
        "alerting": {
            "alertmanagers": [
                {"namespace": namespace, "name": "alertmanager", "port": "web", "apiVersion": "v2"}
            ]
        },
    }
    return {**resource, "spec": spec}


@dataclass
class Timeline:
    """What happened when, printed with the test's output."""

    marks: list[tuple[dt.datetime, str]] = field(default_factory=list)

    def add(self, at: str | dt.datetime, what: str) -> None:
        when = at if isinstance(at, dt.datetime) else parse(at)
        self.marks.append((when, what))

    def render(self) -> str:
        ordered = sorted(self.marks)
        start = ordered[0][0]
        lines = ["closed loop on the real node:"]
        for when, what in ordered:
            offset = (when - start).total_seconds()
            lines.append(f"  {when:%H:%M:%S}  +{offset:6.1f}s  {what}")
        return "\n".join(lines)


def parse(text: str) -> dt.datetime:
    """An RFC 3339 time from the apiserver or Prometheus (which gives nanoseconds)."""
    head, _, rest = text.rstrip("Z").partition(".")
    fraction = rest.split("+")[0][:6]
    moment = dt.datetime.fromisoformat(head + (f".{fraction}" if fraction else ""))
    return moment.replace(tzinfo=dt.UTC)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- what the test waits for ---------------------------------------------------------------


def serving(namespace: str, version: int) -> dict[str, Any] | None:
    obj = get("deployments.modelwerk.io", DEPLOYMENT, namespace)
    status = (obj or {}).get("status") or {}
    ok = status.get("phase") == "Available" and status.get("currentVersion") == version
    return obj if ok else None


def service(namespace: str) -> str:
    service = get("service", DEPLOYMENT, namespace)
    assert service is not None
    return f"http://{service['spec']['clusterIP']}:{service['spec']['ports'][0]['port']}"


def drift_rules_in(mon: str, namespace: str) -> bool:
    return any(
        namespace in key and "ModelwerkDataDrift" in text
        for cm in get_list("configmaps", mon, f"prometheus-name={monitoring.NAME}")
        for key, text in (cm.get("data") or {}).items()
    )


def firing(base: str, namespace: str) -> list[dict[str, Any]]:
    alerts = http_json(f"{base}/alerts")["data"]["alerts"]
    return [
        a for a in alerts
        if a["labels"].get("alertname") == "ModelwerkDataDrift" and a["state"] == "firing"
        and a["labels"].get("namespace") == namespace
    ]  # fmt: skip


def versions(namespace: str, count: int) -> list[dict[str, Any]] | None:
    model = get("model", MODEL, namespace) or {}
    versions: list[dict[str, Any]] = (model.get("status") or {}).get("versions") or []
    return versions if len(versions) == count else None


def promoted(namespace: str) -> dict[str, Any] | None:
    obj = get("deployments.modelwerk.io", DEPLOYMENT, namespace)
    canary = ((obj or {}).get("status") or {}).get("canary") or {}
    if canary.get("state") == "RolledBack":
        raise AssertionError(f"the canary was rolled back: {canary}")
    return obj if canary.get("state") == "Promoted" and canary.get("version") == 2 else None
