#!/usr/bin/python

# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Ansible modules import below DOCUMENTATION, EXAMPLES and RETURN.
# ruff: noqa: E402

DOCUMENTATION = r"""
---
module: cloudwatch_dashboard
version_added: 0.1.0
short_description: A CloudWatch dashboard, written only when its body differs
description:
  - Creates, updates or deletes one CloudWatch dashboard.
  - Reads it with one C(GetDashboard) call and compares its body with O(body) as JSON (key order and spacing do
    not count); calls C(PutDashboard) only when they differ. O(state=absent) deletes it with C(DeleteDashboards).
  - Neither amazon.aws nor community.aws has a dashboard module.
author:
  - ecs_production.platform contributors (@ecs-production)
options:
  name:
    description: The dashboard's name - letters, digits, C(-) and C(_), up to 255.
    type: str
    required: true
  body:
    description:
      - The dashboard body as CloudWatch defines it (a dict with C(widgets), each with C(type), C(x), C(y), C(width),
        C(height) and C(properties)). Required with O(state=present).
      - See U(https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/CloudWatch-Dashboard-Body-Structure.html).
    type: dict
  state:
    description: Whether the dashboard should exist.
    type: str
    choices: [present, absent]
    default: present
notes:
  - The body is checked before any AWS call (a list of widgets, each a dict with a C(type) and C(properties)).
  - Validation messages that C(PutDashboard) returns are passed on as warnings.
  - Supports check mode and diff mode (the body before and after).
  - API calls are retried on throttling.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Requests per colour
  ecs_production.platform.cloudwatch_dashboard:
    name: prod
    body:
      widgets:
        - type: metric
          x: 0
          y: 0
          width: 12
          height: 6
          properties:
            title: Requests per colour
            region: us-east-1
            stat: Sum
            period: 60
            metrics:
              - [AWS/ApplicationELB, RequestCount, TargetGroup, targetgroup/prod-blue/01, LoadBalancer, app/prod/45]
              - [AWS/ApplicationELB, RequestCount, TargetGroup, targetgroup/prod-green/89, LoadBalancer, app/prod/45]

- name: Delete it
  ecs_production.platform.cloudwatch_dashboard:
    name: prod
    state: absent
"""

RETURN = r"""
dashboard_arn:
  description: The dashboard's ARN; empty when it does not exist (after deletion, or in check mode before creation).
  returned: always
  type: str
  sample: arn:aws:cloudwatch::123456789012:dashboard/prod
change:
  description: What was (or would be) done - V(create), V(update), V(delete) or empty for nothing.
  returned: always
  type: str
  sample: update
validation_messages:
  description: What C(PutDashboard) said about the body (also shown as warnings).
  returned: always
  type: list
  elements: dict
  sample: [{DataPath: /widgets/0, Message: "Should NOT have additional properties"}]
"""

import json
import re
from typing import Any, Dict, List, Mapping, Optional

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

CLOUDWATCH_RETRY = AWSRetry.jittered_backoff(retries=10)
NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


class CloudWatchErrorHandler(AWSErrorHandler):
    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code(["ResourceNotFound", "ResourceNotFoundException"])


# ---- Input (no AWS call) ----


def check_input(name: str, body: Optional[Mapping[str, Any]], state: str) -> List[str]:
    """Problems found before any AWS call."""
    problems = []
    if not NAME.match(name or ""):
        problems.append(f"name must be 1 to 255 letters, digits, '-' or '_', not {name!r}")
    if state == "absent":
        return problems
    if body is None:
        return problems + ["body is required with state=present"]
    widgets = body.get("widgets")
    if not isinstance(widgets, list) or not widgets:
        return problems + ["body.widgets must be a non-empty list of widgets"]
    for index, widget in enumerate(widgets):
        if not isinstance(widget, Mapping):
            problems.append(f"body.widgets[{index}] must be a dict, not {type(widget).__name__}")
        elif not widget.get("type") or not isinstance(widget.get("properties"), Mapping):
            problems.append(f"body.widgets[{index}] needs a type and a dict of properties")
    return problems


def canonical(body: Any) -> Any:
    """A body as plain JSON data (what a JSON round trip gives), so two bodies compare by content."""
    return json.loads(json.dumps(body, sort_keys=True))


# ---- AWS ----


@CloudWatchErrorHandler.list_error_handler("read dashboard", default_value=None)
def get_dashboard(client, name: str) -> Optional[Dict[str, Any]]:
    """The dashboard as GetDashboard returns it, None when there is none."""
    return client.get_dashboard(aws_retry=True, DashboardName=name)


@CloudWatchErrorHandler.common_error_handler("put dashboard")
def put_dashboard(client, name: str, body: Mapping[str, Any]) -> Dict[str, Any]:
    return client.put_dashboard(aws_retry=True, DashboardName=name, DashboardBody=json.dumps(body, sort_keys=True))


@CloudWatchErrorHandler.deletion_error_handler("delete dashboard")
def delete_dashboard(client, name: str) -> bool:
    client.delete_dashboards(aws_retry=True, DashboardNames=[name])
    return True


def converge(module, client) -> Dict[str, Any]:
    name, state = module.params["name"], module.params["state"]
    found = get_dashboard(client, name)
    before = canonical(json.loads(found["DashboardBody"])) if found and found.get("DashboardBody") else None
    arn = found.get("DashboardArn", "") if found else ""
    result: Dict[str, Any] = {"dashboard_arn": arn, "change": "", "validation_messages": []}
    if state == "absent":
        result["diff"] = {"before": before or {}, "after": {}}
        if found is None:
            return result
        result.update(change="delete", dashboard_arn="")
        if not module.check_mode:
            delete_dashboard(client, name)
        return result
    after = canonical(module.params["body"])
    result["diff"] = {"before": before or {}, "after": after}
    if before == after:
        return result
    result["change"] = "update" if found else "create"
    if module.check_mode:
        return result
    answer = put_dashboard(client, name, after)
    messages = answer.get("DashboardValidationMessages") or []
    for message in messages:
        module.warn(f"dashboard {name}: {message.get('DataPath', '')}: {message.get('Message', '')}")
    result["validation_messages"] = messages
    if not arn:
        written = get_dashboard(client, name) or {}
        result["dashboard_arn"] = written.get("DashboardArn", "")
    return result


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            body=dict(type="dict"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        required_if=[("state", "present", ["body"])],
        supports_check_mode=True,
    )
    problems = check_input(module.params["name"], module.params["body"], module.params["state"])
    if problems:
        module.fail_json(msg=f"{'; '.join(problems)}. No AWS call was made.")
    client = module.client("cloudwatch", retry_decorator=CLOUDWATCH_RETRY)
    try:
        result = converge(module, client)
    except AnsibleAWSError as e:
        module.fail_json_aws_error(e)
    if not module._diff:
        result.pop("diff")
    module.exit_json(changed=bool(result["change"]), **result)


if __name__ == "__main__":
    main()
