"""The Galaxy tarball holds the collection and what runs from an install, and nothing else; installed, the
collection works by name without this repository: its playbooks syntax-check, ansible-doc renders every
module, plugin and role entry point, the unit tests it ships pass, and ansible-builder finds its Python
dependencies."""

from __future__ import annotations

import ast
import re

import pytest
import yaml
from ansible_builder.ee_schema import validate_schema
from conftest import FQCN, GALAXY, readme_block, tracked_files

# What the collection is: these trees ship whole (every file git has under them), nothing else does.
SHIPPED_TREES = ("changelogs/", "docs/", "meta/", "playbooks/", "plugins/", "roles/", "tests/unit/")
SHIPPED_FILES = ("README.md", "COPYING", "requirements.yml")
GENERATED = ("MANIFEST.json", "FILES.json")
NOT_SHIPPED = ("changelogs/.plugin-cache.yaml",)

# Types of plugin directories that hold no documented plugin of their own.
UNDOCUMENTED_PLUGIN_DIRS = {"module_utils", "doc_fragments", "plugin_utils"}


def expected_names() -> list[str]:
    return sorted(
        name
        for name in tracked_files()
        if (name.startswith(SHIPPED_TREES) or name in SHIPPED_FILES) and name not in NOT_SHIPPED
    )


def test_tarball_holds_the_collection_and_nothing_else(built):
    shipped = [name for name in built.names if name not in GENERATED]
    assert shipped == expected_names()
    for name in ("tests/e2e/", "tests/dataplane/", "tests/integration/", "tests/packaging/", "inventories/"):
        assert not [n for n in built.names if n.startswith(name)], f"{name} is in the tarball"
    assert "tests/conftest.py" not in built.names
    assert not [n for n in built.names if "__pycache__" in n or n.endswith(".pyc")]


def imported_modules(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_shipped_python_imports_only_what_ships(built):
    """A shipped file that imports the local cloud, the repository's tests or anything of this collection
    that is not in the tarball cannot run from an install."""
    own = f"ansible_collections.{FQCN}."
    shipped_modules = {name[: -len(".py")].replace("/", ".") for name in built.names if name.endswith(".py")}
    shipped_packages = {name.rsplit("/", 1)[0].replace("/", ".") for name in built.names if "/" in name}
    for name in (n for n in built.names if n.endswith(".py")):
        for module in imported_modules(built.read(name)):
            top = module.split(".")[0]
            assert top not in {"localcloud", "tests", "bench", "items_api", "conftest"}, f"{name} imports {module}"
            if module.startswith(own):
                inner = module[len(own) :]
                assert (
                    inner in shipped_modules
                    or inner in shipped_packages
                    or inner.rsplit(".", 1)[0] in shipped_modules  # from <module> import <name>
                ), f"{name} imports {module}, which is not in the tarball"


def test_execution_environment_definition_and_what_it_references_ship(built):
    definition = yaml.safe_load(built.read("meta/execution-environment.yml"))
    assert definition["version"] == 3
    validate_schema(dict(definition))  # ansible-builder's own schema
    references = {kind: definition["dependencies"].get(kind) for kind in ("python", "system")}
    assert references["python"], "the EE definition names no Python requirements"
    for path in filter(None, references.values()):
        assert path in built.names, f"{path} (meta/execution-environment.yml) is not in the tarball"


def test_installed_where_asked_with_its_dependencies_from_the_ansible_package(installed):
    result = installed.run("ansible-galaxy", "collection", "list", FQCN, "--format", "yaml")
    assert result.returncode == 0, result.stderr
    listed = yaml.safe_load(result.stdout)
    assert listed == {str(installed.collections_path / "ansible_collections"): {FQCN: {"version": GALAXY["version"]}}}


@pytest.fixture(scope="module")
def inventory(installed):
    """The inventory README.md tells a user to write."""
    path = installed.home / "my-inventory"
    path.mkdir(exist_ok=True)
    (path / "hosts.yml").write_text(readme_block("# my-inventory/hosts.yml"))
    return path


def test_playbooks_syntax_check_by_name_without_the_repository(installed, inventory):
    names = sorted(p.stem for p in (installed.path / "playbooks").glob("*.yml"))
    assert {"provision", "teardown", "deploy", "swap", "rollback", "status"} <= set(names)
    result = installed.run(
        "ansible-playbook", *(f"{FQCN}.{name}" for name in names), "--syntax-check", "-i", str(inventory.name)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in names:
        assert f"playbook: {installed.path}/playbooks/{name}.yml" in result.stdout
    assert "[WARNING]" not in result.stderr and "[DEPRECATION" not in result.stderr, result.stderr


def render(installed, plugin_type: str, names: list[str]) -> str:
    """``ansible-doc -t plugin_type`` of every name at once; any warning (a name not found, a broken doc) fails."""
    assert names, f"no {plugin_type} to render"
    result = installed.run("ansible-doc", "-t", plugin_type, *(f"{FQCN}.{name}" for name in names))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stderr and "[ERROR]" not in result.stderr, result.stderr
    return result.stdout


def test_ansible_doc_renders_every_module(installed):
    modules = sorted(p.stem for p in (installed.path / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
    text = render(installed, "module", modules)
    for name in modules:
        assert f"> MODULE {FQCN}.{name} (" in text
    listed = installed.run("ansible-doc", "-t", "module", "-l", FQCN)
    assert sorted(re.findall(rf"^{re.escape(FQCN)}\.(\w+)", listed.stdout, flags=re.M)) == modules


def test_ansible_doc_renders_every_other_plugin(installed):
    rendered = 0
    for directory in sorted(p for p in (installed.path / "plugins").iterdir() if p.is_dir()):
        if directory.name in UNDOCUMENTED_PLUGIN_DIRS | {"modules"}:
            continue
        if directory.name in {"filter", "test"}:  # one file may hold several, each documented in <name>.yml
            names = sorted(p.stem for p in directory.glob("*.yml"))
        else:
            names = sorted(p.stem for p in directory.glob("*.py") if not p.stem.startswith("_"))
        text = render(installed, directory.name, names)
        for name in names:
            assert re.search(rf"^> {directory.name.upper()} {re.escape(FQCN)}\.{name} \(", text, flags=re.M), name
        rendered += len(names)
    assert rendered, "no filter or other plugin rendered"


def test_ansible_doc_renders_every_role_entry_point(installed):
    roles = sorted(p.parent.parent.name for p in (installed.path / "roles").glob("*/meta/argument_specs.yml"))
    assert roles == sorted(p.name for p in (installed.path / "roles").iterdir() if p.is_dir())
    text = render(installed, "role", roles)
    for role in roles:
        assert f"> ROLE: {FQCN}.{role} (" in text.replace("*", "")
        specs = yaml.safe_load((installed.path / "roles" / role / "meta" / "argument_specs.yml").read_text())
        section = text.replace("*", "").split(f"> ROLE: {FQCN}.{role} (", 1)[1].split("> ROLE: ", 1)[0]
        for entry_point in specs["argument_specs"]:
            assert f"ENTRY POINT: {entry_point} - " in section, f"{role}: entry point {entry_point}"


def test_shipped_unit_tests_pass_from_the_install(installed):
    """The unit tests need pytest and the collections of the ``ansible`` package, nothing of this repository."""
    env = {"PYTHONPATH": str(installed.collections_path)}
    where = installed.run(
        "python", "-c", f"import ansible_collections.{FQCN}.plugins.module_utils as m; print(m.__path__[0])", env=env
    )
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip() == str(installed.path / "plugins" / "module_utils")
    result = installed.run(
        "python",
        "-m",
        "pytest",
        "tests/unit",
        "-q",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(installed.path),
        cwd=installed.path,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed and int(passed.group(1)) > 0, result.stdout[-2000:]


def test_ansible_builder_finds_the_python_dependencies(installed):
    """ansible-builder's own introspection (what an EE build runs) over the install."""
    result = installed.run("ansible-builder", "introspect", str(installed.collections_path))
    assert result.returncode == 0, result.stdout + result.stderr
    found = yaml.safe_load(result.stdout)["python"]
    wanted = [
        line
        for line in (installed.path / "meta" / "ee-requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert found == [f"{line}  # from collection {FQCN}" for line in wanted]


def test_readme_execution_environment_definition_makes_a_build_context(installed):
    text = readme_block("# execution-environment.yml")
    definition = yaml.safe_load(text)
    runtime = yaml.safe_load((installed.path / "meta" / "runtime.yml").read_text())
    assert definition["dependencies"]["ansible_core"]["package_pip"] == f"ansible-core{runtime['requires_ansible']}"
    assert {"name": FQCN} in definition["dependencies"]["galaxy"]["collections"]
    (installed.home / "execution-environment.yml").write_text(text)
    result = installed.run(
        "ansible-builder",
        "create",
        "-f",
        "execution-environment.yml",
        "-c",
        "context",
        "--output-filename",
        "Containerfile",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (installed.home / "context" / "Containerfile").is_file()
