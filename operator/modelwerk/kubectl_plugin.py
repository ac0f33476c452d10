"""`kubectl modelwerk`: the registry's versions, a served model's lineage, reruns, runs compared,
and model cards.

kubectl runs `kubectl-modelwerk` from the PATH for `kubectl modelwerk ...`. Every read is a
`kubectl get ... -o json` and a rerun is a `kubectl create -f -`, so the plugin uses the
user's kubeconfig, context, credentials and RBAC exactly as kubectl does. The kubectl binary is
$KUBECTL_PATH (which newer kubectl versions set for their plugins) or `kubectl` on the
PATH.

    kubectl modelwerk versions MODEL [-n NS] [-o json|yaml]
    kubectl modelwerk lineage [deployment/]NAME | model/NAME[:VERSION|:ALIAS] | trainingrun/NAME
    kubectl modelwerk rerun RUN [--name NEW] [--dry-run] [-o name|json|yaml]
    kubectl modelwerk runs MODEL [--sort-by METRIC] [-o json|yaml]      (plugin_runs.py)
    kubectl modelwerk diff RUN_A RUN_B | MODEL:V1 MODEL:V2 [--all]     (plugin_runs.py)
    kubectl modelwerk card MODEL[:VERSION|:ALIAS] [-o markdown|html]   (plugin_card.py)

Common flags: -n/--namespace, --kubeconfig, --context (KUBECONFIG is honoured as by kubectl).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from modelwerk.constants import API_VERSION, GROUP

MODELS = f"models.{GROUP}"
TRAININGRUNS = f"trainingruns.{GROUP}"
DEPLOYMENTS = f"deployments.{GROUP}"
RERUN_OF = f"{GROUP}/rerun-of"
NONE = "<none>"
# metadata.generateName gets 5 random characters; run names must fit a label value (63).
GENERATE_NAME_MAX = 63 - 5

Kind = Literal["Deployment", "Model", "TrainingRun"]
_KIND_NAMES: dict[Kind, tuple[str, ...]] = {
    "Deployment": ("deployment", "deployments", "mwd", "mwdeploy"),
    "Model": ("model", "models", "mwm"),
    "TrainingRun": ("trainingrun", "trainingruns", "tr", "mwtr"),
}
_KIND_ALIASES = {
    alias: kind
    for kind, names in _KIND_NAMES.items()
    for name in names
    for alias in (name, f"{name}.{GROUP}")
}

JsonObj = dict[str, Any]


class PluginError(Exception):
    """A failure to report on stderr; `code` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# --- kubectl ----------------------------------------------------------------------------------

Runner = Callable[[list[str], str | None], "subprocess.CompletedProcess[str]"]


def _subprocess_runner(args: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(args, input=stdin, capture_output=True, text=True, check=False)
    except FileNotFoundError as err:
        raise PluginError(f"cannot run {args[0]}: {err.strerror}") from err


@dataclass(frozen=True)
class Kubectl:
    """kubectl with the user's --kubeconfig/--context/-n; reads JSON, never prints."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    binary: str = field(default_factory=lambda: os.environ.get("KUBECTL_PATH") or "kubectl")
    runner: Runner = _subprocess_runner

    def command(self, *args: str) -> list[str]:
        cmd = [self.binary]
        if self.kubeconfig:
            cmd += ["--kubeconfig", self.kubeconfig]
        if self.context:
            cmd += ["--context", self.context]
        if self.namespace:
            cmd += ["--namespace", self.namespace]
        return [*cmd, *args]

    def run(self, *args: str, stdin: str | None = None) -> str:
        proc = self.runner(self.command(*args), stdin)
        if proc.returncode != 0:
            raise PluginError(
                proc.stderr.strip() or f"kubectl exited {proc.returncode}", proc.returncode
            )
        return proc.stdout

    def get(self, resource: str, name: str) -> JsonObj:
        obj: JsonObj = json.loads(self.run("get", resource, name, "--output", "json"))
        return obj

    def find(self, resource: str, name: str) -> JsonObj | None:
        """Like get, but None when the object does not exist."""
        out = self.run("get", resource, name, "--output", "json", "--ignore-not-found")
        if not out.strip():
            return None
        obj: JsonObj = json.loads(out)
        return obj

    def create(self, manifest: Mapping[str, Any]) -> JsonObj:
        obj: JsonObj = json.loads(
            self.run("create", "--filename", "-", "--output", "json", stdin=json.dumps(manifest))
        )
        return obj


# --- formatting helpers -----------------------------------------------------------------------


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


def _dump(doc: Any, output: str) -> str:
    if output == "json":
        return json.dumps(doc, indent=2) + "\n"
    return str(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False))


# --- versions ---------------------------------------------------------------------------------


def aliases_by_version(aliases: Mapping[str, Any]) -> dict[int, list[str]]:
    result: dict[int, list[str]] = {}
    for alias, number in sorted(aliases.items()):
        result.setdefault(int(number), []).append(alias)
    return result


def metric_names(model: Mapping[str, Any]) -> list[str]:
    """Every metric any version reports, sorted; the promotion metric first."""
    versions = (model.get("status") or {}).get("versions") or []
    names = sorted({name for v in versions for name in (v.get("metrics") or {})})
    promoted = ((model.get("spec") or {}).get("promotion") or {}).get("metric")
    if promoted in names:
        names.remove(promoted)
        names.insert(0, promoted)
    return names


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


def versions_document(model: Mapping[str, Any]) -> JsonObj:
    status = model.get("status") or {}
    meta = model.get("metadata") or {}
    return {
        "model": meta.get("name"),
        "namespace": meta.get("namespace"),
        "phase": status.get("phase"),
        "latestVersion": status.get("latestVersion"),
        "aliases": dict(status.get("aliases") or {}),
        "versions": sorted(status.get("versions") or [], key=lambda v: int(v["version"])),
    }


def model_warning(model: Mapping[str, Any]) -> str | None:
    """A line for stderr when the registry reports a problem (e.g. a refused declared version)."""
    status = model.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") == "False":
            name = (model.get("metadata") or {}).get("name")
            return (
                f"warning: Model {name} is not Ready: {cond.get('reason')}: {cond.get('message')}"
            )
    return None


# --- lineage ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    kind: Kind
    name: str
    version: str | None = None
    """For a Model: a version number or an alias; none means the latest version."""


def parse_target(words: Sequence[str]) -> Target:
    """`NAME` (a modelwerk Deployment), `KIND/NAME`, `KIND NAME`; a Model takes `NAME:VERSION`
    or `NAME:ALIAS`."""
    if len(words) == 2:
        text = f"{words[0]}/{words[1]}"
    elif len(words) == 1:
        text = words[0]
    else:
        raise PluginError("lineage takes one target: deployment/NAME, model/NAME:VERSION, ...", 2)
    kind: Kind = "Deployment"
    if "/" in text:
        prefix, _, text = text.partition("/")
        found = _KIND_ALIASES.get(prefix.lower())
        if found is None:
            raise PluginError(
                f"unknown kind {prefix!r}: use deployment/NAME, model/NAME[:VERSION] or "
                "trainingrun/NAME",
                2,
            )
        kind = found
    name, sep, version = text.partition(":")
    if not name:
        raise PluginError("lineage: the target has no name", 2)
    if sep and kind != "Model":
        raise PluginError(f"lineage: NAME:VERSION is for models, not {kind.lower()}s", 2)
    if sep and not version:
        raise PluginError("lineage: empty version after ':'", 2)
    return Target(kind, name, version or None)


def find_version(model: Mapping[str, Any], selector: str | int | None) -> JsonObj:
    """The version entry a number, an alias or (None) the latest version names."""
    status = model.get("status") or {}
    name = (model.get("metadata") or {}).get("name")
    versions = status.get("versions") or []
    if selector is None:
        if not versions:
            raise PluginError(f"Model {name} has no version registered yet")
        number = max(int(v["version"]) for v in versions)
    elif isinstance(selector, int) or selector.isdigit():
        number = int(selector)
    else:
        aliases = status.get("aliases") or {}
        if selector not in aliases:
            known = ", ".join(sorted(aliases)) or "none"
            raise PluginError(f"Model {name} has no alias {selector!r} (aliases: {known})")
        number = int(aliases[selector])
    for entry in versions:
        if int(entry["version"]) == number:
            return dict(entry)
    raise PluginError(f"Model {name} has no version {number}")


def version_record(
    model: Mapping[str, Any], entry: Mapping[str, Any], run: Mapping[str, Any] | None = None
) -> JsonObj:
    """One registered version with its whole lineage: what the registry recorded, plus the
    run's phase and hyperparameters when the run still exists."""
    status = model.get("status") or {}
    number = int(entry["version"])
    source = entry.get("source") or {}
    lineage = entry.get("lineage") or {}
    record: JsonObj = {
        "model": (model.get("metadata") or {}).get("name"),
        "version": number,
        "aliases": aliases_by_version(status.get("aliases") or {}).get(number, []),
        "artifact": dict(entry.get("artifact") or {}),
        "metrics": dict(entry.get("metrics") or {}),
        "registeredAt": entry.get("registeredAt"),
        "declared": bool(source.get("declared")),
        "trainingRun": source.get("trainingRun"),
        "trainingRunUid": source.get("uid"),
        "image": lineage.get("image"),
        "code": lineage.get("code"),
        "datasets": list(lineage.get("datasets") or []),
        "hyperparametersHash": lineage.get("hyperparametersHash"),
        "seed": lineage.get("seed"),
    }
    if record["trainingRun"]:
        record["run"] = _run_summary(run, source.get("uid"))
    return record


def _run_summary(run: Mapping[str, Any] | None, uid: str | None) -> JsonObj | None:
    """The run as it is now; None when deleted (or replaced by another of the same name)."""
    if run is None or (uid and (run.get("metadata") or {}).get("uid") != uid):
        return None
    spec = run.get("spec") or {}
    return {
        "phase": (run.get("status") or {}).get("phase"),
        "hyperparameters": dict(spec.get("hyperparameters") or {}),
        "rerunOf": ((run.get("metadata") or {}).get("annotations") or {}).get(RERUN_OF),
    }


def record_from_deployment(dep: Mapping[str, Any], number: int) -> JsonObj:
    """When the Model (or its entry) is gone, the Deployment's own status.lineage still says
    what it serves; metrics and artifact are then unknown."""
    lineage = (dep.get("status") or {}).get("lineage") or {}
    return {
        "model": (dep.get("spec") or {}).get("model"),
        "version": number,
        "aliases": [],
        "artifact": {},
        "metrics": {},
        "registeredAt": None,
        "declared": False,
        "trainingRun": lineage.get("trainingRun"),
        "trainingRunUid": None,
        "image": lineage.get("image"),
        "code": lineage.get("code"),
        "datasets": list(lineage.get("datasets") or []),
        "hyperparametersHash": lineage.get("hyperparametersHash"),
        "seed": lineage.get("seed"),
    }


def deployment_document(dep: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> JsonObj:
    meta = dep.get("metadata") or {}
    status = dep.get("status") or {}
    spec = dep.get("spec") or {}
    return {
        "deployment": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "model": spec.get("model"),
            "phase": status.get("phase"),
            "currentVersion": status.get("currentVersion"),
            "endpoint": status.get("endpoint"),
            "canary": status.get("canary"),
        },
        "versions": list(records),
    }


def served_versions(dep: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(role, number) of what a Deployment serves: the stable version and a live canary."""
    status = dep.get("status") or {}
    current = status.get("currentVersion")
    if current is None:
        meta = dep.get("metadata") or {}
        ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
        why = f": {ready.get('reason')}: {ready.get('message')}" if ready else ""
        raise PluginError(
            f"Deployment {meta.get('name')} serves no version yet "
            f"(phase {status.get('phase') or 'unknown'}{why})"
        )
    served = [("stable", int(current))]
    canary = status.get("canary") or {}
    number = canary.get("version")
    if canary.get("state") == "Progressing" and number is not None and int(number) != current:
        served.append(("canary", int(number)))
    return served


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


def run_record(run: Mapping[str, Any]) -> JsonObj:
    """A run whose result is not a registered version (still running, rejected, failed, or no
    Model): its own reproducibility status."""
    status = run.get("status") or {}
    spec = run.get("spec") or {}
    repro = status.get("reproducibility") or {}
    meta = run.get("metadata") or {}
    return {
        "model": spec.get("model"),
        "version": None,
        "aliases": [],
        "artifact": dict(status.get("artifact") or {}),
        "metrics": dict(status.get("metrics") or {}),
        "registeredAt": None,
        "declared": False,
        "trainingRun": meta.get("name"),
        "trainingRunUid": meta.get("uid"),
        "image": repro.get("image") or spec.get("image"),
        "code": repro.get("code") or spec.get("code"),
        "datasets": list(repro.get("datasets") or spec.get("datasets") or []),
        "hyperparametersHash": repro.get("hyperparametersHash"),
        "seed": repro.get("seed", spec.get("seed")),
        "run": _run_summary(run, None),
    }


def lineage_document(kubectl: Kubectl, target: Target) -> JsonObj:
    """The lineage of a Deployment's served versions, a Model version, or a run."""
    if target.kind == "Model":
        model = kubectl.get(MODELS, target.name)
        return {"versions": [_with_run(kubectl, model, find_version(model, target.version))]}
    if target.kind == "TrainingRun":
        return _run_lineage(kubectl, kubectl.get(TRAININGRUNS, target.name))
    return _deployment_lineage(kubectl, kubectl.get(DEPLOYMENTS, target.name))


def _run_lineage(kubectl: Kubectl, run: Mapping[str, Any]) -> JsonObj:
    meta, status = run.get("metadata") or {}, run.get("status") or {}
    head = {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "phase": status.get("phase"),
        "modelVersion": status.get("modelVersion"),
    }
    model_name = (run.get("spec") or {}).get("model")
    model = kubectl.find(MODELS, str(model_name)) if model_name else None
    if model is not None and status.get("modelVersion") is not None:
        entry = find_version(model, int(status["modelVersion"]))
        return {"trainingRun": head, "versions": [version_record(model, entry, run)]}
    return {"trainingRun": head, "versions": [run_record(run)]}


def _deployment_lineage(kubectl: Kubectl, dep: Mapping[str, Any]) -> JsonObj:
    served = served_versions(dep)
    model_name = str((dep.get("spec") or {}).get("model"))
    model = kubectl.find(MODELS, model_name)
    records = []
    for role, number in served:
        try:
            if model is None:
                raise PluginError(f"Model {model_name} not found")
            record = _with_run(kubectl, model, find_version(model, number))
        except PluginError:
            if role != "stable":
                continue
            record = record_from_deployment(dep, number)
        records.append({"role": role, **record})
    return deployment_document(dep, records)


def _with_run(kubectl: Kubectl, model: Mapping[str, Any], entry: Mapping[str, Any]) -> JsonObj:
    run_name = (entry.get("source") or {}).get("trainingRun")
    run = kubectl.find(TRAININGRUNS, str(run_name)) if run_name else None
    return version_record(model, entry, run)


# --- rerun ------------------------------------------------------------------------------------


def generate_name(old: Mapping[str, Any]) -> str:
    """The old run's generateName if it had one (iris- stays iris-), else `<old name>-`."""
    meta = old.get("metadata") or {}
    base = meta.get("generateName") or f"{meta.get('name')}-"
    return str(base)[:GENERATE_NAME_MAX]


def rerun_manifest(old: Mapping[str, Any], name: str | None = None) -> JsonObj:
    """A new TrainingRun with the old one's spec, annotated with the run it repeats.

    Labels and annotations are not copied: a GitOps tool's tracking label would make it prune
    the rerun, and the operator's retrain annotations belong to the run they started.
    `suspend` is dropped: a rerun is meant to run."""
    meta = old.get("metadata") or {}
    spec = copy.deepcopy(dict(old.get("spec") or {}))
    spec.pop("suspend", None)
    new_meta: JsonObj = {"annotations": {RERUN_OF: str(meta.get("name"))}}
    if name:
        new_meta["name"] = name
    else:
        new_meta["generateName"] = generate_name(old)
    if meta.get("namespace"):
        new_meta["namespace"] = meta["namespace"]
    return {"apiVersion": API_VERSION, "kind": "TrainingRun", "metadata": new_meta, "spec": spec}


# --- command line -----------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("-n", "--namespace", default=default, help="namespace (default: context's)")
    parser.add_argument(
        "--kubeconfig", default=default, help="kubeconfig file (default: kubectl's)"
    )
    parser.add_argument("--context", default=default, help="kubeconfig context to use")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl modelwerk",
        description="Model registry versions, lineage and reruns for modelwerk.io resources.",
    )
    _common(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    versions = sub.add_parser("versions", help="list a Model's registered versions")
    versions.add_argument("model", metavar="MODEL")
    versions.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    _common(versions, suppress=True)

    lineage = sub.add_parser(
        "lineage",
        help="what produced a served model: version, run, image, code, data, parameters",
        description="TARGET: [deployment/]NAME (a modelwerk Deployment), "
        "model/NAME[:VERSION|:ALIAS] (default: the latest version) or trainingrun/NAME.",
    )
    lineage.add_argument("target", nargs="+", metavar="TARGET")
    lineage.add_argument("-o", "--output", choices=("text", "json", "yaml"), default="text")
    _common(lineage, suppress=True)

    rerun = sub.add_parser("rerun", help="create a new TrainingRun from an old run's spec")
    rerun.add_argument("run", metavar="RUN")
    rerun.add_argument("--name", help="name of the new run (default: generated from RUN)")
    rerun.add_argument(
        "--dry-run", action="store_true", help="print the new run instead of creating it"
    )
    rerun.add_argument("-o", "--output", choices=("name", "json", "yaml"), default=None)
    _common(rerun, suppress=True)
    from modelwerk import plugin_card, plugin_runs  # they import this module

    plugin_runs.add_parsers(sub, _common)
    plugin_card.add_parser(sub, _common)
    return parser


def _cmd_versions(kubectl: Kubectl, args: argparse.Namespace) -> str:
    model = kubectl.get(MODELS, args.model)
    if args.output != "table":
        return _dump(versions_document(model), args.output)
    warning = model_warning(model)
    if warning:
        print(warning, file=sys.stderr)
    if not (model.get("status") or {}).get("versions"):
        meta = model.get("metadata") or {}
        print(
            f"No versions registered for Model {meta.get('name')} in namespace "
            f"{meta.get('namespace')}.",
            file=sys.stderr,
        )
        return ""
    return versions_table(model)


def _cmd_lineage(kubectl: Kubectl, args: argparse.Namespace) -> str:
    doc = lineage_document(kubectl, parse_target(args.target))
    if args.output == "text":
        return render_lineage(doc)
    return _dump(doc, args.output)


def _cmd_rerun(kubectl: Kubectl, args: argparse.Namespace) -> str:
    old = kubectl.get(TRAININGRUNS, args.run)
    manifest = rerun_manifest(old, args.name)
    if args.dry_run:
        return _dump(manifest, "json" if args.output == "json" else "yaml")
    created = kubectl.create(manifest)
    if args.output in ("json", "yaml"):
        return _dump(created, args.output)
    name = created["metadata"]["name"]
    return f"trainingrun.{GROUP}/{name}\n" if args.output == "name" else f"{name}\n"


COMMANDS: dict[str, Callable[[Kubectl, argparse.Namespace], str]] = {
    "versions": _cmd_versions,
    "lineage": _cmd_lineage,
    "rerun": _cmd_rerun,
}


def main(argv: Sequence[str] | None = None, runner: Runner | None = None) -> int:
    """The `kubectl-modelwerk` console script; `runner` replaces subprocess in tests."""
    args = build_parser().parse_args(argv)
    kubectl = Kubectl(kubeconfig=args.kubeconfig, context=args.context, namespace=args.namespace)
    if runner is not None:
        kubectl = dataclasses.replace(kubectl, runner=runner)
    from modelwerk import plugin_card, plugin_runs

    commands = {**COMMANDS, **plugin_runs.COMMANDS, **plugin_card.COMMANDS}
    try:
        sys.stdout.write(commands[args.command](kubectl, args))
    except PluginError as err:
        message = err.message
        if not message.lower().startswith("error"):
            message = f"error: {message}"
        print(message, file=sys.stderr)
        return err.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
