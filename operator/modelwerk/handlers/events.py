"""Two kopf handlers per cached kind, from the table of kinds (kinds.py) and the reconcilers'
declared watches (wiring.ROUTES): an index handler that puts the object into its cache, and an
event handler that queues the keys it concerns.

Why an index handler: kopf runs no event handler of any kind until every kind with an index
handler is listed and each listed object indexed. So the caches are complete before the first
key is queued, as controller-runtime's WaitForCacheSync makes them: after a restart no
reconcile sees a run without its Job or pods, or a Deployment without its children, and
rewrites what it would find a moment later (a Job created again and refused with 409, a status
and its Warning Event written twice)."""

from __future__ import annotations

from typing import Any

import kopf

from modelwerk import kinds, wiring
from modelwerk.kinds import Kind


def _indexer(kind: Kind) -> Any:
    def remember(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        wiring.remember(memo.manager, kind, body)
        # None: kopf keeps no index of its own; the cache is the index.

    return remember


def _handler(kind: Kind) -> Any:
    def on_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        wiring.route(memo.manager, kind, event, body)

    return on_event


for _kind in kinds.CACHED:
    if _kind not in wiring.ROUTES:
        continue  # cached for lookups only: nobody is woken by it
    assert _kind.cache is not None
    _label = _kind.cache.owner_label
    # Children of someone else's making (no owner label) are none of ours; settings.py also
    # asks the apiserver to filter them.
    _labels = {_label: kopf.PRESENT} if _label else None
    _id = f"{_kind.plural}.{_kind.group or 'core'}"
    kopf.index(_kind.group, _kind.version, _kind.plural, labels=_labels, id=f"cache-{_id}")(
        _indexer(_kind)
    )
    kopf.on.event(_kind.group, _kind.version, _kind.plural, labels=_labels, id=_id)(_handler(_kind))
