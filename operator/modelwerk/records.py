"""kopf's per-object records, not kept.

kopf keeps a record (ResourceMemory) for every object it has seen, until the object is deleted:
the state of its daemons and timers, of its index handlers, of its error backoff, a copy of the
operator's memo and the patch it still has to apply. The operator uses none of it: its handlers
are plain watch-event handlers (no daemons, timers, indexes, kopf patches; they do not raise),
and the caches (store.py) are its memory of the objects. At 10,000 runs with their Jobs and
pods the records are ~30,000 objects of ~1 KB (bench/results/memory.md), so each event gets a
fresh record that is dropped when the event is handled.
"""

from __future__ import annotations

from typing import Any

from kopf._core.reactor import inventory


class Forgetful(inventory.ResourceMemories):
    """ResourceMemories whose every record is ephemeral: built per event, never stored."""

    async def recall(
        self,
        raw_body: Any,
        *,
        memobase: Any = None,
        noticed_by_listing: bool = False,
        ephemeral: bool = False,
    ) -> inventory.ResourceMemory:
        return await super().recall(
            raw_body, memobase=memobase, noticed_by_listing=noticed_by_listing, ephemeral=True
        )
