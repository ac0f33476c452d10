"""The Kueue controller manager as a local process against the test cluster, as a user's cluster
runs it in a pod: built from its pinned Go module (hack/components/kueue) by
hack/build-component.sh, its CRDs read from the Go module cache (or the folder in
MODELWERK_KUEUE_CRDS), never copied into this repository.

Its webhooks are served with a throwaway certificate (its manager wants one to start) but not
registered: an out-of-cluster process has no Service for a webhook configuration to name. So
nothing defaults or suspends Jobs on create here: the operator creates a queued run's Job
suspended itself (builders/kueue.py), which is the point of the test. Kueue's internal
certificate management is off (it would write a Secret in its own namespace and patch webhook
configurations), as are leader election, the metrics server and the visibility API server.

Without internal certificate management Kueue v0.17 reads a metrics certificate from the fixed
path /etc/kueue/metrics/certs (even with metrics off) and exits without one. Rather than write
into this machine's /etc, the process runs in a mount namespace of its own where /etc is an
overlay of the real one with that folder added (unshare and overlayfs, as root, which the tests
are)."""

from __future__ import annotations

from pathlib import Path

from tests.integration.engines import ROOT, ControllerProcess, component_crds, self_signed

COMPONENT = ROOT / "hack" / "components" / "kueue"
MODULE = "sigs.k8s.io/kueue"


def kueue_crds() -> Path:
    return component_crds(COMPONENT, MODULE, "MODELWERK_KUEUE_CRDS")


def config_yaml(webhook_port: int, probe_port: int, certs: Path) -> str:
    """Kueue's Configuration (config.kueue.x-k8s.io/v1beta2) for a process outside the cluster:
    Jobs and JobSets, only those with a queue-name label (manageJobsWithoutQueueName false, its
    default, so every other test's Jobs are left alone)."""
    return (
        "apiVersion: config.kueue.x-k8s.io/v1beta2\n"
        "kind: Configuration\n"
        "namespace: kube-system\n"
        "manageJobsWithoutQueueName: false\n"
        "internalCertManagement:\n  enable: false\n"
        f"webhook:\n  host: 127.0.0.1\n  port: {webhook_port}\n  certDir: {certs}\n"
        f"health:\n  healthProbeBindAddress: 127.0.0.1:{probe_port}\n"
        'metrics:\n  bindAddress: "0"\n'
        "leaderElection:\n  leaderElect: false\n"
        "integrations:\n  frameworks:\n  - batch/job\n  - jobset.x-k8s.io/jobset\n"
    )


class KueueController(ControllerProcess):
    name = "Kueue controller manager"
    log_name = "kueue-manager.log"

    def start(self, bin_dir: Path) -> None:
        certs = self_signed(self.workdir / "certs")
        config = self.workdir / "config.yaml"
        config.write_text(config_yaml(self.webhook_port, self.probe_port, certs))
        upper, work = self.workdir / "etc" / "upper", self.workdir / "etc" / "work"
        work.mkdir(parents=True, exist_ok=True)
        self_signed(upper / "kueue" / "metrics" / "certs")
        # $0 and $1 the overlay's folders; after the shift, "$@" is the manager's command line.
        overlay = (
            'mount -t overlay overlay -o "lowerdir=/etc,upperdir=$0,workdir=$1" /etc '
            '&& shift && exec "$@"'
        )
        command = [
            "unshare", "--mount", "--propagation", "private",
            "sh", "-c", overlay, str(upper), str(work),
            str(bin_dir / "kueue-manager"),
            f"--config={config}",
            # The visibility API server wants an APIService and delegated authn: not here.
            "--feature-gates=VisibilityOnDemand=false",
            "--zap-log-level=2",
        ]  # fmt: skip
        self.launch(command, timeout=120)
