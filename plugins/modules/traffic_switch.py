#!/usr/bin/python

# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Ansible modules import below DOCUMENTATION, EXAMPLES and RETURN.
# ruff: noqa: E402

DOCUMENTATION = r"""
---
module: traffic_switch
version_added: 0.1.0
short_description: Switch the traffic of a blue/green Application Load Balancer listener between colours
description:
  - Sets the weights of the target groups an Application Load Balancer (ALB) listener forwards to, by colour
    (such as V(blue) and V(green)) - all traffic to one colour with O(color), or a split such as a canary with
    O(weights).
  - Only the weights of the listener's forward default action change. Its target group stickiness
    (C(TargetGroupStickinessConfig)), its order, the other default actions, the listener's rules, protocol,
    certificates and tags are left as they are. The forward action is always written as C(ForwardConfig).
  - "A health gate guards the switch: every colour that would receive traffic (weight above 0) must have at
    least O(min_healthy) healthy targets in its target group and, when O(services) names its ECS service, at
    least that service's desired count, which must not be 0. Otherwise the switch is refused: the task fails
    with a message naming the colour, its healthy and required counts, and nothing is changed.
    O(force=true) overrides the gate."
  - The gate applies to the final state, so it also refuses to leave (or keep) some traffic on a colour that
    fails it; to drain a failing colour send all traffic to the other one with O(color).
  - When the listener already forwards as asked nothing is written, and the health gate is not evaluated
    (a colour that already has all the traffic is never refused by a re-run).
author:
  - ecs_production.platform contributors (@ecs-production)
options:
  listener_arn:
    description:
      - ARN of the listener.
      - Exactly one of O(listener_arn) and O(load_balancer_name) (with O(port)) is required.
    type: str
  load_balancer_name:
    description:
      - Name of the load balancer whose listener on O(port) is switched.
    type: str
  port:
    description:
      - Port of the listener on O(load_balancer_name); required with it.
    type: int
  target_groups:
    description:
      - "The target group of each colour, by name or ARN, such as C({blue: prod-blue, green: prod-green})."
      - One to five colours, each with its own target group.
      - The listener's forward action is written with every one of these target groups (a colour without
        traffic at weight 0). It may forward to other target groups only at weight 0; they are kept at 0.
    type: dict
    required: true
  color:
    description:
      - Send all traffic to this colour, a key of O(target_groups); every other colour gets weight 0.
      - Exactly one of O(color) and O(weights) is required.
    type: str
    aliases: [colour]
  weights:
    description:
      - "The percentage of traffic each colour gets, such as C({blue: 90, green: 10})."
      - Keys are colours of O(target_groups) (a colour left out gets 0); values are integers from 0 to 100
        (or strings of digits, as templating may give), which must add up to exactly 100.
    type: dict
  min_healthy:
    description:
      - The least number of healthy targets a colour needs to receive traffic.
      - Counted with C(DescribeTargetHealth) on the colour's target group; only targets in the C(healthy)
        state count.
    type: int
    default: 1
  services:
    description:
      - "The ECS service that runs each colour, as C({cluster: CLUSTER, service: SERVICE}) or as the string
        C(CLUSTER/SERVICE) (names or ARNs)."
      - A colour with a service needs at least the service's desired count of healthy targets (or
        O(min_healthy), if higher) to receive traffic, and a colour whose service wants no task (desired count 0)
        is refused. A service that does not exist (or is inactive) is an error.
      - Keys are colours of O(target_groups); colours left out are checked against O(min_healthy) only.
    type: dict
  force:
    description:
      - Switch even when the health gate fails (a warning says which colour failed it).
    type: bool
    default: false
  record:
    description:
      - "Where this switch comes from and where it goes, C({from: COLOUR, to: COLOUR}), kept as the tags
        C(BlueGreenFrom) and C(BlueGreenTo) of the listener, so that a rollback can find where the last swap
        came from (M(ecs_production.platform.bluegreen_info) returns them as its C(state.last_swap))."
      - Written just before the weights, and only when they change and the health gate passed; a refused or
        unneeded switch leaves the record as it was.
    type: dict
    version_added: 0.1.0
  wait_healthy_timeout:
    description:
      - How many seconds to wait for the health gate to pass (it is checked again every 5 seconds) before
        refusing the switch. V(0) checks once.
      - The wait happens in check mode too, so that check mode predicts the real run.
    type: int
    default: 0
notes:
  - Requires the IAM permissions C(elasticloadbalancing:DescribeLoadBalancers), C(DescribeListeners),
    C(DescribeTargetGroups), C(DescribeTargetHealth) and C(ModifyListener), with O(record)
    C(elasticloadbalancing:AddTags), and with O(services) C(ecs:DescribeServices).
  - Every option is checked before any AWS call; bad weights or colours fail without reaching AWS.
  - "The listener is written only when a colour's weight differs from the one asked for. Weights are compared
    as they are: a listener that forwards to blue alone with the implicit weight 1 is rewritten as
    C(blue: 100, green: 0) by O(color=blue)."
  - Supports check mode (the listener is read and the health gate applied, nothing is written) and diff mode
    (the weights by colour before and after).
  - API calls are retried on throttling.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Send all traffic to green once its service is healthy
  ecs_production.platform.traffic_switch:
    load_balancer_name: ecs-prod
    port: 443
    target_groups:
      blue: ecs-prod-blue
      green: ecs-prod-green
    color: green
    services:
      blue: ecs-prod/items-blue
      green:
        cluster: ecs-prod
        service: items-green
    wait_healthy_timeout: 300
  register: switch

- name: Swap to green, recording where it came from (for a rollback)
  ecs_production.platform.traffic_switch:
    load_balancer_name: ecs-prod
    port: 443
    target_groups:
      blue: ecs-prod-blue
      green: ecs-prod-green
    color: green
    record:
      from: blue
      to: green

- name: Canary - 10 % of the traffic to green
  ecs_production.platform.traffic_switch:
    listener_arn: "{{ listener_arn }}"
    target_groups:
      blue: ecs-prod-blue
      green: ecs-prod-green
    weights:
      blue: 90
      green: 10

- name: Roll back to blue whatever green's health
  ecs_production.platform.traffic_switch:
    load_balancer_name: ecs-prod
    port: 443
    target_groups:
      blue: ecs-prod-blue
      green: ecs-prod-green
    color: blue
    force: true

- name: Which colour serves now (check mode writes nothing)
  ecs_production.platform.traffic_switch:
    load_balancer_name: ecs-prod
    port: 443
    target_groups:
      blue: ecs-prod-blue
      green: ecs-prod-green
    color: blue
  check_mode: true
  register: current
"""

RETURN = r"""
listener_arn:
  description: ARN of the listener.
  returned: always
  type: str
  sample: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/ecs-prod/0123456789abcdef/fedcba98
before:
  description: The weight of each colour before the switch (0 for a colour the listener did not forward to).
  returned: always
  type: dict
  sample: {blue: 100, green: 0}
after:
  description:
    - The weight of each colour after the switch, as AWS describes the listener after writing it.
    - In check mode, the weights the switch would write.
  returned: always
  type: dict
  sample: {blue: 0, green: 100}
target_group_weights:
  description: The weight of each target group of the forward action, by target group name.
  returned: always
  type: dict
  contains:
    before:
      description: Before the switch.
      type: dict
      sample: {ecs-prod-blue: 100, ecs-prod-green: 0}
    after:
      description: After the switch.
      type: dict
      sample: {ecs-prod-blue: 0, ecs-prod-green: 100}
active_color:
  description:
    - The colour that gets the traffic after the switch - the only colour with a weight above 0, else the
      colour with the highest weight, else V(mixed) when several share the highest weight.
  returned: always
  type: str
  sample: green
health:
  description:
    - The health gate's view of each colour that would receive traffic.
    - Empty when nothing needed to change (the gate is not evaluated then).
  returned: always
  type: dict
  sample:
    green:
      target_group: ecs-prod-green
      healthy: 2
      required: 2
      desired: 2
      service: ecs-prod/items-green
      passed: true
  contains:
    target_group:
      description: Name of the colour's target group.
      type: str
    healthy:
      description: Targets in the C(healthy) state in the colour's target group.
      type: int
    required:
      description: Healthy targets the colour needs, the higher of O(min_healthy) and RV(health.desired).
      type: int
    desired:
      description: Desired count of the colour's ECS service; V(null) without one in O(services).
      type: int
    service:
      description: The colour's ECS service as C(CLUSTER/SERVICE); V(null) without one.
      type: str
    passed:
      description: Whether the colour passed the gate.
      type: bool
record:
  description: The record written on the listener, C({from, to}); null when none was written.
  returned: always
  type: dict
  sample: {from: blue, to: green}
msg:
  description: What was done, or why the switch was refused.
  returned: always
  type: str
  sample: "Switched the listener from all traffic to blue to all traffic to green"
"""

import time
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.ecs_production.platform.plugins.module_utils.bluegreen import RECORD_FROM
from ansible_collections.ecs_production.platform.plugins.module_utils.bluegreen import RECORD_TO
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import ELBV2_RETRY
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import add_tags
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import MAX_FORWARD_TARGET_GROUPS
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import count_healthy_targets
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import describe_listener
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import describe_target_health
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import find_forward_action
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import find_listener
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import find_load_balancer
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import forward_weights
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import is_arn
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import modify_listener
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import resolve_target_group_arns
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import target_group_name
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import with_forward_weights
from ansible_collections.ecs_production.platform.plugins.module_utils.common import Refused

# ECS answers "ThrottlingException", which AWSRetry does not retry by default.
ECS_RETRY = AWSRetry.jittered_backoff(retries=10, catch_extra_error_codes=["ThrottlingException"])

TOTAL_WEIGHT = 100
MIN_PORT = 1
MAX_PORT = 65535
WAIT_DELAY = 5
MIXED = "mixed"
NONE = "none"


class ServiceRef(NamedTuple):
    cluster: str
    service: str

    @property
    def label(self) -> str:
        return f"{self.cluster}/{self.service}"


class Request(NamedTuple):
    """The switch the task asks for, validated."""

    target_groups: Dict[str, str]  # colour -> target group name or ARN
    weights: Dict[str, int]  # colour -> weight, every colour of target_groups
    services: Dict[str, ServiceRef]
    min_healthy: int
    force: bool
    wait_timeout: int
    record: Optional[Dict[str, str]] = None


class Health(NamedTuple):
    """What the health gate found for one colour."""

    target_group: str
    healthy: int
    required: int
    desired: Optional[int] = None
    service: Optional[str] = None

    @property
    def passed(self) -> bool:
        return self.desired != 0 and self.healthy >= self.required

    def view(self) -> Dict[str, Any]:
        return dict(self._asdict(), passed=self.passed)

    def problem(self, color: str) -> str:
        found = f"{color} has {self.healthy} healthy target(s) in {self.target_group}"
        if self.desired == 0:
            return f"{found}, but its service {self.service} has a desired count of 0"
        wanted = f", {self.required} required"
        if self.service is not None:
            wanted += f" (its service {self.service} desires {self.desired})"
        return found + wanted


class ServiceErrorHandler(AWSErrorHandler):
    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code(["ClusterNotFoundException", "ServiceNotFoundException"])


# ---- Input (no AWS call) ----


def parse_percent(value: Any) -> Optional[int]:
    """The weight as an int when it is an integer (or a string of digits) from 0 to 100; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and 0 <= value <= TOTAL_WEIGHT:
        return value
    return None


def parse_service(value: Any) -> Optional[ServiceRef]:
    """A service given as {cluster, service} or "cluster/service" (split at the last slash); None if invalid."""
    if isinstance(value, str):
        cluster, _slash, service = value.strip().rpartition("/")
    elif isinstance(value, Mapping) and set(value) == {"cluster", "service"}:
        cluster, service = value["cluster"], value["service"]
    else:
        return None
    if not all(isinstance(part, str) and part.strip() for part in (cluster, service)):
        return None
    return ServiceRef(cluster.strip(), service.strip())


def check_params(params: Mapping[str, Any]) -> List[str]:
    """Problems with the options that AnsibleModule's own checks do not catch; found before any AWS call."""
    problems = []
    listener_arn = params.get("listener_arn")
    if listener_arn is not None and not (is_arn(listener_arn) and ":listener/" in listener_arn):
        problems.append(f"listener_arn must be the ARN of a listener, not {listener_arn!r}")
    port = params.get("port")
    if port is not None and not MIN_PORT <= port <= MAX_PORT:
        problems.append(f"port must be from {MIN_PORT} to {MAX_PORT}, not {port}")
    target_groups = params.get("target_groups") or {}
    problems.extend(_check_target_groups(target_groups))
    color = params.get("color")
    if color is not None and target_groups and color not in target_groups:
        problems.append(f"color {color!r} is not a colour of target_groups ({', '.join(target_groups)})")
    problems.extend(_check_weights(params.get("weights"), target_groups))
    problems.extend(_check_services(params.get("services"), target_groups))
    problems.extend(_check_record(params.get("record"), target_groups))
    if params.get("min_healthy", 1) < 1:
        problems.append(f"min_healthy must be at least 1, not {params['min_healthy']} (force=true skips the gate)")
    if params.get("wait_healthy_timeout", 0) < 0:
        problems.append(f"wait_healthy_timeout must be 0 or more seconds, not {params['wait_healthy_timeout']}")
    return problems


def _check_target_groups(target_groups: Mapping[str, Any]) -> List[str]:
    if not target_groups:
        return ["target_groups must name the target group of at least one colour"]
    problems = []
    if len(target_groups) > MAX_FORWARD_TARGET_GROUPS:
        problems.append(f"target_groups takes at most {MAX_FORWARD_TARGET_GROUPS} colours, not {len(target_groups)}")
    for color, ref in target_groups.items():
        if not isinstance(ref, str) or not ref.strip():
            problems.append(f"target_groups.{color} must be a target group name or ARN, not {ref!r}")
    refs = [ref.strip() for ref in target_groups.values() if isinstance(ref, str)]
    duplicates = sorted({ref for ref in refs if ref and refs.count(ref) > 1})
    if duplicates:
        problems.append(f"each colour needs its own target group; given more than once: {', '.join(duplicates)}")
    return problems


def _check_services(services: Optional[Mapping[str, Any]], target_groups: Mapping[str, Any]) -> List[str]:
    problems = []
    for color, value in (services or {}).items():
        if target_groups and color not in target_groups:
            problems.append(f"services: {color!r} is not a colour of target_groups ({', '.join(target_groups)})")
        if parse_service(value) is None:
            problems.append(f"services.{color} must be CLUSTER/SERVICE or a dict with cluster and service")
    return problems


def _check_record(record: Optional[Mapping[str, Any]], target_groups: Mapping[str, Any]) -> List[str]:
    if record is None:
        return []
    if set(record) != {"from", "to"}:
        return [f"record must be {{from: COLOUR, to: COLOUR}}, not {dict(record)!r}"]
    problems = [
        f"record.{key} {record[key]!r} is not a colour of target_groups ({', '.join(target_groups)})"
        for key in ("from", "to")
        if target_groups and record[key] not in target_groups
    ]
    if record["from"] == record["to"]:
        problems.append(f"record.from and record.to must differ (both are {record['to']!r})")
    return problems


def _check_weights(weights: Optional[Mapping[str, Any]], target_groups: Mapping[str, Any]) -> List[str]:
    if weights is None:
        return []
    problems = []
    unknown = [color for color in weights if color not in target_groups]
    if unknown and target_groups:
        problems.append(
            f"weights: {', '.join(map(repr, unknown))} not colour(s) of target_groups ({', '.join(target_groups)})"
        )
    parsed = {color: parse_percent(value) for color, value in weights.items()}
    for color, value in weights.items():
        if parsed[color] is None:
            problems.append(f"weights.{color} must be an integer from 0 to {TOTAL_WEIGHT}, not {value!r}")
    if all(value is not None for value in parsed.values()):
        total = sum(parsed.values())
        if total != TOTAL_WEIGHT:
            problems.append(f"weights must add up to {TOTAL_WEIGHT}, not {total}")
    return problems


def desired_weights(target_groups: Mapping[str, str], color: Optional[str], weights: Optional[Mapping[str, Any]]):
    """The weight of every colour, in the order of target_groups: 100 for ``color``, or ``weights`` (else 0)."""
    if color is not None:
        return {c: TOTAL_WEIGHT if c == color else 0 for c in target_groups}
    return {c: parse_percent((weights or {}).get(c, 0)) for c in target_groups}


def request_from_params(params: Mapping[str, Any]) -> Request:
    """The validated request; call only when check_params found no problem."""
    target_groups = {color: ref.strip() for color, ref in params["target_groups"].items()}
    return Request(
        target_groups=target_groups,
        weights=desired_weights(target_groups, params.get("color"), params.get("weights")),
        services={color: parse_service(value) for color, value in (params.get("services") or {}).items()},
        min_healthy=params.get("min_healthy", 1),
        force=params.get("force", False),
        wait_timeout=params.get("wait_healthy_timeout", 0),
        record=dict(params["record"]) if params.get("record") else None,
    )


# ---- Decisions (no AWS call) ----


def active_color(weights: Mapping[str, int]) -> str:
    """The only colour with traffic, else the one with the highest weight, else "mixed" ("none" without any)."""
    top = max(weights.values(), default=0)
    if top <= 0:
        return NONE
    leaders = [color for color, weight in weights.items() if weight == top]
    return leaders[0] if len(leaders) == 1 else MIXED


def describe_weights(weights: Mapping[str, int]) -> str:
    with_traffic = [color for color, weight in weights.items() if weight > 0]
    if len(with_traffic) == 1:
        return f"all traffic to {with_traffic[0]}"
    return "weights " + ", ".join(f"{color} {weight}" for color, weight in weights.items())


def required_healthy(min_healthy: int, desired: Optional[int]) -> int:
    return max(min_healthy, desired or 0)


def gated_colors(weights: Mapping[str, int]) -> List[str]:
    """The colours the health gate judges: every one that would receive traffic."""
    return [color for color, weight in weights.items() if weight > 0]


def gate_problems(health: Mapping[str, Health]) -> List[str]:
    return [state.problem(color) for color, state in health.items() if not state.passed]


def forward_plan(listener: Mapping[str, Any], arns: Mapping[str, str]) -> Tuple[Dict[str, int], Dict[str, int]]:
    """The listener's weight of each colour (0 when it does not forward to it) and of the other target groups
    it forwards to. Refuses a listener without a forward action, or one sending traffic to another target group.
    """
    label = listener.get("ListenerArn", "")
    actions = listener.get("DefaultActions") or []
    if find_forward_action(actions) is None:
        kinds = ", ".join(str(action.get("Type")) for action in actions) or "missing"
        raise Refused(
            f"The default action of listener {label} is {kinds}, not a forward to target groups; "
            "traffic_switch only changes the weights of a forward action. Nothing was changed."
        )
    current = forward_weights(actions)
    by_color = {color: current.get(arn, 0) for color, arn in arns.items()}
    others = {arn: weight for arn, weight in current.items() if arn not in arns.values()}
    busy = {arn: weight for arn, weight in others.items() if weight > 0}
    if busy:
        named = ", ".join(f"{target_group_name(arn)} (weight {weight})" for arn, weight in busy.items())
        raise Refused(
            f"Listener {label} also forwards to {named}, which is not in target_groups; add it as a colour, "
            "or set its weight to 0 first. Nothing was changed."
        )
    if len(arns) + len(others) > MAX_FORWARD_TARGET_GROUPS:
        raise Refused(
            f"Listener {label} forwards to {len(others)} other target group(s) at weight 0; with the "
            f"{len(arns)} colours that is more than the {MAX_FORWARD_TARGET_GROUPS} a forward action takes."
        )
    return by_color, others


def arn_weights(arns: Mapping[str, str], weights: Mapping[str, int], others: Mapping[str, int]) -> Dict[str, int]:
    """{target group ARN: weight} to write: the colours' weights, then the other target groups kept at 0."""
    result = {arns[color]: weights[color] for color in arns}
    result.update(dict.fromkeys(others, 0))
    return result


def weights_by_name(weights: Mapping[str, int]) -> Dict[str, int]:
    return {target_group_name(arn): weight for arn, weight in weights.items()}


# ---- AWS ----


@ServiceErrorHandler.list_error_handler("describe ECS service")
def find_service(client, ref: ServiceRef) -> Optional[Dict[str, Any]]:
    """The ECS service, None when it does not exist or is inactive."""
    found = client.describe_services(aws_retry=True, cluster=ref.cluster, services=[ref.service])["services"]
    active = [service for service in found if service.get("status") != "INACTIVE"]
    return active[0] if active else None


def locate_listener(client, params: Mapping[str, Any]) -> Dict[str, Any]:
    if params.get("listener_arn"):
        listener = describe_listener(client, params["listener_arn"])
        if listener is None:
            raise Refused(f"Listener {params['listener_arn']} not found")
        return listener
    name, port = params["load_balancer_name"], params["port"]
    load_balancer = find_load_balancer(client, name=name)
    if load_balancer is None:
        raise Refused(f"Load balancer {name} not found")
    listener = find_listener(client, load_balancer["LoadBalancerArn"], port)
    if listener is None:
        raise Refused(f"Load balancer {name} has no listener on port {port}")
    return listener


def resolve_colors(client, target_groups: Mapping[str, str]) -> Dict[str, str]:
    """{colour: target group ARN}; fails on a missing target group or two colours sharing one."""
    resolved = resolve_target_group_arns(client, target_groups.values())
    arns = {color: resolved[ref] for color, ref in target_groups.items()}
    shared = {arn for arn in arns.values() if list(arns.values()).count(arn) > 1}
    if shared:
        colors = [color for color, arn in arns.items() if arn in shared]
        raise Refused(f"Colours {', '.join(colors)} name the same target group; each needs its own")
    return arns


class Gate:
    """Reads the health of the colours the switch would send traffic to."""

    def __init__(self, module, elbv2, request: Request, arns: Mapping[str, str]):
        self.module = module
        self.elbv2 = elbv2
        self.request = request
        self.arns = arns
        self._ecs = None

    @property
    def ecs(self):
        if self._ecs is None:
            self._ecs = self.module.client("ecs", retry_decorator=ECS_RETRY)
        return self._ecs

    def desired_count(self, color: str) -> Optional[int]:
        ref = self.request.services.get(color)
        if ref is None:
            return None
        service = find_service(self.ecs, ref)
        if service is None:
            raise Refused(f"ECS service {ref.label} of {color} not found. Nothing was changed.")
        return int(service.get("desiredCount", 0))

    def read(self, colors: List[str]) -> Dict[str, Health]:
        health = {}
        for color in colors:
            desired = self.desired_count(color)
            ref = self.request.services.get(color)
            health[color] = Health(
                target_group=target_group_name(self.arns[color]),
                healthy=count_healthy_targets(describe_target_health(self.elbv2, self.arns[color])),
                required=required_healthy(self.request.min_healthy, desired),
                desired=desired,
                service=ref.label if ref else None,
            )
        return health

    def wait(self, colors: List[str]) -> Dict[str, Health]:
        """The health once every colour passes, or when wait_timeout runs out (at once with force)."""
        deadline = time.monotonic() + (0 if self.request.force else self.request.wait_timeout)
        while True:
            health = self.read(colors)
            remaining = deadline - time.monotonic()
            if not gate_problems(health) or remaining <= 0:
                return health
            time.sleep(min(WAIT_DELAY, remaining))


def switch(module, client, request: Request) -> Dict[str, Any]:
    listener = locate_listener(client, module.params)
    listener_arn = listener["ListenerArn"]
    arns = resolve_colors(client, request.target_groups)
    before, others = forward_plan(listener, arns)
    before_by_arn = forward_weights(listener.get("DefaultActions") or [])
    output: Dict[str, Any] = {
        "listener_arn": listener_arn,
        "before": before,
        "target_group_weights": {"before": weights_by_name(before_by_arn)},
        "health": {},
        "record": None,
        "diff": {"before": dict(before), "after": dict(request.weights)},
    }

    if before == request.weights:
        output["msg"] = f"The listener already sends {describe_weights(before)}"
        return finish(output, False, before, before_by_arn)

    health = Gate(module, client, request, arns).wait(gated_colors(request.weights))
    output["health"] = {color: state.view() for color, state in health.items()}
    problems = gate_problems(health)
    if problems and not request.force:
        failing = ", ".join(color for color, state in health.items() if not state.passed)
        waited = f" (after waiting {request.wait_timeout}s)" if request.wait_timeout else ""
        raise Refused(
            f"Refused to send traffic to {failing}{waited}: {'; '.join(problems)}. "
            "Nothing was changed (force=true overrides the health gate).",
            **finish(output, False, before, before_by_arn),
        )
    for problem in problems:
        module.warn(f"force=true: switching although {problem}")

    wanted = arn_weights(arns, request.weights, others)
    if request.record:
        output["record"] = dict(request.record)
        if not module.check_mode:
            add_tags(client, listener_arn, {RECORD_FROM: request.record["from"], RECORD_TO: request.record["to"]})
    if module.check_mode:
        after, after_by_arn = dict(request.weights), wanted
    else:
        actions = with_forward_weights(listener.get("DefaultActions") or [], wanted)
        written = modify_listener(client, listener_arn, DefaultActions=actions)
        after_by_arn = forward_weights(written.get("DefaultActions") or [])
        after = {color: after_by_arn.get(arn, 0) for color, arn in arns.items()}
    verb = "Would switch" if module.check_mode else "Switched"
    output["msg"] = f"{verb} the listener from {describe_weights(before)} to {describe_weights(after)}"
    output["diff"]["after"] = dict(after)
    return finish(output, True, after, after_by_arn)


def finish(output: Dict[str, Any], changed: bool, after: Dict[str, int], after_by_arn: Dict[str, int]):
    output = dict(output, changed=changed, after=after, active_color=active_color(after))
    output["target_group_weights"] = dict(output["target_group_weights"], after=weights_by_name(after_by_arn))
    return output


def main() -> None:
    argument_spec = dict(
        listener_arn=dict(type="str"),
        load_balancer_name=dict(type="str"),
        port=dict(type="int"),
        target_groups=dict(type="dict", required=True),
        color=dict(type="str", aliases=["colour"]),
        weights=dict(type="dict"),
        min_healthy=dict(type="int", default=1),
        services=dict(type="dict"),
        force=dict(type="bool", default=False),
        wait_healthy_timeout=dict(type="int", default=0),
        record=dict(type="dict"),
    )
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_one_of=[["listener_arn", "load_balancer_name"], ["color", "weights"]],
        mutually_exclusive=[["listener_arn", "load_balancer_name"], ["listener_arn", "port"], ["color", "weights"]],
        required_together=[["load_balancer_name", "port"]],
    )
    problems = check_params(module.params)
    if problems:
        module.fail_json(msg=f"{'; '.join(problems)}. No AWS call was made.")
    request = request_from_params(module.params)

    client = module.client("elbv2", retry_decorator=ELBV2_RETRY)
    try:
        output = switch(module, client, request)
    except Refused as e:
        result = dict(e.result)
        result.pop("diff", None)
        module.fail_json(msg=e.message, **dict(result, changed=False))
    except AnsibleAWSError as e:
        module.fail_json_aws_error(e)

    if not module._diff:
        output.pop("diff")
    module.exit_json(**output)


if __name__ == "__main__":
    main()
