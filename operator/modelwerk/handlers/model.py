from __future__ import annotations

from typing import Any

import kopf

from modelwerk import constants
from modelwerk.handlers.common import observe
from modelwerk.wiring import dependents_of_model


@kopf.on.event(constants.GROUP, constants.VERSION, constants.MODEL_PLURAL)
def model_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    key = observe(memo.runtime, "Model", event, body)
    memo.runtime.enqueue("Model", *key)
    # Runs waiting for this Model (ModelNotFound), or gated on one of its aliases, look again.
    # and Deployments follow their version or alias.
    for kind in ("TrainingRun", "Deployment"):
        for dependent in dependents_of_model(memo.runtime, kind, key):
            memo.runtime.enqueue(kind, *dependent)
