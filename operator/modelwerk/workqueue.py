"""A reconcile queue per kind, in the manner of controller-runtime's workqueue.

Watch events only say "this key may need work"; the queue deduplicates them, never runs two
reconciles of one key at once, retries failures with exponential backoff (no hot loops) and
honours "look again in N seconds" for conditions that can only be observed by waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable

from modelwerk import metrics

Key = Hashable
Reconcile = Callable[[Key], Awaitable[float | None]]

log = logging.getLogger(__name__)

MIN_BACKOFF = 0.5
MAX_BACKOFF = 300.0


class WorkQueue:
    def __init__(
        self,
        kind: str,
        reconcile: Reconcile,
        *,
        workers: int = 4,
        expected: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.kind = kind
        # Failures of the world (API errors, timeouts) get one log line; anything else is a bug
        # and gets its traceback.
        self._expected = expected
        self._reconcile = reconcile
        self._workers = workers
        self._ready: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: dict[Key, float] = {}  # key -> when it was queued
        self._processing: dict[Key, float] = {}  # key -> when its reconcile started
        self._dirty: set[Key] = set()
        self._timers: dict[Key, tuple[float, asyncio.TimerHandle]] = {}
        self._failures: dict[Key, int] = {}
        # key -> loop time before which it must not run: the server's Retry-After, which a
        # watch event arriving meanwhile does not cut short (unlike an ordinary backoff).
        self._hold: dict[Key, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self.processed = 0
        """Reconciles run so far (memory.trim_when_idle trims after work)."""

    def add(self, key: Key, *, after: float = 0.0) -> None:
        hold = self._hold.get(key)
        if hold is not None:
            remaining = hold - asyncio.get_running_loop().time()
            if remaining > 0:
                after = max(after, remaining)
            else:
                del self._hold[key]
        if after > 0:
            self._add_later(key, after)
            return
        self._idle.clear()
        if key in self._processing:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued[key] = time.monotonic()
            self._ready.put_nowait(key)
            metrics.QUEUE_DEPTH.labels(self.kind).set(len(self._queued))

    def _add_later(self, key: Key, after: float) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + after
        current = self._timers.get(key)
        if current is not None:
            if current[0] <= due:
                return
            current[1].cancel()
        self._timers[key] = (due, loop.call_at(due, self._fire, key))

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(self._workers)]

    async def stop(self) -> None:
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def idle(self) -> bool:
        return self._idle.is_set()

    async def wait_idle(self) -> None:
        """Until nothing is queued or being processed (delayed requeues do not count)."""
        await self._idle.wait()

    def oldest_pending_seconds(self) -> float:
        """How long the oldest unfinished key has waited, queued or in a reconcile: grows
        without bound when reconciles hang or cannot keep up."""
        since = [*self._queued.values(), *self._processing.values()]
        return time.monotonic() - min(since) if since else 0.0

    async def _worker(self) -> None:
        while True:
            key = await self._ready.get()
            self._queued.pop(key, None)
            metrics.QUEUE_DEPTH.labels(self.kind).set(len(self._queued))
            self._processing[key] = time.monotonic()
            try:
                await self._process(key)
            finally:
                self._processing.pop(key, None)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.add(key)
                if not self._queued and not self._processing:
                    self._idle.set()

    async def _process(self, key: Key) -> None:
        started = time.monotonic()
        self.processed += 1
        try:
            requeue_after = await self._reconcile(key)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            delay = min(MAX_BACKOFF, MIN_BACKOFF * 2 ** (failures - 1))
            # An error that says when to come back (k8s.ApiError from a 429 with Retry-After)
            # is not retried sooner, however few failures came before.
            after = getattr(err, "retry_after", None)
            if isinstance(after, int | float) and after > 0:
                delay = max(delay, float(after))
                self._hold[key] = asyncio.get_running_loop().time() + float(after)
            if isinstance(err, self._expected):
                log.warning(
                    "%s %s: %s (attempt %d), retrying in %.1fs",
                    self.kind,
                    key,
                    err,
                    failures,
                    delay,
                )
            else:
                log.exception(
                    "%s %s: reconcile failed (attempt %d), retrying in %.1fs",
                    self.kind,
                    key,
                    failures,
                    delay,
                )
            metrics.RECONCILES.labels(self.kind, "error").inc()
            self.add(key, after=delay)
            return
        finally:
            metrics.RECONCILE_DURATION.labels(self.kind).observe(time.monotonic() - started)
        self._failures.pop(key, None)
        if requeue_after is not None:
            metrics.RECONCILES.labels(self.kind, "requeue").inc()
            self.add(key, after=requeue_after)
        else:
            metrics.RECONCILES.labels(self.kind, "ok").inc()
