#!/usr/bin/python

# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Ansible modules import below DOCUMENTATION, EXAMPLES and RETURN.
# ruff: noqa: E402

DOCUMENTATION = r"""
---
module: ecs_service_scaling
version_added: 0.1.0
short_description: Target-tracking autoscaling of ECS services, with each service's scaling active or suspended
description:
  - Registers each ECS service listed as an Application Auto Scaling scalable target (dimension
    C(ecs:service:DesiredCount)) with its minimum and maximum capacity and its suspended state, and gives it
    target-tracking policies on the requests each target of its target group receives (C(ALBRequestCountPerTarget))
    and on the service's average CPU (C(ECSServiceAverageCPUUtilization)).
  - Made for blue/green services. The colour that serves the traffic scales (I(suspended=false)); the idle colour's
    scaling is suspended and its minimum is 0 (I(suspended=true)), so that the scaler neither scales it in while a
    deploy sizes it nor scales it out on a load it does not take. Leaving I(suspended) out keeps what the target has,
    which is how a provision run leaves the blue/green state alone.
  - Reads every target with one C(DescribeScalableTargets) call and the policies with C(DescribeScalingPolicies),
    compares locally, and writes only what differs. Never changes a service's desired count itself; Application
    Auto Scaling does, inside the capacity range.
  - M(community.aws.application_autoscaling_policy) manages one policy and its target per call and cannot suspend
    scaling.
author:
  - ecs_production.platform contributors (@ecs-production)
options:
  cluster:
    description: The ECS cluster's name.
    type: str
    required: true
  services:
    description: The services to scale, each with what differs between them.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The service's name.
        type: str
        required: true
      target_group_arn:
        description:
          - The ARN of the service's target group, whose requests per target the request policy tracks.
          - Required when I(requests_per_target) is above 0.
        type: str
      suspended:
        description:
          - C(true) suspends the target's dynamic and scheduled scaling and makes its minimum 0 (an idle colour);
            C(false) resumes it with the minimum I(min_capacity) (the colour that serves the traffic).
          - Left out, the target keeps its suspended state (a new target is not suspended).
        type: bool
      initially_suspended:
        description:
          - Whether a target registered for the first time with I(suspended) left out starts suspended (an idle colour).
        type: bool
        default: false
      min_capacity:
        description:
          - This service's minimum instead of the one its suspended state gives, for example the count the other
            colour runs while the traffic moves to this one.
          - Application Auto Scaling brings a service whose desired count is below a new minimum up to it.
          - Above I(max_capacity), I(max_capacity).
        type: int
  min_capacity:
    description: The minimum number of tasks of a service whose scaling is not suspended.
    type: int
    default: 1
  max_capacity:
    description: The maximum number of tasks of every service listed.
    type: int
    default: 4
  load_balancer_arn:
    description:
      - The ARN of the load balancer in front of the target groups.
      - Required when I(requests_per_target) is above 0.
    type: str
  requests_per_target:
    description:
      - The requests per minute each target should receive (C(ALBRequestCountPerTarget)); 0 for no request policy.
    type: int
    default: 0
  cpu_utilization:
    description:
      - The average CPU of the service's tasks to keep, in percent (C(ECSServiceAverageCPUUtilization)).
      - 0 for no CPU policy.
    type: float
    default: 0
  scale_out_cooldown:
    description: Seconds after a scale-out before another scale-out.
    type: int
    default: 60
  scale_in_cooldown:
    description: Seconds after a scaling activity before a scale-in.
    type: int
    default: 300
  manage_policies:
    description:
      - Whether the policies are read and written too. C(false) sets only the targets (their capacity and suspended
        state) with one read, as a blue/green deploy or swap does, and needs no permission on the policies or the
        alarms behind them.
    type: bool
    default: true
  state:
    description:
      - C(present) registers the targets and policies; C(absent) deletes this module's policies and deregisters the
        targets (a deleted ECS service keeps its scalable target until it is deregistered).
    type: str
    choices: [present, absent]
    default: present
notes:
  - The policies are named C(requests-per-target) and C(cpu-utilization); other policies of the targets are left alone.
  - Supports check mode and diff mode (each service's target and policies before and after).
  - API calls are retried on throttling and on C(ConcurrentUpdateException).
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Blue serves the traffic and scales between 2 and 10 tasks; green is idle
  ecs_production.platform.ecs_service_scaling:
    cluster: prod
    load_balancer_arn: "{{ alb__output.arn }}"
    services:
      - name: prod-blue
        target_group_arn: "{{ alb__output.target_groups.blue }}"
        suspended: false
      - name: prod-green
        target_group_arn: "{{ alb__output.target_groups.green }}"
        suspended: true
    min_capacity: 2
    max_capacity: 10
    requests_per_target: 1000
    cpu_utilization: 60

- name: Before the traffic moves to green, green scales and keeps at least what blue runs
  ecs_production.platform.ecs_service_scaling:
    cluster: prod
    load_balancer_arn: "{{ alb__output.arn }}"
    services:
      - name: prod-green
        target_group_arn: "{{ alb__output.target_groups.green }}"
        suspended: false
        min_capacity: 6
    min_capacity: 2
    max_capacity: 10
    requests_per_target: 1000
    cpu_utilization: 60

- name: A deploy suspends the colour it sizes (the target only, one read)
  ecs_production.platform.ecs_service_scaling:
    cluster: prod
    services:
      - name: prod-green
        suspended: true
    manage_policies: false

- name: Teardown
  ecs_production.platform.ecs_service_scaling:
    cluster: prod
    services: [{name: prod-blue}, {name: prod-green}]
    state: absent
"""

RETURN = r"""
targets:
  description: Each service's scalable target after the run (in check mode, what it would be); absent ones are left out.
  returned: always
  type: list
  elements: dict
  contains:
    service:
      description: The service's name.
      type: str
    resource_id:
      description: The scalable target's resource ID.
      type: str
      sample: service/prod/prod-blue
    min_capacity:
      description: The minimum number of tasks.
      type: int
    max_capacity:
      description: The maximum number of tasks.
      type: int
    suspended:
      description: Whether the target's scaling is suspended.
      type: bool
    policies:
      description: The names of this module's policies on the target (empty with I(manage_policies=false)).
      type: list
      elements: str
  sample:
    - service: prod-blue
      resource_id: service/prod/prod-blue
      min_capacity: 2
      max_capacity: 10
      suspended: false
      policies: [cpu-utilization, requests-per-target]
changed_services:
  description: The services whose target or policies were (or in check mode would be) written.
  returned: always
  type: list
  elements: str
  sample: [prod-green]
"""

import math
from typing import Any, Dict, List, Optional

from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

RETRY = AWSRetry.jittered_backoff(retries=10, catch_extra_error_codes=["ConcurrentUpdateException"])
NAMESPACE = "ecs"
DIMENSION = "ecs:service:DesiredCount"
REQUESTS = "requests-per-target"
CPU = "cpu-utilization"
OURS = (CPU, REQUESTS)


class ScalingErrorHandler(AWSErrorHandler):
    pass


@RETRY
def paginate(client, operation: str, **kwargs) -> Dict[str, Any]:
    """Every page of a describe call (paginators take no aws_retry: the whole walk is retried)."""
    return client.get_paginator(operation).paginate(**kwargs).build_full_result()


@ScalingErrorHandler.common_error_handler("describe scalable targets")
def describe_targets(client, resource_ids: List[str]) -> Dict[str, Dict[str, Any]]:
    """Resource ID -> the scalable target, for the ones that exist."""
    result = paginate(
        client,
        "describe_scalable_targets",
        ServiceNamespace=NAMESPACE,
        ResourceIds=resource_ids,
        ScalableDimension=DIMENSION,
    )
    return {t["ResourceId"]: t for t in result.get("ScalableTargets", []) if t.get("ResourceId") in resource_ids}


@ScalingErrorHandler.common_error_handler("describe scaling policies")
def describe_policies(client, resource_ids: List[str]) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """Resource ID -> policy name -> policy, for this module's policies of the targets asked about.

    DescribeScalingPolicies takes one resource ID: one call for the namespace reads both colours'."""
    found: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for policy in paginate(client, "describe_scaling_policies", ServiceNamespace=NAMESPACE).get("ScalingPolicies", []):
        ours = policy.get("ResourceId") in resource_ids and policy.get("PolicyName") in OURS
        if ours and policy.get("ScalableDimension", DIMENSION) == DIMENSION:
            found.setdefault(policy["ResourceId"], {})[policy["PolicyName"]] = policy
    return found


@ScalingErrorHandler.common_error_handler("register the scalable target")
def register_target(client, resource_id: str, target: Dict[str, Any]) -> None:
    suspended = target["suspended"]
    client.register_scalable_target(
        aws_retry=True,
        ServiceNamespace=NAMESPACE,
        ResourceId=resource_id,
        ScalableDimension=DIMENSION,
        MinCapacity=target["min_capacity"],
        MaxCapacity=target["max_capacity"],
        SuspendedState={
            "DynamicScalingInSuspended": suspended,
            "DynamicScalingOutSuspended": suspended,
            "ScheduledScalingSuspended": suspended,
        },
    )


@ScalingErrorHandler.common_error_handler("deregister the scalable target")
def deregister_target(client, resource_id: str) -> None:
    client.deregister_scalable_target(
        aws_retry=True, ServiceNamespace=NAMESPACE, ResourceId=resource_id, ScalableDimension=DIMENSION
    )


@ScalingErrorHandler.common_error_handler("put the scaling policy")
def put_policy(client, resource_id: str, name: str, configuration: Dict[str, Any]) -> None:
    client.put_scaling_policy(
        aws_retry=True,
        PolicyName=name,
        ServiceNamespace=NAMESPACE,
        ResourceId=resource_id,
        ScalableDimension=DIMENSION,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration=configuration,
    )


@ScalingErrorHandler.common_error_handler("delete the scaling policy")
def delete_policy(client, resource_id: str, name: str) -> None:
    client.delete_scaling_policy(
        aws_retry=True, PolicyName=name, ServiceNamespace=NAMESPACE, ResourceId=resource_id, ScalableDimension=DIMENSION
    )


def resource_label(load_balancer_arn: str, target_group_arn: str) -> str:
    """ALBRequestCountPerTarget's ResourceLabel: app/NAME/ID/targetgroup/NAME/ID, from the two ARNs."""
    lb = load_balancer_arn.split(":loadbalancer/", 1)[-1]
    tg = target_group_arn.split(":", 5)[-1]
    if not lb.startswith("app/") or lb.count("/") != 2 or not tg.startswith("targetgroup/") or tg.count("/") != 2:
        raise ValueError(
            f"cannot make a resource label of load balancer {load_balancer_arn!r} "
            f"and target group {target_group_arn!r}: "
            "an application load balancer's ARN (...:loadbalancer/app/NAME/ID) and a target group's "
            "(...:targetgroup/NAME/ID) are needed."
        )
    return f"{lb}/{tg}"


def wanted_policies(params: Dict[str, Any], service: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """Policy name -> TargetTrackingScalingPolicyConfiguration, as the parameters ask."""
    cooldowns = {
        "ScaleOutCooldown": params["scale_out_cooldown"],
        "ScaleInCooldown": params["scale_in_cooldown"],
        "DisableScaleIn": False,
    }
    wanted: Dict[str, Dict[str, Any]] = {}
    if params["requests_per_target"] > 0:
        label = resource_label(params["load_balancer_arn"], service["target_group_arn"])
        wanted[REQUESTS] = dict(
            cooldowns,
            TargetValue=float(params["requests_per_target"]),
            PredefinedMetricSpecification={"PredefinedMetricType": "ALBRequestCountPerTarget", "ResourceLabel": label},
        )
    if params["cpu_utilization"] > 0:
        wanted[CPU] = dict(
            cooldowns,
            TargetValue=float(params["cpu_utilization"]),
            PredefinedMetricSpecification={"PredefinedMetricType": "ECSServiceAverageCPUUtilization"},
        )
    return wanted


def same_configuration(have: Dict[str, Any], want: Dict[str, Any]) -> bool:
    """Whether a policy's configuration is what is wanted (AWS answers floats and leaves out defaults)."""
    if not math.isclose(float(have.get("TargetValue", -1)), want["TargetValue"]):
        return False
    for key in ("ScaleOutCooldown", "ScaleInCooldown"):
        if int(have.get(key, 0)) != want[key]:
            return False
    if bool(have.get("DisableScaleIn", False)) != want["DisableScaleIn"]:
        return False
    have_metric = have.get("PredefinedMetricSpecification") or {}
    want_metric = want["PredefinedMetricSpecification"]
    return all(have_metric.get(key) == value for key, value in want_metric.items()) and not have.get(
        "CustomizedMetricSpecification"
    )


def is_suspended(target: Dict[str, Any]) -> bool:
    state = target.get("SuspendedState") or {}
    return bool(state.get("DynamicScalingInSuspended")) and bool(state.get("DynamicScalingOutSuspended"))


def target_view(target: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    if not target:
        return {}
    return {
        "min_capacity": int(target.get("MinCapacity", 0)),
        "max_capacity": int(target.get("MaxCapacity", 0)),
        "suspended": is_suspended(target),
    }


def policy_view(policies: Dict[str, Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    view = {}
    for name, policy in sorted(policies.items()):
        configuration = policy.get("TargetTrackingScalingPolicyConfiguration") or policy
        view[name] = {
            "target_value": float(configuration.get("TargetValue", 0)),
            "metric": (configuration.get("PredefinedMetricSpecification") or {}).get("PredefinedMetricType", "custom"),
            "scale_out_cooldown": int(configuration.get("ScaleOutCooldown", 0)),
            "scale_in_cooldown": int(configuration.get("ScaleInCooldown", 0)),
        }
    return view


def plan_target(params: Dict[str, Any], service: Dict[str, Any], existing: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The target as it should be: the suspended state asked for (or kept), the minimum it gives (or asked for)."""
    suspended = service.get("suspended")
    if suspended is None:
        suspended = is_suspended(existing) if existing else service.get("initially_suspended", False)
    minimum = service.get("min_capacity")
    if minimum is None:
        minimum = 0 if suspended else params["min_capacity"]
    minimum = min(minimum, params["max_capacity"])
    return {"min_capacity": int(minimum), "max_capacity": int(params["max_capacity"]), "suspended": bool(suspended)}


def converge_present(module, client, params: Dict[str, Any]) -> Dict[str, Any]:
    services = params["services"]
    ids = [f"service/{params['cluster']}/{s['name']}" for s in services]
    targets = describe_targets(client, ids)
    manage = params["manage_policies"]
    policies = describe_policies(client, ids) if manage else {}
    result: Dict[str, Any] = {"changed": False, "targets": [], "changed_services": []}
    before_all: Dict[str, Any] = {}
    after_all: Dict[str, Any] = {}
    for service in services:
        resource_id = f"service/{params['cluster']}/{service['name']}"
        existing = targets.get(resource_id)
        have_policies = policies.get(resource_id, {})
        want_target = plan_target(params, service, existing)
        want_policies = wanted_policies(params, service) if manage else {}
        write_target = target_view(existing) != want_target
        to_put = [
            name
            for name, configuration in sorted(want_policies.items())
            if name not in have_policies
            or not same_configuration(
                have_policies[name].get("TargetTrackingScalingPolicyConfiguration") or {}, configuration
            )
        ]
        to_delete = sorted(set(have_policies) - set(want_policies)) if manage else []
        before_all[service["name"]] = (
            dict(target_view(existing), policies=policy_view(have_policies)) if existing else {}
        )
        after_all[service["name"]] = dict(want_target, policies=policy_view(want_policies))
        if write_target or to_put or to_delete:
            result["changed"] = True
            result["changed_services"].append(service["name"])
            if not module.check_mode:
                if write_target:
                    register_target(client, resource_id, want_target)
                for name in to_put:
                    put_policy(client, resource_id, name, want_policies[name])
                for name in to_delete:
                    delete_policy(client, resource_id, name)
        result["targets"].append(
            dict(want_target, service=service["name"], resource_id=resource_id, policies=sorted(want_policies))
        )
    result["diff"] = {"before": before_all, "after": after_all}
    return result


def converge_absent(module, client, params: Dict[str, Any]) -> Dict[str, Any]:
    ids = [f"service/{params['cluster']}/{s['name']}" for s in params["services"]]
    targets = describe_targets(client, ids)
    # A policy lives only as long as its target (deregistering deletes it): without a target, one read.
    policies = describe_policies(client, ids) if targets else {}
    result: Dict[str, Any] = {"changed": False, "targets": [], "changed_services": []}
    before_all: Dict[str, Any] = {}
    for service in params["services"]:
        resource_id = f"service/{params['cluster']}/{service['name']}"
        if resource_id not in targets and resource_id not in policies:
            continue
        result["changed"] = True
        result["changed_services"].append(service["name"])
        before_all[service["name"]] = dict(
            target_view(targets.get(resource_id)), policies=policy_view(policies.get(resource_id, {}))
        )
        if module.check_mode:
            continue
        # AWS deletes a target's policies with it; deleting them first leaves none behind anywhere.
        for name in sorted(policies.get(resource_id, {})):
            delete_policy(client, resource_id, name)
        if resource_id in targets:
            deregister_target(client, resource_id)
    result["diff"] = {"before": before_all, "after": {name: {} for name in before_all}}
    return result


def capacity_problems(params: Dict[str, Any]) -> List[str]:
    problems = []
    top = params["max_capacity"]
    if top < 1:
        problems.append(f"max_capacity must be 1 or more, not {top}")
    if not 0 <= params["min_capacity"] <= top:
        problems.append(f"min_capacity must be between 0 and max_capacity ({top}), not {params['min_capacity']}")
    for service in params["services"]:
        minimum = service.get("min_capacity")
        if minimum is not None and minimum < 0:
            problems.append(f"the min_capacity of {service['name']} must be 0 or more, not {minimum}")
    if params["scale_out_cooldown"] < 0 or params["scale_in_cooldown"] < 0:
        problems.append("the cooldowns must be 0 seconds or more")
    return problems


def policy_problems(params: Dict[str, Any]) -> List[str]:
    problems = []
    if params["requests_per_target"] < 0:
        problems.append("requests_per_target must be 0 (no request policy) or more")
    if not 0 <= params["cpu_utilization"] <= 100:
        problems.append(f"cpu_utilization must be a percentage (0 for no CPU policy), not {params['cpu_utilization']}")
    if params["requests_per_target"] <= 0:
        return problems
    if not params.get("load_balancer_arn"):
        return problems + ["requests_per_target needs load_balancer_arn"]
    missing = [s["name"] for s in params["services"] if not s.get("target_group_arn")]
    if missing:
        return problems + [f"requests_per_target needs the target_group_arn of {', '.join(missing)}"]
    for service in params["services"]:
        try:
            resource_label(params["load_balancer_arn"], service["target_group_arn"])
        except ValueError as e:
            return problems + [str(e)]
    return problems


def check_parameters(module, params: Dict[str, Any]) -> None:
    """Refuse what AWS would refuse (or what would scale nothing) before any call."""
    problems = []
    if not params["cluster"].strip():
        problems.append("cluster must name an ECS cluster")
    names = [s["name"] for s in params["services"]]
    if not names or any(not n.strip() for n in names) or len(set(names)) != len(names):
        problems.append("services must list one or more distinct service names")
    if params["state"] == "present":
        problems += capacity_problems(params) + (policy_problems(params) if params["manage_policies"] else [])
    if problems:
        module.fail_json(msg="; ".join(problems) + ". No AWS call was made.")


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=dict(
            cluster=dict(type="str", required=True),
            services=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    name=dict(type="str", required=True),
                    target_group_arn=dict(type="str"),
                    suspended=dict(type="bool"),
                    initially_suspended=dict(type="bool", default=False),
                    min_capacity=dict(type="int"),
                ),
            ),
            min_capacity=dict(type="int", default=1),
            max_capacity=dict(type="int", default=4),
            load_balancer_arn=dict(type="str"),
            requests_per_target=dict(type="int", default=0),
            cpu_utilization=dict(type="float", default=0),
            scale_out_cooldown=dict(type="int", default=60),
            scale_in_cooldown=dict(type="int", default=300),
            manage_policies=dict(type="bool", default=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    check_parameters(module, params)
    client = module.client("application-autoscaling", retry_decorator=RETRY)
    try:
        if params["state"] == "present":
            result = converge_present(module, client, params)
        else:
            result = converge_absent(module, client, params)
    except AnsibleAWSError as e:
        module.fail_json_aws_error(e)
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
