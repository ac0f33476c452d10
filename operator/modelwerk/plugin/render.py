"""The plugin's human output: tables and aligned fields as `kubectl get` and `describe` print
them, from the documents of records.py."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from modelwerk.plugin.records import aliases_by_version, gang_text, metric_names

NONE = "<none>"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns left-aligned and three spaces apart, as `kubectl get` prints them."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in (headers, *rows):
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def format_fields(fields: Sequence[tuple[str, str]], indent: str = "") -> str:
    """`KEY   value` lines with the values aligned."""
    if not fields:
        return ""
    width = max(len(key) for key, _ in fields)
    return "".join(f"{indent}{key.ljust(width)}   {value}".rstrip() + "\n" for key, value in fields)


def format_metric(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return NONE if value is None else str(value)
    return f"{value:.6g}"


def short_digest(digest: str | None, length: int = 12) -> str:
    """`sha256:0123456789ab` from a full digest, as image tools abbreviate them."""
    if not digest:
        return NONE
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:length]}" if hexpart else digest[:length]


def _ref(uri: str | None, digest: str | None) -> str:
    if not uri:
        return NONE
    return f"{uri}@{digest}" if digest else uri


def dump(doc: Any, output: str) -> str:
    if output == "json":
        return json.dumps(doc, indent=2) + "\n"
    return str(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False))


def _source(entry: Mapping[str, Any]) -> str:
    source = entry.get("source") or {}
    if source.get("trainingRun"):
        return str(source["trainingRun"])
    if source.get("declared"):
        return "declared"
    return NONE


def versions_table(model: Mapping[str, Any]) -> str:
    status = model.get("status") or {}
    versions = sorted(status.get("versions") or [], key=lambda v: int(v["version"]))
    aliases = aliases_by_version(status.get("aliases") or {})
    metrics = metric_names(model)
    headers = [
        "VERSION",
        "ALIASES",
        *(m.upper() for m in metrics),
        "DIGEST",
        "SOURCE",
        "REGISTERED",
    ]
    rows = []
    for entry in versions:
        number = int(entry["version"])
        values = entry.get("metrics") or {}
        rows.append(
            [
                str(number),
                ",".join(aliases.get(number, [])) or NONE,
                *(format_metric(values.get(m)) for m in metrics),
                short_digest((entry.get("artifact") or {}).get("digest")),
                _source(entry),
                str(entry.get("registeredAt") or NONE),
            ]
        )
    return format_table(headers, rows)


def _code(code: Mapping[str, Any] | None) -> str:
    if not code:
        return NONE
    return f"{code.get('repository')}@{code.get('revision')}"


def _hyperparameters(record: Mapping[str, Any]) -> str:
    text = str(record.get("hyperparametersHash") or NONE)
    params = (record.get("run") or {}).get("hyperparameters")
    if params:
        text += " (" + ", ".join(f"{k}={v}" for k, v in sorted(params.items())) + ")"
    return text


def _run_line(record: Mapping[str, Any]) -> str:
    if record.get("declared"):
        return "none: declared in the Model's spec.versions"
    name = record.get("trainingRun")
    if not name:
        return NONE
    if "run" not in record:
        return str(name)
    run = record.get("run")
    if run is None:
        return f"{name} (deleted)"
    text = f"{name} ({run.get('phase') or 'no phase'})"
    if run.get("rerunOf"):
        text += f", rerun of {run['rerunOf']}"
    return text


def record_fields(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    artifact = record.get("artifact") or {}
    fields = [
        ("ALIASES", ",".join(record.get("aliases") or []) or NONE),
        ("TRAINING RUN", _run_line(record)),
        ("IMAGE", str(record.get("image") or NONE)),
        ("CODE", _code(record.get("code"))),
    ]
    datasets = record.get("datasets") or []
    for dataset in datasets:
        fields.append(
            (f"DATASET {dataset.get('name')}", _ref(dataset.get("uri"), dataset.get("digest")))
        )
    if not datasets:
        fields.append(("DATASETS", NONE))
    metrics = record.get("metrics") or {}
    fields += [
        ("HYPERPARAMETERS", _hyperparameters(record)),
        ("SEED", NONE if record.get("seed") is None else str(record["seed"])),
        *([("WORKERS", workers)] if (workers := gang_text(record)) else []),
        (
            "METRICS",
            ", ".join(f"{k}={format_metric(v)}" for k, v in sorted(metrics.items())) or NONE,
        ),
        ("ARTIFACT", _ref(artifact.get("uri"), artifact.get("digest"))),
        ("REGISTERED", str(record.get("registeredAt") or NONE)),
    ]
    return fields


def render_lineage(doc: Mapping[str, Any]) -> str:
    """The human form of a lineage document (the one `-o json` prints)."""
    parts = []
    dep = doc.get("deployment")
    if dep:
        phase = dep.get("phase") or "not reconciled yet"
        line = f"Deployment {dep.get('namespace')}/{dep.get('name')}: {phase}"
        line += f", serving Model {dep.get('model')} version {dep.get('currentVersion')}"
        if dep.get("endpoint"):
            line += f" at {dep['endpoint']}"
        canary = dep.get("canary") or {}
        if canary.get("state") == "Progressing":
            line += f"; canary version {canary.get('version')} at {canary.get('trafficPercent')}%"
        parts.append(line + "\n")
    run = doc.get("trainingRun")
    if run:
        phase = run.get("phase") or "not reconciled yet"
        line = f"TrainingRun {run.get('namespace')}/{run.get('name')}: {phase}"
        if run.get("modelVersion") is None:
            line += ", not registered as a model version"
        parts.append(line + "\n")
    for record in doc.get("versions") or []:
        title = f"{record.get('model')}:{record.get('version')}"
        if record.get("version") is None:
            title = f"{record.get('model') or 'no model'} (unregistered)"
        if record.get("role"):
            title = f"{record['role']}  {title}"
        parts.append(title + "\n" + format_fields(record_fields(record), indent="  "))
    return "\n".join(parts)
