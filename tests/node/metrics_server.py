"""metrics-server (sigs.k8s.io/metrics-server, built from its pinned Go module by
`hack/build-component.sh metrics-server`) beside the local control plane, as the aggregated
`metrics.k8s.io` API: what kube-controller-manager's HPA controller reads pod CPU from.

It runs on this machine (as the control plane does, not as a pod: the apiserver's aggregator
must reach it, and the pod network is only the real node's), listening on the real node's
InternalIP, which is this machine's address. A selector-less Service with an EndpointSlice names
that address, so the aggregator reaches it through the Service's ClusterIP like an in-cluster
metrics-server. It scrapes the kubelet's `/metrics/resource` (port 20250, hack/node.sh) with the
admin kubeconfig; the kubelet authenticates it by certificate and authorizes it by webhook.
The apiserver proxies with its front-proxy client certificate (signed by the cluster CA, which
is therefore metrics-server's request-header CA) and the caller's identity in X-Remote-User, so
metrics-server authorizes each caller (the HPA controller's service account) by
SubjectAccessReview, as in a cluster.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.integration.cluster import apply, get, kubectl, wait_for
from tests.node.monitoring import component_bin, server_and_ca

SERVICE = "metrics-server"
API_SERVICE = "v1beta1.metrics.k8s.io"


def free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def objects(address: str, port: int) -> list[dict[str, Any]]:
    """The Service, its EndpointSlice (this machine's address) and the APIService."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": "kube-system"},
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": SERVICE,
                "namespace": "kube-system",
                "labels": {
                    "kubernetes.io/service-name": SERVICE,
                    # Not the EndpointSlice controller's: it leaves the slice alone.
                    "endpointslice.kubernetes.io/managed-by": "modelwerk-tests",
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        },
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": API_SERVICE},
            "spec": {
                "group": "metrics.k8s.io",
                "version": "v1beta1",
                # Its serving certificate is self-signed, as metrics-server's default install's
                # is (`--kubelet-insecure-tls` and this are what its README's test setup uses).
                "insecureSkipTLSVerify": True,
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
                "service": {"name": SERVICE, "namespace": "kube-system", "port": 443},
            },
        },
    ]


def node_metrics(node: str) -> dict[str, Any] | None:
    """The node's usage through the aggregated API, once metrics-server has two scrapes."""
    out = kubectl(
        "get", "--raw", f"/apis/metrics.k8s.io/v1beta1/nodes/{node}", check=False, timeout=30
    )
    try:
        found: dict[str, Any] = json.loads(out)
    except json.JSONDecodeError:
        return None
    return found if found.get("usage") else None


@contextmanager
def metrics_server(kubeconfig: str, node: str, address: str, workdir: Path) -> Iterator[None]:
    _, ca = server_and_ca()
    port = free_port(address)
    argv = [
        str(component_bin("metrics-server")),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        # The apiserver's extension-apiserver-authentication ConfigMap has no request-header CA
        # (hack/cluster.sh sets no --requestheader-client-ca-file): name the CA here instead.
        "--authentication-skip-lookup",
        f"--client-ca-file={ca}",
        f"--requestheader-client-ca-file={ca}",
        "--kubelet-insecure-tls",
        "--kubelet-port=20250",
        "--kubelet-preferred-address-types=InternalIP",
        f"--bind-address={address}",
        f"--secure-port={port}",
        f"--cert-dir={workdir / 'certs'}",
        "--metric-resolution=15s",
    ]
    log = (workdir / "metrics-server.log").open("w")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        for obj in objects(address, port):
            apply(obj, obj["metadata"].get("namespace"))

        def available() -> bool:
            api = get("apiservice", API_SERVICE) or {}
            conditions = (api.get("status") or {}).get("conditions") or []
            return any(c["type"] == "Available" and c["status"] == "True" for c in conditions)

        wait_for(f"APIService {API_SERVICE} Available", available, timeout=120)
        wait_for(f"{node}'s usage in metrics.k8s.io", lambda: node_metrics(node), timeout=120)
        yield
    finally:
        for obj in reversed(objects(address, port)):
            kind = obj["kind"].lower()
            ns = obj["metadata"].get("namespace")
            kubectl(
                "delete", kind, obj["metadata"]["name"], *(["-n", ns] if ns else []),
                "--ignore-not-found", check=False,
            )  # fmt: skip
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
