"""The next release's changelog, made by a dry ``antsibull-changelog release`` in a copy of the repository:
each new module, plugin, role and playbook listed once (antsibull-changelog finds new plugins and roles by
their ``version_added``; a fragment that announces one lists it twice), a release summary, and no fix of
code that was never released."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml
from conftest import GALAXY, REPO, tracked_files

CHANGELOG = yaml.safe_load((REPO / "changelogs" / "changelog.yaml").read_text())
VERSION = str(GALAXY["version"])
FRAGMENTS = sorted((REPO / "changelogs" / "fragments").glob("*.yml"))


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> dict:
    if VERSION in (CHANGELOG.get("releases") or {}):
        pytest.skip(f"{VERSION} is released; galaxy.yml names no next version yet")
    copy = tmp_path_factory.mktemp("release") / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    for name in tracked_files():
        if not name.startswith((".collections/", "app/", "localcloud/", "tests/", "bench/")):
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copy / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_COLLECTIONS_PATH"] = str(copy.parents[2])
    for command in (["lint"], ["release", "--version", VERSION]):
        result = subprocess.run(
            ["antsibull-changelog", *command],
            check=False,
            cwd=copy,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0 and "ERROR" not in result.stdout, result.stdout + result.stderr
    return yaml.safe_load((copy / "changelogs" / "changelog.yaml").read_text())["releases"][VERSION]


def test_release_has_a_summary(release):
    assert release["changes"].get("release_summary")


def test_each_new_thing_is_listed_once(release):
    modules = [m["name"] for m in release.get("modules", [])]
    plugins = [(kind, p["name"]) for kind, entries in release.get("plugins", {}).items() for p in entries]
    objects = [(kind, o["name"]) for kind, entries in release.get("objects", {}).items() for o in entries]
    for listed in (modules, plugins, objects):
        assert len(listed) == len(set(listed)), listed
    new_names = set(modules) | {name for _, name in plugins + objects}
    for section, entries in release["changes"].items():
        for entry in entries if isinstance(entries, list) else []:
            first_word = entry.split(" ", 1)[0]
            assert not (first_word in new_names and " new " in entry[:80]), f"{section} announces {first_word} again"
    first_release = not CHANGELOG.get("releases")
    if first_release:
        shipped = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py"))
        assert sorted(modules) == shipped, "every module is new in the first release (version_added)"
        roles = sorted(p.name for p in (REPO / "roles").iterdir() if p.is_dir())
        assert sorted(name for kind, name in objects if kind == "role") == roles
        playbooks = sorted(p.stem for p in (REPO / "playbooks").glob("*.yml"))
        assert sorted(name for kind, name in objects if kind == "playbook") == playbooks


def test_no_fix_of_unreleased_code():
    """Before the first release there is nothing to fix, deprecate, remove or break."""
    if CHANGELOG.get("releases"):
        pytest.skip("a release exists: fixes of it are changes")
    for fragment in FRAGMENTS:
        sections = set(yaml.safe_load(fragment.read_text()) or {})
        unreleased = sections & {"bugfixes", "breaking_changes", "deprecated_features", "removed_features"}
        assert not unreleased, f"{fragment.name}: {sorted(unreleased)} of code never released"


def test_fragments_do_not_announce_what_antsibull_changelog_finds():
    for fragment in FRAGMENTS:
        for section, entries in (yaml.safe_load(fragment.read_text()) or {}).items():
            assert not section.startswith(("add plugin.", "add object.role")), f"{fragment.name}: {section}"
            for entry in entries if isinstance(entries, list) else []:
                text = entry if isinstance(entry, str) else ""
                assert " - new module" not in text and " - new info module" not in text, f"{fragment.name}: {text}"
                assert " - new filter" not in text, f"{fragment.name}: {text}"
