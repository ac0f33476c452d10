"""Fetch a model artifact and check it is the one that was registered.

Supported URIs:

- ``file:///abs/path`` and ``/abs/path``: used in place, no copy;
- ``pvc://<claim>/<path>``: the claim mounted at ``$MODELWERK_PVC_ROOT/<claim>`` (default root
  ``/mnt/pvc``), used in place; the Deployment builder mounts claims there read-only;
- ``http://`` and ``https://``: streamed into ``dest_dir``;
- ``s3://bucket/key``: only with credentials, and only where botocore is installed (it is not a
  dependency of Modelwerk; images that need it install it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final

from modelwerk.contract import ENV_PVC_ROOT, parse_pvc
from modelwerk.contract import PVC_ROOT as DEFAULT_PVC_ROOT

DOWNLOAD_TIMEOUT_SECONDS: Final = 60.0
_CHUNK: Final = 1024 * 1024


class ArtifactError(Exception):
    """The artifact cannot be fetched or is not the registered one: the server must not start."""


class DigestMismatch(ArtifactError):
    def __init__(self, path: Path, expected: str, actual: str) -> None:
        super().__init__(f"digest mismatch for {path}: expected {expected}, got {actual}")
        self.path = path
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True)
class S3Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    endpoint_url: str | None = None
    region: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> S3Credentials | None:
        """The usual AWS variables, as a Secret mounted with envFrom provides them."""
        env = os.environ if env is None else env
        key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
        if not key or not secret:
            return None
        return cls(
            access_key_id=key,
            secret_access_key=secret,
            session_token=env.get("AWS_SESSION_TOKEN") or None,
            endpoint_url=env.get("AWS_ENDPOINT_URL") or env.get("S3_ENDPOINT_URL") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        )


def file_digest(path: str | Path) -> str:
    with open(path, "rb") as handle:
        return "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()


def verify_digest(path: Path, expected: str) -> None:
    """Raise DigestMismatch unless the file's sha256 is ``expected`` (``sha256:<hex>``)."""
    if not expected.startswith("sha256:"):
        raise ArtifactError(f"unsupported digest {expected!r}: expected sha256:<hex>")
    actual = file_digest(path)
    if actual != expected.lower():
        raise DigestMismatch(path, expected, actual)


def fetch_artifact(
    uri: str,
    dest_dir: str | Path,
    *,
    s3_credentials: S3Credentials | None = None,
    pvc_root: str | Path | None = None,
) -> Path:
    """A local path holding the artifact at ``uri``; remote artifacts land in ``dest_dir``."""
    parsed = urllib.parse.urlsplit(uri)
    scheme = parsed.scheme.lower()
    if scheme == "" and uri.startswith("/"):
        return _existing(Path(uri))
    if scheme == "file":
        return _existing(Path(urllib.request.url2pathname(parsed.path)))
    if scheme == "pvc":
        return _existing(pvc_path(uri, pvc_root))
    destination = Path(dest_dir) / (PurePosixPath(parsed.path).name or "artifact")
    Path(dest_dir).mkdir(parents=True, exist_ok=True)
    if scheme in {"http", "https"}:
        _download_http(uri, destination)
        return destination
    if scheme == "s3":
        _download_s3(parsed.netloc, parsed.path.lstrip("/"), destination, s3_credentials)
        return destination
    raise ArtifactError(f"unsupported artifact URI {uri!r}")


def pvc_path(uri: str, root: str | Path | None = None) -> Path:
    """``pvc://claim/a/b`` -> ``<root>/claim/a/b``; refuses paths that climb out of the claim."""
    ref = parse_pvc(uri)
    claim = ref.claim if ref is not None else ""
    relative = PurePosixPath(urllib.parse.unquote(ref.path if ref is not None else ""))
    if not claim or ".." in relative.parts or not relative.parts:
        raise ArtifactError(f"invalid pvc URI {uri!r}: expected pvc://<claim>/<path>")
    base = Path(root if root is not None else os.environ.get(ENV_PVC_ROOT, DEFAULT_PVC_ROOT))
    return base / claim / relative


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise ArtifactError(f"artifact {path} does not exist or is not a file")
    return path


def _download_http(uri: str, destination: Path) -> None:
    partial = destination.with_name(destination.name + ".part")
    try:
        with (
            urllib.request.urlopen(uri, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response,
            open(partial, "wb") as out,
        ):
            shutil.copyfileobj(response, out, _CHUNK)
    except OSError as err:  # URLError and HTTPError are OSErrors
        partial.unlink(missing_ok=True)
        raise ArtifactError(f"cannot download {uri}: {err}") from err
    # Renamed only when complete, so a half download is never mistaken for the artifact.
    partial.replace(destination)


def _download_s3(
    bucket: str, key: str, destination: Path, credentials: S3Credentials | None
) -> None:
    if credentials is None:
        raise ArtifactError(
            f"s3://{bucket}/{key} needs credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
        )
    try:
        import botocore.session  # type: ignore[import-not-found, unused-ignore]
    except ImportError as err:
        raise ArtifactError("s3:// needs the s3 extra (botocore), which is not installed") from err
    session: Any = botocore.session.get_session()
    client = session.create_client(
        "s3",
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
        endpoint_url=credentials.endpoint_url,
        region_name=credentials.region,
    )
    partial = destination.with_name(destination.name + ".part")
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        with open(partial, "wb") as out:
            for chunk in iter(lambda: body.read(_CHUNK), b""):
                out.write(chunk)
    except Exception as err:  # botocore's errors share no base class with OSError
        partial.unlink(missing_ok=True)
        raise ArtifactError(f"cannot download s3://{bucket}/{key}: {err}") from err
    partial.replace(destination)
