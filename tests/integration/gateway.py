"""The Gateway API's CRDs (pinned in hack/components/gateway-api, read from the Go module cache
by hack/gateway-api-crds.sh), installed for one test and removed after it: with them every
native Deployment gets an HTTPRoute and a Service per version, which other tests do not expect."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.integration.cluster import ROOT, kubectl, wait_for

# The CRDs the route needs (its parents and cross-namespace grants); not the experimental
# channel's, nor the ValidatingAdmissionPolicy beside them.
FILES = ("gatewayclasses", "gateways", "httproutes", "referencegrants")


def crd_folder() -> Path:
    out = subprocess.run(
        [str(ROOT / "hack" / "gateway-api-crds.sh")],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return Path(out.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def gateway_api_crds() -> Iterator[Path]:
    folder = crd_folder()
    paths = [folder / f"gateway.networking.k8s.io_{name}.yaml" for name in FILES]
    names = [f"{name}.gateway.networking.k8s.io" for name in FILES]
    args = [arg for p in paths for arg in ("-f", str(p))]
    kubectl("apply", "--server-side", "--force-conflicts", *args, timeout=120)
    wait_for(
        "the Gateway API CRDs Established",
        lambda: all(
            kubectl(
                "get",
                "crd",
                n,
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Established')].status}",
                check=False,
            )
            == "True"
            for n in names
        ),
    )
    try:
        yield folder
    finally:
        try:
            kubectl("delete", "--wait=true", "--ignore-not-found", *args, timeout=120)
        except subprocess.TimeoutExpired:
            # Say what holds them (their Terminating condition names it: instances left, a
            # finalizer), not only that kubectl waited.
            held = kubectl(
                "get", "crd", *names, "--ignore-not-found", "-o",
                "jsonpath={range .items[*]}{.metadata.name}: {.status.conditions}{'\\n'}{end}",
                check=False,
            )  # fmt: skip
            routes = kubectl("get", "httproutes", "-A", "-o", "yaml", check=False)
            raise AssertionError(
                f"the Gateway API CRDs not gone after 120 s:\n{held}\nHTTPRoutes:\n{routes}"
            ) from None
