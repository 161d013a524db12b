#!/usr/bin/python

# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Ansible modules import below DOCUMENTATION, EXAMPLES and RETURN.
# ruff: noqa: E402

DOCUMENTATION = r"""
---
module: load_balancer
version_added: 0.1.0
short_description: An Application Load Balancer with its target groups and listeners, converged in one call
description:
  - Creates, or brings back to what is asked, an Application Load Balancer - its subnets, security groups and
    attributes - with target groups (IP or instance targets, health check, deregistration delay) and listeners
    (HTTP or HTTPS, default actions always written as C(ForwardConfig)).
  - Reads the load balancer, its attributes, the target groups and theirs, the listeners and all their tags in
    one call per kind, compares them with what is asked, and writes only the differences. A re-run writes
    nothing.
  - A listener's forward action names target groups of O(target_groups) by name. With
    O(listeners[].default_actions_on_create_only), its actions are written when it is created and never
    after - the blue/green weights belong to M(ecs_production.platform.traffic_switch).
  - Targets are never registered or deregistered here (ECS does that); listeners not named are left alone.
  - Deleting is not this module's job; the C(alb) role removes load balancers and target groups by tags.
author:
  - ecs_production.platform contributors (@ecs-production)
options:
  name:
    description: The load balancer's name.
    type: str
    required: true
  scheme:
    description: Whether the load balancer is reachable from the internet.
    type: str
    choices: [internet-facing, internal]
    default: internet-facing
  subnets:
    description: Its subnets, in two or more availability zones.
    type: list
    elements: str
    required: true
  security_groups:
    description: Its security groups.
    type: list
    elements: str
    required: true
  idle_timeout:
    description: Seconds a connection may stay idle.
    type: int
  deletion_protection:
    description: Whether AWS refuses to delete it.
    type: bool
  http2:
    description: Whether clients may speak HTTP/2.
    type: bool
  drop_invalid_header_fields:
    description: Whether headers with invalid fields are dropped.
    type: bool
  wait:
    description: When creating it, wait until it is active.
    type: bool
    default: true
  tags:
    description: Tags on the load balancer, its target groups and listeners (each may add its own); others are removed.
    type: dict
    default: {}
  target_groups:
    description: The target groups.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The target group's name.
        type: str
        required: true
      protocol:
        description: The protocol to the targets (fixed once created).
        type: str
        choices: [HTTP, HTTPS]
        default: HTTP
      port:
        description: The targets' port (fixed once created).
        type: int
        required: true
      target_type:
        description: How targets are registered (fixed once created); V(ip) for Fargate tasks.
        type: str
        choices: [ip, instance]
        default: ip
      vpc_id:
        description: The VPC (fixed once created).
        type: str
        required: true
      health_check:
        description:
          - "The health check: C(protocol), C(port) (V(traffic-port) for the targets' port), C(path), C(interval),
            C(timeout), C(healthy_threshold), C(unhealthy_threshold) and C(matcher) (HTTP codes such as V(200))."
        type: dict
        default: {}
      deregistration_delay:
        description: Seconds a deregistered target keeps its connections (draining).
        type: int
      tags:
        description: Tags of this target group on top of O(tags).
        type: dict
  listeners:
    description: The listeners.
    type: list
    elements: dict
    default: []
    suboptions:
      port:
        description: The port, which identifies the listener.
        type: int
        required: true
      protocol:
        description: Its protocol.
        type: str
        choices: [HTTP, HTTPS]
        required: true
      certificate_arn:
        description: The default certificate; required with V(HTTPS).
        type: str
      ssl_policy:
        description: The TLS policy of an HTTPS listener.
        type: str
      default_actions:
        description:
          - The default actions in the API's shape (one forward, redirect or fixed-response action); a forward
            names target groups of O(target_groups) by C(TargetGroupName) (or ARN), with their weights.
        type: list
        elements: dict
        required: true
      default_actions_on_create_only:
        description: Write the actions when the listener is created only, never change them afterwards.
        type: bool
        default: false
      tags:
        description: Tags of this listener on top of O(tags).
        type: dict
      purge_tags:
        description:
          - Whether to remove the listener's other tags; V(false) keeps tags others write, such as a swap's record.
        type: bool
        default: true
notes:
  - Every option is checked before any AWS call (actions, ports, an HTTPS listener's certificate).
  - Supports check mode (what does not exist yet gets an ARN of zeros) and diff mode.
  - API calls are retried on throttling.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: A load balancer with blue and green target groups, HTTP redirecting to HTTPS
  ecs_production.platform.load_balancer:
    name: prod-alb
    subnets: [subnet-0aaa, subnet-0bbb]
    security_groups: [sg-0ccc]
    idle_timeout: 60
    http2: true
    drop_invalid_header_fields: true
    target_groups:
      - {name: prod-blue, port: 8000, vpc_id: vpc-0ddd, health_check: {path: /health, interval: 15}}
      - {name: prod-green, port: 8000, vpc_id: vpc-0ddd, health_check: {path: /health, interval: 15}}
    listeners:
      - port: 80
        protocol: HTTP
        default_actions: [{Type: redirect, RedirectConfig: {Protocol: HTTPS, Port: "443", StatusCode: HTTP_301}}]
      - port: 443
        protocol: HTTPS
        certificate_arn: arn:aws:acm:us-east-1:123456789012:certificate/abc
        default_actions:
          - Type: forward
            ForwardConfig:
              TargetGroups: [{TargetGroupName: prod-blue, Weight: 100}, {TargetGroupName: prod-green, Weight: 0}]
        default_actions_on_create_only: true
        purge_tags: false
    tags: {Project: prod}
  register: alb
"""

RETURN = r"""
load_balancer:
  description: The load balancer - C(arn), C(name), C(dns_name), C(canonical_hosted_zone_id) (empty in check mode
    when it does not exist yet).
  returned: always
  type: dict
target_groups:
  description: Each target group's ARN, by name.
  returned: always
  type: dict
listeners:
  description: Each listener's ARN, by port.
  returned: always
  type: dict
  sample: {"80": arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/prod-alb/0123/4567}
changes:
  description: What was (or would be) written, one line each.
  returned: always
  type: list
  elements: str
"""

from typing import Any, Dict, List, Mapping

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.ecs_production.platform.plugins.module_utils.common import Refused
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import ELBV2_RETRY
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import validate_actions
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_load_balancer import Converger

MAX_PORT = 65535
HEALTH_CHECK_KEYS = {
    "protocol",
    "port",
    "path",
    "interval",
    "timeout",
    "healthy_threshold",
    "unhealthy_threshold",
    "matcher",
}


def check_params(params: Mapping[str, Any]) -> List[str]:
    """Problems AnsibleModule's own checks do not catch; found before any AWS call."""
    problems = []
    if len(params["subnets"]) < 2:
        problems.append(f"subnets must name two or more subnets (in different zones), not {len(params['subnets'])}")
    names = [group["name"] for group in params["target_groups"]]
    if len(set(names)) != len(names):
        problems.append(f"each target group needs a name of its own: {names}")
    for group in params["target_groups"]:
        if not 1 <= group["port"] <= MAX_PORT:
            problems.append(f"target_groups.{group['name']}.port must be 1-{MAX_PORT}, not {group['port']}")
        unknown = set(group.get("health_check") or {}) - HEALTH_CHECK_KEYS
        if unknown:
            problems.append(f"target_groups.{group['name']}.health_check: unknown {', '.join(sorted(unknown))}")
    ports = [listener["port"] for listener in params["listeners"]]
    if len(set(ports)) != len(ports):
        problems.append(f"each listener needs a port of its own: {ports}")
    for listener in params["listeners"]:
        where = f"listeners.{listener['port']}"
        if not 1 <= listener["port"] <= MAX_PORT:
            problems.append(f"{where}.port must be 1-{MAX_PORT}")
        if listener["protocol"] == "HTTPS" and not listener.get("certificate_arn"):
            problems.append(f"{where}: an HTTPS listener needs certificate_arn")
        problems.extend(f"{where}: {p}" for p in validate_actions(listener["default_actions"]))
    return problems


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            scheme=dict(type="str", choices=["internet-facing", "internal"], default="internet-facing"),
            subnets=dict(type="list", elements="str", required=True),
            security_groups=dict(type="list", elements="str", required=True),
            idle_timeout=dict(type="int"),
            deletion_protection=dict(type="bool"),
            http2=dict(type="bool"),
            drop_invalid_header_fields=dict(type="bool"),
            wait=dict(type="bool", default=True),
            tags=dict(type="dict", default={}),
            target_groups=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    name=dict(type="str", required=True),
                    protocol=dict(type="str", choices=["HTTP", "HTTPS"], default="HTTP"),
                    port=dict(type="int", required=True),
                    target_type=dict(type="str", choices=["ip", "instance"], default="ip"),
                    vpc_id=dict(type="str", required=True),
                    health_check=dict(type="dict", default={}),
                    deregistration_delay=dict(type="int"),
                    tags=dict(type="dict"),
                ),
            ),
            listeners=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    port=dict(type="int", required=True),
                    protocol=dict(type="str", choices=["HTTP", "HTTPS"], required=True),
                    certificate_arn=dict(type="str"),
                    ssl_policy=dict(type="str"),
                    default_actions=dict(type="list", elements="dict", required=True),
                    default_actions_on_create_only=dict(type="bool", default=False),
                    tags=dict(type="dict"),
                    purge_tags=dict(type="bool", default=True),
                ),
            ),
        ),
        supports_check_mode=True,
    )
    problems = check_params(module.params)
    if problems:
        module.fail_json(msg=f"{'; '.join(problems)}. No AWS call was made.")
    client = module.client("elbv2", retry_decorator=ELBV2_RETRY)
    try:
        result: Dict[str, Any] = Converger(module, client).converge()
    except Refused as e:
        module.fail_json(msg=e.message)
    except AnsibleAWSError as e:
        module.fail_json_aws_error(e)
    if not module._diff:
        result.pop("diff")
    module.exit_json(changed=bool(result["changes"]), **result)


if __name__ == "__main__":
    main()
