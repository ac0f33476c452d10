"""The figures table of the fault suite: each scenario records what it measured, and the session
prints one Markdown table at the end (and writes it where MODELWERK_RELIABILITY_OUT says:
`hack/reliability.sh` points it at bench/results/reliability.md, which the README shows)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SIZES = ("small", "large")


def size() -> str:
    value = os.environ.get("MODELWERK_RELIABILITY_SIZE", "small")
    if value not in SIZES:
        raise ValueError(f"MODELWERK_RELIABILITY_SIZE must be one of {SIZES}, got {value!r}")
    return value


def sized(small: int, large: int) -> int:
    """`small` in CI, `large` by hand; MODELWERK_RELIABILITY_SCALE multiplies either."""
    base = small if size() == "small" else large
    return max(1, round(base * float(os.environ.get("MODELWERK_RELIABILITY_SCALE", "1"))))


@dataclass(frozen=True)
class Row:
    scenario: str
    figure: str
    value: str
    bound: str


ROWS: list[Row] = []


def record(scenario: str, figure: str, value: object, bound: str = "") -> None:
    ROWS.append(Row(scenario, figure, str(value), bound))


def seconds(values: list[float]) -> str:
    """`max / p50` of durations, in seconds."""
    if not values:
        return "n/a"
    return f"{max(values):.2f} / {statistics.median(values):.2f} s"


def _server_version() -> str:
    try:
        out = subprocess.run(
            ["kubectl", "version", "-o", "json"], capture_output=True, text=True, timeout=20
        ).stdout
        return str(json.loads(out)["serverVersion"]["gitVersion"])
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
        return "unknown"


def table() -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        f"Modelwerk fault suite ({size()}) — {stamp}, Kubernetes {_server_version()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}",
        "",
        "| scenario | figure | measured | bound |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r.scenario} | {r.figure} | {r.value} | {r.bound} |" for r in ROWS]
    return "\n".join(lines) + "\n"


def write(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(table())
