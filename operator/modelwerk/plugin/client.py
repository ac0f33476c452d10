"""kubectl as the plugin's API client: every read is a `kubectl get ... -o json` and a create is
a `kubectl create -f -`, so the plugin uses the user's kubeconfig, context, credentials and RBAC
exactly as kubectl does. The binary is $KUBECTL_PATH (which newer kubectl versions set for their
plugins) or `kubectl` on the PATH."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelwerk.constants import GROUP

MODELS = f"models.{GROUP}"
TRAININGRUNS = f"trainingruns.{GROUP}"
DEPLOYMENTS = f"deployments.{GROUP}"

JsonObj = dict[str, Any]


class PluginError(Exception):
    """A failure to report on stderr; `code` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


Runner = Callable[[list[str], str | None], "subprocess.CompletedProcess[str]"]


def _subprocess_runner(args: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(args, input=stdin, capture_output=True, text=True, check=False)
    except FileNotFoundError as err:
        raise PluginError(f"cannot run {args[0]}: {err.strerror}") from err


@dataclass(frozen=True)
class Kubectl:
    """kubectl with the user's --kubeconfig/--context/-n; reads JSON, never prints."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    binary: str = field(default_factory=lambda: os.environ.get("KUBECTL_PATH") or "kubectl")
    runner: Runner = _subprocess_runner

    def command(self, *args: str) -> list[str]:
        cmd = [self.binary]
        if self.kubeconfig:
            cmd += ["--kubeconfig", self.kubeconfig]
        if self.context:
            cmd += ["--context", self.context]
        if self.namespace:
            cmd += ["--namespace", self.namespace]
        return [*cmd, *args]

    def run(self, *args: str, stdin: str | None = None) -> str:
        proc = self.runner(self.command(*args), stdin)
        if proc.returncode != 0:
            raise PluginError(
                proc.stderr.strip() or f"kubectl exited {proc.returncode}", proc.returncode
            )
        return proc.stdout

    def get(self, resource: str, name: str) -> JsonObj:
        obj: JsonObj = json.loads(self.run("get", resource, name, "--output", "json"))
        return obj

    def find(self, resource: str, name: str) -> JsonObj | None:
        """Like get, but None when the object does not exist."""
        out = self.run("get", resource, name, "--output", "json", "--ignore-not-found")
        if not out.strip():
            return None
        obj: JsonObj = json.loads(out)
        return obj

    def create(self, manifest: Mapping[str, Any]) -> JsonObj:
        obj: JsonObj = json.loads(
            self.run("create", "--filename", "-", "--output", "json", stdin=json.dumps(manifest))
        )
        return obj
