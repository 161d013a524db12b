"""The collection as a release builds it and as a user installs it.

``built`` is the tarball that ``ansible-galaxy collection build`` makes from the files git has (a clean
clone's, as CI sees them), through galaxy.yml's ``build_ignore``; ``installed`` is that tarball installed
into a temporary collections path with ``ansible-galaxy collection install``. ``Installed.run`` runs a
command the way a user of the install would: from a directory outside this repository, with an empty
``ansible.cfg`` and only the install (and the collections that the ``ansible`` package bundles) on the
collections path. These tests are not part of the tarball (galaxy.yml's build_ignore).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
FQCN = f"{GALAXY['namespace']}.{GALAXY['name']}"
BIN = Path(sys.executable).parent


def tracked_files() -> list[str]:
    """The repository's files as a clean clone has them (plus new files not yet committed)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted(name for name in listed.split("\0") if name and os.path.lexists(REPO / name))


def readme_block(first_line: str) -> str:
    """The fenced code block of README.md whose first line is ``first_line`` (the README's examples are tested)."""
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", (REPO / "README.md").read_text(), flags=re.M | re.S):
        if block.startswith(first_line):
            return block
    raise AssertionError(f"README.md has no code block starting with {first_line!r}")


def user_env(home: Path, collections_path: Path) -> dict[str, str]:
    """A user's environment: none of this repository's settings, the venv's tools on PATH."""
    config = home / "ansible.cfg"
    config.write_text("")
    env = {name: value for name, value in os.environ.items() if not name.startswith(("ANSIBLE_", "PYTHONPATH"))}
    env.update(
        ANSIBLE_CONFIG=str(config),
        ANSIBLE_HOME=str(home / ".ansible"),
        ANSIBLE_COLLECTIONS_PATH=str(collections_path),
        ANSIBLE_NOCOLOR="1",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


@dataclass
class Built:
    tarball: Path
    names: list[str]  # every file in the tarball (not directories)

    def read(self, name: str) -> str:
        with tarfile.open(self.tarball) as tar:
            member = tar.extractfile(name)
            assert member is not None, f"{name} is not a file in {self.tarball.name}"
            return member.read().decode()


@dataclass
class Installed:
    collections_path: Path  # holds ansible_collections/<namespace>/<name>
    path: Path  # the installed collection
    home: Path  # the user's working directory, outside the repository
    env: dict[str, str]

    def run(
        self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: int = 300
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            list(args),
            check=False,
            cwd=cwd or self.home,
            env=dict(self.env, **(env or {})),
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Built:
    source = tmp_path_factory.mktemp("source") / "platform"
    for name in tracked_files():
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (REPO / name).is_symlink():
            target.symlink_to(os.readlink(REPO / name))
        else:
            shutil.copy2(REPO / name, target)
    dist = tmp_path_factory.mktemp("dist")
    home = tmp_path_factory.mktemp("build-home")
    result = subprocess.run(
        ["ansible-galaxy", "collection", "build", "--output-path", str(dist)],
        check=False,
        cwd=source,
        env=user_env(home, home / "collections"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (tarball,) = dist.glob("*.tar.gz")
    assert tarball.name == f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"
    with tarfile.open(tarball) as tar:
        names = sorted(member.name for member in tar.getmembers() if not member.isdir())
    return Built(tarball, names)


@pytest.fixture(scope="session")
def installed(built, tmp_path_factory) -> Installed:
    home = tmp_path_factory.mktemp("user")
    collections_path = home / "collections"
    env = user_env(home, collections_path)
    # --offline: CI reaches no Galaxy server; the dependencies must be satisfied by what the
    # `ansible` package bundles, which is what galaxy.yml declares.
    result = subprocess.run(
        ["ansible-galaxy", "collection", "install", str(built.tarball), "-p", str(collections_path), "--offline"],
        check=False,
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    path = collections_path / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    assert (path / "MANIFEST.json").is_file(), result.stdout + result.stderr
    return Installed(collections_path, path, home, env)
