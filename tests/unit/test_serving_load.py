"""Drift metrics stay exact under concurrent load: many clients at once, v1 and v2 requests of
different sizes, negative values, and bad requests in between; afterwards every per-feature count,
sum and sum of squares at /metrics equals what the clients sent, to the rounding of floats."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.unit._serving_support import (
    PYTHON,
    Server,
    Trained,
    clean_env,
    free_port,
    responds,
    running,
    scrape,
    total,
    train,
    wait_until,
)

pytest.importorskip("joblib")
pytest.importorskip("sklearn")

FEATURES = ("sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm")
LABELS = {"model": "iris", "version": "7"}
CLIENTS = 16
REQUESTS_PER_CLIENT = 40


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return train(tmp_path_factory.mktemp("load-train"))


@dataclass(frozen=True)
class Running:
    url: str
    server: Server


@pytest.fixture(scope="module", params=[1, 2], ids=["1 worker", "2 workers"])
def server(
    trained: Trained, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Running]:
    """The native server, as one process and as two on one port (multiprocess metrics)."""
    port = free_port()
    argv = [
        PYTHON,
        "-m",
        "modelwerk.serving",
        "--model-uri",
        str(trained.artifact),
        "--digest",
        trained.report.artifact.digest,
        "--model-name",
        "iris",
        "--model-version",
        "7",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--feature-names",
        ",".join(FEATURES),
        "--workers",
        str(request.param),
    ]
    base = f"http://127.0.0.1:{port}"
    with running(argv, clean_env(), tmp_path_factory.mktemp("load-server")) as proc:
        wait_until(responds(f"{base}/readyz"), server=proc, what="/readyz")
        wait_until(lambda: len(workers_of(proc)) == request.param - 1, what="the workers")
        # Every worker is ready once it listens: until then, requests reach only the first.
        yield Running(base, proc)


def workers_of(server: Server) -> list[int]:
    """The pids of the processes the server started (its workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == server.proc.pid:
                found.append(int(entry.name))
    return found


@dataclass
class Sent:
    """What the clients sent and the server accepted, per feature."""

    count: list[float] = field(default_factory=lambda: [0.0] * len(FEATURES))
    positive: list[float] = field(default_factory=lambda: [0.0] * len(FEATURES))
    negative: list[float] = field(default_factory=lambda: [0.0] * len(FEATURES))
    squares: list[float] = field(default_factory=lambda: [0.0] * len(FEATURES))
    successes: int = 0
    client_errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, rows: list[list[float]]) -> None:
        with self.lock:
            self.successes += 1
            for row in rows:
                for i, value in enumerate(row):
                    self.count[i] += 1
                    if value > 0:
                        self.positive[i] += value
                    else:
                        self.negative[i] -= value
                    self.squares[i] += value * value


def post(url: str, body: object) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as err:
        err.read()
        return int(err.code)


def client(base: str, seed: int, sent: Sent) -> None:
    rng = random.Random(seed)
    for n in range(REQUESTS_PER_CLIENT):
        rows = [
            [round(rng.uniform(-3.0, 8.0), 3) for _ in FEATURES]
            for _ in range(rng.choice((1, 7, 100)))
        ]
        if n % 10 == 9:  # a bad request now and then: counted as a client error, not as features
            status = post(
                f"{base}/v1/models/iris:predict", {"instances": [row[:3] for row in rows]}
            )
            assert status == 400
            with sent.lock:
                sent.client_errors += 1
            continue
        if n % 2:
            flat = [v for row in rows for v in row]
            tensor = {"name": "input-0", "shape": [len(rows), 4], "datatype": "FP64", "data": flat}
            status = post(f"{base}/v2/models/iris/infer", {"inputs": [tensor]})
        else:
            status = post(f"{base}/v1/models/iris:predict", {"instances": rows})
        assert status == 200
        sent.add(rows)


def test_feature_sums_are_exact_under_concurrent_requests(server: Running) -> None:
    base = server.url
    before = scrape(f"{base}/metrics")
    sent = Sent()
    with ThreadPoolExecutor(CLIENTS) as pool:
        for future in [pool.submit(client, base, seed, sent) for seed in range(CLIENTS)]:
            future.result()
    after = scrape(f"{base}/metrics")

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels, **LABELS) - total(before, name, **labels, **LABELS)

    assert sent.successes + sent.client_errors == CLIENTS * REQUESTS_PER_CLIENT
    assert moved("modelwerk_requests_total", outcome="success") == sent.successes
    assert moved("modelwerk_requests_total", outcome="client_error") == sent.client_errors
    assert moved("modelwerk_request_duration_seconds_count") == CLIENTS * REQUESTS_PER_CLIENT
    assert moved("modelwerk_predictions_total") == sent.count[0]
    for i, feature in enumerate(FEATURES):
        assert moved("modelwerk_feature_value_count_total", feature=feature) == sent.count[i]
        for name, expected in (
            ("modelwerk_feature_value_positive_sum_total", sent.positive[i]),
            ("modelwerk_feature_value_negative_sum_total", sent.negative[i]),
            ("modelwerk_feature_value_squares_sum_total", sent.squares[i]),
        ):
            assert moved(name, feature=feature) == pytest.approx(expected, rel=1e-9), name


@pytest.mark.parametrize("server", [2], indirect=True, ids=["2 workers"])
def test_a_dead_worker_is_replaced_and_no_count_goes_back(server: Running) -> None:
    base = server.url
    body = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
    for _ in range(20):
        assert post(f"{base}/v1/models/iris:predict", body) == 200
    before = total(scrape(f"{base}/metrics"), "modelwerk_requests_total", outcome="success")
    (victim,) = workers_of(server.server)
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: (w := workers_of(server.server)) != [] and w != [victim],
        server=server.server,
        what="a new worker",
    )
    # The dead worker's counts stay in the sums: no counter goes backwards.
    after = total(scrape(f"{base}/metrics"), "modelwerk_requests_total", outcome="success")
    assert after >= before >= 20
    assert post(f"{base}/v1/models/iris:predict", body) == 200
