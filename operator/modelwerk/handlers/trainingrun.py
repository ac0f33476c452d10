from __future__ import annotations

from typing import Any

import kopf

from modelwerk import constants
from modelwerk.handlers.common import observe
from modelwerk.wiring import run_of_child


@kopf.on.event(constants.GROUP, constants.VERSION, constants.TRAININGRUN_PLURAL)
def trainingrun_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    key = observe(memo.runtime, "TrainingRun", event, body)
    memo.runtime.enqueue("TrainingRun", *key)


@kopf.on.event("batch", "v1", "jobs", labels={constants.LABEL_TRAININGRUN: kopf.PRESENT})
def job_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    observe(memo.runtime, "Job", event, body)
    if (run := run_of_child(body)) is not None:
        memo.runtime.enqueue("TrainingRun", *run)


@kopf.on.event("", "v1", "pods", labels={constants.LABEL_TRAININGRUN: kopf.PRESENT})
def pod_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    observe(memo.runtime, "Pod", event, body)
    if (run := run_of_child(body)) is not None:
        memo.runtime.enqueue("TrainingRun", *run)
