"""Fixtures of the fault suite: the integration tier's control plane and CRDs, a namespace per
scenario outside the session operator's pattern (each scenario runs its own operators), and the
figures table printed at the end of the session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cluster import get, kubectl, wait_for
from tests.integration.conftest import crds, kubeconfig
from tests.reliability import figures

__all__ = ["crds", "kubeconfig"]


@pytest.fixture
def own_namespace(kubeconfig: str, crds: None) -> Iterator[str]:
    """Not `SESSION_PREFIX*`: the integration tier's session operator, if this pytest session
    started one, never acts here; only the scenario's own operators do."""
    name = f"rel-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    wait_for("default service account", lambda: get("serviceaccount", "default", name))
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not figures.ROWS:
        return
    terminalreporter.section("reliability figures")
    terminalreporter.write(figures.table())
    out = os.environ.get("MODELWERK_RELIABILITY_OUT")
    if out:
        figures.write(Path(out))
        terminalreporter.write_line(f"written to {out}")
