#!/usr/bin/python

# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Ansible modules import below DOCUMENTATION, EXAMPLES and RETURN.
# ruff: noqa: E402

DOCUMENTATION = r"""
---
module: environment_key
version_added: 0.1.0
short_description: A customer managed KMS key found by its alias, read once and written only where it differs
description:
  - Creates, revives, converges or schedules for deletion one symmetric customer managed KMS key, found by
    its alias.
  - Reads the key with C(DescribeKey) on the alias, its rotation with C(GetKeyRotationStatus) and its tags
    with C(ListResourceTags) - three calls - and compares them with what is asked; a run that changes
    nothing makes no other call.
  - A key pending deletion (a teardown within the waiting period) is revived - C(CancelKeyDeletion), then
    C(EnableKey) - so the same key, and whatever it encrypted, comes back. A disabled key is enabled.
  - A new key gets the description and tags in C(CreateKey), then the alias (C(CreateAlias)) and, if asked,
    rotation (C(EnableKeyRotation)).
  - A new key also gets the tag C(environment_key:alias) naming its alias, so that a run killed between
    C(CreateKey) and C(CreateAlias) leaves no orphan; when the alias names no key, the next run looks for
    a key carrying that tag without an alias (C(ListAliases), C(ListKeys), C(ListResourceTags) of each
    unaliased key) and gives it the alias instead of creating a second key. That tag is never purged and
    is not returned in RV(tags).
  - The key policy and grants are never read or written; a new key gets AWS's default key policy.
author:
  - ecs_production.platform contributors (@ecs-production)
options:
  alias:
    description:
      - The key's alias, such as V(alias/ecs-prod-prod); V(alias/) is added if it is missing.
      - Aliases under V(alias/aws/) belong to AWS managed keys and are refused.
    type: str
    required: true
  description:
    description: The key's description. Left as it is when not given; empty on a new key.
    type: str
  enable_key_rotation:
    description: Whether AWS rotates the key material every year. Left as it is when not given.
    type: bool
  tags:
    description: The key's tags. Left as they are when not given.
    type: dict
  purge_tags:
    description: Whether tags not in O(tags) are removed (never tags whose names begin with V(aws:)).
    type: bool
    default: true
  pending_window:
    description: With O(state=absent), the days (7 to 30) before AWS deletes the key.
    type: int
    default: 30
  state:
    description:
      - V(present) creates the key, revives it if it is pending deletion, enables it if it is disabled, and
        converges its description, rotation and tags.
      - V(absent) schedules the key for deletion after O(pending_window) days; a key already pending
        deletion, or none, is left alone.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Supports check mode (no write; on an account without the key nothing is returned about the key but
    RV(changes)) and diff mode (the key's state, description, rotation and tags before and after).
  - A key in a state other than V(Enabled), V(Disabled) or V(PendingDeletion) (such as V(PendingImport)),
    or an alias naming a key that is not a customer managed one, is refused without any write.
  - API calls are retried on throttling.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: The environment's key, with yearly rotation
  ecs_production.platform.environment_key:
    alias: alias/ecs-prod-prod
    description: "ecs-prod-prod: SSM SecureString parameters and RDS storage"
    enable_key_rotation: true
    tags: {Project: ecs-prod, Environment: prod, ManagedBy: ansible}
  register: key

- name: Schedule it for deletion in 30 days
  ecs_production.platform.environment_key:
    alias: alias/ecs-prod-prod
    pending_window: 30
    state: absent
"""

RETURN = r"""
key_arn:
  description: The key's ARN.
  returned: when the key exists (not in check mode on an account without it)
  type: str
  sample: arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab
key_id:
  description: The key's id.
  returned: when the key exists (not in check mode on an account without it)
  type: str
  sample: 1234abcd-12ab-34cd-56ef-1234567890ab
alias:
  description: The alias the key was found or created by.
  returned: always
  type: str
  sample: alias/ecs-prod-prod
key_state:
  description: The key's state after the run (what it would be, in check mode).
  returned: when the key exists
  type: str
  sample: Enabled
description:
  description: The key's description after the run.
  returned: when the key exists
  type: str
  sample: "ecs-prod-prod: SSM SecureString parameters and RDS storage"
enable_key_rotation:
  description: Whether the key material is rotated every year, after the run (null when AWS would not say).
  returned: when the key exists
  type: bool
  sample: true
tags:
  description: The key's tags after the run.
  returned: when the key exists
  type: dict
  sample: {Project: ecs-prod, Environment: prod, ManagedBy: ansible}
deletion_date:
  description: When AWS deletes the key.
  returned: when the key is pending deletion after the run (not in check mode)
  type: str
  sample: "2026-12-09T13:20:47+00:00"
changes:
  description: What was (or would be) written, one line each.
  returned: always
  type: list
  elements: str
  sample: ["cancel key deletion", "enable key", "tag Owner"]
"""

from typing import Any, Dict, List, Optional

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import is_ansible_aws_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list
from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags

from ansible_collections.ecs_production.platform.plugins.module_utils.common import Refused

KMS_RETRY = AWSRetry.jittered_backoff(retries=10)
PENDING_WINDOW = (7, 30)
# The states this module can bring to Enabled (present) or to PendingDeletion (absent).
HANDLED_STATES = ("Enabled", "Disabled", "PendingDeletion")
# The tag naming the alias a key was created for: how a key whose alias was never made is found again.
ALIAS_TAG = "environment_key:alias"


class KMSErrorHandler(AWSErrorHandler):
    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code("NotFoundException")


# ---- Input (no AWS call) ----


def canonical_alias(alias: str) -> str:
    return alias if alias.startswith("alias/") else f"alias/{alias}"


def check_params(params: Dict[str, Any]) -> List[str]:
    """Problems AnsibleModule's own checks do not catch; found before any AWS call."""
    problems = []
    alias = canonical_alias(params["alias"])
    if alias == "alias/" or alias.startswith("alias/aws/"):
        problems.append(f"alias must name a customer managed key (alias/..., not under alias/aws/), not {alias!r}")
    low, high = PENDING_WINDOW
    if params["state"] == "absent" and not low <= params["pending_window"] <= high:
        problems.append(f"pending_window must be {low} to {high} days, not {params['pending_window']}")
    return problems


# ---- AWS ----


@KMSErrorHandler.list_error_handler("describe the KMS key", default_value=None)
def describe_key(client, alias: str) -> Optional[Dict[str, Any]]:
    return client.describe_key(aws_retry=True, KeyId=alias)["KeyMetadata"]


def get_rotation(client, key_id: str) -> Optional[bool]:
    """Whether rotation is on; None where the key's state keeps AWS from saying."""
    try:
        return _get_rotation(client, key_id)
    except is_ansible_aws_error_code(["KMSInvalidStateException", "UnsupportedOperationException"]):
        return None


@KMSErrorHandler.common_error_handler("get the KMS key's rotation status")
def _get_rotation(client, key_id: str) -> bool:
    return bool(client.get_key_rotation_status(aws_retry=True, KeyId=key_id)["KeyRotationEnabled"])


@KMSErrorHandler.common_error_handler("list the KMS key's tags")
def list_tags(client, key_id: str) -> Dict[str, str]:
    tags: Dict[str, str] = {}
    params = {"KeyId": key_id}
    while True:
        page = client.list_resource_tags(aws_retry=True, **params)
        tags.update({tag["TagKey"]: tag["TagValue"] for tag in page.get("Tags", [])})
        if not page.get("Truncated") or not page.get("NextMarker"):
            return tags
        params["Marker"] = page["NextMarker"]


def _pages(call, field: str, **params) -> List[Dict[str, Any]]:
    found: List[Dict[str, Any]] = []
    while True:
        page = call(aws_retry=True, **params)
        found += page.get(field, [])
        if not page.get("Truncated") or not page.get("NextMarker"):
            return found
        params["Marker"] = page["NextMarker"]


@KMSErrorHandler.common_error_handler("look for a key created for the alias that never got it")
def find_unaliased_key(client, alias: str) -> Optional[Dict[str, Any]]:
    """A customer managed key tagged for ``alias`` that no alias names (a run stopped between CreateKey and
    CreateAlias), or None."""
    aliased = {a.get("TargetKeyId") for a in _pages(client.list_aliases, "Aliases")}
    for key in _pages(client.list_keys, "Keys"):
        if key["KeyId"] in aliased or list_tags(client, key["KeyId"]).get(ALIAS_TAG) != alias:
            continue
        metadata = client.describe_key(aws_retry=True, KeyId=key["KeyId"])["KeyMetadata"]
        if metadata.get("KeyManager", "CUSTOMER") == "CUSTOMER" and metadata["KeyState"] in HANDLED_STATES:
            return metadata
    return None


def kms_tags(tags: Dict[str, Any]) -> List[Dict[str, str]]:
    return ansible_dict_to_boto3_tag_list(tags, tag_name_key_name="TagKey", tag_value_key_name="TagValue")


@KMSErrorHandler.common_error_handler("create the KMS key")
def create_key(client, description: str, tags: Dict[str, Any]) -> Dict[str, Any]:
    return client.create_key(
        aws_retry=True,
        Description=description,
        KeyUsage="ENCRYPT_DECRYPT",
        KeySpec="SYMMETRIC_DEFAULT",
        Origin="AWS_KMS",
        Tags=kms_tags(tags),
    )["KeyMetadata"]


@KMSErrorHandler.common_error_handler("create the KMS key's alias")
def create_alias(client, alias: str, key_id: str) -> None:
    client.create_alias(aws_retry=True, AliasName=alias, TargetKeyId=key_id)


@KMSErrorHandler.common_error_handler("cancel the KMS key's deletion")
def cancel_key_deletion(client, key_id: str) -> None:
    client.cancel_key_deletion(aws_retry=True, KeyId=key_id)


@KMSErrorHandler.common_error_handler("enable the KMS key")
def enable_key(client, key_id: str) -> None:
    client.enable_key(aws_retry=True, KeyId=key_id)


@KMSErrorHandler.common_error_handler("update the KMS key's description")
def update_description(client, key_id: str, description: str) -> None:
    client.update_key_description(aws_retry=True, KeyId=key_id, Description=description)


@KMSErrorHandler.common_error_handler("change the KMS key's rotation")
def set_rotation(client, key_id: str, enabled: bool) -> None:
    if enabled:
        client.enable_key_rotation(aws_retry=True, KeyId=key_id)
    else:
        client.disable_key_rotation(aws_retry=True, KeyId=key_id)


@KMSErrorHandler.common_error_handler("remove the KMS key's tags")
def untag(client, key_id: str, keys: List[str]) -> None:
    client.untag_resource(aws_retry=True, KeyId=key_id, TagKeys=keys)


@KMSErrorHandler.common_error_handler("tag the KMS key")
def tag(client, key_id: str, tags: Dict[str, Any]) -> None:
    client.tag_resource(aws_retry=True, KeyId=key_id, Tags=kms_tags(tags))


@KMSErrorHandler.common_error_handler("schedule the KMS key's deletion")
def schedule_key_deletion(client, key_id: str, days: int) -> Dict[str, Any]:
    return client.schedule_key_deletion(aws_retry=True, KeyId=key_id, PendingWindowInDays=days)


# ---- Converging ----


def summary(key: Dict[str, Any]) -> Dict[str, Any]:
    """What diff mode shows of a key."""
    return {k: key[k] for k in ("key_state", "description", "enable_key_rotation", "tags") if k in key}


class Converger:
    def __init__(self, module, client):
        self.module = module
        self.client = client
        self.params = module.params
        self.alias = canonical_alias(self.params["alias"])
        self.changes: List[str] = []

    @property
    def writing(self) -> bool:
        return not self.module.check_mode

    def converge(self) -> Dict[str, Any]:
        metadata = describe_key(self.client, self.alias)
        if metadata is not None:
            self.check_key(metadata)
        if self.params["state"] == "absent":
            return self.absent(metadata)
        if metadata is None:
            return self.create()
        return self.update(metadata)

    def check_key(self, metadata: Dict[str, Any]) -> None:
        if metadata.get("KeyManager", "CUSTOMER") != "CUSTOMER":
            raise Refused(f"{self.alias} names a key managed by {metadata['KeyManager']}, not a customer managed key")
        if metadata["KeyState"] not in HANDLED_STATES:
            raise Refused(
                f"{self.alias} names key {metadata['KeyId']} in state {metadata['KeyState']}; this module handles "
                f"{', '.join(HANDLED_STATES)}. Nothing was changed."
            )

    def read(self, metadata: Dict[str, Any]) -> Dict[str, Any]:
        key_id = metadata["KeyId"]
        return {
            "key_arn": metadata["Arn"],
            "key_id": key_id,
            "key_state": metadata["KeyState"],
            "description": metadata.get("Description", ""),
            "enable_key_rotation": get_rotation(self.client, key_id),
            "tags": {k: v for k, v in list_tags(self.client, key_id).items() if k != ALIAS_TAG},
        }

    def result(self, before: Dict[str, Any], after: Dict[str, Any]) -> Dict[str, Any]:
        result = {
            "alias": self.alias,
            "changes": self.changes,
            "diff": {"before": summary(before), "after": summary(after)},
        }
        result.update(after)
        return result

    def create(self) -> Dict[str, Any]:
        unaliased = find_unaliased_key(self.client, self.alias)
        if unaliased is not None:
            self.changes.append(f"alias key {unaliased['KeyId']} (created for {self.alias}, never aliased)")
            if self.writing:
                create_alias(self.client, self.alias, unaliased["KeyId"])
            return self.update(unaliased)
        description = self.params["description"] or ""
        tags = dict(self.params["tags"] or {})
        rotation = bool(self.params["enable_key_rotation"])
        self.changes.append(f"create key {self.alias}")
        after: Dict[str, Any] = {
            "key_state": "Enabled",
            "description": description,
            "enable_key_rotation": rotation,
            "tags": {k: str(v) for k, v in tags.items()},
        }
        if rotation:
            self.changes.append("enable key rotation")
        if self.writing:
            metadata = create_key(self.client, description, {**tags, ALIAS_TAG: self.alias})
            after.update(key_arn=metadata["Arn"], key_id=metadata["KeyId"])
            create_alias(self.client, self.alias, metadata["KeyId"])
            if rotation:
                set_rotation(self.client, metadata["KeyId"], True)
        return self.result({}, after)

    def update(self, metadata: Dict[str, Any]) -> Dict[str, Any]:
        before = self.read(metadata)
        after = dict(before)
        key_id = before["key_id"]
        if before["key_state"] == "PendingDeletion":
            self.changes.append("cancel key deletion")
            if self.writing:
                cancel_key_deletion(self.client, key_id)
        if before["key_state"] != "Enabled":
            self.changes.append("enable key")
            if self.writing:
                enable_key(self.client, key_id)
            after["key_state"] = "Enabled"
        description = self.params["description"]
        if description is not None and description != before["description"]:
            self.changes.append("update description")
            if self.writing:
                update_description(self.client, key_id, description)
            after["description"] = description
        rotation = self.params["enable_key_rotation"]
        if rotation is not None and before["enable_key_rotation"] is None and self.writing:
            # AWS would not say while the key was pending deletion or disabled; it is enabled now.
            before["enable_key_rotation"] = after["enable_key_rotation"] = get_rotation(self.client, key_id)
        if rotation is not None and rotation != before["enable_key_rotation"]:
            self.changes.append(f"{'enable' if rotation else 'disable'} key rotation")
            if self.writing:
                set_rotation(self.client, key_id, rotation)
            after["enable_key_rotation"] = rotation
        if self.params["tags"] is not None:
            after["tags"] = self.update_tags(key_id, before["tags"])
        return self.result(before, after)

    def update_tags(self, key_id: str, current: Dict[str, str]) -> Dict[str, str]:
        to_set, to_remove = compare_aws_tags(current, self.params["tags"], self.params["purge_tags"])
        if to_remove:
            self.changes.append(f"untag {', '.join(sorted(to_remove))}")
            if self.writing:
                untag(self.client, key_id, sorted(to_remove))
        if to_set:
            self.changes.append(f"tag {', '.join(sorted(to_set))}")
            if self.writing:
                tag(self.client, key_id, to_set)
        tags = {k: v for k, v in current.items() if k not in to_remove}
        tags.update({k: str(v) for k, v in to_set.items()})
        return tags

    def absent(self, metadata: Optional[Dict[str, Any]]) -> Dict[str, Any]:
        if metadata is None:
            return self.result({}, {})
        key = {
            "key_arn": metadata["Arn"],
            "key_id": metadata["KeyId"],
            "key_state": metadata["KeyState"],
            "description": metadata.get("Description", ""),
        }
        before = dict(key)
        if metadata["KeyState"] == "PendingDeletion":
            if metadata.get("DeletionDate"):
                key["deletion_date"] = _iso(metadata["DeletionDate"])
            return self.result(before, key)
        days = self.params["pending_window"]
        self.changes.append(f"schedule key deletion in {days} days")
        key["key_state"] = "PendingDeletion"
        if self.writing:
            scheduled = schedule_key_deletion(self.client, metadata["KeyId"], days)
            if scheduled.get("DeletionDate"):
                key["deletion_date"] = _iso(scheduled["DeletionDate"])
        return self.result(before, key)


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=dict(
            alias=dict(type="str", required=True),
            description=dict(type="str"),
            enable_key_rotation=dict(type="bool"),
            tags=dict(type="dict"),
            purge_tags=dict(type="bool", default=True),
            pending_window=dict(type="int", default=30),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        supports_check_mode=True,
    )
    problems = check_params(module.params)
    if problems:
        module.fail_json(msg=f"{'; '.join(problems)}. No AWS call was made.")
    client = module.client("kms", retry_decorator=KMS_RETRY)
    converger = Converger(module, client)
    try:
        result = converger.converge()
    except Refused as e:
        module.fail_json(msg=e.message, alias=converger.alias, changes=converger.changes)
    except AnsibleAWSError as e:
        e.message = f"{converger.alias}: {e.message}"
        module.fail_json_aws_error(e)
    if not module._diff:
        result.pop("diff")
    module.exit_json(changed=bool(result["changes"]), **result)


if __name__ == "__main__":
    main()
