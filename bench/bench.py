"""Modelwerk benchmark: the operator against Kubernetes' own Job controller, on one cluster.

Run with `bench/run.sh` (see README). Every figure is measured in the run that prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf
from kubernetes import client, config, watch

from modelwerk import constants, kinds
from modelwerk.k8s import Kube

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "bench"
DIGEST = "sha256:" + "ab" * 32


def report_for(i: int) -> str:
    return json.dumps(
        {
            "v": 1,
            "metrics": {"accuracy": round(0.9 + (i % 100) / 1000, 4)},
            "artifact": {"uri": f"s3://bench/m/{i}/model.joblib", "digest": DIGEST},
        },
        separators=(",", ":"),
    )


JOBSET_GROUP, JOBSET_VERSION = "jobset.x-k8s.io", "v1alpha2"
JOBSET_CRD = f"jobsets.{JOBSET_GROUP}"


def run_manifest(
    name: str, i: int, model: str | None = None, workers: int = 1, engine: str = "indexedJob"
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "image": "ghcr.io/modelwerk/bench-trainer:0.1.0",
        "seed": i,
        "backoffLimit": 0,
        "env": [{"name": "KWOK_SIM_REPORT", "value": report_for(i)}],
    }
    if model:
        spec["model"] = model
    if workers > 1:
        spec["workers"] = {"replicas": workers, "engine": engine}
    return {
        "apiVersion": constants.API_VERSION,
        "kind": "TrainingRun",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p90": float("nan"), "p99": float("nan"), "n": 0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "n": len(values)}


class Watcher:
    """Records when this process first sees each object (watch ADDED), per kind and name."""

    def __init__(self, jobsets: bool = False) -> None:
        self.seen: dict[str, dict[str, float]] = {"TrainingRun": {}, "Job": {}, "Pod": {}}
        if jobsets:
            self.seen["JobSet"] = {}
        self.phase: dict[str, str] = {}
        self._stop = threading.Event()
        self._ready = {kind: threading.Event() for kind in self.seen}
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        custom, batch, core = client.CustomObjectsApi(), client.BatchV1Api(), client.CoreV1Api()
        streams: list[tuple[str, Callable[..., Any], dict[str, Any]]] = [
            (
                "TrainingRun",
                custom.list_namespaced_custom_object,
                {
                    "group": constants.GROUP,
                    "version": constants.VERSION,
                    "plural": constants.TRAININGRUN_PLURAL,
                    "namespace": NAMESPACE,
                },
            ),
            ("Job", batch.list_namespaced_job, {"namespace": NAMESPACE}),
            ("Pod", core.list_namespaced_pod, {"namespace": NAMESPACE}),
        ]
        if "JobSet" in self.seen:
            jobsets = {
                "group": JOBSET_GROUP,
                "version": JOBSET_VERSION,
                "plural": "jobsets",
                "namespace": NAMESPACE,
            }
            streams.append(("JobSet", custom.list_namespaced_custom_object, jobsets))
        for kind, func, kwargs in streams:
            thread = threading.Thread(target=self._loop, args=(kind, func, kwargs), daemon=True)
            thread.start()
            self._threads.append(thread)
        self.wait_ready()

    def _record(self, kind: str, obj: Any, now: float) -> None:
        meta = obj["metadata"] if isinstance(obj, dict) else obj.metadata
        name = meta["name"] if isinstance(meta, dict) else meta.name
        if kind == "Pod":
            labels = (meta.get("labels") if isinstance(meta, dict) else meta.labels) or {}
            name = labels.get("job-name", name)
        self.seen[kind].setdefault(name, now)
        if kind == "TrainingRun":
            self.phase[name] = (obj.get("status") or {}).get("phase", "")

    def _loop(self, kind: str, func: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        ready = self._ready[kind]
        while not self._stop.is_set():
            try:
                # List first, then watch from that point: the watch is live before the
                # benchmark creates anything, so "first seen" means seen, not caught up on.
                listing = func(**kwargs)
                items = listing["items"] if isinstance(listing, dict) else listing.items
                meta = listing["metadata"] if isinstance(listing, dict) else listing.metadata
                version = (
                    meta["resourceVersion"] if isinstance(meta, dict) else meta.resource_version
                )
                now = time.monotonic()
                for obj in items:
                    self._record(kind, obj, now)
                ready.set()
                for event in watch.Watch().stream(
                    func, resource_version=version, timeout_seconds=60, **kwargs
                ):
                    self._record(kind, event["object"], time.monotonic())
                    if self._stop.is_set():
                        break
            except Exception:  # a dropped watch is listed and watched again
                time.sleep(0.5)

    def wait_ready(self) -> None:
        for kind, ready in self._ready.items():
            if not ready.wait(60):
                raise TimeoutError(f"watch of {kind} did not start")

    def stop(self) -> None:
        self._stop.set()


class Operator:
    def __init__(self, kubeconfig: str, log: Path) -> None:
        self.kubeconfig, self.log = kubeconfig, log
        # MODELWERK_BENCH_PORT: when another benchmark's operator has the default ports here
        self.port = int(os.environ.get("MODELWERK_BENCH_PORT", "18480"))
        self.health = self.port + 1
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        started = time.monotonic()
        env = dict(os.environ, KUBECONFIG=self.kubeconfig, MODELWERK_HTTP_HOST="127.0.0.1")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                # `modelwerk run` as in its image: without the dev-only `kubernetes` package.
                str(ROOT / "bench" / "memprobe.py"),
                "run",
                "-n",
                NAMESPACE,
                "--http-port",
                str(self.port),
                "--health-port",
                str(self.health),
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            env=env,
        )
        wait(
            lambda: self._get(f"http://127.0.0.1:{self.health}/healthz") is not None,
            60,
            "operator health",
        )
        return started

    def _get(self, url: str) -> str | None:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return str(resp.read().decode())
        except OSError:
            return None

    def metrics(self) -> dict[str, float]:
        text = self._get(f"http://127.0.0.1:{self.port}/metrics") or ""
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("#") or not line:
                continue
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
        return values

    def writes(self) -> float:
        return sum(
            v
            for k, v in self.metrics().items()
            if k.startswith("modelwerk_api_requests_total")
            and re.search(r'verb="(post|patch|put|delete)"', k)
        )

    def reconciles(self, kind: str) -> float:
        return sum(
            v
            for k, v in self.metrics().items()
            if k.startswith("modelwerk_reconcile_total") and f'kind="{kind}"' in k
        )

    def queue_depth(self) -> float:
        return sum(
            v for k, v in self.metrics().items() if k.startswith("modelwerk_workqueue_depth")
        )

    def rss_mb(self) -> tuple[float, float]:
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        return rss / 1024, hwm / 1024

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
            self.proc = None


def wait(probe: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


async def create_runs(
    kube: Kube,
    manifests: list[dict[str, Any]],
    rate: float | None,
    created: dict[str, float],
    concurrency: int = 32,
) -> float:
    """Creates the runs, at `rate` per second or all at once; returns the elapsed seconds."""
    sem = asyncio.Semaphore(concurrency)
    start = time.monotonic()

    async def one(i: int, manifest: dict[str, Any]) -> None:
        if rate:
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        async with sem:
            before = time.monotonic()
            await kube.create(manifest)
            created[manifest["metadata"]["name"]] = before

    await asyncio.gather(*(one(i, m) for i, m in enumerate(manifests)))
    return time.monotonic() - start


async def delete_all(kube: Kube) -> None:
    await asyncio.to_thread(_delete_all)


def _delete_all() -> None:
    # `kubectl delete --wait` on a thousand objects can hang on a missed watch event: delete in
    # the background and poll until the namespace holds no runs, Jobs or pods.
    subprocess.run(
        ["kubectl", "-n", NAMESPACE, "delete", "trainingruns,models", "--all", "--wait=false"],
        check=True,
        capture_output=True,
    )
    wait(
        lambda: (
            not subprocess.run(
                ["kubectl", "-n", NAMESPACE, "get", "trainingruns,jobs,pods", "-o", "name"],
                capture_output=True,
                text=True,
            ).stdout.strip()
        ),
        900,
        "runs, jobs and pods gone",
        interval=1,
    )


@dataclass
class Results:
    meta: dict[str, Any] = field(default_factory=dict)
    latency: list[dict[str, Any]] = field(default_factory=list)
    throughput: dict[str, Any] = field(default_factory=dict)
    api: dict[str, Any] = field(default_factory=dict)
    memory: list[dict[str, Any]] = field(default_factory=list)
    restart: dict[str, Any] = field(default_factory=dict)
    ceiling: dict[str, Any] = field(default_factory=dict)
    kinds: dict[str, Any] = field(default_factory=dict)  # bench/kinds.py's scenario


def _ms(values: list[float]) -> dict[str, float]:
    return {k: (v * 1000 if k != "n" else v) for k, v in percentiles(values).items()}


async def latency_scenario(
    kube: Kube,
    op: Operator,
    n: int,
    rate: float | None,
    prefix: str,
    workers: int = 1,
    engine: str = "indexedJob",
) -> dict[str, Any]:
    """Run created -> its Job seen -> the Job's first pod seen. A distributed run (`workers` > 1)
    is an Indexed Job gang of `workers` pods, or with engine jobSet a JobSet, whose Job the
    JobSet controller makes (`<run>-workers-0`): then run -> JobSet is the operator's part."""
    on_jobset = workers > 1 and engine == "jobSet"
    watcher = Watcher(jobsets=on_jobset)
    watcher.start()
    created: dict[str, float] = {}
    manifests = [run_manifest(f"{prefix}-{i}", i, workers=workers, engine=engine) for i in range(n)]
    elapsed = await create_runs(kube, manifests, rate, created)
    names = [m["metadata"]["name"] for m in manifests]
    jobs = {x: f"{x}-workers-0" if on_jobset else x for x in names}
    wait(lambda: all(jobs[x] in watcher.seen["Pod"] for x in names), 900, f"{n} runs' pods")
    watcher.stop()
    run_to_job = [watcher.seen["Job"][jobs[x]] - created[x] for x in names]
    job_to_pod = [watcher.seen["Pod"][jobs[x]] - watcher.seen["Job"][jobs[x]] for x in names]
    a, b = _ms(run_to_job), _ms(job_to_pod)
    row: dict[str, Any] = {
        "n": n,
        "mode": f"{rate:g}/s" if rate else "burst",
        "workers": workers,
        "create_seconds": elapsed,
        "run_to_job_ms": a,
        "job_to_pod_ms": b,
        "ratio_p99": a["p99"] / b["p99"] if b["p99"] else float("nan"),
    }
    if workers > 1:
        row["engine"] = "JobSet" if on_jobset else "IndexedJob"
    if on_jobset:
        row["run_to_jobset_ms"] = mine = _ms(
            [watcher.seen["JobSet"][x] - created[x] for x in names]
        )
        # The operator's part is run -> JobSet; JobSet -> Job is the JobSet controller's.
        row["ratio_p99"] = mine["p99"] / b["p99"] if b["p99"] else float("nan")
    return row


async def throughput_scenario(kube: Kube, op: Operator, n: int, models: int) -> dict[str, Any]:
    for m in range(models):
        await kube.create(
            {
                "apiVersion": constants.API_VERSION,
                "kind": "Model",
                "metadata": {"name": f"bench-{m}", "namespace": NAMESPACE},
                "spec": {"storage": {"uri": "s3://bench/models"}},
            }
        )
    watcher = Watcher()
    watcher.start()
    writes_before = op.writes()
    created: dict[str, float] = {}
    manifests = [run_manifest(f"tp-{i}", i, model=f"bench-{i % models}") for i in range(n)]
    start = time.monotonic()
    await create_runs(kube, manifests, None, created)
    wait(
        lambda: (
            sum(1 for x in manifests if watcher.phase.get(x["metadata"]["name"]) == "Succeeded")
            >= n
        ),
        1800,
        f"{n} runs Succeeded",
        interval=0.5,
    )
    elapsed = time.monotonic() - start
    watcher.stop()
    wait(lambda: op.queue_depth() == 0, 120, "queue drained")
    versions = 0
    for m in range(models):
        model = await kube.get(kinds.MODEL, f"bench-{m}", NAMESPACE)
        numbers = [v["version"] for v in (model or {}).get("status", {}).get("versions", [])]
        assert sorted(numbers) == list(range(1, len(numbers) + 1)), "version numbers have gaps"
        versions += len(numbers)
    writes = op.writes() - writes_before
    return {
        "n": n,
        "models": models,
        "seconds": elapsed,
        "runs_per_second": n / elapsed,
        "versions_registered": versions,
        "operator_writes": writes,
        "writes_per_lifecycle": writes / n,
    }


WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def audit_writes(path: Path, since_line: int) -> tuple[Counter[str], int]:
    counts: Counter[str] = Counter()
    lines = path.read_text().splitlines()
    for line in lines[since_line:]:
        event = json.loads(line)
        if event.get("stage") != "ResponseComplete" or event["verb"] not in WRITE_VERBS:
            continue  # the policy also logs ServiceAccounts' reads
        agent = (event.get("userAgent") or "").split("/")[0]
        resource = (event.get("objectRef") or {}).get("resource", "")
        counts[f"{agent} {event['verb']} {resource}"] += 1
    return counts, len(lines)


async def ceiling_scenario(kube: Kube, n: int) -> dict[str, Any]:
    """The same TrainingRun creates with the operator stopped: the apiserver's own limit here."""
    created: dict[str, float] = {}
    manifests = [run_manifest(f"raw-{i}", i) for i in range(n)]
    elapsed = await create_runs(kube, manifests, None, created, concurrency=64)
    return {"n": n, "seconds": elapsed, "creates_per_second": n / elapsed}


async def populate(kube: Kube, start: int, end: int, created: dict[str, float]) -> None:
    """Runs idle-<start..end> created and all Succeeded (those already there, left by an earlier
    run with --keep, are reused)."""
    watcher = Watcher()
    watcher.start()
    there = set(watcher.seen["TrainingRun"])
    manifests = [run_manifest(f"idle-{i}", i) for i in range(start, end)]
    await create_runs(
        kube, [m for m in manifests if m["metadata"]["name"] not in there], None, created
    )
    names = [f"idle-{i}" for i in range(end)]
    wait(
        lambda: sum(1 for x in names if watcher.phase.get(x) == "Succeeded") >= len(names),
        3600,
        f"{end} runs Succeeded",
        interval=1,
    )
    watcher.stop()


async def idle_writes(
    op: Operator, audit: Path | None, objects: int, seconds: float
) -> dict[str, Any]:
    wait(lambda: op.queue_depth() == 0, 600, "queue drained")
    before, line = op.writes(), (audit_writes(audit, 0)[1] if audit else 0)
    await asyncio.sleep(seconds)  # measuring what happens when nothing happens
    idle = op.writes() - before
    audit_idle: int | str = (
        sum(v for k, v in audit_writes(audit, line)[0].items() if k.startswith("modelwerk "))
        if audit
        else "n/a"
    )
    return {
        "objects": objects,
        "idle_writes_per_minute": idle * 60 / seconds,
        "idle_audit_writes": audit_idle,
    }


def restart(op: Operator, objects: int) -> dict[str, Any]:
    """Restarts the operator; returns the time to steady state (every run reconciled, nothing
    queued), the writes it made meanwhile, and its memory then."""
    op.stop()
    started = op.start()  # a new process: its write counter starts at zero
    wait(
        lambda: op.reconciles("TrainingRun") >= objects and op.queue_depth() == 0,
        900,
        "steady state after restart",
        interval=0.1,
    )
    steady = time.monotonic() - started
    rss, hwm = op.rss_mb()
    return {
        "objects": objects,
        "seconds": steady,
        "writes": op.writes(),
        "rss_mb": rss,
        "peak_mb": hwm,
    }


def write_report(results: Results, out: Path, name: str = "latest") -> str:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(results.__dict__, indent=2, default=str))
    m = results.meta
    lines = [
        f"Modelwerk benchmark — {m['date']}, Kubernetes {m['kubernetes']}, {m['cores']} cores, "
        f"Python {m['python']}"
        + (
            f", load average {m['load_start']} at the start, {m['load_end']} at the end"
            if m.get("load_start")
            else ""
        ),
        "",
        "| scenario | N | run→Job p50/p90/p99 (ms) | Job→Pod p50/p90/p99 (ms) | p99 ratio |",
        "|---|---|---|---|---|",
    ]

    def p(d: dict[str, float]) -> str:
        return f"{d['p50']:.0f} / {d['p90']:.0f} / {d['p99']:.0f}"

    for row in results.latency:
        if row.get("workers", 1) > 1:
            continue
        a, b = row["run_to_job_ms"], row["job_to_pod_ms"]
        lines.append(f"| {row['mode']} | {row['n']} | {p(a)} | {p(b)} | {row['ratio_p99']:.2f} |")
    gangs = [row for row in results.latency if row.get("workers", 1) > 1]
    if gangs:
        lines += [
            "",
            "| distributed | N | run→JobSet p50/p90/p99 (ms) | run→Job p50/p90/p99 (ms) "
            "| Job→first Pod p50/p90/p99 (ms) | p99 ratio (operator's part / Job→first Pod) |",
            "|---|---|---|---|---|---|",
        ]
        for row in gangs:
            jobset = p(row["run_to_jobset_ms"]) if "run_to_jobset_ms" in row else "—"
            lines.append(
                f"| {row['mode']}, {row['workers']} workers, {row['engine']} | {row['n']} | "
                f"{jobset} | {p(row['run_to_job_ms'])} | {p(row['job_to_pod_ms'])} | "
                f"{row['ratio_p99']:.2f} |"
            )
    t = results.throughput
    if t:
        lines += [
            "",
            "| throughput | value |",
            "|---|---|",
            f"| runs fully processed (created → Succeeded → registered), N={t['n']} | "
            f"{t['runs_per_second']:.1f} runs/s ({t['seconds']:.1f} s) |",
            f"| operator writes per successful lifecycle (incl. Events) | "
            f"{t['writes_per_lifecycle']:.2f} |",
        ]
    api = results.api
    if api:
        lines += [
            f"| idle writes per minute with {api['objects']} runs present | "
            f"{api['idle_writes_per_minute']:.1f} (audit log: {api['idle_audit_writes']}) |"
        ]
        if api.get("audit_by_agent"):
            top = ", ".join(f"{k}: {v}" for k, v in api["audit_by_agent"][:6])
            lines.append(f"| audit-log writes during throughput, top | {top} |")
    for mem in results.memory:
        lines.append(
            f"| operator RSS after a restart with {mem['objects']} runs (+ Jobs, Pods) | "
            f"{mem['rss_mb']:.0f} MB (peak {mem['peak_mb']:.0f} MB) |"
        )
    r = results.restart
    if r:
        lines.append(
            f"| restart to steady state with {r['objects']} runs | {r['seconds']:.1f} s, "
            f"{r['writes']:.0f} writes |"
        )
    c = results.ceiling
    if c:
        lines.append(
            f"| raw ceiling: async creates straight to the apiserver | "
            f"{c['creates_per_second']:.0f} creates/s (N={c['n']}) |"
        )
    import kinds_report  # here, not at the top: it imports this module

    text = "\n".join([*lines, *kinds_report.report(results)]) + "\n"
    (out / f"{name}.md").write_text(text)
    return text


@contextlib.contextmanager
def jobset_controller(kubeconfig: str, out: Path) -> Iterator[None]:
    """The real JobSet controller as the integration tier runs it (tests/integration/engines.py):
    built on first use, its CRD installed, a local process until the block ends."""
    sys.path.insert(0, str(ROOT))
    from tests.integration.engines import JobSetController, jobset_crds, running

    workdir = out / "jobset"
    workdir.mkdir(parents=True, exist_ok=True)
    with running(JobSetController, "jobset", jobset_crds(), kubeconfig, workdir):
        yield


def prepare_cluster() -> str:
    """Installs the CRDs and the namespace; returns the apiserver's version."""
    subprocess.run(
        ["kubectl", "apply", "--server-side", "-f", str(ROOT / "crds")],
        check=True,
        capture_output=True,
    )
    subprocess.run(["kubectl", "create", "namespace", NAMESPACE], capture_output=True)
    out = subprocess.run(["kubectl", "version", "-o", "json"], capture_output=True, text=True)
    return str(json.loads(out.stdout)["serverVersion"]["gitVersion"])


async def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100,1000,5000", help="latency scenario sizes")
    parser.add_argument("--rate", type=float, default=50.0, help="fixed-rate creates per second")
    parser.add_argument("--throughput", type=int, default=1000)
    parser.add_argument(
        "--objects", type=int, default=10000, help="objects for memory/idle/restart"
    )
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument(
        "--memory-sizes",
        default="",
        help="runs present at each restart measurement (default: 1000 and --objects)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the runs in place (and skip the raw ceiling); a later run reuses them",
    )
    parser.add_argument(
        "--distributed-sizes", default="100", help="latency sizes of the distributed scenarios"
    )
    parser.add_argument("--workers", type=int, default=4, help="workers of a distributed run")
    parser.add_argument(
        "--jobset",
        action="store_true",
        help="run the real JobSet controller (built from hack/components/jobset, as the "
        "integration tier does) and add a JobSet scenario",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--name", default="latest", help="the results' file names in --out (NAME.md, NAME.json)"
    )
    import kinds

    kinds.add_arguments(parser)  # --models, --versions, --deployments ...
    args = parser.parse_args(list(argv) if argv is not None else None)

    kubeconfig = os.environ["KUBECONFIG"]
    config.load_kube_config(config_file=kubeconfig)
    info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings(), logger=None)
    assert info is not None
    kube = Kube.connect(info, user_agent="modelwerk-bench", checked=False)  # creates Models
    version = prepare_cluster()  # before any event loop work: plain blocking calls
    results = Results(
        meta={
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "kubernetes": version,
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            # Other work on the machine shows in every figure: the 1/5/15-minute load averages.
            "load_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        }
    )
    audit = (
        Path(os.environ["MODELWERK_AUDIT_LOG"]) if os.environ.get("MODELWERK_AUDIT_LOG") else None
    )
    log = args.out / "operator.log"
    args.out.mkdir(parents=True, exist_ok=True)
    engines = contextlib.ExitStack()
    if args.jobset:
        # Before the operator starts: it watches JobSets only if their CRD is there then.
        engines.enter_context(jobset_controller(kubeconfig, args.out))
    kinds.prepare(args)  # before the operator starts (it watches the CRDs there then)
    op = Operator(kubeconfig, log)
    op.start()
    try:
        for n in (int(x) for x in args.sizes.split(",") if x):
            for rate in (args.rate, None):
                print(f"latency: N={n} {'burst' if rate is None else f'{rate:g}/s'}", flush=True)
                results.latency.append(
                    await latency_scenario(kube, op, n, rate, f"l{n}{'b' if rate is None else 'r'}")
                )
                await delete_all(kube)
        gang_engines = ["indexedJob", *(["jobSet"] if args.jobset else [])]
        for n in (int(x) for x in args.distributed_sizes.split(",") if x and args.workers > 1):
            for engine in gang_engines:
                for rate in (args.rate, None):
                    mode = "burst" if rate is None else f"{rate:g}/s"
                    print(f"latency: N={n} {mode}, {args.workers} workers, {engine}", flush=True)
                    prefix = (
                        f"{'j' if engine == 'jobSet' else 'g'}{n}{'b' if rate is None else 'r'}"
                    )
                    results.latency.append(
                        await latency_scenario(kube, op, n, rate, prefix, args.workers, engine)
                    )
                    await delete_all(kube)
        if args.throughput:
            print(f"throughput: N={args.throughput}", flush=True)
            line = audit_writes(audit, 0)[1] if audit else 0
            results.throughput = await throughput_scenario(kube, op, args.throughput, 10)
            if audit:
                counts, _ = audit_writes(audit, line)
                results.api["audit_by_agent"] = [
                    (k, v) for k, v in counts.most_common() if k.startswith("modelwerk ")
                ]
            await delete_all(kube)
        results.kinds = await kinds.run(args, kube, op, audit)
        created: dict[str, float] = {}
        done = 0
        sizes = args.memory_sizes or f"{min(1000, args.objects)},{args.objects}"
        for target in sorted({int(x) for x in sizes.split(",") if x and args.objects}):
            print(f"populating {target} runs", flush=True)
            await populate(kube, done, target, created)
            done = target
            if target == args.objects:
                print(f"idle: {args.idle_seconds:.0f}s with {target} runs", flush=True)
                results.api.update(await idle_writes(op, audit, target, args.idle_seconds))
            # Memory and start-up are those of a fresh operator finding `target` runs (and
            # their Jobs and pods) already there, not of one that lived through the scenarios.
            print(f"restart with {target} runs", flush=True)
            row = restart(op, target)
            results.memory.append(
                {"objects": target, "rss_mb": row.pop("rss_mb"), "peak_mb": row.pop("peak_mb")}
            )
            results.restart = row
    finally:
        op.stop()
        engines.close()
    if not args.keep and args.objects:
        await delete_all(kube)
        results.ceiling = await ceiling_scenario(kube, min(5000, args.objects))
        await delete_all(kube)
    await kube.close()
    results.meta["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(write_report(results, args.out, args.name))


if __name__ == "__main__":
    sys.modules["bench"] = sys.modules[__name__]  # kinds.py's `import bench`: this module
    asyncio.run(main())
