"""Giving freed memory back to the system. glibc's malloc keeps what Python frees in its
arenas; after a burst (the initial listing of thousands of objects above all) the process
stays at its peak RSS though most of it is free. `malloc_trim(0)` returns the free pages, so
the operator trims once its queues have been idle for a moment after work."""

from __future__ import annotations

import asyncio
import ctypes
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

log = logging.getLogger(__name__)


class Queue(Protocol):
    processed: int

    def idle(self) -> bool: ...


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None  # not glibc (musl, macOS): nothing to trim
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


_TRIM = _malloc_trim()


def trim() -> bool:
    """Returns free heap pages to the system; False where there is no glibc."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


async def trim_when_idle(queues: Sequence[Queue], *, settle: float = 3.0) -> None:
    """Trims whenever every queue has stayed idle for `settle` seconds after some work."""
    trimmed_at = -1
    while True:
        await asyncio.sleep(settle)
        done = sum(q.processed for q in queues)
        if done != trimmed_at and all(q.idle() for q in queues):
            trimmed_at = done
            await asyncio.sleep(0)
            if trim():
                log.debug("returned free memory to the system after %d reconciles", done)
