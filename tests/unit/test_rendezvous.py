"""modelwerk.rendezvous: the reference trainer's workers meet before worker 0 trains."""

from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from modelwerk.rendezvous import RendezvousError, World, rendezvous


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def world(size: int, rank: int, port: int) -> World:
    return World(size=size, rank=rank, master_addr="127.0.0.1", master_port=port)


def test_every_worker_returns_once_all_have_joined() -> None:
    port = free_port()
    # Workers started before worker 0 listens: they retry until it does.
    with ThreadPoolExecutor(4) as pool:
        others = [pool.submit(rendezvous, world(4, r, port), 30) for r in (1, 2, 3)]
        host = pool.submit(rendezvous, world(4, 0, port), 30)
        assert host.result(timeout=30).rank == 0
        assert sorted(f.result(timeout=30).rank for f in others) == [1, 2, 3]


def test_worker_0_gives_up_naming_who_is_missing() -> None:
    port = free_port()
    done = threading.Event()

    def one_peer() -> None:
        rendezvous(world(3, 1, port), 5)
        done.set()

    threading.Thread(target=one_peer, daemon=True).start()
    with pytest.raises(RendezvousError, match=r"2 of 3 workers joined; ranks \[2\] did not"):
        rendezvous(world(3, 0, port), 1.5)
    assert done.wait(5)


def test_a_worker_without_worker_0_gives_up() -> None:
    with pytest.raises(RendezvousError, match=r"could not reach worker 0 at 127\.0\.0\.1"):
        rendezvous(world(2, 1, free_port()), 1.0)


def test_a_single_worker_needs_nobody() -> None:
    assert rendezvous(World.from_env({}), 0.1) == World(1, 0, "localhost", 29500)


def test_the_world_comes_from_the_gangs_variables() -> None:
    env = {"WORLD_SIZE": "4", "RANK": "2", "MASTER_ADDR": "iris-1-0.iris-1", "MASTER_PORT": "29500"}
    assert World.from_env(env) == World(4, 2, "iris-1-0.iris-1", 29500)
