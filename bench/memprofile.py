"""Where the operator's memory goes: N finished runs (with their Jobs and pods) in the cluster,
then a fresh operator until steady state, and two views of its memory:

- at steady state, resident memory by owner (bench/memprobe.py: our caches, kopf's per-object
  records, other Python objects, free space kept by pymalloc and by glibc, the rest);
- with memray (`pip install -e '.[bench]'`, unless --no-memray), the heap at its high-water
  mark grouped by the first frame, innermost outwards, in kopf, aiohttp or modelwerk (by
  module), else the innermost frame's module.

    KUBECONFIG=... .venv/bin/python bench/memprofile.py --objects 1000 [--env MALLOC_ARENA_MAX=2]
    KUBECONFIG=... .venv/bin/python bench/memprofile.py --cycles 10 --cycle-runs 1000

Uses the cluster KUBECONFIG names (runs left in namespace `bench` are reused, more are made
with bench.py's manifests), and prints Markdown tables (RSS from /proc). --cycles: RSS of one
operator after each of that many rounds of creating and deleting --cycle-runs runs (a leak
shows as growth from round to round).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import kopf
from kubernetes import config

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench

from modelwerk import kinds
from modelwerk.k8s import Kube

OWNERS = ("kopf", "aiohttp", "modelwerk", "prometheus_client", "pydantic", "yarl", "multidict")


def owner(stack: Iterable[tuple[str, str, int]]) -> str:
    frames = list(stack)
    for _, filename, _ in frames:
        parts = Path(filename).with_suffix("").parts
        for name in OWNERS:
            if name in parts:
                tail = parts[parts.index(name) + 1 :]
                return ".".join((name, *tail[-2:])) if tail else name
    if not frames:
        return "(no Python frame)"
    return Path(frames[0][1]).stem


class ProfiledOperator(bench.Operator):
    def __init__(
        self, kubeconfig: str, log: Path, capture: Path, env: dict[str, str], profile: bool
    ) -> None:
        super().__init__(kubeconfig, log)
        self.capture, self.env, self.profile = capture, env, profile

    def start(self) -> float:
        started = time.monotonic()
        env = dict(
            os.environ, KUBECONFIG=self.kubeconfig, MODELWERK_HTTP_HOST="127.0.0.1", **self.env
        )
        env["MODELWERK_MEMPROBE_OUT"] = str(self.capture.with_suffix(".json"))
        argv = [sys.executable]
        if self.profile:
            argv += ["-m", "memray", "run", "-q", "-f", "-o", str(self.capture)]
        self.proc = subprocess.Popen(
            [
                *argv,
                str(Path(__file__).resolve().parent / "memprobe.py"),
                "run",
                "-n",
                bench.NAMESPACE,
                "--http-port",
                str(self.port),
                "--health-port",
                str(self.health),
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            env=env,
        )
        bench.wait(
            lambda: self._get(f"http://127.0.0.1:{self.health}/healthz") is not None,
            120,
            "operator health",
        )
        return started

    def probe(self) -> dict[str, Any]:
        """bench/memprobe.py's report of the running operator."""
        assert self.proc is not None
        out = self.capture.with_suffix(".json")
        out.unlink(missing_ok=True)
        os.kill(self.proc.pid, signal.SIGUSR1)
        bench.wait(out.exists, 120, "memory report")
        time.sleep(0.5)  # written at once, but let the write finish
        return dict(json.loads(out.read_text()))


def owners(report: dict[str, Any]) -> list[tuple[str, float]]:
    """RSS by owner, MiB: what memprobe.py measures, the rest as the difference."""
    mib = 2**20
    py, malloc, maps = report["pymalloc"], report["malloc"], report["smaps"]
    caches, kopf_mem = report["caches_bytes"], report["kopf_memories_bytes"]
    rows = [
        (f"our caches ({report['cached_objects']} objects, projections and indexes)", caches),
        (f"kopf's per-object records ({report['kopf_records']})", kopf_mem),
        ("other Python objects (pymalloc blocks in use)", py["used_bytes"] - caches - kopf_mem),
        ("free space in pymalloc arenas (fragmentation)", py["free_bytes"]),
        ("free space kept by glibc malloc", malloc.get("free_bytes", 0)),
        ("file-backed pages (code, libraries)", maps["file"]),
    ]
    accounted = sum(v for _, v in rows)
    rows.append(("rest (C allocations, stacks, large objects)", report["rss_bytes"] - accounted))
    return [(name, value / mib) for name, value in rows]


def owners_table(report: dict[str, Any]) -> str:
    lines = ["| owner at steady state | MiB |", "|---|---|"]
    lines += [f"| {name} | {value:.1f} |" for name, value in owners(report)]
    lines.append(f"| RSS | {report['rss_bytes'] / 2**20:.1f} |")
    return "\n".join(lines)


def existing_runs() -> int:
    out = subprocess.run(
        ["kubectl", "-n", bench.NAMESPACE, "get", "trainingruns", "-o", "name"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return len(out.split())


async def ensure_runs(kubeconfig: str, objects: int, log: Path) -> None:
    have = existing_runs()
    if have >= objects:
        return
    info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings(), logger=None)
    assert info is not None
    kube = Kube.connect(info, user_agent="modelwerk-bench")
    op = bench.Operator(kubeconfig, log)
    op.start()
    try:
        await bench.populate(kube, have, objects, {})
    finally:
        op.stop()
        await kube.close()


def table(capture: Path, top: int) -> str:
    from memray import FileReader

    reader = FileReader(str(capture))
    by_owner: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for record in reader.get_high_watermark_allocation_records(merge_threads=True):
        row = by_owner[owner(record.stack_trace())]
        row[0] += record.size
        row[1] += record.n_allocations
    total = sum(size for size, _ in by_owner.values())
    lines = [
        f"heap at its high-water mark: {total / 2**20:.1f} MiB "
        f"(memray peak {reader.metadata.peak_memory / 2**20:.1f} MiB)",
        "",
        "| owner (first kopf/aiohttp/modelwerk frame) | MiB | share | allocations |",
        "|---|---|---|---|",
    ]
    for name, (size, count) in sorted(by_owner.items(), key=lambda kv: -kv[1][0])[:top]:
        lines.append(f"| {name} | {size / 2**20:.1f} | {size / total:.0%} | {count} |")
    return "\n".join(lines)


async def one_round(kube: Kube, names: list[str]) -> None:
    """The runs `names` created, Succeeded, deleted and gone with their Jobs and pods."""
    watcher = bench.Watcher()
    watcher.start()
    manifests = [bench.run_manifest(n, i) for i, n in enumerate(names)]
    await bench.create_runs(kube, manifests, None, {})
    bench.wait(
        lambda: all(watcher.phase.get(n) == "Succeeded" for n in names),
        1800,
        f"{len(names)} runs Succeeded",
        interval=1,
    )
    watcher.stop()
    sem = asyncio.Semaphore(32)

    async def delete(name: str) -> None:
        async with sem:
            await kube.delete(kinds.TRAININGRUN, name, bench.NAMESPACE)

    await asyncio.gather(*(delete(n) for n in names))
    prefix = names[0].rsplit("-", 1)[0] + "-"
    bench.wait(lambda: existing_children(prefix) == 0, 900, "runs, Jobs, pods gone", 1)


async def cycles(op: ProfiledOperator, rounds: int, runs: int) -> list[tuple[int, float]]:
    """RSS of one running operator after each round of `runs` runs created, Succeeded and
    deleted (with their Jobs and pods): flat if nothing leaks."""
    info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings(), logger=None)
    assert info is not None
    kube = Kube.connect(info, user_agent="modelwerk-bench")
    out = [(0, op.rss_mb()[0])]
    try:
        for r in range(rounds):
            await one_round(kube, [f"cycle{r}-{i}" for i in range(runs)])
            bench.wait(lambda: op.queue_depth() == 0, 300, "queues drained")
            await asyncio.sleep(10)  # the trimmer runs after 3 idle seconds
            out.append(((r + 1) * runs, op.rss_mb()[0]))
            print(f"after {out[-1][0]} runs created and deleted: RSS {out[-1][1]:.0f} MB")
    finally:
        await kube.close()
    return out


def existing_children(prefix: str) -> int:
    out = subprocess.run(
        ["kubectl", "-n", bench.NAMESPACE, "get", "trainingruns,jobs,pods", "-o", "name"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sum(1 for line in out.split() if line.split("/", 1)[-1].startswith(prefix))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the operator")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument(
        "--no-memray", action="store_true", help="RSS and owners only, without memray"
    )
    parser.add_argument("--cycles", type=int, default=0, help="create/delete rounds after")
    parser.add_argument("--cycle-runs", type=int, default=1000)
    args = parser.parse_args()
    kubeconfig = os.environ["KUBECONFIG"]
    config.load_kube_config(config_file=kubeconfig)
    bench.prepare_cluster()
    work = Path(tempfile.mkdtemp(prefix="modelwerk-mem-"))
    await ensure_runs(kubeconfig, args.objects, work / "populate.log")
    objects = existing_runs()
    env = dict(item.split("=", 1) for item in args.env)
    profile = not args.no_memray
    op = ProfiledOperator(kubeconfig, work / "operator.log", work / "operator.bin", env, profile)
    load = os.getloadavg()[0]
    started = op.start()
    bench.wait(
        lambda: op.reconciles("TrainingRun") >= objects and op.queue_depth() == 0,
        900,
        "steady state",
        interval=0.2,
    )
    steady = time.monotonic() - started
    writes = op.writes()
    await asyncio.sleep(5)  # let the listing's garbage go (and the trimmer run)
    rss, hwm = op.rss_mb()
    rounds = await cycles(op, args.cycles, args.cycle_runs) if args.cycles else []
    report = op.probe()
    op.stop()
    under = "under memray" if profile else "without memray"
    print(
        f"{objects} runs (+ Jobs, pods), env {env or '-'}, load {load:.1f}: RSS {under} "
        f"{rss:.0f} MB (peak {hwm:.0f} MB), steady state after {steady:.1f} s, "
        f"{writes:.0f} writes\n"
    )
    if rounds:
        print("| runs created and deleted | RSS MB |\n|---|---|")
        print("\n".join(f"| {n} | {mb:.0f} |" for n, mb in rounds) + "\n")
    print(owners_table(report) + "\n")
    if profile:
        print(table(work / "operator.bin", args.top))


if __name__ == "__main__":
    asyncio.run(main())
