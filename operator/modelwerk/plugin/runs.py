"""`kubectl modelwerk runs MODEL` and `kubectl modelwerk diff A B`: experiment comparison.

Pure functions of listed objects (one `kubectl get trainingruns` for all runs, however many,
and the Model), plus the two commands that fetch them. A run record is the common shape of
both: what a run asked for (spec), what it did (status), and the version it registered; a
version whose run is deleted is rebuilt from the registry's lineage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from modelwerk.plugin.client import MODELS, TRAININGRUNS, JsonObj, Kubectl, PluginError
from modelwerk.plugin.records import find_version, gang, gang_of
from modelwerk.plugin.render import NONE, dump, format_metric, format_table, short_digest
from modelwerk.status import parse_time

HYPERPARAMETER_COLUMNS = 4


def list_items(kubectl: Kubectl, resource: str) -> list[JsonObj]:
    """One list call (kubectl pages through large lists by itself)."""
    items: list[JsonObj] = json.loads(kubectl.run("get", resource, "--output", "json"))["items"]
    return items


# --- records --------------------------------------------------------------------------------


def _duration(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (parse_time(end) - parse_time(start)).total_seconds()


def _validation_summary(validation: Mapping[str, Any] | None) -> JsonObj | None:
    if not validation:
        return None
    checks = list(validation.get("checks") or [])
    return {
        "passed": bool(validation.get("passed")),
        "failed": [c["name"] for c in checks if not c.get("passed")],
        "message": validation.get("message"),
        "checks": checks,
        "datasets": list(validation.get("datasets") or []),
    }


def _datasets(
    declared: Sequence[Mapping[str, Any]], validation: Mapping[str, Any] | None
) -> list[JsonObj]:
    observed = {d.get("name"): d for d in (validation or {}).get("datasets") or []}
    result = []
    for dataset in declared:
        entry = {k: dataset[k] for k in ("name", "uri", "digest") if k in dataset}
        seen = observed.get(dataset.get("name")) or {}
        if seen.get("digest"):
            entry["observedDigest"] = seen["digest"]
        if seen.get("rows") is not None:
            entry["rows"] = seen["rows"]
        result.append(entry)
    return result


def _reason(status: Mapping[str, Any]) -> str | None:
    """Why a run ended the way it did: the deciding condition's reason."""
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    for type_, state in (("Validated", "False"), ("Failed", "True"), ("Evaluated", "False")):
        cond = conditions.get(type_)
        if cond and cond.get("status") == state:
            return str(cond.get("reason"))
    return None


def run_record(run: Mapping[str, Any]) -> JsonObj:
    meta, spec, status = run.get("metadata") or {}, run.get("spec") or {}, run.get("status") or {}
    repro = status.get("reproducibility") or {}
    workers = status.get("workers") or {}
    validation = status.get("validation")
    gate = status.get("evaluation") or {}
    return {
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "model": spec.get("model"),
        "created": meta.get("creationTimestamp"),
        "phase": status.get("phase"),
        "reason": _reason(status),
        "startTime": status.get("startTime"),
        "completionTime": status.get("completionTime"),
        "durationSeconds": _duration(status.get("startTime"), status.get("completionTime")),
        "image": repro.get("image") or spec.get("image"),
        "code": repro.get("code") or spec.get("code"),
        "hyperparameters": dict(spec.get("hyperparameters") or {}),
        "hyperparametersHash": repro.get("hyperparametersHash"),
        "seed": spec.get("seed"),
        "datasets": _datasets(spec.get("datasets") or [], validation),
        "validation": _validation_summary(validation),
        "evaluation": {
            k: gate[k]
            for k in ("metric", "direction", "value", "threshold", "passed", "message")
            if k in gate
        }
        or None,
        "metrics": dict(status.get("metrics") or {}),
        "artifact": status.get("artifact"),
        "modelVersion": status.get("modelVersion"),
        **gang(
            workers.get("replicas") or (spec.get("workers") or {}).get("replicas"),
            workers.get("attempt"),
            workers.get("engine"),
        ),
        "deleted": False,
    }


def version_record(
    model: Mapping[str, Any], entry: Mapping[str, Any], run: Mapping[str, Any] | None
) -> JsonObj:
    """A registered version: its run's record when the run still exists, else what the
    registry kept (lineage, metrics, artifact)."""
    source = entry.get("source") or {}
    if run is not None and (run.get("metadata") or {}).get("uid") == source.get("uid"):
        record = run_record(run)
    else:
        lineage = entry.get("lineage") or {}
        record = {
            "name": source.get("trainingRun"),
            "uid": source.get("uid"),
            "model": (model.get("metadata") or {}).get("name"),
            "created": None,
            "phase": "Succeeded" if source.get("trainingRun") else None,
            "reason": None,
            "startTime": None,
            "completionTime": None,
            "durationSeconds": None,
            "image": lineage.get("image"),
            "code": lineage.get("code"),
            "hyperparameters": None,
            "hyperparametersHash": lineage.get("hyperparametersHash"),
            "seed": lineage.get("seed"),
            "datasets": _datasets(lineage.get("datasets") or [], None),
            "validation": None,
            "evaluation": None,
            "metrics": dict(entry.get("metrics") or {}),
            "artifact": entry.get("artifact"),
            "modelVersion": int(entry["version"]),
            **gang_of(lineage),
            "deleted": bool(source.get("trainingRun")),
            "declared": bool(source.get("declared")),
        }
    record["registeredAt"] = entry.get("registeredAt")
    return record


def model_runs(model: Mapping[str, Any], runs: Sequence[Mapping[str, Any]]) -> list[JsonObj]:
    """Every run of the Model, oldest first, plus versions whose run is gone."""
    name = (model.get("metadata") or {}).get("name")
    mine = [r for r in runs if (r.get("spec") or {}).get("model") == name]
    mine.sort(key=lambda r: ((r["metadata"].get("creationTimestamp") or ""), r["metadata"]["name"]))
    records = [run_record(r) for r in mine]
    uids = {r["uid"] for r in records}
    for entry in (model.get("status") or {}).get("versions") or []:
        source = entry.get("source") or {}
        if source.get("trainingRun") and source.get("uid") not in uids:
            records.append(version_record(model, entry, None))
    return records


# --- the runs table ---------------------------------------------------------------------------


def gate_metric(records: Sequence[Mapping[str, Any]]) -> str | None:
    names = Counter(
        str(r["evaluation"]["metric"])
        for r in records
        if r.get("evaluation") and r["evaluation"].get("metric")
    )
    return names.most_common(1)[0][0] if names else None


def varying_hyperparameters(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Hyperparameters whose values differ between runs (the ones worth a column); if none
    differ, all of them."""
    values: dict[str, set[str | None]] = {}
    known = [r["hyperparameters"] for r in records if r.get("hyperparameters") is not None]
    for params in known:
        for key in params:
            values.setdefault(key, set())
    for params in known:
        for key in values:
            values[key].add(params.get(key))
    varying = sorted(k for k, v in values.items() if len(v) > 1)
    return (varying or sorted(values))[:HYPERPARAMETER_COLUMNS]


def sort_records(
    records: list[JsonObj], metric: str | None, descending: bool = True
) -> list[JsonObj]:
    if metric is None:
        return records
    with_value = [r for r in records if metric in (r.get("metrics") or {})]
    without = [r for r in records if metric not in (r.get("metrics") or {})]
    with_value.sort(key=lambda r: float(r["metrics"][metric]), reverse=descending)
    return with_value + without


def _verdict(section: Mapping[str, Any] | None) -> str:
    if not section:
        return NONE
    if section.get("passed"):
        return "passed"
    failed = section.get("failed") or []
    return f"failed ({len(failed)})" if failed else "failed"


def _seconds(value: float | None) -> str:
    if value is None:
        return NONE
    return str(dt.timedelta(seconds=round(value)))


def _data(record: Mapping[str, Any]) -> str:
    parts = []
    for dataset in record.get("datasets") or []:
        digest = dataset.get("digest") or dataset.get("observedDigest")
        parts.append(
            f"{dataset.get('name')}@{short_digest(digest, 8)}" if digest else dataset["name"]
        )
    return ",".join(parts) or NONE


def _workers(record: Mapping[str, Any]) -> str:
    workers = int(record.get("workers") or 1)
    attempt, engine = record.get("attempt"), record.get("engine")
    text = f"{workers} {engine}" if workers > 1 and engine else str(workers)
    return f"{text} (attempt {attempt})" if workers > 1 and attempt else text


def runs_table(records: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> str:
    params = varying_hyperparameters(records)
    # Only when some run trained on several pods: single-pod models keep their narrow table.
    gangs = any(int(r.get("workers") or 1) > 1 for r in records)
    headers = [
        "RUN",
        "PHASE",
        *(m.upper() for m in metrics),
        "GATE",
        "VALIDATION",
        *params,
        "DATASETS",
        *(["WORKERS"] if gangs else []),
        "DURATION",
        "VERSION",
    ]
    rows = []
    for record in records:
        values = record.get("metrics") or {}
        phase = str(record.get("phase") or NONE)
        if record.get("reason") and phase in ("Failed", "Rejected"):
            phase += f" ({record['reason']})"
        hyper = record.get("hyperparameters")
        name = str(record.get("name") or NONE) + (" (deleted)" if record.get("deleted") else "")
        rows.append(
            [
                name,
                phase,
                *(format_metric(values.get(m)) for m in metrics),
                _verdict(record.get("evaluation")),
                _verdict(record.get("validation")),
                *((NONE if hyper is None else str(hyper.get(p, NONE))) for p in params),
                _data(record),
                *([_workers(record)] if gangs else []),
                _seconds(record.get("durationSeconds")),
                NONE if record.get("modelVersion") is None else str(record["modelVersion"]),
            ]
        )
    return format_table(headers, rows)


def runs_document(model: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> JsonObj:
    meta = model.get("metadata") or {}
    return {"model": meta.get("name"), "namespace": meta.get("namespace"), "runs": list(records)}


def metric_direction(
    model: Mapping[str, Any], records: Sequence[Mapping[str, Any]], metric: str
) -> str:
    """`min` when a gate or the Model's promotion says smaller is better, else `max`."""
    for record in records:
        gate = record.get("evaluation") or {}
        if gate.get("metric") == metric and gate.get("direction"):
            return str(gate["direction"])
    promotion = (model.get("spec") or {}).get("promotion") or {}
    return str(promotion.get("direction") or "max") if promotion.get("metric") == metric else "max"


def cmd_runs(kubectl: Kubectl, args: argparse.Namespace) -> str:
    model = kubectl.get(MODELS, args.model)
    records = model_runs(model, list_items(kubectl, TRAININGRUNS))
    gate = gate_metric(records)
    if args.sort_by:
        best_high = metric_direction(model, records, args.sort_by) != "min"
        records = sort_records(records, args.sort_by, descending=best_high)
    if args.output != "table":
        return dump(runs_document(model, records), args.output)
    if not records:
        meta = model.get("metadata") or {}
        raise PluginError(
            f"no runs of Model {meta.get('name')} in namespace {meta.get('namespace')}"
        )
    metrics = [m for m in dict.fromkeys([gate, args.sort_by]) if m]
    return runs_table(records, metrics)


# --- diff -------------------------------------------------------------------------------------


def _code(code: Mapping[str, Any] | None) -> str | None:
    return f"{code.get('repository')}@{code.get('revision')}" if code else None


def _text(value: Any) -> str:
    if value is None:
        return NONE
    if isinstance(value, float):
        return format_metric(value)
    return str(value)


def comparable(record: Mapping[str, Any]) -> dict[str, Any]:
    """Field -> value, flat, for the diff."""
    fields: dict[str, Any] = {
        "phase": record.get("phase"),
        "reason": record.get("reason"),
        "version": record.get("modelVersion"),
        "image": record.get("image"),
        "code": _code(record.get("code")),
        "seed": record.get("seed"),
        "hyperparametersHash": record.get("hyperparametersHash"),
        "workers": record.get("workers"),
        "attempt": record.get("attempt"),
    }
    for key, value in sorted((record.get("hyperparameters") or {}).items()):
        fields[f"hyperparameter {key}"] = value
    for dataset in record.get("datasets") or []:
        ref = dataset.get("uri")
        digest = dataset.get("digest") or dataset.get("observedDigest")
        fields[f"dataset {dataset.get('name')}"] = f"{ref}@{digest}" if digest else ref
        if dataset.get("rows") is not None:
            fields[f"dataset {dataset.get('name')} rows"] = dataset["rows"]
    gate = record.get("evaluation") or {}
    if gate:
        fields["gate"] = "passed" if gate.get("passed") else f"failed: {gate.get('message')}"
    validation = record.get("validation") or {}
    if validation:
        fields["validation"] = "passed" if validation.get("passed") else "failed"
        for check in validation.get("checks") or []:
            verdict = "pass" if check.get("passed") else "FAIL"
            fields[f"check {check['name']}"] = f"{verdict} {check.get('observed') or ''}".strip()
    for key, value in sorted((record.get("metrics") or {}).items()):
        fields[f"metric {key}"] = value
    return fields


def differences(
    a: Mapping[str, Any], b: Mapping[str, Any], everything: bool = False
) -> list[JsonObj]:
    left, right = comparable(a), comparable(b)
    rows = []
    for field in dict.fromkeys([*left, *right]):
        x, y = left.get(field), right.get(field)
        if x == y and not everything:
            continue
        row: JsonObj = {"field": field, "a": x, "b": y}
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y))
        if field.startswith("metric ") and numeric:
            row["delta"] = float(y) - float(x)  # type: ignore[arg-type]
        rows.append(row)
    return rows


def diff_text(labels: tuple[str, str], rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return f"{labels[0]} and {labels[1]} do not differ\n"
    table = [
        [
            str(r["field"]),
            _text(r["a"]),
            _text(r["b"]),
            f"{r['delta']:+.6g}" if "delta" in r else "",
        ]
        for r in rows
    ]
    return format_table(["FIELD", labels[0].upper(), labels[1].upper(), "DELTA"], table)


def resolve(kubectl: Kubectl, target: str) -> tuple[str, JsonObj]:
    """`RUN` or `MODEL:VERSION|ALIAS` -> (label, record)."""
    if ":" in target:
        model_name, _, selector = target.partition(":")
        model = kubectl.get(MODELS, model_name)
        entry = find_version(model, selector or None)
        run_name = (entry.get("source") or {}).get("trainingRun")
        run = kubectl.find(TRAININGRUNS, str(run_name)) if run_name else None
        return f"{model_name}:{entry['version']}", version_record(model, entry, run)
    return target, run_record(kubectl.get(TRAININGRUNS, target))


def cmd_diff(kubectl: Kubectl, args: argparse.Namespace) -> str:
    label_a, a = resolve(kubectl, args.a)
    label_b, b = resolve(kubectl, args.b)
    rows = differences(a, b, everything=args.all)
    if args.output != "table":
        return dump({"a": a, "b": b, "differences": rows}, args.output)
    return diff_text((label_a, label_b), rows)


def runs_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL")
    parser.add_argument("--sort-by", metavar="METRIC", help="best first by this metric")
    parser.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")


def diff_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", metavar="A")
    parser.add_argument("b", metavar="B")
    parser.add_argument("--all", action="store_true", help="show equal fields too")
    parser.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
