"""Model server: the native runtime as a local process, fed what clients get wrong. Malformed
JSON, wrong shapes and types, NaN/inf, over-long batches, bodies over the limit, JSON drawn by
hypothesis, against v1 and v2: every answer a 4xx (never a 5xx, never a dropped connection).
Slow clients (headers and bodies trickled) and hundreds of idle connections held open while it
keeps answering. It never exits or logs a traceback, its RSS stays within a bound, and /readyz
says 200 exactly while predictions succeed."""

from __future__ import annotations

import http.client
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.integration.servers import IRIS_ROWS, ModelServer, train
from tests.reliability import figures

pytestmark = [pytest.mark.reliability]

SCENARIO = "model server (native)"
NAME = "iris"
RSS_BOUND_MB = 64  # growth over the whole scenario, after the bodies at the 16 MiB limit
LIMIT = 16 * 1024 * 1024

ROW = list(IRIS_ROWS[0])
V1 = f"/v1/models/{NAME}:predict"
V2 = f"/v2/models/{NAME}/infer"

MALFORMED: list[tuple[str, str, bytes]] = [
    ("v1", V1, b"{"),
    ("v1", V1, b"not json"),
    ("v1", V1, b"\xff\xfe\x00"),
    ("v1", V1, b""),
    ("v1", V1, b"[]"),
    ("v1", V1, b'{"instances": 5}'),
    ("v1", V1, b'{"instances": []}'),
    ("v1", V1, b'{"instances": [[1, 2]]}'),
    ("v1", V1, b'{"instances": [[1, 2, 3, 4, 5]]}'),
    ("v1", V1, b'{"instances": [["a", "b", "c", "d"]]}'),
    ("v1", V1, b'{"instances": [[[1, 2, 3, 4]]]}'),
    ("v1", V1, b'{"instances": [[null, 1, 2, 3]]}'),
    ("v1", V1, b'{"instances": [[NaN, 1, 2, 3]]}'),
    ("v1", V1, b'{"instances": [[Infinity, 1, 2, 3]]}'),
    ("v1", V1, b'{"instances": [[1e400, 1, 2, 3]]}'),
    ("v1", V1, b'{"instances": [[true, false, true, false]]}'),
    ("v1", V1, b'{"instances": [{"a": 1}]}'),
    ("v1", V1, json.dumps({"instances": [ROW] * 10_001}).encode()),
    ("v1", "/v1/models/other:predict", json.dumps({"instances": [ROW]}).encode()),
    ("v2", V2, b"{"),
    ("v2", V2, b'{"inputs": []}'),
    ("v2", V2, b'{"inputs": 3}'),
    (
        "v2",
        V2,
        json.dumps(
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3]}]}
        ).encode(),
    ),
    (
        "v2",
        V2,
        json.dumps(
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}
        ).encode(),
    ),
    (
        "v2",
        V2,
        json.dumps(
            {"inputs": [{"name": "x", "datatype": "NOPE", "shape": [1, 4], "data": ROW}]}
        ).encode(),
    ),
    (
        "v2",
        V2,
        json.dumps(
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4], "data": ROW}]}
        ).encode(),
    ),
    (
        "v2",
        V2,
        json.dumps(
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": ["a"] * 4}]}
        ).encode(),
    ),
    (
        "v2",
        V2,
        b'{"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4], "data": [NaN, 1, 2, 3]}]}',
    ),
    (
        "v2",
        V2,
        json.dumps(
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": [10**12, 4], "data": ROW}]}
        ).encode(),
    ),
]

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(["instances", "inputs", "name", "data", "shape", "datatype", "x"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=30,
)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class Http:
    def __init__(self, port: int) -> None:
        self.port = port

    def request(
        self, method: str, path: str, body: bytes | None = None, timeout: float = 30
    ) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            return response.status, data
        finally:
            conn.close()

    def predict(self) -> tuple[int, float]:
        started = time.monotonic()
        status, _ = self.request("POST", V1, json.dumps({"instances": [ROW]}).encode())
        return status, time.monotonic() - started

    def ready(self) -> int:
        return self.request("GET", "/readyz")[0]


def test_the_model_server_refuses_what_clients_get_wrong_and_keeps_serving(
    tmp_path: Path,
) -> None:
    artifact = train(tmp_path / "train", {"fault": 1.0})["fault"]
    server = ModelServer(artifact, NAME, 1, tmp_path / "server.log")
    server.start()
    assert server.proc is not None
    pid = server.proc.pid
    client = Http(server.port)
    statuses: dict[int, int] = {}
    wrong: list[str] = []
    try:
        assert client.predict()[0] == 200
        baseline = rss_mb(pid)

        for protocol, path, body in MALFORMED:
            status, data = client.request("POST", path, body)
            statuses[status] = statuses.get(status, 0) + 1
            if not 400 <= status < 500:
                wrong.append(f"{protocol} {body[:80]!r}: {status} {data[:200]!r}")

        # Bodies over the limit, a few times (each is read up to the limit, then refused).
        huge = []
        for _ in range(3):
            status, _ = client.request(
                "POST", V1, b'{"instances": [' + b"1," * (LIMIT // 2) + b"1]}"
            )
            statuses[status] = statuses.get(status, 0) + 1
            huge.append(status)
            if status != 413:
                wrong.append(f"huge body: {status}")

        drawn = 0

        @settings(
            max_examples=figures.sized(300, 3000),
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(value=JSON, path=st.sampled_from([V1, V2]))
        def probe(value: object, path: str) -> None:
            nonlocal drawn
            drawn += 1
            body = json.dumps(value).encode()  # NaN and Infinity appear as such
            status, data = client.request("POST", path, body)
            statuses[status] = statuses.get(status, 0) + 1
            if status >= 500:
                wrong.append(f"{path} {body[:80]!r}: {status} {data[:200]!r}")

        probe()

        # Slow clients: headers trickled, a body promised and never sent, and idle connections,
        # all held open while the server keeps answering.
        held: list[socket.socket] = []
        idle = figures.sized(300, 1000)
        try:
            for i in range(idle):
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
                if i % 3 == 0:
                    sock.sendall(b"POST " + V1.encode() + b" HTTP/1.1\r\nHost: x\r\n")
                elif i % 3 == 1:
                    path = (V1 if i % 2 else V2).encode()
                    sock.sendall(
                        b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: "
                        b'application/json\r\nContent-Length: 100000\r\n\r\n{"inst'
                    )
                held.append(sock)
            latencies = []
            for _ in range(20):
                status, took = client.predict()
                assert status == 200, status
                latencies.append(took)
                for sock in held[::3]:
                    sock.sendall(b"X")  # one more byte of header, every round
            ready_under_load = client.ready()
        finally:
            for sock in held:
                sock.close()

        status, _ = client.predict()
        ready = client.ready()
        grown = rss_mb(pid) - baseline
        log = server.log_path.read_text(errors="replace")
        alive = server.proc.poll() is None
    finally:
        server.stop()

    figures.record(
        SCENARIO,
        "malformed, wrong shape/type, NaN/inf bodies: all 4xx",
        f"{len(MALFORMED)} cases, {len(wrong)} wrong",
        "0 wrong",
    )
    figures.record(
        SCENARIO, "bodies over the 16 MiB limit", " ".join(map(str, huge)), "413 413 413"
    )
    figures.record(
        SCENARIO,
        "hypothesis JSON bodies, 5xx",
        f"{drawn} sent, {sum(n for s, n in statuses.items() if s >= 500)} 5xx",
        "0 5xx",
    )
    figures.record(SCENARIO, "slow/idle connections held", idle)
    figures.record(
        SCENARIO, "predict latency while held, max", f"{max(latencies) * 1000:.0f} ms", "< 1000 ms"
    )
    figures.record(
        SCENARIO, "RSS growth over the scenario", f"{grown:.1f} MB", f"≤ {RSS_BOUND_MB} MB"
    )
    figures.record(
        SCENARIO,
        "/readyz while held / after; predict after",
        f"{ready_under_load} / {ready}; {status}",
        "200 / 200; 200",
    )
    figures.record(
        SCENARIO, "exits / tracebacks", f"{int(not alive)} / {log.count('Traceback')}", "0 / 0"
    )
    assert not wrong, wrong[:10]
    assert max(latencies) < 1.0, latencies
    assert grown <= RSS_BOUND_MB, grown
    assert (ready_under_load, ready, status) == (200, 200, 200)
    assert alive, log[-3000:]
    assert "Traceback" not in log, log[-5000:]
