"""What the running operator holds: the API client, the caches and the reconcile queues.

Created at start-up and kept in kopf's `memo`, so handlers reach it without module globals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelwerk.config import OperatorConfig
from modelwerk.k8s import Kube
from modelwerk.store import Store
from modelwerk.workqueue import WorkQueue


@dataclass
class Runtime:
    kube: Kube
    config: OperatorConfig
    stores: dict[str, Store] = field(default_factory=dict)
    queues: dict[str, WorkQueue] = field(default_factory=dict)

    def store(self, kind: str) -> Store:
        return self.stores[kind]

    def enqueue(self, kind: str, namespace: str, name: str, *, after: float = 0.0) -> None:
        queue = self.queues.get(kind)
        if queue is not None:
            queue.add((namespace, name), after=after)

    def start(self) -> None:
        for queue in self.queues.values():
            queue.start()

    async def stop(self) -> None:
        for queue in self.queues.values():
            await queue.stop()
        await self.kube.close()
