#!/usr/bin/python

# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Ansible modules import below DOCUMENTATION, EXAMPLES and RETURN.
# ruff: noqa: E402

DOCUMENTATION = r"""
---
module: iam_roles
version_added: 0.1.0
short_description: IAM roles with their trust policy, managed and inline policies and tags, in four reads a role
description:
  - Creates or updates each IAM role listed - description, trust policy, permissions boundary, tags, the managed
    policies attached to it and its inline policies, both purged of any the role should not have.
  - Reads a role with C(GetRole) (trust policy, boundary, tags), C(ListAttachedRolePolicies), C(ListRolePolicies)
    and C(GetRolePolicy) for each inline policy, compares locally, and writes only what differs. A role that does not
    exist is created with everything at once and needs no read after C(GetRole).
  - M(amazon.aws.iam_role) and M(amazon.aws.iam_policy) do the same in two tasks and about twice the calls; this
    module uses their helpers (C(amazon.aws) C(module_utils.iam)) and policy comparison.
  - Deleting roles stays with M(amazon.aws.iam_role) (C(state=absent)).
author:
  - ecs_production.platform contributors (@ecs-production)
options:
  roles:
    description: The roles.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The role's name.
        type: str
        required: true
      description:
        description: The role's description.
        type: str
        default: ""
      trust_policy:
        description: The trust (assume role) policy document.
        type: json
        required: true
      managed_policies:
        description: ARNs of the managed policies attached to the role; any other is detached.
        type: list
        elements: str
        default: []
      inline_policies:
        description: Inline policy name -> document; any other inline policy of the role is deleted.
        type: dict
        default: {}
  path:
    description: The roles' path. An existing role's path cannot change; a different one fails the task.
    type: str
    default: /
  boundary:
    description: ARN of the managed policy that sets the roles' permissions boundary; empty for none.
    type: str
    default: ""
  tags:
    description: Tags of every role; tags not listed are removed.
    type: dict
    default: {}
notes:
  - Supports check mode and diff mode (each role's settings before and after; policy documents are compared,
    not shown).
  - API calls are retried on throttling.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: The execution and task roles of an ECS service
  ecs_production.platform.iam_roles:
    path: /shop/prod/
    tags: {Project: shop, Environment: prod}
    roles:
      - name: shop-prod-execution
        description: ECS task execution
        trust_policy: "{{ ecs_tasks_trust | to_json }}"
        managed_policies: [arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy]
        inline_policies:
          ssm-parameters: "{{ execution_policy }}"
      - name: shop-prod-task
        description: The application at run time
        trust_policy: "{{ ecs_tasks_trust | to_json }}"
        inline_policies:
          ssm-parameters: "{{ task_policy }}"
  register: roles
"""

RETURN = r"""
roles:
  description: Each role after the run, in the order given (in check mode, what it would be).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The role's name.
      type: str
    arn:
      description: The role's ARN; empty in check mode for a role that does not exist yet.
      type: str
    managed_policies:
      description:
        - The ARNs of the managed policies attached to the role, sorted, as C(ListAttachedRolePolicies) answers
          after the run (read again only when the attachments changed; in check mode, what they would be).
      type: list
      elements: str
    inline_policies:
      description: The names of the role's inline policies, sorted.
      type: list
      elements: str
    changed:
      description: Whether this role was (or in check mode would be) created or changed.
      type: bool
  sample:
    - name: shop-prod-task
      arn: arn:aws:iam::123456789012:role/shop/prod/shop-prod-task
      managed_policies: []
      inline_policies: [ssm-parameters]
      changed: false
"""

import json
from typing import Any, Dict, List, Optional

from ansible_collections.amazon.aws.plugins.module_utils.iam import AnsibleIAMError
from ansible_collections.amazon.aws.plugins.module_utils.iam import IAMErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.iam import get_iam_role
from ansible_collections.amazon.aws.plugins.module_utils.iam import list_iam_role_attached_policies
from ansible_collections.amazon.aws.plugins.module_utils.iam import list_iam_role_policies
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.policy import compare_policies
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict
from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags

RETRY = AWSRetry.jittered_backoff(retries=10)


def document(value: Any) -> Dict[str, Any]:
    """A policy document as a dict, from the JSON text (or dict) given or answered."""
    return json.loads(value) if isinstance(value, str) else dict(value)


@IAMErrorHandler.list_error_handler("get role policy")
def get_role_policy(client, role: str, name: str) -> Optional[Dict[str, Any]]:
    return document(client.get_role_policy(aws_retry=True, RoleName=role, PolicyName=name)["PolicyDocument"])


@IAMErrorHandler.common_error_handler("create role")
def create_role(client, **kwargs) -> Dict[str, Any]:
    return client.create_role(aws_retry=True, **kwargs)["Role"]


@IAMErrorHandler.common_error_handler("update role")
def call(client, operation: str, **kwargs) -> None:
    getattr(client, operation)(aws_retry=True, **kwargs)


class Role:
    """One role: what it is (read), what it should be (asked), and the calls between them."""

    def __init__(self, module, client, wanted: Dict[str, Any]):
        self.module, self.client, self.wanted = module, client, wanted
        self.name = wanted["name"]
        self.trust = document(wanted["trust_policy"])
        self.inline = {name: document(doc) for name, doc in (wanted.get("inline_policies") or {}).items()}
        self.managed = sorted(set(wanted.get("managed_policies") or []))
        self.changed = False

    def converge(self) -> Dict[str, Any]:
        found = get_iam_role(self.client, self.name)
        if not found:
            return self._create()
        params = self.module.params
        if found.get("Path", "/") != params["path"]:
            self.module.fail_json(
                msg=f"The role {self.name} exists under the path {found.get('Path')}, not {params['path']}: "
                "IAM cannot move a role. Delete it first or use its path. Nothing was changed."
            )
        attached = sorted(p["PolicyArn"] for p in list_iam_role_attached_policies(self.client, self.name))
        inline_names = sorted(list_iam_role_policies(self.client, self.name))
        inline = {name: get_role_policy(self.client, self.name, name) for name in inline_names}
        before = self._view(found, attached, inline_names)
        self._role_settings(found)
        managed_changed = self._managed(attached)
        self._inline(inline)
        after = dict(before, **self._wanted_view())
        # What AWS lists after the change (read again only when the attachments changed): the audit that follows
        # the module in the iam role compares it with what the role should carry.
        if managed_changed and not self.module.check_mode:
            attached = sorted(p["PolicyArn"] for p in list_iam_role_attached_policies(self.client, self.name))
        elif managed_changed:
            attached = self.managed
        return {
            "name": self.name,
            "arn": found.get("Arn", ""),
            "managed_policies": attached,
            "inline_policies": sorted(self.inline),
            "changed": self.changed,
            "diff": {"before": before, "after": after},
        }

    # -- reading

    def _view(self, found: Dict[str, Any], attached: List[str], inline_names: List[str]) -> Dict[str, Any]:
        return {
            "description": found.get("Description", ""),
            "boundary": (found.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn", ""),
            "tags": boto3_tag_list_to_ansible_dict(found.get("Tags") or []),
            "managed_policies": attached,
            "inline_policies": inline_names,
        }

    def _wanted_view(self) -> Dict[str, Any]:
        params = self.module.params
        return {
            "description": self.wanted.get("description") or "",
            "boundary": params["boundary"],
            "tags": params["tags"],
            "managed_policies": self.managed,
            "inline_policies": sorted(self.inline),
        }

    # -- writing (each only when it differs, nothing in check mode)

    def _write(self, operation: str, **kwargs) -> None:
        self.changed = True
        if not self.module.check_mode:
            call(self.client, operation, **kwargs)

    def _create(self) -> Dict[str, Any]:
        params = self.module.params
        self.changed = True
        arn = ""
        if not self.module.check_mode:
            created = {
                "RoleName": self.name,
                "Path": params["path"],
                "AssumeRolePolicyDocument": json.dumps(self.trust),
                "Description": self.wanted.get("description") or "",
            }
            if params["boundary"]:
                created["PermissionsBoundary"] = params["boundary"]
            if params["tags"]:
                created["Tags"] = ansible_dict_to_boto3_tag_list(params["tags"])
            arn = create_role(self.client, **created)["Arn"]
            for policy_arn in self.managed:
                call(self.client, "attach_role_policy", RoleName=self.name, PolicyArn=policy_arn)
            for name, doc in sorted(self.inline.items()):
                call(
                    self.client, "put_role_policy", RoleName=self.name, PolicyName=name, PolicyDocument=json.dumps(doc)
                )
        return {
            "name": self.name,
            "arn": arn,
            "managed_policies": self.managed,
            "inline_policies": sorted(self.inline),
            "changed": True,
            "diff": {"before": {}, "after": self._wanted_view()},
        }

    def _role_settings(self, found: Dict[str, Any]) -> None:
        params = self.module.params
        description = self.wanted.get("description") or ""
        if found.get("Description", "") != description:
            self._write("update_role", RoleName=self.name, Description=description)
        if compare_policies(document(found.get("AssumeRolePolicyDocument") or {}), self.trust):
            self._write("update_assume_role_policy", RoleName=self.name, PolicyDocument=json.dumps(self.trust))
        boundary = (found.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn", "")
        if boundary != params["boundary"]:
            if params["boundary"]:
                self._write("put_role_permissions_boundary", RoleName=self.name, PermissionsBoundary=params["boundary"])
            else:
                self._write("delete_role_permissions_boundary", RoleName=self.name)
        to_tag, to_untag = compare_aws_tags(
            boto3_tag_list_to_ansible_dict(found.get("Tags") or []), params["tags"], purge_tags=True
        )
        if to_tag:
            self._write("tag_role", RoleName=self.name, Tags=ansible_dict_to_boto3_tag_list(to_tag))
        if to_untag:
            self._write("untag_role", RoleName=self.name, TagKeys=to_untag)

    def _managed(self, attached: List[str]) -> bool:
        """Attach and detach; whether anything was (or would be)."""
        missing, extra = sorted(set(self.managed) - set(attached)), sorted(set(attached) - set(self.managed))
        for policy_arn in missing:
            self._write("attach_role_policy", RoleName=self.name, PolicyArn=policy_arn)
        for policy_arn in extra:
            self._write("detach_role_policy", RoleName=self.name, PolicyArn=policy_arn)
        return bool(missing or extra)

    def _inline(self, inline: Dict[str, Optional[Dict[str, Any]]]) -> None:
        for name, doc in sorted(self.inline.items()):
            have = inline.get(name)
            if have is None or compare_policies(have, doc):
                self._write("put_role_policy", RoleName=self.name, PolicyName=name, PolicyDocument=json.dumps(doc))
        for name in sorted(set(inline) - set(self.inline)):
            self._write("delete_role_policy", RoleName=self.name, PolicyName=name)


def check_parameters(module) -> None:
    params = module.params
    problems = []
    names = [r["name"] for r in params["roles"]]
    if not names or len(set(names)) != len(names) or any(not n.strip() for n in names):
        problems.append("roles must list one or more distinct role names")
    if not (params["path"].startswith("/") and params["path"].endswith("/")):
        problems.append(f"path must begin and end with /, not {params['path']!r}")
    for role in params["roles"]:
        for what, value in [("trust_policy", role["trust_policy"])] + [
            (f"inline policy {name}", doc) for name, doc in (role.get("inline_policies") or {}).items()
        ]:
            try:
                parsed = document(value)
            except (TypeError, ValueError) as e:
                problems.append(f"the {what} of {role['name']} is not a JSON document: {e}")
                continue
            if not isinstance(parsed.get("Statement"), (list, dict)):
                problems.append(f"the {what} of {role['name']} has no Statement")
        bad = [arn for arn in role.get("managed_policies") or [] if not arn.startswith("arn:") or ":policy/" not in arn]
        if bad:
            problems.append(f"the managed_policies of {role['name']} must be policy ARNs, not {bad}")
    if problems:
        module.fail_json(msg="; ".join(problems) + ". No AWS call was made.")


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=dict(
            roles=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    name=dict(type="str", required=True),
                    description=dict(type="str", default=""),
                    trust_policy=dict(type="json", required=True),
                    managed_policies=dict(type="list", elements="str", default=[]),
                    inline_policies=dict(type="dict", default={}),
                ),
            ),
            path=dict(type="str", default="/"),
            boundary=dict(type="str", default=""),
            tags=dict(type="dict", default={}),
        ),
        supports_check_mode=True,
    )
    check_parameters(module)
    client = module.client("iam", retry_decorator=RETRY)
    try:
        results = [Role(module, client, wanted).converge() for wanted in module.params["roles"]]
    except AnsibleIAMError as e:
        module.fail_json_aws_error(e)
    diff = {
        "before": {r["name"]: r["diff"]["before"] for r in results},
        "after": {r["name"]: r["diff"]["after"] for r in results},
    }
    for result in results:
        result.pop("diff")
    output = {"changed": any(r["changed"] for r in results), "roles": results}
    if module._diff:
        output["diff"] = diff
    module.exit_json(**output)


if __name__ == "__main__":
    main()
