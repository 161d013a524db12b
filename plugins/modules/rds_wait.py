#!/usr/bin/python

# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Ansible modules import below DOCUMENTATION, EXAMPLES and RETURN.
# ruff: noqa: E402

DOCUMENTATION = r"""
---
module: rds_wait
version_added: 0.1.0
short_description: Wait until RDS instances are available, or gone, saying how far they got
description:
  - Polls the instances named in O(db_instance_identifiers) until each is C(available) (O(state=available)) or
    no longer exists (O(state=deleted)), or until O(timeout) seconds have passed.
  - Returns the instances as RDS describes them at the end (snake_case, as M(amazon.aws.rds_instance_info)
    does), and in RV(progress) each change of their statuses (C(creating), C(backing-up), C(available)...), for C(-v).
  - A creation or deletion that RDS reports as failed (C(failed), C(incompatible-parameters),
    C(incompatible-network), C(storage-full)...) fails at once, naming the status.
  - Changes nothing.
author:
  - ecs_production.platform contributors (@ecs-production)
options:
  db_instance_identifiers:
    description: The instances to wait for.
    type: list
    elements: str
    required: true
  state:
    description: What to wait for.
    type: str
    choices: [available, deleted]
    default: available
  timeout:
    description: Seconds to wait before failing.
    type: int
    default: 3600
  interval:
    description: Seconds between two looks.
    type: int
    default: 15
notes:
  - Supports check mode; it reads only.
  - API calls are retried on throttling.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Wait until the database accepts its first connection's route
  ecs_production.platform.rds_wait:
    db_instance_identifiers: [prod-db]
    timeout: 3600
  register: database

- name: Wait until the deleted instances are gone
  ecs_production.platform.rds_wait:
    db_instance_identifiers: [prod-db]
    state: deleted
"""

RETURN = r"""
instances:
  description: The instances as RDS describes them at the end, snake_case; none after O(state=deleted).
  returned: always
  type: list
  elements: dict
waited:
  description: Seconds spent waiting.
  returned: always
  type: float
progress:
  description: Each change of the instances' statuses, prefixed with the seconds waited (C(0 s prod-db creating)).
  returned: always
  type: list
  elements: str
"""

import time
from typing import Any, Dict, List, Mapping

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

# Statuses from which an instance does not become available by itself.
FAILED = ("failed", "incompatible-parameters", "incompatible-network", "incompatible-restore", "storage-full",
          "inaccessible-encryption-credentials", "restore-error")  # fmt: skip
GONE = "gone"


class RdsErrorHandler(AWSErrorHandler):
    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code("DBInstanceNotFound")


@RdsErrorHandler.list_error_handler("describe DB instances", default_value=[])
def describe(client, identifier: str) -> List[Dict[str, Any]]:
    return client.describe_db_instances(aws_retry=True, DBInstanceIdentifier=identifier)["DBInstances"]


def statuses(client, identifiers: List[str]) -> Dict[str, Dict[str, Any]]:
    """{identifier: instance}, missing ones absent."""
    found = {}
    for identifier in identifiers:
        for instance in describe(client, identifier):
            found[identifier] = instance
    return found


def verdict(found: Mapping[str, Mapping[str, Any]], identifiers: List[str], state: str) -> str:
    """ "done", "waiting", or the reason waiting is hopeless."""
    for identifier in identifiers:
        status = (found.get(identifier) or {}).get("DBInstanceStatus", GONE)
        if status in FAILED:
            return f"{identifier} is {status}"
        if state == "available" and status == GONE:
            return f"{identifier} does not exist"
    if state == "deleted":
        return "done" if not found else "waiting"
    return "done" if all(found[i].get("DBInstanceStatus") == "available" for i in identifiers) else "waiting"


def wait(client, params: Mapping[str, Any], clock=time) -> Dict[str, Any]:
    identifiers, state = params["db_instance_identifiers"], params["state"]
    started = clock.monotonic()
    progress: List[str] = []
    while True:
        found = statuses(client, identifiers)
        waited = clock.monotonic() - started
        line = ", ".join(f"{i} {(found.get(i) or {}).get('DBInstanceStatus', GONE)}" for i in identifiers)
        if not progress or not progress[-1].endswith(" " + line):
            progress.append(f"{round(waited)} s {line}")
        outcome = verdict(found, identifiers, state)
        if outcome != "waiting" or waited >= params["timeout"]:
            break
        clock.sleep(min(params["interval"], max(params["timeout"] - waited, 0.1)))
    result: Dict[str, Any] = {
        "instances": [camel_dict_to_snake_dict(found[i], ignore_list=["Tags"]) for i in identifiers if i in found],
        "waited": round(clock.monotonic() - started, 1),
        "progress": progress,
    }
    if outcome != "done":
        why = outcome if outcome != "waiting" else f"still {line} after {params['timeout']} s"
        result["msg"] = f"Waited for {', '.join(identifiers)} to be {state}: {why}"
    return result


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=dict(
            db_instance_identifiers=dict(type="list", elements="str", required=True),
            state=dict(type="str", choices=["available", "deleted"], default="available"),
            timeout=dict(type="int", default=3600),
            interval=dict(type="int", default=15),
        ),
        supports_check_mode=True,
    )
    if module.params["interval"] < 1 or module.params["timeout"] < 0:
        module.fail_json(msg="interval must be at least 1 and timeout 0 or more. No AWS call was made.")
    client = module.client("rds", retry_decorator=AWSRetry.jittered_backoff(retries=10))
    try:
        result = wait(client, module.params)
    except AnsibleAWSError as e:
        module.fail_json_aws_error(e)
    if "msg" in result:
        module.fail_json(changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
