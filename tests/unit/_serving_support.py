"""Helpers for the tests that run the trainer and the model servers as real processes.

Not a conftest: imported explicitly by the test modules that need it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from modelwerk.report import Report, parse_report

PYTHON = sys.executable
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any MODELWERK_* a developer may have exported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELWERK_")}
    env.update(extra)
    return env


@dataclass(frozen=True)
class Trained:
    artifact: Path
    report: Report
    stdout: str
    termination_text: str


def run_trainer(
    workdir: Path,
    *,
    run: str = "iris-1",
    seed: int | None = 42,
    hyperparameters: Mapping[str, str] | None = None,
    datasets: Sequence[Mapping[str, str]] = (),
) -> subprocess.CompletedProcess[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    env = clean_env(
        MODELWERK_RUN=run,
        MODELWERK_MODEL="iris",
        MODELWERK_HYPERPARAMETERS=json.dumps(dict(hyperparameters or {})),
        MODELWERK_DATASETS=json.dumps([dict(d) for d in datasets]),
        MODELWERK_OUTPUT_DIR=str(workdir / "output"),
        MODELWERK_OUTPUT_URI=f"pvc://models/iris/{run}",
        MODELWERK_TERMINATION_MESSAGE_PATH=str(workdir / "termination-log"),
    )
    if seed is not None:
        env["MODELWERK_SEED"] = str(seed)
    return subprocess.run(
        [PYTHON, "-m", "modelwerk.trainers.iris"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def train(workdir: Path, **kwargs: Any) -> Trained:
    done = run_trainer(workdir, **kwargs)
    assert done.returncode == 0, done.stderr
    text = (workdir / "termination-log").read_text(encoding="utf-8")
    return Trained(
        artifact=workdir / "output" / "model.joblib",
        report=parse_report(text),
        stdout=done.stdout,
        termination_text=text,
    )


class Server:
    """A server subprocess in its own session, so stopping it reaches its workers too."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], logdir: Path) -> None:
        logdir.mkdir(parents=True, exist_ok=True)
        # Files, not pipes: a chatty server must never block on a full pipe.
        self.stdout_path = logdir / "stdout.log"
        self.stderr_path = logdir / "stderr.log"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                list(argv), env=dict(env), stdout=out, stderr=err, start_new_session=True
            )

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def wait_exit(self, timeout: float = START_TIMEOUT) -> int:
        return self.proc.wait(timeout=timeout)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM to the whole group, SIGKILL if it lingers; returns the leader's exit code."""
        if self.proc.poll() is None:
            _signal_group(self.proc.pid, signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait(timeout=timeout)
        # Workers of a finished leader may still be around: end them by pid.
        for pid in _group_members(self.proc.pid):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return code


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command: state, ppid, pgrp, ...
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


@contextmanager
def running(argv: Sequence[str], env: Mapping[str, str], logdir: Path) -> Iterator[Server]:
    server = Server(argv, env, logdir)
    try:
        yield server
    finally:
        server.terminate()


def wait_until(
    condition: Callable[[], bool],
    *,
    server: Server | None = None,
    timeout: float = START_TIMEOUT,
    interval: float = 0.1,
    what: str = "condition",
) -> None:
    """Poll ``condition`` until true; fail early with the server's stderr if it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if server is not None and server.proc.poll() is not None:
            raise AssertionError(
                f"server exited with {server.proc.returncode} while waiting for {what}:\n"
                + server.stderr
            )
        time.sleep(interval)
    details = f"\n{server.stderr}" if server is not None else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{details}")


@dataclass(frozen=True)
class HttpResult:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(method: str, url: str, payload: Any = None, *, raw: bytes | None = None) -> HttpResult:
    data = raw if raw is not None else (None if payload is None else json.dumps(payload).encode())
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return HttpResult(response.status, response.read())
    except urllib.error.HTTPError as err:
        return HttpResult(err.code, err.read())


def responds(url: str, status: int = 200) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return http("GET", url).status == status
        except OSError:  # not listening yet
            return False

    return check


Samples = list[tuple[str, dict[str, str], float]]


def scrape(url: str) -> Samples:
    result = http("GET", url)
    assert result.status == 200, result.body
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(result.body.decode())
        for sample in family.samples
    ]


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels`` (Seldon adds more)."""
    return sum(
        value
        for sample_name, sample_labels, value in samples
        if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items())
    )


def present(samples: Samples, name: str, **labels: str) -> bool:
    return any(
        sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items())
        for sample_name, sample_labels, _ in samples
    )
