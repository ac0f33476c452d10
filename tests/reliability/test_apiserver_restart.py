"""Apiserver restart mid-load: the whole local control plane (etcd, kube-apiserver, the
controller manager, the scheduler, kwok) stopped for OUTAGE seconds while TrainingRuns are in
flight, then started again. The operator (through our proxy, with no faults, which counts its
requests: connection failures included) retries without a hot loop while the apiserver is down,
reconnects, and every run, also those created after the restart, converges within a stated
bound, with its version registered once."""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.cluster import apply, get, get_list, kubectl, wait_for
from tests.integration.conftest import OperatorProcess
from tests.integration.trainingruns import (
    as_list,
    model_manifest,
    reference_report,
    run_manifest,
    wait_phase,
)
from tests.reliability import figures
from tests.reliability.apiclient import endpoint
from tests.reliability.proxy import FaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

SCENARIO = "apiserver restart"
OUTAGE = 10.0
# From the apiserver answering again, the control plane itself needs a while before a Job's pod
# runs and completes (the controller manager and the scheduler wait out their own leader
# Leases); we measure that with a plain Job. The operator may take longer by its own reconnect:
# kopf's watch backoff tops out at 20 s (settings.networking.error_backoffs), and a key that
# failed ~5 times during the outage waits at most 16 s more; plus a run's 2-6 s.
OWN_DELAY_BOUND = 30.0
# Down, the operator may retry each watch and failed key with backoff: a handful per second.
MAX_OUTAGE_RATE = 10.0


class ControlPlane:
    """The local control plane hack/cluster.sh made (its kubeconfig is
    $MODELWERK_CACHE/clusters/NAME/kubeconfig, kwokctl's workdir $MODELWERK_CACHE/kwok)."""

    def __init__(self, kubeconfig: str) -> None:
        path = Path(kubeconfig)
        cache, self.name = path.parents[2], path.parent.name
        self.workdir = cache / "kwok"
        self.pids = self.workdir / "clusters" / self.name / "pids"
        kubectl_dir = Path(shutil.which("kubectl") or "kubectl").parent
        self.binary = shutil.which("kwokctl") or str(kubectl_dir / "kwokctl")

    def _kwokctl(self, *args: str) -> None:
        env = {**os.environ, "KWOK_WORKDIR": str(self.workdir)}
        subprocess.run(
            [self.binary, "--name", self.name, *args],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def stop(self) -> None:
        """Returns once every component has exited (kwokctl only signals them: a start right
        after finds the apiserver's port still taken)."""
        pids = [int(p.read_text()) for p in self.pids.glob("*.pid")]
        self._kwokctl("stop", "cluster")

        def exited() -> bool:
            return not any(Path(f"/proc/{pid}").exists() for pid in pids)

        wait_for("the control plane's processes to exit", exited, timeout=60)

    def start(self) -> None:
        self._kwokctl("start", "cluster")
        wait_for("the apiserver ready", apiserver_ready, timeout=120, interval=0.5)
        # kwok's stand-in kubelets take a node only once its Lease is free, and the stopped
        # controller's Leases (200 s) outlive it: without this, pods would wait minutes for a
        # "kubelet". A real kubelet keeps its identity across restarts and renews its own.
        kubectl("delete", "leases", "--all", "-n", "kube-node-lease")


PROBE_JOB = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "plane-probe"},
    "spec": {
        "backoffLimit": 0,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 1000,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": "probe",
                        "image": "registry.example.com/probe:1",
                        "env": [{"name": "KWOK_SIM_DURATION", "value": "1s"}],
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]},
                        },
                    }
                ],
            }
        },
    },
}


def job_complete(ns: str, name: str) -> bool:
    job = get("job", name, ns) or {}
    return any(
        c["type"] == "Complete" and c["status"] == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


def apiserver_ready() -> bool:
    return kubectl("get", "--raw", "/readyz", check=False, timeout=5).strip() == "ok"


def test_the_operator_reconnects_and_converges_after_an_apiserver_restart(
    kubeconfig: str, own_namespace: str, tmp_path: Path
) -> None:
    if os.environ.get("MODELWERK_TEST_KUBECONFIG"):
        pytest.skip("restarts the control plane hack/cluster.sh made, not a given cluster")
    ns = own_namespace
    runs = figures.sized(20, 200)
    report = reference_report().text
    proxy = FaultProxy(endpoint(kubeconfig))
    proxy.start()
    operator = OperatorProcess(
        proxy.kubeconfig(tmp_path / "kubeconfig"), tmp_path / "operator.log", "--namespace", ns
    )
    try:
        operator.start()
        apply(model_manifest("iris"), ns)
        before = [f"before-{i:04d}" for i in range(runs)]
        # Runs of 2 to 6 s, so that the restart comes with some finished and some in flight.
        apply(
            as_list(
                *(
                    run_manifest(n, "iris", report=report, sim={"DURATION": f"{2 + (i % 5)}s"})
                    for i, n in enumerate(before)
                )
            ),
            ns,
        )
        wait_for(
            "the first runs registered",
            lambda: (get("model", "iris", ns) or {}).get("status", {}).get("versions"),
            timeout=60,
        )
        control = ControlPlane(kubeconfig)
        control.stop()
        down = time.monotonic()
        deadline = down + OUTAGE
        while time.monotonic() < deadline:
            assert operator.proc is not None, operator.log()
            assert operator.proc.poll() is None, operator.log()
            time.sleep(0.5)
        outage = proxy.log.snapshot(since=down)
        control.start()
        up = time.monotonic()
        apply(PROBE_JOB, ns)
        after = [f"after-{i:04d}" for i in range(runs)]
        apply(as_list(*(run_manifest(n, "iris", report=report) for n in after)), ns)
        wait_for("the probe Job complete", lambda: job_complete(ns, "plane-probe"), timeout=180)
        plane = time.monotonic() - up
        for name in before + after:
            wait_phase(ns, name, "Succeeded", timeout=plane + OWN_DELAY_BOUND + 60)
        converged = time.monotonic() - up
        versions = (get("model", "iris", ns) or {}).get("status", {}).get("versions") or []
        jobs = collections.Counter(
            j["metadata"]["labels"]["modelwerk.io/trainingrun"]
            for j in get_list("jobs", ns, "modelwerk.io/trainingrun")
        )
        log = operator.log()
        alive = operator.proc is not None and operator.proc.poll() is None
    finally:
        operator.kill()
        proxy.stop()

    rate = len(outage) / (up - down)
    figures.record(SCENARIO, "runs in flight / created after the restart", f"{runs} / {runs}")
    figures.record(SCENARIO, "control plane down, stop to ready again", f"{up - down:.1f} s")
    figures.record(
        SCENARIO, "operator requests/s while down", f"{rate:.1f}", f"≤ {MAX_OUTAGE_RATE:g}"
    )
    figures.record(SCENARIO, "apiserver ready → a plain Job complete", f"{plane:.1f} s")
    figures.record(
        SCENARIO,
        "apiserver ready → all runs Succeeded",
        f"{converged:.1f} s",
        f"≤ plain Job + {OWN_DELAY_BOUND:g} s",
    )
    figures.record(
        SCENARIO,
        "operator exits / tracebacks",
        f"{int(not alive)} / {log.count('Traceback')}",
        "0 / 0",
    )
    assert sorted(v["version"] for v in versions) == list(range(1, 2 * runs + 1)), versions
    assert jobs == dict.fromkeys(before + after, 1), jobs
    assert alive, log[-3000:]
    assert rate <= MAX_OUTAGE_RATE, collections.Counter((e.method, e.path) for e in outage)
    assert converged <= plane + OWN_DELAY_BOUND, (converged, plane)
    assert "Traceback" not in log, log[-5000:]
