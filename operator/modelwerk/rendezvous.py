"""A minimal rendezvous for a distributed TrainingRun's workers, for code that uses no framework
of its own (torchrun, Horovod and JAX bring theirs and read the same variables): worker 0 listens
on MASTER_PORT, every other worker connects to MASTER_ADDR (worker 0's stable hostname through
the run's headless Service) and says its rank. It returns once all WORLD_SIZE workers have
joined, so code after it knows its peers are up. Retries while the hostname does not resolve yet
or nothing listens yet: the pods of a gang start in any order."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_TIMEOUT = 300.0


class RendezvousError(Exception):
    """Not every worker joined in time, or a peer said something else."""


@dataclass(frozen=True)
class World:
    size: int
    rank: int
    master_addr: str
    master_port: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> World:
        env = os.environ if env is None else env
        return cls(
            size=int(env.get("WORLD_SIZE", "1")),
            rank=int(env.get("RANK", "0")),
            master_addr=env.get("MASTER_ADDR", "localhost"),
            master_port=int(env.get("MASTER_PORT", "29500")),
        )


def rendezvous(world: World | None = None, timeout: float = DEFAULT_TIMEOUT) -> World:
    """Blocks until every worker of the world has joined; a single worker returns at once."""
    world = World.from_env() if world is None else world
    if world.size <= 1:
        return world
    deadline = time.monotonic() + timeout
    if world.rank == 0:
        _host(world, deadline)
    else:
        _join(world, deadline)
    return world


def _host(world: World, deadline: float) -> None:
    joined: set[int] = set()
    with socket.create_server(("", world.master_port), reuse_port=False) as server:
        while len(joined) < world.size - 1:
            left = deadline - time.monotonic()
            if left <= 0:
                missing = sorted(set(range(1, world.size)) - joined)
                raise RendezvousError(
                    f"{len(joined) + 1} of {world.size} workers joined; ranks {missing} did not"
                )
            server.settimeout(left)
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(10)
                rank = _read_rank(conn)
                if 0 < rank < world.size:
                    joined.add(rank)
                conn.sendall(b"ok\n")


def _read_rank(conn: socket.socket) -> int:
    data = b""
    while not data.endswith(b"\n") and len(data) < 32:
        chunk = conn.recv(32)
        if not chunk:
            break
        data += chunk
    try:
        return int(data.strip())
    except ValueError:
        return -1  # not one of ours: ignored


def _join(world: World, deadline: float) -> None:
    last: OSError | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((world.master_addr, world.master_port), timeout=5) as c:
                c.sendall(f"{world.rank}\n".encode())
                if c.recv(8).strip() == b"ok":
                    return
        except OSError as err:  # no such host yet, refused, reset: worker 0 is not up yet
            last = err
        time.sleep(0.5)
    raise RendezvousError(
        f"worker {world.rank} could not reach worker 0 at {world.master_addr}:"
        f"{world.master_port}: {last}"
    )
