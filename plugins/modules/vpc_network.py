#!/usr/bin/python

# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Ansible modules import below DOCUMENTATION, EXAMPLES and RETURN.
# ruff: noqa: E402

DOCUMENTATION = r"""
---
module: vpc_network
version_added: 0.1.0
short_description: A VPC with its tiers of subnets, routes and layered security groups, converged in one call
description:
  - Builds, or brings back to what is asked, a VPC spread over availability zones - its DNS settings, one subnet
    per tier and zone, an internet gateway when a tier routes to it, one route table per tier (the tier's
    subnets associated with it, its default route to the internet gateway or none at all) and security groups
    whose rules may refer to each other by name.
  - Reads the whole network in a handful of calls (one per resource type, filtered by the VPC), compares it with
    what is asked locally, and writes only the differences. A re-run writes nothing.
  - Names and tags every resource - the VPC C(NAME-vpc), the gateway C(NAME-igw), subnets C(NAME-TIER-ZONE),
    route tables C(NAME-TIER) and security groups C(NAME-GROUP) - with O(tags), which also decide what
    O(state=absent) removes.
  - With O(state=absent), finds every VPC, subnet, route table, internet gateway and security group carrying all
    of O(tags), wherever it is, and deletes them in dependency order - rules of all groups first (they refer
    to each other), groups, route tables, subnets, gateways, VPCs - retrying for up to O(delete_timeout) seconds
    while AWS still holds network interfaces of deleted load balancers or tasks.
author:
  - ecs_production.platform contributors (@ecs-production)
options:
  name:
    description: The prefix of every resource's name (the C(Name) tag), such as V(ecs-prod-prod).
    type: str
    required: true
  cidr_block:
    description: The VPC's IPv4 CIDR block, from /16 to /28. Required with O(state=present).
    type: str
  dns_support:
    description: Whether the VPC resolves DNS names.
    type: bool
    default: true
  dns_hostnames:
    description: Whether instances get public DNS host names.
    type: bool
    default: true
  availability_zones:
    description:
      - The zones to spread each tier over, in order; the n-th CIDR of a tier goes to the n-th zone.
      - Empty - the region's available zones, sorted by name, as many as the tier with most subnets needs.
    type: list
    elements: str
    default: []
  tiers:
    description: The tiers of subnets, such as public (load balancer), app (tasks) and data (database).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The tier's name, part of its subnets' and route table's names and their C(Tier) tag.
        type: str
        required: true
      cidrs:
        description: One subnet CIDR per availability zone, inside O(cidr_block), none overlapping another.
        type: list
        elements: str
        required: true
      map_public_ip:
        description: Whether the tier's subnets give a public IP address to what starts in them.
        type: bool
        default: false
      default_route:
        description:
          - Where the tier's route table sends traffic for outside the VPC - V(internet_gateway), or V(none)
            (no route out of the VPC at all).
          - V(external) - the module creates no route table for the tier and leaves its subnets' associations
            alone, for routes that depend on what this module cannot create first (one route table per zone
            towards a NAT gateway in a public subnet, say, made with M(amazon.aws.ec2_vpc_route_table)).
        type: str
        choices: [internet_gateway, none, external]
        default: none
  security_groups:
    description: The security groups, created first without rules, so that rules can refer to any of them.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The group's name after O(name) and a hyphen.
        type: str
        required: true
      description:
        description: The group's description (AWS cannot change it later).
        type: str
        required: true
      ingress:
        description:
          - "Inbound rules, each C({protocol, ports, cidrs, groups, prefix_lists, description}): C(protocol) V(tcp)
            (default), V(udp), V(icmp) or V(all); C(ports) a list of ports or ranges such as C(1024-2048); C(cidrs)
            IPv4 networks, C(groups) names of groups of O(security_groups) and C(prefix_lists) prefix list ids
            (C(pl-...)) or names of AWS-managed ones (C(com.amazonaws.us-east-1.s3), the S3 gateway endpoint's)
            that the rule admits."
          - Rules not listed are removed.
        type: list
        elements: dict
        default: []
      egress:
        description: Outbound rules, as O(security_groups[].ingress); rules not listed (AWS's default allow-all
          included) are removed.
        type: list
        elements: dict
        default: []
  tags:
    description:
      - Tags on every resource, beside C(Name) (and C(Tier) on subnets and route tables); other tags are removed.
      - With O(state=absent), what identifies the resources to delete; required then.
    type: dict
    default: {}
  delete_timeout:
    description: With O(state=absent), how long to keep retrying a deletion AWS refuses while dependents go away.
    type: int
    default: 300
  state:
    description: Whether the network should exist.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Supports check mode (everything read, nothing written; what does not exist yet gets an id of zeros, so that
    the tasks after it can plan too) and diff mode (the network before and after, summarized).
  - Every input is checked before any AWS call - CIDRs inside the VPC and not overlapping, ports, rule peers.
  - API calls are retried on throttling, and on the not-found answers AWS gives for a moment after a creation.
  - A subnet asked for in a zone other than the one it exists in cannot be moved; the module fails, naming it.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: A VPC over two zones, public and private tiers, layered security groups
  ecs_production.platform.vpc_network:
    name: ecs-prod-prod
    cidr_block: 10.20.0.0/16
    tiers:
      - {name: public, cidrs: [10.20.1.0/24, 10.20.2.0/24], map_public_ip: true, default_route: internet_gateway}
      - {name: private, cidrs: [10.20.11.0/24, 10.20.12.0/24]}
    security_groups:
      - name: alb
        description: Load balancer
        ingress: [{ports: [80, 443], cidrs: [0.0.0.0/0], description: from the clients}]
        egress: [{ports: [8000], groups: [tasks], description: to the tasks only}]
      - name: tasks
        description: ECS tasks
        ingress: [{ports: [8000], groups: [alb]}]
        egress: [{ports: [5432], groups: [db]}, {ports: [443], cidrs: [0.0.0.0/0]}]
      - name: db
        description: Database
        ingress: [{ports: [5432], groups: [tasks]}]
    tags: {Project: ecs-prod, Environment: prod, ManagedBy: ecs_production.platform}
  register: network

- name: Remove everything tagged for the environment
  ecs_production.platform.vpc_network:
    name: ecs-prod-prod
    tags: {Project: ecs-prod, Environment: prod, ManagedBy: ecs_production.platform}
    state: absent
"""

RETURN = r"""
vpc_id:
  description: The VPC's id (zeros in check mode when it does not exist yet); empty after O(state=absent).
  returned: always
  type: str
  sample: vpc-0123456789abcdef0
availability_zones:
  description: The zones the tiers are spread over, in order.
  returned: when O(state=present)
  type: list
  elements: str
subnets:
  description: Each tier's subnet ids, in the order of its CIDRs (and zones).
  returned: when O(state=present)
  type: dict
  sample: {public: [subnet-0aaa, subnet-0bbb], private: [subnet-0ccc, subnet-0ddd]}
route_tables:
  description: Each tier's route table id (none for a tier whose O(tiers[].default_route=external)).
  returned: when O(state=present)
  type: dict
internet_gateway_id:
  description: The internet gateway's id; empty when no tier routes to one.
  returned: when O(state=present)
  type: str
security_groups:
  description: Each security group's id, by the name given in O(security_groups).
  returned: when O(state=present)
  type: dict
  sample: {alb: sg-0aaa, tasks: sg-0bbb, db: sg-0ccc}
changes:
  description: What was changed (or would be, in check mode), one line each.
  returned: always
  type: list
  elements: str
  sample: ["create subnet ecs-prod-prod-public-us-east-1a 10.20.1.0/24", "authorize sg alb ingress tcp 443 0.0.0.0/0"]
deleted:
  description: With O(state=absent), the ids deleted (or that would be), by kind.
  returned: when O(state=absent)
  type: dict
"""

from typing import Any, Dict, List

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.ecs_production.platform.plugins.module_utils import ec2_network as plan
from ansible_collections.ecs_production.platform.plugins.module_utils.common import Clock
from ansible_collections.ecs_production.platform.plugins.module_utils.common import Refused
from ansible_collections.ecs_production.platform.plugins.module_utils.ec2_network_aws import EC2_RETRY
from ansible_collections.ecs_production.platform.plugins.module_utils.ec2_network_aws import Converger
from ansible_collections.ecs_production.platform.plugins.module_utils.ec2_network_aws import remove_network

RULE_OPTIONS = dict(type="list", elements="dict", default=[])


def main() -> None:
    argument_spec = dict(
        name=dict(type="str", required=True),
        cidr_block=dict(type="str"),
        dns_support=dict(type="bool", default=True),
        dns_hostnames=dict(type="bool", default=True),
        availability_zones=dict(type="list", elements="str", default=[]),
        tiers=dict(
            type="list",
            elements="dict",
            default=[],
            options=dict(
                name=dict(type="str", required=True),
                cidrs=dict(type="list", elements="str", required=True),
                map_public_ip=dict(type="bool", default=False),
                default_route=dict(type="str", choices=list(plan.DEFAULT_ROUTES), default="none"),
            ),
        ),
        security_groups=dict(
            type="list",
            elements="dict",
            default=[],
            options=dict(
                name=dict(type="str", required=True),
                description=dict(type="str", required=True),
                ingress=RULE_OPTIONS,
                egress=RULE_OPTIONS,
            ),
        ),
        tags=dict(type="dict", default={}),
        delete_timeout=dict(type="int", default=300),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_if=[["state", "present", ["cidr_block"]]],
    )
    problems = plan.check_params(module.params)
    if problems:
        module.fail_json(msg=f"{'; '.join(problems)}. No AWS call was made.")

    ec2 = module.client("ec2", retry_decorator=EC2_RETRY)
    try:
        if module.params["state"] == "absent":
            result: Dict[str, Any] = remove_network(module, ec2, Clock())
        else:
            result = Converger(module, ec2).converge()
    except Refused as e:
        module.fail_json(msg=e.message, **e.result)
    except AnsibleAWSError as e:
        module.fail_json_aws_error(e)
    changes: List[str] = result["changes"]
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(changed=bool(changes), **result)


if __name__ == "__main__":
    main()
