"""Test-side access to the real control plane: kubectl as a user would run it, and polling waits
with deadlines (never a bare sleep)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class KubectlError(Exception):
    def __init__(self, args: Sequence[str], code: int, stderr: str) -> None:
        super().__init__(f"kubectl {' '.join(args)} exited {code}: {stderr.strip()}")
        self.code = code
        self.stderr = stderr


def kubectl(*args: str, input: str | None = None, check: bool = True, timeout: float = 60) -> str:
    proc = subprocess.run(
        ["kubectl", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ,
    )
    if check and proc.returncode != 0:
        raise KubectlError(args, proc.returncode, proc.stderr)
    return proc.stdout


def get(kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
    args = ["get", kind, name, "-o", "json", "--ignore-not-found"]
    if namespace:
        args += ["-n", namespace]
    out = kubectl(*args)
    return json.loads(out) if out.strip() else None


def get_list(
    kind: str, namespace: str | None = None, selector: str | None = None
) -> list[dict[str, Any]]:
    args = ["get", kind, "-o", "json"]
    args += ["-n", namespace] if namespace else ["-A"]
    if selector:
        args += ["-l", selector]
    items: list[dict[str, Any]] = json.loads(kubectl(*args))["items"]
    return items


def apply(manifest: dict[str, Any] | str, namespace: str | None = None, *extra: str) -> str:
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    args = ["apply", "-f", "-", *extra]
    if namespace:
        args += ["-n", namespace]
    return kubectl(*args, input=text)


def wait_for[T](
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float = 60,
    interval: float = 0.25,
) -> T:
    """Polls `probe` until it returns something truthy; fails with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {last!r}")


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    if not obj:
        return None
    for cond in obj.get("status", {}).get("conditions", []):
        if cond.get("type") == type_:
            return dict(cond)
    return None


def models_volume(namespace: str, path: str, node_label: str, node_value: str) -> dict[str, Any]:
    """A PVC `models` in `namespace`, bound to a static local PV at `path` on the nodes labelled
    `node_label=node_value` (so the pods that mount it are scheduled there). The PV is
    cluster-scoped and named after the namespace: the caller deletes it."""
    term = {"matchExpressions": [{"key": node_label, "operator": "In", "values": [node_value]}]}
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": f"{namespace}-models"},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteMany"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": "",
                    "claimRef": {"namespace": namespace, "name": "models"},
                    "local": {"path": path},
                    "nodeAffinity": {"required": {"nodeSelectorTerms": [term]}},
                },
            },
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "models", "namespace": namespace},
                "spec": {
                    "accessModes": ["ReadWriteMany"],
                    "storageClassName": "",
                    "volumeName": f"{namespace}-models",
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            },
        ],
    }
