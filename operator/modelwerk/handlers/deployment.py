from __future__ import annotations

from typing import Any

import kopf

from modelwerk import constants
from modelwerk.handlers.common import observe
from modelwerk.wiring import deployment_of_child

CHILD = {constants.LABEL_DEPLOYMENT: kopf.PRESENT}


@kopf.on.event(constants.GROUP, constants.VERSION, constants.DEPLOYMENT_PLURAL)
def deployment_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    key = observe(memo.runtime, "Deployment", event, body)
    memo.runtime.enqueue("Deployment", *key)


def _child(store: str, event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo) -> None:
    observe(memo.runtime, store, event, body)
    if (owner := deployment_of_child(body)) is not None:
        memo.runtime.enqueue("Deployment", *owner)


@kopf.on.event("apps", "v1", "deployments", labels=CHILD)
def apps_deployment_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _child("apps/Deployment", event, body, memo)


@kopf.on.event("", "v1", "services", labels=CHILD)
def service_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _child("Service", event, body, memo)


@kopf.on.event("autoscaling", "v2", "horizontalpodautoscalers", labels=CHILD)
def hpa_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _child("HorizontalPodAutoscaler", event, body, memo)


@kopf.on.event("policy", "v1", "poddisruptionbudgets", labels=CHILD)
def pdb_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _child("PodDisruptionBudget", event, body, memo)


@kopf.on.event("machinelearning.seldon.io", "v1", "seldondeployments", labels=CHILD)
def seldon_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _child("SeldonDeployment", event, body, memo)


@kopf.on.event("monitoring.coreos.com", "v1", "prometheusrules", labels=CHILD)
def prometheusrule_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _child("PrometheusRule", event, body, memo)


@kopf.on.event("monitoring.coreos.com", "v1", "servicemonitors", labels=CHILD)
def servicemonitor_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _child("ServiceMonitor", event, body, memo)


@kopf.on.event("monitoring.coreos.com", "v1", "podmonitors", labels=CHILD)
def podmonitor_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _child("PodMonitor", event, body, memo)
