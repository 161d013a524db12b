"""The roles' variables from one source: each role's ``meta/argument_specs.yml``.

    python tools/role_docs.py --write   regenerate the variables tables (roles/*/README.md, docs/variables.md)
    python tools/role_docs.py --check   exit 1, printing what differs, when a table is stale or a check fails

Generated: in each role's README.md, what lies between ``<!-- role_docs: variables -->`` and
``<!-- role_docs: end -->``; in docs/variables.md, between ``<!-- role_docs: variables ROLE -->`` and
``<!-- role_docs: end -->``. A table has one row per option of the role's ``main`` entry point, then one per
option that only other entry points take: its default, the first sentence of its description, and where it is
set outside the role (playbooks/vars/platform.yml, the inventories' group_vars). The prose around the markers is
written by hand.

Checked:

- every variable of a role's ``defaults/main.yml`` is an option of one of its entry points, and every literal
  default of a ``main`` option equals the value in ``defaults/main.yml`` (a default written with
  ``<placeholders>``, such as ``<rds_parameter_path>/db/password``, documents a templated one: not compared);
- every option has a description;
- each variable of playbooks/vars/platform.yml that takes an ``-e`` input or a ``<role>__output`` is an option of
  the role it is named for (every variable named for a role other than ``platform``, whose prefix the derived
  names such as ``platform_name_prefix`` share), and each ``-e`` input is listed in docs/variables.md;
- the "Entry points" table of a role's README names the entry points of its argument_specs.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
WIRING = Path("playbooks/vars/platform.yml")
VARIABLES_DOC = Path("docs/variables.md")

BLOCK = re.compile(
    r"(?P<start><!-- role_docs: variables(?: (?P<role>[\w-]+))? -->\n)(?P<body>.*?)(?P<end><!-- role_docs: end -->)",
    re.DOTALL,
)
PLACEHOLDER = re.compile(r"<[\w ]+>")
MARKUP = re.compile(r"\b(RV|[ICMOVBU])\(([^)]*)\)")
SENTENCE_END = re.compile(r"(?<!e\.g)(?<!i\.e)\.\s+(?=[A-Z])")
JINJA = re.compile(r"{{\s*(.*?)\s*}}", re.DOTALL)
DEFAULT_FILTER = re.compile(r"\s*\|\s*default\((?:[^()]|\([^()]*\))*\)")
CAST_FILTER = re.compile(r"\s*\|\s*(?:string|bool|int)\b")
STRING_LITERAL = re.compile(r"'[^']*'|\"[^\"]*\"")
IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
JINJA_WORDS = {"and", "or", "not", "in", "is", "if", "else", "true", "false", "none", "True", "False", "None", "omit"}
MAGIC_VARIABLES = {"inventory_hostname", "ansible_playbook_python", "playbook_dir", "groups", "hostvars"}


# ---- the model ----


@dataclass(frozen=True)
class Option:
    """A variable as an entry point's argument spec declares it; ``entry_points`` is empty for ``main``'s."""

    name: str
    spec: dict[str, Any]
    entry_points: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        return bool(self.spec.get("required"))

    @property
    def has_default(self) -> bool:
        return "default" in self.spec

    @property
    def default(self) -> Any:
        return self.spec.get("default")


@dataclass
class Role:
    name: str
    specs: dict[str, Any]  # entry point -> its argument spec
    defaults: dict[str, Any]
    readme: str = ""

    @property
    def entry_points(self) -> list[str]:
        return list(self.specs)

    def options(self) -> list[Option]:
        """The main entry point's options, then those only other entry points take (the first one's spec)."""
        main = self.specs.get("main", {}).get("options") or {}
        others: dict[str, tuple[dict[str, Any], list[str]]] = {}
        for entry_point, spec in self.specs.items():
            for name, option in (spec.get("options") or {}).items():
                if entry_point != "main" and name not in main:
                    others.setdefault(name, (option or {}, []))[1].append(entry_point)
        return [Option(name, spec or {}) for name, spec in main.items()] + [
            Option(name, spec, tuple(entry_points)) for name, (spec, entry_points) in others.items()
        ]

    def option_names(self) -> set[str]:
        return {name for spec in self.specs.values() for name in (spec.get("options") or {})}


@dataclass
class Project:
    roles: dict[str, Role]
    wiring: dict[str, Any]  # playbooks/vars/platform.yml
    inventories: dict[str, dict[str, Any]]  # environment -> its group_vars, merged
    variables_doc: str = ""
    inputs: set[str] = field(default_factory=set)  # the -e inputs the wiring reads

    def settings(self, name: str) -> list[tuple[str, str]]:
        """Where a variable is set outside its role: ("playbook", to what) and (environment, value)."""
        found = []
        if name in self.wiring:
            found.append(("playbook", describe_wiring(self.wiring[name], self.inputs)))
        found += [(env, format_value(values[name])) for env, values in self.inventories.items() if name in values]
        return found


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def load_project(root: Path) -> Project:
    roles = {}
    for specs_path in sorted(root.glob("roles/*/meta/argument_specs.yml")):
        role_dir = specs_path.parent.parent
        readme = role_dir / "README.md"
        roles[role_dir.name] = Role(
            name=role_dir.name,
            specs=(load_yaml(specs_path) or {}).get("argument_specs") or {},
            defaults=load_yaml(role_dir / "defaults" / "main.yml") or {},
            readme=readme.read_text() if readme.is_file() else "",
        )
    inventories = {}
    for env_dir in sorted(p for p in (root / "inventories").glob("*") if p.is_dir()):
        values: dict[str, Any] = {}
        for path in sorted((env_dir / "group_vars").rglob("*.yml")):
            values.update(load_yaml(path) or {})
        inventories[env_dir.name] = values
    doc = root / VARIABLES_DOC
    project = Project(
        roles=roles,
        wiring=load_yaml(root / WIRING) or {},
        inventories=inventories,
        variables_doc=doc.read_text() if doc.is_file() else "",
    )
    project.inputs = extra_var_inputs(project)
    return project


# ---- text ----


def plain(text: str) -> str:
    """Ansible's doc markup as Markdown: I(), C(), M(), O(), V(), RV() as code, B() bold, U() as it is."""

    def replace(match: re.Match[str]) -> str:
        kind, content = match.groups()
        if kind == "B":
            return f"**{content}**"
        return content if kind == "U" else f"`{content}`"

    return MARKUP.sub(replace, text)


def first_sentence(description: str | list[str] | None) -> str:
    """The first sentence of a description (of its first paragraph, when it is a list of them)."""
    if not description:
        return ""
    paragraph = description[0] if isinstance(description, list) else description
    text = " ".join(plain(str(paragraph)).split())
    first = SENTENCE_END.split(text, maxsplit=1)[0]
    return first if first.endswith((".", "!", "?")) else first + "."


def reads_as_itself(text: str) -> bool:
    """Whether a string needs no quotes in YAML's flow style (``/health`` does not; ``"200"`` and ``""`` do)."""
    if not text or text.strip() != text:
        return False
    try:
        return yaml.safe_load(f"[{text}]") == [text]
    except yaml.YAMLError:
        return False


def scalar(value: Any) -> str:
    """A value in YAML's flow style, as argument_specs and defaults write them: ``[blue, green]``, ``"256"``."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{scalar(k)}: {scalar(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(scalar(item) for item in value) + "]"
    if isinstance(value, str) and reads_as_itself(value):
        return value
    return json.dumps(value)


def code(text: str) -> str:
    """Inline code for a Markdown table cell."""
    return "`" + " ".join(text.split()).replace("|", "\\|") + "`"


def format_value(value: Any) -> str:
    return code(scalar(value))


def is_placeholder(value: Any) -> bool:
    """A default written with ``<name>`` documents a templated default: there is no literal to compare."""
    if isinstance(value, str):
        return bool(PLACEHOLDER.search(value))
    if isinstance(value, list):
        return any(is_placeholder(item) for item in value)
    if isinstance(value, dict):
        return any(is_placeholder(item) for item in value.values())
    return False


# ---- playbooks/vars/platform.yml ----


def expressions(value: Any) -> list[str]:
    return JINJA.findall(value) if isinstance(value, str) else []


def simplify(expression: str) -> str:
    """An expression without the ``default()`` fallbacks and the type casts that only guard it."""
    return CAST_FILTER.sub("", DEFAULT_FILTER.sub("", expression)).strip()


def names_in(expression: str) -> set[str]:
    """The variables an expression reads: not attributes, filters, calls, keywords or what strings hold."""
    text = STRING_LITERAL.sub("''", simplify(expression))
    found = set()
    for match in IDENTIFIER.finditer(text):
        before, after = text[: match.start()].rstrip(), text[match.end() :].lstrip()
        is_test = re.search(r"\bis(\s+not)?$", before) is not None  # `x is mapping`: a test, not a variable
        if is_test or before.endswith((".", "|")) or after.startswith("("):
            continue
        if match.group() not in JINJA_WORDS:
            found.add(match.group())
    return found


def read_by(value: Any) -> set[str]:
    return set().union(*(names_in(expression) for expression in expressions(value)))


def extra_var_inputs(project: Project) -> set[str]:
    """The -e inputs: what the wiring reads that no role, inventory or the wiring itself defines."""
    defined = set(project.wiring) | MAGIC_VARIABLES
    for role in project.roles.values():
        defined |= role.option_names() | set(role.defaults)
    for values in project.inventories.values():
        defined |= set(values)
    read = set().union(*(read_by(value) for value in project.wiring.values()))
    return {name for name in read if name not in defined and not name.endswith("__output")}


def describe_wiring(value: Any, inputs: set[str]) -> str:
    """What the wiring sets a variable to, as short as it reads: ``-e version=``, ``network__output.vpc_id``,
    ``/<platform_project>/<platform_environment>/``."""
    found = expressions(value)
    if len(found) == 1 and value.strip() == "{{ " + found[0] + " }}":
        short = simplify(found[0])
        return code(f"-e {short}=") if short in inputs else code(short)
    if found:
        return code(JINJA.sub(lambda match: f"<{simplify(match.group(1))}>", value))
    return format_value(value)


def role_named_for(variable: str, roles: dict[str, Role]) -> Role | None:
    matches = [role for name, role in roles.items() if variable.startswith(name + "_")]
    return max(matches, key=lambda role: len(role.name), default=None)


def wiring_problems(project: Project) -> list[str]:
    problems = []
    for variable, value in project.wiring.items():
        role = role_named_for(variable, project.roles)
        if role is None or variable in role.option_names():
            continue
        read = read_by(value)
        inputs = sorted(read & project.inputs)
        if inputs or role.name != "platform" or any(name.endswith("__output") for name in read):
            source = f" (from -e {', '.join(inputs)})" if inputs else ""
            problems.append(f"{variable}{source} is not an option of the {role.name} role's argument_specs")
    for name in sorted(project.inputs):
        if f"| `{name}` |" not in project.variables_doc:
            problems.append(f"-e {name} is not in the table of playbook inputs of {VARIABLES_DOC}")
    return problems


# ---- checks ----


def same(left: Any, right: Any) -> bool:
    """Equal values of equal types: 1 is not true, and "15" is not 15."""
    return json.dumps(left, sort_keys=True) == json.dumps(right, sort_keys=True)


def drift(role: Role) -> list[str]:
    """Where defaults/main.yml and argument_specs disagree, and options without a description."""
    declared = role.option_names()
    problems = [
        f"defaults/main.yml sets {name}, which no entry point of argument_specs declares"
        for name in role.defaults
        if name not in declared
    ]
    for option in role.options():
        if not option.spec.get("description"):
            problems.append(f"{option.name} has no description in argument_specs")
        if option.entry_points or not option.has_default or is_placeholder(option.default):
            continue
        if option.name not in role.defaults:
            problems.append(f"{option.name} has a default in argument_specs but none in defaults/main.yml")
            continue
        value = role.defaults[option.name]
        if not same(option.default, value):
            templated = "{{" in str(value)
            hint = " (a templated default: write it with <placeholders> in argument_specs)" if templated else ""
            problems.append(
                f"{option.name} defaults to {scalar(option.default)} in argument_specs, "
                f"to {scalar(value)} in defaults/main.yml{hint}"
            )
    return problems


def readme_entry_points(readme: str) -> list[str] | None:
    """The entry points the README's "## Entry points" table lists; None without that section."""
    section = re.search(r"^## Entry points\n(.*?)(?=^## |\Z)", readme, re.DOTALL | re.MULTILINE)
    return re.findall(r"^\| `(\w+)` \|", section.group(1), re.MULTILINE) if section else None


def entry_point_problems(role: Role) -> list[str]:
    listed = readme_entry_points(role.readme)
    if listed is None or sorted(listed) == sorted(role.entry_points):
        return []
    return [f"README.md lists the entry points {', '.join(listed)}; argument_specs has {', '.join(role.entry_points)}"]


def check_problems(project: Project) -> list[str]:
    problems = []
    for role in project.roles.values():
        problems += [f"roles/{role.name}: {problem}" for problem in drift(role) + entry_point_problems(role)]
    problems += [f"{WIRING}: {problem}" for problem in wiring_problems(project)]
    return problems


# ---- tables ----


def default_cell(option: Option) -> str:
    if option.required:
        return "required"
    return format_value(option.default) if option.default is not None else "none"


def meaning_cell(option: Option) -> str:
    text = first_sentence(option.spec.get("description"))
    if option.spec.get("choices"):
        text += " One of " + ", ".join(format_value(choice) for choice in option.spec["choices"]) + "."
    if option.entry_points:
        names = [f"`{entry_point}`" for entry_point in option.entry_points]
        listed = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]
        text += f" Only for the {listed} entry point{'s' if len(names) > 1 else ''}."
    return text.replace("|", "\\|")


def render_table(role: Role, project: Project, labels: dict[str, str]) -> str:
    """The variables table; ``labels`` names the places a value is set in ("playbook", an environment)."""
    rows = ["| variable | default | meaning | set by |", "|---|---|---|---|"]
    for option in role.options():
        set_by = "<br>".join(f"{labels.get(where, where)}: {what}" for where, what in project.settings(option.name))
        rows.append(f"| `{option.name}` | {default_cell(option)} | {meaning_cell(option)} | {set_by} |")
    return "\n".join(rows) + "\n"


def readme_block(role: Role, project: Project) -> str:
    """A README's table names the files in full: it is read on its own."""
    labels = {env: code(f"inventories/{env}") for env in project.inventories}
    return render_table(role, project, labels | {"playbook": code(str(WIRING))})


def doc_block(role: Role, project: Project) -> str:
    """docs/variables.md's table for a role: the short names its introduction explains, after the entry points."""
    entry_points = ", ".join(f"`{entry_point}`" for entry_point in role.entry_points)
    return f"Entry points: {entry_points}.\n\n" + render_table(role, project, {})


def fill(text: str, block_for: Callable[[str | None], str | None], path: Path) -> tuple[str, list[str]]:
    """The text with each marker pair's content replaced by ``block_for(the marker's role or None)``."""
    problems = []

    def replace(match: re.Match[str]) -> str:
        body = block_for(match.group("role"))
        if body is None:
            problems.append(f"{path}: no role {match.group('role')} for the marker {match.group('start').strip()}")
            return match.group(0)
        return match.group("start") + body + match.group("end")

    if not BLOCK.search(text):
        problems.append(f"{path}: no <!-- role_docs: variables --> ... <!-- role_docs: end --> markers")
    return BLOCK.sub(replace, text), problems


# ---- what --write writes and --check compares ----


def generate(project: Project) -> tuple[dict[Path, str], list[str]]:
    """The text each generated file should have (by path relative to the root), and the problems met."""
    files: dict[Path, str] = {}
    problems = []
    for role in project.roles.values():
        path = Path("roles") / role.name / "README.md"

        def block_for(name: str | None, role: Role = role) -> str | None:
            return readme_block(role, project) if name in (None, role.name) else None

        files[path], found = fill(role.readme, block_for, path)
        problems += found

    def doc_block_for(name: str | None) -> str | None:
        return doc_block(project.roles[name], project) if name in project.roles else None

    files[VARIABLES_DOC], found = fill(project.variables_doc, doc_block_for, VARIABLES_DOC)
    documented = set(re.findall(r"<!-- role_docs: variables ([\w-]+) -->", project.variables_doc))
    problems += found + [
        f"{VARIABLES_DOC}: no table for the {name} role" for name in sorted(set(project.roles) - documented)
    ]
    return files, problems


def stale(files: dict[Path, str], root: Path) -> list[str]:
    """A unified diff for each file whose text is not what --write would make of it."""
    diffs = []
    for path, expected in files.items():
        current = (root / path).read_text() if (root / path).is_file() else ""
        if current != expected:
            lines = difflib.unified_diff(
                current.splitlines(keepends=True),
                expected.splitlines(keepends=True),
                f"{path} (as it is)",
                f"{path} (generated)",
            )
            diffs.append("".join(lines))
    return diffs


def main(argv: list[str] | None = None, root: Path = REPO) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate the generated parts")
    mode.add_argument("--check", action="store_true", help="exit 1 when a generated part is stale or a check fails")
    args = parser.parse_args(argv)

    project = load_project(root)
    files, problems = generate(project)
    problems += check_problems(project)
    diffs = []
    if args.write:
        for path, text in files.items():
            if (root / path).read_text() != text:
                (root / path).write_text(text)
                print(f"wrote {path}")
    else:
        diffs = stale(files, root)
        print("\n".join(diffs), end="")
        if diffs:
            print("The generated tables are stale: run python tools/role_docs.py --write", file=sys.stderr)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if diffs or problems else 0


if __name__ == "__main__":
    sys.exit(main())
