"""The end-to-end tier shares the integration tier's fixtures: the real control plane, our CRDs
and the upstream ones, and a restricted namespace per test.

Not `operator`: each conftest that exports a fixture gets its own instance of it, so a second
session operator started from here would keep running, watching the session's namespaces, while
the integration tier's own one runs its tests (pytest runs tests/e2e first). The e2e tests start
an operator of their own and pause any the session has running
(tests.e2e.helpers.webhook_operator)."""

from __future__ import annotations

from tests.integration.conftest import crds, kubeconfig, namespace, upstream_crds

__all__ = ["crds", "kubeconfig", "namespace", "upstream_crds"]
