"""Trimming the heap: once after each stretch of work, when every queue has been idle for a
moment; never while a queue is busy, and not again while nothing was done."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from modelwerk import memory


@dataclass
class FakeQueue:
    processed: int = 0
    busy: bool = False

    def idle(self) -> bool:
        return not self.busy


def test_trim_is_available_on_glibc() -> None:
    assert memory.trim() is (memory._TRIM is not None)


async def test_trims_once_per_stretch_of_work(monkeypatch: pytest.MonkeyPatch) -> None:
    trims: list[int] = []
    monkeypatch.setattr(memory, "_TRIM", lambda pad: trims.append(pad) or 1)
    a, b = FakeQueue(processed=5), FakeQueue(busy=True)
    task = asyncio.create_task(memory.trim_when_idle([a, b], settle=0.01))
    try:
        await asyncio.sleep(0.05)
        assert trims == []  # b is busy
        b.busy = False
        await asyncio.sleep(0.05)
        assert trims == [0]
        await asyncio.sleep(0.05)
        assert trims == [0]  # nothing done since
        a.processed += 1
        await asyncio.sleep(0.05)
        assert trims == [0, 0]
    finally:
        task.cancel()
