"""Several native server processes on one port (``MODELWERK_WORKERS`` > 1).

One Python process runs the model on one core at a time (the GIL); the benchmark shows a
second process on the same port nearly doubling the requests per second a pod answers. The
design keeps the single process' guarantees:

- the first process is the one a pod starts: it opens the port before fetching (liveness holds
  during a slow download), fetches the artifact once, verifies its digest and loads it, as with
  one worker. Only then does it start the others, with the verified local copy: each verifies
  the digest again before unpickling it, and opens the port (SO_REUSEPORT, so the kernel spreads
  connections over the processes) only once loaded, so every process that accepts is ready;
- metrics count in files shared by the processes (prometheus_client's multiprocess mode in a
  fresh directory under the temp dir, an emptyDir in a pod): any process answers /metrics with
  the sums over all of them, so the drift sums stay exact;
- a worker that dies is started again (its counts so far stay in its file, so no counter goes
  backwards); one that refuses its artifact or configuration stops the server with its exit
  code; SIGTERM reaches every worker, each drains its requests, and the first exits last.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Final

from modelwerk.serving import config as cfg

log = logging.getLogger(__name__)

MULTIPROC_DIR: Final = "PROMETHEUS_MULTIPROC_DIR"
# Internal: set in the environment of the workers the first process starts (its pid).
ENV_WORKER_OF: Final = "MODELWERK_WORKER_OF"
RESTART_DELAY_SECONDS: Final = 1.0


def prepare(workers: int) -> Path | None:
    """Must run before prometheus_client is imported (it picks its value class on import).
    Returns the metrics directory if it made one (for the first process to remove at exit)."""
    if workers > 1 and not os.environ.get(MULTIPROC_DIR):
        made = tempfile.mkdtemp(prefix="modelwerk-metrics-")
        os.environ[MULTIPROC_DIR] = made
        return Path(made)
    return None


def parent() -> int | None:
    """The first process' pid if this is one of the workers it started."""
    value = os.environ.get(ENV_WORKER_OF)
    return int(value) if value and value.isdigit() else None


class Workers:
    """The first process' view of the others: start, watch, restart, stop."""

    def __init__(self, config: cfg.ServerConfig, verified: Path) -> None:
        self.count = config.workers - 1
        env = dict(os.environ)
        env.update(
            {
                cfg.ENV_MODEL_URI: str(verified),
                cfg.ENV_MODEL_DIGEST: config.digest,
                cfg.ENV_MODEL_NAME: config.model_name,
                cfg.ENV_MODEL_VERSION: config.model_version,
                cfg.ENV_HOST: config.host,
                cfg.ENV_PORT: str(config.port),
                cfg.ENV_WORKERS: str(config.workers),
                cfg.ENV_ACCESS_LOG: "true" if config.access_log else "false",
                ENV_WORKER_OF: str(os.getpid()),
            }
        )
        if config.feature_names:
            env[cfg.ENV_FEATURE_NAMES] = ",".join(config.feature_names)
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []
        self.stopping = False

    def _spawn(self) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "modelwerk.serving", "--runtime", "native"]
        return subprocess.Popen(argv, env=self.env)

    def start(self) -> None:
        self.procs = [self._spawn() for _ in range(self.count)]
        log.info("started %d more worker(s): %s", self.count, [p.pid for p in self.procs])

    async def watch(self) -> int:
        """Until stopped: restart workers that die; return an exit code that must end the
        server (a worker refusing its artifact or configuration), else 0."""
        while not self.stopping:
            await asyncio.sleep(RESTART_DELAY_SECONDS)
            for index, proc in enumerate(self.procs):
                code = proc.poll()
                if code is None or self.stopping:
                    continue
                if code in (cfg.EXIT_CONFIG, cfg.EXIT_ARTIFACT):
                    log.error("worker %d refused to serve (exit code %d): stopping", proc.pid, code)
                    return code
                log.warning("worker %d exited with %d: starting another", proc.pid, code)
                self.procs[index] = self._spawn()
        return 0

    def terminate(self) -> None:
        self.stopping = True
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    async def wait(self, grace: float) -> None:
        for proc in self.procs:
            try:
                await asyncio.to_thread(proc.wait, grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)


async def orphaned(first: int) -> None:
    """Returns when the first process is gone (a worker then stops too)."""
    while True:
        if os.getppid() != first:
            return
        await asyncio.sleep(1.0)
