"""A run's data validation as the operator sees it: the `validate` init container's report,
read from the pods' status, turned into `status.validation` and the Validated condition.

Pure functions of the run and its pods: the TrainingRun reconciler calls them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from modelwerk.api.trainingrun import TrainingRun
from modelwerk.api.validation import DataValidation
from modelwerk.builders.validation import CONTAINER_NAME
from modelwerk.validate import checks, wire

REASON_FAILED = "DataValidationFailed"
REASON_PASSED = "Passed"
ALLOWED_SHOWN = 8


def _validate_status(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    for status in (pod.get("status") or {}).get("initContainerStatuses") or []:
        if status.get("name") == CONTAINER_NAME:
            return dict(status)
    return {}


def init_waiting(pod: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The validate container's waiting state (e.g. ImagePullBackOff): while it waits, the
    training container only says PodInitializing."""
    if pod is None:
        return None
    waiting = (_validate_status(pod).get("state") or {}).get("waiting")
    return dict(waiting) if waiting else None


def init_image_id(pods: Sequence[Mapping[str, Any]]) -> str | None:
    """The image digest the validate container ran (the training image): what a run rejected
    before training ran at all, from the newest pod that reports one."""
    ordered = sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
    for pod in reversed(ordered):
        image_id = _validate_status(pod).get("imageID")
        if image_id:
            return str(image_id).split("://", 1)[-1]
    return None


def finished_at(pods: Sequence[Mapping[str, Any]]) -> str | None:
    """When the newest pod's validator ended: a run refused by its data ends then, before the
    Job controller has marked the Job failed (its Failed time would otherwise appear later and
    change a finished run's record)."""
    ordered = sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "", reverse=True)
    for pod in ordered:
        term = (_validate_status(pod).get("state") or {}).get("terminated") or {}
        if term.get("finishedAt"):
            return str(term["finishedAt"])
    return None


def _report(pods: Sequence[Mapping[str, Any]]) -> wire.ValidationReport | None:
    """The newest pod's validation report; None while no validator has finished with one."""
    ordered = sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "", reverse=True)
    for pod in ordered:
        term = (_validate_status(pod).get("state") or {}).get("terminated") or {}
        if not term:
            continue
        try:
            return wire.parse(term.get("message"))
        except wire.WireError:
            # No report (the image lacks modelwerk, the container was killed): the pod's
            # failure is an ordinary one, with the Job's retries and reasons.
            continue
    return None


def expected_texts(spec: DataValidation, run: TrainingRun) -> dict[str, str]:
    """Check name -> what the spec asks, for the status next to what was observed."""
    digests = {d.name: d.digest for d in run.spec.datasets}
    texts: dict[str, str] = {}
    for dataset in spec.datasets:
        name = dataset.name
        texts[f"{name}/read"] = "readable"
        if digests.get(name):
            texts[f"{name}/digest"] = str(digests[name])
        if dataset.rows is not None:
            low, high = dataset.rows.min, dataset.rows.max
            texts[f"{name}/rows"] = checks.bounds_text(low, high)
        for column in dataset.columns:
            prefix = f"{name}/{column.name}"
            texts[f"{prefix}/present"] = "present" if column.required else "optional"
            if column.type is not None:
                texts[f"{prefix}/type"] = str(column.type)
            if column.min is not None:
                texts[f"{prefix}/min"] = checks.bounds_text(column.min, None)
            if column.max is not None:
                texts[f"{prefix}/max"] = checks.bounds_text(None, column.max)
            if column.allowed is not None:
                shown = ", ".join(column.allowed[:ALLOWED_SHOWN])
                more = ", ..." if len(column.allowed) > ALLOWED_SHOWN else ""
                texts[f"{prefix}/allowed"] = f"one of {shown}{more}"
            if column.max_null_fraction is not None:
                texts[f"{prefix}/nulls"] = checks.bounds_text(None, column.max_null_fraction)
    return texts


def result(run: TrainingRun, report: wire.ValidationReport) -> dict[str, Any]:
    """status.validation from a report."""
    spec = run.spec.validation or DataValidation(datasets=[])
    expected = expected_texts(spec, run)
    found = report.check_list()
    listed = []
    for check in found:
        entry: dict[str, Any] = {"name": check.name, "passed": check.passed}
        if check.observed:
            entry["observed"] = check.observed
        if check.name in expected:
            entry["expected"] = expected[check.name]
        listed.append(entry)
    if report.passed:
        count = len(found) + report.omitted
        names = ", ".join(d.name for d in report.datasets)
        message = f"{count} checks passed on {names}"
    else:
        message = f"data validation failed: {checks.first_failures(found)}"
    status: dict[str, Any] = {
        "passed": report.passed,
        "message": message,
        "datasets": [d.model_dump(exclude_none=True) for d in report.datasets],
        "checks": listed,
    }
    if report.omitted:
        status["omitted"] = report.omitted
    return status


def observe(
    run: TrainingRun, pods: Sequence[Mapping[str, Any]], old: Mapping[str, Any]
) -> dict[str, Any] | None:
    """status.validation: from the pods' reports, else as recorded (pods are garbage-collected;
    the verdict stands)."""
    if run.spec.validation is None:
        return None
    report = _report(pods)
    if report is not None:
        return result(run, report)
    recorded = old.get("validation")
    return dict(recorded) if recorded else None


def baseline(pods: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The baseline the validator computed (status.baseline's shape), for a run whose training
    reported none."""
    report = _report(pods)
    if report is None or not report.baseline:
        return None
    return {"features": dict(report.baseline), "featureOrder": list(report.baseline)}
