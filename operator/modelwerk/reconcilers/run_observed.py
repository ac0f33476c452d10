"""What the cache says about a TrainingRun's world (its Model, Job and pods), read once per
reconcile and handed to each step of it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelwerk import kinds
from modelwerk.api.model import Model
from modelwerk.api.trainingrun import TrainingRun
from modelwerk.builders.job import job_name
from modelwerk.manager import Manager
from modelwerk.store import ObjectKey


@dataclass
class Observed:
    """What the cache says about a run's world."""

    run: TrainingRun
    body: Mapping[str, Any]
    model: Model | None
    model_body: Mapping[str, Any] | None
    job: Mapping[str, Any] | None
    pods: Sequence[Mapping[str, Any]]


def observe(mgr: Manager, key: ObjectKey, body: Mapping[str, Any]) -> Observed:
    run = TrainingRun.from_body(body)
    model_body = None
    if run.spec.model:
        model_body = mgr.store(kinds.MODEL).get((key[0], run.spec.model))
    return Observed(
        run=run,
        body=body,
        model=Model.from_body(model_body) if model_body is not None else None,
        model_body=model_body,
        job=mgr.store(kinds.JOB).get((key[0], job_name(run))),
        pods=mgr.store(kinds.POD).by_index(kinds.BY_OWNER, key),
    )
