"""What the integration tests that run ansible-playbook share: a one-play playbook whose
``module_defaults`` point every AWS module (amazon.aws, community.aws and ours, through the
``ecs_production.platform.aws`` group) at the local AWS API, and the command and environment that run
it from this checkout's ``ansible.cfg`` and collection."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent

HEADER = """\
- name: @NAME@
  hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
    group/ecs_production.platform.aws:
      endpoint_url: "{{ aws_endpoint_url }}"
      access_key: testing
      secret_key: testing
      region: us-east-1
"""


def play(name: str, body: str) -> str:
    """The play ``name`` with ``body`` (its ``tasks:`` or ``roles:`` section, indented by two spaces)."""
    if not body.startswith("  ") or "\n- " in body:
        raise ValueError("the body is the rest of the one play: its sections indented by two spaces")
    return HEADER.replace("@NAME@", name) + body


def ansible_env(**extra: str) -> dict[str, str]:
    """ansible-playbook's environment: this checkout's configuration and collection, no colour, quiet about
    the implicit localhost, and this interpreter's ``bin`` first on PATH."""
    return dict(
        os.environ,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"),
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_NOCOLOR="1",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        **extra,
    )


def command(playbook: Path, endpoint_url: str, variables: dict | None = None, *options: str) -> list[str]:
    """ansible-playbook on localhost against the local AWS API at ``endpoint_url``, with extra variables."""
    extra = dict(variables or {}, aws_endpoint_url=endpoint_url, ansible_python_interpreter=sys.executable)
    return ["ansible-playbook", "-i", "localhost,", "-e", json.dumps(extra), *options, str(playbook)]
