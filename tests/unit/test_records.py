"""kopf's per-object records are not kept: each event gets a fresh one with the operator's memo,
and nothing stays behind once the event is handled."""

from __future__ import annotations

import kopf

from modelwerk.records import Forgetful


async def test_records_are_built_per_event_and_not_kept() -> None:
    memories = Forgetful()
    memo = kopf.Memo(manager="the manager")
    body = {"metadata": {"uid": "u1", "name": "r1", "namespace": "ns"}}
    first = await memories.recall(body, memobase=memo)
    second = await memories.recall(body, memobase=memo)
    assert first is not second
    assert first.memo["manager"] == "the manager"
    assert list(memories.iter_all_memories()) == []
    await memories.forget(body)  # a DELETED event: nothing to forget, and no error
