"""The serving benchmark's report: the ratios the goals are stated in, Markdown and JSON."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

GOAL_MLSERVER = 1.0
GOAL_SELDON = 1.5
GOAL_CEILING = 0.30
CEILING_CONNECTIONS = 8


def _by(run: Any, prefix: str) -> dict[tuple[int, int], list[Any]]:
    found: dict[tuple[int, int], list[Any]] = {}
    for r in run.results:
        if r.server.startswith(prefix):
            found.setdefault((r.batch, r.connections), []).append(r)
    return found


def ratios(run: Any, workers: int) -> list[dict[str, Any]]:
    """Per batch size and connections: ours (with `workers` processes) against MLServer's best
    configuration there (v2 with v2, the same request body), against the Seldon wrapper (v1 rows
    against Seldon's ndarray rows) and, at 8 connections with one row, against the in-process
    ceiling."""
    ours_v2 = {k: v[0] for k, v in _by(run, f"modelwerk v2 w{workers}").items()}
    ours_v1 = {k: v[0] for k, v in _by(run, f"modelwerk v1 w{workers}").items()}
    mls = {k: max(v, key=lambda r: r.rps) for k, v in _by(run, "MLServer").items()}
    seldon = {k: v[0] for k, v in _by(run, "seldon-core").items()}
    out = []
    for key in sorted(ours_v2):
        batch, connections = key
        row: dict[str, Any] = {"workers": workers, "batch": batch, "connections": connections}
        ours = ours_v2[key]
        if key in mls:
            best = mls[key]
            row["mlserver_best"] = best.server
            row["rps_vs_mlserver"] = ours.rps / best.rps
            row["p99_ours_ms"], row["p99_mlserver_ms"] = ours.p99_ms, best.p99_ms
            row["mlserver_goal_met"] = ours.rps >= best.rps and ours.p99_ms <= best.p99_ms
        if key in seldon and key in ours_v1:
            row["rps_vs_seldon"] = ours_v1[key].rps / seldon[key].rps
            row["seldon_goal_met"] = row["rps_vs_seldon"] >= GOAL_SELDON
        if batch == 1 and connections == CEILING_CONNECTIONS and key in ours_v1:
            row["vs_ceiling"] = ours_v1[key].rps / run.ceiling_calls_per_s[1]
            row["ceiling_goal_met"] = row["vs_ceiling"] >= GOAL_CEILING
        out.append(row)
    return out


def _mark(ok: bool | None) -> str:
    return "" if ok is None else (" ✓" if ok else " ✗")


def markdown(run: Any) -> str:
    lines = [
        f"Modelwerk serving benchmark — {run.started}, {run.machine}, wrk, "
        f"{run.duration_s:g} s per measurement",
        "",
        "| server | rows/request | connections | req/s | p50 (ms) | p99 (ms) | errors | RSS (MB) "
        "| load avg |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in run.results:
        lines.append(
            f"| {r.server} | {r.batch} | {r.connections} | {r.rps:.0f} | {r.p50_ms:.2f} "
            f"| {r.p99_ms:.2f} | {r.errors} | {r.rss_mb:.0f} | {r.load1:.1f} |"
        )
    ceiling = run.ceiling_calls_per_s
    lines += [
        "",
        f"Ceiling, in-process `predict` calls/s: {ceiling[1]:.0f} (1 row), "
        f"{ceiling[100]:.0f} (100 rows).",
        "",
        "Ratios of ours (v2 against MLServer, v1 against Seldon): goals ≥ "
        f"{GOAL_MLSERVER:g}× MLServer's best with p99 no worse, ≥ {GOAL_SELDON:g}× Seldon, ≥ "
        f"{GOAL_CEILING:.0%} of the ceiling at {CEILING_CONNECTIONS} connections.",
        "",
        "| ours | rows | connections | req/s vs MLServer best | p99 ours / MLServer (ms) "
        "| req/s vs Seldon | vs ceiling |",
        "|---|---|---|---|---|---|---|",
    ]
    for x in run.ratios:
        mls = (
            f"{x['rps_vs_mlserver']:.2f}× ({x['mlserver_best']}){_mark(x['mlserver_goal_met'])}"
            if "rps_vs_mlserver" in x
            else "–"
        )
        p99 = (
            f"{x['p99_ours_ms']:.2f} / {x['p99_mlserver_ms']:.2f}" if "p99_ours_ms" in x else "–"
        )
        sel = (
            f"{x['rps_vs_seldon']:.2f}×{_mark(x['seldon_goal_met'])}"
            if "rps_vs_seldon" in x
            else "–"
        )
        ceil = (
            f"{x['vs_ceiling']:.0%}{_mark(x['ceiling_goal_met'])}" if "vs_ceiling" in x else "–"
        )
        lines.append(
            f"| w{x['workers']} | {x['batch']} | {x['connections']} | {mls} | {p99} | {sel} "
            f"| {ceil} |"
        )
    return "\n".join(lines) + "\n"


def write(run: Any, results: Path) -> None:
    results.mkdir(parents=True, exist_ok=True)
    text = markdown(run)
    (results / "serving.md").write_text(text)
    data = asdict(run)
    (results / "serving.json").write_text(json.dumps(data, indent=1) + "\n")
    print()
    print(text)
