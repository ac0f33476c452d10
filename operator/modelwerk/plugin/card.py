"""`kubectl modelwerk card MODEL[:VERSION]`: a model card, from the cluster alone.

Three reads: the Model (description, spec.card, the version's registry entry), the version's
TrainingRun if it still exists (validation results, the gate's verdict, hyperparameters), and
the namespace's modelwerk Deployments (where the version serves, and since when). The card is
built as a list of blocks, rendered to Markdown or to HTML with every value escaped.
"""

from __future__ import annotations

import argparse
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelwerk.plugin.client import DEPLOYMENTS, MODELS, TRAININGRUNS, JsonObj, Kubectl
from modelwerk.plugin.records import aliases_by_version, find_version, gang_of, gang_text
from modelwerk.plugin.render import format_metric
from modelwerk.plugin.runs import list_items, run_record

NOT_RECORDED = "none recorded"
NONE = "—"


@dataclass(frozen=True)
class Block:
    kind: str  # heading | text | table | items
    text: str = ""
    level: int = 2
    headers: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    items: tuple[str, ...] = field(default_factory=tuple)


def heading(text: str, level: int = 2) -> Block:
    return Block("heading", text=text, level=level)


def text(value: str) -> Block:
    return Block("text", text=value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> Block:
    cells = tuple(tuple(NONE if c is None else str(c) for c in row) for row in rows)
    return Block("table", headers=tuple(headers), rows=cells)


def items(*lines: str) -> Block:
    return Block("items", items=tuple(lines))


# --- what the card says -----------------------------------------------------------------------


def default_selector(model: Mapping[str, Any], selector: str | None) -> str | None:
    """No version given: the production alias if set, else the latest version."""
    if selector:
        return selector
    return (
        "production" if "production" in ((model.get("status") or {}).get("aliases") or {}) else None
    )


def serving(
    deployments: Sequence[Mapping[str, Any]], model: str, version: int
) -> list[tuple[str, ...]]:
    """(Deployment, role, traffic, phase, endpoint, since) for each Deployment serving it."""
    rows: list[tuple[str, ...]] = []
    for dep in sorted(deployments, key=lambda d: d["metadata"]["name"]):
        if (dep.get("spec") or {}).get("model") != model:
            continue
        status = dep.get("status") or {}
        canary = status.get("canary") or {}
        live_canary = canary.get("state") == "Progressing"
        percent = int(canary.get("trafficPercent") or 0) if live_canary else 0
        conditions = {c.get("type"): c for c in status.get("conditions") or []}
        rolled = conditions.get("Progressing") or {}
        if status.get("currentVersion") == version:
            since = (
                rolled.get("lastTransitionTime") if rolled.get("reason") == "RolledOut" else None
            )
            role, traffic = "stable", f"{100 - percent}%"
        elif live_canary and canary.get("version") == version:
            role, traffic, since = "canary", f"{percent}%", canary.get("stepStartedAt")
        else:
            continue
        rows.append(
            (
                str(dep["metadata"]["name"]),
                role,
                traffic,
                str(status.get("phase") or NONE),
                str(status.get("endpoint") or NONE),
                str(since or NONE),
            )
        )
    return rows


def _validation_blocks(record: JsonObj | None, run_gone: bool) -> list[Block]:
    blocks = [heading("Data validation", 3)]
    if record is None:
        reason = "its TrainingRun is deleted" if run_gone else "the version was declared"
        return [*blocks, text(f"Not kept in the registry, and {reason}: {NOT_RECORDED}.")]
    validation = record.get("validation")
    if not validation:
        return [*blocks, text("The run declared no spec.validation: no checks ran.")]
    verdict = "Passed" if validation.get("passed") else "Failed"
    rows = [
        (
            c.get("name"),
            c.get("expected"),
            c.get("observed"),
            "pass" if c.get("passed") else "FAIL",
        )
        for c in validation.get("checks") or []
    ]
    return [
        *blocks,
        text(f"{verdict}: {validation.get('message')}"),
        table(("check", "expected", "observed", "result"), rows),
    ]


def card_blocks(
    model: Mapping[str, Any],
    entry: Mapping[str, Any],
    run: Mapping[str, Any] | None,
    deployments: Sequence[Mapping[str, Any]],
) -> list[Block]:
    meta, spec, status = (
        model.get("metadata") or {},
        model.get("spec") or {},
        model.get("status") or {},
    )
    name, number = str(meta.get("name")), int(entry["version"])
    card = spec.get("card") or {}
    source = entry.get("source") or {}
    lineage = entry.get("lineage") or {}
    artifact = entry.get("artifact") or {}
    record = (
        run_record(run)
        if run is not None and (run.get("metadata") or {}).get("uid") == source.get("uid")
        else None
    )
    aliases = aliases_by_version(status.get("aliases") or {}).get(number, [])

    blocks = [heading(f"Model card: {name}, version {number}", 1)]
    blocks.append(text(str(spec.get("description") or f"No description ({NOT_RECORDED}).")))
    blocks.append(
        table(
            ("", ""),
            [
                ("Namespace", meta.get("namespace")),
                ("Version", number),
                ("Aliases", ", ".join(aliases) or NONE),
                ("Framework", spec.get("framework")),
                ("Owner", card.get("owner") or NOT_RECORDED),
                ("Contact", card.get("contact") or NOT_RECORDED),
                ("Registered", entry.get("registeredAt")),
            ],
        )
    )
    blocks += [heading("Intended use"), text(str(card.get("intendedUse") or NOT_RECORDED))]
    blocks += [heading("Limitations"), text(str(card.get("limitations") or NOT_RECORDED))]

    blocks.append(heading("Training data"))
    observed = {d.get("name"): d for d in (record or {}).get("datasets") or []}
    data_rows = []
    for dataset in lineage.get("datasets") or []:
        seen = observed.get(dataset.get("name")) or {}
        data_rows.append(
            (dataset.get("name"), dataset.get("uri"), dataset.get("digest"), seen.get("rows"))
        )
    blocks.append(
        table(("dataset", "URI", "digest", "rows"), data_rows)
        if data_rows
        else text(
            f"No datasets ({NOT_RECORDED})."
            if not source.get("declared")
            else "Declared version: no training data recorded."
        )
    )
    blocks += _validation_blocks(record, bool(source.get("trainingRun")))

    blocks.append(heading("Evaluation"))
    gate = (record or {}).get("evaluation") or {}
    if gate.get("metric"):
        rule = gate["metric"]
        if gate.get("threshold") is not None:
            word = "<=" if gate.get("direction") == "min" else ">="
            rule += f" {word} {format_metric(gate['threshold'])}"
        verdict = "passed" if gate.get("passed") else "failed"
        blocks.append(text(f"Gate {rule}: {verdict} ({gate.get('message') or NONE})."))
    elif record is not None:
        blocks.append(text("No evaluation gate: every valid report passed."))
    else:
        blocks.append(text(f"Gate verdict: {NOT_RECORDED} (only the metrics are in the registry)."))
    metrics = entry.get("metrics") or {}
    blocks.append(
        table(("metric", "value"), [(k, format_metric(v)) for k, v in sorted(metrics.items())])
        if metrics
        else text(f"Metrics: {NOT_RECORDED}.")
    )

    blocks.append(heading("Lineage"))
    code = lineage.get("code") or {}
    params = (record or {}).get("hyperparameters")
    # The run's status fills in what an older registration did not record (the engine).
    workers = gang_text(gang_of(lineage, ((run or {}).get("status") or {}).get("workers")))
    blocks.append(
        items(
            f"Source: {_source(source, run, record)}",
            *([f"Workers: {workers}"] if workers else []),
            f"Image: {lineage.get('image') or NONE}",
            f"Code: {code.get('repository')} @ {code.get('revision')}" if code else f"Code: {NONE}",
            "Hyperparameters: "
            + (", ".join(f"{k}={v}" for k, v in sorted(params.items())) + " " if params else "")
            + f"(hash {lineage.get('hyperparametersHash') or NONE})",
            f"Seed: {NONE if lineage.get('seed') is None else lineage['seed']}",
            f"Artifact: {artifact.get('uri') or NONE} ({artifact.get('digest') or 'no digest'})",
        )
    )

    blocks.append(heading("Baseline"))
    baseline = entry.get("baseline") or {}
    features = baseline.get("features") or {}
    order = baseline.get("featureOrder") or sorted(features)
    blocks.append(
        table(
            ("feature", "mean", "std"),
            [
                (f, format_metric(features[f].get("mean")), format_metric(features[f].get("std")))
                for f in order
                if f in features
            ],
        )
        if features
        else text("No baseline: Deployments of this version get no drift alerts.")
    )

    blocks.append(heading("Serving"))
    served = serving(deployments, name, number)
    blocks.append(
        table(("Deployment", "role", "traffic", "phase", "endpoint", "since"), served)
        if served
        else text(f"Not served by any Deployment in namespace {meta.get('namespace')}.")
    )
    blocks += [heading("Approvals"), text("None recorded.")]
    return blocks


def _source(
    source: Mapping[str, Any], run: Mapping[str, Any] | None, record: JsonObj | None
) -> str:
    if source.get("declared"):
        return "declared in the Model's spec.versions"
    name = source.get("trainingRun")
    if not name:
        return NONE
    if record is None:
        return f"TrainingRun {name} (deleted)"
    return f"TrainingRun {name} ({record.get('phase')})"


# --- rendering --------------------------------------------------------------------------------


# Backslash-escaped in Markdown (CommonMark escapes any ASCII punctuation): HTML tags (`<`),
# emphasis, links, code spans and table cells must not come alive from a value in the cluster.
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*[]<|"})


def md_escape(value: str) -> str:
    return value.translate(_MD_SPECIAL)


def _md_cell(value: str) -> str:
    return md_escape(value).replace("\n", " ")


def to_markdown(blocks: Sequence[Block]) -> str:
    out = []
    for block in blocks:
        if block.kind == "heading":
            out.append(f"{'#' * block.level} {md_escape(block.text)}")
        elif block.kind == "text":
            out.append(md_escape(block.text))
        elif block.kind == "items":
            out.append("\n".join(f"- {md_escape(line)}" for line in block.items))
        else:
            lines = ["| " + " | ".join(_md_cell(h) for h in block.headers) + " |"]
            lines.append("|" + "---|" * len(block.headers))
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def to_html(blocks: Sequence[Block]) -> str:
    e = html.escape
    title = next((b.text for b in blocks if b.kind == "heading"), "Model card")
    body = []
    for block in blocks:
        if block.kind == "heading":
            body.append(f"<h{block.level}>{e(block.text)}</h{block.level}>")
        elif block.kind == "text":
            body.append(f"<p>{e(block.text)}</p>")
        elif block.kind == "items":
            body.append("<ul>" + "".join(f"<li>{e(line)}</li>" for line in block.items) + "</ul>")
        else:
            head = "".join(f"<th>{e(h)}</th>" for h in block.headers)
            rows = "".join(
                "<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in block.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">'
        f"<title>{e(title)}</title></head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


def cmd_card(kubectl: Kubectl, args: argparse.Namespace) -> str:
    model_name, _, selector = args.model.partition(":")
    model = kubectl.get(MODELS, model_name)
    entry = find_version(model, default_selector(model, selector or None))
    run_name = (entry.get("source") or {}).get("trainingRun")
    run = kubectl.find(TRAININGRUNS, str(run_name)) if run_name else None
    blocks = card_blocks(model, entry, run, list_items(kubectl, DEPLOYMENTS))
    return to_html(blocks) if args.output == "html" else to_markdown(blocks)


def card_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL")
    parser.add_argument("-o", "--output", choices=("markdown", "html"), default="markdown")
