"""Runs every integration target in ``targets/`` against a fresh local AWS API.

A target follows ansible-test's layout (``targets/<name>/tasks/main.yml``, ``aliases``) and is
written the way amazon.aws writes its own: check mode -> create -> re-run (not changed) ->
update -> delete -> delete again, each step asserted and read back through an independent call.
This driver runs it as a role in a one-play playbook whose ``module_defaults`` point every AWS
module (amazon.aws, community.aws and ours, through the ``ecs_production.platform.aws`` group)
at the local AWS API.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from integration_playbooks import ansible_env, command, play

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
TARGETS = sorted(p.name for p in (HERE / "targets").iterdir() if (p / "tasks" / "main.yml").is_file())


def run_target(target: str, aws_api, tmp_path: Path, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    playbook = tmp_path / f"{target}.yml"
    playbook.write_text(play(f"Integration target {target}", f"  roles:\n    - role: {target}\n"))
    env = ansible_env(ANSIBLE_ROLES_PATH=str(HERE / "targets"), **(extra_env or {}))
    return subprocess.run(
        command(playbook, aws_api.endpoint_url),
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
