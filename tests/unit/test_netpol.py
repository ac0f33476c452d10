"""builders/netpol.py: the serving and training pods' NetworkPolicies, and the option's parsing
(what the chart's workloadNetworkPolicy values become)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from modelwerk.api import Deployment
from modelwerk.api.trainingrun import TrainingRun
from modelwerk.builders.netpol import (
    NetworkPolicyConfig,
    NetworkPolicyConfigError,
    build_serving_policy,
    build_training_policy,
)
from tests.unit.test_job_builder import RUN_UID, run_body
from tests.unit.test_serving_builder import BODY

GATEWAY = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway"}}}
STORE = {"to": [{"ipBlock": {"cidr": "10.0.0.5/32"}}], "ports": [{"port": 9000}]}
CONFIG = NetworkPolicyConfig(ingress_from=(GATEWAY,), egress=(STORE,))
DNS = {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
MANAGED = {
    "app.kubernetes.io/managed-by": "modelwerk",
    "app.kubernetes.io/part-of": "modelwerk",
}


def test_serving_policy() -> None:
    assert build_serving_policy(Deployment.from_body(BODY), BODY, CONFIG) == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": "iris-serving",
            "namespace": "ml-team",
            "labels": {
                **MANAGED,
                "app.kubernetes.io/component": "serving",
                "modelwerk.io/deployment": "iris",
                "modelwerk.io/model": "iris",
            },
            "ownerReferences": [
                {
                    "apiVersion": "modelwerk.io/v1alpha1",
                    "kind": "Deployment",
                    "name": "iris",
                    "uid": "0b6f-uid",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "policyTypes": ["Ingress", "Egress"],
            # Every version's pods, either runtime: the label the ServiceMonitor selects too.
            "podSelector": {"matchLabels": {"modelwerk.io/deployment": "iris"}},
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "ml-team"}
                            }
                        },
                        GATEWAY,
                    ]
                }
            ],
            "egress": [DNS, STORE],
        },
    }


def test_training_policy_confines_a_run_to_its_own_workers() -> None:
    body = run_body(workers={"replicas": 2})
    run = TrainingRun.from_body(body)
    name = body["metadata"]["name"]
    pods = {
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/component": "training",
                "modelwerk.io/trainingrun": name,
            }
        }
    }
    policy = build_training_policy(run, body, CONFIG)
    assert policy["metadata"]["name"] == f"{name}-training"
    assert policy["metadata"]["ownerReferences"][0]["uid"] == RUN_UID
    assert policy["metadata"]["labels"]["modelwerk.io/trainingrun"] == name
    assert policy["spec"] == {
        "policyTypes": ["Ingress", "Egress"],
        **pods,
        "ingress": [{"from": [pods]}],
        "egress": [DNS, {"to": [pods]}, STORE],
    }


def test_no_egress_but_dns_and_own_pods_without_a_store() -> None:
    body = run_body()
    policy = build_training_policy(TrainingRun.from_body(body), body, NetworkPolicyConfig())
    assert policy["spec"]["egress"][0] == DNS
    assert len(policy["spec"]["egress"]) == 2


def test_config_as_the_chart_writes_it() -> None:
    text = json.dumps({"ingressFrom": [GATEWAY], "egress": [STORE]})
    assert NetworkPolicyConfig.parse(text) == CONFIG
    assert NetworkPolicyConfig.parse("") is None
    assert NetworkPolicyConfig.parse('{"ingressFrom": [], "egress": []}') == NetworkPolicyConfig()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not JSON"),
        ("[]", "must be a JSON object"),
        ('{"egres": []}', "unknown keys: egres"),
        ('{"egress": {"to": []}}', "egress must be a list of objects"),
        ('{"ingressFrom": ["10.0.0.0/8"]}', "ingressFrom must be a list of objects"),
    ],
)
def test_a_bad_config_is_refused_with_its_reason(text: str, message: str) -> None:
    with pytest.raises(NetworkPolicyConfigError, match=message):
        NetworkPolicyConfig.parse(text)


def test_the_operator_refuses_to_start_on_a_bad_config() -> None:
    env = {**os.environ, "MODELWERK_NETWORK_POLICY": '{"egres": []}'}
    proc = subprocess.run(
        [sys.executable, "-m", "modelwerk", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "MODELWERK_NETWORK_POLICY: unknown keys: egres" in proc.stderr
    assert "Traceback" not in proc.stderr
