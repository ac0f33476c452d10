"""Operator replicas with leader election as local processes, and the chaos that kills their
leader: SIGKILL (no clean release of the Lease), then the time until the survivor leads."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

from tests.integration.conftest import OperatorProcess
from tests.integration.trainingruns import metric_sum

# client-go's proportions (15 / 10 / 2 s), shortened so that a kill every few seconds fits into
# CI: a SIGKILLed leader's Lease is taken after at most lease + retry.
LEASE = {
    "MODELWERK_LEASE_DURATION": "5",
    "MODELWERK_RENEW_DEADLINE": "3",
    "MODELWERK_RETRY_PERIOD": "0.5",
}
LEASE_BOUND = 5 + 0.5


def replicas(
    kubeconfig: str, namespace: str, folder: Path, count: int = 2, env: dict[str, str] | None = None
) -> list[OperatorProcess]:
    args = ("--namespace", namespace, "--leader-elect")
    args += ("--leader-election-namespace", namespace, "--leader-election-id", "modelwerk-rel")
    return [
        OperatorProcess(
            kubeconfig, folder / f"replica-{i}.log", *args, env={**LEASE, **(env or {})}
        )
        for i in range(count)
    ]


def leading(proc: OperatorProcess) -> bool:
    if proc.proc is None or proc.proc.poll() is not None:
        return False
    try:
        text = proc.metrics()
    except OSError:
        return False
    return metric_sum(text, "modelwerk_leader") == 1


def leader_of(procs: list[OperatorProcess]) -> OperatorProcess | None:
    found = [p for p in procs if leading(p)]
    assert len(found) <= 1, "two replicas report leading at once"
    return found[0] if found else None


class Chaos(threading.Thread):
    """Until stopped: wait for a leader, let it lead for `hold` seconds (uniformly drawn), SIGKILL
    it, measure until another replica leads, restart the killed one as a follower."""

    def __init__(self, procs: list[OperatorProcess], hold: tuple[float, float] = (1, 3)) -> None:
        super().__init__(name="chaos", daemon=True)
        self.procs = procs
        self.hold = hold
        self.failovers: list[float] = []
        self.error: BaseException | None = None
        self._stop_event = threading.Event()
        self._random = random.Random(16)

    def halt(self) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=120)

    def stop(self) -> None:
        """Halts, and raises what went wrong in the chaos thread."""
        self.halt()
        if self.error is not None:
            raise self.error

    def _wait_leader(
        self, timeout: float, exclude: OperatorProcess | None = None
    ) -> OperatorProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = leader_of([p for p in self.procs if p is not exclude])
            if found is not None:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no leader within {timeout} s")

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                leader = self._wait_leader(60)
                if self._stop_event.wait(self._random.uniform(*self.hold)):
                    return
                assert leader.proc is not None
                os.kill(leader.proc.pid, signal.SIGKILL)
                killed = time.monotonic()
                leader.proc.wait()
                leader.proc = None
                self._wait_leader(60, exclude=leader)
                self.failovers.append(time.monotonic() - killed)
                leader.start()
        except BaseException as err:  # reported by stop(), in the test's thread
            self.error = err
