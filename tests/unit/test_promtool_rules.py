"""The generated alerting rules, run by promtool: `check rules` (syntax, lint) and `test rules`
with the unit tests in tests/promtool/ (input series -> the alerts expected, firing or not).

The rule files are rendered here into a temporary directory, next to copies of the test files,
under the names those files list in `rule_files`:

    rules.yaml           rule_groups(SAMPLE, SERVED): the Deployment below
    operator-rules.yaml  build_operator_rule_groups(namespace=OPERATOR_NAMESPACE)

so the expectations in tests/promtool/*.test.yaml are written against SAMPLE and SERVED.

promtool comes with the Debian package `prometheus` (or set PROMTOOL to a binary). Without it
these tests fail when CI=true and are skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelwerk.api.deployment import Deployment
from modelwerk.builders import rules
from modelwerk.builders.operator_rules import build_operator_rule_groups, to_yaml
from modelwerk.builders.rules import rule_groups

PROMTOOL_TESTS = Path(__file__).resolve().parents[1] / "promtool"
TEST_FILES = sorted(PROMTOOL_TESTS.glob("*.test.yaml"))

SAMPLE = Deployment.from_body(
    {
        "apiVersion": "modelwerk.io/v1alpha1",
        "kind": "Deployment",
        "metadata": {"name": "iris", "namespace": "ml-team", "uid": "0000-iris"},
        "spec": {
            "model": "iris",
            "version": 4,
            "replicas": 2,
            "canary": {"version": 5, "trafficPercent": 10},
            "monitoring": {
                "latencyP99Ms": 250,
                "errorRatePercent": 2,
                "drift": {"threshold": 3.0},
                "labels": {"team": "ml"},
            },
        },
    }
)
# Feature names: an identifier as the SDK reports them; a declared version's baseline may use
# any key, quotes and template braces included.
ODD_FEATURE = 'odd "name" {{x}}'
BASELINE_4 = {
    "features": {
        "sepal_length": {"mean": 5.84, "std": 0.83},
        "temperature": {"mean": -2.0, "std": 1.0},
        ODD_FEATURE: {"mean": 10.0, "std": 2.0},
        "constant": {"mean": 1.0, "std": 0.0},  # skipped: no drift rule
    }
}
# Stable version 4 with a baseline, canary version 5 without one (no drift rules).
SERVED: list[tuple[int, dict[str, Any] | None]] = [(4, BASELINE_4), (5, None)]
OPERATOR_NAMESPACE = "modelwerk-system"


def promtool() -> str:
    path = shutil.which(os.environ.get("PROMTOOL", "promtool"))
    if path is None:
        message = (
            "promtool not found on PATH: install the Debian package `prometheus` "
            "(apt-get install --no-install-recommends prometheus; hack/bootstrap.sh)"
        )
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def rendered_groups() -> dict[str, list[dict[str, Any]]]:
    return {
        "rules.yaml": rule_groups(SAMPLE, SERVED),
        "operator-rules.yaml": build_operator_rule_groups(namespace=OPERATOR_NAMESPACE),
    }


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    for name, groups in rendered_groups().items():
        (tmp_path / name).write_text(to_yaml({"groups": groups}), "utf-8")
    for test_file in TEST_FILES:
        shutil.copy(test_file, tmp_path / test_file.name)
    return tmp_path


def test_check_rules(rules_dir: Path) -> None:
    proc = run("check", "rules", *rendered_groups(), cwd=rules_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_rule_files_are_the_ones_rendered() -> None:
    """Each test file reads exactly the rule files this module writes."""
    assert TEST_FILES, f"no *.test.yaml in {PROMTOOL_TESTS}"
    for test_file in TEST_FILES:
        loaded = yaml.safe_load(test_file.read_text("utf-8"))
        assert set(loaded["rule_files"]) <= set(rendered_groups()), test_file.name


@pytest.mark.parametrize("test_file", TEST_FILES, ids=[f.name for f in TEST_FILES])
def test_promtool_unit_tests(rules_dir: Path, test_file: Path) -> None:
    proc = run("test", "rules", test_file.name, cwd=rules_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_is_tested_firing_and_silent() -> None:
    """Every alert the rules define (and for drift: every feature with a rule) appears in some
    promtool test case with expected alerts and in one expecting none."""
    defined = {
        rule["alert"]
        for groups in rendered_groups().values()
        for group in groups
        for rule in group["rules"]
        if "alert" in rule
    }
    firing: set[str] = set()
    silent: set[str] = set()
    drift_features: set[str] = set()
    for test_file in TEST_FILES:
        for case in yaml.safe_load(test_file.read_text("utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                expected = check.get("exp_alerts") or []
                (firing if expected else silent).add(check["alertname"])
                if check["alertname"] == rules.ALERT_DATA_DRIFT:
                    drift_features |= {a["exp_labels"]["feature"] for a in expected}
    assert defined - firing == set(), "alerts never tested firing"
    assert defined - silent == set(), "alerts never tested silent"
    usable, skipped = rules.drift_features(BASELINE_4)
    assert set(usable) == drift_features
    assert set(skipped) == {"constant"}
