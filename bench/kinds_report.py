"""The all-kinds section of bench.py's NAME.md, from the results bench/kinds.py measured (and
bench.py's TrainingRun figures of the same run, when there are any)."""

from __future__ import annotations

from collections.abc import Mapping

import bench


def owned(audit: Mapping[str, int], kind: str) -> int:
    return sum(v for k, v in audit.items() if k.startswith(f"{kind}: "))


def listed(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items()) or "none"


def report(results: bench.Results) -> list[str]:
    """A row per kind (TrainingRun's from bench.py's scenarios of
    the same run, when they ran), then what each count was made of."""
    k = results.kinds
    if not k:
        return []
    idle, restarted, pods = k["idle"], k["restart"], k.get("replacement")
    per_minute = 60 / idle["seconds"]
    lines = [
        "",
        f"All kinds: {k['models']} Models x {k['versions']} declared versions, "
        f"{k['deployments']} monitored native Deployments x {k['replicas']} pods "
        "(counts: operator's metrics / audit log; idle, restart and pod replacement with both "
        "kinds present, the operator's metrics not split by kind; the audit log names no object "
        "for a create, so a kind's idle, restart and replacement column leaves creates out: they "
        "are in the lines below)",
        "",
        "| kind | N | writes per lifecycle | create→child p50 / p99 (ms) | idle writes/min "
        "| writes on restart | writes per serving-pod replacement | restart to steady, RSS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    steady = f"{restarted['seconds']:.1f} s, {restarted['rss_mb']:.0f} MB"
    both = (
        f"{sum(idle['writes'].values()) * per_minute:.1f}",
        f"{sum(restarted['writes'].values())}",
    )
    for kind, child in (("Model", "status.versions"), ("Deployment", "apps/v1 Deployment")):
        row = k.get(kind)
        if not row:
            continue
        audit_lc = sum(row["audit"].values()) / row["n"]
        lat = row["create_to_child_ms"]
        replaced = "—"
        if pods and kind == "Deployment":
            audited = owned(pods["audit"], kind) / pods["pods"]
            replaced = f"{pods['writes_per_replacement']:.2f} / {audited:.2f}"
        lines.append(
            f"| {kind} | {row['n']} | {row['writes_per_lifecycle']:.2f} / {audit_lc:.2f} | "
            f"{lat['p50']:.0f} / {lat['p99']:.0f} ({child}) | "
            f"{both[0]} / {owned(idle['audit'], kind) * per_minute:.1f} | "
            f"{both[1]} / {owned(restarted['audit'], kind)} | {replaced} | {steady} |"
        )
    t, api, r = results.throughput, results.api, results.restart
    burst = [x for x in results.latency if x["mode"] == "burst" and x.get("workers", 1) == 1]
    if t and api and r and burst and results.memory:
        lat, rss = burst[-1]["run_to_job_ms"], results.memory[-1]["rss_mb"]
        lines.append(
            f"| TrainingRun (bench.py, this run) | {t['n']} lifecycles, {api['objects']} idle "
            f"| {t['writes_per_lifecycle']:.2f} / — | {lat['p50']:.0f} / {lat['p99']:.0f} "
            f"(Job, burst of {burst[-1]['n']}) | {api['idle_writes_per_minute']:.1f} / "
            f"{api['idle_audit_writes']} | {r['writes']:.0f} / — | — | "
            f"{r['seconds']:.1f} s, {rss:.0f} MB ({r['objects']} runs) |"
        )
    lines += [
        "",
        f"- restart with the Models and Deployments present (and no runs): steady state (each "
        f"reconciled, nothing queued) in {restarted['seconds']:.1f} s; RSS "
        f"{restarted['rss_mb']:.0f} MB (peak {restarted['peak_mb']:.0f} MB)",
    ]
    for kind in ("Model", "Deployment"):
        if k.get(kind):
            row = k[kind]
            lines.append(
                f"- {kind} lifecycles: {row['n']} created in {row['create_seconds']:.1f} s, all "
                f"converged after {row['converged_seconds']:.1f} s; operator: "
                f"{listed(row['writes'])}; audit: {listed(row['audit'])}"
                + (
                    f"; {row['prometheusrules']} PrometheusRules, {row['servicemonitors']} "
                    "ServiceMonitors in the namespace"
                    if kind == "Deployment"
                    else ""
                )
            )
    for what, x in (
        (f"idle {idle['seconds']:.0f} s", idle),
        (f"{pods and pods['pods']} serving pods replaced", pods),
        ("restart", restarted),
    ):
        if x:
            lines.append(f"- {what}: operator: {listed(x['writes'])}; audit: {listed(x['audit'])}")
    return lines
