"""Governance: protected aliases (enforced by the apiserver's ValidatingAdmissionPolicy, see
builders/governance.py) and the history of what was aliased and served when."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Final

from pydantic import Field, StringConstraints

from modelwerk.api.common import (
    ApiModel,
    DnsLabel,
    Duration,
    MetricName,
    StatusModel,
    list_map,
    rule,
)

ANNOTATION_MOVED_BY: Final = "modelwerk.io/moved-by"
"""Who moved a protected alias: the admission policy refuses the move unless the same request
sets this to the requester's own username, and refuses any change of it naming someone else."""
ANNOTATION_MOVE_REASON: Final = "modelwerk.io/move-reason"
"""Free text copied into the alias history (not checked)."""
HISTORY_LIMIT: Final = 50
"""Entries kept in status.history; older ones are posted as Events when they drop out."""

Principal = Annotated[str, StringConstraints(min_length=1, max_length=253)]


class Principals(ApiModel):
    """Users and groups as the apiserver authenticates them (request.userInfo)."""

    users: Annotated[list[Principal], Field(max_length=32)] = Field(default_factory=list)
    """Usernames, e.g. `alice@example.com` or `system:serviceaccount:ci:promoter`."""
    groups: Annotated[list[Principal], Field(max_length=32)] = Field(default_factory=list)
    """Group names, e.g. `ml-approvers`."""


class MetricFloor(ApiModel):
    """Bounds on one metric of the target version."""

    name: MetricName
    """The metric, as registered on the version (status.versions[].metrics)."""
    min: float | None = None
    """The version's value must be at least this."""
    max: float | None = None
    """The version's value must be at most this (for losses and error rates)."""


class ProtectedAlias(ApiModel):
    """Who may move an alias, and which versions it may point at."""

    alias: DnsLabel
    """The alias, e.g. `production`."""
    approvers: Principals = Field(default_factory=Principals)
    """Who may set, move or remove it; empty: only cluster admins (system:masters)."""
    require_gate: bool = True
    """The target version was registered by a TrainingRun whose evaluation gate judged a metric
    and passed (declared versions and runs without a gate do not qualify)."""
    require_data_validation: bool = False
    """The target version's run declared spec.validation and its data passed it."""
    metric: MetricFloor | None = None
    """The target version's value of this metric must lie within the bounds."""
    require_canary: bool = False
    """The target version was served as a canary first: a Deployment of this Model promoted it
    after every step of its canary analysis (status.canaryPromotions)."""


class Protection(ApiModel):
    """Protected aliases, enforced at apply by the apiserver (the chart's
    ValidatingAdmissionPolicy `governance.enabled`); without that policy installed, nothing."""

    admins: Principals = Field(default_factory=Principals)
    """Who may change or remove this block once set; empty: only cluster admins."""
    aliases: Annotated[
        list[ProtectedAlias],
        Field(min_length=1, max_length=16, json_schema_extra=list_map("alias")),
    ]


class VersionGate(StatusModel):
    """The verdicts a version's run passed, copied at registration: what a protected alias's
    policy reads. Written only by the operator (the policy refuses other writers of status)."""

    metric: str = ""
    """The metric the evaluation gate judged; empty: the run had no gate."""
    passed: bool = False
    """The run passed its evaluation gate (always true for a registered run)."""
    data_validated: bool | None = None
    """The run's data validation passed; absent: the run declared none."""


class CanaryPromotion(StatusModel):
    """A version that passed every step of a canary analysis, the first time it did: the
    evidence a protected alias's `requireCanary` reads. Written only by the operator."""

    version: int
    deployment: str
    """The Deployment (in the Model's namespace) whose canary analysis promoted it."""
    at: datetime


class AliasMoveReason(StrEnum):
    DECLARED = "Declared"
    """spec.aliases set, moved or removed it."""
    PROMOTED = "Promoted"
    """spec.promotion moved it to the best version."""


class AliasMove(StatusModel):
    """One change of status.aliases."""

    at: datetime
    alias: str
    from_: int | None = Field(default=None, alias="from")
    """The version before; absent: the alias was unset."""
    to: int | None = None
    """The version after; absent: the alias was removed."""
    reason: AliasMoveReason
    by: str | None = None
    """Who moved it: the `modelwerk.io/moved-by` annotation, recorded only for protected
    aliases (where the policy has checked it against the requester)."""
    message: Annotated[str, StringConstraints(max_length=256)] | None = None
    """The `modelwerk.io/move-reason` annotation, for a protected alias's move."""


class ServingChangeReason(StrEnum):
    SWITCHED = "Switched"
    """A new stable version became ready and serves."""
    CANARY_STARTED = "CanaryStarted"
    CANARY_STEPPED = "CanaryStepped"
    CANARY_PROMOTED = "CanaryPromoted"
    ROLLED_BACK = "RolledBack"
    CANARY_REMOVED = "CanaryRemoved"
    REVERTED = "Reverted"
    """spec.guard measured a breach: the previous version serves again."""


class ServingChange(StatusModel):
    """One change of what a Deployment serves."""

    at: datetime
    version: int | None = None
    """The stable version serving after the change (status.currentVersion)."""
    canary: int | None = None
    """The canary version after the change; absent: no canary."""
    traffic_percent: int | None = None
    """The canary's share after the change."""
    reason: ServingChangeReason


NO_PROMOTION_OF_PROTECTED = rule(
    "!has(self.spec) || !has(self.spec.promotion) || !has(self.spec.protection)"
    " || !self.spec.protection.aliases.exists(p, p.alias == self.spec.promotion.alias)",
    "spec.promotion.alias must not be a protected alias: protected aliases move only through"
    " spec.aliases, by an approver",
    field_path=".spec.promotion.alias",
)


class Guard(ApiModel):
    """Keep watching a version after it becomes current: on a breach within `window`, switch
    back to the version before it (zero-downtime, as any switch) and never re-promote it here."""

    window: Duration = "10m"
    """How long after it became current a version is watched."""
    interval: Duration = "1m"
    """The PromQL range of each measurement, and how often it is taken."""
    max_error_rate_percent: Annotated[float, Field(ge=0, le=100)] | None = None
    """A breach: more errors than this share of requests."""
    max_latency_p99_ms: Annotated[float, Field(gt=0)] | None = None
    """A breach: a p99 latency above this."""


class GuardState(StrEnum):
    WATCHING = "Watching"
    PASSED = "Passed"
    """The window ended without a breach."""
    REVERTED = "Reverted"
    """Breached: the previous version serves; the version is in rejectedVersions."""


class GuardStatus(StatusModel):
    """The guard over the current version."""

    version: int
    """The version watched (the one that became current)."""
    previous_version: int | None = None
    """What is served again on a breach; absent: nothing to go back to (not watched)."""
    since: datetime
    """When the version became current; the window counts from here."""
    state: GuardState
    error_rate_percent: float | None = None
    latency_p99_ms: float | None = None
    """The last measurement."""
