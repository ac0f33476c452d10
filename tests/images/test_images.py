"""The built images, run without a node: each OCI layout from `hack/images.sh build` is unpacked
and its entrypoint run as the image's configuration says (User, Env, WorkingDir, Entrypoint,
Cmd), with a read-only root filesystem, a tmpfs on /tmp and the volumes a pod would mount, in
own mount and PID namespaces (the way runc would, minus cgroups and seccomp).

Skipped, with the reason, when the images are not built from the current sources (run
`hack/images.sh build`) or when this is not root on Linux with umoci and unshare."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "hack" / "images.py"
NAMES = ("operator", "model-server", "trainer")
IRIS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def _records() -> dict[str, dict[str, str]]:
    if os.geteuid() != 0 or not shutil.which("umoci") or not shutil.which("unshare"):
        pytest.skip("running images needs root, umoci and unshare (hack/images.sh installs umoci)")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "refs", "--json", *NAMES],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0 and "is not built from the current sources" in proc.stderr:
        pytest.skip(f"images not built: {proc.stderr.strip()[-300:]}")
    assert proc.returncode == 0, proc.stderr
    return {r["id"]: r for r in json.loads(proc.stdout)}


@pytest.fixture(scope="module")
def records() -> dict[str, dict[str, str]]:
    return _records()


@dataclass
class Unpacked:
    rootfs: Path
    config: dict[str, Any]
    record: dict[str, str]


def _blob(layout: Path, digest: str) -> dict[str, Any]:
    algorithm, hexdigest = digest.split(":")
    data: dict[str, Any] = json.loads((layout / "blobs" / algorithm / hexdigest).read_text())
    return data


def _unpack(name: str, record: dict[str, str], factory: pytest.TempPathFactory) -> Unpacked:
    layout = Path(record["layout"])
    rootfs = factory.mktemp(name) / "rootfs"
    subprocess.run(
        ["umoci", "raw", "unpack", "--image", f"{layout}:{record['tag']}", str(rootfs)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (manifest,) = json.loads((layout / "index.json").read_text())["manifests"]
    assert manifest["digest"] == record["digest"]
    config = _blob(layout, _blob(layout, manifest["digest"])["config"]["digest"])["config"]
    return Unpacked(rootfs, config, record)


@pytest.fixture(scope="module")
def unpacked(
    records: dict[str, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Unpacked]]:
    found = {name: _unpack(name, record, tmp_path_factory) for name, record in records.items()}
    yield found
    for item in found.values():
        shutil.rmtree(item.rootfs, ignore_errors=True)


def _command(
    image: Unpacked,
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
    volumes: dict[str, tuple[Path, bool]] | None = None,
    entrypoint: list[str] | None = None,
) -> list[str]:
    """unshare + chroot as a container runtime would start the image: the mount points made
    first, then the root remounted read-only, /tmp a tmpfs, volumes (target: (dir, read_only))."""
    config = image.config
    r = shlex.quote(str(image.rootfs))
    volumes = volumes or {}
    script = ["set -e"]
    script += [f"mkdir -p {r}{shlex.quote(t)}" for t in volumes]
    script += [
        f"mount --bind {r} {r}",
        f"mount -o remount,bind,ro {r}",
        f"mount -t proc proc {r}/proc",
        f"mount --rbind /dev {r}/dev",
        f"mount -t tmpfs -o mode=1777 tmpfs {r}/tmp",
    ]
    for target, (source, read_only) in volumes.items():
        script.append(f"mount --bind {shlex.quote(str(source))} {r}{shlex.quote(target)}")
        if read_only:
            script.append(f"mount -o remount,bind,ro {r}{shlex.quote(target)}")
    variables = [*config.get("Env", []), *(f"{k}={v}" for k, v in (env or {}).items())]
    argv = [*(config.get("Entrypoint") or [] if entrypoint is None else entrypoint)]
    argv += config.get("Cmd") or [] if args is None else args
    inner = ["/usr/bin/env", "-i", *variables, "/bin/sh", "-c", 'cd "$0" && exec "$@"']
    inner += [config.get("WorkingDir") or "/", *argv]
    script.append(f"exec chroot --userspec={config['User']} {r} {shlex.join(inner)}")
    return [
        "unshare",
        "--mount",
        "--pid",
        "--fork",
        "--kill-child",
        "/bin/sh",
        "-c",
        "\n".join(script),
    ]


def run(image: Unpacked, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(image, **kwargs), capture_output=True, text=True, timeout=300, check=False
    )


# --- every image ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_runs_as_65532_on_a_read_only_root(unpacked: dict[str, Unpacked], name: str) -> None:
    image = unpacked[name]
    assert image.config["User"] == "65532:65532"
    probe = (
        "import errno, os, sys\n"
        "print(os.getuid(), os.getgid(), '%d.%d' % sys.version_info[:2], sys.dont_write_bytecode)\n"
        "for path in ('/usr/local/lib/probe', '/tmp/probe'):\n"
        "    try:\n"
        "        open(path, 'w').close(); print(path, 'written')\n"
        "    except OSError as err:\n"
        "        print(path, errno.errorcode[err.errno])\n"
    )
    proc = run(image, entrypoint=["python", "-c", probe], args=[])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "65532 65532 3.12 True",
        "/usr/local/lib/probe EROFS",
        "/tmp/probe written",
    ]


@pytest.mark.parametrize("name", NAMES)
def test_image_holds_no_build_leftovers(unpacked: dict[str, Unpacked], name: str) -> None:
    rootfs = unpacked[name].rootfs
    for gone in ("wheels", "src", "root/.cache", "tmp/pip"):
        assert not (rootfs / gone).exists(), gone
    assert sorted(p.name for p in (rootfs / "var/lib/apt/lists").iterdir()) in (
        [],
        ["lock", "partial"],
    )
    assert not list((rootfs / "var/cache/apt/archives").glob("*.deb"))
    docs = [p for p in (rootfs / "usr/share/doc").rglob("*") if p.is_file()]
    assert docs
    assert all(p.name == "copyright" for p in docs)
    assert not list((rootfs / "usr/share/man").rglob("*.gz"))
    assert not list((rootfs / "dev").iterdir()), "the runtime provides /dev"
    assert (rootfs / "etc/resolv.conf").read_text() == "", "no build host's DNS settings"
    assert not (rootfs / "usr/local/lib/python3.12/test").exists()
    assert int(unpacked[name].record["size"]) < 400 << 20


def test_operator_entrypoint(unpacked: dict[str, Unpacked]) -> None:
    image = unpacked["operator"]
    assert (image.config["Entrypoint"], image.config["Cmd"]) == (["modelwerk"], ["run"])
    proc = run(image, args=["--help"])
    assert proc.returncode == 0, proc.stderr
    assert "run" in proc.stdout
    ports = sorted(image.config["ExposedPorts"])
    assert ports == ["8080/tcp", "8081/tcp"]


# --- the main job: train in the trainer image, serve from the model-server image -----------


@dataclass
class Trained:
    models: Path
    report: dict[str, Any]


@pytest.fixture(scope="module")
def trained(unpacked: dict[str, Unpacked], tmp_path_factory: pytest.TempPathFactory) -> Trained:
    models = tmp_path_factory.mktemp("models")
    output = models / "iris" / "iris-1"
    output.mkdir(parents=True)
    for directory in (models, models / "iris"):
        directory.chmod(0o755)  # pytest makes its directories private to root
    os.chown(output, 65532, 65532)  # the volume the pod's fsGroup would make writable
    proc = run(
        unpacked["trainer"],
        env={
            "MODELWERK_RUN": "iris-1",
            "MODELWERK_MODEL": "iris",
            "MODELWERK_SEED": "7",
            "MODELWERK_HYPERPARAMETERS": json.dumps({"C": "1.0"}),
            "MODELWERK_OUTPUT_URI": "pvc://models/iris/iris-1",
            "MODELWERK_OUTPUT_DIR": "/mnt/pvc/models/iris/iris-1",
            "MODELWERK_TERMINATION_MESSAGE_PATH": "/mnt/pvc/models/iris/iris-1/termination-log",
        },
        volumes={"/mnt/pvc/models": (models, False)},
    )
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads((output / "termination-log").read_text())
    return Trained(models, report)


def test_trainer_trains_and_reports(trained: Trained) -> None:
    artifact = trained.models / "iris" / "iris-1" / "model.joblib"
    assert artifact.stat().st_uid == 65532
    assert trained.report["artifact"] == {
        "uri": "pvc://models/iris/iris-1/model.joblib",
        "digest": "sha256:" + hashlib.sha256(artifact.read_bytes()).hexdigest(),
    }
    assert trained.report["metrics"]["accuracy"] > 0.8
    assert set(trained.report["baseline"]["features"]) == {
        "sepal_length_cm",
        "sepal_width_cm",
        "petal_length_cm",
        "petal_width_cm",
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _server(unpacked: dict[str, Unpacked], trained: Trained, digest: str) -> tuple[Any, int]:
    port = _free_port()
    env = {
        "MODELWERK_MODEL_URI": trained.report["artifact"]["uri"],
        "MODELWERK_MODEL_DIGEST": digest,
        "MODELWERK_MODEL_NAME": "iris",
        "MODELWERK_MODEL_VERSION": "1",
        "MODELWERK_HOST": "127.0.0.1",
        "MODELWERK_PORT": str(port),
    }
    volumes = {"/mnt/pvc/models": (trained.models, True)}
    command = _command(unpacked["model-server"], env=env, volumes=volumes)
    # Own session: unshare ignores SIGTERM, so the signal goes to the whole group (the server
    # is PID 1 of its namespace and handles SIGTERM itself, as in a pod).
    server = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    return server, port


def _stop(server: Any) -> str:
    try:
        os.killpg(server.pid, signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        output, _ = server.communicate()
    except ProcessLookupError:
        output, _ = server.communicate()
    return str(output)


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def test_model_server_serves_the_trained_artifact(
    unpacked: dict[str, Unpacked], trained: Trained
) -> None:
    server, port = _server(unpacked, trained, trained.report["artifact"]["digest"])
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while _get(f"{base}/readyz") != 200:
            assert server.poll() is None, server.communicate()[0]
            assert time.monotonic() < deadline, "not ready within 120 s"
            time.sleep(0.2)
        request = urllib.request.Request(
            f"{base}/v1/models/iris:predict",
            data=json.dumps({"instances": IRIS}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
        assert answer["predictions"] == [0, 2]
    finally:
        output = _stop(server)
    assert server.returncode == 0, output  # a clean shutdown on SIGTERM


def test_model_server_refuses_a_tampered_artifact(
    unpacked: dict[str, Unpacked], trained: Trained
) -> None:
    server, port = _server(unpacked, trained, "sha256:" + "0" * 64)
    try:
        output, _ = server.communicate(timeout=120)
    finally:
        _stop(server)
    assert server.returncode == 3, output  # EXIT_ARTIFACT: must not be served
    assert "digest" in output
    assert _get(f"http://127.0.0.1:{port}/readyz") == 0


# --- the Seldon variant (`hack/images.sh build model-server:EXTRAS=ml,seldon`) -------------


@pytest.fixture(scope="module")
def seldon(
    records: dict[str, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Unpacked]:
    variant = "model-server:EXTRAS=ml,seldon"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "refs", "--json", variant],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0 and "is not built from the current sources" in proc.stderr:
        pytest.skip(f"the Seldon variant is not built (hack/images.sh build {variant})")
    assert proc.returncode == 0, proc.stderr
    (record,) = json.loads(proc.stdout)
    image = _unpack("model-server-ml-seldon", record, tmp_path_factory)
    yield image
    shutil.rmtree(image.rootfs, ignore_errors=True)


def test_seldon_variant_serves_through_seldons_wrapper(seldon: Unpacked, trained: Trained) -> None:
    http, metrics, grpc = _free_port(), _free_port(), _free_port()
    env = {
        "MODELWERK_MODEL_URI": trained.report["artifact"]["uri"],
        "MODELWERK_MODEL_DIGEST": trained.report["artifact"]["digest"],
        "MODELWERK_MODEL_NAME": "iris",
        "MODELWERK_MODEL_VERSION": "1",
    }
    ports = ["--http-port", str(http), "--metrics-port", str(metrics), "--grpc-port", str(grpc)]
    command = _command(
        seldon,
        args=["--runtime", "seldon", "--", *ports],
        env=env,
        volumes={"/mnt/pvc/models": (trained.models, True)},
    )
    server = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    request = json.dumps({"data": {"ndarray": IRIS}}).encode()
    answer: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 180
        while not answer:
            assert server.poll() is None, server.communicate()[0]
            assert time.monotonic() < deadline, "Seldon's wrapper did not answer within 180 s"
            try:
                with urllib.request.urlopen(
                    urllib.request.Request(
                        f"http://127.0.0.1:{http}/api/v1.0/predictions",
                        data=request,
                        headers={"Content-Type": "application/json"},
                    ),
                    timeout=10,
                ) as response:
                    answer = json.loads(response.read())
            except OSError:
                time.sleep(0.5)
        assert answer["data"]["ndarray"] == [0, 2]
    finally:
        _stop(server)
