"""`kubectl modelwerk`: the registry's versions, a served model's lineage, and reruns.

client.py runs kubectl; records.py builds what is reported (the `-o json|yaml` documents);
render.py prints them for people; cli.py is the subcommand table and `main`."""

from modelwerk.plugin.cli import SUBCOMMANDS, Subcommand, build_parser, main
from modelwerk.plugin.client import DEPLOYMENTS, MODELS, TRAININGRUNS, Kubectl, PluginError
from modelwerk.plugin.records import (
    RERUN_OF,
    Target,
    aliases_by_version,
    deployment_document,
    find_version,
    generate_name,
    lineage_document,
    metric_names,
    model_warning,
    parse_target,
    record_from_deployment,
    rerun_manifest,
    run_record,
    served_versions,
    version_record,
    versions_document,
)
from modelwerk.plugin.render import (
    NONE,
    format_fields,
    format_metric,
    format_table,
    record_fields,
    render_lineage,
    short_digest,
    versions_table,
)

__all__ = [
    "DEPLOYMENTS",
    "MODELS",
    "NONE",
    "RERUN_OF",
    "SUBCOMMANDS",
    "TRAININGRUNS",
    "Kubectl",
    "PluginError",
    "Subcommand",
    "Target",
    "aliases_by_version",
    "build_parser",
    "deployment_document",
    "find_version",
    "format_fields",
    "format_metric",
    "format_table",
    "generate_name",
    "lineage_document",
    "main",
    "metric_names",
    "model_warning",
    "parse_target",
    "record_fields",
    "record_from_deployment",
    "render_lineage",
    "rerun_manifest",
    "run_record",
    "served_versions",
    "short_digest",
    "version_record",
    "versions_document",
    "versions_table",
]
