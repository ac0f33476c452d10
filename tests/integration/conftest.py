"""Fixtures for the integration tier: the real control plane (started once per session, or the
one named by MODELWERK_TEST_KUBECONFIG), our CRDs and the upstream ones, a restricted namespace
per test, and the operator as a real process.

Nothing here skips: in CI a cluster that cannot start fails the run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import yaml

from tests.integration.cluster import ROOT, apply, get, kubectl, models_volume, wait_for

# Every namespace this test session makes starts with this prefix, and the session's operator
# watches only those: two test sessions sharing one cluster never reconcile each other's objects.
SESSION_PREFIX = f"mw{uuid.uuid4().hex[:4]}-"

UPSTREAM_CRDS = Path(
    os.environ.get("MODELWERK_UPSTREAM_CRDS", str(ROOT.parent / "shared" / "upstream-crds"))
)


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    given = os.environ.get("MODELWERK_TEST_KUBECONFIG")
    if given:
        path = given
    else:
        proc = subprocess.run(
            [str(ROOT / "hack" / "cluster.sh"), "up"], capture_output=True, text=True, check=False
        )
        sys.stderr.write(proc.stderr)
        if proc.returncode != 0:
            raise RuntimeError(f"hack/cluster.sh up failed:\n{proc.stderr}")
        path = proc.stdout.strip().splitlines()[-1]
    os.environ["KUBECONFIG"] = path
    if shutil.which("kubectl") is None:
        env = subprocess.run(
            [str(ROOT / "hack" / "cluster.sh"), "env"], capture_output=True, text=True, check=True
        ).stdout
        bin_dir = env.split("PATH=")[1].split(":")[0]
        os.environ["PATH"] = f"{bin_dir}:{os.environ['PATH']}"
    return path


def wait_established(folder: Path) -> None:
    """Until every CRD in `folder` is Established. (`kubectl wait` errors out on a CRD whose
    status the apiserver has not written yet, instead of waiting for it.)"""
    names = [
        str(yaml.safe_load(path.read_text())["metadata"]["name"])
        for path in sorted(folder.glob("*.yaml"))
    ]

    def established() -> bool:
        found = json.loads(kubectl("get", "crd", *names, "-o", "json", check=False) or "{}")
        # One name: kubectl prints the object itself, not a List.
        items = found.get("items", [found] if "metadata" in found else [])
        ready = {
            item["metadata"]["name"]
            for item in items
            if any(
                c.get("type") == "Established" and c.get("status") == "True"
                for c in (item.get("status") or {}).get("conditions") or []
            )
        }
        return ready == set(names)

    wait_for(f"CRDs in {folder} Established", established, timeout=60)


@pytest.fixture(scope="session")
def crds(kubeconfig: str) -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    wait_established(ROOT / "crds")


@pytest.fixture(scope="session")
def upstream_crds(kubeconfig: str) -> Path:
    """The SeldonDeployment, PrometheusRule, ServiceMonitor and PodMonitor CRDs, installed with
    server-side apply (the Seldon one is too large for client-side apply's annotation)."""
    if not UPSTREAM_CRDS.is_dir():
        raise RuntimeError(f"upstream CRDs not found in {UPSTREAM_CRDS} (MODELWERK_UPSTREAM_CRDS)")
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(UPSTREAM_CRDS), timeout=120)
    wait_established(UPSTREAM_CRDS)
    return UPSTREAM_CRDS


@pytest.fixture
def namespace(kubeconfig: str) -> Iterator[str]:
    """A fresh namespace per test, enforcing Pod Security `restricted`: the real apiserver then
    proves every pod the operator generates meets it."""
    name = f"{SESSION_PREFIX}{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    kubectl(
        "label",
        "namespace",
        name,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    wait_for("default service account", lambda: get("serviceaccount", "default", name))
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OperatorProcess:
    """`modelwerk run` as a child process, as a user would start it."""

    def __init__(
        self, kubeconfig: str, log_path: Path, *args: str, env: Mapping[str, str] | None = None
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.args = args
        self.env = dict(env or {})
        self.http_port = free_port()
        self.health_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # CRDs come and go during a test session (Seldon's is deleted and reinstalled): the
        # operator should notice within seconds, not the production default of a minute.
        env = {
            "MODELWERK_CRD_CACHE_SECONDS": "1",
            **os.environ,
            **self.env,
            "KUBECONFIG": self.kubeconfig,
            "MODELWERK_HTTP_HOST": "127.0.0.1",
        }
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modelwerk",
                "run",
                "--http-port",
                str(self.http_port),
                "--health-port",
                str(self.health_port),
                *self.args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        wait_for("operator health endpoint", self.healthy, timeout=60)

    def healthy(self) -> bool:
        import urllib.request

        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"operator exited; log:\n{self.log()}")
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.health_port}/healthz", timeout=2
            ) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def metrics(self) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self.proc = None
        return code

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def operator(
    kubeconfig: str, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(
        kubeconfig,
        tmp_path_factory.mktemp("operator") / "operator.log",
        "--namespace",
        f"{SESSION_PREFIX}*",
    )
    proc.start()
    yield proc
    if proc.proc is not None:
        proc.stop()


@pytest.fixture
def operator_here(
    operator: OperatorProcess,
    kubeconfig: str,
    crds: None,
    upstream_crds: Path,
    namespace: str,
    tmp_path: Path,
) -> Iterator[OperatorProcess]:
    """An operator of the test's own, watching only the test's namespace (the session operator is
    stopped meanwhile), for tests that restart it or count its writes."""
    # Imported here: servers.py imports OperatorProcess from this module.
    from tests.integration.servers import own_operator

    with own_operator(
        operator, kubeconfig, tmp_path / "operator.log", "--namespace", namespace
    ) as p:
        yield p


@pytest.fixture
def models_claim(namespace: str) -> Iterator[str]:
    """A PVC `models` bound to a static local PV that only kwok nodes have, so pods that mount it
    (training writes, serving reads) are scheduled. The PV is cluster-scoped: deleted here, not
    with the namespace."""
    pv = f"{namespace}-models"
    manifest = models_volume(namespace, "/var/lib/modelwerk/models", "type", "kwok")
    try:
        apply(manifest)
        wait_for(
            "PVC models bound",
            lambda: (
                ((get("pvc", "models", namespace) or {}).get("status") or {}).get("phase")
                == "Bound"
            ),
        )
        yield "models"
    finally:
        kubectl("delete", "pvc", "models", "-n", namespace, "--wait=false", check=False)
        kubectl("delete", "pv", pv, "--wait=false", check=False)
