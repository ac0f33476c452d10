"""Leader election: what a replica does with the Lease it reads (table-driven), and the fence
that keeps a frozen leader from writing once its renew deadline has passed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import pytest

from modelwerk.k8s import Conflict
from modelwerk.leader import Decision, Elector, Timing, decide

T0 = dt.datetime(2026, 12, 2, 12, 0, 0, tzinfo=dt.UTC)
STAMP = "2026-12-02T12:00:00.000000Z"
TIMING = Timing()


def lease(
    holder: str, renewed_ago: float, duration: int = 15, transitions: int = 3
) -> dict[str, Any]:
    renewed = (T0 - dt.timedelta(seconds=renewed_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "metadata": {"name": "modelwerk-operator", "resourceVersion": "7"},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": duration,
            "acquireTime": renewed,
            "renewTime": renewed,
            "leaseTransitions": transitions,
        },
    }


def taken(transitions: int) -> dict[str, Any]:
    return {
        "holderIdentity": "me",
        "leaseDurationSeconds": 15,
        "acquireTime": STAMP,
        "renewTime": STAMP,
        "leaseTransitions": transitions,
    }


CASES: dict[str, tuple[dict[str, Any] | None, Decision]] = {
    "no Lease yet: create it": (None, Decision("create", taken(0), "me")),
    "mine: renew, nothing else changes": (
        lease("me", 2),
        Decision("renew", {**lease("me", 2)["spec"], "renewTime": STAMP}, "me"),
    ),
    "another's, renewed 14 s ago: wait": (lease("other", 14), Decision("wait", None, "other")),
    "another's, expired 15 s after its renewal: take it": (
        lease("other", 15),
        Decision("take", taken(4), "me"),
    ),
    "another's, with a longer lease of its own: wait": (
        lease("other", 20, duration=30),
        Decision("wait", None, "other"),
    ),
    "released (no holder): take it at once": (lease("", 0), Decision("take", taken(4), "me")),
}


@pytest.mark.parametrize(("given", "expected"), list(CASES.values()), ids=list(CASES))
def test_decide(given: dict[str, Any] | None, expected: Decision) -> None:
    assert decide(given, "me", T0, TIMING) == expected


def test_timing_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="retryPeriod < renewDeadline < leaseDuration"):
        Timing(lease_duration=10, renew_deadline=10, retry_period=2)


class FakeLeases:
    """One Lease with resourceVersion compare-and-swap, as the apiserver keeps it."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.writes = 0

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return None if self.lease is None else {**self.lease}

    def _store(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.writes += 1
        self.lease = {"metadata": {"resourceVersion": str(self.version)}, "spec": dict(spec)}
        return self.lease

    async def create_lease(self, namespace: str, name: str, spec: Mapping[str, Any]) -> Any:
        if self.lease is not None:
            raise Conflict(409, "AlreadyExists", "exists")
        return self._store(spec)

    async def replace_lease(
        self, namespace: str, name: str, spec: Mapping[str, Any], resource_version: str
    ) -> Any:
        if resource_version != str(self.version):
            raise Conflict(409, "Conflict", "the object has been modified")
        return self._store(spec)


class Clocks:
    def __init__(self) -> None:
        self.mono = 1000.0

    def wall(self) -> dt.datetime:
        return T0 + dt.timedelta(seconds=self.mono - 1000.0)

    def monotonic(self) -> float:
        return self.mono


def elector(api: FakeLeases, clocks: Clocks, identity: str) -> Elector:
    return Elector(
        api, "ops", "modelwerk-operator", identity, wall=clocks.wall, monotonic=clocks.monotonic
    )


async def test_one_leader_and_a_frozen_one_is_fenced_before_another_takes_over() -> None:
    api, clocks = FakeLeases(), Clocks()
    a, b = elector(api, clocks, "a"), elector(api, clocks, "b")
    assert await a.try_once()
    assert a.may_write()
    assert not await b.try_once()
    assert not b.may_write()
    assert b.holder == "a"
    # a renews every retry period while b waits.
    for _ in range(5):
        clocks.mono += 2
        assert await a.try_once()
        assert not await b.try_once()
    # a freezes (SIGSTOP). Past its renew deadline it may no longer write, while the Lease is
    # still a's: nobody else can have taken over yet.
    clocks.mono += TIMING.renew_deadline
    assert not a.may_write()
    assert not await b.try_once()
    # Past the lease duration b takes over; a, waking, finds the Lease taken and stays fenced.
    clocks.mono += TIMING.lease_duration - TIMING.renew_deadline
    assert await b.try_once()
    assert b.may_write()
    assert not await a.try_once()
    assert not a.may_write()
    assert api.lease is not None
    assert api.lease["spec"]["leaseTransitions"] == 1


async def test_a_lost_race_is_no_error_and_no_leadership() -> None:
    api, clocks = FakeLeases(), Clocks()
    a = elector(api, clocks, "a")

    class Racing(FakeLeases):
        async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
            found = await super().get_lease(namespace, name)
            # Another replica writes between our read and our write.
            self.version += 1
            return found

    racing = Racing()
    racing.lease = lease("", 0)
    racing.version = 7
    b = elector(racing, clocks, "b")
    assert not await b.try_once()
    assert not b.may_write()
    assert await a.try_once()


async def test_release_hands_the_lease_over_at_once() -> None:
    api, clocks = FakeLeases(), Clocks()
    a, b = elector(api, clocks, "a"), elector(api, clocks, "b")
    assert await a.try_once()
    await a.release()
    assert not a.may_write()
    assert api.lease is not None
    assert api.lease["spec"]["holderIdentity"] == ""
    assert await b.try_once()
