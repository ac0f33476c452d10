"""A TrainingRun whose Job completed: the report read off the pod that completed it (waited
for a little while the pod is on its way to the cache), the evaluation gate's verdict (taken
once), and the version registered on the Model (once: found again by the run's UID)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelwerk import registry
from modelwerk.evaluation import evaluate
from modelwerk.jobstate import concluded, seconds_since, termination_message
from modelwerk.manager import Manager
from modelwerk.reconcilers import gang, validation
from modelwerk.reconcilers.common import StatusBuilder
from modelwerk.reconcilers.registration import register_version
from modelwerk.reconcilers.run_observed import Observed
from modelwerk.reconcilers.run_status import write
from modelwerk.report import REASON_MISSING, ReportError, parse_report
from modelwerk.status import get_condition

# A completed Job whose succeeded pod is not (yet) in the cache: how long to wait for it before
# the report counts as missing, and how often to look again meanwhile.
REPORT_WAIT_SECONDS = 30.0
REPORT_RETRY_SECONDS = 2.0


async def finished_run(mgr: Manager, obs: Observed, sb: StatusBuilder) -> float | None:
    run, body = obs.run, obs.body
    if concluded(sb.old):
        # The report was read, the verdict taken and the version registered once; what changes
        # later (the pods garbage-collected, the Model deleted, an alias moved) does not reopen
        # the run.
        return await write(mgr, body, sb, str(sb.old["phase"]))
    pod = gang.report_pod(run, obs.pods)
    if pod is None:
        waited = seconds_since(sb.status.get("completionTime"), mgr.now())
        if waited is not None and waited < REPORT_WAIT_SECONDS:
            # The Job's watch event can overtake its pod's: the pod that completed the Job is
            # on its way to the cache. Judging now would fail a good run as ReportMissing.
            await write(mgr, body, sb, str(sb.old.get("phase") or "Running"))
            return REPORT_RETRY_SECONDS
    message = termination_message(pod)
    try:
        if pod is None:
            raise ReportError(
                REASON_MISSING,
                f"the Job completed {REPORT_WAIT_SECONDS:g}s ago or more, but its succeeded pod "
                "is gone: the report cannot be read",
            )
        report = parse_report(message)
    except ReportError as err:
        sb.condition("Evaluated", False, err.reason, err.message)
        sb.condition("Failed", True, err.reason, err.message)
        return await write(mgr, body, sb, "Failed")
    sb.status["metrics"] = dict(report.metrics)
    artifact = report.artifact.model_dump(mode="json", exclude_none=True)
    sb.status["artifact"] = artifact
    if report.baseline is not None:
        sb.status["baseline"] = {
            **report.baseline.model_dump(mode="json", exclude_none=True),
            "featureOrder": report.feature_order,
        }
    elif (validated := validation.baseline(obs.pods)) is not None:
        sb.status["baseline"] = validated  # training reported none: the data's statistics

    # The Model's status as its spec makes it now: declared versions and aliases count even
    # before the Model's own reconcile has written them (the gate reads the alias, registration
    # looks up the run's UID).
    model_status = registry.desired_status(obs.model_body, sb.at) if obs.model_body else None
    already = registry.find_by_uid(
        (model_status or {}).get("versions") or [], run.metadata.uid or ""
    )
    if already is None:
        verdict = evaluate(run, report.metrics, model_status)
        if "evaluation" in sb.old and get_condition(sb.old.get("conditions") or [], "Evaluated"):
            # The verdict is taken once: a later promotion of `mustBeat` must not flip it.
            verdict = sb.old["evaluation"]
    else:
        verdict = sb.old.get("evaluation") or evaluate(run, report.metrics, None)
    sb.status["evaluation"] = verdict
    if not verdict.get("passed"):
        sb.condition(
            "Evaluated",
            False,
            "BelowThreshold" if "threshold" in str(verdict.get("message")) else "GateFailed",
            str(verdict.get("message")),
        )
        sb.condition("Registered", False, "Rejected", "the evaluation gate refused the result")
        return await write(mgr, body, sb, "Rejected")
    sb.condition("Evaluated", True, "Passed", str(verdict.get("message")))

    if not run.spec.model:
        sb.condition("Registered", False, "NoModel", "spec.model is empty: nothing to register")
        return await write(mgr, body, sb, "Succeeded")
    if obs.model_body is None:
        sb.condition("Registered", False, "ModelNotFound", f"Model {run.spec.model!r} is gone")
        return await write(mgr, body, sb, "Failed")

    version = already
    if version is None:
        entry = {
            "artifact": artifact,
            "metrics": dict(report.metrics),
            "source": {"trainingRun": run.metadata.name, "uid": run.metadata.uid},
            "lineage": sb.status["reproducibility"],
            "registeredAt": mgr.timestamp(),
            "gate": gate_record(verdict, sb.status.get("validation")),
        }
        if sb.status.get("baseline"):
            entry["baseline"] = sb.status["baseline"]
        version = await register_version(mgr, obs.model_body, entry)
    sb.status["modelVersion"] = int(version["version"])
    sb.condition(
        "Registered", True, "Registered", f"version {version['version']} of Model {run.spec.model}"
    )
    return await write(mgr, body, sb, "Succeeded")


def gate_record(verdict: Mapping[str, Any], checked: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a protected alias's admission policy reads off a version (status.versions[].gate):
    the evidence is copied from the run when it registers, by the operator, the only writer of
    Model status the policy admits."""
    gate: dict[str, Any] = {"metric": str(verdict.get("metric") or ""), "passed": True}
    if checked is not None:
        gate["dataValidated"] = bool(checked.get("passed"))
    return gate
