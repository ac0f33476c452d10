"""workqueue.py: dedupe, one reconcile per key at a time, backoff on failure, delayed adds.

Waits are bounded (asyncio.wait_for on events); `settle()` only yields to the loop so that a
wrongly queued key would get the chance to run.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager

import pytest

from modelwerk import k8s, workqueue
from modelwerk.workqueue import WorkQueue

BOUND = 5.0  # seconds; every wait in here is bounded by this
TOLERANCE = 0.005  # the loop may run a timer up to its clock resolution early


async def settle(rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


async def within(awaitable: Awaitable[object]) -> None:
    await asyncio.wait_for(awaitable, BOUND)


class Recorder:
    """A reconcile function that records calls, their overlap, and can be held at a gate."""

    def __init__(self) -> None:
        self.calls: list[Hashable] = []
        self.log: list[tuple[str, Hashable, int]] = []
        self.times: list[float] = []
        self.active: Counter[Hashable] = Counter()
        self.max_active: Counter[Hashable] = Counter()
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()
        self.called = asyncio.Event()
        self.behaviour: Callable[[Hashable, int], float | None] = lambda key, n: None
        self.changed = asyncio.Condition()  # notified on every start and end

    def count(self, key: Hashable) -> int:
        return self.calls.count(key)

    async def __call__(self, key: Hashable) -> float | None:
        self.calls.append(key)
        n = self.count(key)
        self.times.append(asyncio.get_running_loop().time())
        self.active[key] += 1
        self.max_active[key] = max(self.max_active[key], self.active[key])
        self.log.append(("start", key, n))
        self.started.set()
        await self._notify()
        try:
            if self.gate is not None:
                await self.gate.wait()
            return self.behaviour(key, n)
        finally:
            self.active[key] -= 1
            self.log.append(("end", key, n))
            self.called.set()
            await self._notify()

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def until(self, predicate: Callable[[], bool]) -> None:
        async with self.changed:
            await self.changed.wait_for(predicate)


@asynccontextmanager
async def running(queue: WorkQueue) -> AsyncIterator[WorkQueue]:
    queue.start()
    try:
        yield queue
    finally:
        await queue.stop()


def spy_delays(queue: WorkQueue) -> list[float]:
    """Records the `after=` of every delayed add the queue makes (retries and requeues)."""
    delays: list[float] = []
    original = queue.add

    def add(key: Hashable, *, after: float = 0.0) -> None:
        if after > 0:
            delays.append(after)
        original(key, after=after)

    queue.add = add  # type: ignore[method-assign]
    return delays


async def delays_until(
    rec: Recorder, done: asyncio.Event, *keys: Hashable, workers: int = 1
) -> list[float]:
    """Runs a queue over `rec`, adds `keys` and waits for `done`, then for the queue to go idle:
    the delays of the retries and requeues it made meanwhile."""
    queue = WorkQueue("Test", rec, workers=workers)
    delays = spy_delays(queue)
    async with running(queue):
        for key in keys:
            queue.add(key)
        await within(done.wait())
        await within(queue.wait_idle())
    return delays


# --- dedupe and exclusivity -----------------------------------------------------------------


async def test_adds_of_a_waiting_key_are_deduplicated() -> None:
    rec = Recorder()
    queue = WorkQueue("Test", rec, workers=4)
    for _ in range(5):
        queue.add("a")
    queue.add("b")
    queue.add("a")
    async with running(queue):
        await within(queue.wait_idle())
        await settle()
    assert Counter(rec.calls) == {"a": 1, "b": 1}


async def test_one_key_is_never_reconciled_concurrently() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    async with running(WorkQueue("Test", rec, workers=4)) as queue:
        queue.add("a")
        await within(rec.started.wait())
        # Three more events while the first reconcile runs; four idle workers could take them.
        queue.add("a")
        queue.add("a")
        queue.add("a")
        await settle()
        assert rec.calls == ["a"]
        rec.gate.set()
        await within(queue.wait_idle())
        await settle()
    assert rec.max_active["a"] == 1
    # Processed exactly once more, after the first reconcile ended.
    assert rec.log == [("start", "a", 1), ("end", "a", 1), ("start", "a", 2), ("end", "a", 2)]


async def test_different_keys_run_in_parallel() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    async with running(WorkQueue("Test", rec, workers=2)) as queue:
        queue.add("a")
        queue.add("b")

        await within(rec.until(lambda: sum(rec.active.values()) == 2))
        rec.gate.set()
        await within(queue.wait_idle())
    assert Counter(rec.calls) == {"a": 1, "b": 1}


async def test_wait_idle_waits_for_the_reconcile_in_progress() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    async with running(WorkQueue("Test", rec, workers=1)) as queue:
        queue.add("a")
        await within(rec.started.wait())
        idle = asyncio.create_task(queue.wait_idle())
        await settle()
        assert not idle.done()
        rec.gate.set()
        await within(idle)
        assert rec.log[-1] == ("end", "a", 1)


async def test_wait_idle_returns_at_once_when_nothing_was_added() -> None:
    queue = WorkQueue("Test", Recorder(), workers=1)
    async with running(queue):
        await within(queue.wait_idle())


async def test_oldest_pending_seconds() -> None:
    rec = Recorder()
    queue = WorkQueue("Test", rec, workers=1)
    assert queue.oldest_pending_seconds() == 0.0
    queue.add("a")
    assert queue.oldest_pending_seconds() >= 0.0
    async with running(queue):
        await within(queue.wait_idle())
    assert queue.oldest_pending_seconds() == 0.0


# --- failures -------------------------------------------------------------------------------


def failing(times: int) -> Callable[[Hashable, int], float | None]:
    def behaviour(key: Hashable, n: int) -> float | None:
        if n <= times:
            raise RuntimeError(f"attempt {n} fails")
        return None

    return behaviour


async def test_failures_are_retried_with_exponential_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(workqueue, "MIN_BACKOFF", 0.02)
    rec = Recorder()
    rec.behaviour = failing(3)
    succeeded = asyncio.Event()
    original = rec.behaviour

    def behaviour(key: Hashable, n: int) -> float | None:
        result = original(key, n)
        succeeded.set()
        return result

    rec.behaviour = behaviour
    delays = await delays_until(rec, succeeded, "a", workers=2)
    assert rec.calls == ["a"] * 4
    assert delays == [0.02, 0.04, 0.08]
    gaps = [later - earlier for earlier, later in zip(rec.times, rec.times[1:], strict=False)]
    for gap, delay in zip(gaps, delays, strict=True):
        assert gap >= delay - TOLERANCE


async def test_backoff_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workqueue, "MIN_BACKOFF", 0.005)
    monkeypatch.setattr(workqueue, "MAX_BACKOFF", 0.015)
    rec = Recorder()
    done = asyncio.Event()

    def behaviour(key: Hashable, n: int) -> float | None:
        if n <= 4:
            raise RuntimeError("no")
        done.set()
        return None

    rec.behaviour = behaviour
    assert await delays_until(rec, done, "a") == [0.005, 0.01, 0.015, 0.015]


async def test_success_resets_the_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workqueue, "MIN_BACKOFF", 0.01)
    rec = Recorder()
    done = asyncio.Event()

    def behaviour(key: Hashable, n: int) -> float | None:
        # Fails, fails, succeeds; then (a new event) fails once more and succeeds.
        if n in (1, 2, 4):
            raise RuntimeError("no")
        if n == 5:
            done.set()
        return None

    rec.behaviour = behaviour
    queue = WorkQueue("Test", rec, workers=1)
    delays = spy_delays(queue)
    async with running(queue):
        queue.add("a")

        await within(rec.until(lambda: ("end", "a", 3) in rec.log))
        queue.add("a")
        await within(done.wait())
    assert delays == [0.01, 0.02, 0.01]


async def test_backoff_is_counted_per_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workqueue, "MIN_BACKOFF", 0.01)
    rec = Recorder()
    done = asyncio.Event()

    def behaviour(key: Hashable, n: int) -> float | None:
        if n == 1:
            raise RuntimeError("first attempt fails")
        if rec.count("x") == 2 and rec.count("y") == 2:
            done.set()
        return None

    rec.behaviour = behaviour
    # y's first failure is its first: it does not inherit x's count.
    assert await delays_until(rec, done, "x", "y") == [0.01, 0.01]


async def test_wait_idle_does_not_wait_for_a_pending_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workqueue, "MIN_BACKOFF", 60.0)
    rec = Recorder()
    rec.behaviour = failing(1)
    queue = WorkQueue("Test", rec, workers=1)
    async with running(queue):
        queue.add("a")
        await within(queue.wait_idle())
        await settle()
        assert rec.calls == ["a"]
        assert "a" in queue._timers
    # stop() cancels the pending retry.
    assert queue._timers == {}


# --- delays ---------------------------------------------------------------------------------


async def test_after_delays_the_reconcile() -> None:
    rec = Recorder()
    async with running(WorkQueue("Test", rec, workers=1)) as queue:
        loop = asyncio.get_running_loop()
        added = loop.time()
        queue.add("a", after=0.05)
        # A delayed add is not work yet.
        await within(queue.wait_idle())
        await settle()
        assert rec.calls == []
        await within(rec.called.wait())
    assert rec.calls == ["a"]
    assert rec.times[0] - added >= 0.05 - TOLERANCE


@pytest.mark.parametrize(
    "afters",
    [(60, 0.02), (0.02, 60)],
    ids=["an earlier delay replaces a later one", "a later delay does not postpone an earlier one"],
)
async def test_the_earliest_of_two_delays_wins(afters: tuple[float, float]) -> None:
    rec = Recorder()
    async with running(WorkQueue("Test", rec, workers=1)) as queue:
        for after in afters:
            queue.add("a", after=after)
        await within(rec.called.wait())
        await within(queue.wait_idle())
        # The 60 s timer was cancelled (or never set), not left to fire a second reconcile.
        assert queue._timers == {}
    assert rec.calls == ["a"]


async def test_requeue_after_is_honoured() -> None:
    rec = Recorder()
    second = asyncio.Event()

    def behaviour(key: Hashable, n: int) -> float | None:
        if n == 2:
            second.set()
            return None
        return 0.02

    rec.behaviour = behaviour
    delays = await delays_until(rec, second, "a")
    assert rec.calls == ["a", "a"]
    assert delays == [0.02]
    assert rec.times[1] - rec.times[0] >= 0.02 - TOLERANCE


async def test_stop_cancels_workers_and_timers() -> None:
    rec = Recorder()
    queue = WorkQueue("Test", rec, workers=3)
    queue.start()
    assert len(queue._tasks) == 3
    queue.add("later", after=60)
    await queue.stop()
    assert queue._tasks == []
    assert queue._timers == {}
    assert rec.calls == []


async def test_oldest_pending_counts_a_reconcile_in_progress() -> None:
    """A reconcile that hangs must show in oldest_pending_seconds (the operator's stuck alert)."""
    started = asyncio.Event()
    release = asyncio.Event()

    async def hang(key: object) -> float | None:
        started.set()
        await release.wait()
        return None

    queue = WorkQueue("Test", hang, workers=1)
    queue.start()
    try:
        assert queue.oldest_pending_seconds() == 0.0
        queue.add("k")
        await asyncio.wait_for(started.wait(), 5)
        first = queue.oldest_pending_seconds()
        await asyncio.sleep(0.05)  # time must pass for an age to grow
        assert queue.oldest_pending_seconds() > first
        release.set()
        await asyncio.wait_for(queue.wait_idle(), 5)
        assert queue.oldest_pending_seconds() == 0.0
    finally:
        await queue.stop()


def throttled(retry_after: float) -> k8s.ApiError:
    """The apiserver's 429 from priority and fairness, with its Retry-After."""
    return k8s.ApiError(429, "TooManyRequests", "slow down", retry_after=retry_after)


async def test_a_retry_after_is_honoured_over_a_shorter_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 429 with Retry-After: the next attempt waits the server's time, not the first backoff."""
    monkeypatch.setattr(workqueue, "MIN_BACKOFF", 0.005)
    rec = Recorder()
    done = asyncio.Event()

    def behaviour(key: Hashable, n: int) -> float | None:
        if n == 1:
            raise throttled(0.05)
        if n == 2:
            raise RuntimeError("no Retry-After: the backoff alone")
        done.set()
        return None

    rec.behaviour = behaviour
    assert await delays_until(rec, done, "a") == [0.05, 0.01]
    assert rec.times[1] - rec.times[0] >= 0.05 - TOLERANCE


async def test_an_event_during_a_retry_after_waits_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A watch event cuts an ordinary backoff short, but not the server's Retry-After."""
    monkeypatch.setattr(workqueue, "MIN_BACKOFF", 0.005)
    rec = Recorder()
    done = asyncio.Event()

    def behaviour(key: Hashable, n: int) -> float | None:
        if n == 1:
            raise throttled(0.1)
        done.set()
        return None

    rec.behaviour = behaviour
    queue = WorkQueue("Test", rec, workers=1)
    async with running(queue):
        queue.add("a")
        await within(rec.called.wait())
        await settle()
        queue.add("a")  # an event for the key, well within the Retry-After
        await settle()
        assert rec.calls == ["a"]
        await within(done.wait())
    assert rec.times[1] - rec.times[0] >= 0.1 - TOLERANCE


def test_retry_after_header_values() -> None:
    assert k8s.retry_after("2") == 2.0
    assert k8s.retry_after("0.5") == 0.5
    assert k8s.retry_after(None) is None
    assert k8s.retry_after("Wed, 21 Oct 2026 07:28:00 GMT") is None
    assert k8s.retry_after("-1") is None
    assert k8s.retry_after("nan") is None
    assert k8s.retry_after("inf") is None
    assert k8s.retry_after("86400") == 600.0
