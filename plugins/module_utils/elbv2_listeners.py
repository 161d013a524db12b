# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Reusable pieces for modules that manage the listeners of an Application Load Balancer.

Used by the ``elb_listener`` module and meant for the blue/green traffic switch. Three groups:

* AWS wrappers. Each takes an ``elbv2`` client made with
  ``module.client("elbv2", retry_decorator=ELBV2_RETRY)`` (the wrappers call it with ``aws_retry=True``)
  and raises ``AnsibleAWSError``. Look-ups return ``None`` (or ``{}``/``[]``) when the resource is missing.
* Pure functions on actions in the AWS API's shape (``DefaultActions`` of DescribeListeners):
  validation, normalisation, comparison and forward weights. They make no AWS call.
* Target group references: ``resolve_target_group_arns`` turns names or ARNs into ARNs.

A forward action is always written as ``ForwardConfig`` alone. AWS accepts ``TargetGroupArn`` alone only
for a single target group without weights or stickiness, and ``TargetGroupArn`` together with
``ForwardConfig`` only when both name the same single target group; ``ForwardConfig`` alone is valid for
one to five weighted target groups, so one form serves every case and compares like with like.

Setting weights, as the traffic switch does::

    listener = find_listener(client, lb_arn, 443)
    actions = listener["DefaultActions"]
    if forward_weights(actions) != wanted:  # {target group ARN: weight}
        modify_listener(client, listener["ListenerArn"], DefaultActions=with_forward_weights(actions, wanted))
"""

import copy
from typing import Any, Dict, Iterable, List, Mapping, Optional

from ansible_collections.amazon.aws.plugins.module_utils.botocore import paginated_query_with_retries
from ansible_collections.amazon.aws.plugins.module_utils.arn import parse_aws_arn
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict

Action = Dict[str, Any]

# ELBv2 answers "Throttling", which AWSRetry retries by default.
ELBV2_RETRY = AWSRetry.jittered_backoff(retries=10)

MIN_WEIGHT = 0
MAX_WEIGHT = 999
MAX_FORWARD_TARGET_GROUPS = 5
MAX_STICKINESS_SECONDS = 604800
ACTION_TYPES = ("forward", "redirect", "fixed-response")
ACTION_KEYS = {
    "forward": {"Type", "Order", "TargetGroupArn", "TargetGroupName", "ForwardConfig"},
    "redirect": {"Type", "Order", "RedirectConfig"},
    "fixed-response": {"Type", "Order", "FixedResponseConfig"},
}
FORWARD_CONFIG_KEYS = {"TargetGroups", "TargetGroupStickinessConfig"}
TARGET_GROUP_KEYS = {"TargetGroupArn", "TargetGroupName", "Weight"}
REDIRECT_STATUS_CODES = ("HTTP_301", "HTTP_302")
# What AWS stores (and describes) for the parts of a redirect that are left out.
REDIRECT_DEFAULTS = {
    "Protocol": "#{protocol}",
    "Port": "#{port}",
    "Host": "#{host}",
    "Path": "/#{path}",
    "Query": "#{query}",
}


class LoadBalancerErrorHandler(AWSErrorHandler):
    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code("LoadBalancerNotFound")


class ListenerErrorHandler(AWSErrorHandler):
    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code("ListenerNotFound")


class TargetGroupErrorHandler(AWSErrorHandler):
    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code("TargetGroupNotFound")


# ---- AWS wrappers ----


@LoadBalancerErrorHandler.list_error_handler("describe load balancer")
def find_load_balancer(client, name: Optional[str] = None, arn: Optional[str] = None) -> Optional[Dict[str, Any]]:
    """The load balancer with this ARN (or else this name); None when it does not exist."""
    params = {"LoadBalancerArns": [arn]} if arn else {"Names": [name]}
    found = client.describe_load_balancers(aws_retry=True, **params)["LoadBalancers"]
    return found[0] if found else None


@LoadBalancerErrorHandler.list_error_handler("describe listeners")
def find_listener(client, load_balancer_arn: str, port: int) -> Optional[Dict[str, Any]]:
    """The load balancer's listener on this port; None when there is none (or no load balancer)."""
    listeners = paginated_query_with_retries(
        client, "describe_listeners", ELBV2_RETRY, LoadBalancerArn=load_balancer_arn
    )["Listeners"]
    return next((listener for listener in listeners if listener["Port"] == port), None)


@ListenerErrorHandler.list_error_handler("describe listener")
def describe_listener(client, listener_arn: str) -> Optional[Dict[str, Any]]:
    found = client.describe_listeners(aws_retry=True, ListenerArns=[listener_arn])["Listeners"]
    return found[0] if found else None


@ListenerErrorHandler.common_error_handler("create listener")
def create_listener(client, **params) -> Dict[str, Any]:
    """CreateListener with these API parameters; returns the listener as AWS describes it."""
    return client.create_listener(aws_retry=True, **params)["Listeners"][0]


@ListenerErrorHandler.common_error_handler("modify listener")
def modify_listener(client, listener_arn: str, **params) -> Dict[str, Any]:
    """ModifyListener with these API parameters; returns the listener as AWS describes it."""
    return client.modify_listener(aws_retry=True, ListenerArn=listener_arn, **params)["Listeners"][0]


@ListenerErrorHandler.deletion_error_handler("delete listener")
def delete_listener(client, listener_arn: str) -> bool:
    """Delete the listener; False when it was already gone."""
    client.delete_listener(aws_retry=True, ListenerArn=listener_arn)
    return True


@ListenerErrorHandler.list_error_handler("describe listener tags", default_value={})
def get_tags(client, resource_arn: str) -> Dict[str, str]:
    descriptions = client.describe_tags(aws_retry=True, ResourceArns=[resource_arn])["TagDescriptions"]
    return boto3_tag_list_to_ansible_dict(descriptions[0]["Tags"]) if descriptions else {}


@ListenerErrorHandler.common_error_handler("tag listener")
def add_tags(client, resource_arn: str, tags: Mapping[str, str]) -> None:
    client.add_tags(aws_retry=True, ResourceArns=[resource_arn], Tags=ansible_dict_to_boto3_tag_list(tags))


@ListenerErrorHandler.common_error_handler("untag listener")
def remove_tags(client, resource_arn: str, keys: List[str]) -> None:
    client.remove_tags(aws_retry=True, ResourceArns=[resource_arn], TagKeys=keys)


@TargetGroupErrorHandler.list_error_handler("describe target group")
def find_target_group(client, name_or_arn: str) -> Optional[Dict[str, Any]]:
    """The target group with this name or ARN; None when it does not exist."""
    key = "TargetGroupArns" if is_arn(name_or_arn) else "Names"
    found = client.describe_target_groups(aws_retry=True, **{key: [name_or_arn]})["TargetGroups"]
    return found[0] if found else None


@TargetGroupErrorHandler.list_error_handler("describe target groups", default_value=None)
def describe_target_groups(client, key: str, refs: List[str]) -> Optional[List[Dict[str, Any]]]:
    """DescribeTargetGroups for several names (key "Names") or ARNs ("TargetGroupArns") in one call; None when
    any of them does not exist (AWS then refuses the whole call)."""
    return client.describe_target_groups(aws_retry=True, **{key: refs})["TargetGroups"]


def find_target_groups(client, refs: Iterable[str]) -> Dict[str, Dict[str, Any]]:
    """{name or ARN: target group} for every reference that exists: one call for the names and one for the
    ARNs, one call per reference only when some are missing."""
    unique = list(dict.fromkeys(refs))
    found: Dict[str, Dict[str, Any]] = {}
    for key, batch in (
        ("Names", [r for r in unique if not is_arn(r)]),
        ("TargetGroupArns", [r for r in unique if is_arn(r)]),
    ):
        if not batch:
            continue
        groups = describe_target_groups(client, key, batch)
        if groups is None:
            groups = [group for ref in batch for group in [find_target_group(client, ref)] if group is not None]
        for group in groups:
            arn = group["TargetGroupArn"]
            found[arn if key == "TargetGroupArns" else group.get("TargetGroupName") or target_group_name(arn)] = group
    return found


def resolve_target_group_arns(client, refs: Iterable[str]) -> Dict[str, str]:
    """Map each target group name or ARN to the ARN; raise AnsibleAWSError naming every one not found."""
    refs = list(dict.fromkeys(refs))
    found = find_target_groups(client, refs)
    missing = [ref for ref in refs if ref not in found]
    if missing:
        raise AnsibleAWSError(message=f"Target group(s) not found: {', '.join(missing)}")
    return {ref: found[ref]["TargetGroupArn"] for ref in refs}


@TargetGroupErrorHandler.common_error_handler("describe target health")
def describe_target_health(client, target_group_arn: str) -> List[Dict[str, Any]]:
    """The TargetHealthDescriptions of every target registered in the target group."""
    return client.describe_target_health(aws_retry=True, TargetGroupArn=target_group_arn)["TargetHealthDescriptions"]


@TargetGroupErrorHandler.list_error_handler("describe target health")
def find_target_health(client, target_group_arn: str) -> Optional[List[Dict[str, Any]]]:
    """As describe_target_health, but None when the target group does not exist (it may be deleted while a
    canary is watched)."""
    return client.describe_target_health(aws_retry=True, TargetGroupArn=target_group_arn)["TargetHealthDescriptions"]


def count_healthy_targets(descriptions: Iterable[Mapping[str, Any]]) -> int:
    """How many of the described targets are ``healthy`` (not initial, unhealthy, draining, unused...)."""
    return sum(1 for description in descriptions if (description.get("TargetHealth") or {}).get("State") == "healthy")


# ---- Target group references ----


def is_arn(value: str) -> bool:
    return value.startswith("arn:")


def target_group_name(arn: str) -> str:
    """The name inside a target group ARN (arn:...:targetgroup/NAME/ID); the value itself when it is not one."""
    parts = (parse_aws_arn(arn) or {}).get("resource", "").split("/") if is_arn(arn) else []
    return parts[1] if len(parts) == 3 and parts[0] == "targetgroup" else arn


def target_group_refs(actions: List[Action]) -> List[str]:
    """Every target group name or ARN the forward actions refer to, in order, once each."""
    refs: List[str] = []
    for action in actions:
        if action.get("Type") == "forward":
            refs.extend(_ref(group) for group in _forward_groups(action))
    return list(dict.fromkeys(refs))


def resolve_actions(actions: List[Action], arns: Mapping[str, str]) -> List[Action]:
    """The actions with every TargetGroupName replaced by its ARN from ``arns``, normalised."""
    return normalize_actions(_with_arns(action, arns) for action in actions)


def _with_arns(action: Action, arns: Mapping[str, str]) -> Action:
    if action.get("Type") != "forward":
        return action
    groups = [{"TargetGroupArn": arns[_ref(g)], "Weight": g.get("Weight")} for g in _forward_groups(action)]
    config = dict(action.get("ForwardConfig") or {}, TargetGroups=groups)
    resolved = {k: v for k, v in action.items() if k not in ("TargetGroupArn", "TargetGroupName", "ForwardConfig")}
    return dict(resolved, ForwardConfig=config)


def _ref(group: Mapping[str, Any]) -> str:
    return group.get("TargetGroupArn") or group.get("TargetGroupName") or ""


def _forward_groups(action: Action) -> List[Dict[str, Any]]:
    """The target group entries of a forward action, from ForwardConfig or else its TargetGroupArn/Name."""
    groups = (action.get("ForwardConfig") or {}).get("TargetGroups") or []
    if groups:
        return list(groups)
    for key in ("TargetGroupArn", "TargetGroupName"):
        if action.get(key):
            return [{key: action[key]}]
    return []


# ---- Validation (no AWS call) ----


def parse_weight(value: Any) -> Optional[int]:
    """The weight as an int when it is an integer (or a string of digits) in 0..999; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and MIN_WEIGHT <= value <= MAX_WEIGHT:
        return value
    return None


def validate_actions(actions: Any, field: str = "default_actions") -> List[str]:
    """Problems with listener default actions given in the API's shape (names allowed); [] when valid."""
    if not isinstance(actions, list) or not actions:
        return [f"{field} must be a list holding one action"]
    problems: List[str] = []
    for index, action in enumerate(actions):
        where = f"{field}[{index}]"
        if not isinstance(action, dict):
            problems.append(f"{where} must be a dict")
            continue
        kind = action.get("Type")
        if kind not in ACTION_TYPES:
            problems.append(f"{where}.Type must be one of {', '.join(ACTION_TYPES)}, not {kind!r}")
            continue
        unknown = sorted(set(action) - ACTION_KEYS[kind])
        if unknown:
            problems.append(f"{where} ({kind}) has unsupported keys: {', '.join(unknown)}")
        problems.extend(_ACTION_CHECKS[kind](action, where))
    if len(actions) > 1:
        problems.append(f"{field} must hold exactly one forward, redirect or fixed-response action")
    return problems


def _check_forward(action: Action, where: str) -> List[str]:
    config = action.get("ForwardConfig")
    if config is not None and not isinstance(config, dict):
        return [f"{where}.ForwardConfig must be a dict"]
    config = config or {}
    problems = [f"{where}.ForwardConfig has unsupported keys: {k}" for k in sorted(set(config) - FORWARD_CONFIG_KEYS)]
    groups = config.get("TargetGroups") or []
    if not isinstance(groups, list):
        return problems + [f"{where}.ForwardConfig.TargetGroups must be a list"]
    top = [k for k in ("TargetGroupArn", "TargetGroupName") if action.get(k)]
    if len(top) > 1:
        problems.append(f"{where}: give TargetGroupArn or TargetGroupName, not both")
    if not groups and not top:
        problems.append(f"{where}: a forward action needs at least one target group")
    if len(groups) > MAX_FORWARD_TARGET_GROUPS:
        problems.append(f"{where}: a forward action takes at most {MAX_FORWARD_TARGET_GROUPS} target groups")
    for position, group in enumerate(groups):
        problems.extend(_check_target_group(group, f"{where}.ForwardConfig.TargetGroups[{position}]"))
    refs = [_ref(g) for g in groups if isinstance(g, dict)]
    if len(set(refs)) != len(refs):
        problems.append(f"{where}: a target group appears more than once")
    if top and groups and (len(groups) != 1 or refs != [action[top[0]]]):
        problems.append(f"{where}: {top[0]} together with ForwardConfig must name its only target group")
    problems.extend(_check_stickiness(config.get("TargetGroupStickinessConfig"), f"{where}.ForwardConfig"))
    return problems


def _check_target_group(group: Any, where: str) -> List[str]:
    if not isinstance(group, dict):
        return [f"{where} must be a dict"]
    problems = [f"{where} has unsupported keys: {k}" for k in sorted(set(group) - TARGET_GROUP_KEYS)]
    if bool(group.get("TargetGroupArn")) == bool(group.get("TargetGroupName")):
        problems.append(f"{where} needs exactly one of TargetGroupArn and TargetGroupName")
    if "Weight" in group and parse_weight(group["Weight"]) is None:
        problems.append(f"{where}.Weight must be an integer from {MIN_WEIGHT} to {MAX_WEIGHT}, not {group['Weight']!r}")
    return problems


def _check_stickiness(stickiness: Any, where: str) -> List[str]:
    if stickiness is None:
        return []
    if not isinstance(stickiness, dict) or not isinstance(stickiness.get("Enabled"), bool):
        return [f"{where}.TargetGroupStickinessConfig must be a dict with a boolean Enabled"]
    seconds = stickiness.get("DurationSeconds")
    valid = isinstance(seconds, int) and not isinstance(seconds, bool) and 1 <= seconds <= MAX_STICKINESS_SECONDS
    if stickiness["Enabled"] and not valid:
        return [f"{where}.TargetGroupStickinessConfig.DurationSeconds must be 1 to {MAX_STICKINESS_SECONDS}"]
    return []


def _check_redirect(action: Action, where: str) -> List[str]:
    config = action.get("RedirectConfig")
    if not isinstance(config, dict) or config.get("StatusCode") not in REDIRECT_STATUS_CODES:
        return [f"{where}.RedirectConfig must be a dict with StatusCode {' or '.join(REDIRECT_STATUS_CODES)}"]
    return []


def _check_fixed_response(action: Action, where: str) -> List[str]:
    config = action.get("FixedResponseConfig")
    code = str(config.get("StatusCode", "")) if isinstance(config, dict) else ""
    if not (len(code) == 3 and code.isdigit() and code[0] in "245"):
        return [f"{where}.FixedResponseConfig must be a dict with a StatusCode 2XX, 4XX or 5XX"]
    return []


_ACTION_CHECKS = {"forward": _check_forward, "redirect": _check_redirect, "fixed-response": _check_fixed_response}


# ---- Normalisation and comparison (no AWS call) ----


def normalize_actions(actions: Iterable[Action]) -> List[Action]:
    """Actions in one canonical form, so that what AWS describes compares equal to what was written.

    Forward actions become ForwardConfig only, target groups sorted by ARN with a Weight (default 1),
    stickiness {"Enabled": False} unless enabled; redirects carry AWS's defaults; None values go; a single
    action loses its Order, several are sorted by it. Target groups must be given by ARN.
    """
    normalized = [_normalize_action(action) for action in actions]
    if len(normalized) == 1:
        normalized[0].pop("Order", None)
        return normalized
    positions = {id(action): index for index, action in enumerate(normalized)}
    return sorted(normalized, key=lambda a: (a.get("Order", positions[id(a)] + 1), positions[id(a)]))


def actions_equal(current: Iterable[Action], desired: Iterable[Action]) -> bool:
    return normalize_actions(current) == normalize_actions(desired)


def _normalize_action(action: Action) -> Action:
    kind = action.get("Type")
    result: Action = {"Type": kind}
    if action.get("Order") is not None:
        result["Order"] = int(action["Order"])
    if kind == "forward":
        result["ForwardConfig"] = _normalize_forward_config(action)
    elif kind == "redirect":
        config = dict(REDIRECT_DEFAULTS, **_scrub(action.get("RedirectConfig") or {}))
        result["RedirectConfig"] = {k: str(v) for k, v in config.items()}
    elif kind == "fixed-response":
        config = _scrub(action.get("FixedResponseConfig") or {})
        result["FixedResponseConfig"] = {k: str(v) for k, v in config.items()}
    else:
        result.update(_scrub({k: v for k, v in action.items() if k not in ("Type", "Order")}))
    return result


def _normalize_forward_config(action: Action) -> Dict[str, Any]:
    groups = [
        {"TargetGroupArn": group["TargetGroupArn"], "Weight": _weight_or_default(group.get("Weight"))}
        for group in _forward_groups(action)
    ]
    stickiness = (action.get("ForwardConfig") or {}).get("TargetGroupStickinessConfig")
    return {
        "TargetGroups": sorted(groups, key=lambda g: g["TargetGroupArn"]),
        "TargetGroupStickinessConfig": normalize_stickiness(stickiness),
    }


def normalize_stickiness(stickiness: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """A missing or disabled TargetGroupStickinessConfig is {"Enabled": False}, as AWS describes it."""
    if not stickiness or not stickiness.get("Enabled"):
        return {"Enabled": False}
    result: Dict[str, Any] = {"Enabled": True}
    if stickiness.get("DurationSeconds") is not None:
        result["DurationSeconds"] = int(stickiness["DurationSeconds"])
    return result


def _weight_or_default(value: Any) -> int:
    return 1 if value is None else int(value)


def _scrub(config: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in config.items() if v is not None}


# ---- Forward weights (no AWS call) ----


def find_forward_action(actions: Iterable[Action]) -> Optional[Action]:
    """The forward action among the actions (the last one, which is where a terminal action sits)."""
    forwards = [action for action in actions if action.get("Type") == "forward"]
    return forwards[-1] if forwards else None


def forward_weights(actions: Iterable[Action]) -> Dict[str, int]:
    """{target group ARN: weight} of the forward action; {} when the actions do not forward."""
    action = find_forward_action(actions)
    if action is None:
        return {}
    return {group["TargetGroupArn"]: _weight_or_default(group.get("Weight")) for group in _forward_groups(action)}


def build_forward_action(weights: Mapping[str, int], current: Optional[Action] = None) -> Action:
    """A forward action sending to {target group ARN: weight}, in the order given.

    Keeps the TargetGroupStickinessConfig and Order of ``current`` (the forward action it replaces), so
    changing weights never turns stickiness off.
    """
    if not weights:
        raise ValueError("a forward action needs at least one target group")
    for arn, weight in weights.items():
        if parse_weight(weight) is None:
            raise ValueError(f"weight of {arn} must be an integer from {MIN_WEIGHT} to {MAX_WEIGHT}, not {weight!r}")
    stickiness = ((current or {}).get("ForwardConfig") or {}).get("TargetGroupStickinessConfig")
    action: Action = {
        "Type": "forward",
        "ForwardConfig": {
            "TargetGroups": [{"TargetGroupArn": arn, "Weight": int(weight)} for arn, weight in weights.items()],
            "TargetGroupStickinessConfig": normalize_stickiness(stickiness),
        },
    }
    if (current or {}).get("Order") is not None:
        action["Order"] = current["Order"]
    return action


def with_forward_weights(actions: List[Action], weights: Mapping[str, int]) -> List[Action]:
    """The actions with their forward action rebuilt for these weights (see build_forward_action).

    Raises ValueError when the actions do not forward.
    """
    current = find_forward_action(actions)
    if current is None:
        raise ValueError("the actions do not forward to target groups")
    return normalize_actions(
        [build_forward_action(weights, current) if action is current else action for action in actions]
    )
