#!/usr/bin/python

# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Ansible modules import below DOCUMENTATION, EXAMPLES and RETURN.
# ruff: noqa: E402

DOCUMENTATION = r"""
---
module: elb_listener
version_added: 0.1.0
short_description: Manage one listener of an Application Load Balancer, with weighted forwarding
description:
  - Creates, updates or deletes the listener of an Application Load Balancer (ALB) on one port.
  - Forward actions are compared including their C(ForwardConfig) target group weights and stickiness, so a
    weighted blue/green listener is reported unchanged when it is as described.
  - With O(default_actions_on_create_only=true) the default actions are written only when the listener is
    created. Afterwards they are neither compared nor changed, so a provisioning run never reverts the weights
    that a blue/green switch has set since.
  - The other listeners of the load balancer and the rules of this listener are left alone.
    M(amazon.aws.elb_application_lb) manages all listeners of a load balancer at once and always enforces
    their default actions; give it O(amazon.aws.elb_application_lb#module:purge_listeners=false) when both are used.
author:
  - ecs_production.platform contributors (@ecs-production)
options:
  state:
    description:
      - V(present) creates the listener or brings it in line with the options.
      - V(absent) deletes the listener on O(port), if there is one.
    type: str
    choices: [present, absent]
    default: present
  load_balancer_arn:
    description:
      - ARN of the load balancer the listener belongs to.
      - Exactly one of O(load_balancer_arn) and O(load_balancer_name) is required.
    type: str
  load_balancer_name:
    description:
      - Name of the load balancer the listener belongs to.
    type: str
  port:
    description:
      - The port the listener listens on, which identifies it on its load balancer.
    type: int
    required: true
  protocol:
    description:
      - The protocol for connections from clients to the load balancer.
      - Required when O(state=present).
    type: str
    choices: [HTTP, HTTPS]
  certificate_arn:
    description:
      - ARN of the default certificate (ACM or IAM) the listener serves.
      - Required when O(protocol=HTTPS); not allowed with O(protocol=HTTP).
    type: str
  ssl_policy:
    description:
      - Name of the security policy that defines the TLS protocols and ciphers, for example
        V(ELBSecurityPolicy-TLS13-1-2-2021-06).
      - Only with O(protocol=HTTPS). When not given, AWS chooses the policy on creation and it is not
        compared afterwards.
    type: str
  default_actions:
    description:
      - The default actions, in the shape of the AWS API's C(DefaultActions), with one action of C(Type)
        V(forward), V(redirect) or V(fixed-response).
      - "A V(forward) action names its target groups in C(ForwardConfig.TargetGroups), each entry with
        C(TargetGroupArn) or C(TargetGroupName) and an optional C(Weight) (an integer from 0 to 999, default 1),
        with an optional C(ForwardConfig.TargetGroupStickinessConfig) (C(Enabled), C(DurationSeconds)).
        One to five target groups. C(TargetGroupArn) or C(TargetGroupName) directly on the action forwards
        to that one target group."
      - Forward actions are always written as C(ForwardConfig) alone, the one form AWS accepts for any number
        of target groups, weights and stickiness (C(TargetGroupArn) cannot carry weights, and may accompany
        C(ForwardConfig) only when both name the same single target group).
      - "A V(redirect) action takes C(RedirectConfig) (C(StatusCode) V(HTTP_301) or V(HTTP_302), and any of
        C(Protocol), C(Port), C(Host), C(Path), C(Query)); a V(fixed-response) action takes
        C(FixedResponseConfig) (C(StatusCode), C(ContentType), C(MessageBody))."
      - Required when O(state=present).
    type: list
    elements: dict
  default_actions_on_create_only:
    description:
      - Write O(default_actions) only when the listener is created; never compare or change them afterwards.
      - Use it where another process owns the weights, such as the blue/green deployment switch.
    type: bool
    default: false
notes:
  - Requires the IAM permissions C(elasticloadbalancing:DescribeLoadBalancers), C(DescribeListeners),
    C(DescribeTargetGroups), C(DescribeTags), C(CreateListener), C(ModifyListener), C(DeleteListener),
    C(AddTags) and C(RemoveTags).
  - Target group names and ARNs are checked to exist whenever the default actions are written or compared.
  - Supports check mode (no write call is made) and diff mode (protocol, port, TLS settings, normalised default
    actions and tags of the listener, before and after).
  - In check mode, a load balancer that does not exist yet (one an earlier task of the same run would create)
    is not an error - the listener is reported as one that would be created with it, its target groups as given.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.tags
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Redirect HTTP to HTTPS
  ecs_production.platform.elb_listener:
    load_balancer_name: platform-prod
    port: 80
    protocol: HTTP
    default_actions:
      - Type: redirect
        RedirectConfig:
          Protocol: HTTPS
          Port: "443"
          StatusCode: HTTP_301

- name: Serve HTTPS to blue, leaving the weights to the deployment switch once the listener exists
  ecs_production.platform.elb_listener:
    load_balancer_name: platform-prod
    port: 443
    protocol: HTTPS
    certificate_arn: "{{ certificate.certificate_arn }}"
    ssl_policy: ELBSecurityPolicy-TLS13-1-2-2021-06
    default_actions:
      - Type: forward
        ForwardConfig:
          TargetGroups:
            - TargetGroupName: platform-prod-blue
              Weight: 100
            - TargetGroupName: platform-prod-green
              Weight: 0
    default_actions_on_create_only: true
    tags:
      Environment: prod

- name: Send all traffic to green, keeping sessions on their target group for an hour
  ecs_production.platform.elb_listener:
    load_balancer_name: platform-prod
    port: 443
    protocol: HTTPS
    certificate_arn: "{{ certificate.certificate_arn }}"
    default_actions:
      - Type: forward
        ForwardConfig:
          TargetGroups:
            - TargetGroupName: platform-prod-blue
              Weight: 0
            - TargetGroupName: platform-prod-green
              Weight: 100
          TargetGroupStickinessConfig:
            Enabled: true
            DurationSeconds: 3600

- name: Delete the HTTP listener
  ecs_production.platform.elb_listener:
    load_balancer_name: platform-prod
    port: 80
    state: absent
"""

RETURN = r"""
listener:
  description: The listener. In check mode, when it would be created, without RV(listener.arn).
  returned: when O(state=present)
  type: dict
  contains:
    arn:
      description: ARN of the listener.
      type: str
      sample: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/platform-prod/0123456789abcdef/fedcba98
    load_balancer_arn:
      description: ARN of its load balancer.
      type: str
      sample: arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/platform-prod/0123456789abcdef
    port:
      description: The port it listens on.
      type: int
      sample: 443
    protocol:
      description: Its protocol.
      type: str
      sample: HTTPS
    ssl_policy:
      description: Its security policy; V(null) for an HTTP listener.
      type: str
      sample: ELBSecurityPolicy-TLS13-1-2-2021-06
    certificates:
      description: ARNs of its default certificate; empty for an HTTP listener.
      type: list
      elements: str
      sample: [arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012]
    default_actions:
      description: Its default actions in the AWS API's shape, as AWS describes them.
      type: list
      elements: dict
      sample:
        - Type: forward
          ForwardConfig:
            TargetGroups:
              - TargetGroupArn: arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/prod-blue/0123abcd
                Weight: 100
              - TargetGroupArn: arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/prod-green/4567cdef
                Weight: 0
            TargetGroupStickinessConfig:
              Enabled: false
    tags:
      description: Its tags.
      type: dict
      sample: {Environment: prod}
weights:
  description: Weight of each target group, by target group name, of the forward default action.
  returned: when O(state=present) and the default action is a forward
  type: dict
  sample: {platform-prod-blue: 100, platform-prod-green: 0}
"""

from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list
from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags

from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import ELBV2_RETRY
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import add_tags
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import create_listener
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import delete_listener
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import find_listener
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import find_load_balancer
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import forward_weights
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import get_tags
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import modify_listener
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import normalize_actions
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import remove_tags
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import resolve_actions
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import resolve_target_group_arns
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import target_group_name
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import target_group_refs
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import validate_actions

MIN_PORT = 1
MAX_PORT = 65535


class Want(NamedTuple):
    """The listener the task describes."""

    port: int
    protocol: Optional[str]
    certificate_arn: Optional[str]
    ssl_policy: Optional[str]
    actions: List[Dict[str, Any]]
    actions_on_create_only: bool
    tags: Optional[Dict[str, str]]
    purge_tags: bool

    @property
    def https(self) -> bool:
        return self.protocol == "HTTPS"


# ---- Input ----


def check_params(params: Dict[str, Any]) -> List[str]:
    """Problems with the options that AnsibleModule's own checks do not catch; made before any AWS call."""
    problems = []
    if not MIN_PORT <= params["port"] <= MAX_PORT:
        problems.append(f"port must be from {MIN_PORT} to {MAX_PORT}, not {params['port']}")
    if params["state"] == "absent":
        return problems
    if params["protocol"] != "HTTPS":
        problems.extend(
            f"{name} is only valid with protocol HTTPS"
            for name in ("certificate_arn", "ssl_policy")
            if params.get(name)
        )
    problems.extend(validate_actions(params["default_actions"]))
    return problems


def want_from_params(params: Dict[str, Any]) -> Want:
    return Want(
        port=params["port"],
        protocol=params["protocol"],
        certificate_arn=params.get("certificate_arn"),
        ssl_policy=params.get("ssl_policy"),
        actions=params.get("default_actions") or [],
        actions_on_create_only=params["default_actions_on_create_only"],
        tags=params.get("tags"),
        purge_tags=params["purge_tags"],
    )


# ---- Views ----


def default_certificate(listener: Dict[str, Any]) -> Optional[str]:
    certificates = listener.get("Certificates") or []
    return certificates[0]["CertificateArn"] if certificates else None


def listener_view(listener: Dict[str, Any], tags: Dict[str, str]) -> Dict[str, Any]:
    """The listener as RETURN documents it; TLS settings only for HTTPS (the emulator describes an SslPolicy
    for HTTP listeners too, AWS does not)."""
    https = listener.get("Protocol") == "HTTPS"
    view = {
        "load_balancer_arn": listener["LoadBalancerArn"],
        "port": listener["Port"],
        "protocol": listener["Protocol"],
        "ssl_policy": listener.get("SslPolicy") if https else None,
        "certificates": [c["CertificateArn"] for c in listener.get("Certificates") or []] if https else [],
        "default_actions": listener.get("DefaultActions", []),
        "tags": tags,
    }
    if listener.get("ListenerArn"):
        view["arn"] = listener["ListenerArn"]
    return view


def diff_view(listener: Optional[Dict[str, Any]], tags: Dict[str, str]) -> Dict[str, Any]:
    if listener is None:
        return {}
    https = listener.get("Protocol") == "HTTPS"
    return {
        "port": listener["Port"],
        "protocol": listener["Protocol"],
        "ssl_policy": listener.get("SslPolicy") if https else None,
        "certificate_arn": default_certificate(listener) if https else None,
        "default_actions": normalize_actions(listener.get("DefaultActions", [])),
        "tags": tags,
    }


def weights_by_name(listener: Dict[str, Any]) -> Optional[Dict[str, int]]:
    weights = forward_weights(listener.get("DefaultActions", []))
    return {target_group_name(arn): weight for arn, weight in weights.items()} if weights else None


# ---- Decisions ----


def desired_actions(client, want: Want) -> List[Dict[str, Any]]:
    """The default actions to write, target group names resolved to ARNs (fails on unknown ones)."""
    return resolve_actions(want.actions, resolve_target_group_arns(client, target_group_refs(want.actions)))


def create_params(load_balancer_arn: str, want: Want, actions: List[Dict[str, Any]]) -> Dict[str, Any]:
    params: Dict[str, Any] = {
        "LoadBalancerArn": load_balancer_arn,
        "Protocol": want.protocol,
        "Port": want.port,
        "DefaultActions": actions,
    }
    if want.https:
        params["Certificates"] = [{"CertificateArn": want.certificate_arn}]
        if want.ssl_policy:
            params["SslPolicy"] = want.ssl_policy
    if want.tags:
        params["Tags"] = ansible_dict_to_boto3_tag_list(want.tags)
    return params


def planned_listener(params: Dict[str, Any]) -> Dict[str, Any]:
    """What check mode reports for a listener it would create."""
    return {k: v for k, v in params.items() if k != "Tags"}


def listener_changes(current: Dict[str, Any], want: Want, actions: Optional[List[Dict[str, Any]]]) -> Dict[str, Any]:
    """The ModifyListener parameters that bring the listener in line; {} when it already is.

    ``actions`` None leaves the default actions alone (default_actions_on_create_only).
    """
    changes: Dict[str, Any] = {}
    if current["Protocol"] != want.protocol:
        changes["Protocol"] = want.protocol
    if want.https:
        # A listener turning HTTPS needs its certificate in the same call.
        if "Protocol" in changes or default_certificate(current) != want.certificate_arn:
            changes["Certificates"] = [{"CertificateArn": want.certificate_arn}]
        if want.ssl_policy and (current.get("SslPolicy") != want.ssl_policy or "Protocol" in changes):
            changes["SslPolicy"] = want.ssl_policy
    if actions is not None and normalize_actions(current.get("DefaultActions", [])) != actions:
        changes["DefaultActions"] = actions
    return changes


def tag_changes(current: Dict[str, str], want: Want) -> Tuple[Dict[str, str], List[str]]:
    if want.tags is None:
        return {}, []
    return compare_aws_tags(current, want.tags, purge_tags=want.purge_tags)


def apply_tags(module, client, arn: str, current: Dict[str, str], want: Want) -> Tuple[bool, Dict[str, str]]:
    to_set, to_unset = tag_changes(current, want)
    if not module.check_mode:
        if to_unset:
            remove_tags(client, arn, to_unset)
        if to_set:
            add_tags(client, arn, to_set)
    tags = {**{k: v for k, v in current.items() if k not in to_unset}, **to_set}
    return bool(to_set or to_unset), tags


def create(module, client, load_balancer_arn: str, want: Want) -> Dict[str, Any]:
    params = create_params(load_balancer_arn, want, desired_actions(client, want))
    listener = planned_listener(params) if module.check_mode else create_listener(client, **params)
    return result(True, None, {}, listener, dict(want.tags or {}))


def update(module, client, current: Dict[str, Any], want: Want) -> Dict[str, Any]:
    arn = current["ListenerArn"]
    actions = None if want.actions_on_create_only else desired_actions(client, want)
    changes = listener_changes(current, want, actions)
    listener = current
    if changes:
        listener = dict(current, **changes) if module.check_mode else modify_listener(client, arn, **changes)
    current_tags = get_tags(client, arn)
    tags_changed, tags = apply_tags(module, client, arn, current_tags, want)
    return result(bool(changes) or tags_changed, current, current_tags, listener, tags)


def planned_with_load_balancer(label: str, want: Want) -> Dict[str, Any]:
    """Check mode, load balancer not there yet (an earlier task of the same run would create it):
    the listener would be created with it, its target groups as given."""
    planned_arns = {
        ref: ref if ref.startswith("arn:") else f"arn:aws:elasticloadbalancing:::targetgroup/{ref}/planned"
        for ref in target_group_refs(want.actions)
    }
    listener = planned_listener(create_params(label, want, resolve_actions(want.actions, planned_arns)))
    output = result(True, None, {}, listener, dict(want.tags or {}))
    output["msg"] = f"Load balancer {label} does not exist yet; the listener would be created with it"
    return output


def ensure_present(module, client, load_balancer: Dict[str, Any], want: Want) -> Dict[str, Any]:
    current = find_listener(client, load_balancer["LoadBalancerArn"], want.port)
    if current is None:
        return create(module, client, load_balancer["LoadBalancerArn"], want)
    return update(module, client, current, want)


def ensure_absent(module, client, load_balancer: Optional[Dict[str, Any]], port: int) -> Dict[str, Any]:
    current = find_listener(client, load_balancer["LoadBalancerArn"], port) if load_balancer else None
    if current is None:
        return {"changed": False, "diff": {"before": {}, "after": {}}}
    before = diff_view(current, get_tags(client, current["ListenerArn"]))
    if not module.check_mode:
        delete_listener(client, current["ListenerArn"])
    return {"changed": True, "diff": {"before": before, "after": {}}}


def result(
    changed: bool,
    before: Optional[Dict[str, Any]],
    before_tags: Dict[str, str],
    after: Dict[str, Any],
    after_tags: Dict[str, str],
) -> Dict[str, Any]:
    output = {
        "changed": changed,
        "listener": listener_view(after, after_tags),
        "diff": {"before": diff_view(before, before_tags), "after": diff_view(after, after_tags)},
    }
    weights = weights_by_name(after)
    if weights is not None:
        output["weights"] = weights
    return output


def require_application_load_balancer(load_balancer: Optional[Dict[str, Any]], label: str) -> Dict[str, Any]:
    if load_balancer is None:
        raise AnsibleAWSError(message=f"Load balancer {label} not found")
    if load_balancer.get("Type", "application") != "application":
        raise AnsibleAWSError(
            message=f"Load balancer {label} is a {load_balancer['Type']} load balancer; "
            "elb_listener manages the HTTP and HTTPS listeners of Application Load Balancers"
        )
    return load_balancer


def main() -> None:
    argument_spec = dict(
        state=dict(type="str", choices=["present", "absent"], default="present"),
        load_balancer_arn=dict(type="str"),
        load_balancer_name=dict(type="str"),
        port=dict(type="int", required=True),
        protocol=dict(type="str", choices=["HTTP", "HTTPS"]),
        certificate_arn=dict(type="str"),
        ssl_policy=dict(type="str"),
        default_actions=dict(type="list", elements="dict"),
        default_actions_on_create_only=dict(type="bool", default=False),
        tags=dict(type="dict", aliases=["resource_tags"]),
        purge_tags=dict(type="bool", default=True),
    )
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_one_of=[["load_balancer_arn", "load_balancer_name"]],
        mutually_exclusive=[["load_balancer_arn", "load_balancer_name"]],
        required_if=[
            ["state", "present", ["protocol", "default_actions"]],
            ["protocol", "HTTPS", ["certificate_arn"]],
        ],
    )
    problems = check_params(module.params)
    if problems:
        module.fail_json(msg="; ".join(problems))
    want = want_from_params(module.params)
    label = module.params["load_balancer_arn"] or module.params["load_balancer_name"]

    client = module.client("elbv2", retry_decorator=ELBV2_RETRY)
    try:
        load_balancer = find_load_balancer(
            client, name=module.params["load_balancer_name"], arn=module.params["load_balancer_arn"]
        )
        if module.params["state"] == "absent":
            output = ensure_absent(module, client, load_balancer, want.port)
        elif load_balancer is None and module.check_mode:
            output = planned_with_load_balancer(label, want)
        else:
            output = ensure_present(module, client, require_application_load_balancer(load_balancer, label), want)
    except AnsibleAWSError as e:
        module.fail_json_aws_error(e)

    if not module._diff:
        output.pop("diff")
    module.exit_json(**output)


if __name__ == "__main__":
    main()
