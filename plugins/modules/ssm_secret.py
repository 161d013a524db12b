#!/usr/bin/python

# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Ansible modules import below DOCUMENTATION, EXAMPLES and RETURN.
# ruff: noqa: E402

DOCUMENTATION = r"""
---
module: ssm_secret
version_added: 0.1.0
short_description: Generate a random secret into an SSM SecureString parameter
description:
  - Creates an AWS Systems Manager (SSM) Parameter Store C(SecureString) parameter holding a
    cryptographically random password, only when the parameter does not exist yet.
  - An existing value is kept, so the task is idempotent; O(rotate=true) writes a new value.
  - The value is generated on the managed node with Python's C(secrets) module (the operating
    system's CSPRNG) and never leaves the module unless O(return_value=true).
  - By default the password contains none of the characters Amazon RDS rejects in a master
    password (V(/), V(@), V(") and space) nor the quoting characters V('), V(\\) and V(`), and
    at least one lowercase letter, uppercase letter, digit and punctuation character.
  - Changing O(kms_key_id) re-encrypts the same value under the new key; changing O(description)
    or upgrading O(tier) rewrites the same value. Each such write creates a new parameter version.
author:
  - ecs_production.platform contributors (@ecs-production)
options:
  name:
    description:
      - Name of the parameter, for example V(/myapp/prod/db/master_password).
    required: true
    type: str
  state:
    description:
      - V(present) creates the parameter if it does not exist and reconciles its key, description,
        tier and tags.
      - V(absent) deletes the parameter.
      - Either way an existing parameter that is not a C(SecureString) is left alone and the task fails.
    choices: ['present', 'absent']
    default: present
    type: str
  kms_key_id:
    description:
      - The KMS key that encrypts the value, as a key ID, key ARN, alias name or alias ARN.
      - The default is the AWS managed key for SSM.
      - When the parameter's current key is given in another form, both are resolved with
        C(kms:DescribeKey) to tell whether they are the same key.
    default: alias/aws/ssm
    aliases: ['key_id']
    type: str
  description:
    description:
      - Description of the parameter.
      - If not set, the description of an existing parameter is not changed.
    type: str
  tier:
    description:
      - The parameter tier.
      - If not set, a new parameter gets the account's default tier and an existing one keeps its tier.
      - An existing C(Standard) parameter is upgraded by O(tier=Advanced); AWS cannot downgrade an
        C(Advanced) parameter, so O(tier=Standard) on one fails.
      - V(Intelligent-Tiering) lets AWS choose on each write and is never reported as a change.
    choices: ['Standard', 'Advanced', 'Intelligent-Tiering']
    type: str
  length:
    description:
      - Number of characters of a generated value, between 8 and 4096.
      - An RDS master password may have at most 41 characters for MySQL and MariaDB, 128 for PostgreSQL.
    default: 32
    type: int
  character_classes:
    description:
      - The character classes a generated value is drawn from. Each class appears at least once.
      - V(punctuation) is ASCII punctuation less the default exclusions (see O(exclude_characters)).
      - When neither this nor O(alphabet) is set, all four classes are used.
      - Mutually exclusive with O(alphabet).
    type: list
    elements: str
    choices: ['lowercase', 'uppercase', 'digits', 'punctuation']
  alphabet:
    description:
      - The exact characters a generated value is drawn from, instead of O(character_classes).
      - Only printable ASCII characters (space included) are accepted; duplicates are ignored.
      - The default exclusions do not apply; O(exclude_characters) does. Each character class that
        the alphabet contains appears at least once.
      - Mutually exclusive with O(character_classes).
    type: str
  exclude_characters:
    description:
      - Characters never used in a generated value.
      - With O(character_classes), they are excluded on top of the default exclusions
        V(/), V(@), V("), space, V('), V(\\) and V(`).
      - For example, V(:?#%&=+) keeps the value safe to place in a URL without escaping.
    default: ""
    type: str
  rotate:
    description:
      - Write a new random value even though the parameter exists.
      - The task then reports a change on every run; use it under a condition.
    default: false
    type: bool
  return_value:
    description:
      - Return the decrypted value in RV(value).
      - The task must run with C(no_log=true); otherwise the module fails before any AWS call.
    default: false
    type: bool
notes:
  - The value is never shown in the diff, and unless O(return_value=true) it is masked in any
    output of the module, failures included.
  - Options that give a generated value less than C(48) bits of entropy are refused.
  - Parameter policies, allowed patterns and data types are not managed.
  - The module needs C(ssm:DescribeParameters), C(ssm:PutParameter), C(ssm:ListTagsForResource)
    and, as the task requires, C(ssm:GetParameter), C(ssm:AddTagsToResource),
    C(ssm:RemoveTagsFromResource), C(ssm:DeleteParameter), C(kms:DescribeKey) and the KMS
    permissions to encrypt and decrypt with the key.
seealso:
  - module: community.aws.ssm_parameter
  - plugin: amazon.aws.ssm_parameter
    plugin_type: lookup
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.tags
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Make sure the database master password exists (created once, then kept)
  ecs_production.platform.ssm_secret:
    name: /myapp/prod/db/master_password
    description: RDS master password for myapp prod
    kms_key_id: alias/myapp-prod
    tags:
      Application: myapp
      Environment: prod

- name: Create it and hand the value to the next task, hidden from all output
  ecs_production.platform.ssm_secret:
    name: /myapp/prod/db/master_password
    return_value: true
  no_log: true
  register: master_password

- name: Rotate it on request
  ecs_production.platform.ssm_secret:
    name: /myapp/prod/db/master_password
    rotate: true
  when: rotate_db_password | default(false) | bool

- name: A 64-character hexadecimal token
  ecs_production.platform.ssm_secret:
    name: /myapp/prod/api_token
    length: 64
    alphabet: 0123456789abcdef

- name: Letters and digits only, safe anywhere
  ecs_production.platform.ssm_secret:
    name: /myapp/prod/cache_password
    character_classes: [lowercase, uppercase, digits]

- name: Delete it
  ecs_production.platform.ssm_secret:
    name: /myapp/prod/db/master_password
    state: absent
"""

RETURN = r"""
name:
  description: Name of the parameter.
  returned: always
  type: str
  sample: /myapp/prod/db/master_password
arn:
  description: ARN of the parameter.
  returned: when the parameter exists, and in check mode when it existed before
  type: str
  sample: arn:aws:ssm:us-east-1:123456789012:parameter/myapp/prod/db/master_password
type:
  description: Type of the parameter, always C(SecureString).
  returned: when O(state=present)
  type: str
  sample: SecureString
version:
  description: Version of the parameter; each write adds one.
  returned: when O(state=present)
  type: int
  sample: 1
kms_key_id:
  description: The KMS key the value is encrypted with, as SSM reports it.
  returned: when O(state=present)
  type: str
  sample: alias/aws/ssm
tier:
  description: Tier of the parameter.
  returned: when O(state=present) and known (not in check mode for a new parameter without O(tier))
  type: str
  sample: Standard
description:
  description: Description of the parameter.
  returned: when O(state=present) and the parameter has one
  type: str
  sample: RDS master password for myapp prod
data_type:
  description: Data type of the parameter.
  returned: when O(state=present) and not in check mode for a new parameter
  type: str
  sample: text
last_modified_date:
  description: When the parameter was last written, in ISO 8601.
  returned: when O(state=present) and not in check mode for a new parameter
  type: str
  sample: "2025-01-31T12:00:00.123000+00:00"
tags:
  description: Tags of the parameter.
  returned: when O(state=present)
  type: dict
  sample: {"Application": "myapp"}
value_changed:
  description: Whether a new value was (or in check mode would be) generated, on creation or rotation.
  returned: when O(state=present)
  type: bool
  sample: true
value:
  description:
    - The decrypted value.
    - Not returned in check mode when a value would be generated or rotated, as none exists yet.
  returned: when O(return_value=true)
  type: str
  sample: "<the secret>"
"""

import math
import secrets
import string
import time
from typing import Any
from typing import Dict
from typing import List
from typing import Optional
from typing import Tuple

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list
from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags

from ansible_collections.ecs_production.platform.plugins.module_utils.ssm import SSM_RETRY
from ansible_collections.ecs_production.platform.plugins.module_utils.ssm import SSMErrorHandler
from ansible_collections.ecs_production.platform.plugins.module_utils.ssm import add_parameter_tags
from ansible_collections.ecs_production.platform.plugins.module_utils.ssm import create_parameter
from ansible_collections.ecs_production.platform.plugins.module_utils.ssm import delete_parameter
from ansible_collections.ecs_production.platform.plugins.module_utils.ssm import list_parameter_tags
from ansible_collections.ecs_production.platform.plugins.module_utils.ssm import overwrite_parameter
from ansible_collections.ecs_production.platform.plugins.module_utils.ssm import remove_parameter_tags

SECURE_STRING = "SecureString"
DEFAULT_KMS_KEY = "alias/aws/ssm"
# RDS rejects these in a master password; the quoting characters break shells, YAML and libpq conninfo.
RDS_REJECTED_CHARACTERS = '/@" '
QUOTING_CHARACTERS = "'\\`"
DEFAULT_EXCLUDED_CHARACTERS = RDS_REJECTED_CHARACTERS + QUOTING_CHARACTERS
CHARACTER_CLASSES = {
    "lowercase": string.ascii_lowercase,
    "uppercase": string.ascii_uppercase,
    "digits": string.digits,
    "punctuation": string.punctuation,
}
PRINTABLE_ASCII = "".join(chr(code) for code in range(0x20, 0x7F))
MIN_LENGTH = 8
MAX_LENGTH = 4096
MIN_ENTROPY_BITS = 48
MAX_DRAWS = 10000
READ_BACK_ATTEMPTS = 10
READ_BACK_DELAY = 1
HIDDEN = "<hidden>"
NEW_VALUE = "<new random value>"


class PasswordPolicyError(ValueError):
    """Options that cannot produce a sound password."""


class KMSErrorHandler(AWSErrorHandler):
    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code("NotFoundException")


# ---- password generation -------------------------------------------------------------------


def build_alphabet(character_classes: Optional[List[str]], alphabet: Optional[str], exclude_characters: str) -> str:
    """The sorted, de-duplicated characters a password is drawn from; raises PasswordPolicyError."""
    if alphabet is not None:
        foreign = sorted(set(alphabet) - set(PRINTABLE_ASCII))
        if foreign:
            raise PasswordPolicyError(f"alphabet may only hold printable ASCII characters, not {foreign!r}")
        candidates = set(alphabet)
    else:
        classes = character_classes or list(CHARACTER_CLASSES)
        candidates = set("".join(CHARACTER_CLASSES[name] for name in classes)) - set(DEFAULT_EXCLUDED_CHARACTERS)
    chosen = "".join(sorted(candidates - set(exclude_characters)))
    if not chosen:
        raise PasswordPolicyError("no characters are left to draw the password from once exclude_characters is applied")
    return chosen


def required_groups(alphabet: str) -> List[str]:
    """The part of the alphabet in each character class it touches; a password needs one of each."""
    groups = ("".join(c for c in alphabet if c in members) for members in CHARACTER_CLASSES.values())
    return [group for group in groups if group]


def validate_policy(length: int, alphabet: str) -> None:
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        raise PasswordPolicyError(f"length must be between {MIN_LENGTH} and {MAX_LENGTH}, not {length}")
    groups = required_groups(alphabet)
    if length < len(groups):
        raise PasswordPolicyError(f"length {length} cannot hold one character of each of {len(groups)} classes")
    bits = length * math.log2(len(alphabet))
    if bits < MIN_ENTROPY_BITS:
        raise PasswordPolicyError(
            f"{length} characters from an alphabet of {len(alphabet)} give {bits:.0f} bits of entropy,"
            f" fewer than {MIN_ENTROPY_BITS}; raise length or widen the alphabet"
        )


def password_policy(params: Dict[str, Any]) -> Tuple[int, str]:
    """The validated (length, alphabet) the options ask for; raises PasswordPolicyError."""
    alphabet = build_alphabet(params["character_classes"], params["alphabet"], params["exclude_characters"] or "")
    validate_policy(params["length"], alphabet)
    return params["length"], alphabet


def generate_password(length: int, alphabet: str) -> str:
    """A uniformly random password holding every class of the alphabet (the `secrets` docs recipe)."""
    groups = required_groups(alphabet)
    for _draw in range(MAX_DRAWS):
        candidate = "".join(secrets.choice(alphabet) for _position in range(length))
        if all(any(c in group for c in candidate) for group in groups):
            return candidate
    raise PasswordPolicyError(f"no password of {length} characters covering every class after {MAX_DRAWS} draws")


# ---- AWS calls ------------------------------------------------------------------------------


@SSMErrorHandler.list_error_handler("describe parameter")
def describe_parameter(client, name: str) -> Optional[Dict[str, Any]]:
    filters = [{"Key": "Name", "Option": "Equals", "Values": [name]}]
    token: Dict[str, str] = {}
    # DescribeParameters may return empty pages with a NextToken while filtering.
    while True:
        page = client.describe_parameters(aws_retry=True, ParameterFilters=filters, **token)
        for parameter in page.get("Parameters", []):
            if parameter["Name"] == name:
                return parameter
        if not page.get("NextToken"):
            return None
        token = {"NextToken": page["NextToken"]}


@SSMErrorHandler.common_error_handler("get parameter ARN")
def get_parameter_arn(client, name: str) -> str:
    return client.get_parameter(aws_retry=True, Name=name, WithDecryption=False)["Parameter"]["ARN"]


@SSMErrorHandler.common_error_handler("read parameter value")
def get_parameter_value(client, name: str) -> str:
    return client.get_parameter(aws_retry=True, Name=name, WithDecryption=True)["Parameter"]["Value"]


@KMSErrorHandler.list_error_handler("describe KMS key")
def kms_key_arn(client, key_id: str) -> Optional[str]:
    return client.describe_key(aws_retry=True, KeyId=key_id)["KeyMetadata"]["Arn"]


# ---- decisions ------------------------------------------------------------------------------


def protect(module: AnsibleAWSModule, value: str) -> str:
    """Mask the value in every output of the module, unless the caller asked for it (under no_log)."""
    if not module.params["return_value"]:
        module.no_log_values.add(value)
    return value


def new_value(module: AnsibleAWSModule, policy: Tuple[int, str]) -> str:
    try:
        return protect(module, generate_password(*policy))
    except PasswordPolicyError as e:
        module.fail_json(msg=str(e))


def checked_policy(module: AnsibleAWSModule) -> Tuple[int, str]:
    try:
        return password_policy(module.params)
    except PasswordPolicyError as e:
        module.fail_json(msg=f"Invalid password options: {e}. No AWS call was made.")


def ensure_secure_string(module: AnsibleAWSModule, current: Dict[str, Any]) -> None:
    if current.get("Type") != SECURE_STRING:
        module.fail_json(
            msg=f"Parameter {current['Name']} exists as a {current.get('Type')} parameter; ssm_secret manages"
            " SecureString parameters only. Nothing was changed."
        )


def same_kms_key(module: AnsibleAWSModule, kms, current_key: Optional[str]) -> bool:
    """Whether kms_key_id names the key the parameter is encrypted with (resolving aliases and ARNs)."""
    desired_key = module.params["kms_key_id"]
    if current_key == desired_key:
        return True
    try:
        desired_arn = kms_key_arn(kms, desired_key)
        current_arn = kms_key_arn(kms, current_key) if current_key else None
    except AnsibleAWSError as e:
        raise AnsibleAWSError(
            message=f"Cannot tell whether KMS key {desired_key} is the parameter's current key {current_key}:"
            f" allow kms:DescribeKey or give kms_key_id as {current_key}",
            exception=e.exception,
        ) from e
    if desired_arn is None:
        module.fail_json(msg=f"KMS key {desired_key} not found. Nothing was changed.")
    return desired_arn == current_arn


def tier_needs_upgrade(module: AnsibleAWSModule, current: Dict[str, Any]) -> bool:
    desired, actual = module.params["tier"], current.get("Tier")
    if desired == "Standard" and actual == "Advanced":
        module.fail_json(
            msg=f"Parameter {current['Name']} is in the Advanced tier, which AWS cannot downgrade to Standard."
            " Nothing was changed."
        )
    return desired == "Advanced" and actual != "Advanced"


def planned_updates(module: AnsibleAWSModule, kms, current: Dict[str, Any]) -> List[str]:
    """What an existing parameter needs rewritten: any of rotate, kms_key_id, description, tier."""
    params = module.params
    updates = []
    if params["rotate"]:
        updates.append("rotate")
    if not same_kms_key(module, kms, current.get("KeyId")):
        updates.append("kms_key_id")
    if params["description"] is not None and params["description"] != current.get("Description", ""):
        updates.append("description")
    if tier_needs_upgrade(module, current):
        updates.append("tier")
    return updates


def written_attributes(module: AnsibleAWSModule, current: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """Everything a write sets but the value. An overwrite restates description and tier so AWS keeps them."""
    params, current = module.params, current or {}
    attributes = {"Name": params["name"], "Type": SECURE_STRING, "KeyId": params["kms_key_id"]}
    description = params["description"] if params["description"] is not None else current.get("Description")
    tier = params["tier"] or current.get("Tier")
    attributes.update({key: val for key, val in (("Description", description), ("Tier", tier)) if val is not None})
    return attributes


def ensure_tags(module: AnsibleAWSModule, client, name: str, current_tags: Dict[str, str]) -> Tuple[bool, Dict]:
    """Reconcile tags; returns (changed, the tags as they are or would be)."""
    desired = module.params["tags"]
    if desired is None:
        return False, current_tags
    to_add, to_remove = compare_aws_tags(current_tags, desired, module.params["purge_tags"])
    if not module.check_mode:
        if to_remove:
            remove_parameter_tags(client, name, to_remove)
        if to_add:
            add_parameter_tags(client, name, to_add)
    after = {key: val for key, val in current_tags.items() if key not in to_remove}
    after.update({key: str(val) for key, val in to_add.items()})
    return bool(to_add or to_remove), after


def read_back(client, name: str, version: int) -> Dict[str, Any]:
    """The parameter's metadata once it shows at least the version just written."""
    for _attempt in range(READ_BACK_ATTEMPTS):
        current = describe_parameter(client, name)
        if current and current.get("Version", 0) >= version:
            return current
        time.sleep(READ_BACK_DELAY)
    raise AnsibleAWSError(message=f"Parameter {name} did not show version {version} after writing it")


def predicted(module: AnsibleAWSModule, current: Optional[Dict[str, Any]], written: bool) -> Dict[str, Any]:
    """The metadata a check-mode run would leave behind."""
    after = dict(current or {"Version": 0})
    if written:
        after.update(written_attributes(module, current), Version=after["Version"] + 1)
    return after


def create(module: AnsibleAWSModule, ssm, policy: Tuple[int, str]) -> Optional[Dict[str, Any]]:
    """Create the parameter with a new value; None when another writer created it first."""
    name, tags = module.params["name"], module.params["tags"] or {}
    value = new_value(module, policy)
    if module.check_mode:
        return finish(module, ssm, before=None, after=predicted(module, None, True), after_tags=tags, value=value)
    put = dict(written_attributes(module, None), Value=value)
    if tags:
        put["Tags"] = ansible_dict_to_boto3_tag_list(tags)
    response = create_parameter(ssm, **put)
    if response is None:
        return None
    after = read_back(ssm, name, response["Version"])
    return finish(module, ssm, before=None, after=after, after_tags=list_parameter_tags(ssm, name), value=value)


def update(module: AnsibleAWSModule, ssm, kms, policy: Tuple[int, str], current: Dict[str, Any]) -> Dict[str, Any]:
    """Reconcile an existing parameter, keeping its value unless asked to rotate it."""
    name = module.params["name"]
    ensure_secure_string(module, current)
    before_tags = list_parameter_tags(ssm, name)
    updates = planned_updates(module, kms, current)
    rotate = "rotate" in updates
    value = new_value(module, policy) if rotate else None

    if updates and not module.check_mode:
        if value is None:
            value = protect(module, get_parameter_value(ssm, name))
        written = overwrite_parameter(ssm, **written_attributes(module, current), Value=value)
        after = read_back(ssm, name, written["Version"])
    else:
        after = predicted(module, current, written=bool(updates))
    tags_changed, after_tags = ensure_tags(module, ssm, name, before_tags)
    if tags_changed and not module.check_mode:
        after_tags = list_parameter_tags(ssm, name)
    return finish(
        module,
        ssm,
        before=current,
        before_tags=before_tags,
        after=after,
        after_tags=after_tags,
        value=value,
        value_changed=rotate,
        changed=bool(updates) or tags_changed,
    )


def ensure_present(module: AnsibleAWSModule, ssm, kms, policy: Tuple[int, str]) -> Dict[str, Any]:
    current = describe_parameter(ssm, module.params["name"])
    if current is None:
        result = create(module, ssm, policy)
        if result is not None:
            return result
        # Another writer created it since we looked: its value stands, the rest is reconciled.
        current = read_back(ssm, module.params["name"], 1)
    return update(module, ssm, kms, policy, current)


def summary(metadata: Optional[Dict[str, Any]], tags: Dict[str, str], value: str) -> Dict[str, Any]:
    """The diff view of a parameter: everything but its value."""
    if metadata is None:
        return {}
    fields = {"name": "Name", "type": "Type", "kms_key_id": "KeyId", "description": "Description", "tier": "Tier"}
    view = {key: metadata[field] for key, field in fields.items() if metadata.get(field) is not None}
    view.update(version=metadata.get("Version"), tags=tags, value=value)
    return view


def to_result(client, metadata: Dict[str, Any], tags: Dict[str, str], exists: bool) -> Dict[str, Any]:
    fields = {
        "name": "Name",
        "arn": "ARN",
        "type": "Type",
        "version": "Version",
        "kms_key_id": "KeyId",
        "tier": "Tier",
        "description": "Description",
        "data_type": "DataType",
        "last_modified_date": "LastModifiedDate",
    }
    result = {key: metadata[field] for key, field in fields.items() if metadata.get(field) is not None}
    if exists and "arn" not in result:
        # ARN is a later addition to DescribeParameters; GetParameter always has it.
        result["arn"] = get_parameter_arn(client, metadata["Name"])
    if hasattr(result.get("last_modified_date"), "isoformat"):
        result["last_modified_date"] = result["last_modified_date"].isoformat()
    result["tags"] = tags
    return result


def finish(
    module: AnsibleAWSModule,
    ssm,
    *,
    before: Optional[Dict[str, Any]],
    after: Dict[str, Any],
    after_tags: Dict[str, str],
    value: Optional[str],
    before_tags: Optional[Dict[str, str]] = None,
    value_changed: bool = True,
    changed: bool = True,
) -> Dict[str, Any]:
    """The result for state=present: the parameter as it is (or would be), the diff, the value if asked for."""
    result = to_result(ssm, after, after_tags, exists=before is not None or not module.check_mode)
    result.update(changed=changed, value_changed=value_changed)
    if module._diff:
        result["diff"] = {
            "before": summary(before, before_tags or {}, HIDDEN),
            "after": summary(after, after_tags, NEW_VALUE if value_changed else HIDDEN),
        }
    if module.params["return_value"] and not (module.check_mode and value_changed):
        result["value"] = value if value is not None else get_parameter_value(ssm, module.params["name"])
    return result


def ensure_absent(module: AnsibleAWSModule, ssm) -> Dict[str, Any]:
    name = module.params["name"]
    current = describe_parameter(ssm, name)
    result: Dict[str, Any] = {"changed": False, "name": name}
    if current is not None:
        ensure_secure_string(module, current)
        before_tags = list_parameter_tags(ssm, name)
        result["changed"] = module.check_mode or delete_parameter(ssm, name)
        if module._diff:
            result["diff"] = {"before": summary(current, before_tags, HIDDEN), "after": {}}
    return result


def main() -> None:
    argument_spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        kms_key_id=dict(type="str", default=DEFAULT_KMS_KEY, aliases=["key_id"], no_log=False),
        description=dict(type="str"),
        tier=dict(type="str", choices=["Standard", "Advanced", "Intelligent-Tiering"]),
        length=dict(type="int", default=32),
        character_classes=dict(type="list", elements="str", choices=list(CHARACTER_CLASSES)),
        alphabet=dict(type="str"),
        exclude_characters=dict(type="str", default=""),
        rotate=dict(type="bool", default=False),
        return_value=dict(type="bool", default=False),
        tags=dict(type="dict", aliases=["resource_tags"]),
        purge_tags=dict(type="bool", default=True),
    )
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        mutually_exclusive=[("character_classes", "alphabet")],
        supports_check_mode=True,
    )

    # Every input check comes before the first AWS call.
    if module.params["return_value"] and not module.no_log:
        module.fail_json(
            msg="return_value=true returns the secret in clear: run the task with no_log: true. No AWS call was made."
        )
    policy = checked_policy(module) if module.params["state"] == "present" else None

    ssm = module.client("ssm", retry_decorator=SSM_RETRY)
    try:
        if module.params["state"] == "present":
            kms = module.client("kms", retry_decorator=AWSRetry.jittered_backoff())
            result = ensure_present(module, ssm, kms, policy)
        else:
            result = ensure_absent(module, ssm)
    except AnsibleAWSError as e:
        module.fail_json_aws_error(e)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
