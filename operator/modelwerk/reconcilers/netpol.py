"""NetworkPolicies of a Deployment's serving pods (a cached child, applied like the others and
pruned when the option goes off) and of a TrainingRun's pods (created once before each
attempt's Job, so no pod of the run ever starts unconfined; not cached: the run's pods change,
its policy does not)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from modelwerk import k8s, kinds
from modelwerk.api.deployment import Deployment
from modelwerk.api.trainingrun import TrainingRun
from modelwerk.builders.netpol import build_serving_policy, build_training_policy
from modelwerk.manager import Manager
from modelwerk.reconcilers.common import apply_children


async def reconcile_serving_policy(mgr: Manager, dep: Deployment, body: Mapping[str, Any]) -> None:
    config = mgr.config.network_policy
    key = (dep.metadata.namespace or "", dep.metadata.name or "")
    owned = list(mgr.store(kinds.NETWORK_POLICY).by_index(kinds.BY_OWNER, key))
    wanted = [] if config is None else [build_serving_policy(dep, body, config)]
    if wanted or owned:
        await apply_children(mgr, kinds.NETWORK_POLICY, wanted, owned)


async def ensure_training_policy(mgr: Manager, run: TrainingRun, owner: Mapping[str, Any]) -> None:
    config = mgr.config.network_policy
    if config is None:
        return
    with contextlib.suppress(k8s.Conflict):  # there already, from an earlier attempt
        await mgr.kube.create(build_training_policy(run, owner, config))
