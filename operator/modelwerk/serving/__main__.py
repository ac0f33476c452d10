"""``python -m modelwerk.serving``: start the model server.

    python -m modelwerk.serving --runtime native --model-uri URI --digest sha256:... \\
        --model-name iris --model-version 4 --port 8000 [--feature-names a,b,c]

Every flag falls back to its ``MODELWERK_*`` variable (see modelwerk.serving.config).
``--runtime seldon`` hands over to Seldon Core's microservice wrapper with the same settings;
arguments after ``--`` go to the wrapper (e.g. ``-- --metrics-port 6000 --grpc-workers 0``).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from collections.abc import Sequence

from modelwerk.serving import config as cfg

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
SELDON_CLASS = "modelwerk.serving.seldon.SeldonModel"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m modelwerk.serving", description=__doc__)
    parser.add_argument(
        "--runtime", choices=["native", "seldon"], default=os.environ.get("MODELWERK_RUNTIME")
    )
    parser.add_argument("--model-uri", help=f"artifact URI (${cfg.ENV_MODEL_URI})")
    parser.add_argument(
        "--digest", help=f"sha256:<hex> the artifact must have (${cfg.ENV_MODEL_DIGEST})"
    )
    parser.add_argument("--model-name", help=f"metric label and URL name (${cfg.ENV_MODEL_NAME})")
    parser.add_argument("--model-version", help=f"metric label (${cfg.ENV_MODEL_VERSION})")
    parser.add_argument("--feature-names", help=f"comma-separated (${cfg.ENV_FEATURE_NAMES})")
    parser.add_argument("--artifact-dir", help=f"download directory (${cfg.ENV_ARTIFACT_DIR})")
    parser.add_argument("--host", help=f"listen address (${cfg.ENV_HOST}, default 0.0.0.0)")
    parser.add_argument("--port", type=int, help=f"listen port (${cfg.ENV_PORT}, default 8000)")
    parser.add_argument(
        "--workers", type=int, help=f"native server processes on the port (${cfg.ENV_WORKERS}, 1)"
    )
    parser.add_argument(
        "--access-log",
        action="store_const",
        const="true",
        help=f"log every request (${cfg.ENV_ACCESS_LOG}=true; probes and scrapes never)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in args_list:
        split = args_list.index("--")
        args_list, passthrough = args_list[:split], args_list[split + 1 :]
    args = _parser().parse_args(args_list)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    log = logging.getLogger("modelwerk.serving")
    try:
        config = cfg.ServerConfig.resolve(vars(args))
    except cfg.ConfigError as err:
        log.error("%s", err)
        return cfg.EXIT_CONFIG
    runtime = args.runtime or "native"
    if runtime not in {"native", "seldon"}:
        log.error("unknown runtime %r: expected native or seldon", runtime)
        return cfg.EXIT_CONFIG
    if runtime == "seldon":
        return _exec_seldon(config, passthrough)
    if passthrough:
        log.error("arguments after -- are for --runtime seldon only: %s", passthrough)
        return cfg.EXIT_CONFIG
    from modelwerk.serving import workers

    # Before prometheus_client is imported: with several processes it must count in shared files.
    made = workers.prepare(config.workers)
    from modelwerk.serving import native

    try:
        return native.run(config)
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)


def _exec_seldon(config: cfg.ServerConfig, passthrough: list[str]) -> int:
    import importlib.util

    if importlib.util.find_spec("seldon_core") is None:
        logging.getLogger("modelwerk.serving").error(
            "--runtime seldon needs the seldon extra (seldon-core), which is not installed"
        )
        return cfg.EXIT_CONFIG
    env = dict(os.environ)
    env.update(
        {
            cfg.ENV_MODEL_URI: config.model_uri,
            cfg.ENV_MODEL_DIGEST: config.digest,
            cfg.ENV_MODEL_NAME: config.model_name,
            cfg.ENV_MODEL_VERSION: config.model_version,
        }
    )
    # Seldon would otherwise also return the custom metrics (KiBs) to every client.
    env.setdefault("INCLUDE_METRICS_IN_CLIENT_RESPONSE", "false")
    if config.feature_names:
        env[cfg.ENV_FEATURE_NAMES] = ",".join(config.feature_names)
    if config.artifact_dir:
        env[cfg.ENV_ARTIFACT_DIR] = str(config.artifact_dir)
    command = [
        sys.executable,
        "-m",
        "seldon_core.microservice",
        SELDON_CLASS,
        "--service-type",
        "MODEL",
        "--http-port",
        str(config.port),
        *passthrough,
    ]
    # exec, not a child: the wrapper must be the process that receives the pod's SIGTERM.
    os.execve(sys.executable, command, env)


if __name__ == "__main__":
    sys.exit(main())
