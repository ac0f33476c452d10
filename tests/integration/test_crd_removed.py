"""An optional CRD deleted under a running operator: the operator keeps running and serving.

kopf stops the whole operator on a 404 of a watch stream (modelwerk/vanished.py says how and
why it no longer does). With exact namespace names kopf's resource observer is off, so the
deletion always reaches the stream; with a glob it is a race (CI lost it once, after
test_gateway removed the Gateway API CRDs under the session's operator).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.cluster import apply, wait_for
from tests.integration.conftest import SESSION_PREFIX, OperatorProcess
from tests.integration.gateway import gateway_api_crds
from tests.integration.servers import own_operator
from tests.integration.test_operator_process import model, reconciled

pytestmark = pytest.mark.integration

GONE = "is gone (404"
FATAL = "Multidimensional multitasker has failed"


@pytest.mark.parametrize("mode", ["exact", "glob"])
def test_the_operator_outlives_a_deleted_crd(
    operator: OperatorProcess, kubeconfig: str, namespace: str, tmp_path: Path, mode: str
) -> None:
    scope = namespace if mode == "exact" else f"{SESSION_PREFIX}*"
    crds = gateway_api_crds()
    crds.__enter__()
    try:
        with own_operator(
            operator, kubeconfig, tmp_path / "operator.log", "--namespace", scope
        ) as proc:
            # Reconciling a Model proves the watches (the HTTPRoutes' among them) are running.
            apply(model("before"), namespace)
            wait_for("Model before reconciled", lambda: reconciled(namespace, "before"))
            crds.__exit__(None, None, None)  # kubectl delete --wait=true: the CRDs are gone
            if mode == "exact":
                # No observer to cancel the stream: it must meet the 404 and survive it.
                wait_for("the 404 met", lambda: GONE in (log := proc.log()) or FATAL in log)
            apply(model("after"), namespace)
            wait_for("Model after reconciled", lambda: reconciled(namespace, "after"))
            assert proc.healthy(), proc.log()
            assert FATAL not in proc.log(), proc.log()
            # One warning per stream, not one per retry (the retries back off and log at debug).
            assert proc.log().count(GONE) <= 4, proc.log()  # gatewayclasses...referencegrants
    finally:
        crds.__exit__(None, None, None)
