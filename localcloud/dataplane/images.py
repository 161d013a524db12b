"""The local cloud's image store: images that are what they say, without a container engine.

``localcloud publish TAG --context DIR`` snapshots a build context (the files that ``.dockerignore``
lets into a ``docker build``, plus the Dockerfile) into ``<state dir>/images/layers/<sha256>/``. The
snapshot's name is the sha256 over a canonical listing of its files (relative path, size, executable
bit and bytes, in path order), so the same content always gives the same snapshot and any change
another one. The image manifest pushed to the local ECR has that snapshot as its one layer and a
config derived from it, and its digest is the sha256 of the manifest, as ECR computes it: the digest
that ``describe_images`` shows is derived from the content and nothing else (not the tag, not the
repository, not the time).

A task "pulls" the image its task definition names (a tag or an ``@sha256:`` digest) by reading the
manifest back from ECR (``BatchGetImage``), and runs the snapshot of its layer with the image's own
dependencies: a virtual environment per distinct requirements set (the ``requirements*.txt`` the
Dockerfile installs, with ``-r`` includes), cached under ``<state dir>/images/venvs/<key>/`` and
built once. How it is built:

* **linked** - when the requirements are byte for byte those of the checkout's ``app/`` (the set the
  controller's own environment was installed from) and every pin is installed in the controller's
  environment at exactly that version, the venv is made without pip and each pinned distribution is
  linked into its ``site-packages`` from the controller's copy (its files as its ``RECORD`` lists
  them). Nothing else of the controller is visible: an import of a package the image does not
  install fails as it would in the image. This takes well under a second and needs no network.
* **pip** - any other set: ``pip install`` of those files (with ``--no-deps`` when the Dockerfile
  says so) into a fresh venv, from the package index this machine is configured with.

Snapshots that no ECR image and no running task references are removed (:meth:`ImageStore.collect`,
at each publish and at ``localcloud up``); venvs are a cache and stay.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
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
from collections.abc import Iterable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHECKOUT_APP = REPO / "app"
TAG_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"
# Never part of an image, whatever .dockerignore says: caches of the machine that built the context.
ALWAYS_IGNORED = ("**/__pycache__", "**/*.pyc", "**/.pytest_cache", ".git")
# Without a .dockerignore: the tests stay out of the image as well.
DEFAULT_IGNORED = ("tests",)
VENV_MARKER = "localcloud-venv.json"
PIP_TIMEOUT = 900.0
RECENT_TASK = 120.0  # a task marker this young keeps its snapshot even before its process shows up


class ImageError(Exception):
    """A context that cannot become an image, or an image that cannot be run; the message says why."""


# -- the build context ---------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go's filepath.Match plus ``**``) as a regex over a relative path."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(f"^{out}$")


def ignore_rules(context: Path) -> list[tuple[bool, re.Pattern[str]]]:
    """(excludes, pattern) in order: the context's .dockerignore (else the default list), then the
    caches that never belong to an image. The last rule matching a path or one of its parents wins."""
    rules: list[tuple[bool, re.Pattern[str]]] = []
    dockerignore = context / ".dockerignore"
    lines = dockerignore.read_text().splitlines() if dockerignore.is_file() else list(DEFAULT_IGNORED)
    for raw in [*lines, *ALWAYS_IGNORED]:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = os.path.normpath(line[1:].strip() if negated else line).lstrip("/")
        if pattern in (".", ""):
            continue
        rules.append((not negated, _pattern_regex(pattern)))
    return rules


def _excluded(relative: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    parts = relative.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for excludes, pattern in rules:
        if any(pattern.match(candidate) for candidate in candidates):
            excluded = excludes
    return excluded


def context_files(context: Path) -> list[str]:
    """The relative paths (with ``/``) of the regular files of a build context that go into the image,
    sorted; the Dockerfile always (it defines the image). Symlinks are followed as docker does not:
    a symlink inside the context is refused."""
    rules = ignore_rules(context)
    found = []
    for root, dirs, files in os.walk(context):
        base = Path(root).relative_to(context)
        dirs.sort()
        for name in sorted(files):
            relative = (base / name).as_posix()
            path = Path(root) / name
            if path.is_symlink():
                raise ImageError(f"{relative} in the build context {context} is a symbolic link: copy the file instead")
            if relative == "Dockerfile" or not _excluded(relative, rules):
                found.append(relative)
        # Prune directories that nothing can re-include (no negation rule below them).
        keep = []
        for name in dirs:
            relative = (base / name).as_posix()
            reinclude = any(not excludes for excludes, _ in rules)
            if reinclude or not _excluded(relative, rules):
                keep.append(name)
        dirs[:] = keep
    return sorted(found)


def content_digest(context: Path, files: Iterable[str]) -> tuple[str, int]:
    """(sha256 hex, total bytes) over the canonical listing of ``files``: for each, in order, its
    relative path, size and executable bit, then its bytes."""
    digest, total = hashlib.sha256(), 0
    for relative in files:
        path = context / relative
        data = path.read_bytes()
        executable = int(os.access(path, os.X_OK))
        digest.update(f"{relative}\0{len(data)}\0{executable}\0".encode())
        digest.update(data)
        total += len(data)
    return digest.hexdigest(), total


@dataclasses.dataclass(frozen=True)
class Dockerfile:
    requirements: tuple[str, ...]  # what RUN pip install -r installs, in order
    no_deps: bool
    cmd: tuple[str, ...]


def _instructions(text: str) -> Iterator[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            continue
        if logical and line.startswith("#"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        word, _, rest = logical.partition(" ")
        yield word.upper(), rest.strip()
        logical = ""
    if logical:
        word, _, rest = logical.partition(" ")
        yield word.upper(), rest.strip()


def _copied(rest: str, workdir: str, copies: dict[str, str]) -> None:
    """Note where ``COPY SRC... DEST`` puts each file of the build context (not ``--from`` a stage)."""
    try:
        tokens = shlex.split(rest)
    except ValueError:
        return
    if any(token.startswith("--from") for token in tokens):
        return
    paths = [token for token in tokens if not token.startswith("--")]
    if len(paths) < 2:
        return
    *sources, dest = paths
    dest = dest if dest.startswith("/") else os.path.join(workdir, dest)
    for source in sources:
        inside = os.path.join(dest, os.path.basename(source)) if dest.endswith("/") or len(sources) > 1 else dest
        copies[os.path.normpath(inside)] = os.path.normpath(source)


def _pip_requirements(rest: str, workdir: str, copies: dict[str, str]) -> tuple[list[str], bool]:
    """The requirements files a ``RUN ... pip install -r`` installs, as paths in the build context, and
    whether with ``--no-deps``."""
    requirements: list[str] = []
    no_deps = False
    for command in re.split(r"&&|;", rest):
        if "install" not in command:
            continue
        try:
            tokens = shlex.split(command)
        except ValueError:
            continue
        for n, token in enumerate(tokens):
            named = None
            if token in ("-r", "--requirement") and n + 1 < len(tokens):
                named = tokens[n + 1]
            elif token.startswith("--requirement="):
                named = token.split("=", 1)[1]
            if named is not None:
                in_image = os.path.normpath(named if named.startswith("/") else os.path.join(workdir, named))
                requirements.append(copies.get(in_image, named))
        no_deps = no_deps or "--no-deps" in tokens
    return requirements, no_deps


def parse_dockerfile(text: str) -> Dockerfile:
    """What the local cloud reads of a Dockerfile: the requirements files its ``RUN pip install -r``
    installs (as paths in the build context, through the ``COPY`` that put them there), whether with
    ``--no-deps``, and its ``CMD``."""
    requirements: list[str] = []
    no_deps = False
    cmd: tuple[str, ...] = ()
    copies: dict[str, str] = {}  # path in the image -> path in the build context
    workdir = "/"
    for word, rest in _instructions(text):
        if word == "WORKDIR":
            workdir = rest if rest.startswith("/") else os.path.join(workdir, rest)
        elif word in ("COPY", "ADD"):
            _copied(rest, workdir, copies)
        elif word == "RUN" and re.search(r"\bpip3?\b.*\binstall\b|-m pip install", rest):
            installed, without_deps = _pip_requirements(rest, workdir, copies)
            requirements += installed
            no_deps = no_deps or without_deps
        elif word == "CMD":
            try:
                parsed = json.loads(rest)
            except ValueError:
                parsed = ["/bin/sh", "-c", rest]
            if not isinstance(parsed, list) or not all(isinstance(p, str) for p in parsed):
                raise ImageError(f"the Dockerfile's CMD {rest!r} is neither a JSON list of strings nor a shell command")
            cmd = tuple(parsed)
    return Dockerfile(tuple(requirements), no_deps, cmd)


def requirement_files(root: Path, dockerfile: Dockerfile, files: set[str] | None = None) -> list[str]:
    """The requirements files the image installs, relative to ``root``, ``-r`` includes followed
    (``files``: the files that go into the image, when ``root`` is a build context)."""
    found: list[str] = []
    todo = list(dockerfile.requirements)
    while todo:
        name = os.path.normpath(todo.pop(0))
        if name in found:
            continue
        path = root / name
        if not path.is_file() or (files is not None and Path(name).as_posix() not in files):
            raise ImageError(f"the Dockerfile installs {name}, which is not in the image (check .dockerignore)")
        found.append(name)
        for line in path.read_text().splitlines():
            tokens = line.split("#", 1)[0].split()
            if len(tokens) >= 2 and tokens[0] in ("-r", "--requirement"):
                todo.append(os.path.join(os.path.dirname(name), tokens[1]))
    return found


def requirements_key(root: Path, files: list[str]) -> str:
    """The venv cache key: the requirements files (names and bytes), the interpreter's version and platform."""
    digest = hashlib.sha256(f"python {sys.version_info[0]}.{sys.version_info[1]} {sys.platform}\0".encode())
    for name in files:
        digest.update(f"{name}\0".encode())
        digest.update((root / name).read_bytes())
    return digest.hexdigest()[:32]


def app_command(cmd: tuple[str, ...]) -> tuple[str, ...]:
    """The CMD as the task runs it: ``gunicorn ARGS`` becomes ``python -m gunicorn ARGS`` (the venv's
    console scripts are not made for a linked venv); anything else runs as written."""
    if cmd and cmd[0] == "gunicorn":
        return ("python", "-m", "gunicorn", *cmd[1:])
    return cmd


def check_app(files: set[str], cmd: tuple[str, ...]) -> None:
    """The app that CMD runs is in the image (``files``): for gunicorn, its ``-c`` config and the
    module of its ``module:app``; for ``python -m module`` or ``python file.py``, that module or file."""
    if not cmd:
        raise ImageError("the Dockerfile has no CMD: the image would run nothing")
    args = list(cmd[1:]) if cmd[0] == "gunicorn" else []
    if cmd[0] == "gunicorn":
        for n, arg in enumerate(args):
            if arg in ("-c", "--config") and n + 1 < len(args) and _norm(args[n + 1]) not in files:
                raise ImageError(f"the gunicorn config {args[n + 1]} that CMD names is not in the image")
        apps = [a for a in args if ":" in a and not a.startswith("-")]
        modules = [a.split(":", 1)[0] for a in apps] or [a for a in args[-1:] if not a.startswith("-")]
        if not modules:
            raise ImageError(f"the Dockerfile's CMD {list(cmd)} names no app module")
        for module in modules:
            _check_module(files, module, cmd)
    elif cmd[0] in ("python", "python3") and len(cmd) >= 3 and cmd[1] == "-m":
        _check_module(files, cmd[2], cmd, installed_ok=True)
    elif cmd[0] in ("python", "python3") and len(cmd) >= 2 and cmd[1].endswith(".py") and _norm(cmd[1]) not in files:
        raise ImageError(f"{cmd[1]}, which the Dockerfile's CMD runs, is not in the image")


def _norm(relative: str) -> str:
    return Path(os.path.normpath(relative)).as_posix()


def _check_module(files: set[str], module: str, cmd: tuple[str, ...], *, installed_ok: bool = False) -> None:
    path = module.replace(".", "/")
    if f"{path}/__init__.py" in files or f"{path}.py" in files:
        return
    if installed_ok:
        return  # python -m of an installed package
    raise ImageError(f"the app module {module} that the Dockerfile's CMD {list(cmd)} runs is not in the image")


# -- the store -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Snapshot:
    digest: str  # sha256 hex of the content
    path: Path
    size: int
    files: tuple[str, ...]

    @property
    def layer_digest(self) -> str:
        return f"sha256:{self.digest}"


@dataclasses.dataclass(frozen=True)
class RunnableImage:
    """What a task runs: the snapshot (its working directory), the venv and the command."""

    root: Path
    layer_digest: str
    venv: Path
    command: tuple[str, ...]

    @property
    def bin_dir(self) -> Path:
        return self.venv / "bin"

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    def argv(self) -> list[str]:
        command = list(self.command)
        if command and command[0] in ("python", "python3"):
            command[0] = self.python
        elif command and "/" not in command[0]:
            found = shutil.which(command[0], path=str(self.bin_dir))
            command[0] = found or command[0]
        return command


def manifest_for(snapshot: Snapshot, dockerfile: Dockerfile, key: str) -> tuple[str, str]:
    """(image manifest, image digest): a schema 2 manifest whose one layer is the snapshot and whose
    config says what runs; the digest is the sha256 of the manifest's bytes, as in ECR."""
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": list(dockerfile.cmd), "Labels": {"localcloud.requirements": key}},
            "rootfs": {"type": "layers", "diff_ids": [snapshot.layer_digest]},
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {
                "mediaType": CONFIG_MEDIA_TYPE,
                "size": len(config),
                "digest": "sha256:" + hashlib.sha256(config.encode()).hexdigest(),
            },
            "layers": [{"mediaType": LAYER_MEDIA_TYPE, "size": snapshot.size, "digest": snapshot.layer_digest}],
        },
        separators=(",", ":"),
    )
    return manifest, "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()


def layer_of(manifest: str) -> str | None:
    """The snapshot digest (hex) of an image manifest of ours, or None (an image not published here)."""
    try:
        layers = json.loads(manifest).get("layers") or []
    except (ValueError, AttributeError):
        return None
    digest = str(layers[0].get("digest", "")) if len(layers) == 1 else ""
    return digest.split(":", 1)[1] if digest.startswith("sha256:") else None


class ImageStore:
    """``<state dir>/images``: ``layers/<sha256>/`` (read-only snapshots) and ``venvs/<key>/``."""

    def __init__(self, state_dir: Path, *, checkout_app: Path = CHECKOUT_APP, python: str = sys.executable):
        self.root = Path(state_dir) / "images"
        self.state_dir = Path(state_dir)
        self.checkout_app = checkout_app
        self.python = python

    @property
    def layers(self) -> Path:
        return self.root / "layers"

    @property
    def venvs(self) -> Path:
        return self.root / "venvs"

    def layer_path(self, digest_hex: str) -> Path:
        return self.layers / digest_hex

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Publishing and collecting exclude each other (and two publishes)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # ---- building an image

    def inspect(self, context: Path) -> tuple[Dockerfile, list[str], str, list[str]]:
        """(Dockerfile, files, requirements key, requirements files) of a build context; ImageError
        when it cannot be an image (no Dockerfile, no app, a requirements file left out)."""
        context = Path(context)
        if not context.is_dir():
            raise ImageError(f"the build context {context} is not a directory")
        if not (context / "Dockerfile").is_file():
            raise ImageError(f"the build context {context} has no Dockerfile")
        dockerfile = parse_dockerfile((context / "Dockerfile").read_text())
        files = context_files(context)
        requirements = requirement_files(context, dockerfile, set(files))
        check_app(set(files), dockerfile.cmd)
        return dockerfile, files, requirements_key(context, requirements), requirements

    def snapshot(self, context: Path) -> tuple[Snapshot, Dockerfile, str]:
        """Snapshot a build context (under :meth:`lock`): (snapshot, Dockerfile, requirements key).
        The same content is stored once."""
        context = Path(context).resolve()
        dockerfile, files, key, _ = self.inspect(context)
        digest, size = content_digest(context, files)
        target = self.layer_path(digest)
        if not target.is_dir():
            self.layers.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.layers))
            try:
                for relative in files:
                    destination = staging / relative
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(context / relative, destination)
                again, _ = content_digest(staging, files)
                if again != digest:
                    raise ImageError(f"the build context {context} changed while it was being published: try again")
                staging.chmod(0o755)
                staging.rename(target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        return Snapshot(digest, target, size, tuple(files)), dockerfile, key

    # ---- running an image

    def runnable(self, layer_hex: str) -> RunnableImage:
        """The snapshot ``layer_hex`` with its venv (built now if it is not cached)."""
        root = self.layer_path(layer_hex)
        if not (root / "Dockerfile").is_file():
            raise ImageError(f"layer sha256:{layer_hex} is not in the local image store (publish the image again)")
        dockerfile = parse_dockerfile((root / "Dockerfile").read_text())
        requirements = requirement_files(root, dockerfile)
        venv = self.venv(root, requirements, no_deps=dockerfile.no_deps)
        return RunnableImage(root, f"sha256:{layer_hex}", venv, app_command(dockerfile.cmd))

    def venv(self, root: Path, requirements: list[str], *, no_deps: bool = False) -> Path:
        """The venv of a requirements set, built once (linked or by pip, see the module's docstring)."""
        key = requirements_key(root, requirements)
        target = self.venvs / key
        if (target / VENV_MARKER).is_file():
            return target
        self.venvs.mkdir(parents=True, exist_ok=True)
        with (self.venvs / f".{key}.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            if (target / VENV_MARKER).is_file():
                return target
            # A venv's paths are absolute: it is built where it stays, and the marker, written last,
            # says it is complete (a half-built one is removed and built again).
            shutil.rmtree(target, ignore_errors=True)
            try:
                pins = self._linkable(root, requirements, key)
                self._make_venv(target)
                if pins is not None:
                    self._link(target, pins)
                else:
                    self._pip(target, root, requirements, no_deps)
                (target / VENV_MARKER).write_text(
                    json.dumps(
                        {
                            "key": key,
                            "kind": "linked" if pins is not None else "pip",
                            "requirements": requirements,
                            "built": time.time(),
                        }
                    )
                )
            except BaseException:
                shutil.rmtree(target, ignore_errors=True)
                raise
        return target

    def venv_kind(self, venv: Path) -> str:
        return json.loads((venv / VENV_MARKER).read_text())["kind"]

    def _linkable(self, root: Path, requirements: list[str], key: str) -> dict[str, str] | None:
        """{name: version} when the fast path applies: the requirements are the checkout app's and the
        controller has each pin installed at that version; else None."""
        checkout = self.checkout_app
        try:
            dockerfile = parse_dockerfile((checkout / "Dockerfile").read_text())
            checkout_files = requirement_files(checkout, dockerfile)
        except (OSError, ImageError):
            return None
        if checkout_files != requirements or requirements_key(checkout, checkout_files) != key:
            return None
        import importlib.metadata

        pins: dict[str, str] = {}
        for name in requirements:
            for line in (root / name).read_text().splitlines():
                text = line.split("#", 1)[0].strip().rstrip("\\").strip()
                if not text or text.startswith("-"):
                    continue
                match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^]]*\])?\s*==\s*([^\s;]+)", text)
                if not match:
                    return None  # not an exact pin: only pip can say what it resolves to
                pins[match[1]] = match[2]
        for name, version in pins.items():
            try:
                if importlib.metadata.version(name) != version:
                    return None
            except importlib.metadata.PackageNotFoundError:
                return None
        return pins

    def _make_venv(self, path: Path) -> None:
        subprocess.run(
            [self.python, "-m", "venv", "--without-pip", "--clear", str(path)],
            check=True,
            capture_output=True,
            timeout=120,
        )

    @staticmethod
    def _site_packages(venv: Path) -> Path:
        return next(venv.glob("lib/python*/site-packages"))

    def _link(self, venv: Path, pins: dict[str, str]) -> None:
        import importlib.metadata

        site = self._site_packages(venv)
        for name in pins:
            distribution = importlib.metadata.distribution(name)
            tops = {str(f).split("/")[0] for f in distribution.files or [] if not str(f).startswith("..")}
            for top in sorted(tops - {"__pycache__"}):
                source = Path(distribution.locate_file(top))
                link = site / top
                if source.exists() and not link.exists():
                    link.symlink_to(source)

    def _pip(self, venv: Path, root: Path, requirements: list[str], no_deps: bool) -> None:
        command = [self.python, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-input"]
        command += ["--no-deps"] if no_deps else []
        for name in requirements:
            command += ["-r", name]
        try:
            result = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ImageError(f"installing the image's requirements took more than {PIP_TIMEOUT:.0f} s") from exc
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise ImageError(f"installing the image's requirements ({', '.join(requirements)}) failed:\n{tail}")

    # ---- garbage

    def in_use_by_tasks(self) -> set[str]:
        """Snapshots of tasks that run (their process is alive) or were started moments ago."""
        from localcloud.cli import pid_alive

        used = set()
        for marker in (self.state_dir / "tasks").glob("*/image"):
            try:
                layer = marker.read_text().strip()
                pid_text = (marker.parent / "pid").read_text().strip() if (marker.parent / "pid").exists() else ""
                young = time.time() - marker.stat().st_mtime < RECENT_TASK
            except OSError:
                continue
            stopped = (marker.parent / "stopped").exists()
            if (pid_text.isdigit() and pid_alive(int(pid_text)) and not stopped) or (young and not stopped):
                used.add(layer)
        return used

    def collect(self, referenced: set[str], *, tasks: bool = True) -> list[str]:
        """Remove every snapshot that is neither in ``referenced`` (the layers of the images in ECR)
        nor run by a task (``tasks=False``: no task runs, as at ``localcloud up``); call under
        :meth:`lock`. Returns the removed digests."""
        if not self.layers.is_dir():
            return []
        keep = set(referenced) | (self.in_use_by_tasks() if tasks else set())
        removed = []
        for path in sorted(self.layers.iterdir()):
            if path.name.startswith(".staging-"):
                if time.time() - path.stat().st_mtime > 3600:
                    shutil.rmtree(path, ignore_errors=True)
                continue
            if path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
        return removed
