"""All three kinds at scale (issue #12, item 5): Models with declared versions and monitored
native Deployments, on the same cluster and operator process as bench.py's TrainingRun figures.

Per kind: writes per lifecycle (create -> converged), idle writes, writes on an operator restart,
writes per serving-pod replacement, create -> child latency, RSS and restart-to-steady time.
Writes are counted twice: the operator's own request counters, and the apiserver's audit log
(operator's user agent only), where each write is attributed to a kind by the object's name
(Models `km-*`, Deployments and their children `kd-*`, the rest by resource).

Versions are declared in the Model's spec (README, Model): one create per Model carries all its
versions, which is how a registry imported from outside the cluster looks, and it costs no
TrainingRun per version (those are measured by bench.py's throughput scenario).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import bench
from kubernetes import client, watch

from modelwerk import constants
from modelwerk.k8s import Kube

NS = bench.NAMESPACE
MODEL, DEPLOY = "km", "kd"  # name prefixes: the audit log attributes writes by them
WRITE_VERBS = frozenset({"post", "patch", "put", "delete"})  # the operator's metric's verbs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("all kinds (bench/kinds.py)")
    group.add_argument("--models", type=int, default=1000, help="Models (0: skip)")
    group.add_argument("--versions", type=int, default=10, help="declared versions per Model")
    group.add_argument("--deployments", type=int, default=1000, help="monitored Deployments")
    group.add_argument("--serving-replicas", type=int, default=2, help="pods per Deployment")
    group.add_argument(
        "--replacements", type=int, default=20, help="serving pods deleted (one per Deployment)"
    )


def version(model: int, number: int) -> dict[str, Any]:
    digest = f"{model:08x}{number:04x}".ljust(64, "0")
    return {
        "version": number,
        "artifact": {
            "uri": f"s3://bench/{MODEL}-{model}/v{number}/model.joblib",
            "digest": f"sha256:{digest}",
        },
        "metrics": {"accuracy": round(0.9 + number / 1000, 4)},
        # A baseline, so the Deployments' PrometheusRules carry drift alerts as in production.
        "baseline": {"features": {"x": {"mean": 1.0, "std": 0.5}}, "featureOrder": ["x"]},
    }


def model_manifest(i: int, versions: int) -> dict[str, Any]:
    return {
        "apiVersion": constants.API_VERSION,
        "kind": "Model",
        "metadata": {"name": f"{MODEL}-{i}", "namespace": NS},
        "spec": {
            "storage": {"uri": f"s3://bench/{MODEL}-{i}"},
            "versions": [version(i, n) for n in range(1, versions + 1)],
        },
    }


def deployment_manifest(i: int, model: int, number: int, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": constants.API_VERSION,
        "kind": "Deployment",
        "metadata": {"name": f"{DEPLOY}-{i}", "namespace": NS},
        "spec": {
            "model": f"{MODEL}-{model}",
            "version": number,
            "runtime": "native",
            "replicas": replicas,
            "monitoring": {"latencyP99Ms": 250, "errorRatePercent": 1, "drift": {"threshold": 3}},
        },
    }


def writes_by(metrics: Mapping[str, float]) -> Counter[str]:
    """The operator's writes so far from its /metrics samples, as `verb resource` -> count."""
    out: Counter[str] = Counter()
    for key, value in metrics.items():
        if not key.startswith("modelwerk_api_requests_total{") or not value:
            continue
        labels = dict(part.split("=", 1) for part in key[key.index("{") + 1 : -1].split(","))
        verb, resource = labels.get("verb", "").strip('"'), labels.get("resource", "").strip('"')
        if verb in WRITE_VERBS:
            out[f"{verb} {resource}"] += int(value)
    return out


def owner_of(name: str, resource: str) -> str:
    if name.startswith(f"{MODEL}-"):
        return "Model"
    if name.startswith(f"{DEPLOY}-"):
        return "Deployment"
    return "TrainingRun" if name else f"({resource}, no name)"


class Audit:
    """The operator's writes in the apiserver's audit log from a byte offset on, by kind (of
    the object's name), verb and group/resource[/subresource]. Reads only what is new."""

    def __init__(self, path: Path | None) -> None:
        self.path, self.offset = path, 0
        self.mark()

    def mark(self) -> None:
        self.offset = self.path.stat().st_size if self.path else 0

    def since_mark(self) -> Counter[str]:
        out: Counter[str] = Counter()
        if self.path is None:
            return out
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        for line in data.splitlines():
            event = json.loads(line)
            if event.get("stage") != "ResponseComplete" or event["verb"] not in bench.WRITE_VERBS:
                continue
            if (event.get("userAgent") or "").split("/")[0] != "modelwerk":
                continue
            ref = event.get("objectRef") or {}
            parts = (ref.get("apiGroup") or "core", ref.get("resource"), ref.get("subresource"))
            resource = "/".join(x for x in parts if x)
            out[f"{owner_of(ref.get('name') or '', resource)}: {event['verb']} {resource}"] += 1
        return out


def as_dict(obj: Any) -> dict[str, Any]:
    """A typed client's object as the custom objects' API returns them (camelCase dicts)."""
    if isinstance(obj, dict):
        return obj
    return dict(client.ApiClient().sanitize_for_serialization(obj))  # type: ignore[no-untyped-call]


class Firsts:
    """When this process first saw each object of one list/watch, and first saw it satisfy
    `done` (a watch thread, listing first so that nothing created later is missed)."""

    def __init__(
        self, func: Callable[..., Any], done: Callable[[dict[str, Any]], bool], **kwargs: Any
    ) -> None:
        self.func, self.done, self.kwargs = func, done, kwargs
        self.seen: dict[str, float] = {}
        self.done_at: dict[str, float] = {}
        self._stop, self._ready = threading.Event(), threading.Event()
        threading.Thread(target=self._loop, daemon=True).start()
        if not self._ready.wait(60):
            raise TimeoutError("watch did not start")

    def _record(self, obj: Any) -> None:
        obj = as_dict(obj)
        name, now = obj["metadata"]["name"], time.monotonic()
        self.seen.setdefault(name, now)
        if name not in self.done_at and self.done(obj):
            self.done_at[name] = now

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                listing = as_dict(self.func(**self.kwargs))
                for obj in listing["items"]:
                    self._record(obj)
                self._ready.set()
                for event in watch.Watch().stream(  # type: ignore[no-untyped-call]
                    self.func,
                    resource_version=listing["metadata"]["resourceVersion"],
                    timeout_seconds=60,
                    **self.kwargs,
                ):
                    self._record(event["object"])
                    if self._stop.is_set():
                        break
            except Exception:  # a dropped watch is listed and watched again
                time.sleep(0.5)

    def stop(self) -> None:
        self._stop.set()


def settle(op: bench.Operator, window: float = 5.0, timeout: float = 1800) -> Counter[str]:
    """The operator's writes once its queues are empty and it wrote nothing for `window` s:
    late status patches belong to the phase that caused them, not to the next one."""
    state: dict[str, Any] = {"since": time.monotonic(), "writes": None}

    def quiet() -> bool:
        writes, now = writes_by(op.metrics()), time.monotonic()
        if op.queue_depth() != 0 or writes != state["writes"]:
            state.update(writes=writes, since=now)
            return False
        return bool(now - state["since"] >= window)

    bench.wait(quiet, timeout, "the operator to be quiet", interval=0.5)
    return Counter(state["writes"])


def counted(op: bench.Operator, audit: Audit, before: Counter[str]) -> dict[str, Any]:
    """The writes since `before` (operator's counters) and since the audit log's mark, once the
    operator is quiet."""
    after = settle(op)
    writes = {k: after[k] - before[k] for k in sorted(after) if after[k] != before[k]}
    return {"writes": writes, "audit": dict(audit.since_mark().most_common())}


def condition(obj: Mapping[str, Any], kind: str, status: str) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == kind and c.get("status") == status for c in conditions)


async def lifecycle(
    kube: Kube,
    op: bench.Operator,
    audit: Audit,
    manifests: list[dict[str, Any]],
    done: Firsts,
    child_seen: Callable[[str], float | None],
) -> dict[str, Any]:
    """Creates `manifests`, waits until each is `done` and the operator quiet: its writes per
    lifecycle, and create -> child (`child_seen(name)`: when its child was first seen)."""
    before, created = settle(op), dict[str, float]()
    audit.mark()
    names = [m["metadata"]["name"] for m in manifests]
    seconds = await bench.create_runs(kube, manifests, None, created)
    bench.wait(lambda: all(x in done.done_at for x in names), 3600, f"{names[0]}.. done", 1)
    row = counted(op, audit, before)
    done.stop()
    to_child = [(child_seen(x) or float("nan")) - created[x] for x in names]
    converged = max(done.done_at[x] for x in names) - min(created.values())
    return row | {
        "n": len(names),
        "create_seconds": seconds,
        "converged_seconds": converged,
        "writes_per_lifecycle": sum(row["writes"].values()) / len(names),
        "create_to_child_ms": bench._ms(to_child),
    }


def kubectl(*args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        ["kubectl", "-n", NS, *args], input=stdin, check=True, capture_output=True, text=True
    ).stdout


def replace_pods(op: bench.Operator, audit: Audit, count: int, replicas: int) -> dict[str, Any]:
    """Deletes one serving pod of each of `count` converged Deployments at once and waits until
    every one serves with all its replicas ready again: the writes that cost, per pod."""
    before = settle(op)
    audit.mark()
    names = [f"{DEPLOY}-{i}" for i in range(count)]
    victims = []
    for name in names:
        pods = kubectl("get", "pods", "-l", f"{constants.LABEL_DEPLOYMENT}={name}", "-o", "name")
        victims.append(pods.split()[0])
    kubectl("delete", "--wait=false", *victims)

    def back() -> bool:
        objs = json.loads(kubectl("get", "mwd", *names, "-o", "json"))["items"]
        pods = kubectl("get", "pods", "-l", constants.LABEL_DEPLOYMENT, "-o", "name").split()
        return not set(victims) & set(pods) and all(
            (o.get("status") or {}).get("readyReplicas") == replicas for o in objs
        )

    bench.wait(back, 900, f"{count} Deployments ready again", interval=1)
    row = counted(op, audit, before)
    return row | {"pods": count, "writes_per_replacement": sum(row["writes"].values()) / count}


def restart(op: bench.Operator, audit: Audit, models: int, deployments: int) -> dict[str, Any]:
    """A fresh operator finding every Model and Deployment there: the time until each was
    reconciled and nothing is queued, what it wrote until quiet, and its memory then."""
    op.stop()
    audit.mark()
    started = op.start()  # a new process: its counters start at zero

    def steady() -> bool:
        reconciled = op.reconciles("Model") >= models and op.reconciles("Deployment") >= deployments
        return reconciled and op.queue_depth() == 0

    bench.wait(steady, 900, "steady state after restart", interval=0.1)
    seconds = time.monotonic() - started
    rss, hwm = op.rss_mb()
    return counted(op, audit, Counter()) | {"seconds": seconds, "rss_mb": rss, "peak_mb": hwm}


def prepare(args: argparse.Namespace) -> None:
    """With Deployments: the Prometheus Operator's CRDs (not Seldon's: the Deployments are
    native), installed before the operator starts: it watches the kinds whose CRDs are there
    when it starts."""
    if not args.deployments:
        return
    folder = os.environ.get("MODELWERK_UPSTREAM_CRDS", f"{bench.ROOT.parent}/shared/upstream-crds")
    names = ("prometheusrules", "servicemonitors", "podmonitors")
    files = [f"-f={folder}/monitoring.coreos.com_{name}.yaml" for name in names]
    if not Path(folder).is_dir():  # say so before the long scenarios, not after them
        raise SystemExit(f"no {folder} (MODELWERK_UPSTREAM_CRDS) for --deployments; or use 0")
    kubectl("apply", "--server-side", *files)
    # kwokctl's apiserver has the default Service range, 10.0.0.0/24: 253 Services, and each
    # Deployment has one. A second range (ServiceCIDR, GA since Kubernetes 1.33) makes room.
    cidr = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "ServiceCIDR",
        "metadata": {"name": "modelwerk-bench"},
        "spec": {"cidrs": ["10.128.0.0/16"]},
    }
    kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(cidr))
    kubectl("wait", "--for=condition=Ready", "servicecidr/modelwerk-bench")
    kubectl(
        "wait", "--for=condition=Established", *(f"crd/{x}.monitoring.coreos.com" for x in names)
    )


def cleanup() -> None:
    kubectl("delete", "mwd,models", "--all", "--wait=false")
    bench.wait(
        lambda: not kubectl("get", "mwd,models,deployments.apps,pods", "-o", "name").strip(),
        1800,
        "Models, Deployments and pods gone",
        interval=2,
    )


async def run(
    args: argparse.Namespace, kube: Kube, op: bench.Operator, audit_log: Path | None
) -> dict[str, Any]:
    if not (args.models or args.deployments):
        return {}
    out: dict[str, Any] = {x: getattr(args, x) for x in ("models", "versions", "deployments")}
    out["replicas"] = args.serving_replicas
    audit = Audit(audit_log)
    custom = client.CustomObjectsApi()
    ours = {"group": constants.GROUP, "version": constants.VERSION, "namespace": NS}
    models = max(args.models, 1 if args.deployments else 0)  # Deployments serve some Model
    done = Firsts(
        custom.list_namespaced_custom_object,
        plural=constants.MODEL_PLURAL,
        done=lambda o: len((o.get("status") or {}).get("versions") or []) == args.versions,
        **ours,
    )
    manifests = [model_manifest(i, args.versions) for i in range(models)]
    print(f"kinds: {models} Models x {args.versions} versions", flush=True)
    row = await lifecycle(kube, op, audit, manifests, done, done.done_at.get)
    if args.models:
        out["Model"] = row  # else the one Model is only there to be served

    if args.deployments:
        print(f"kinds: {args.deployments} monitored Deployments", flush=True)
        apps = Firsts(client.AppsV1Api().list_namespaced_deployment, lambda o: True, namespace=NS)
        want = args.serving_replicas
        done = Firsts(
            custom.list_namespaced_custom_object,
            plural=constants.DEPLOYMENT_PLURAL,
            done=lambda o: (
                (o.get("status") or {}).get("phase") == "Available"
                and (o.get("status") or {}).get("readyReplicas") == want
                and condition(o, "MonitoringReady", "True")
            ),
            **ours,
        )
        manifests = [
            deployment_manifest(i, i % models, i // models % args.versions + 1, want)
            for i in range(args.deployments)
        ]

        def child(name: str) -> float | None:
            return min((t for k, t in apps.seen.items() if k.startswith(f"{name}-v")), default=None)

        out["Deployment"] = await lifecycle(kube, op, audit, manifests, done, child)
        apps.stop()
        for plural in ("prometheusrules", "servicemonitors"):  # the monitoring was generated
            found = kubectl("get", f"{plural}.monitoring.coreos.com", "-o", "name")
            out["Deployment"][plural] = len(found.split())

    print(f"kinds: idle {args.idle_seconds:.0f}s", flush=True)
    before = settle(op)
    audit.mark()
    await asyncio.sleep(args.idle_seconds)  # measuring what happens when nothing happens
    out["idle"] = counted(op, audit, before) | {"seconds": args.idle_seconds}
    if args.deployments and args.replacements:
        print(f"kinds: {args.replacements} serving pods replaced", flush=True)
        out["replacement"] = replace_pods(
            op, audit, min(args.replacements, args.deployments), args.serving_replicas
        )
    print("kinds: restart", flush=True)
    out["restart"] = restart(op, audit, models, args.deployments)
    if not args.keep:
        cleanup()
    return out
