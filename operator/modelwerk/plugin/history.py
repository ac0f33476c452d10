"""`kubectl modelwerk history model/NAME | deployment/NAME [--at TIME]`: the alias moves of a
Model or the serving changes of a Deployment as a timeline, from their status.history; with
`--at`, what was aliased or served at that moment."""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from modelwerk.plugin.client import DEPLOYMENTS, MODELS, Kubectl, PluginError
from modelwerk.plugin.render import dump, format_table

KINDS = {"model": MODELS, "models": MODELS, "deployment": DEPLOYMENTS, "deployments": DEPLOYMENTS}


def history_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="model/NAME|deployment/NAME")
    parser.add_argument(
        "--at",
        help="a time: RFC 3339 (e.g. 2026-12-01T14:03:00Z; no zone: UTC), or a weekday and a"
        " UTC time, e.g. 'Tuesday 14:03' (the latest such moment not in the future)",
        default=None,
    )
    parser.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WEEKDAY_TIME = re.compile(r"^([a-z]{3,9})\s+([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?(?:\s+utc)?$")


def _weekday_time(text: str, now: datetime) -> datetime | None:
    """`Tuesday 14:03` (or `tue 14:03:30 UTC`): the latest such moment, in UTC, not after
    `now`; None if `text` is not of that form."""
    match = _WEEKDAY_TIME.match(text.strip().lower())
    if match is None:
        return None
    word, hour, minute, second = match.groups()
    days = [d for d in WEEKDAYS if word == d or (len(word) == 3 and d.startswith(word))]
    if len(days) != 1:
        return None
    try:
        moment = now.astimezone(UTC).replace(
            hour=int(hour), minute=int(minute), second=int(second or 0), microsecond=0
        )
    except ValueError:
        return None
    moment -= timedelta(days=(moment.weekday() - WEEKDAYS.index(days[0])) % 7)
    return moment - timedelta(days=7) if moment > now else moment


def parse_time(text: str, now: datetime | None = None) -> datetime:
    weekday = _weekday_time(text, now or datetime.now(UTC))
    if weekday is not None:
        return weekday
    try:
        moment = datetime.fromisoformat(text.strip().replace(" ", "T"))
    except ValueError as err:
        raise PluginError(
            f"--at {text!r}: not a time like 2026-12-01T14:03:00Z or 'Tuesday 14:03'"
        ) from err
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _at(entry: Mapping[str, Any]) -> datetime:
    return parse_time(str(entry["at"]))


def _dash(value: Any) -> str:
    return "-" if value is None else str(value)


def cmd_history(kubectl: Kubectl, args: argparse.Namespace) -> str:
    kind, _, name = args.target.partition("/")
    if kind not in KINDS or not name:
        raise PluginError(f"{args.target!r}: expected model/NAME or deployment/NAME")
    obj = kubectl.get(KINDS[kind], name)
    status = obj.get("status") or {}
    entries = list(status.get("history") or [])
    trimmed = int(status.get("historyTrimmed") or 0)
    is_model = KINDS[kind] == MODELS
    if args.at is not None:
        doc = state_at(entries, parse_time(args.at), is_model, trimmed)
        return dump(doc, args.output) if args.output != "table" else render_state(doc, is_model)
    if args.output != "table":
        return dump({"history": entries, "historyTrimmed": trimmed}, args.output)
    return render_timeline(entries, is_model, trimmed)


def render_timeline(entries: Sequence[Mapping[str, Any]], is_model: bool, trimmed: int) -> str:
    if is_model:
        headers: tuple[str, ...] = ("TIME", "ALIAS", "FROM", "TO", "REASON", "BY")
        rows = [
            [
                e["at"],
                e["alias"],
                _dash(e.get("from")),
                _dash(e.get("to")),
                e["reason"],
                _dash(e.get("by")),
            ]
            for e in entries
        ]
    else:
        headers = ("TIME", "REASON", "VERSION", "CANARY", "TRAFFIC")
        rows = [
            [
                e["at"],
                e["reason"],
                _dash(e.get("version")),
                _dash(e.get("canary")),
                "-" if e.get("canary") is None else f"{e.get('trafficPercent', 0)}%",
            ]
            for e in entries
        ]
    text = format_table(headers, rows) if rows else "No history recorded.\n"
    if trimmed:
        text = f"({trimmed} older entries were posted as Events)\n" + text
    return text


def state_at(
    entries: Sequence[Mapping[str, Any]], moment: datetime, is_model: bool, trimmed: int
) -> dict[str, Any]:
    """What was aliased (Model) or served (Deployment) at `moment`: the last entry at or before
    it, per alias for a Model. Before the first recorded entry it is unknown if entries were
    trimmed, nothing otherwise."""
    before = [e for e in entries if _at(e) <= moment]
    doc: dict[str, Any] = {"at": moment.isoformat().replace("+00:00", "Z")}
    if trimmed and entries and moment < _at(entries[0]):
        doc["unknown"] = f"before the recorded history; {trimmed} older entries are in Events"
        return doc
    if is_model:
        aliases: dict[str, Any] = {}
        for e in before:
            if e.get("to") is None:
                aliases.pop(e["alias"], None)
            else:
                aliases[e["alias"]] = {"version": e["to"], "since": e["at"], "by": e.get("by")}
        doc["aliases"] = aliases
    elif before:
        last = before[-1]
        doc.update({k: last[k] for k in ("version", "canary", "trafficPercent") if k in last})
        doc["since"] = last["at"]
    return doc


def render_state(doc: Mapping[str, Any], is_model: bool) -> str:
    if "unknown" in doc:
        return f"At {doc['at']}: unknown ({doc['unknown']}).\n"
    if is_model:
        aliases = doc.get("aliases") or {}
        if not aliases:
            return f"At {doc['at']}: no alias was set.\n"
        rows = [
            [alias, str(a["version"]), a["since"], _dash(a.get("by"))]
            for alias, a in sorted(aliases.items())
        ]
        return f"At {doc['at']}:\n" + format_table(("ALIAS", "VERSION", "SINCE", "BY"), rows)
    if "since" not in doc:
        return f"At {doc['at']}: nothing was serving.\n"
    served = f"version {_dash(doc.get('version'))}"
    if doc.get("canary") is not None:
        served += f", canary {doc['canary']} at {doc.get('trafficPercent', 0)}%"
    return f"At {doc['at']}: {served} (since {doc['since']}).\n"
