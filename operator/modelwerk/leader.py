"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it.

Every replica watches and keeps its caches warm; only the one holding the Lease reconciles,
answers the Alertmanager webhook and fires schedule triggers. Timing (client-go's defaults):
the holder renews every `retry_period`; a holder that has not renewed for `lease_duration` has
lost the Lease and another replica may take it. A leader stops writing once its last renewal is
older than `renew_deadline` (< `lease_duration`): every write goes through `may_write`, measured
on the monotonic clock, so a leader frozen (SIGSTOP, a long GC pause, a partition) past its
deadline writes nothing when it wakes, before any other replica can have taken over. It then
exits, and comes back as a follower.

`decide` is pure (what to do with the Lease as read); `Elector` does the I/O.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from modelwerk import metrics
from modelwerk.k8s import ApiError, LeaseApi
from modelwerk.status import format_micro_time, parse_time

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timing:
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election needs retryPeriod < renewDeadline < leaseDuration, got "
                f"{self.retry_period} / {self.renew_deadline} / {self.lease_duration}"
            )


Action = Literal["create", "renew", "take", "wait"]


@dataclass(frozen=True)
class Decision:
    action: Action
    spec: dict[str, Any] | None = None
    holder: str | None = None


def decide(
    lease: Mapping[str, Any] | None, identity: str, now: dt.datetime, timing: Timing
) -> Decision:
    """What a replica does with the Lease it just read: create it, renew its own, take an
    expired or released one, or wait for the holder's to expire."""
    stamp = format_micro_time(now)
    duration = max(1, round(timing.lease_duration))
    if lease is None:
        created: dict[str, Any] = {
            "holderIdentity": identity,
            "leaseDurationSeconds": duration,
            "acquireTime": stamp,
            "renewTime": stamp,
            "leaseTransitions": 0,
        }
        return Decision("create", created, identity)
    spec: dict[str, Any] = dict(lease.get("spec") or {})
    holder = str(spec.get("holderIdentity") or "")
    if holder == identity:
        return Decision("renew", {**spec, "renewTime": stamp}, identity)
    renewed = str(spec.get("renewTime") or "")
    held_for = float(spec.get("leaseDurationSeconds") or duration)
    if holder and renewed and now < parse_time(renewed) + dt.timedelta(seconds=held_for):
        return Decision("wait", None, holder)
    taken = {
        "holderIdentity": identity,
        "leaseDurationSeconds": duration,
        "acquireTime": stamp,
        "renewTime": stamp,
        "leaseTransitions": int(spec.get("leaseTransitions") or 0) + 1,
    }
    return Decision("take", taken, identity)


class Elector:
    def __init__(
        self,
        api: LeaseApi,
        namespace: str,
        name: str,
        identity: str,
        timing: Timing = Timing(),
        *,
        wall: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api, self.namespace, self.name = api, namespace, name
        self.identity, self.timing = identity, timing
        self._wall, self._monotonic = wall, monotonic
        self._confirmed: float | None = None  # monotonic time of the last create/renew/take
        self._lease: Mapping[str, Any] | None = None
        self.holder: str | None = None

    def may_write(self) -> bool:
        """Leader, and sure of it: the Lease was renewed within the renew deadline."""
        confirmed = self._confirmed
        return confirmed is not None and self._monotonic() - confirmed < self.timing.renew_deadline

    async def try_once(self) -> bool:
        """Read the Lease and create, renew or take it if this replica may. Whether it holds the
        Lease afterwards. A conflict (another replica wrote first) is a lost race, not an error."""
        started = self._monotonic()
        try:
            lease = await self.api.get_lease(self.namespace, self.name)
            decision = decide(lease, self.identity, self._wall(), self.timing)
            self.holder = decision.holder
            if decision.action == "wait" or decision.spec is None:
                return False
            if decision.action == "create":
                self._lease = await self.api.create_lease(self.namespace, self.name, decision.spec)
            else:
                assert lease is not None
                version = str(lease["metadata"]["resourceVersion"])
                self._lease = await self.api.replace_lease(
                    self.namespace, self.name, decision.spec, version
                )
        except ApiError as err:
            if err.status != 409:
                log.warning("leader election: %s", err)
            return False
        # Measured from before the read: the Lease was ours no later than that.
        self._confirmed = started
        return True

    async def run(
        self,
        started_leading: Callable[[], Awaitable[None] | None],
        stopped_leading: Callable[[], None],
    ) -> None:
        """Campaign until leading, then renew until a renewal misses the deadline."""
        while not await self.try_once():
            metrics.LEADER.set(0)
            await asyncio.sleep(self.timing.retry_period * (1 + 0.2 * random.random()))
        log.info(
            "leader election: %s leads (Lease %s/%s)", self.identity, self.namespace, self.name
        )
        metrics.LEADER.set(1)
        begun = started_leading()
        if begun is not None:
            await begun
        while True:
            await asyncio.sleep(self.timing.retry_period)
            renewed = await self.try_once()
            if not renewed and not self.may_write():
                metrics.LEADER.set(0)
                log.error(
                    "leader election: %s lost the Lease (holder now %s): stopping",
                    self.identity,
                    self.holder or "unknown",
                )
                stopped_leading()
                return

    async def release(self) -> None:
        """On a clean shutdown: give the Lease up so a follower takes over at its next attempt,
        not after the lease duration (client-go's ReleaseOnCancel)."""
        if not self.may_write() or self._lease is None:
            return
        spec = dict(self._lease.get("spec") or {})
        spec.update(holderIdentity="", leaseDurationSeconds=1)
        self._confirmed = None
        try:
            await self.api.replace_lease(
                self.namespace, self.name, spec, str(self._lease["metadata"]["resourceVersion"])
            )
        except ApiError as err:
            log.warning("leader election: could not release the Lease: %s", err)
