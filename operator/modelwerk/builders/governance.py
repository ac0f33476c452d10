"""The ValidatingAdmissionPolicy that enforces a Model's spec.protection at apply.

The apiserver evaluates it on every CREATE and UPDATE of a Model (and of models/status), before
anything is stored: a refused alias move fails `kubectl apply` (client- or server-side, any field
manager) with a message naming the rule. The operator is not involved, so a move it would only
notice afterwards never happens. Rules, each named in its message:

    approvers            a protected alias may be set, moved or removed only by its approvers
    requireGate          ... only to a version whose run passed an evaluation gate
    requireDataValidation ... whose run's data validation passed
    metric               ... whose metric lies within the floor/ceiling
    requireCanary        ... that a Deployment of the Model promoted from a canary first
    movedBy              moving one needs annotation modelwerk.io/moved-by = the requester's
                         username; no request may set that annotation to anyone else
    admins               spec.protection may be changed or removed only by its admins
    status               a Model's status is written only by the operator's service account:
                         status.versions[].gate is the evidence the rules read, so a user with
                         RBAC on models/status could otherwise forge it

A move must satisfy both the old and the new spec.protection, so a request that loosens the
policy and moves the alias at once is judged by the stricter. Versions are read from the stored
object's status (oldObject): what the operator registered, not what the request claims. The
chart's binding is scoped to the watched namespaces in namespaced mode.

Break-glass: members of system:masters skip every rule but `movedBy` (the rules on versions
and approvers, admins, status), never the record: `movedBy` judges them like anyone else, so an
admin's move is recorded under the admin's apiserver-checked username, and an admin who omits
the annotation is refused (the message says so). They used to be excluded by a matchCondition,
which let the history's `by` keep the previous mover's name. The status rule is skipped because
the operator may itself run with admin credentials (a local process, the integration tests);
status writes are not judged by `movedBy`: on a models/status write the apiserver keeps the
stored metadata and spec, so it moves no alias and sets no annotation. What an admin can still
do (write status directly, delete the binding) is a request of its own, in the audit log.
"""

from __future__ import annotations

from typing import Any, Final

from modelwerk.api.governance import ANNOTATION_MOVED_BY
from modelwerk.constants import GROUP

OPERATOR_PLACEHOLDER: Final = "__MODELWERK_OPERATOR_USER__"
BREAK_GLASS_GROUP: Final = "system:masters"

_MOVED_BY = f"'{ANNOTATION_MOVED_BY}'"


def _annotation(obj: str) -> str:
    return (
        f"{obj} != null && has({obj}.metadata.annotations) && {_MOVED_BY} in"
        f" {obj}.metadata.annotations ? {obj}.metadata.annotations[{_MOVED_BY}] : ''"
    )


def _member(principals: str) -> str:
    """Is the requester among `principals` (a Principals object, possibly without fields)?"""
    return (
        f"(has({principals}.users) && request.userInfo.username in {principals}.users) ||"
        f" (has({principals}.groups) && request.userInfo.groups.exists(g, g in"
        f" {principals}.groups))"
    )


def _target_has(check: str) -> str:
    """Some registered version is the alias's new target and satisfies `check` (on `v`)."""
    return (
        "variables.versions.exists(v, v.version == variables.newAliases[p.alias] && " + check + ")"
    )


def _aliases(obj: str) -> str:
    return (
        f"{obj} != null && has({obj}.spec) && has({obj}.spec.aliases) ? {obj}.spec.aliases : {{}}"
    )


def _protected(obj: str) -> str:
    return (
        f"{obj} != null && has({obj}.spec) && has({obj}.spec.protection) ?"
        f" {obj}.spec.protection.aliases : []"
    )


_VALUE = "double(v.metrics[p.metric.name])"
VARIABLES: Final = (
    ("isStatus", "has(request.subResource) && request.subResource == 'status'"),
    ("breakGlass", f"'{BREAK_GLASS_GROUP}' in request.userInfo.groups"),
    ("newAliases", _aliases("object")),
    ("oldAliases", _aliases("oldObject")),
    ("policies", f"({_protected('oldObject')}) + ({_protected('object')})"),
    (
        "moved",
        "variables.policies.filter(p, (p.alias in variables.newAliases ?"
        " variables.newAliases[p.alias] : 0) != (p.alias in variables.oldAliases ?"
        " variables.oldAliases[p.alias] : 0))",
    ),
    ("targeted", "variables.moved.filter(p, p.alias in variables.newAliases)"),
    (
        "versions",
        "oldObject != null && has(oldObject.status) && has(oldObject.status.versions) ?"
        " oldObject.status.versions : []",
    ),
    (
        "notApprover",
        "variables.moved.filter(p, !(has(p.approvers) && ("
        + _member("p.approvers")
        + "))).map(p, p.alias)",
    ),
    (
        "failsGate",
        "variables.targeted.filter(p, (!has(p.requireGate) || p.requireGate) && !"
        + _target_has(
            "has(v.gate) && has(v.gate.passed) && v.gate.passed && has(v.gate.metric)"
            " && v.gate.metric != ''"
        )
        + ").map(p, p.alias)",
    ),
    (
        "failsValidation",
        "variables.targeted.filter(p, has(p.requireDataValidation) && p.requireDataValidation"
        " && !"
        + _target_has("has(v.gate) && has(v.gate.dataValidated) && v.gate.dataValidated")
        + ").map(p, p.alias)",
    ),
    (
        "failsMetric",
        "variables.targeted.filter(p, has(p.metric) && !"
        + _target_has(
            f"has(v.metrics) && p.metric.name in v.metrics && (!has(p.metric.min) || {_VALUE}"
            f" >= double(p.metric.min)) && (!has(p.metric.max) || {_VALUE} <="
            " double(p.metric.max))"
        )
        + ").map(p, p.alias + ' (' + p.metric.name + ')')",
    ),
    (
        "promotedCanaries",
        "oldObject != null && has(oldObject.status) && has(oldObject.status.canaryPromotions) ?"
        " oldObject.status.canaryPromotions.map(c, c.version) : []",
    ),
    (
        "failsCanary",
        "variables.targeted.filter(p, has(p.requireCanary) && p.requireCanary &&"
        " !(variables.newAliases[p.alias] in variables.promotedCanaries)).map(p, p.alias)",
    ),
    ("movedBy", _annotation("object")),
    ("oldMovedBy", _annotation("oldObject")),
    (
        "protectionChanged",
        "oldObject != null && has(oldObject.spec) && has(oldObject.spec.protection) &&"
        " (!has(object.spec) || !has(object.spec.protection) ||"
        " object.spec.protection != oldObject.spec.protection)",
    ),
)


def _validation(rule: str, expression: str, message: str) -> dict[str, Any]:
    return {
        "expression": expression,
        "messageExpression": f"'rule {rule}: ' + {message}",
        "reason": "Forbidden",
    }


def _names(variable: str) -> str:
    # An alias protected by both the old and the new spec.protection is in the list twice.
    return f"variables.{variable}.distinct().join(', ')"


# Rules on what a request does to spec: not for status writes (they cannot change spec), nor for
# break-glass. `movedBy` has only the first exemption: the record binds admins too.
_SKIPPED: Final = "variables.isStatus || variables.breakGlass || "

VALIDATIONS: Final = (
    _validation(
        "approvers",
        _SKIPPED + "size(variables.notApprover) == 0",
        "request.userInfo.username + ' may not move protected alias ' + "
        + _names("notApprover")
        + " + ': not among its approvers (spec.protection.aliases[].approvers)'",
    ),
    _validation(
        "requireGate",
        _SKIPPED + "size(variables.failsGate) == 0",
        "'protected alias ' + "
        + _names("failsGate")
        + " + ' may only name a version whose TrainingRun passed an evaluation gate"
        " (status.versions[].gate)'",
    ),
    _validation(
        "requireDataValidation",
        _SKIPPED + "size(variables.failsValidation) == 0",
        "'protected alias ' + "
        + _names("failsValidation")
        + " + ' may only name a version whose TrainingRun passed its data validation'",
    ),
    _validation(
        "metric",
        _SKIPPED + "size(variables.failsMetric) == 0",
        "'protected alias ' + "
        + _names("failsMetric")
        + " + ' may only name a version whose metric lies within spec.protection.aliases[]"
        ".metric'",
    ),
    _validation(
        "requireCanary",
        _SKIPPED + "size(variables.failsCanary) == 0",
        "'protected alias ' + "
        + _names("failsCanary")
        + " + ' may only name a version a Deployment of this Model promoted from a canary first"
        " (status.canaryPromotions)'",
    ),
    _validation(
        "movedBy",
        "variables.isStatus || size(variables.moved) == 0 ||"
        " variables.movedBy == request.userInfo.username",
        f"'moving a protected alias needs annotation {ANNOTATION_MOVED_BY}: ' +"
        " request.userInfo.username + ' in the same request' + (variables.breakGlass ?"
        " ' (break-glass skips the rules on versions and approvers, not the record)' : '')",
    ),
    _validation(
        "movedBy",
        "variables.isStatus || variables.movedBy == variables.oldMovedBy ||"
        " variables.movedBy == '' || variables.movedBy == request.userInfo.username",
        f"'annotation {ANNOTATION_MOVED_BY} may only be set to the requester ('"
        " + request.userInfo.username + ')'",
    ),
    _validation(
        "admins",
        _SKIPPED + "!variables.protectionChanged || (has(oldObject.spec.protection"
        ".admins) && (" + _member("oldObject.spec.protection.admins") + "))",
        "request.userInfo.username + ' may not change spec.protection: not among"
        " spec.protection.admins'",
    ),
    _validation(
        "status",
        "!variables.isStatus || variables.breakGlass ||"
        " request.userInfo.username == variables.operator",
        "'the status of a Model is written only by the operator (' + variables.operator + ')'",
    ),
)


def build_policy_spec(operator_user: str) -> dict[str, Any]:
    """The ValidatingAdmissionPolicy's spec; `operator_user` is the operator's username,
    `system:serviceaccount:<namespace>:<name>`."""
    return {
        "failurePolicy": "Fail",
        "matchConstraints": {
            "resourceRules": [
                {
                    "apiGroups": [GROUP],
                    "apiVersions": ["*"],
                    "operations": ["CREATE", "UPDATE"],
                    "resources": ["models", "models/status"],
                }
            ]
        },
        "variables": [
            {"name": "operator", "expression": f"'{operator_user}'"},
            *({"name": name, "expression": expr} for name, expr in VARIABLES),
        ],
        "validations": [dict(v) for v in VALIDATIONS],
    }
