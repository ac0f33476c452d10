"""Starts the reconcile queues: at once for a single replica, or once this replica leads
(leader.py) — and stops the process when it loses the Lease, as client-go's controllers do, so
it restarts as a follower with nothing half-done."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import uuid

from modelwerk import metrics
from modelwerk.config import OperatorConfig
from modelwerk.k8s import Kube
from modelwerk.leader import Elector, Timing
from modelwerk.manager import Manager

log = logging.getLogger(__name__)
_TASKS: set[asyncio.Task[None]] = set()  # the campaign, referenced until it ends


def start(mgr: Manager, kube: Kube, config: OperatorConfig) -> Elector | None:
    if not config.leader_elect:
        metrics.LEADER.set(1)
        mgr.start()
        return None
    timing = Timing(config.lease_duration, config.renew_deadline, config.retry_period)
    identity = f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    elector = Elector(
        kube, config.leader_election_namespace, config.leader_election_id, identity, timing
    )
    kube.fence = elector.may_write
    mgr.leading = elector.may_write
    log.info(
        "leader election: %s campaigns for Lease %s/%s",
        identity,
        config.leader_election_namespace,
        config.leader_election_id,
    )
    task = asyncio.create_task(elector.run(mgr.start, _stop_process))
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)
    return elector


def _stop_process() -> None:
    # Writes are fenced off already; SIGTERM runs kopf's orderly shutdown.
    os.kill(os.getpid(), signal.SIGTERM)
