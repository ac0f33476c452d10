"""What the running operator holds: the API client, the clock, the caches and the reconcile
queues (controller-runtime calls this the manager).

Created at start-up and kept in kopf's `memo`, so handlers reach it without module globals.
Reconcilers get it as their first argument; the fast tests give it a fake API client and a
fake clock (tests/reconcile/).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Protocol

from modelwerk import memory
from modelwerk.config import OperatorConfig
from modelwerk.k8s import Api
from modelwerk.kinds import Kind
from modelwerk.status import format_time
from modelwerk.store import Store
from modelwerk.workqueue import WorkQueue


class Clock(Protocol):
    def __call__(self) -> dt.datetime: ...


def system_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Manager:
    kube: Api
    config: OperatorConfig
    clock: Clock = system_clock
    stores: dict[Kind, Store] = field(default_factory=dict)
    queues: dict[Kind, WorkQueue] = field(default_factory=dict)
    leading: Callable[[], bool] = field(default=lambda: True)
    """Whether this replica may write now (leader election; always, for a single replica)."""
    _crds: dict[str, tuple[bool, float]] = field(default_factory=dict)
    _locks: dict[Hashable, asyncio.Lock] = field(default_factory=dict)
    _trimmer: asyncio.Task[None] | None = None

    def now(self) -> dt.datetime:
        return self.clock()

    def timestamp(self) -> str:
        """Now, as Kubernetes writes times (RFC 3339, seconds, `Z`)."""
        return format_time(self.clock())

    def lock(self, key: Hashable) -> asyncio.Lock:
        """One lock per key, for work that must not interleave (retrain triggers of a Model)."""
        return self._locks.setdefault(key, asyncio.Lock())

    def store(self, kind: Kind) -> Store:
        return self.stores[kind]

    def enqueue(self, kind: Kind, namespace: str, name: str, *, after: float = 0.0) -> None:
        queue = self.queues.get(kind)
        if queue is not None:
            queue.add((namespace, name), after=after)

    async def crd_installed(self, name: str) -> bool:
        """Whether a CRD is installed, asked at most once a minute: CRDs come and go rarely, and
        a reconcile should not cost an API read for it."""
        loop = asyncio.get_running_loop()
        cached = self._crds.get(name)
        if cached is not None and loop.time() - cached[1] < self.config.crd_cache_seconds:
            return cached[0]
        installed = await self.kube.crd_installed(name)
        self._crds[name] = (installed, loop.time())
        return installed

    def start(self) -> None:
        for queue in self.queues.values():
            queue.start()
        self._trimmer = asyncio.create_task(memory.trim_when_idle(list(self.queues.values())))

    async def stop(self) -> None:
        if self._trimmer is not None:
            self._trimmer.cancel()
            await asyncio.gather(self._trimmer, return_exceptions=True)
        for queue in self.queues.values():
            await queue.stop()
        await self.kube.close()
