"""Where the operator's memory goes: N finished runs (with their Jobs and pods) in the cluster,
then a fresh operator under memray (`pip install -e '.[bench]'`) until steady state, and its
heap at the high-water mark grouped by owner: the first frame, innermost outwards, in kopf,
aiohttp or modelwerk (by module), else the innermost frame's module.

    KUBECONFIG=... .venv/bin/python bench/memprofile.py --objects 1000 [--env MALLOC_ARENA_MAX=2]

Uses the cluster KUBECONFIG names (runs left in namespace `bench` are reused, more are made
with bench.py's manifests), and prints a Markdown table (RSS from /proc, heap from memray).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import kopf
from kubernetes import config

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench

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
        argv = [sys.executable]
        if self.profile:
            argv += ["-m", "memray", "run", "-q", "-f", "-o", str(self.capture)]
        self.proc = subprocess.Popen(
            [
                *argv,
                "-m",
                "modelwerk",
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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the operator")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument(
        "--no-memray", action="store_true", help="RSS only, of the operator as it runs"
    )
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
    started = op.start()
    bench.wait(
        lambda: op.reconciles("TrainingRun") >= objects and op.queue_depth() == 0,
        900,
        "steady state",
        interval=0.5,
    )
    steady = time.monotonic() - started
    await asyncio.sleep(5)  # let the listing's garbage go
    rss, hwm = op.rss_mb()
    op.stop()
    under = "under memray" if profile else "without memray"
    print(
        f"{objects} runs (+ Jobs, pods), env {env or '-'}: RSS {under} {rss:.0f} MB "
        f"(peak {hwm:.0f} MB), steady state after {steady:.1f} s\n"
    )
    if profile:
        print(table(work / "operator.bin", args.top))


if __name__ == "__main__":
    asyncio.run(main())
