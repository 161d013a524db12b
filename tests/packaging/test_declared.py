"""What the collection declares is what CI tests (the versions of requirements-lock.txt), and what the code
imports is declared: the collection's Python needs in meta/ee-requirements.txt, everything the repository
imports in its requirements files."""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import importlib.util
import json
import sys
from pathlib import Path

import yaml
from conftest import GALAXY, REPO, readme_block, tracked_files
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

RUNTIME = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())


def bounds(spec: str) -> tuple[Version, Version]:
    """The ``>=`` and ``<`` versions of a range, which must have both and nothing else."""
    specifiers = {s.operator: Version(s.version) for s in SpecifierSet(spec)}
    assert set(specifiers) == {">=", "<"}, f"{spec!r}: declare a lower and an upper bound"
    return specifiers[">="], specifiers["<"]


def bundled_collection_version(name: str) -> Version:
    spec = importlib.util.find_spec(f"ansible_collections.{name}")
    assert spec and spec.submodule_search_locations, f"{name} is not installed"
    for location in spec.submodule_search_locations:
        manifest = Path(location) / "MANIFEST.json"
        if manifest.is_file():
            return Version(json.loads(manifest.read_text())["collection_info"]["version"])
    raise AssertionError(f"{name} has no MANIFEST.json")


def requirement_lines(path: Path) -> list[str]:
    """The requirement lines of a pip requirements file, following ``-r``."""
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-r "):
            lines += requirement_lines(path.parent / line[3:].strip())
        else:
            lines.append(line)
    return lines


def declared(*paths: Path) -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for p in paths for r in map(Requirement, requirement_lines(p))}


def test_collection_dependencies_are_the_tested_collections():
    """Each dependency's lower bound is the version the tested ``ansible`` package bundles, its upper bound
    the next major; requirements.yml says the same as galaxy.yml."""
    requirements_yml = yaml.safe_load((REPO / "requirements.yml").read_text())
    assert {c["name"]: c["version"] for c in requirements_yml["collections"]} == GALAXY["dependencies"]
    for name, spec in GALAXY["dependencies"].items():
        tested = bundled_collection_version(name)
        assert bounds(spec) == (tested, Version(f"{tested.major + 1}.0.0")), f"{name}: {spec!r}, tested {tested}"


def test_requires_ansible_is_the_tested_ansible_core():
    tested = Version(importlib.metadata.version("ansible-core"))
    next_minor = Version(f"{tested.major}.{tested.minor + 1}.0")
    assert bounds(RUNTIME["requires_ansible"]) == (tested, next_minor), RUNTIME["requires_ansible"]
    core = declared(REPO / "requirements.txt")["ansible-core"]
    assert core.specifier == SpecifierSet(RUNTIME["requires_ansible"]), "requirements.txt's ansible-core"


def test_execution_environment_requirements_are_those_of_requirements_txt():
    ee = requirement_lines(REPO / "meta" / "ee-requirements.txt")
    control_node = requirement_lines(REPO / "requirements.txt")
    assert ee, "meta/ee-requirements.txt is empty"
    assert [line for line in ee if line not in control_node] == []
    readme = readme_block("python3 -m pip install")
    ansible = next(line for line in control_node if line.startswith("ansible>="))
    assert [line for line in [ansible, *ee] if f"'{line}'" not in readme] == [], "README.md's pip line"


class Imports(ast.NodeVisitor):
    """The top-level names a file imports, each with whether a ``try`` whose ``except`` catches ImportError guards
    it (``except ImportError``, ``except Exception`` or a bare ``except``)."""

    def __init__(self):
        self.found: list[tuple[str, bool]] = []
        self._guarded = 0

    def visit_Try(self, node):
        guards = any(self._catches_import_error(handler.type) for handler in node.handlers)
        self._guarded += guards
        for child in node.body:
            self.visit(child)
        self._guarded -= guards
        for child in [*node.handlers, *node.orelse, *node.finalbody]:
            self.visit(child)

    @staticmethod
    def _catches_import_error(caught) -> bool:
        if caught is None:  # a bare except
            return True
        names = caught.elts if isinstance(caught, ast.Tuple) else [caught]
        wide = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
        return any(isinstance(n, ast.Name) and n.id in wide for n in names)

    def visit_Import(self, node):
        self.found += [(alias.name.split(".")[0], self._guarded > 0) for alias in node.names]

    def visit_ImportFrom(self, node):
        if node.level == 0 and node.module:
            self.found.append((node.module.split(".")[0], self._guarded > 0))


@functools.cache
def distributions_of() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def third_party_imports(name: str) -> list[tuple[str, bool]]:
    """(distribution, guarded) for every import of a repository file that is neither the standard library nor
    the repository's own code."""
    path = REPO / name
    visitor = Imports()
    visitor.visit(ast.parse(path.read_text(), filename=name))
    own = {p.stem for p in REPO.iterdir()} | {p.stem for p in path.parent.iterdir()}
    own |= {p.stem for p in (REPO / "app").iterdir()} | {"conftest"}
    distributions = distributions_of()
    found = []
    for top, guarded in visitor.found:
        if top in sys.stdlib_module_names or top in own or top == "__future__":
            continue
        assert top in distributions, f"{name} imports {top}, which no installed distribution provides"
        found += [(canonicalize_name(d), guarded) for d in distributions[top]]
    return found


def python_files(prefix: str = "") -> list[str]:
    return [name for name in tracked_files() if name.endswith(".py") and name.startswith(prefix)]


def test_every_direct_import_is_declared():
    """requirements.txt and requirements-dev.txt declare what the collection, the local cloud, the tests and
    the benchmarks import; app/requirements*.txt what the app and its tests import."""
    repository = declared(REPO / "requirements-dev.txt")
    app = declared(REPO / "app" / "requirements.txt", REPO / "app" / "requirements-test.txt")
    missing = set()
    for name in python_files():
        wanted = app if name.startswith("app/") else repository
        missing |= {(name, d) for d, _ in third_party_imports(name) if d not in wanted}
    assert sorted(missing) == []


def test_the_collection_needs_only_the_execution_environment_requirements():
    """Every package that the collection's modules import, and that its other plugins need (an import they
    do not guard with a try that catches ImportError), is in meta/ee-requirements.txt. ansible-core and the collections
    are the execution environment's own."""
    ee = declared(REPO / "meta" / "ee-requirements.txt")
    missing = set()
    for name in python_files("plugins/"):
        always = name.startswith(("plugins/modules/", "plugins/module_utils/"))
        for distribution, guarded in third_party_imports(name):
            if (always or not guarded) and distribution not in ee and distribution not in {"ansible", "ansible-core"}:
                missing.add((name, distribution))
    assert sorted(missing) == []
