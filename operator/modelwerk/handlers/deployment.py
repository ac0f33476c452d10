from __future__ import annotations

from typing import Any

import kopf

from modelwerk import constants
from modelwerk.handlers.common import observe
from modelwerk.wiring import CHILDREN, deployment_of_child

CHILD = {constants.LABEL_DEPLOYMENT: kopf.PRESENT}


@kopf.on.event(constants.GROUP, constants.VERSION, constants.DEPLOYMENT_PLURAL)
def deployment_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    key = observe(memo.runtime, "Deployment", event, body)
    memo.runtime.enqueue("Deployment", *key)


def _child_handler(store: str) -> Any:
    def child_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        observe(memo.runtime, store, event, body)
        if (owner := deployment_of_child(body)) is not None:
            memo.runtime.enqueue("Deployment", *owner)

    return child_event


for _group, _version, _plural, _store in CHILDREN:
    kopf.on.event(_group, _version, _plural, labels=CHILD, id=f"{_plural}.{_group or 'core'}")(
        _child_handler(_store)
    )
