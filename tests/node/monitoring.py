"""Prometheus the way users run it, for tests/node/test_installed.py: the real Prometheus Operator
(built from its pinned Go module by `hack/build-component.sh prometheus-operator`) runs as a
process on this machine against the local control plane, and turns a `Prometheus` resource plus
every ServiceMonitor, PodMonitor and PrometheusRule into Prometheus' configuration, which it
writes gzipped into the Secret `prometheus-<name>` (and the rules into ConfigMaps).

Prometheus runs beside the cluster, on this machine, with exactly that configuration: the
Prometheus pods the operator's StatefulSet asks for land on kwok nodes (nothing runs them),
because no Prometheus image is built here; from this machine the real node's pod IPs are
routable, so its scrapes reach the serving pods. It is Prometheus built from its Go module
(`hack/build-component.sh prometheus`, the version the Prometheus Operator's module requires):
Debian's package is built without Kubernetes service discovery (`kubernetes_sd_configs` is an
unknown field to it), which the generated configuration uses. Two edits only, what
the pod's volumes and its config-reloader would do: the rule files' directory (the ConfigMaps'
content is written where the config expects a mounted volume) and the reloader's `$(SHARD)` /
`$(POD_NAME)` expansion. It discovers targets through the apiserver (kubernetes_sd, role
endpoints) with a
ServiceAccount token, as set in the Prometheus resource's `apiserverConfig`.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.helpers import Server
from tests.integration.cluster import ROOT, apply, get, get_list, kubectl, wait_for

COMPONENT = ROOT / "hack" / "components" / "prometheus-operator"
MODULE = "github.com/prometheus-operator/prometheus-operator"
NAME = "mw"  # the Prometheus resource: Secret prometheus-mw, rules prometheus-mw-rulefiles-*
RULES_DIR = "/etc/prometheus/rules"  # where the StatefulSet would mount the rule ConfigMaps


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def component_bin(name: str) -> Path:
    """`hack/build-component.sh NAME`'s binary of that name (built on first use)."""
    out = subprocess.run(
        [str(ROOT / "hack" / "build-component.sh"), name],
        capture_output=True, text=True, check=True, timeout=1800,
    ).stdout  # fmt: skip
    return Path(out.strip().splitlines()[-1]) / name


def upstream_crds() -> Path:
    """The CRDs of the pinned module, from the Go module cache (never copied into the repo)."""
    out = subprocess.run(
        ["go", "list", "-m", "-f", "{{.Dir}}", MODULE],
        cwd=COMPONENT, capture_output=True, text=True, check=True,
        env={**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly"},
    ).stdout  # fmt: skip
    return Path(out.strip()) / "example" / "prometheus-operator-crd"


def install_crds() -> None:
    crds = upstream_crds()
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds), timeout=180)
    kubectl("wait", "--for=condition=Established", "-f", str(crds), "--timeout=60s", timeout=90)


def prometheus_access(namespace: str, workdir: Path) -> Path:
    """A ServiceAccount that may discover targets cluster-wide (what a Prometheus pod gets from
    its chart), and a token of it in a file."""
    apply(
        {
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "prometheus"}},
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRole",
                    "metadata": {"name": f"{namespace}-prometheus"},
                    "rules": [
                        {
                            "apiGroups": [""],
                            "resources": ["services", "endpoints", "pods"],
                            "verbs": ["get", "list", "watch"],
                        },
                        {
                            "apiGroups": ["discovery.k8s.io"],
                            "resources": ["endpointslices"],
                            "verbs": ["get", "list", "watch"],
                        },
                    ],
                },
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {"name": f"{namespace}-prometheus"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": f"{namespace}-prometheus",
                    },
                    "subjects": [
                        {"kind": "ServiceAccount", "name": "prometheus", "namespace": namespace}
                    ],
                },
            ],
        },
        namespace,
    )
    token = kubectl("create", "token", "prometheus", "-n", namespace, "--duration=2h").strip()
    path = workdir / "token"
    path.write_text(token)
    return path


def server_and_ca() -> tuple[str, str]:
    config = json.loads(kubectl("config", "view", "--raw", "--minify", "-o", "json"))
    cluster = config["clusters"][0]["cluster"]
    return cluster["server"], cluster["certificate-authority"]


def prometheus_resource(namespace: str, token_file: Path) -> dict[str, Any]:
    server, ca = server_and_ca()
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "Prometheus",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "serviceAccountName": "prometheus",
            # Every monitor and rule of every namespace, as a platform's Prometheus often does.
            "serviceMonitorSelector": {},
            "serviceMonitorNamespaceSelector": {},
            "podMonitorSelector": {},
            "podMonitorNamespaceSelector": {},
            "ruleSelector": {},
            "ruleNamespaceSelector": {},
            "evaluationInterval": "5s",
            # Outside the cluster: the apiserver and the credentials to discover targets with.
            "apiserverConfig": {
                "host": server,
                "tlsConfig": {"caFile": ca},
                "authorization": {"type": "Bearer", "credentialsFile": str(token_file)},
            },
        },
    }


class PrometheusOperator:
    def __init__(self, binary_path: Path, workdir: Path) -> None:
        self.port = free_port()
        config = json.loads(kubectl("config", "view", "--raw", "--minify", "-o", "json"))
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        # It takes no kubeconfig: the apiserver and the cluster admin's client certificate.
        argv = [
            str(binary_path),
            f"--apiserver={cluster['server']}",
            f"--ca-file={cluster['certificate-authority']}",
            f"--cert-file={user['client-certificate']}",
            f"--key-file={user['client-key']}",
            "--prometheus-config-reloader=quay.io/prometheus-operator/prometheus-config-reloader:v0.85.0",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--kubelet-service=",
        ]
        self.server = Server(
            "prometheus-operator", argv, workdir / "prometheus-operator.log",
            f"http://127.0.0.1:{self.port}/healthz",
        )  # fmt: skip

    def start(self) -> None:
        self.server.start(timeout=60)

    def stop(self) -> None:
        self.server.stop()


def generated_config(namespace: str) -> dict[str, Any] | None:
    secret = get("secret", f"prometheus-{NAME}", namespace)
    if not secret or "prometheus.yaml.gz" not in (secret.get("data") or {}):
        return None
    raw = gzip.decompress(base64.b64decode(secret["data"]["prometheus.yaml.gz"]))
    loaded: dict[str, Any] = yaml.safe_load(raw)
    return loaded


def rule_files(namespace: str, into: Path) -> None:
    """The operator's rule ConfigMaps, written where the config's rule_files point (rewritten)."""
    for cm in get_list("configmaps", namespace, f"prometheus-name={NAME}"):
        folder = into / cm["metadata"]["name"]
        folder.mkdir(parents=True, exist_ok=True)
        for key, text in (cm.get("data") or {}).items():
            (folder / key).write_text(text)


def prometheus(
    config: dict[str, Any],
    namespace: str,
    workdir: Path,
    *,
    listen: str = "127.0.0.1",
    port: int | None = None,
) -> tuple[Server, int]:
    """Prometheus with the generated configuration; `listen` other than the loopback when the
    node's pods must reach it (the operator's canary analysis)."""
    rules = workdir / "rules"
    rule_files(namespace, rules)
    config = dict(config)
    config["rule_files"] = [
        str(f).replace(RULES_DIR, str(rules), 1) for f in config.get("rule_files") or []
    ]
    # What the config-reloader beside Prometheus does: expand $(VAR) from its pod's environment
    # (SHARD keeps this shard's targets after the hashmod relabeling; POD_NAME is a label).
    text = yaml.safe_dump(config, sort_keys=False)
    text = text.replace("$(SHARD)", "0").replace("$(POD_NAME)", f"prometheus-{NAME}-0")
    path = workdir / "prometheus.yaml"
    path.write_text(text)
    storage = workdir / "data"
    storage.mkdir(exist_ok=True)
    port = port or free_port()
    argv = [
        str(component_bin("prometheus")),
        f"--config.file={path}",
        f"--storage.tsdb.path={storage}",
        f"--web.listen-address={listen}:{port}",
    ]
    return Server(
        "prometheus", argv, workdir / "prometheus.log", f"http://{listen}:{port}/-/ready"
    ), port


def wait_config_has(namespace: str, job_prefix: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        config = generated_config(namespace)
        jobs = [j["job_name"] for j in (config or {}).get("scrape_configs") or []]
        return config if any(j.startswith(job_prefix) for j in jobs) else None

    return wait_for(
        f"a scrape job {job_prefix}* in the generated config", probe, timeout=120, interval=2
    )
