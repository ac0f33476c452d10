"""`modelwerk run` starts the operator; `modelwerk crds` writes the CRDs generated from the API."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="modelwerk", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run", help="run the operator against the current kubeconfig or in-cluster"
    )
    run.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=None,
        help="watch only this namespace (repeatable); default: the whole cluster "
        "(env MODELWERK_NAMESPACES, comma-separated)",
    )
    run.add_argument("--http-port", type=int, help="metrics and webhook port (default 8080)")
    run.add_argument("--health-port", type=int, help="liveness/readiness port (default 8081)")
    run.add_argument("--prometheus-url", help="Prometheus for canary analysis")
    run.add_argument(
        "--leader-elect",
        action="store_true",
        default=None,
        help="run as one of several replicas: only the holder of the Lease writes "
        "(env MODELWERK_LEADER_ELECT=true)",
    )
    run.add_argument("--leader-election-namespace", help="the Lease's namespace")
    run.add_argument("--leader-election-id", help="the Lease's name")
    run.add_argument("-v", "--verbose", action="store_true")

    crds = sub.add_parser("crds", help="write the CRDs generated from the API models")
    crds.add_argument("-o", "--output", type=Path, default=Path("crds"))

    rules = sub.add_parser(
        "operator-rules", help="print the PrometheusRule that alerts on the operator itself"
    )
    rules.add_argument("-n", "--namespace", default="modelwerk-system")
    rules.add_argument("--job", help="the operator's scrape job (a regex; default .*modelwerk.*)")
    rules.add_argument("--label", action="append", default=[], help="k=v, for rule selectors")

    args = parser.parse_args(argv)
    if args.command == "run":
        _run(args)
    elif args.command == "crds":
        from modelwerk.crdgen import write_crds

        for path in write_crds(args.output):
            print(path)
    elif args.command == "operator-rules":
        from modelwerk.builders.operator_rules import operator_rules_yaml

        labels = dict(item.split("=", 1) for item in args.label)
        extra = {"job": args.job} if args.job else {}
        print(operator_rules_yaml(args.namespace, labels, **extra), end="")


def _run(args: argparse.Namespace) -> None:
    import dataclasses

    import kopf

    from modelwerk import handlers  # noqa: F401  (registers the handlers with kopf)
    from modelwerk.builders.netpol import NetworkPolicyConfigError
    from modelwerk.config import OperatorConfig
    from modelwerk.records import Forgetful
    from modelwerk.settings import quiet_loggers

    try:
        config = OperatorConfig()
    except NetworkPolicyConfigError as err:
        sys.exit(f"modelwerk: MODELWERK_NETWORK_POLICY: {err}")
    overrides = {
        "namespaces": tuple(args.namespace) if args.namespace else None,
        "http_port": args.http_port,
        "health_port": args.health_port,
        "prometheus_url": args.prometheus_url,
        "leader_elect": args.leader_elect,
        "leader_election_namespace": args.leader_election_namespace,
        "leader_election_id": args.leader_election_id,
    }
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    kopf.configure(verbose=args.verbose)
    quiet_loggers(args.verbose)
    kopf.run(
        clusterwide=config.clusterwide,
        namespaces=config.namespaces,
        liveness_endpoint=f"http://{config.http_host}:{config.health_port}/healthz",
        memo=kopf.Memo(config=config),
        memories=Forgetful(),  # records.py: kopf's per-object records are not kept
        # kopf's default identity calls getpass.getuser(), which raises for a uid without a
        # passwd entry: the image's 65532. Peering is off; the identity only names this process.
        identity=cast(Any, f"{socket.gethostname()}@{os.getpid()}"),  # kopf: NewType of str
    )
    sys.exit(0)


if __name__ == "__main__":
    main()
