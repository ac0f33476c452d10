"""Serving benchmark: one sklearn iris artifact behind our native server, MLServer and Seldon Core's
microservice wrapper, loaded by wrk on 127.0.0.1 one after another; plus the in-process ceiling.

Run with `bench/serving.sh` (see README). Every figure is measured in the run that prints it.

The load generator is wrk (Debian's package): a C event loop that keeps N connections busy
(closed loop, one request in flight per connection), with a Lua script for the POST body and a
JSON summary; one thread, so it takes as little CPU from the servers as it can. Its latency
percentiles are per request, from send to the last byte.

The machine is shared (other work comes and goes), so the servers are started once and then
measured in turns: every round loads each server in turn at each batch size and connection
count (the others idle meanwhile), and a cell's figures are the medians over the rounds. Slow
changes in the background load then fall on every server alike instead of on whichever ran
during them. The load average is recorded with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MODEL = "iris"
VERSION = "1"
FEATURES = "sepal_length_cm,sepal_width_cm,petal_length_cm,petal_width_cm"
ROWS = ((5.1, 3.5, 1.4, 0.2), (6.2, 2.9, 4.3, 1.3), (7.7, 3.0, 6.1, 2.3), (5.9, 3.0, 5.1, 1.8))

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open(os.getenv("BENCH_BODY"), "r"):read("*a")
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def rows(batch: int) -> list[list[float]]:
    return [list(ROWS[i % len(ROWS)]) for i in range(batch)]


def v1_body(batch: int) -> dict[str, Any]:
    return {"instances": rows(batch)}


def v2_body(batch: int) -> dict[str, Any]:
    flat = [v for row in rows(batch) for v in row]
    return {"inputs": [{"name": "input-0", "shape": [batch, 4], "datatype": "FP64", "data": flat}]}


def seldon_body(batch: int) -> dict[str, Any]:
    return {"data": {"ndarray": rows(batch)}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return int(err.code), err.read().decode(errors="replace")


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total_kb, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024


# --- the servers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    body: Callable[[int], dict[str, Any]]
    check: Callable[[Any, int], bool]
    """Whether a response body answers `batch` rows (checked before the load)."""


@dataclass
class Artifact:
    path: Path
    digest: str


@contextmanager
def process(argv: list[str], env: dict[str, str], log: Path, ready_url: str) -> Iterator[int]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not http_ok(ready_url):
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[:3]} exited {proc.returncode}: see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{argv[:3]} not ready after 120 s: see {log}")
            time.sleep(0.2)
        yield proc.pid
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELWERK_", "PROMETHEUS_"))}
    return {**env, **extra}


def labels_ok(expected: list[Any]) -> Callable[[Any, int], bool]:
    def check(body: Any, batch: int) -> bool:
        if "predictions" in body:
            got = body["predictions"]
        elif "outputs" in body:
            got = body["outputs"][0]["data"]
        else:
            got = body["data"]["ndarray"]
        return [int(x) if not isinstance(x, list) else int(x[0]) for x in got] == (
            expected * batch
        )[:batch]

    return check


Served = tuple[Any, list[tuple[str, str, Callable[[int], dict[str, Any]]]]]
"""A server's process (a context manager giving its pid) and what to load it with: (name, URL,
request body for a batch size) per protocol."""


def native(art: Artifact, workdir: Path, workers: int) -> Served:
    port = free_port()
    argv = [sys.executable, "-m", "modelwerk.serving", "--runtime", "native",
            "--model-uri", str(art.path), "--digest", art.digest, "--model-name", MODEL,
            "--model-version", VERSION, "--feature-names", FEATURES, "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(workers)]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    proc = process(argv, clean_env(), workdir / f"native-w{workers}.log", f"{base}/readyz")
    return proc, [
        (f"modelwerk v1 w{workers}", f"{base}/v1/models/{MODEL}:predict", v1_body),
        (f"modelwerk v2 w{workers}", f"{base}/v2/models/{MODEL}/infer", v2_body),
    ]


def mlserver(art: Artifact, workdir: Path, binary: str, parallel: int) -> Served:
    port, grpc, metrics = free_port(), free_port(), free_port()
    folder = workdir / f"mlserver-p{parallel}"
    (folder / "iris").mkdir(parents=True, exist_ok=True)
    settings = {"http_port": port, "grpc_port": grpc, "metrics_port": metrics, "host": "127.0.0.1",
                "parallel_workers": parallel, "debug": False}  # fmt: skip
    (folder / "settings.json").write_text(json.dumps(settings))
    model = {"name": MODEL, "implementation": "mlserver_sklearn.SKLearnModel",
             "parameters": {"uri": str(art.path), "version": VERSION}}  # fmt: skip
    (folder / "iris" / "model-settings.json").write_text(json.dumps(model))
    base = f"http://127.0.0.1:{port}"
    log = workdir / f"mlserver-p{parallel}.log"
    ready = f"{base}/v2/models/{MODEL}/ready"
    proc = process([binary, "start", str(folder)], clean_env(), log, ready)
    return proc, [(f"MLServer v2 pw{parallel}", f"{base}/v2/models/{MODEL}/infer", v2_body)]


def seldon(art: Artifact, workdir: Path) -> Served:
    """Our Seldon runtime (the same model core) in seldon-core's wrapper, as deployed."""
    port, metrics = free_port(), free_port()
    argv = [sys.executable, "-m", "modelwerk.serving", "--runtime", "seldon",
            "--model-uri", str(art.path), "--digest", art.digest, "--model-name", MODEL,
            "--model-version", VERSION, "--feature-names", FEATURES, "--port", str(port),
            "--", "--metrics-port", str(metrics), "--grpc-workers", "0"]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    proc = process(argv, clean_env(), workdir / "seldon.log", f"{base}/health/ping")
    return proc, [("seldon-core wrapper", f"{base}/api/v1.0/predictions", seldon_body)]


# --- measuring ------------------------------------------------------------------------------


@dataclass
class Result:
    server: str
    batch: int
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    rss_mb: float
    load1: float
    """The machine's 1-minute load average after the measurement (other work on it)."""


def wrk(url: str, body_file: Path, connections: int, seconds: int, script: Path) -> dict[str, Any]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "10s", "-s",
            str(script), url]  # fmt: skip
    env = {**os.environ, "BENCH_BODY": str(body_file)}
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH "):
            result: dict[str, Any] = json.loads(line[6:])
            return result
    raise RuntimeError(f"wrk gave no summary: {out.stdout}\n{out.stderr}")


def measure_one(name: str, url: str, body_file: Path, pid: int, batch: int, connections: int,
                args: argparse.Namespace, script: Path) -> Result:  # fmt: skip
    wrk(url, body_file, connections, args.warmup, script)
    peak = [tree_rss_mb(pid)]
    summary: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: summary.update(wrk(url, body_file, connections, args.duration, script))
    )
    thread.start()
    while thread.is_alive():  # RSS sampled while the load runs
        peak.append(tree_rss_mb(pid))
        thread.join(timeout=0.5)
    errors = sum(summary[k] for k in ("connect", "read", "write", "status", "timeout"))
    result = Result(
        server=name, batch=batch, connections=connections,
        rps=summary["requests"] / (summary["duration_us"] / 1e6),
        p50_ms=summary["p50_us"] / 1000, p99_ms=summary["p99_us"] / 1000,
        errors=errors, requests=summary["requests"], rss_mb=max(peak), load1=os.getloadavg()[0],
    )  # fmt: skip
    print(f"  {name} batch={batch} c={connections}: {result.rps:.0f} req/s, "
          f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, {errors} errors, "
          f"{result.rss_mb:.0f} MB, load {result.load1:.1f}", flush=True)  # fmt: skip
    return result


def median_of(rounds: list[Result]) -> Result:
    """One result from the rounds' measurements of a cell: medians, errors summed, peak RSS."""
    def mid(values: list[float]) -> float:
        return statistics.median(values)

    first = rounds[0]
    return Result(
        server=first.server, batch=first.batch, connections=first.connections,
        rps=mid([r.rps for r in rounds]), p50_ms=mid([r.p50_ms for r in rounds]),
        p99_ms=mid([r.p99_ms for r in rounds]), errors=sum(r.errors for r in rounds),
        requests=sum(r.requests for r in rounds), rss_mb=max(r.rss_mb for r in rounds),
        load1=mid([r.load1 for r in rounds]),
    )  # fmt: skip


def ceiling(art: Artifact, seconds: float) -> dict[int, float]:
    """In-process predict calls per second, one call after another, for 1 and 100 rows."""
    import joblib
    import numpy as np

    estimator = joblib.load(art.path)
    calls: dict[int, float] = {}
    for batch in (1, 100):
        matrix = np.asarray(rows(batch), dtype=float)
        estimator.predict(matrix)
        count, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            for _ in range(50):
                estimator.predict(matrix)
            count += 50
        calls[batch] = count / elapsed
    return calls


def train(workdir: Path) -> Artifact:
    out = workdir / "train"
    out.mkdir()
    env = clean_env(MODELWERK_RUN="bench", MODELWERK_MODEL=MODEL, MODELWERK_SEED="42",
                    MODELWERK_OUTPUT_DIR=str(out / "output"),
                    MODELWERK_OUTPUT_URI=(out / "output").as_uri(),
                    MODELWERK_TERMINATION_MESSAGE_PATH=str(out / "report.json"))  # fmt: skip
    subprocess.run([sys.executable, "-m", "modelwerk.trainers.iris"], env=env, check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    return Artifact(out / "output" / "model.joblib", report["artifact"]["digest"])


@dataclass
class Run:
    started: str
    machine: str
    duration_s: float
    rounds: int
    ceiling_calls_per_s: dict[int, float]
    results: list[Result] = field(default_factory=list)
    ratios: list[dict[str, Any]] = field(default_factory=list)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mlserver", required=True, help="the mlserver executable")
    parser.add_argument("--duration", type=int, default=4, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of load before each")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over every server")
    parser.add_argument("--connections", default="1,8,32,64")
    parser.add_argument("--batches", default="1,100")
    parser.add_argument("--workers", default="1,2", help="native worker processes to measure")
    parser.add_argument("--mlserver-parallel", default="0,1,2", help="MLServer parallel_workers")
    parser.add_argument("--no-seldon", action="store_true")
    args = parser.parse_args()
    args.connections = [int(c) for c in args.connections.split(",")]
    args.batches = [int(b) for b in args.batches.split(",")]
    from report_serving import ratios, write  # bench/report_serving.py

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="modelwerk-bench-serving-") as tmp, ExitStack() as up:
        workdir = Path(tmp)
        script = workdir / "post.lua"
        script.write_text(WRK_SCRIPT)
        art = train(workdir)
        import joblib

        expected = [int(x) for x in joblib.load(art.path).predict(rows(len(ROWS)))]
        servers: list[Served] = [native(art, workdir, int(w)) for w in args.workers.split(",")]
        servers += [mlserver(art, workdir, args.mlserver, int(p))
                    for p in args.mlserver_parallel.split(",")]  # fmt: skip
        if not args.no_seldon:
            servers.append(seldon(art, workdir))
        targets = []  # (name, url, body file per batch, pid)
        for proc, protocols in servers:
            print(f"starting {protocols[0][0]}", flush=True)
            pid = up.enter_context(proc)
            for name, url, body in protocols:
                files = {}
                for batch in args.batches:
                    status, answer = post(url, body(batch))
                    if status != 200 or not labels_ok(expected)(answer, batch):
                        raise RuntimeError(f"{name}: unexpected answer {status} {answer!s:.300}")
                    files[batch] = workdir / f"body-{len(targets)}-{batch}.json"
                    files[batch].write_text(json.dumps(body(batch)))
                targets.append((name, url, files, pid))
        ceilings: dict[int, list[float]] = {1: [], 100: []}
        cells: dict[tuple[str, int, int], list[Result]] = {}
        for round_ in range(1, args.rounds + 1):
            print(f"round {round_}/{args.rounds}: ceiling", flush=True)
            for batch, calls in ceiling(art, args.duration).items():
                ceilings[batch].append(calls)
            for batch in args.batches:
                for connections in args.connections:
                    for name, url, files, pid in targets:
                        result = measure_one(name, url, files[batch], pid, batch, connections,
                                             args, script)  # fmt: skip
                        cells.setdefault((name, batch, connections), []).append(result)
        run = Run(started, f"{os.cpu_count()} cores, Python {platform.python_version()}",
                  args.duration, args.rounds,
                  {b: statistics.median(c) for b, c in ceilings.items()})  # fmt: skip
        run.results = [median_of(rounds) for rounds in cells.values()]
    run.ratios = [x for w in args.workers.split(",") for x in ratios(run, int(w))]
    write(run, RESULTS)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
