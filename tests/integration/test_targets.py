"""Runs every integration target in ``targets/`` against a fresh local AWS API.

A target follows ansible-test's layout (``targets/<name>/tasks/main.yml``, ``aliases``) and is
written the way amazon.aws writes its own: check mode -> create -> re-run (not changed) ->
update -> delete -> delete again, each step asserted and read back through an independent call.
This driver runs it as a role in a one-play playbook whose ``module_defaults`` point every AWS
module (amazon.aws, community.aws and ours, through the ``ecs_production.platform.aws`` group)
at the local AWS API.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
TARGETS = sorted(p.name for p in (HERE / "targets").iterdir() if (p / "tasks" / "main.yml").is_file())

PLAYBOOK = """\
- name: Integration target {target}
  hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
    group/ecs_production.platform.aws:
      endpoint_url: "{{{{ aws_endpoint_url }}}}"
      access_key: testing
      secret_key: testing
      region: us-east-1
  roles:
    - role: {target}
"""


def run_target(target: str, aws_api, tmp_path: Path, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    playbook = tmp_path / f"{target}.yml"
    playbook.write_text(PLAYBOOK.format(target=target))
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_ROLES_PATH=str(HERE / "targets"),
        ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"),
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_NOCOLOR="1",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    env.update(extra_env or {})
    return subprocess.run(
        [
            "ansible-playbook",
            "-i",
            "localhost,",
            "-e",
            f"aws_endpoint_url={aws_api.endpoint_url}",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            str(playbook),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.mark.parametrize("target", TARGETS)
def test_target(target, aws_api, tmp_path):
    aws_api.reset()
    result = run_target(target, aws_api, tmp_path)
    assert result.returncode == 0, f"target {target} failed:\n{result.stdout[-20000:]}\n{result.stderr[-5000:]}"
