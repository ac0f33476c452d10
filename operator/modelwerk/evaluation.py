"""A finished run's evaluation gate and its lineage, as pure functions (the TrainingRun
reconciler writes what they return)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelwerk import registry
from modelwerk.api.trainingrun import TrainingRun
from modelwerk.builders.job import hyperparameters_hash


def lineage(
    run: TrainingRun, image_id: str | None, attempt: int | None = None, engine: str | None = None
) -> dict[str, Any]:
    """What the run ran (status.reproducibility, then the registered version's lineage); for a
    distributed run also its gang: workers, the attempt and the engine (`IndexedJob`,
    `JobSet`) that ran it, as the reconciler chose it (reconcilers/jobset.engine)."""
    result: dict[str, Any] = {
        "image": image_id or run.spec.image,
        "hyperparametersHash": hyperparameters_hash(dict(run.spec.hyperparameters)),
        "datasets": [d.model_dump(mode="json", exclude_none=True) for d in run.spec.datasets],
    }
    if run.spec.code is not None:
        result["code"] = run.spec.code.model_dump(mode="json", exclude_none=True)
    if run.spec.seed is not None:
        result["seed"] = run.spec.seed
    if run.spec.workers is not None and run.spec.distributed():
        result["workers"] = run.spec.workers.replicas
        result["attempt"] = attempt or 0
        if engine:
            result["engine"] = engine
    return result


def evaluate(
    run: TrainingRun, metrics: Mapping[str, float], model_status: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The evaluation gate's verdict: threshold and, with `mustBeat`, the alias's version."""
    gate = run.spec.evaluation
    if gate is None:
        return {"metric": "", "passed": True, "message": "no evaluation gate"}
    result: dict[str, Any] = {"metric": gate.metric, "direction": str(gate.direction)}
    if gate.threshold is not None:
        result["threshold"] = gate.threshold
    value = metrics.get(gate.metric)
    if value is None:
        reported = ", ".join(sorted(metrics)) or "none"
        return {
            **result,
            "passed": False,
            "message": f"metric {gate.metric!r} was not reported (reported: {reported})",
        }
    result["value"] = value
    direction = gate.direction
    if gate.threshold is not None and (registry.better(gate.threshold, value, direction)):
        word = ">=" if str(direction) == "max" else "<="
        return {
            **result,
            "passed": False,
            "message": f"{gate.metric}={value:g} does not meet the threshold "
            f"{word} {gate.threshold:g}",
        }
    if gate.must_beat:
        status = model_status or {}
        held = registry.metric_of_alias(
            status.get("versions") or [], status.get("aliases") or {}, gate.must_beat, gate.metric
        )
        if held is not None and held[1] is not None:
            number, other = held[0], held[1]
            result["baselineValue"] = other
            if not registry.better(value, other, direction):
                return {
                    **result,
                    "passed": False,
                    "message": f"{gate.metric}={value:g} does not beat {gate.must_beat} "
                    f"(version {number}: {other:g})",
                }
            return {
                **result,
                "passed": True,
                "message": f"{gate.metric}={value:g} beats {gate.must_beat} "
                f"(version {number}: {other:g})",
            }
    return {**result, "passed": True, "message": f"{gate.metric}={value:g} passes"}
