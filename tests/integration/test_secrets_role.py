"""The secrets role against a local AWS API that records its requests (moto's recorder): check mode on an empty
account hands on the placeholder ARN, provision creates the key, a re-run reads it in three calls and writes
nothing, teardown schedules it for deletion, and a provision within the waiting period revives the same key.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from integration_playbooks import ansible_env, command, play

from localcloud.awsapi import AwsApiProcess
from localcloud.recorder import ApiRecorder, ansible_calls, writes

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PREFIX = "secrets-role-int"
ALIAS = f"alias/{PREFIX}"
TAGS = {"Project": "secrets-role-int", "Environment": "test", "ManagedBy": "ansible"}
PLACEHOLDER_ARN = "arn:aws:kms:us-east-1:000000000000:key/00000000-0000-0000-0000-000000000000"
# What a re-run of the role asks of KMS: the key by its alias, its rotation, its tags.
NO_OP_CALLS = ["DescribeKey", "GetKeyRotationStatus", "ListResourceTags"]

PLAYBOOK = play(
    "The secrets role",
    """\
  tasks:
    - name: Secrets
      ansible.builtin.include_role:
        name: ecs_production.platform.secrets

    - name: Write what the role hands on
      ansible.builtin.copy:
        content: "{{ secrets__output | default({}) | to_json }}"
        dest: "{{ output_file }}"
        mode: "0600"
      check_mode: false
      changed_when: false
""",
)


@pytest.fixture(scope="module")
def recording_api(tmp_path_factory):
    """A local AWS API of this module's own, started with moto's recorder."""
    directory = tmp_path_factory.mktemp("secrets-role-api")
    api = AwsApiProcess(directory / "awsapi.log", extra_env={"MOTO_RECORDER_FILEPATH": str(directory / "recording")})
    yield api
    api.stop()


def run_role(api, tmp_path: Path, *extra: str, state: str = "present") -> dict:
    """Run the role: what it handed on (``output``) and the play recap's changed count (``changed``)."""
    playbook = tmp_path / "secrets.yml"
    playbook.write_text(PLAYBOOK)
    output = tmp_path / "output.json"
    output.unlink(missing_ok=True)
    variables = {
        "output_file": str(output),
        "secrets_state": state,
        "secrets_name_prefix": PREFIX,
        "secrets_tags": TAGS,
        "secrets_parameter_path": "/secrets-role-int/test",
        "secrets_kms_deletion_window_days": 7,
    }
    result = subprocess.run(
        command(playbook, api.endpoint_url, variables, *extra),
        cwd=REPO,
        env=ansible_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout[-20000:]}\n{result.stderr[-5000:]}"
    recap = result.stdout.rsplit("PLAY RECAP", 1)[-1]
    changed = int(recap.split("changed=", 1)[1].split()[0])
    return {"output": json.loads(output.read_text()), "changed": changed}


def key_of(api) -> dict:
    kms = api.client("kms")
    metadata = kms.describe_key(KeyId=ALIAS)["KeyMetadata"]
    tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=metadata["KeyId"])["Tags"]}
    rotation = kms.get_key_rotation_status(KeyId=metadata["KeyId"])["KeyRotationEnabled"]
    return {"arn": metadata["Arn"], "state": metadata["KeyState"], "tags": tags, "rotation": rotation}


@pytest.mark.slow
def test_provision_rerun_teardown_and_revival_of_the_key(recording_api, tmp_path):
    api = recording_api
    api.reset()
    recorder = ApiRecorder(api.endpoint_url)

    planned = run_role(api, tmp_path, "--check")
    assert planned["output"]["kms_key_arn"] == PLACEHOLDER_ARN
    assert ALIAS not in [alias["AliasName"] for alias in api.client("kms").list_aliases()["Aliases"]]

    created = run_role(api, tmp_path)
    key = key_of(api)
    assert created["changed"] >= 1
    assert created["output"]["kms_key_arn"] == key["arn"] and created["output"]["kms_alias"] == ALIAS
    assert (key["state"], key["rotation"], key["tags"]) == ("Enabled", True, {**TAGS, "environment_key:alias": ALIAS})

    recorder.start()
    rerun = run_role(api, tmp_path)
    calls = ansible_calls(recorder.stop())
    assert rerun["changed"] == 0
    assert rerun["output"]["kms_key_arn"] == key["arn"]
    assert [call["action"] for call in calls] == NO_OP_CALLS, calls
    assert writes(calls) == []

    run_role(api, tmp_path, state="absent")
    assert key_of(api)["state"] == "PendingDeletion"

    recorder.start()
    revived = run_role(api, tmp_path)
    calls = ansible_calls(recorder.stop())
    assert revived["output"]["kms_key_arn"] == key["arn"]
    assert key_of(api) == key
    assert [call["action"] for call in calls if call["action"] not in NO_OP_CALLS] == [
        "CancelKeyDeletion",
        "EnableKey",
    ]
