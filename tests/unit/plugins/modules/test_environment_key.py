"""Unit tests for ecs_production.platform.environment_key: input refused before any call, and main() over a fake
KMS that records every call - create, a no-op in three reads, revival from pending deletion, each setting
converged on its own, check mode without writes, diff, deletion (idempotent) and a failing call."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import botocore.exceptions
import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.ecs_production.platform.plugins.modules import environment_key as mod

ALIAS = "alias/ecs-prod-test"
DESCRIPTION = "ecs-prod-test: SSM SecureString parameters and RDS storage"
TAGS = {"Project": "ecs-prod", "Environment": "test", "ManagedBy": "ansible"}
PRESENT = {"alias": ALIAS, "description": DESCRIPTION, "enable_key_rotation": True, "tags": TAGS}
NO_OP_READS = ["describe_key", "get_key_rotation_status", "list_resource_tags"]
WRITES = (
    "create_key",
    "create_alias",
    "cancel_key_deletion",
    "enable_key",
    "update_key_description",
    "enable_key_rotation",
    "disable_key_rotation",
    "tag_resource",
    "untag_resource",
    "schedule_key_deletion",
)


def client_error(code: str, operation: str) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": f"{code} from the fake"}}, operation)


class FakeKMS:
    """KMS keys and aliases in memory, as the API answers for them; every call recorded as (name, params).
    ``fail`` maps an operation to the error code it raises."""

    def __init__(self):
        self.keys: dict[str, dict] = {}
        self.aliases: dict[str, str] = {}
        self.calls: list[tuple[str, dict]] = []
        self.fail: dict[str, str] = {}
        self.tag_page_size = 50

    # -- helpers of the tests --

    def add_key(self, alias=ALIAS, state="Enabled", description=DESCRIPTION, rotation=True, tags=None, **metadata):
        key_id = str(uuid.uuid4())
        self.keys[key_id] = {
            "metadata": {
                "KeyId": key_id,
                "Arn": f"arn:aws:kms:us-east-1:123456789012:key/{key_id}",
                "KeyState": state,
                "Enabled": state == "Enabled",
                "Description": description,
                "KeyManager": "CUSTOMER",
                **metadata,
            },
            "rotation": rotation,
            "tags": dict(TAGS if tags is None else tags),
        }
        if state == "PendingDeletion":
            self.keys[key_id]["metadata"]["DeletionDate"] = datetime(2026, 12, 9, tzinfo=UTC)
        if alias:
            self.aliases[alias] = key_id
        return key_id

    def names(self) -> list[str]:
        return [name for name, _params in self.calls]

    def writes(self) -> list[str]:
        return [name for name in self.names() if name in WRITES]

    def key(self, alias=ALIAS) -> dict:
        return self.keys[self.aliases[alias]]

    # -- the API --

    def _record(self, name: str, params: dict, operation: str) -> None:
        self.calls.append((name, params))
        if name in self.fail:
            raise client_error(self.fail[name], operation)

    def _find(self, key_id: str, operation: str) -> dict:
        key_id = self.aliases.get(key_id, key_id)
        if key_id not in self.keys:
            raise client_error("NotFoundException", operation)
        return self.keys[key_id]

    def describe_key(self, aws_retry, **params):  # noqa: ARG002 - the wrappers always ask for retries
        self._record("describe_key", params, "DescribeKey")
        return {"KeyMetadata": dict(self._find(params["KeyId"], "DescribeKey")["metadata"])}

    def get_key_rotation_status(self, aws_retry, **params):  # noqa: ARG002
        self._record("get_key_rotation_status", params, "GetKeyRotationStatus")
        return {"KeyRotationEnabled": self._find(params["KeyId"], "GetKeyRotationStatus")["rotation"]}

    def list_resource_tags(self, aws_retry, **params):  # noqa: ARG002
        self._record("list_resource_tags", params, "ListResourceTags")
        tags = sorted(self._find(params["KeyId"], "ListResourceTags")["tags"].items())
        start = int(params.get("Marker", 0))
        page = tags[start : start + self.tag_page_size]
        answer = {"Tags": [{"TagKey": k, "TagValue": v} for k, v in page], "Truncated": False}
        if start + self.tag_page_size < len(tags):
            answer.update(Truncated=True, NextMarker=str(start + self.tag_page_size))
        return answer

    def list_aliases(self, aws_retry, **params):  # noqa: ARG002
        self._record("list_aliases", params, "ListAliases")
        return {"Aliases": [{"AliasName": a, "TargetKeyId": k} for a, k in self.aliases.items()], "Truncated": False}

    def list_keys(self, aws_retry, **params):  # noqa: ARG002
        """One key per page, so that the module's paging is exercised."""
        self._record("list_keys", params, "ListKeys")
        ids = list(self.keys)
        start = int(params.get("Marker", 0))
        answer = {"Keys": [{"KeyId": key_id} for key_id in ids[start : start + 1]], "Truncated": False}
        if start + 1 < len(ids):
            answer.update(Truncated=True, NextMarker=str(start + 1))
        return answer

    def create_key(self, aws_retry, **params):  # noqa: ARG002
        self._record("create_key", params, "CreateKey")
        tags = {t["TagKey"]: t["TagValue"] for t in params.get("Tags", [])}
        key_id = self.add_key(alias=None, description=params.get("Description", ""), rotation=False, tags=tags)
        return {"KeyMetadata": dict(self.keys[key_id]["metadata"])}

    def create_alias(self, aws_retry, **params):  # noqa: ARG002
        self._record("create_alias", params, "CreateAlias")
        self.aliases[params["AliasName"]] = self._find(params["TargetKeyId"], "CreateAlias")["metadata"]["KeyId"]

    def cancel_key_deletion(self, aws_retry, **params):  # noqa: ARG002
        self._record("cancel_key_deletion", params, "CancelKeyDeletion")
        metadata = self._find(params["KeyId"], "CancelKeyDeletion")["metadata"]
        metadata.update(KeyState="Disabled", Enabled=False)
        metadata.pop("DeletionDate", None)

    def enable_key(self, aws_retry, **params):  # noqa: ARG002
        self._record("enable_key", params, "EnableKey")
        self._find(params["KeyId"], "EnableKey")["metadata"].update(KeyState="Enabled", Enabled=True)

    def update_key_description(self, aws_retry, **params):  # noqa: ARG002
        self._record("update_key_description", params, "UpdateKeyDescription")
        self._find(params["KeyId"], "UpdateKeyDescription")["metadata"]["Description"] = params["Description"]

    def enable_key_rotation(self, aws_retry, **params):  # noqa: ARG002
        self._record("enable_key_rotation", params, "EnableKeyRotation")
        self._find(params["KeyId"], "EnableKeyRotation")["rotation"] = True

    def disable_key_rotation(self, aws_retry, **params):  # noqa: ARG002
        self._record("disable_key_rotation", params, "DisableKeyRotation")
        self._find(params["KeyId"], "DisableKeyRotation")["rotation"] = False

    def tag_resource(self, aws_retry, **params):  # noqa: ARG002
        self._record("tag_resource", params, "TagResource")
        self._find(params["KeyId"], "TagResource")["tags"].update({t["TagKey"]: t["TagValue"] for t in params["Tags"]})

    def untag_resource(self, aws_retry, **params):  # noqa: ARG002
        self._record("untag_resource", params, "UntagResource")
        tags = self._find(params["KeyId"], "UntagResource")["tags"]
        for name in params["TagKeys"]:
            tags.pop(name, None)

    def schedule_key_deletion(self, aws_retry, **params):  # noqa: ARG002
        self._record("schedule_key_deletion", params, "ScheduleKeyDeletion")
        metadata = self._find(params["KeyId"], "ScheduleKeyDeletion")["metadata"]
        when = datetime(2026, 12, 2, tzinfo=UTC) + timedelta(days=params["PendingWindowInDays"])
        metadata.update(KeyState="PendingDeletion", Enabled=False, DeletionDate=when)
        return {"KeyId": metadata["KeyId"], "DeletionDate": when, "KeyState": "PendingDeletion"}


@pytest.fixture
def kms(monkeypatch):
    client = FakeKMS()
    made = []

    def fake_client(_self, service, retry_decorator=None):
        made.append((service, retry_decorator))
        return client

    monkeypatch.setattr(mod.AnsibleAWSModule, "client", fake_client)
    client.made = made
    return client


def run(capsys, **args) -> dict:
    with patch_module_args(dict({"region": "us-east-1"}, **args)), pytest.raises(SystemExit) as exit_info:
        mod.main()
    result = json.loads(capsys.readouterr().out)
    assert (exit_info.value.code != 0) == bool(result.get("failed")), result
    return result


# ---- input ----


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"alias": "alias/aws/ssm"}, "alias must name a customer managed key"),
        ({"alias": "alias/"}, "alias must name a customer managed key"),
        ({"alias": ALIAS, "state": "absent", "pending_window": 6}, "pending_window must be 7 to 30 days, not 6"),
        ({"alias": ALIAS, "state": "absent", "pending_window": 31}, "pending_window must be 7 to 30 days, not 31"),
    ],
)
def test_bad_input_is_refused_before_any_client(kms, capsys, params, problem):
    result = run(capsys, **params)
    assert result["failed"] and problem in result["msg"] and "No AWS call was made" in result["msg"]
    assert kms.made == [] and kms.calls == []


def test_an_alias_without_its_prefix_gets_it():
    assert mod.canonical_alias("ecs-prod-test") == ALIAS
    assert mod.canonical_alias(ALIAS) == ALIAS
    assert mod.check_params({"alias": "ecs-prod-test", "state": "present", "pending_window": 30}) == []


# ---- present ----


def test_create_writes_the_key_with_description_and_tags_then_the_alias_then_rotation(kms, capsys):
    result = run(capsys, **PRESENT)
    assert result["changed"]
    assert result["changes"] == [f"create key {ALIAS}", "enable key rotation"]
    assert kms.names() == [
        "describe_key",
        "list_aliases",
        "list_keys",
        "create_key",
        "create_alias",
        "enable_key_rotation",
    ]
    create = kms.calls[3][1]
    assert create["Description"] == DESCRIPTION and create["KeySpec"] == "SYMMETRIC_DEFAULT"
    # The tag naming the alias it was made for: how a key whose alias was never made is found again.
    assert {t["TagKey"]: t["TagValue"] for t in create["Tags"]} == {**TAGS, "environment_key:alias": ALIAS}
    key = kms.key()
    assert key["rotation"] and key["metadata"]["Description"] == DESCRIPTION
    assert key["tags"] == {**TAGS, "environment_key:alias": ALIAS}
    assert result["key_id"] == key["metadata"]["KeyId"] and result["key_arn"] == key["metadata"]["Arn"]
    assert (result["alias"], result["key_state"], result["enable_key_rotation"], result["tags"]) == (
        ALIAS,
        "Enabled",
        True,
        TAGS,
    )
    assert [service for service, _retry in kms.made] == ["kms"] and kms.made[0][1] is not None


def test_create_without_rotation_does_not_call_for_it(kms, capsys):
    result = run(capsys, **{**PRESENT, "enable_key_rotation": False})
    assert result["changes"] == [f"create key {ALIAS}"]
    assert kms.writes() == ["create_key", "create_alias"]


def test_a_no_op_makes_three_reads_and_nothing_else(kms, capsys):
    kms.add_key()
    result = run(capsys, **PRESENT)
    assert not result["changed"] and result["changes"] == []
    assert kms.names() == NO_OP_READS
    assert kms.calls[0][1] == {"KeyId": ALIAS}
    key_id = kms.aliases[ALIAS]
    assert [params for _name, params in kms.calls[1:]] == [{"KeyId": key_id}, {"KeyId": key_id}]
    assert result["key_id"] == key_id and result["key_state"] == "Enabled" and result["tags"] == TAGS


def test_a_key_created_for_the_alias_that_never_got_it_is_aliased_not_made_again(kms, capsys):
    """A run killed between CreateKey and CreateAlias left a key tagged for the alias and no alias."""
    kms.add_key(alias="alias/someone-else", tags={"Team": "other"})
    kms.add_key(alias=None, tags={"environment_key:alias": "alias/another-environment"})
    orphan = kms.add_key(alias=None, rotation=False, tags={**TAGS, "environment_key:alias": ALIAS})
    result = run(capsys, **PRESENT)
    assert result["changes"] == [f"alias key {orphan} (created for {ALIAS}, never aliased)", "enable key rotation"]
    assert "create_key" not in kms.names() and len(kms.keys) == 3
    assert kms.aliases[ALIAS] == orphan and kms.keys[orphan]["rotation"]
    # The aliased key's tags are not read; the tag is neither purged nor returned.
    tag_reads = [params["KeyId"] for name, params in kms.calls if name == "list_resource_tags"]
    assert kms.aliases["alias/someone-else"] not in tag_reads
    assert "untag_resource" not in kms.names() and result["tags"] == TAGS
    kms.calls.clear()
    assert not run(capsys, **PRESENT)["changed"] and kms.names() == NO_OP_READS


def test_in_check_mode_a_key_that_never_got_its_alias_is_reported_not_aliased(kms, capsys):
    orphan = kms.add_key(alias=None, tags={**TAGS, "environment_key:alias": ALIAS})
    result = run(capsys, _ansible_check_mode=True, **PRESENT)
    assert result["changed"] and result["changes"][0].startswith(f"alias key {orphan}")
    assert kms.writes() == [] and ALIAS not in kms.aliases


def test_create_then_rerun_changes_nothing(kms, capsys):
    run(capsys, **PRESENT)
    kms.calls.clear()
    result = run(capsys, **PRESENT)
    assert not result["changed"] and kms.names() == NO_OP_READS


def test_a_key_pending_deletion_is_revived_then_converged(kms, capsys):
    key_id = kms.add_key(state="PendingDeletion", rotation=False)
    result = run(capsys, **PRESENT)
    assert result["changed"]
    assert result["changes"] == ["cancel key deletion", "enable key", "enable key rotation"]
    assert kms.writes() == ["cancel_key_deletion", "enable_key", "enable_key_rotation"]
    assert kms.key()["metadata"]["KeyState"] == "Enabled" and kms.key()["rotation"]
    assert result["key_id"] == key_id and result["key_state"] == "Enabled"
    assert "deletion_date" not in result
    kms.calls.clear()
    assert not run(capsys, **PRESENT)["changed"] and kms.names() == NO_OP_READS


def test_a_disabled_key_is_enabled_without_cancelling_anything(kms, capsys):
    kms.add_key(state="Disabled")
    result = run(capsys, **PRESENT)
    assert result["changes"] == ["enable key"] and kms.writes() == ["enable_key"]


def test_rotation_unknown_while_pending_deletion_is_read_again_once_revived(kms, capsys):
    kms.add_key(state="PendingDeletion", rotation=True)
    kms.fail["get_key_rotation_status"] = "KMSInvalidStateException"
    original = kms.enable_key

    def enable_then_answer(**params):
        kms.fail.pop("get_key_rotation_status")
        return original(**params)

    kms.enable_key = enable_then_answer
    result = run(capsys, **PRESENT)
    assert result["changes"] == ["cancel key deletion", "enable key"]
    assert kms.names().count("get_key_rotation_status") == 2 and "enable_key_rotation" not in kms.names()
    assert result["enable_key_rotation"] is True


@pytest.mark.parametrize(
    ("args", "changes", "writes"),
    [
        ({"description": "new"}, ["update description"], ["update_key_description"]),
        ({"enable_key_rotation": False}, ["disable key rotation"], ["disable_key_rotation"]),
        ({"tags": dict(TAGS, Environment="prod")}, ["tag Environment"], ["tag_resource"]),
        ({"tags": dict(TAGS, Owner="ops")}, ["tag Owner"], ["tag_resource"]),
        ({"tags": {"Project": "ecs-prod"}}, ["untag Environment, ManagedBy"], ["untag_resource"]),
        ({"tags": {"Project": "ecs-prod"}, "purge_tags": False}, [], []),
        ({"description": None, "enable_key_rotation": None, "tags": None}, [], []),
    ],
)
def test_each_setting_is_converged_on_its_own(kms, capsys, args, changes, writes):
    kms.add_key()
    result = run(capsys, **dict(PRESENT, **args))
    assert result["changes"] == changes and kms.writes() == writes
    assert result["changed"] == bool(changes)
    key = kms.key()
    if args.get("description"):
        assert key["metadata"]["Description"] == args["description"] == result["description"]
    if args.get("enable_key_rotation") is False:
        assert key["rotation"] is False and result["enable_key_rotation"] is False
    if args.get("tags") is not None:
        expected = args["tags"] if args.get("purge_tags", True) else TAGS
        assert key["tags"] == expected == result["tags"]


def test_tags_written_are_only_the_ones_that_differ_and_aws_tags_stay(kms, capsys):
    kms.add_key(tags=dict(TAGS, Environment="old", **{"aws:cloudformation:stack-name": "s"}))
    result = run(capsys, **PRESENT)
    assert result["changes"] == ["tag Environment"]
    assert kms.calls[-1] == (
        "tag_resource",
        {"KeyId": kms.aliases[ALIAS], "Tags": [{"TagKey": "Environment", "TagValue": "test"}]},
    )
    assert kms.key()["tags"]["aws:cloudformation:stack-name"] == "s"


def test_tags_are_read_across_pages(kms, capsys):
    kms.tag_page_size = 2
    kms.add_key()
    result = run(capsys, **PRESENT)
    assert not result["changed"] and result["tags"] == TAGS
    assert kms.names() == ["describe_key", "get_key_rotation_status", "list_resource_tags", "list_resource_tags"]
    assert kms.calls[-1][1]["Marker"] == "2"


# ---- check mode and diff ----


def test_check_mode_on_an_empty_account_returns_no_key_and_writes_nothing(kms, capsys):
    result = run(capsys, **PRESENT, _ansible_check_mode=True)
    assert result["changed"] and result["changes"] == [f"create key {ALIAS}", "enable key rotation"]
    assert "key_arn" not in result and "key_id" not in result
    assert kms.names() == ["describe_key", "list_aliases", "list_keys"] and kms.keys == {}


def test_check_mode_on_a_key_pending_deletion_reports_the_revival_and_writes_nothing(kms, capsys):
    kms.add_key(state="PendingDeletion", description="old", rotation=False, tags={"Project": "ecs-prod"})
    result = run(capsys, **PRESENT, _ansible_check_mode=True)
    assert result["changed"]
    assert result["changes"] == [
        "cancel key deletion",
        "enable key",
        "update description",
        "enable key rotation",
        "tag Environment, ManagedBy",
    ]
    assert kms.writes() == [] and kms.key()["metadata"]["KeyState"] == "PendingDeletion"
    assert result["key_state"] == "Enabled" and result["key_arn"] == kms.key()["metadata"]["Arn"]


def test_diff_shows_the_key_before_and_after(kms, capsys):
    kms.add_key(rotation=False, tags=dict(TAGS, Stale="x"))
    result = run(capsys, **PRESENT, _ansible_diff=True)
    assert result["diff"]["before"] == {
        "key_state": "Enabled",
        "description": DESCRIPTION,
        "enable_key_rotation": False,
        "tags": dict(TAGS, Stale="x"),
    }
    assert result["diff"]["after"] == {
        "key_state": "Enabled",
        "description": DESCRIPTION,
        "enable_key_rotation": True,
        "tags": TAGS,
    }
    kms.calls.clear()
    result = run(capsys, **PRESENT, _ansible_diff=True)
    assert result["diff"]["before"] == result["diff"]["after"]


def test_diff_of_a_creation_starts_empty_and_no_diff_unless_asked(kms, capsys):
    result = run(capsys, **PRESENT, _ansible_diff=True, _ansible_check_mode=True)
    assert result["diff"]["before"] == {} and result["diff"]["after"]["tags"] == TAGS
    assert "diff" not in run(capsys, **PRESENT, _ansible_check_mode=True)


# ---- absent ----


def test_absent_schedules_deletion_once_then_changes_nothing(kms, capsys):
    key_id = kms.add_key()
    result = run(capsys, alias=ALIAS, state="absent", pending_window=7)
    assert result["changed"] and result["changes"] == ["schedule key deletion in 7 days"]
    assert kms.calls == [
        ("describe_key", {"KeyId": ALIAS}),
        ("schedule_key_deletion", {"KeyId": key_id, "PendingWindowInDays": 7}),
    ]
    assert result["key_state"] == "PendingDeletion" and result["deletion_date"].startswith("2026-12-09")

    kms.calls.clear()
    again = run(capsys, alias=ALIAS, state="absent", pending_window=7)
    assert not again["changed"] and kms.names() == ["describe_key"]
    assert again["key_state"] == "PendingDeletion" and again["deletion_date"].startswith("2026-12-09")


def test_absent_without_a_key_changes_nothing(kms, capsys):
    result = run(capsys, alias=ALIAS, state="absent")
    assert not result["changed"] and kms.names() == ["describe_key"] and "key_arn" not in result


def test_absent_in_check_mode_writes_nothing(kms, capsys):
    kms.add_key()
    result = run(capsys, alias=ALIAS, state="absent", _ansible_check_mode=True)
    assert result["changed"] and kms.writes() == [] and kms.key()["metadata"]["KeyState"] == "Enabled"


# ---- refusals and failures ----


def test_a_key_in_a_state_the_module_does_not_handle_is_refused_without_writes(kms, capsys):
    kms.add_key(state="PendingImport")
    result = run(capsys, **PRESENT)
    assert result["failed"] and "in state PendingImport" in result["msg"] and "Nothing was changed" in result["msg"]
    assert kms.writes() == []


def test_an_aws_managed_key_is_refused(kms, capsys):
    kms.add_key(KeyManager="AWS")
    result = run(capsys, alias=ALIAS, state="absent")
    assert result["failed"] and "managed by AWS" in result["msg"] and kms.writes() == []


@pytest.mark.parametrize(
    ("operation", "message"),
    [
        ("describe_key", "Failed to describe the KMS key"),
        ("list_resource_tags", "Failed to list the KMS key's tags"),
        ("get_key_rotation_status", "Failed to get the KMS key's rotation status"),
        ("tag_resource", "Failed to tag the KMS key"),
    ],
)
def test_a_client_error_fails_clearly_naming_the_alias_and_the_step(kms, capsys, operation, message):
    kms.add_key(tags={"Project": "ecs-prod"})
    kms.fail[operation] = "AccessDeniedException"
    result = run(capsys, **PRESENT)
    assert result["failed"] and result["msg"].startswith(f"{ALIAS}: {message}")
    assert "AccessDeniedException" in result["msg"] or result.get("error", {}).get("code") == "AccessDeniedException"


def test_a_failed_creation_stops_before_the_alias(kms, capsys):
    kms.fail["create_key"] = "LimitExceededException"
    result = run(capsys, **PRESENT)
    assert result["failed"] and f"{ALIAS}: Failed to create the KMS key" in result["msg"]
    assert kms.names() == ["describe_key", "list_aliases", "list_keys", "create_key"]
