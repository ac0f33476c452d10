"""The Dockerfile side of hack/images.py: parsing, the build context, the stages and their
RUN commands in a chroot. What the Dockerfiles in images/ use is supported; the rest refused."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE = re.compile(r"^python:(?P<python>3\.\d+)-slim-(?P<suite>[a-z]+)@sha256:[0-9a-f]{64}$")
# Build-time settings handed to RUN (like BuildKit's proxy args): never stored in the image.
PASS_THROUGH = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_DEFAULT_TIMEOUT")
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
