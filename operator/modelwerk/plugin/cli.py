"""`kubectl modelwerk`: the command line. Each subcommand is one entry of SUBCOMMANDS (its
arguments and what it does), so adding one is adding an entry:

    kubectl modelwerk versions MODEL [-n NS] [-o json|yaml]
    kubectl modelwerk lineage [deployment/]NAME | model/NAME[:VERSION|:ALIAS] | trainingrun/NAME
    kubectl modelwerk rerun RUN [--name NEW] [--dry-run] [-o name|json|yaml]
    kubectl modelwerk runs MODEL [--sort-by METRIC] [-o json|yaml]          (runs.py)
    kubectl modelwerk diff RUN_A RUN_B | MODEL:V1 MODEL:V2 [--all] [-o ...]  (runs.py)
    kubectl modelwerk card MODEL[:VERSION|:ALIAS] [-o markdown|html]       (card.py)
    kubectl modelwerk history model/NAME|deployment/NAME [--at TIME]       (history.py)

Common flags: -n/--namespace, --kubeconfig, --context (KUBECONFIG is honoured as by kubectl).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from modelwerk.constants import GROUP
from modelwerk.plugin import card, history, runs
from modelwerk.plugin.client import MODELS, TRAININGRUNS, Kubectl, PluginError, Runner
from modelwerk.plugin.records import (
    lineage_document,
    model_warning,
    parse_target,
    rerun_manifest,
    versions_document,
)
from modelwerk.plugin.render import dump, render_lineage, versions_table


@dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[Kubectl, argparse.Namespace], str]
    """Returns what to print on stdout; raises PluginError for what goes to stderr."""
    description: str | None = None


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("-n", "--namespace", default=default, help="namespace (default: context's)")
    parser.add_argument(
        "--kubeconfig", default=default, help="kubeconfig file (default: kubectl's)"
    )
    parser.add_argument("--context", default=default, help="kubeconfig context to use")


def _versions_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL")
    parser.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")


def _versions(kubectl: Kubectl, args: argparse.Namespace) -> str:
    model = kubectl.get(MODELS, args.model)
    if args.output != "table":
        return dump(versions_document(model), args.output)
    warning = model_warning(model)
    if warning:
        print(warning, file=sys.stderr)
    if not (model.get("status") or {}).get("versions"):
        meta = model.get("metadata") or {}
        print(
            f"No versions registered for Model {meta.get('name')} in namespace "
            f"{meta.get('namespace')}.",
            file=sys.stderr,
        )
        return ""
    return versions_table(model)


def _lineage_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs="+", metavar="TARGET")
    parser.add_argument("-o", "--output", choices=("text", "json", "yaml"), default="text")


def _lineage(kubectl: Kubectl, args: argparse.Namespace) -> str:
    doc = lineage_document(kubectl, parse_target(args.target))
    if args.output == "text":
        return render_lineage(doc)
    return dump(doc, args.output)


def _rerun_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN")
    parser.add_argument("--name", help="name of the new run (default: generated from RUN)")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the new run instead of creating it"
    )
    parser.add_argument("-o", "--output", choices=("name", "json", "yaml"), default=None)


def _rerun(kubectl: Kubectl, args: argparse.Namespace) -> str:
    old = kubectl.get(TRAININGRUNS, args.run)
    manifest = rerun_manifest(old, args.name)
    if args.dry_run:
        return dump(manifest, "json" if args.output == "json" else "yaml")
    created = kubectl.create(manifest)
    if args.output in ("json", "yaml"):
        return dump(created, args.output)
    name = created["metadata"]["name"]
    return f"trainingrun.{GROUP}/{name}\n" if args.output == "name" else f"{name}\n"


SUBCOMMANDS: list[Subcommand] = [
    Subcommand("versions", "list a Model's registered versions", _versions_arguments, _versions),
    Subcommand(
        "lineage",
        "what produced a served model: version, run, image, code, data, parameters",
        _lineage_arguments,
        _lineage,
        description="TARGET: [deployment/]NAME (a modelwerk Deployment), "
        "model/NAME[:VERSION|:ALIAS] (default: the latest version) or trainingrun/NAME.",
    ),
    Subcommand(
        "rerun", "create a new TrainingRun from an old run's spec", _rerun_arguments, _rerun
    ),
    Subcommand(
        "runs",
        "every run of a Model: phase, gate, validation, parameters, data, version",
        runs.runs_arguments,
        runs.cmd_runs,
    ),
    Subcommand(
        "diff",
        "what differs between two runs or versions",
        runs.diff_arguments,
        runs.cmd_diff,
        description="A and B: a TrainingRun name or MODEL:VERSION (or MODEL:ALIAS).",
    ),
    Subcommand(
        "card",
        "a model card: description, use, data, validation, evaluation, lineage, serving",
        card.card_arguments,
        card.cmd_card,
        description="MODEL[:VERSION|:ALIAS]; default: the production alias, else the latest.",
    ),
    Subcommand(
        "history",
        "a timeline of a Model's alias moves or a Deployment's serving changes",
        history.history_arguments,
        history.cmd_history,
        description="model/NAME or deployment/NAME; --at TIME: what was aliased or served then.",
    ),
]


def build_parser(subcommands: Sequence[Subcommand] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl modelwerk",
        description="Model registry versions, lineage, reruns, runs compared and model cards for "
        "modelwerk.io resources.",
    )
    _common(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in SUBCOMMANDS if subcommands is None else subcommands:
        child = sub.add_parser(command.name, help=command.help, description=command.description)
        command.arguments(child)
        _common(child, suppress=True)
        child.set_defaults(_subcommand=command.run)
    return parser


def main(argv: Sequence[str] | None = None, runner: Runner | None = None) -> int:
    """The `kubectl-modelwerk` console script; `runner` replaces subprocess in tests."""
    args = build_parser().parse_args(argv)
    kubectl = Kubectl(kubeconfig=args.kubeconfig, context=args.context, namespace=args.namespace)
    if runner is not None:
        kubectl = dataclasses.replace(kubectl, runner=runner)
    try:
        sys.stdout.write(args._subcommand(kubectl, args))
    except PluginError as err:
        message = err.message
        if not message.lower().startswith("error"):
            message = f"error: {message}"
        print(message, file=sys.stderr)
        return err.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
