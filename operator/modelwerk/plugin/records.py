"""What the plugin reports, as documents (the `-o json|yaml` forms): a Model's versions, the
lineage of a served version, a Model version or a run, and the manifest of a rerun. Version
numbers and aliases resolve through the registry's own lookup (registry.lookup)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from modelwerk import registry
from modelwerk.api import KINDS
from modelwerk.constants import API_VERSION, GROUP
from modelwerk.plugin.client import (
    DEPLOYMENTS,
    MODELS,
    TRAININGRUNS,
    JsonObj,
    Kubectl,
    PluginError,
)

RERUN_OF = f"{GROUP}/rerun-of"
# metadata.generateName gets 5 random characters; run names must fit a label value (63).
GENERATE_NAME_MAX = 63 - 5

Kind = Literal["Deployment", "Model", "TrainingRun"]
# kubectl's names for the kinds (singular, plural, short names, each also with the group),
# from the CRDs' own.
_KIND_ALIASES: dict[str, Kind] = {
    alias: cls.KIND.kind  # type: ignore[misc]
    for cls in KINDS
    for name in (cls.KIND.singular, cls.KIND.plural, *cls.KIND.short_names)
    for alias in (name, f"{name}.{GROUP}")
}


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


def gang(workers: Any, attempt: Any, engine: Any = None) -> JsonObj:
    """Pods that trained together (1: a single-pod run) and, for a gang, its attempt and what
    ran it (`IndexedJob` or `JobSet`; None when the lineage predates its recording)."""
    if not workers or int(workers) <= 1:
        return {"workers": 1, "attempt": None, "engine": None}
    return {"workers": int(workers), "attempt": int(attempt or 0), "engine": engine}


def gang_of(lineage: Mapping[str, Any], workers: Mapping[str, Any] | None = None) -> JsonObj:
    """The gang from a lineage (status.reproducibility, a version's, a Deployment's), else from
    a run's status.workers."""
    now = workers or {}
    return gang(
        lineage.get("workers") or now.get("replicas"),
        lineage.get("attempt", now.get("attempt")),
        lineage.get("engine") or now.get("engine"),
    )


def gang_text(record: Mapping[str, Any]) -> str | None:
    """`4 on JobSet, attempt 1`; None for a single-pod run."""
    workers = int(record.get("workers") or 1)
    if workers <= 1:
        return None
    engine = f" on {record['engine']}" if record.get("engine") else ""
    return f"{workers}{engine}, attempt {int(record.get('attempt') or 0)}"


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
    name = str((model.get("metadata") or {}).get("name"))
    versions = status.get("versions") or []
    if selector is None:
        if not versions:
            raise PluginError(f"Model {name} has no version registered yet")
        selector = max(int(v["version"]) for v in versions)
    try:
        if isinstance(selector, int) or selector.isdigit():
            return dict(registry.lookup(status, name, version=int(selector)))
        return dict(registry.lookup(status, name, alias=selector))
    except registry.Unresolvable as err:
        message = err.message
        if err.reason == "AliasNotSet":
            message += f" (aliases: {', '.join(sorted(status.get('aliases') or {})) or 'none'})"
        raise PluginError(message) from None


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
        **gang_of(lineage),
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
        **gang_of(lineage),
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
        **gang_of(repro, status.get("workers")),
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
