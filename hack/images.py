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
import functools
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# Bump when what is built changes without any input changing (the recipe, not the wording).
RECIPE = 2
ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "images"
CACHE = Path(os.environ.get("MODELWERK_CACHE") or Path.home() / ".cache" / "modelwerk") / "images"
MIRROR = os.environ.get("MODELWERK_DEBIAN_MIRROR", "http://deb.debian.org/debian")
REPOSITORY = "localhost/modelwerk"
NAMES = ("operator", "model-server", "trainer")
BASE = re.compile(r"^python:(?P<python>3\.\d+)-slim-(?P<suite>[a-z]+)@sha256:[0-9a-f]{64}$")
# What the official python:*-slim images hold besides Python's own libraries.
BASE_PACKAGES = ("ca-certificates", "netbase", "tzdata", "usr-is-merged")
# apt picks usrmerge (and with it perl) for init-system-helpers; usr-is-merged suffices.
PURGE = (
    "usrmerge",
    "libfile-find-rule-perl",
    "libnumber-compare-perl",
    "libtext-glob-perl",
    "perl",
    "libperl5.36",
    "perl-modules-5.36",
)
# Left out of the copied CPython, as the official image leaves them out (or never needs them).
SKIP_LIB = {"test", "idlelib", "tkinter", "turtledemo", "site-packages", "__phello__"}
SKIP_MODULE = re.compile(r"^(_tkinter|_test|_ctypes_test|_xx|xx)")
DPKG_EXCLUDES = ("/usr/share/man/*", "/usr/share/doc/*", "/usr/share/info/*", "/usr/share/locale/*")
# Build-time settings handed to RUN (like BuildKit's proxy args): never stored in the image.
PASS_THROUGH = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_DEFAULT_TIMEOUT")
# Builds kept per image (and bases per suite and Python), the last used first.
KEEP = 4
START = time.monotonic()


class BuildError(Exception):
    pass


def say(message: str) -> None:
    print(f"[images +{time.monotonic() - START:.0f}s] {message}", file=sys.stderr, flush=True)


def sh(*argv: str | Path, capture: bool = False) -> str:
    """Runs a command; its output is progress (stderr) unless captured: stdout is for results."""
    out = subprocess.PIPE if capture else sys.stderr
    err = subprocess.PIPE if capture else None
    proc = subprocess.run([str(a) for a in argv], check=False, text=True, stdout=out, stderr=err)
    if proc.returncode != 0:
        detail = (proc.stderr or "")[-3000:] if capture else ""
        raise BuildError(f"{shlex.join(str(a) for a in argv)} exited {proc.returncode}\n{detail}")
    return proc.stdout if capture else ""


def digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


# --- the Dockerfile ---------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    args: dict[str, str]
    stages: list[Stage]


def parse(text: str) -> Dockerfile:
    """Instructions by stage, continuation lines joined and comments dropped."""
    dockerfile = Dockerfile({}, [])
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        start = start if pending else number
        pending.append(stripped.removesuffix("\\").strip())
        if stripped.endswith("\\"):
            continue
        keyword, _, args = " ".join(p for p in pending if p).partition(" ")
        pending = []
        ins = Instruction(keyword.upper(), args.strip(), start)
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            dockerfile.stages.append(Stage(expand(words[0], dockerfile.args), name))
        elif not dockerfile.stages:
            if ins.keyword != "ARG":
                raise BuildError(f"line {ins.line}: only ARG may precede FROM")
            key, _, default = ins.args.partition("=")
            dockerfile.args[key.strip()] = default.strip().strip('"')
        else:
            dockerfile.stages[-1].instructions.append(ins)
    return dockerfile


def expand(text: str, values: dict[str, str]) -> str:
    """${VAR} and $VAR as the Dockerfile substitutes them (unknown ones stay empty)."""
    return re.sub(
        r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)",
        lambda m: values.get(m.group(1) or m.group(2), ""),
        text,
    )


def pairs(args: str, values: dict[str, str]) -> dict[str, str]:
    """`K=V K2="V 2"` (ENV, LABEL, ARG) with variables substituted."""
    result = {}
    for word in shlex.split(args):
        key, sep, value = word.partition("=")
        if not sep:
            raise BuildError(f"only the KEY=VALUE form is supported: {args}")
        result[key] = expand(value, values)
    return result


def flags(args: str) -> tuple[dict[str, list[str]], str]:
    """Leading `--flag=value` words of COPY and RUN, and the rest."""
    found: dict[str, list[str]] = {}
    while args.startswith("--"):
        word, _, args = args.partition(" ")
        key, _, value = word[2:].partition("=")
        found.setdefault(key, []).append(value)
        args = args.lstrip()
    return found, args


def base_of(reference: str) -> tuple[str, str]:
    """(suite, Python X.Y) of the base the Dockerfile names."""
    match = BASE.match(reference)
    if match is None:
        raise BuildError(f"FROM {reference}: only python:X.Y-slim-<suite>@sha256:... is supported")
    return match["suite"], match["python"]


# --- the build context ------------------------------------------------------------------------


def ignore_rules(dockerfile: Path) -> list[tuple[bool, str, re.Pattern[str]]]:
    """The Dockerfile's own .dockerignore: (negated, text, pattern); the last match wins."""
    rules = []
    path = dockerfile.with_name(dockerfile.name + ".dockerignore")
    for line in path.read_text().splitlines() if path.exists() else []:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.removeprefix("!").strip("/")
        regex = "".join(
            ".*"
            if part == "**"
            else "[^/]*"
            if part == "*"
            else "[^/]"
            if part == "?"
            else re.escape(part)
            for part in re.split(r"(\*\*|\*|\?)", pattern)
        )
        rules.append((negated, pattern, re.compile(regex.replace(".*/", "(.*/)?") + "$")))
    return rules


def context_files(dockerfile: Path) -> list[str]:
    """Every file of the build context the ignore file admits, relative to the repository."""
    rules = ignore_rules(dockerfile)

    def excluded(rel: str) -> bool:
        prefixes = ["/".join(rel.split("/")[: i + 1]) for i in range(rel.count("/") + 1)]
        verdict = False
        for negated, _, pattern in rules:
            if any(pattern.match(p) for p in prefixes):
                verdict = not negated
        return verdict

    def reincluded(rel: str) -> bool:
        return any(negated and text.startswith(rel + "/") for negated, text, _ in rules)

    found = []
    for top, dirs, files in os.walk(ROOT):
        rel_top = os.path.relpath(top, ROOT)
        rel_top = "" if rel_top == "." else rel_top + "/"
        # A directory is skipped whole when excluded and no negation reaches below it.
        dirs[:] = sorted(
            d for d in dirs if not (excluded(rel_top + d) and not reincluded(rel_top + d))
        )
        found += [rel_top + f for f in sorted(files) if not excluded(rel_top + f)]
    return found


def context_hash(dockerfile: Path) -> str:
    parts: list[str | bytes] = []
    for rel in context_files(dockerfile):
        path = ROOT / rel
        parts += [rel, oct(path.stat().st_mode & 0o111), path.read_bytes()]
    return digest(*parts)


# --- the base: Debian <suite> with this machine's CPython X.Y ------------------------------------


@dataclass
class Python:
    executable: Path
    prefix: Path
    version: str


def find_python(minor: str) -> Python:
    """The CPython X.Y the venv is made from (hack/bootstrap.sh looks in the same places)."""
    candidates = [os.environ.get("MODELWERK_PYTHON", "")]
    for root in (os.environ.get("PYENV_ROOT", ""), str(Path.home() / ".pyenv")):
        found = sorted(Path(root or "/nonexistent").glob(f"versions/{minor}.*/bin/python{minor}"))
        candidates += [str(p) for p in found[-1:]]
    candidates.append(shutil.which(f"python{minor}") or "")
    probe = (
        "import sys, sysconfig; print(sys.base_prefix); "
        "print(sysconfig.get_python_version()); print(sys.version.split()[0])"
    )
    for candidate in filter(None, candidates):
        proc = subprocess.run([candidate, "-c", probe], capture_output=True, text=True, check=False)
        lines = proc.stdout.split()
        if proc.returncode == 0 and lines[1] == minor:
            return Python(Path(candidate), Path(lines[0]), lines[2])
    raise BuildError(
        f"no CPython {minor} found (pyenv, python{minor} on PATH, or MODELWERK_PYTHON)"
    )


def python_files(python: Python) -> list[tuple[Path, str]]:
    """(source, path under /usr/local) of what is copied into the base."""
    minor = python.version.rsplit(".", 1)[0]
    lib = python.prefix / "lib" / f"python{minor}"
    files = [(python.prefix / "bin" / f"python{minor}", f"bin/python{minor}")]
    files += [(p, f"lib/{p.name}") for p in sorted((python.prefix / "lib").glob("libpython*.so*"))]
    for top, dirs, names in os.walk(lib):
        rel = Path(top).relative_to(lib)
        dirs[:] = sorted(d for d in dirs if not (rel == Path(".") and d in SKIP_LIB))
        for name in sorted(names):
            # Optimised bytecode (-O, -OO) is never used by the entrypoints; plain .pyc is kept
            # because a read-only root filesystem cannot cache what it would recompile.
            if name.endswith((".a", ".opt-1.pyc", ".opt-2.pyc")) or (
                rel.name == "lib-dynload" and SKIP_MODULE.match(name)
            ):
                continue
            files.append((Path(top) / name, f"lib/python{minor}/{rel / name}"))
    return files


def library_packages(python: Python, files: list[tuple[Path, str]]) -> list[str]:
    """The Debian packages whose shared libraries the copied interpreter and modules link."""
    binaries = [
        str(src) for src, rel in files if rel.endswith(".so") or ".so." in rel or "/" not in rel[4:]
    ]
    libraries = set()
    for line in sh("ldd", *binaries, capture=True).splitlines():
        if "=>" in line and "/" in line.split("=>")[1]:
            library = line.split("=>")[1].split()[0]
            if not os.path.realpath(library).startswith(str(python.prefix)):  # libpython: copied
                libraries.add(library)
    # Under merged /usr dpkg knows a library by one of its names only.
    names = {
        lib: [lib, os.path.realpath(lib), "/usr" + lib, "/usr" + os.path.realpath(lib)]
        for lib in libraries
    }
    query = sorted({path for paths in names.values() for path in paths})
    proc = subprocess.run(["dpkg", "-S", *query], capture_output=True, text=True, check=False)
    owners = {}
    for line in proc.stdout.splitlines():
        package, _, path = line.partition(": ")
        owners[path.strip()] = package.split(",")[0].split(":")[0]
    packages = set()
    for library, paths in sorted(names.items()):
        found = [owners[p] for p in paths if p in owners]
        if not found:
            raise BuildError(f"{library}: no Debian package holds it (is this machine Debian?)")
        packages.add(found[0])
    return sorted(packages)


@dataclass
class Base:
    key: str
    suite: str
    python: Python
    dir: Path

    @property
    def layout(self) -> Path:
        return self.dir / "oci"

    @property
    def env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "PYTHON_VERSION": self.python.version,
        }


@functools.cache
def base_plan(reference: str) -> tuple[Base, tuple[tuple[Path, str], ...], tuple[str, ...]]:
    """The stand-in's identity (the key over everything it is made from), files and packages."""
    suite, minor = base_of(reference)
    python = find_python(minor)
    files = python_files(python)
    packages = sorted({*BASE_PACKAGES, *library_packages(python, files)})
    key = digest(
        f"recipe={RECIPE}",
        suite,
        MIRROR,
        *packages,
        python.version,
        *(digest(src.read_bytes()) for src, rel in files if not rel.endswith((".py", ".pyc"))),
    )[:16]
    result = Base(key, suite, python, CACHE / f"base-{suite}-py{minor}-{key}")
    return result, tuple(files), tuple(packages)


def base(reference: str, create: bool = True) -> Base:
    """The local stand-in for `reference`, built unless cached (or only named: create=False)."""
    result, files, packages = base_plan(reference)
    suite, python = result.suite, result.python
    minor = python.version.rsplit(".", 1)[0]
    if (result.dir / "done").exists() or not create:
        if create:
            os.utime(result.dir)  # last used, for prune()
        return result
    say(f"base {reference} -> Debian {suite} + CPython {python.version} from {python.prefix}")
    shutil.rmtree(result.dir, ignore_errors=True)
    result.dir.mkdir(parents=True)
    rootfs = result.dir / "rootfs"
    excludes = [f"--dpkgopt=path-exclude={p}" for p in DPKG_EXCLUDES]
    sh(
        "mmdebstrap",
        "--quiet",
        "--variant=minbase",
        "--mode=root",
        "--format=directory",
        f"--include={','.join(packages)}",
        *excludes,
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        '--aptopt=Acquire::Languages "none"',
        suite,
        rootfs,
        MIRROR,
    )
    say(f"mmdebstrap {suite} done")
    local = rootfs / "usr" / "local"
    for src, rel in files:
        (local / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, local / rel, follow_symlinks=False)
    for link in ("python3", "python"):
        (local / "bin" / link).symlink_to(f"python{minor}")
    # The host's device nodes, DNS and name stay out; the runtime mounts its own there.
    for path in (rootfs / "dev").iterdir():
        subprocess.run(["rm", "-rf", str(path)], check=True)
    for name in ("resolv.conf", "hostname"):
        (rootfs / "etc" / name).write_text("")
    purge = f"dpkg --purge {' '.join(PURGE)} >/dev/null"
    run(
        rootfs,
        f"{purge} && ldconfig && python -m ensurepip --default-pip >/dev/null"
        " && rm -rf /root/.cache",
        result.env,
    )
    say("CPython copied, pip installed")
    sh("umoci", "init", "--layout", result.layout)
    sh("umoci", "new", "--image", f"{result.layout}:base")
    sh("umoci", "insert", "--no-history", "--image", f"{result.layout}:base", rootfs, "/")
    sh(
        "umoci",
        "config",
        "--no-history",
        "--image",
        f"{result.layout}:base",
        *(f"--config.env={k}={v}" for k, v in result.env.items()),
        "--config.cmd=python3",
    )
    shutil.rmtree(rootfs)  # stages unpack the layout; the tree is not needed twice
    (result.dir / "done").write_text(reference + "\n")
    prune(f"base-{suite}-py{minor}", result.dir)
    say(f"base ready: {result.dir}")
    return result


def prune(prefix: str, keep: Path) -> None:
    """Builds of the same image from other inputs, beyond the KEEP last used: other clones or
    branches on this machine share the cache, so their current builds are kept too."""
    pattern = re.compile(rf"{re.escape(prefix)}-[0-9a-f]{{16}}")
    others = [d for d in CACHE.iterdir() if d != keep and pattern.fullmatch(d.name)]
    others.sort(key=lambda d: d.stat().st_mtime, reverse=True)
    for old in others[KEEP - 1 :]:
        shutil.rmtree(old, ignore_errors=True)


# --- RUN in a chroot ----------------------------------------------------------------------------


def run(
    rootfs: Path,
    command: str | list[str],
    env: dict[str, str],
    workdir: str = "/",
    user: str | None = None,
    binds: list[tuple[Path, str]] = (),  # type: ignore[assignment]
) -> None:
    """A RUN instruction: own mount and PID namespaces, the host's network and DNS, /proc and
    /dev; `binds` are (host directory, target) mounted read-only for this command only."""
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else command
    env = {**env, **{k: os.environ[k] for k in PASS_THROUGH if k in os.environ}}
    cert = os.environ.get("PIP_CERT")
    setup = [
        "set -e",
        f"r={shlex.quote(str(rootfs))}",
        'mount -t proc proc "$r/proc"',
        'mount --rbind /dev "$r/dev"',
        'mount --bind /etc/resolv.conf "$r/etc/resolv.conf"',
    ]
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    if cert and Path(cert).is_file() and (rootfs / bundle.lstrip("/")).is_file():
        # A TLS-intercepting network needs the host's CA bundle for pip: lent over the image's
        # own for this command, never written into the image.
        env["PIP_CERT"] = bundle
        setup.append(f'mount --bind {shlex.quote(cert)} "$r{bundle}"')
    created = []
    for source, target in binds:
        if not (rootfs / target.lstrip("/")).exists():
            created.append(target)
        setup += [
            f'mkdir -p "$r"{shlex.quote(target)}',
            f'mount --bind -o ro {shlex.quote(str(source))} "$r"{shlex.quote(target)}',
        ]
    spec = f"--userspec={user}" if user else "--userspec=0:0"
    inner = shlex.join(
        [
            "env",
            "-i",
            *(f"{k}={v}" for k, v in env.items()),
            "/bin/sh",
            "-c",
            'cd "$0" && exec "$@"',
            workdir,
            *argv,
        ]
    )
    setup.append(f'exec chroot {spec} "$r" {inner}')
    try:
        sh(
            "unshare",
            "--mount",
            "--pid",
            "--fork",
            "--kill-child",
            "/bin/sh",
            "-c",
            "\n".join(setup),
        )
    finally:
        for target in created:
            shutil.rmtree(rootfs / target.lstrip("/"), ignore_errors=True)


# --- the stages ---------------------------------------------------------------------------------


@dataclass
class Config:
    env: dict[str, str]
    user: str | None = None
    workdir: str = "/"
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    ports: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)


def execute(
    stage: Stage,
    rootfs: Path | None,
    config: Config,
    args: dict[str, str],
    dockerfile: Path,
    done: dict[str, Path],
) -> list[tuple[str | list[str], dict[str, str]]]:
    """The stage's instructions on `rootfs`, recording the image configuration in `config`;
    returns the RUN commands with their environments. rootfs=None: no COPY or RUN is carried
    out (what the tests use to read a Dockerfile as this script reads it)."""
    scope: dict[str, str] = {}  # the ARGs declared in this stage, with their values
    runs: list[tuple[str | list[str], dict[str, str]]] = []
    for ins in stage.instructions:
        values = {**scope, **config.env}
        where = f"{dockerfile.name}:{ins.line}"
        if ins.keyword == "ARG":
            key, sep, default = ins.args.partition("=")
            scope[key] = args.get(key, expand(default.strip('"'), values) if sep else "")
        elif ins.keyword == "ENV":
            config.env.update(pairs(ins.args, values))
        elif ins.keyword == "LABEL":
            config.labels.update(pairs(ins.args, values))
        elif ins.keyword == "WORKDIR":
            config.workdir = str(Path(config.workdir) / expand(ins.args, values))
            if rootfs is not None:
                (rootfs / config.workdir.lstrip("/")).mkdir(parents=True, exist_ok=True)
        elif ins.keyword == "USER":
            config.user = expand(ins.args, values)
        elif ins.keyword == "EXPOSE":
            config.ports += [
                p if "/" in p else f"{p}/tcp" for p in expand(ins.args, values).split()
            ]
        elif ins.keyword in ("ENTRYPOINT", "CMD"):
            if not ins.args.startswith("["):
                raise BuildError(
                    f"{where}: only the exec (JSON) form of {ins.keyword} is supported"
                )
            if ins.keyword == "ENTRYPOINT":
                config.entrypoint, config.cmd = json.loads(ins.args), []  # as Docker resets CMD
            else:
                config.cmd = json.loads(ins.args)
        elif ins.keyword == "COPY":
            if rootfs is not None:
                copy(ins, rootfs, config, values, dockerfile, done)
        elif ins.keyword == "RUN":
            options, command = flags(ins.args)
            binds = []
            for mount in options.pop("mount", []):
                spec = dict(part.partition("=")[::2] for part in mount.split(","))
                if spec.get("type") != "bind" or spec.get("from") not in done:
                    raise BuildError(
                        f"{where}: only --mount=type=bind,from=<earlier stage> is supported"
                    )
                binds.append((done[spec["from"]] / spec["source"].lstrip("/"), spec["target"]))
            if options:
                raise BuildError(f"{where}: RUN --{', --'.join(options)} is not supported")
            argv = json.loads(command) if command.startswith("[") else command
            runs.append((argv, {**scope, **config.env}))
            if rootfs is not None:
                say(f"{where} RUN {command[:90]}")
                run(rootfs, argv, runs[-1][1], config.workdir, config.user, binds)
        else:
            raise BuildError(f"{where}: {ins.keyword} is not supported by hack/images.py")
    return runs


def copy(
    ins: Instruction,
    rootfs: Path,
    config: Config,
    values: dict[str, str],
    dockerfile: Path,
    done: dict[str, Path],
) -> None:
    options, rest = flags(ins.args)
    *sources, target = [expand(w, values) for w in shlex.split(rest)]
    if set(options) - {"from"}:
        raise BuildError(
            f"{dockerfile.name}:{ins.line}: COPY --{', --'.join(options)} is not supported"
        )
    admitted = None if "from" in options else set(context_files(dockerfile))
    origin = done[options["from"][0]] if "from" in options else ROOT
    dest = rootfs / (Path(config.workdir) / target).relative_to("/")
    for source in sources:
        src = origin / source.lstrip("/")
        if src.is_dir():
            # The directory's contents, as Docker copies them (only what the context admits).
            for path in sorted(src.rglob("*")):
                rel = path.relative_to(ROOT).as_posix() if admitted is not None else None
                if path.is_file() and (admitted is None or rel in admitted):
                    out = dest / path.relative_to(src)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, out)
        elif admitted is None or source in admitted:
            out = dest / src.name if target.endswith("/") or len(sources) > 1 else dest
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out)
        else:
            raise BuildError(f"{dockerfile.name}:{ins.line}: {source} is not in the build context")


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
