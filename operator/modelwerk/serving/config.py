"""The server's settings, from explicit values (flags, Seldon parameters) over the environment.

The Deployment builders set the environment; flags are for people running the server by hand.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from modelwerk.contract import (
    ENV_ARTIFACT_DIR as ENV_ARTIFACT_DIR,
)
from modelwerk.contract import (
    ENV_FEATURE_NAMES as ENV_FEATURE_NAMES,
)
from modelwerk.contract import (
    ENV_HOST as ENV_HOST,
)
from modelwerk.contract import (
    ENV_MODEL_DIGEST as ENV_MODEL_DIGEST,
)
from modelwerk.contract import (
    ENV_MODEL_NAME as ENV_MODEL_NAME,
)
from modelwerk.contract import (
    ENV_MODEL_URI as ENV_MODEL_URI,
)
from modelwerk.contract import (
    ENV_MODEL_VERSION as ENV_MODEL_VERSION,
)
from modelwerk.contract import (
    ENV_PORT as ENV_PORT,
)
from modelwerk.contract import EXIT_ARTIFACT as EXIT_ARTIFACT
from modelwerk.contract import EXIT_CONFIG as EXIT_CONFIG
from modelwerk.contract import PORT as DEFAULT_PORT

ENV_WORKERS: Final = "MODELWERK_WORKERS"
ENV_ACCESS_LOG: Final = "MODELWERK_ACCESS_LOG"

DEFAULT_MAX_INSTANCES: Final = 10_000
MAX_WORKERS: Final = 64


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class ServerConfig:
    model_uri: str
    digest: str
    model_name: str = "model"
    model_version: str = "0"
    feature_names: tuple[str, ...] | None = None
    artifact_dir: Path | None = None
    host: str = "0.0.0.0"  # a pod listens on its own address
    port: int = DEFAULT_PORT
    workers: int = 1
    """Server processes on the port (native runtime; see modelwerk.serving.workers)."""
    access_log: bool = False
    max_instances: int = DEFAULT_MAX_INSTANCES

    @classmethod
    def resolve(
        cls, explicit: Mapping[str, object | None], env: Mapping[str, str] | None = None
    ) -> ServerConfig:
        """Build from ``explicit`` values (None means unset) falling back to ``env``."""
        env = os.environ if env is None else env

        def pick(key: str, env_name: str) -> str | None:
            value = explicit.get(key)
            if value is not None and str(value) != "":
                return str(value)
            return env.get(env_name) or None

        uri = pick("model_uri", ENV_MODEL_URI)
        digest = pick("digest", ENV_MODEL_DIGEST)
        if not uri:
            raise ConfigError(f"no model URI: pass --model-uri or set {ENV_MODEL_URI}")
        if not digest:
            # Serving an unverified artifact is what the digest exists to prevent.
            raise ConfigError(f"no model digest: pass --digest or set {ENV_MODEL_DIGEST}")
        names = pick("feature_names", ENV_FEATURE_NAMES)
        artifact_dir = pick("artifact_dir", ENV_ARTIFACT_DIR)
        port = pick("port", ENV_PORT)
        try:
            port_number = int(port) if port else DEFAULT_PORT
        except ValueError as err:
            raise ConfigError(f"port {port!r} is not a number") from err
        workers = pick("workers", ENV_WORKERS) or "1"
        if not workers.isdigit() or not 1 <= int(workers) <= MAX_WORKERS:
            raise ConfigError(f"workers {workers!r} must be a number from 1 to {MAX_WORKERS}")
        return cls(
            model_uri=uri,
            digest=digest,
            model_name=pick("model_name", ENV_MODEL_NAME) or "model",
            model_version=pick("model_version", ENV_MODEL_VERSION) or "0",
            feature_names=parse_feature_names(names) if names else None,
            artifact_dir=Path(artifact_dir) if artifact_dir else None,
            host=pick("host", ENV_HOST) or "0.0.0.0",
            port=port_number,
            workers=int(workers),
            access_log=(pick("access_log", ENV_ACCESS_LOG) or "false").lower() in {"1", "true"},
        )


def parse_feature_names(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise ConfigError(f"feature names {text!r} name no feature")
    return names
