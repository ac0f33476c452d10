#!/usr/bin/env python3
"""Builds the Dockerfiles in images/ into OCI layouts on this machine, without Docker or a
registry, and imports them into a containerd. Run through hack/images.sh (which installs the
Debian packages this needs: mmdebstrap, umoci).

The Dockerfiles are the one definition: this script interprets them. It supports the
instructions they use (ARG, FROM, ENV, WORKDIR, COPY, RUN with bind mounts of an earlier stage,
LABEL, USER, EXPOSE, ENTRYPOINT, CMD) and refuses anything else. The one thing it cannot fetch
is the base image: `python:<X.Y>-slim-<suite>@sha256:...` is stood in for by a local base of
the same shape, a Debian <suite> rootfs from mmdebstrap (minbase, no docs) with this machine's
CPython X.Y copied into /usr/local (as the official image builds it there) and pip from its
ensurepip. Every RUN runs in a chroot of the stage's rootfs (own mount and PID namespaces, the
host's network, as the Dockerfile's USER); the final stage is packed by umoci as one layer over
the base's. Results are cached under ~/.cache/modelwerk/images, keyed by their inputs.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its two modules live beside it

from images_base import CACHE, RECIPE, Base, Python, base, prune
from images_dockerfile import (
    ROOT,
    BuildError,
    Config,
    Dockerfile,
    base_of,
    context_hash,
    digest,
    execute,
    parse,
    say,
    sh,
)

IMAGES = ROOT / "images"
REPOSITORY = "localhost/modelwerk"
NAMES = ("operator", "model-server", "trainer")


# --- images -------------------------------------------------------------------------------------


@dataclass
class Image:
    id: str
    """name, or name-<build arg values> for a variant (model-server-ml-seldon)."""
    name: str
    dockerfile: Path
    args: dict[str, str]

    @property
    def repository(self) -> str:
        return f"{REPOSITORY}/{self.name}"


def image(spec: str) -> Image:
    """`NAME` or `NAME:ARG=VALUE[;ARG=VALUE]`, e.g. `model-server:EXTRAS=ml,seldon`."""
    name, _, rest = spec.partition(":")
    if name not in NAMES:
        raise BuildError(f"unknown image {name!r}: one of {', '.join(NAMES)}")
    args = dict(a.partition("=")[::2] for a in rest.split(";") if a)
    dockerfile = parse((IMAGES / f"{name}.Dockerfile").read_text())
    declared = set(dockerfile.args) | {
        i.args.partition("=")[0]
        for s in dockerfile.stages
        for i in s.instructions
        if i.keyword == "ARG"
    }
    if set(args) - declared:
        raise BuildError(
            f"{name}.Dockerfile declares no ARG {', '.join(sorted(set(args) - declared))}"
        )
    suffix = "-".join(re.sub(r"[^a-z0-9]+", "-", v.lower()) for _, v in sorted(args.items()))
    return Image(f"{name}-{suffix}" if suffix else name, name, IMAGES / f"{name}.Dockerfile", args)


def interpret(img: Image) -> tuple[Config, list[list[tuple[str | list[str], dict[str, str]]]]]:
    """The final image's configuration and each stage's RUN commands, as a build would have
    them, without building (no base, no COPY, no RUN)."""
    dockerfile = parse(img.dockerfile.read_text())
    suite, minor = base_of(base_reference(dockerfile, img.dockerfile))
    stand_in = Base("", suite, Python(Path(), Path(), minor), Path())
    done: dict[str, Path] = {}
    runs = []
    for index, stage in enumerate(dockerfile.stages):
        config = Config(env=dict(stand_in.env))
        runs.append(
            execute(stage, None, config, {**dockerfile.args, **img.args}, img.dockerfile, done)
        )
        done[stage.name or str(index)] = Path("/nonexistent")
    return config, runs


def key(img: Image, base_key: str) -> str:
    text = img.dockerfile.read_text()
    return digest(
        f"recipe={RECIPE}",
        base_key,
        text,
        json.dumps(img.args, sort_keys=True),
        context_hash(img.dockerfile),
    )[:16]


def base_reference(dockerfile: Dockerfile, path: Path) -> str:
    bases = {s.base for s in dockerfile.stages if s.base not in {t.name for t in dockerfile.stages}}
    if len(bases) != 1:
        raise BuildError(f"{path.name}: one base image expected, found {sorted(bases)}")
    return bases.pop()


def cached(img: Image) -> Path:
    """Where the image's record is once built from the current inputs (it may not exist)."""
    dockerfile = parse(img.dockerfile.read_text())
    the_base = base(base_reference(dockerfile, img.dockerfile), create=False)
    return CACHE / f"{img.id}-{key(img, the_base.key)}" / "image.json"


def build(img: Image) -> dict[str, str]:
    """The image's OCI layout in the cache (built unless its inputs are unchanged)."""
    started = time.monotonic()
    dockerfile = parse(img.dockerfile.read_text())
    version = dockerfile.args.get("MODELWERK_VERSION") or _final_arg(
        dockerfile, "MODELWERK_VERSION"
    )
    the_base = base(base_reference(dockerfile, img.dockerfile))
    k = key(img, the_base.key)
    out = CACHE / f"{img.id}-{k}"
    record_file = out / "image.json"
    if record_file.exists():
        record: dict[str, str] = json.loads(record_file.read_text())
        os.utime(out)  # last used, for prune()
        say(f"{img.id}: cached ({out})")
        return record
    say(f"{img.id}: building {img.dockerfile.relative_to(ROOT)} (key {k})")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    layout = out / "oci"
    # The base's blobs are hard-linked (content-addressed, never rewritten); its index is copied.
    shutil.copytree(
        the_base.layout, layout, copy_function=os.link, ignore=shutil.ignore_patterns("index.json")
    )
    shutil.copy2(the_base.layout / "index.json", layout / "index.json")
    args = {**dockerfile.args, **img.args}
    tag = "-".join([version, *([img.id.removeprefix(img.name + "-")] if img.args else []), k[:12]])
    done: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(dir=out) as work:
        for index, stage in enumerate(dockerfile.stages):
            final = index == len(dockerfile.stages) - 1
            config = Config(env=dict(the_base.env))
            if final:
                bundle = Path(work) / "bundle"
                sh("umoci", "unpack", "--image", f"{layout}:base", bundle, capture=True)
                rootfs = bundle / "rootfs"
            else:
                rootfs = Path(work) / f"stage-{index}"
                sh("umoci", "raw", "unpack", "--image", f"{layout}:base", rootfs, capture=True)
            execute(stage, rootfs, config, args, img.dockerfile, done)
            done[stage.name or str(index)] = rootfs
        say(f"{img.id}: packing")
        sh("umoci", "repack", "--image", f"{layout}:{tag}", bundle, capture=True)
    options = [
        "--clear=config.env",
        "--clear=config.entrypoint",
        "--clear=config.cmd",
        *(f"--config.env={k}={v}" for k, v in config.env.items()),
        *(f"--config.entrypoint={a}" for a in config.entrypoint),
        *(f"--config.cmd={a}" for a in config.cmd),
        *(f"--config.exposedports={p}" for p in config.ports),
        *(f"--config.label={k}={v}" for k, v in config.labels.items()),
        f"--config.workingdir={config.workdir}",
        *([f"--config.user={config.user}"] if config.user else []),
    ]
    sh("umoci", "config", "--no-history", "--image", f"{layout}:{tag}", *options)
    sh("umoci", "rm", "--image", f"{layout}:base")
    sh("umoci", "gc", "--layout", layout)
    if key(img, the_base.key) != k:
        # What was copied may be newer than what the key says: never cache it under that key.
        shutil.rmtree(out, ignore_errors=True)
        raise BuildError(f"{img.id}: the sources changed during the build; run it again")
    (manifest,) = json.loads((layout / "index.json").read_text())["manifests"]
    record = {
        "id": img.id,
        "name": img.name,
        "ref": f"{img.repository}:{tag}",
        "tag": tag,
        "digest": manifest["digest"],
        "layout": str(layout),
        "base": str(the_base.dir),
        "size": str(sum(p.stat().st_size for p in layout.rglob("*") if p.is_file())),
    }
    record_file.write_text(json.dumps(record, indent=2) + "\n")
    prune(img.id, out)
    say(f"{img.id}: built in {time.monotonic() - started:.0f}s")
    return record


def _final_arg(dockerfile: Dockerfile, name: str) -> str:
    for ins in dockerfile.stages[-1].instructions:
        key, _, default = ins.args.partition("=")
        if ins.keyword == "ARG" and key == name:
            return default.strip('"')
    raise BuildError(f"no ARG {name} in the Dockerfile")


# --- containerd ---------------------------------------------------------------------------------


def import_into(record: dict[str, str], address: str) -> None:
    """Imports the layout into containerd's k8s.io namespace as REPO:TAG and REPO@DIGEST, the
    name a registry pull gives (so a pod's imageID is the manifest digest)."""
    ctr = ["ctr", "--address", address, "--namespace", "k8s.io"]
    repository = record["ref"].rsplit(":", 1)[0]
    by_digest = f"{repository}@{record['digest']}"
    have = set(sh(*ctr, "images", "list", "--quiet", capture=True).split())
    if {record["ref"], by_digest} <= have:
        say(f"{record['id']}: already in containerd")
        return
    with tempfile.TemporaryDirectory(dir=Path(record["layout"]).parent) as work:
        archive = Path(work) / "image.tar"
        sh("tar", "-C", record["layout"], "-cf", archive, ".")
        sh(*ctr, "images", "import", "--base-name", repository, archive, capture=True)
    sh(*ctr, "images", "tag", "--force", record["ref"], by_digest, capture=True)
    say(f"{record['id']}: imported")


def env_name(image_id: str) -> str:
    return "MODELWERK_" + re.sub(r"[^A-Z0-9]+", "_", image_id.upper()) + "_IMAGE"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hack/images.sh", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["build", "import", "refs"])
    parser.add_argument("images", nargs="*", help="NAME or NAME:ARG=VALUE (default: all three)")
    parser.add_argument("--json", action="store_true", help="refs: the records as JSON")
    opts = parser.parse_intermixed_args(argv)
    try:
        images = [image(s) for s in opts.images or NAMES]
        if opts.command == "refs":
            records = []
            for img in images:
                path = cached(img)
                if not path.exists():
                    raise BuildError(
                        f"{img.id} is not built from the current sources: run hack/images.sh build"
                    )
                records.append(json.loads(path.read_text()))
            if opts.json:
                print(json.dumps(records, indent=2))
            for record in [] if opts.json else records:
                print(f"{env_name(record['id'])}={record['ref']}")
                print(f"{env_name(record['id']).removesuffix('_IMAGE')}_DIGEST={record['digest']}")
            return 0
        CACHE.mkdir(parents=True, exist_ok=True)
        with (CACHE / ".lock").open("w") as lock:
            # One build at a time per cache: a second caller waits, then finds the result.
            fcntl.flock(lock, fcntl.LOCK_EX)
            records = [build(img) for img in images]
        refs = CACHE / "refs.json"
        known = json.loads(refs.read_text()) if refs.exists() else {}
        known.update({r["id"]: r for r in records})
        refs.write_text(json.dumps(known, indent=2) + "\n")
        if opts.command == "build":
            for record in records:
                print(
                    f"{record['id']:<24} {record['digest']}  {record['ref']}"
                    f"  {int(record['size']) >> 20} MiB"
                )
            return 0
        address = os.environ.get("MODELWERK_CONTAINERD_ADDRESS")
        if not address:
            raise BuildError(
                'MODELWERK_CONTAINERD_ADDRESS is not set: eval "$(hack/cluster.sh env)"'
            )
        for record in records:
            import_into(record, address)
        for record in records:
            repository = record["ref"].rsplit(":", 1)[0]
            print(f"{record['ref']}  (imageID {repository}@{record['digest']})")
        return 0
    except BuildError as err:
        say(f"error: {err}")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
