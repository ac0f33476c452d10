"""The JobSet controller as a local process against the test cluster, as a user's cluster runs it
in a pod: built from its pinned Go module by hack/build-component.sh (on a fresh machine the
first call builds it, a few minutes), its CRD read from the Go module cache (or the folder in
MODELWERK_JOBSET_CRDS), never copied into this repository.

Its webhooks (defaulting and validating JobSets, mutating pods for exclusive placement) are
served by the process with a throwaway self-signed certificate, as its manager insists on a
certificate to start, but are not registered with the apiserver: an out-of-cluster process has
no Service for a webhook configuration to name. The operator's JobSets carry every field the
defaulting webhook would set (builders/jobset.py), so nothing depends on it."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.integration.cluster import ROOT, kubectl, wait_for
from tests.integration.conftest import free_port, wait_established

COMPONENT = ROOT / "hack" / "components" / "jobset"
MODULE = "sigs.k8s.io/jobset"


def build(name: str) -> Path:
    """The component's bin directory, built first if need be (progress on stderr)."""
    proc = subprocess.run(
        [str(ROOT / "hack" / "build-component.sh"), name],
        stdout=subprocess.PIPE,
        stderr=sys.stderr,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"hack/build-component.sh {name} failed ({proc.returncode})")
    return Path(proc.stdout.strip().splitlines()[-1])


def module_dir(component: Path, module: str) -> Path:
    """Where the Go module cache holds the version of `module` that `component` pins."""
    text = (component / "go.mod").read_text()
    found = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", text, re.M)
    if found is None:
        raise RuntimeError(f"{module} is not required in {component}/go.mod")
    cache = subprocess.run(
        ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return Path(cache) / f"{module}@{found.group(1)}"


def component_crds(component: Path, module: str, variable: str) -> Path:
    """A controller's CRDs: the folder in env `variable`, else its pinned module's
    config/components/crd/bases (JobSet's and Kueue's kubebuilder layout)."""
    given = os.environ.get(variable)
    folder = (
        Path(given)
        if given
        else module_dir(component, module) / "config" / "components" / "crd" / "bases"
    )
    if not folder.is_dir():
        raise RuntimeError(f"{module} CRDs not found in {folder} ({variable})")
    return folder


def jobset_crds() -> Path:
    return component_crds(COMPONENT, MODULE, "MODELWERK_JOBSET_CRDS")


def self_signed(folder: Path) -> Path:
    """tls.crt and tls.key for 127.0.0.1, the names controller-runtime's webhook server reads."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(folder / "tls.key"), "-out", str(folder / "tls.crt"),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return folder


class ControllerProcess:
    """A controller-runtime manager (JobSet's, Kueue's) as a local process: started with a
    kubeconfig, ready when its /readyz answers, its output in `workdir/<log_name>`."""

    name = "controller"
    log_name = "controller.log"

    def __init__(self, kubeconfig: str, workdir: Path, webhook_port: int, probe_port: int) -> None:
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.probe_port = probe_port
        self.webhook_port = webhook_port
        self.log_path = workdir / self.log_name
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, bin_dir: Path) -> None:
        """Writes the controller's configuration and `launch`es it from `bin_dir`."""
        raise NotImplementedError

    def launch(self, command: list[str], timeout: float) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "KUBECONFIG": self.kubeconfig},
        )
        wait_for(f"{self.name} ready", self.ready, timeout=timeout)

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"the {self.name} exited:\n{self.log()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.probe_port}/readyz", timeout=2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class JobSetController(ControllerProcess):
    name = "JobSet controller"
    log_name = "jobset-controller.log"

    def start(self, bin_dir: Path) -> None:
        certs = self_signed(self.workdir / "certs")
        config = self.workdir / "config.yaml"
        config.write_text(
            "apiVersion: config.jobset.x-k8s.io/v1alpha1\n"
            "kind: Configuration\n"
            "internalCertManagement:\n  enable: false\n"
            f"webhook:\n  host: 127.0.0.1\n  port: {self.webhook_port}\n  certDir: {certs}\n"
            f"health:\n  healthProbeBindAddress: 127.0.0.1:{self.probe_port}\n"
            "leaderElection:\n  leaderElect: false\n"
        )
        command = [
            str(bin_dir / "jobset-controller"),
            f"--config={config}",
            "--metrics-bind-address=0",  # no metrics server (it wants TLS and authn too)
            "--zap-log-level=info",
        ]
        self.launch(command, timeout=90)


def install_crds(folder: Path) -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(folder), timeout=120)


@contextlib.contextmanager
def running[C: ControllerProcess](
    controller: type[C], component: str, crds: Path, kubeconfig: str, workdir: Path
) -> Iterator[C]:
    """The controller built (hack/build-component.sh `component`), its CRDs installed and
    Established (left installed), running until the block ends."""
    bin_dir = build(component)
    install_crds(crds)
    wait_established(crds)
    proc = controller(kubeconfig, workdir, free_port(), free_port())
    proc.start(bin_dir)
    try:
        yield proc
    finally:
        proc.stop()
