"""fetch_artifact and verify_digest against real files and a real local HTTP server."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from modelwerk.serving.artifacts import (
    ArtifactError,
    DigestMismatch,
    S3Credentials,
    fetch_artifact,
    file_digest,
    pvc_path,
    verify_digest,
)

CONTENT = b"\x80\x04pretend pickle" * 1000
DIGEST = "sha256:" + hashlib.sha256(CONTENT).hexdigest()


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "model.joblib"
    path.parent.mkdir()
    path.write_bytes(CONTENT)
    return path


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_absolute_path_and_file_uri_are_used_in_place(artifact: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    assert fetch_artifact(str(artifact), dest) == artifact
    assert fetch_artifact(artifact.as_uri(), dest) == artifact
    assert not dest.exists()


def test_pvc_uri_maps_to_the_mount_root(
    artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    claim_dir = tmp_path / "mnt" / "models" / "iris" / "iris-7"
    claim_dir.mkdir(parents=True)
    (claim_dir / "model.joblib").write_bytes(CONTENT)
    monkeypatch.setenv("MODELWERK_PVC_ROOT", str(tmp_path / "mnt"))
    found = fetch_artifact("pvc://models/iris/iris-7/model.joblib", tmp_path / "dest")
    assert found == claim_dir / "model.joblib"
    assert pvc_path("pvc://c/a/b", "/root") == Path("/root/c/a/b")


def test_pvc_default_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELWERK_PVC_ROOT", raising=False)
    assert pvc_path("pvc://models/iris/m.joblib") == Path("/mnt/pvc/models/iris/m.joblib")


@pytest.mark.parametrize("uri", ["pvc://models/../etc/passwd", "pvc:///no-claim", "pvc://claim"])
def test_pvc_uri_must_stay_in_its_claim(uri: str) -> None:
    with pytest.raises(ArtifactError, match="invalid pvc URI"):
        pvc_path(uri, "/mnt/pvc")


def test_missing_local_file(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        fetch_artifact(str(tmp_path / "absent"), tmp_path)


def test_http_download(http_root: tuple[str, Path], tmp_path: Path) -> None:
    base, root = http_root
    (root / "model.joblib").write_bytes(CONTENT)
    dest = tmp_path / "dest"
    path = fetch_artifact(f"{base}/model.joblib", dest)
    assert path == dest / "model.joblib"
    assert path.read_bytes() == CONTENT
    verify_digest(path, DIGEST)
    assert list(dest.iterdir()) == [path]  # no .part left behind


def test_http_error_is_an_artifact_error(http_root: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = http_root
    with pytest.raises(ArtifactError, match="404"):
        fetch_artifact(f"{base}/absent.joblib", tmp_path / "dest")
    assert list((tmp_path / "dest").iterdir()) == []


def test_s3_needs_credentials(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="needs credentials"):
        fetch_artifact("s3://bucket/m.joblib", tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("botocore") is not None, reason="botocore installed")
def test_s3_without_botocore_says_which_extra(tmp_path: Path) -> None:
    credentials = S3Credentials(access_key_id="k", secret_access_key="s")
    with pytest.raises(ArtifactError, match="s3 extra"):
        fetch_artifact("s3://bucket/m.joblib", tmp_path, s3_credentials=credentials)


def test_s3_credentials_from_env() -> None:
    assert S3Credentials.from_env({}) is None
    assert S3Credentials.from_env({"AWS_ACCESS_KEY_ID": "k"}) is None
    credentials = S3Credentials.from_env(
        {
            "AWS_ACCESS_KEY_ID": "k",
            "AWS_SECRET_ACCESS_KEY": "s",
            "AWS_ENDPOINT_URL": "http://minio:9000",
            "AWS_DEFAULT_REGION": "eu-1",
        }
    )
    assert credentials == S3Credentials("k", "s", None, "http://minio:9000", "eu-1")


def test_unsupported_scheme(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="unsupported"):
        fetch_artifact("gs://bucket/m", tmp_path)


def test_verify_digest(artifact: Path) -> None:
    assert file_digest(artifact) == DIGEST
    verify_digest(artifact, DIGEST)
    wrong = "sha256:" + "0" * 64
    with pytest.raises(DigestMismatch) as caught:
        verify_digest(artifact, wrong)
    assert caught.value.expected == wrong
    assert caught.value.actual == DIGEST
    assert wrong in str(caught.value)
    assert DIGEST in str(caught.value)
    with pytest.raises(ArtifactError, match="unsupported digest"):
        verify_digest(artifact, "md5:abc")
