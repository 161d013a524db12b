#!/usr/bin/python

# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Ansible modules import below DOCUMENTATION, EXAMPLES and RETURN.
# ruff: noqa: E402

DOCUMENTATION = r"""
---
module: canary_watch
version_added: 0.1.0
short_description: Watch CloudWatch alarms and target health for the bake of a canary step
description:
  - Watches a canary for O(duration) seconds in one task - the bake of a blue/green traffic step - and reports
    whether it breached. It looks at once, then every O(interval) seconds, and a last time when O(duration) has
    elapsed; it stops at the first breach.
  - "A look is a breach when one of the CloudWatch alarms O(alarm_names) is in the C(ALARM) state (or in
    C(INSUFFICIENT_DATA) with O(fail_on_insufficient_data=true)), or when O(target_group) has fewer than
    O(min_healthy) targets in the C(healthy) state."
  - A breach does not fail the task. The task returns RV(breached) and RV(reason), and the caller decides what to
    do, typically to send the traffic back and fail (see the examples). The task fails only on bad options, on an
    alarm or target group that does not exist when the watch starts, and on AWS errors.
  - Every alarm of O(alarm_names) and the target group must exist before the watch starts, so that a misspelt
    name fails instead of silently watching nothing. An alarm or the target group deleted during the watch is a
    breach.
  - Nothing is ever changed. The module only reads (C(cloudwatch:DescribeAlarms),
    C(elasticloadbalancing:DescribeTargetGroups) and C(DescribeTargetHealth)).
author:
  - ecs_production.platform contributors (@ecs-production)
options:
  alarm_names:
    description:
      - Names of the CloudWatch alarms to watch, metric or composite alarms.
      - Each must exist when the watch starts; the task fails naming the alarms that do not.
      - Names are matched exactly (no prefix or pattern); a name given twice is watched once.
      - At least one of O(alarm_names) (not empty) and O(target_group) is required.
    type: list
    elements: str
    default: []
  target_group:
    description:
      - Name or ARN of the target group whose healthy targets are counted, for example the colour's target group.
      - It must exist when the watch starts.
    type: str
  min_healthy:
    description:
      - The least number of targets in the C(healthy) state (C(DescribeTargetHealth)) O(target_group) must have;
        fewer is a breach. Targets that are C(initial), C(unhealthy), C(draining), C(unused) or C(unavailable)
        do not count.
      - Only with O(target_group), where it defaults to V(1).
    type: int
  duration:
    description:
      - How many seconds to watch, from the first look to the last.
      - V(0) looks once.
    type: int
    required: true
  interval:
    description:
      - Seconds between the start of one look and the start of the next.
      - At most 1 + ceil(O(duration) / O(interval)) looks are made. A look that takes longer than O(interval)
        delays the next one rather than adding looks.
    type: int
    default: 5
  fail_on_insufficient_data:
    description:
      - Whether an alarm in the C(INSUFFICIENT_DATA) state is a breach.
      - By default it is not (an alarm on a metric with no data yet, such as the 5xx count of a colour that has
        not served a request, is in that state), and RV(msg) names such alarms.
    type: bool
    default: false
notes:
  - The watch takes O(duration) seconds plus the time of the last look, less when it breaches; it never exceeds
    O(duration) + O(interval) + the time of one look.
  - The module reads the states CloudWatch has evaluated; it does not evaluate metrics itself. How soon an
    alarm reacts depends on its period and evaluation periods; keep them short next to O(duration).
  - "Supports check mode, in which it watches exactly as in a normal run (it writes nothing in either), so that
    a check run reports what the real run would see. To skip the bake in check mode, set O(duration=0) or skip
    the task with C(when: not ansible_check_mode)."
  - API calls are retried on throttling.
  - Requires the IAM permissions C(cloudwatch:DescribeAlarms) and, with O(target_group),
    C(elasticloadbalancing:DescribeTargetGroups) and C(elasticloadbalancing:DescribeTargetHealth).
seealso:
  - module: ecs_production.platform.traffic_switch
  - module: amazon.aws.cloudwatch_metric_alarm_info
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Canary - 10 % of the traffic to green
  ecs_production.platform.traffic_switch:
    load_balancer_name: ecs-prod-alb
    port: 443
    target_groups:
      blue: ecs-prod-blue
      green: ecs-prod-green
    weights:
      blue: 90
      green: 10

- name: Bake for a minute, watching green's alarms and health
  ecs_production.platform.canary_watch:
    alarm_names:
      - ecs-prod-green-5xx
      - ecs-prod-green-unhealthy-hosts
    target_group: ecs-prod-green
    min_healthy: 2
    duration: 60
    interval: 5
  register: bake

- name: Roll back a breached canary
  when: bake.breached
  block:
    - name: All traffic back to blue
      ecs_production.platform.traffic_switch:
        load_balancer_name: ecs-prod-alb
        port: 443
        target_groups:
          blue: ecs-prod-blue
          green: ecs-prod-green
        color: blue
        force: true

    - name: Fail, saying why
      ansible.builtin.fail:
        msg: "ROLLED BACK: green breached during the bake ({{ bake.reason }})"

- name: Check the alarms once, treating missing data as a breach
  ecs_production.platform.canary_watch:
    alarm_names: [ecs-prod-green-5xx]
    duration: 0
    fail_on_insufficient_data: true
  register: alarms_now
"""

RETURN = r"""
breached:
  description: Whether a look found a breach. The watch stopped at that look.
  returned: always
  type: bool
  sample: true
reason:
  description:
    - What breached, in a sentence naming each alarm in C(ALARM) (with CloudWatch's state reason) and the
      healthy and required counts of the target group; parts are separated by C(; ).
    - An empty string when nothing breached.
  returned: always
  type: str
  sample: "alarm ecs-prod-green-5xx is in ALARM (Threshold Crossed: 1 datapoint [12.0] was >= 5.0);
    target group ecs-prod-green: 1 healthy of 2 required (2 registered)"
alarms:
  description:
    - The state of each alarm of O(alarm_names) at the last look (C(OK), C(ALARM) or C(INSUFFICIENT_DATA)), by
      name, in the order given.
    - V(null) for an alarm deleted during the watch.
  returned: always
  type: dict
  sample: {ecs-prod-green-5xx: ALARM, ecs-prod-green-unhealthy-hosts: OK}
healthy:
  description: Targets in the C(healthy) state in O(target_group) at the last look.
  returned: always; V(null) without O(target_group)
  type: int
  sample: 1
target_group_arn:
  description: ARN of O(target_group).
  returned: always; V(null) without O(target_group)
  type: str
  sample: arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/ecs-prod-green/0123456789abcdef
checks:
  description: How many looks were made, the first included.
  returned: always
  type: int
  sample: 13
elapsed:
  description: Seconds from the start of the first look to the end of the last.
  returned: always
  type: float
  sample: 60.2
msg:
  description: What the watch found, in a sentence.
  returned: always
  type: str
  sample: "No breach in 60.2s (13 looks): alarms ecs-prod-green-5xx, ecs-prod-green-unhealthy-hosts not in ALARM;
    target group ecs-prod-green: 2 healthy of 2 required (2 registered)"
"""

import math
from typing import Any, Dict, List, Mapping, NamedTuple, Optional

from ansible_collections.amazon.aws.plugins.module_utils.botocore import paginated_query_with_retries
from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import ELBV2_RETRY
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import count_healthy_targets
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import find_target_health
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import find_target_group
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import target_group_name
from ansible_collections.ecs_production.platform.plugins.module_utils.common import Clock
from ansible_collections.ecs_production.platform.plugins.module_utils.common import Refused

# CloudWatch answers "Throttling", which AWSRetry retries by default.
CLOUDWATCH_RETRY = AWSRetry.jittered_backoff(retries=10)

ALARM = "ALARM"
INSUFFICIENT_DATA = "INSUFFICIENT_DATA"
HEALTHY = "healthy"
DEFAULT_MIN_HEALTHY = 1
# DescribeAlarms takes at most 100 names per call.
MAX_ALARM_NAMES_PER_CALL = 100
MAX_STATE_REASON = 160


class Request(NamedTuple):
    """The watch the task asks for, validated."""

    alarm_names: List[str]
    target_group: Optional[str]
    min_healthy: int
    duration: int
    interval: int
    fail_on_insufficient_data: bool


class Alarm(NamedTuple):
    state: str
    reason: str = ""


class Look(NamedTuple):
    """What one look found."""

    alarms: Dict[str, Optional[Alarm]]  # name -> alarm, None when it does not exist
    healthy: Optional[int] = None  # None without a target group, or when it does not exist
    registered: Optional[int] = None

    @property
    def missing_alarms(self) -> List[str]:
        return [name for name, alarm in self.alarms.items() if alarm is None]

    def states(self) -> Dict[str, Optional[str]]:
        return {name: alarm.state if alarm else None for name, alarm in self.alarms.items()}


# ---- Input (no AWS call) ----


def check_params(params: Mapping[str, Any]) -> List[str]:
    """Problems with the options that AnsibleModule's own checks do not catch; found before any AWS call."""
    problems = []
    names = params.get("alarm_names") or []
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            problems.append(f"alarm_names[{index}] must be an alarm name, not {name!r}")
    target_group = params.get("target_group")
    if target_group is not None and not target_group.strip():
        problems.append("target_group must be a target group name or ARN, not an empty string")
    if not names and target_group is None:
        problems.append("nothing to watch: give alarm_names, target_group or both")
    min_healthy = params.get("min_healthy")
    if min_healthy is not None:
        if target_group is None:
            problems.append("min_healthy needs target_group (the target group whose healthy targets it counts)")
        if min_healthy < 1:
            problems.append(f"min_healthy must be at least 1, not {min_healthy}")
    if params.get("duration") is not None and params["duration"] < 0:
        problems.append(f"duration must be 0 or more seconds, not {params['duration']}")
    if params.get("interval") is not None and params["interval"] < 1:
        problems.append(f"interval must be at least 1 second, not {params['interval']}")
    return problems


def request_from_params(params: Mapping[str, Any]) -> Request:
    """The validated request; call only when check_params found no problem."""
    target_group = params.get("target_group")
    min_healthy = params.get("min_healthy")
    return Request(
        alarm_names=list(dict.fromkeys(name.strip() for name in params.get("alarm_names") or [])),
        target_group=target_group.strip() if target_group is not None else None,
        min_healthy=DEFAULT_MIN_HEALTHY if min_healthy is None else min_healthy,
        duration=params["duration"],
        interval=params.get("interval") or 5,
        fail_on_insufficient_data=bool(params.get("fail_on_insufficient_data")),
    )


# ---- Decisions (no AWS call) ----


def max_looks(duration: int, interval: int) -> int:
    """The most looks a watch makes: the first, then one per interval, the last at the end of the duration."""
    return 1 + math.ceil(duration / interval)


def _with_reason(text: str, alarm: Alarm) -> str:
    reason = " ".join(alarm.reason.split())
    if not reason:
        return text
    if len(reason) > MAX_STATE_REASON:
        reason = reason[: MAX_STATE_REASON - 3].rstrip() + "..."
    return f"{text} ({reason})"


def health_summary(request: Request, look: Look) -> str:
    label = target_group_name(request.target_group or "")
    if look.healthy is None:
        return f"target group {label} no longer exists: 0 healthy of {request.min_healthy} required"
    counts = f"{look.healthy} healthy of {request.min_healthy} required ({look.registered} registered)"
    return f"target group {label}: {counts}"


def breaches(request: Request, look: Look) -> List[str]:
    """Why this look is a breach, one sentence part per alarm and for the target group; [] when it is not."""
    found = []
    for name, alarm in look.alarms.items():
        if alarm is None:
            found.append(f"alarm {name} no longer exists")
        elif alarm.state == ALARM:
            found.append(_with_reason(f"alarm {name} is in ALARM", alarm))
        elif alarm.state == INSUFFICIENT_DATA and request.fail_on_insufficient_data:
            found.append(_with_reason(f"alarm {name} has INSUFFICIENT_DATA", alarm))
    if request.target_group is not None and (look.healthy is None or look.healthy < request.min_healthy):
        found.append(health_summary(request, look))
    return found


def quiet_summary(request: Request, look: Look) -> str:
    """What a look without a breach saw."""
    parts = []
    if look.alarms:
        plural = "s" if len(look.alarms) > 1 else ""
        parts.append(f"alarm{plural} {', '.join(look.alarms)} not in ALARM")
        waiting = [name for name, alarm in look.alarms.items() if alarm and alarm.state == INSUFFICIENT_DATA]
        if waiting:
            parts[-1] += f" (INSUFFICIENT_DATA, not counted as a breach: {', '.join(waiting)})"
    if request.target_group is not None:
        parts.append(health_summary(request, look))
    return "; ".join(parts)


# ---- AWS ----


def _describe_alarms_page(client, names: List[str]) -> Dict[str, Any]:
    return paginated_query_with_retries(
        client, "describe_alarms", CLOUDWATCH_RETRY, AlarmNames=names, AlarmTypes=["MetricAlarm", "CompositeAlarm"]
    )


@AWSErrorHandler.common_error_handler("describe CloudWatch alarms")
def describe_alarms(client, names: List[str]) -> Dict[str, Optional[Alarm]]:
    """{name: Alarm} for every name, in order; None for a name no alarm has."""
    found: Dict[str, Alarm] = {}
    for start in range(0, len(names), MAX_ALARM_NAMES_PER_CALL):
        result = _describe_alarms_page(client, names[start : start + MAX_ALARM_NAMES_PER_CALL])
        for item in (result.get("MetricAlarms") or []) + (result.get("CompositeAlarms") or []):
            found[item["AlarmName"]] = Alarm(state=item.get("StateValue", ""), reason=item.get("StateReason") or "")
    return {name: found.get(name) for name in names}


class Watcher:
    """Takes the looks of one watch."""

    def __init__(self, cloudwatch, elbv2, request: Request, target_group_arn: Optional[str], clock: Clock):
        self.cloudwatch = cloudwatch
        self.elbv2 = elbv2
        self.request = request
        self.target_group_arn = target_group_arn
        self.clock = clock

    def look(self) -> Look:
        alarms = describe_alarms(self.cloudwatch, self.request.alarm_names) if self.request.alarm_names else {}
        if self.target_group_arn is None:
            return Look(alarms=alarms)
        descriptions = find_target_health(self.elbv2, self.target_group_arn)
        if descriptions is None:
            return Look(alarms=alarms)
        return Look(alarms=alarms, healthy=count_healthy_targets(descriptions), registered=len(descriptions))

    def watch(self) -> Dict[str, Any]:
        """Look at once, then on a fixed schedule (start + k * interval, the last at start + duration), stopping at
        the first breach. Looks whose slot passed during a slow look are skipped, never the last one."""
        request = self.request
        last = max_looks(request.duration, request.interval) - 1
        start = self.clock.monotonic()
        deadline = start + request.duration

        def slot(k: int) -> float:
            return start + min(k * request.interval, request.duration)

        k, checks = 0, 0
        while True:
            wait = slot(k) - self.clock.monotonic()
            if wait > 0:
                self.clock.sleep(wait)
            look = self.look()
            checks += 1
            if checks == 1 and look.missing_alarms:
                raise Refused(
                    f"CloudWatch alarm(s) not found: {', '.join(look.missing_alarms)}. "
                    "Nothing was watched (check alarm_names)."
                )
            problems = breaches(request, look)
            now = self.clock.monotonic()
            if problems or k >= last or now >= deadline:
                break
            k += 1
            while k < last and slot(k + 1) <= now:
                k += 1
        return result(
            request, look, problems, checks=checks, elapsed=now - start, target_group_arn=self.target_group_arn
        )


def result(
    request: Request, look: Look, problems: List[str], *, checks: int, elapsed: float, target_group_arn: Optional[str]
) -> Dict[str, Any]:
    """The module's output for the watch that ended with this look."""
    elapsed = round(elapsed, 1)
    reason = "; ".join(problems)
    if problems:
        msg = f"Breached at look {checks}, {elapsed}s into the {request.duration}s watch: {reason}"
    else:
        looks = f"{checks} look{'s' if checks != 1 else ''}"
        msg = f"No breach in {elapsed}s ({looks}): {quiet_summary(request, look)}"
    return {
        "changed": False,
        "breached": bool(problems),
        "reason": reason,
        "alarms": look.states(),
        "healthy": look.healthy,
        "target_group_arn": target_group_arn,
        "checks": checks,
        "elapsed": elapsed,
        "msg": msg,
    }


def resolve_target_group(elbv2, ref: str) -> str:
    target_group = find_target_group(elbv2, ref)
    if target_group is None:
        raise Refused(f"Target group {ref} not found. Nothing was watched (check target_group).")
    return target_group["TargetGroupArn"]


def main() -> None:
    argument_spec = dict(
        alarm_names=dict(type="list", elements="str", default=[]),
        target_group=dict(type="str"),
        min_healthy=dict(type="int"),
        duration=dict(type="int", required=True),
        interval=dict(type="int", default=5),
        fail_on_insufficient_data=dict(type="bool", default=False),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    problems = check_params(module.params)
    if problems:
        module.fail_json(msg=f"{'; '.join(problems)}. No AWS call was made.")
    request = request_from_params(module.params)

    try:
        cloudwatch = module.client("cloudwatch", retry_decorator=CLOUDWATCH_RETRY) if request.alarm_names else None
        elbv2, target_group_arn = None, None
        if request.target_group is not None:
            elbv2 = module.client("elbv2", retry_decorator=ELBV2_RETRY)
            target_group_arn = resolve_target_group(elbv2, request.target_group)
        output = Watcher(cloudwatch, elbv2, request, target_group_arn, Clock()).watch()
    except Refused as e:
        module.fail_json(msg=str(e), changed=False)
    except AnsibleAWSError as e:
        module.fail_json_aws_error(e)
    module.exit_json(**output)


if __name__ == "__main__":
    main()
