"""One kopf watch-event handler per cached kind, from the table of kinds (kinds.py) and the
reconcilers' declared watches (wiring.ROUTES): each updates the cache and queues keys. (The
caches are filled once before, at start-up: wiring.sync_caches.)"""

from __future__ import annotations

from typing import Any

import kopf

from modelwerk import kinds, wiring
from modelwerk.kinds import Kind


def _handler(kind: Kind) -> Any:
    # A coroutine although it never awaits: kopf runs plain functions in a thread pool, a
    # thread hop per event, and every thread that allocates gets a malloc arena of its own
    # that keeps its freed memory (bench/results/memory.md).
    async def on_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        wiring.observe(memo.manager, kind, event, body)

    return on_event


for _kind in kinds.CACHED:
    if _kind not in wiring.ROUTES:
        continue  # cached for lookups only: nobody is woken by it
    if not kinds.enabled(_kind):
        continue  # an engine turned off: not watched (nor granted by the chart)
    assert _kind.cache is not None
    _label = _kind.cache.owner_label
    kopf.on.event(
        _kind.group,
        _kind.version,
        _kind.plural,
        # Children of someone else's making (no owner label) are none of ours; settings.py also
        # asks the apiserver to filter them.
        labels={_label: kopf.PRESENT} if _label else None,
        id=f"{_kind.plural}.{_kind.group or 'core'}",
    )(_handler(_kind))
