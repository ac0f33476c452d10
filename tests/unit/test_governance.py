"""Governance's pure parts: the admission policy's spec, the history bookkeeping, and
`kubectl modelwerk history`'s timeline and `--at` answers."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from typing import Any

import pytest

from modelwerk import history
from modelwerk.api.model import Model
from modelwerk.builders.governance import build_policy_spec
from modelwerk.plugin import cli as plugin
from modelwerk.plugin.client import PluginError
from modelwerk.plugin.history import parse_time, render_timeline, state_at

OPERATOR = "system:serviceaccount:modelwerk-system:modelwerk"


def test_policy_matches_models_and_their_status_and_everyone() -> None:
    spec = build_policy_spec(OPERATOR)
    assert spec["failurePolicy"] == "Fail"
    assert spec["matchConstraints"] == {
        "resourceRules": [
            {
                "apiGroups": ["modelwerk.io"],
                "apiVersions": ["*"],
                "operations": ["CREATE", "UPDATE"],
                "resources": ["models", "models/status"],
            }
        ]
    }
    # Cluster admins too: break-glass is a variable the rules read, not a match condition.
    assert "matchConditions" not in spec
    assert spec["variables"][0] == {"name": "operator", "expression": f"'{OPERATOR}'"}
    assert spec["variables"][2] == {
        "name": "breakGlass",
        "expression": "'system:masters' in request.userInfo.groups",
    }
    names = [v["name"] for v in spec["variables"]]
    assert len(names) == len(set(names))
    # Every rule names itself in its message, and is refused as Forbidden.
    rules = [v["messageExpression"].split(":")[0] for v in spec["validations"]]
    assert rules == [
        "'rule approvers",
        "'rule requireGate",
        "'rule requireDataValidation",
        "'rule metric",
        "'rule requireCanary",
        "'rule movedBy",
        "'rule movedBy",
        "'rule admins",
        "'rule status",
    ]
    assert {v["reason"] for v in spec["validations"]} == {"Forbidden"}
    # Break-glass skips every rule but the record (movedBy); status writes skip all but status.
    skip = "variables.isStatus || variables.breakGlass || "
    exemptions = [
        (v["messageExpression"].split(":")[0].removeprefix("'rule "), v["expression"])
        for v in spec["validations"]
    ]
    assert [(rule, expr.startswith(skip)) for rule, expr in exemptions] == [
        ("approvers", True),
        ("requireGate", True),
        ("requireDataValidation", True),
        ("metric", True),
        ("requireCanary", True),
        ("movedBy", False),
        ("movedBy", False),
        ("admins", True),
        ("status", False),
    ]
    moved_by = [
        v for v in spec["validations"] if v["messageExpression"].startswith("'rule movedBy")
    ]
    assert [v["expression"] for v in moved_by] == [
        "variables.isStatus || size(variables.moved) == 0 ||"
        " variables.movedBy == request.userInfo.username",
        "variables.isStatus || variables.movedBy == variables.oldMovedBy ||"
        " variables.movedBy == '' || variables.movedBy == request.userInfo.username",
    ]
    assert "breakGlass" not in "".join(v["expression"] for v in moved_by)
    assert spec["validations"][-1] == {
        "expression": "!variables.isStatus || variables.breakGlass ||"
        " request.userInfo.username == variables.operator",
        "messageExpression": "'rule status: ' + 'the status of a Model is written only by the"
        " operator (' + variables.operator + ')'",
        "reason": "Forbidden",
    }
    # Variables are used after they are defined (the apiserver evaluates them in order).
    for i, var in enumerate(spec["variables"]):
        for later in names[i:]:
            assert f"variables.{later}" not in var["expression"], (var["name"], later)


def _model(**spec: Any) -> Model:
    return Model.from_body(
        {
            "apiVersion": "modelwerk.io/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "iris", "annotations": {"modelwerk.io/moved-by": "alice"}},
            "spec": spec,
        }
    )


AT = "2026-12-01T14:00:00Z"


def test_alias_moves_golden() -> None:
    model = _model(
        aliases={"production": 2},
        promotion={"alias": "candidate", "metric": "accuracy"},
        protection={"aliases": [{"alias": "production"}]},
    )
    moves = history.alias_moves(
        model, {"production": 1, "old": 1}, {"production": 2, "candidate": 3}, AT
    )
    assert moves == [
        {"at": AT, "alias": "candidate", "reason": "Promoted", "to": 3},
        {"at": AT, "alias": "old", "reason": "Declared", "from": 1},
        {"at": AT, "alias": "production", "reason": "Declared", "from": 1, "to": 2, "by": "alice"},
    ]
    assert history.alias_moves(model, {"production": 2}, {"production": 2}, AT) == []


def test_serving_change_reasons() -> None:
    stable = {"currentVersion": 1}
    canary = {
        "currentVersion": 1,
        "canary": {"version": 2, "trafficPercent": 10, "state": "Progressing"},
    }
    stepped = {
        "currentVersion": 1,
        "canary": {"version": 2, "trafficPercent": 50, "state": "Progressing"},
    }
    rolled = {
        "currentVersion": 1,
        "canary": {"version": 2, "trafficPercent": 0, "state": "RolledBack"},
    }
    promoted = {
        "currentVersion": 1,
        "canary": {"version": 2, "trafficPercent": 100, "state": "Promoted"},
    }
    cases = [
        ({}, stable, {"reason": "Switched", "version": 1}),
        (
            stable,
            canary,
            {"reason": "CanaryStarted", "version": 1, "canary": 2, "trafficPercent": 10},
        ),
        (
            canary,
            stepped,
            {"reason": "CanaryStepped", "version": 1, "canary": 2, "trafficPercent": 50},
        ),
        (stepped, rolled, {"reason": "RolledBack", "version": 1, "canary": 2, "trafficPercent": 0}),
        (
            stepped,
            promoted,
            {"reason": "CanaryPromoted", "version": 1, "canary": 2, "trafficPercent": 100},
        ),
        (promoted, {"currentVersion": 2}, {"reason": "Switched", "version": 2}),
        # Promoted in the same write as the version became current (its pods were ready).
        (
            stepped,
            {**promoted, "currentVersion": 2},
            {"reason": "CanaryPromoted", "version": 2, "canary": 2, "trafficPercent": 100},
        ),
        (canary, stable, {"reason": "CanaryRemoved", "version": 1}),
    ]
    for old, new, expected in cases:
        assert history.serving_change(old, new, AT) == {"at": AT, **expected}
    assert history.serving_change(stable, dict(stable), AT) is None


def test_append_bounds_the_list_and_returns_what_dropped() -> None:
    entries = [{"at": AT, "alias": "a", "reason": "Declared", "to": i} for i in range(5)]
    status, dropped = history.append({"history": entries[:3]}, entries[3:], limit=4)
    assert status["history"] == entries[1:]
    assert dropped == entries[:1]
    assert status["historyTrimmed"] == 1
    assert history.dropped_between({"history": entries[:3]}, status) == entries[:1]
    assert history.append({"x": 1}, []) == ({"x": 1}, [])


MODEL_HISTORY = [
    {
        "at": "2026-12-01T13:00:00Z",
        "alias": "production",
        "reason": "Declared",
        "to": 1,
        "by": "alice",
    },
    {"at": "2026-12-01T14:00:00Z", "alias": "candidate", "reason": "Promoted", "to": 3},
    {
        "at": "2026-12-01T15:00:00Z",
        "alias": "production",
        "reason": "Declared",
        "from": 1,
        "to": 2,
        "by": "bob",
    },
]


def test_timeline_golden() -> None:
    assert render_timeline(MODEL_HISTORY, True, 0) == (
        "TIME                   ALIAS        FROM   TO   REASON     BY\n"
        "2026-12-01T13:00:00Z   production   -      1    Declared   alice\n"
        "2026-12-01T14:00:00Z   candidate    -      3    Promoted   -\n"
        "2026-12-01T15:00:00Z   production   1      2    Declared   bob\n"
    )


def test_what_was_aliased_at_a_time() -> None:
    doc = state_at(MODEL_HISTORY, parse_time("2026-12-01 14:03"), True, 0)
    assert doc == {
        "at": "2026-12-01T14:03:00Z",
        "aliases": {
            "production": {"version": 1, "since": "2026-12-01T13:00:00Z", "by": "alice"},
            "candidate": {"version": 3, "since": "2026-12-01T14:00:00Z", "by": None},
        },
    }
    early = state_at(MODEL_HISTORY, parse_time("2026-12-01T12:00:00Z"), True, 4)
    assert "unknown" in early


class _Fake:
    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj

    def __call__(self, args: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
        assert args[args.index("get") + 1 :][:2] == ["deployments.modelwerk.io", "iris"], args
        return subprocess.CompletedProcess(args, 0, json.dumps(self.obj), "")


def test_history_of_a_deployment_at_a_time(capsys: pytest.CaptureFixture[str]) -> None:
    deployment = {
        "status": {
            "history": [
                {"at": "2026-12-01T13:00:00Z", "reason": "Switched", "version": 1},
                {
                    "at": "2026-12-01T14:00:00Z",
                    "reason": "CanaryStarted",
                    "version": 1,
                    "canary": 2,
                    "trafficPercent": 10,
                },
            ]
        }
    }
    code = plugin.main(
        ["history", "deployment/iris", "--at", "2026-12-01T14:03:00Z"], runner=_Fake(deployment)
    )
    assert code == 0
    assert capsys.readouterr().out == (
        "At 2026-12-01T14:03:00Z: version 1, canary 2 at 10% (since 2026-12-01T14:00:00Z).\n"
    )
    code = plugin.main(["history", "deployment/iris"], runner=_Fake(deployment))
    assert capsys.readouterr().out.splitlines()[0].split() == [
        "TIME",
        "REASON",
        "VERSION",
        "CANARY",
        "TRAFFIC",
    ]
    assert plugin.main(["history", "pod/iris"], runner=_Fake(deployment)) == 1


# Thursday 2026-12-03 15:00 UTC.
NOW = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tuesday 14:03", datetime(2026, 12, 1, 14, 3, tzinfo=UTC)),
        ("tue 14:03:30 UTC", datetime(2026, 12, 1, 14, 3, 30, tzinfo=UTC)),
        # Today, earlier: today; today, later: a week ago.
        ("Thursday 14:59", datetime(2026, 12, 3, 14, 59, tzinfo=UTC)),
        ("thu 15:01", datetime(2026, 11, 26, 15, 1, tzinfo=UTC)),
        ("Friday 9:00", datetime(2026, 11, 27, 9, 0, tzinfo=UTC)),
        ("2026-12-01 14:03", datetime(2026, 12, 1, 14, 3, tzinfo=UTC)),
    ],
)
def test_at_takes_a_weekday_and_a_time(text: str, expected: datetime) -> None:
    assert parse_time(text, NOW) == expected


@pytest.mark.parametrize("text", ["Tu 14:03", "Tuesday 25:00", "someday 14:03", "Tuesday"])
def test_at_refuses_what_is_not_a_time(text: str) -> None:
    with pytest.raises(PluginError, match="not a time like"):
        parse_time(text, NOW)
