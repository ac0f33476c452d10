"""The operator's own alerts: a PrometheusRule the Helm chart ships next to the operator.

    ModelwerkOperatorDown             no scrape target of the operator is up, for 5m
                                      (`absent(up{job=~J} == 1)`: covers up == 0 and no target)
    ModelwerkOperatorReconcileErrors  more than 10% of the reconciles of a kind end in an error,
                                      over 10m, for 10m
    ModelwerkOperatorStuckReconciles  the oldest key waiting in a kind's work queue has waited
                                      more than 300 s, for 5m

The series come from modelwerk.metrics. The job selector is a regex (PromQL regexes are
anchored) matching the job label of the operator's scrape; with Prometheus Operator that is the
name of the operator's Service (or the ServiceMonitor's jobLabel). The default is broad; the chart
should pass the exact job. Giving `namespace` also requires the operator's targets to be in it,
so a model server whose job happens to match cannot hide an operator outage.

`operator_rules_yaml` renders the PrometheusRule for the chart or `kubectl apply -f -`; with
`helm=True` the alert templates are escaped so the text can sit in a chart's templates/.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import yaml

from modelwerk.builders.common import Manifest, base_labels
from modelwerk.builders.monitoring import MONITORING_API_VERSION
from modelwerk.builders.promqltext import human, number, promql_string

DEFAULT_JOB: Final = ".*modelwerk.*"
DEFAULT_NAME: Final = "modelwerk-operator"
GROUP_NAME: Final = "modelwerk.operator"
COMPONENT: Final = "operator-monitoring"

RECONCILES_TOTAL: Final = "modelwerk_reconcile_total"
OLDEST_PENDING: Final = "modelwerk_workqueue_oldest_pending_seconds"

ERROR_RATIO: Final = 0.10
ERROR_WINDOW: Final = "10m"
STUCK_SECONDS: Final = 300

ALERT_DOWN: Final = "ModelwerkOperatorDown"
ALERT_RECONCILE_ERRORS: Final = "ModelwerkOperatorReconcileErrors"
ALERT_STUCK: Final = "ModelwerkOperatorStuckReconciles"


def _matchers(job: str, namespace: str | None) -> str:
    inner = f"job=~{promql_string(job)}"
    if namespace is not None:
        inner += f",namespace={promql_string(namespace)}"
    return inner


def build_operator_rule_groups(
    *, job: str = DEFAULT_JOB, namespace: str | None = None
) -> list[Manifest]:
    """The rule groups alone (promtool reads these)."""
    m = _matchers(job, namespace)
    by = "by (namespace, job, kind)"
    errors = f'{RECONCILES_TOTAL}{{{m},result="error"}}'
    total = f"{RECONCILES_TOTAL}{{{m}}}"
    static = {} if namespace is None else {"namespace": namespace}
    return [
        {
            "name": GROUP_NAME,
            "rules": [
                {
                    "alert": ALERT_DOWN,
                    "expr": f"absent(up{{{m}}} == 1)",
                    "for": "5m",
                    "labels": {"severity": "critical", **static},
                    "annotations": {
                        "summary": "The Modelwerk operator is down",
                        "description": (
                            "No Modelwerk operator target has been up for 5m: Models, "
                            "TrainingRuns and Deployments are not reconciled and alert-triggered "
                            "retraining does not run. Check the operator's pods and logs."
                        ),
                    },
                },
                {
                    "alert": ALERT_RECONCILE_ERRORS,
                    "expr": (
                        f"sum {by} (rate({errors}[{ERROR_WINDOW}]))"
                        f" / sum {by} (rate({total}[{ERROR_WINDOW}]))"
                        f" > {number(ERROR_RATIO)}"
                    ),
                    "for": "10m",
                    "labels": {"severity": "warning", **static},
                    "annotations": {
                        "summary": "Modelwerk reconciles of {{ $labels.kind }} are failing",
                        "description": (
                            "{{ $value | humanizePercentage }} of the operator's "
                            "{{ $labels.kind }} reconciles over the last "
                            f"{ERROR_WINDOW} ended in an error (threshold "
                            f"{human(ERROR_RATIO * 100)}%). Check the operator's logs and "
                            "the objects' conditions."
                        ),
                    },
                },
                {
                    "alert": ALERT_STUCK,
                    "expr": (
                        f"max by (namespace, job, kind) ({OLDEST_PENDING}{{{m}}}) > {STUCK_SECONDS}"
                    ),
                    "for": "5m",
                    "labels": {"severity": "warning", **static},
                    "annotations": {
                        "summary": "Modelwerk reconciles of {{ $labels.kind }} are stuck",
                        "description": (
                            "A {{ $labels.kind }} has waited "
                            "{{ $value | humanizeDuration }} in the operator's work queue "
                            f"(threshold {STUCK_SECONDS}s): reconciles are stuck or far "
                            "behind."
                        ),
                    },
                },
            ],
        }
    ]


def build_operator_prometheus_rule(
    namespace: str,
    labels: Mapping[str, str] | None = None,
    *,
    name: str = DEFAULT_NAME,
    job: str = DEFAULT_JOB,
    match_namespace: bool = True,
) -> Manifest:
    """The PrometheusRule, in the operator's namespace. `labels` (e.g. `release: prometheus`)
    are for Prometheus' ruleSelector; ours win on a clash. `match_namespace=False` for a
    Prometheus that scrapes the operator without a namespace label (not via Prometheus
    Operator)."""
    ours = base_labels(COMPONENT)
    return {
        "apiVersion": MONITORING_API_VERSION,
        "kind": "PrometheusRule",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**(labels or {}), **ours},
        },
        "spec": {
            "groups": build_operator_rule_groups(
                job=job, namespace=namespace if match_namespace else None
            )
        },
    }


def to_yaml(manifest: Any) -> str:
    """Block-style YAML, keys in the order built, long expressions on one line."""
    return yaml.safe_dump(manifest, sort_keys=False, width=1_000_000, allow_unicode=True)


def helm_escape(text: str) -> str:
    """Wraps every `{{ ... }}` in a Go raw string, so Helm prints it for Prometheus instead of
    evaluating it: `{{ $value }}` -> ``{{`{{ $value }}`}}``."""
    return re.sub(r"\{\{.*?\}\}", lambda m: "{{`" + m.group(0) + "`}}", text)


def operator_rules_yaml(
    namespace: str,
    labels: Mapping[str, str] | None = None,
    *,
    name: str = DEFAULT_NAME,
    job: str = DEFAULT_JOB,
    match_namespace: bool = True,
    helm: bool = False,
) -> str:
    text = to_yaml(
        build_operator_prometheus_rule(
            namespace, labels, name=name, job=job, match_namespace=match_namespace
        )
    )
    return helm_escape(text) if helm else text
