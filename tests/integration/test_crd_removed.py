"""An optional CRD deleted under a running operator: the operator keeps running and serving.

kopf stops the whole operator on a 404 of a watch stream (modelwerk/vanished.py says how and
why it no longer does). With exact namespace names kopf's resource observer is off, so the
deletion always reaches the stream; with a glob it is a race (CI lost it once, after
test_gateway removed the Gateway API CRDs under the session's operator).

Both modes watch one deletion at once (two operators, each on a namespace of its own): CI once
hung deleting the Gateway API CRDs a second time seconds after they had been recreated, so the
CRDs come and go once here.
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import pytest

from tests.integration.cluster import apply, kubectl, wait_for
from tests.integration.conftest import SESSION_PREFIX, OperatorProcess
from tests.integration.gateway import gateway_api_crds
from tests.integration.servers import own_operator
from tests.integration.test_operator_process import model, reconciled

pytestmark = pytest.mark.integration

GONE = "is gone (404"
FATAL = "Multidimensional multitasker has failed"


def test_the_operator_outlives_a_deleted_crd(
    operator: OperatorProcess, kubeconfig: str, namespace: str, tmp_path: Path
) -> None:
    # A second namespace, watched through a glob that matches only it (kopf's observer on).
    globbed = f"{SESSION_PREFIX}{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", globbed)
    crds = gateway_api_crds()
    crds.__enter__()
    try:
        with contextlib.ExitStack() as stack:
            exact = stack.enter_context(
                own_operator(operator, kubeconfig, tmp_path / "exact.log", "--namespace", namespace)
            )
            glob = OperatorProcess(kubeconfig, tmp_path / "glob.log", "--namespace", f"{globbed}*")
            glob.start()
            stack.callback(lambda: glob.stop() if glob.proc is not None else None)
            procs = {namespace: exact, globbed: glob}
            # Reconciling a Model proves the watches (the HTTPRoutes' among them) are running.
            for ns in procs:
                apply(model("before"), ns)
            for ns in procs:
                wait_for(f"Model {ns}/before reconciled", lambda ns=ns: reconciled(ns, "before"))
            crds.__exit__(None, None, None)  # kubectl delete --wait=true: the CRDs are gone
            # No observer to cancel the exact mode's stream: it must meet the 404 and survive it.
            wait_for("the 404 met", lambda: GONE in (log := exact.log()) or FATAL in log)
            for ns in procs:
                apply(model("after"), ns)
            for ns, proc in procs.items():
                wait_for(f"Model {ns}/after reconciled", lambda ns=ns: reconciled(ns, "after"))
                assert proc.healthy(), proc.log()
                assert FATAL not in proc.log(), proc.log()
                # One warning per stream, not one per retry (the retries back off at debug).
                assert proc.log().count(GONE) <= 4, proc.log()  # gatewayclasses..referencegrants
    finally:
        crds.__exit__(None, None, None)
        kubectl("delete", "namespace", globbed, "--wait=false", check=False)
