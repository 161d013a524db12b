"""tools/role_docs.py: how it reads argument specs, renders the tables, and finds drift, on a small project made
in tmp_path (one role with a main and a second entry point, the wiring, an inventory, docs/variables.md)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tools import role_docs

SPECS = """\
argument_specs:
  main:
    short_description: A demo role.
    options: &options
      demo_state:
        description: Whether it should exist.
        type: str
        choices: [present, absent]
        default: present
      demo_name_prefix:
        description: Prefix of every name.
        type: str
        required: true
      demo_port:
        description:
          - The port, e.g. C(8000). Another sentence.
          - A second paragraph.
        type: int
        default: 8000
      demo_cpu:
        description: CPU units as I(demo_port) does not.
        type: str
        default: "256"
      demo_path:
        description: Where it lives
        type: str
        default: <demo_name_prefix>/path
      demo_version:
        description: The tag (C(-e version=)).
        type: str
        default: ""
  scale:
    short_description: Scale it.
    options:
      <<: *options
      demo_count:
        description: The count.
        type: int
        required: true
"""

DEFAULTS = """\
demo_state: present
demo_name_prefix: ""
demo_port: 8000
demo_cpu: "256"
demo_path: "{{ demo_name_prefix }}/path"
demo_version: ""
"""

README = """\
# demo

## Entry points

| entry point | does |
|---|---|
| `main` | builds it |
| `scale` | scales it |

## Variables

<!-- role_docs: variables -->
(stale)
<!-- role_docs: end -->

Prose after the table stays.
"""

WIRING = """\
platform_name_prefix: "{{ platform_project }}-{{ platform_environment }}"
demo_name_prefix: "{{ platform_name_prefix }}"
demo_version: "{{ version | default('') | string }}"
"""

VARIABLES_DOC = """\
# Variables

| input | meaning |
|---|---|
| `version` | the tag |

### `demo`

<!-- role_docs: variables demo -->
<!-- role_docs: end -->
"""


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def project_root(tmp_path: Path) -> Path:
    write(
        tmp_path,
        {
            "roles/demo/meta/argument_specs.yml": SPECS,
            "roles/demo/defaults/main.yml": DEFAULTS,
            "roles/demo/README.md": README,
            "playbooks/vars/platform.yml": WIRING,
            "inventories/prod/group_vars/all/sizes.yml": 'demo_cpu: "512"\n',
            "inventories/local/group_vars/all/platform.yml": "platform_project: demo\nplatform_environment: local\n",
            "docs/variables.md": VARIABLES_DOC,
        },
    )
    return tmp_path


def demo(root: Path) -> role_docs.Role:
    return role_docs.load_project(root).roles["demo"]


# ---- text ----


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("Whether it should exist.", "Whether it should exist."),
        ("Where it lives", "Where it lives."),
        (["The port, e.g. C(8000). Another sentence.", "More."], "The port, e.g. `8000`."),
        (
            "Set I(a) to B(b) via M(ns.c.mod); see U(https://x.example).",
            "Set `a` to **b** via `ns.c.mod`; see https://x.example.",
        ),
        (
            "Target group per colour, C({blue: ..., green: ...}) (alb).",
            "Target group per colour, `{blue: ..., green: ...}` (alb).",
        ),
        ("Spread\n  over lines.  Then more.", "Spread over lines."),
        (None, ""),
    ],
)
def test_first_sentence(description, expected):
    assert role_docs.first_sentence(description) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", '`""`'),
        ("200", '`"200"`'),
        ("true", '`"true"`'),
        ("/health", "`/health`"),
        ("ELBSecurityPolicy-TLS13-1-2-2021-06", "`ELBSecurityPolicy-TLS13-1-2-2021-06`"),
        ("a: b", '`"a: b"`'),
        (8000, "`8000`"),
        (False, "`false`"),
        (["10.0.1.0/24", "10.0.2.0/24"], "`[10.0.1.0/24, 10.0.2.0/24]`"),
        ({"blue": 2, "green": 0}, "`{blue: 2, green: 0}`"),
        ({"command": ["CMD", "-m", "x"]}, "`{command: [CMD, -m, x]}`"),
        ("a | b", "`a \\| b`"),
    ],
)
def test_format_value_reads_like_yaml_flow_style(value, expected):
    assert role_docs.format_value(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<rds_parameter_path>/db/password", True),
        ("<USER>@<host>", True),
        (["arn:<iam_partition>:iam::aws:policy/x"], True),
        ("alias/prod", False),
        (["a", "b"], False),
        (3, False),
    ],
)
def test_is_placeholder(value, expected):
    assert role_docs.is_placeholder(value) is expected


# ---- the wiring ----


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ("version | default('') | string", {"version"}),
        ("network__output.vpc_id | default('')", {"network__output"}),
        ("alb_dns_record_name | default('', true) or alb__output.dns_name", {"alb_dns_record_name", "alb__output"}),
        ("lookup('env', 'USER') | default('ansible', true)", set()),
        ("x | combine({'Project': project})", {"x", "project"}),
        ("(tags if tags is mapping else {}) | combine(more)", {"tags", "more"}),
        ("a if b is not string else c", {"a", "b", "c"}),
    ],
)
def test_names_in_reads_variables_not_filters_attributes_or_strings(expression, names):
    assert role_docs.names_in(expression) == names


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{{ version | default('') | string }}", "`-e version=`"),
        ("{{ network__output.vpc_id | default('') }}", "`network__output.vpc_id`"),
        ("/{{ platform_project }}/{{ platform_environment }}/", "`/<platform_project>/<platform_environment>/`"),
        ("{{ certificate_domain | default('') | length > 0 }}", "`certificate_domain \\| length > 0`"),
        ("plain", "`plain`"),
    ],
)
def test_describe_wiring(value, expected):
    assert role_docs.describe_wiring(value, {"version"}) == expected


def test_the_inputs_are_what_the_wiring_reads_and_nothing_defines(project_root):
    assert role_docs.load_project(project_root).inputs == {"version"}


# ---- the model and the tables ----


def test_options_are_mains_then_those_of_other_entry_points(project_root):
    options = demo(project_root).options()
    assert [o.name for o in options] == [
        "demo_state",
        "demo_name_prefix",
        "demo_port",
        "demo_cpu",
        "demo_path",
        "demo_version",
        "demo_count",
    ]
    assert options[-1].entry_points == ("scale",)
    assert all(not o.entry_points for o in options[:-1])


def test_readme_table(project_root):
    project = role_docs.load_project(project_root)
    table = role_docs.readme_block(project.roles["demo"], project).splitlines()
    assert table[:2] == ["| variable | default | meaning | set by |", "|---|---|---|---|"]
    assert table[2:] == [
        "| `demo_state` | `present` | Whether it should exist. One of `present`, `absent`. |  |",
        "| `demo_name_prefix` | required | Prefix of every name. "
        "| `playbooks/vars/platform.yml`: `platform_name_prefix` |",
        "| `demo_port` | `8000` | The port, e.g. `8000`. |  |",
        '| `demo_cpu` | `"256"` | CPU units as `demo_port` does not. | `inventories/prod`: `"512"` |',
        "| `demo_path` | `<demo_name_prefix>/path` | Where it lives. |  |",
        '| `demo_version` | `""` | The tag (`-e version=`). | `playbooks/vars/platform.yml`: `-e version=` |',
        "| `demo_count` | required | The count. Only for the `scale` entry point. |  |",
    ]


def test_variables_doc_table_uses_short_names_after_the_entry_points(project_root):
    project = role_docs.load_project(project_root)
    block = role_docs.doc_block(project.roles["demo"], project)
    assert block.startswith("Entry points: `main`, `scale`.\n\n| variable | default | meaning | set by |\n")
    assert '| `demo_cpu` | `"256"` | CPU units as `demo_port` does not. | prod: `"512"` |' in block
    assert "| playbook: `-e version=` |" in block


def test_only_for_names_every_entry_point():
    option = role_docs.Option("x_color", {"description": "The colour."}, ("task_definition", "deploy", "scale"))
    assert role_docs.meaning_cell(option) == (
        "The colour. Only for the `task_definition`, `deploy` and `scale` entry points."
    )


# ---- write and check ----


def test_write_fills_the_markers_and_keeps_the_prose_then_check_passes(project_root, capsys):
    assert role_docs.main(["--check"], root=project_root) == 1
    out = capsys.readouterr().out
    assert "--- roles/demo/README.md (as it is)" in out and "-(stale)" in out
    assert "--- docs/variables.md (as it is)" in out

    assert role_docs.main(["--write"], root=project_root) == 0
    readme = (project_root / "roles/demo/README.md").read_text()
    assert "(stale)" not in readme
    assert readme.startswith("# demo\n\n## Entry points\n")
    assert readme.endswith("<!-- role_docs: end -->\n\nProse after the table stays.\n")
    assert "| `demo_port` | `8000` |" in readme
    assert (
        "<!-- role_docs: variables demo -->\nEntry points: `main`, `scale`."
        in (project_root / "docs/variables.md").read_text()
    )
    assert role_docs.main(["--check"], root=project_root) == 0


def test_check_fails_when_a_spec_changes_after_the_write(project_root, capsys):
    role_docs.main(["--write"], root=project_root)
    specs = project_root / "roles/demo/meta/argument_specs.yml"
    specs.write_text(specs.read_text().replace("Prefix of every name.", "Prefix of all names."))
    assert role_docs.main(["--check"], root=project_root) == 1
    assert "+| `demo_name_prefix` | required | Prefix of all names." in capsys.readouterr().out


def test_a_file_without_markers_is_a_problem(project_root, capsys):
    (project_root / "roles/demo/README.md").write_text("# demo\n\n| variable | default |\n")
    assert role_docs.main(["--write"], root=project_root) == 1
    assert "roles/demo/README.md: no <!-- role_docs: variables -->" in capsys.readouterr().err


# ---- drift ----


def test_no_drift_in_the_fixture(project_root):
    assert role_docs.check_problems(role_docs.load_project(project_root)) == []


def test_drift_between_defaults_and_argument_specs(project_root):
    write(
        project_root,
        {
            "roles/demo/defaults/main.yml": DEFAULTS.replace("demo_port: 8000", "demo_port: 8080")
            .replace('demo_cpu: "256"', "demo_cpu: 256")
            .replace('demo_version: ""\n', "")
            + "demo_forgotten: 1\n"
        },
    )
    assert role_docs.drift(demo(project_root)) == [
        "defaults/main.yml sets demo_forgotten, which no entry point of argument_specs declares",
        "demo_port defaults to 8000 in argument_specs, to 8080 in defaults/main.yml",
        'demo_cpu defaults to "256" in argument_specs, to 256 in defaults/main.yml',
        "demo_version has a default in argument_specs but none in defaults/main.yml",
    ]


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [(1, 1, True), (True, 1, False), (0, False, False), ("15", 15, False), ({"a": [1]}, {"a": [1]}, True)],
)
def test_same_value_means_same_type_too(left, right, expected):
    assert role_docs.same(left, right) is expected


def test_a_templated_default_must_be_a_placeholder_in_the_spec(project_root):
    specs = project_root / "roles/demo/meta/argument_specs.yml"
    specs.write_text(specs.read_text().replace("default: <demo_name_prefix>/path", "default: demo/path"))
    [problem] = role_docs.drift(demo(project_root))
    assert problem.startswith("demo_path defaults to demo/path in argument_specs, to ")
    assert problem.endswith("(a templated default: write it with <placeholders> in argument_specs)")


def test_an_option_without_description(project_root):
    specs = project_root / "roles/demo/meta/argument_specs.yml"
    specs.write_text(specs.read_text().replace("        description: The count.\n", ""))
    assert role_docs.drift(demo(project_root)) == ["demo_count has no description in argument_specs"]


def test_readme_entry_points_must_match(project_root):
    readme = project_root / "roles/demo/README.md"
    readme.write_text(readme.read_text().replace("| `scale` | scales it |\n", "| `resize` | resizes it |\n"))
    assert role_docs.entry_point_problems(demo(project_root)) == [
        "README.md lists the entry points main, resize; argument_specs has main, scale"
    ]


def test_wiring_an_input_to_an_undeclared_variable(project_root):
    write(project_root, {"playbooks/vars/platform.yml": WIRING + "demo_colour: \"{{ color | default('') }}\"\n"})
    assert role_docs.wiring_problems(role_docs.load_project(project_root)) == [
        "demo_colour (from -e color) is not an option of the demo role's argument_specs",
        "-e color is not in the table of playbook inputs of docs/variables.md",
    ]


def test_wiring_a_role_output_to_an_undeclared_variable(project_root):
    write(project_root, {"playbooks/vars/platform.yml": WIRING + 'demo_vpc: "{{ network__output.vpc_id }}"\n'})
    assert role_docs.wiring_problems(role_docs.load_project(project_root)) == [
        "demo_vpc is not an option of the demo role's argument_specs"
    ]


def test_derived_platform_names_are_not_options(project_root):
    write(
        project_root,
        {
            "roles/platform/meta/argument_specs.yml": textwrap.dedent("""\
                argument_specs:
                  main:
                    options:
                      platform_project: {description: The project., type: str, required: true}
            """),
        },
    )
    # platform_name_prefix is derived from the inventory's values, not an option of the platform role.
    assert role_docs.wiring_problems(role_docs.load_project(project_root)) == []
