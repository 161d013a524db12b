#!/usr/bin/python

# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Ansible modules import below DOCUMENTATION, EXAMPLES and RETURN.
# ruff: noqa: E402

DOCUMENTATION = r"""
---
module: metric_alarms
version_added: 0.1.0
short_description: Several CloudWatch metric alarms, read in one call and written only where they differ
description:
  - Creates, updates or deletes a set of CloudWatch metric alarms - on one metric with a statistic or a
    percentile, or on metric math (O(alarms[].metrics)) such as an error rate.
  - Reads all of them with one C(DescribeAlarms) call, compares each with what is asked, and calls
    C(PutMetricAlarm) only for the ones that differ; O(state=absent) deletes them with one C(DeleteAlarms).
  - An alarm's state (C(OK), C(ALARM), C(INSUFFICIENT_DATA)) is returned, never changed.
author:
  - ecs_production.platform contributors (@ecs-production)
options:
  alarms:
    description: The alarms. With O(state=absent) only their names matter; up to 100.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The alarm's name, unique in the account and region.
        type: str
        required: true
      description:
        description: What the alarm means.
        type: str
        default: ""
      namespace:
        description: The metric's namespace, such as V(AWS/ApplicationELB); not with O(alarms[].metrics).
        type: str
      metric_name:
        description: The metric, such as V(HTTPCode_Target_5XX_Count); not with O(alarms[].metrics).
        type: str
      dimensions:
        description: The metric's dimensions, name to value.
        type: dict
        default: {}
      statistic:
        description: V(SampleCount), V(Average), V(Sum), V(Minimum) or V(Maximum).
        type: str
        choices: [SampleCount, Average, Sum, Minimum, Maximum]
      extended_statistic:
        description: A percentile such as V(p99), instead of O(alarms[].statistic).
        type: str
      period:
        description: Seconds each datapoint covers (10, 20, 30 or a multiple of 60).
        type: int
      unit:
        description: The metric's unit, when it has several.
        type: str
      metrics:
        description:
          - Metric math instead of one metric - the C(Metrics) of C(PutMetricAlarm) in the API's shape
            (C(Id), C(MetricStat) or C(Expression), C(Label), C(ReturnData), C(Period)); exactly one returns data.
        type: list
        elements: dict
      evaluation_periods:
        description: How many periods are evaluated. Required with O(state=present).
        type: int
      datapoints_to_alarm:
        description: How many of those must breach (M out of N); all of them when not given.
        type: int
      threshold:
        description: The threshold compared with. Required with O(state=present).
        type: float
      comparison:
        description: How the value is compared with the threshold. Required with O(state=present).
        type: str
        choices: [GreaterThanOrEqualToThreshold, GreaterThanThreshold, LessThanThreshold, LessThanOrEqualToThreshold]
      treat_missing_data:
        description: What a period without data counts as.
        type: str
        choices: [breaching, notBreaching, ignore, missing]
        default: missing
      alarm_actions:
        description: ARNs notified when the alarm goes to C(ALARM).
        type: list
        elements: str
        default: []
      ok_actions:
        description: ARNs notified when it goes back to C(OK).
        type: list
        elements: str
        default: []
  tags:
    description: Tags of an alarm created (AWS applies tags given to C(PutMetricAlarm) on creation only).
    type: dict
    default: {}
  state:
    description: Whether the alarms should exist.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Every alarm is checked before any AWS call - one metric or metric math, a statistic or a percentile, a
    period CloudWatch accepts.
  - Supports check mode and diff mode (each alarm's settings before and after).
  - API calls are retried on throttling.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: 5xx responses and p99 latency of a target group
  ecs_production.platform.metric_alarms:
    alarms:
      - name: prod-green-5xx
        namespace: AWS/ApplicationELB
        metric_name: HTTPCode_Target_5XX_Count
        dimensions: {LoadBalancer: app/prod-alb/0123456789abcdef, TargetGroup: targetgroup/prod-green/fedcba9876543210}
        statistic: Sum
        period: 60
        evaluation_periods: 1
        threshold: 5
        comparison: GreaterThanThreshold
        treat_missing_data: notBreaching
      - name: prod-green-p99
        namespace: AWS/ApplicationELB
        metric_name: TargetResponseTime
        dimensions: {LoadBalancer: app/prod-alb/0123456789abcdef, TargetGroup: targetgroup/prod-green/fedcba9876543210}
        extended_statistic: p99
        period: 60
        evaluation_periods: 3
        datapoints_to_alarm: 2
        threshold: 1.5
        comparison: GreaterThanThreshold
    tags: {Project: prod}

- name: Delete them
  ecs_production.platform.metric_alarms:
    alarms: [{name: prod-green-5xx}, {name: prod-green-p99}]
    state: absent
"""

RETURN = r"""
alarms:
  description: The state of each alarm after the run (V(INSUFFICIENT_DATA) for one just created; absent after deletion).
  returned: always
  type: dict
  sample: {prod-green-5xx: OK}
changes:
  description: What was (or would be) written, one line per alarm.
  returned: always
  type: list
  elements: str
  sample: ["create prod-green-p99", "update prod-green-5xx: Threshold"]
"""

from typing import Any, Dict, List, Mapping

from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list

CLOUDWATCH_RETRY = AWSRetry.jittered_backoff(retries=10)
MAX_NAMES = 100  # DescribeAlarms and DeleteAlarms take up to 100 names
HIGH_RESOLUTION_PERIODS = (10, 20, 30)
# The settings PutMetricAlarm writes and DescribeAlarms returns, compared to decide an update.
COMPARED = (
    "AlarmDescription", "Namespace", "MetricName", "Dimensions", "Statistic", "ExtendedStatistic", "Period", "Unit",
    "Metrics", "EvaluationPeriods", "DatapointsToAlarm", "Threshold", "ComparisonOperator", "TreatMissingData",
    "AlarmActions", "OKActions", "ActionsEnabled",
)  # fmt: skip


class CloudWatchErrorHandler(AWSErrorHandler):
    pass


# ---- Input (no AWS call) ----


def check_alarms(alarms: List[Mapping[str, Any]], state: str) -> List[str]:
    """Problems AnsibleModule's own checks do not catch, for every alarm; found before any AWS call."""
    problems = []
    names = [alarm["name"] for alarm in alarms]
    if len(set(names)) != len(names):
        problems.append(f"each alarm needs a name of its own: {names}")
    if len(names) > MAX_NAMES:
        problems.append(f"at most {MAX_NAMES} alarms per task, not {len(names)}")
    if state == "absent":
        return problems
    for alarm in alarms:
        problems.extend(f"alarms.{alarm['name']}: {p}" for p in _check_alarm(alarm))
    return problems


def _check_alarm(alarm: Mapping[str, Any]) -> List[str]:
    missing = [key for key in ("evaluation_periods", "threshold", "comparison") if alarm.get(key) is None]
    if missing:
        return [f"{', '.join(missing)} required"]
    problems = []
    single = any(alarm.get(key) for key in ("namespace", "metric_name", "statistic", "extended_statistic"))
    if alarm.get("metrics"):
        if single:
            problems.append("give either metrics (metric math) or namespace/metric_name/statistic, not both")
        returning = [m for m in alarm["metrics"] if m.get("ReturnData", True)]
        if len(returning) != 1:
            problems.append(f"exactly one of metrics must return data (ReturnData), not {len(returning)}")
    else:
        if not alarm.get("namespace") or not alarm.get("metric_name"):
            problems.append("namespace and metric_name are required without metrics")
        if bool(alarm.get("statistic")) == bool(alarm.get("extended_statistic")):
            problems.append("give exactly one of statistic and extended_statistic (such as p99)")
        if alarm.get("period") is None:
            problems.append("period is required without metrics")
    period = alarm.get("period")
    if period is not None and not (period in HIGH_RESOLUTION_PERIODS or (period >= 60 and period % 60 == 0)):
        problems.append(f"period must be 10, 20, 30 or a multiple of 60, not {period}")
    if alarm["evaluation_periods"] < 1:
        problems.append(f"evaluation_periods must be at least 1, not {alarm['evaluation_periods']}")
    datapoints = alarm.get("datapoints_to_alarm")
    if datapoints is not None and not 1 <= datapoints <= alarm["evaluation_periods"]:
        problems.append(
            f"datapoints_to_alarm must be 1 to evaluation_periods ({alarm['evaluation_periods']}), not {datapoints}"
        )
    return problems


def put_params(alarm: Mapping[str, Any]) -> Dict[str, Any]:
    """The PutMetricAlarm parameters of an alarm of the module's input (tags apart)."""
    params: Dict[str, Any] = {
        "AlarmName": alarm["name"],
        "AlarmDescription": alarm.get("description") or "",
        "EvaluationPeriods": alarm["evaluation_periods"],
        "DatapointsToAlarm": alarm.get("datapoints_to_alarm") or alarm["evaluation_periods"],
        "Threshold": float(alarm["threshold"]),
        "ComparisonOperator": alarm["comparison"],
        "TreatMissingData": alarm.get("treat_missing_data") or "missing",
        "AlarmActions": list(alarm.get("alarm_actions") or []),
        "OKActions": list(alarm.get("ok_actions") or []),
        "ActionsEnabled": True,
    }
    if alarm.get("metrics"):
        params["Metrics"] = [dict(m) for m in alarm["metrics"]]
        return params
    params.update(Namespace=alarm["namespace"], MetricName=alarm["metric_name"], Period=alarm["period"])
    params["Dimensions"] = [{"Name": k, "Value": str(v)} for k, v in sorted((alarm.get("dimensions") or {}).items())]
    if alarm.get("statistic"):
        params["Statistic"] = alarm["statistic"]
    else:
        params["ExtendedStatistic"] = alarm["extended_statistic"]
    if alarm.get("unit"):
        params["Unit"] = alarm["unit"]
    return params


def comparable(params: Mapping[str, Any]) -> Dict[str, Any]:
    """An alarm's compared settings, in one shape whether from PutMetricAlarm parameters or DescribeAlarms."""
    found = {key: params[key] for key in COMPARED if params.get(key) not in (None, [], "")}
    # Without DatapointsToAlarm, CloudWatch alarms on all the evaluated periods (N out of N).
    if "EvaluationPeriods" in found:
        found.setdefault("DatapointsToAlarm", found["EvaluationPeriods"])
    if "Dimensions" in found:
        found["Dimensions"] = sorted((d["Name"], str(d["Value"])) for d in found["Dimensions"])
    if "Threshold" in found:
        found["Threshold"] = float(found["Threshold"])
    if "Metrics" in found:
        found["Metrics"] = [_comparable_query(m) for m in found["Metrics"]]
    for key in ("AlarmActions", "OKActions"):
        if key in found:
            found[key] = sorted(found[key])
    return found


def _comparable_query(query: Mapping[str, Any]) -> Dict[str, Any]:
    """A query of metric math without what is empty, its metric's dimensions in one order (AWS keeps none)."""
    found = {k: v for k, v in query.items() if v not in (None, [])}
    stat = found.get("MetricStat")
    if isinstance(stat, Mapping) and isinstance(stat.get("Metric"), Mapping):
        metric = {k: v for k, v in stat["Metric"].items() if v not in (None, [])}
        if "Dimensions" in metric:
            metric["Dimensions"] = sorted((d["Name"], str(d["Value"])) for d in metric["Dimensions"])
        found["MetricStat"] = dict({k: v for k, v in stat.items() if v not in (None, [])}, Metric=metric)
    return found


def differences(current: Mapping[str, Any], desired: Mapping[str, Any]) -> List[str]:
    """The settings in which the alarm as described differs from what is asked."""
    have, want = comparable(current), comparable(desired)
    return sorted(key for key in set(have) | set(want) if have.get(key) != want.get(key))


# ---- AWS ----


@CloudWatchErrorHandler.list_error_handler("describe alarms", default_value=[])
def describe_alarms(client, names: List[str]) -> List[Dict[str, Any]]:
    return client.describe_alarms(aws_retry=True, AlarmNames=names, AlarmTypes=["MetricAlarm"])["MetricAlarms"]


@CloudWatchErrorHandler.common_error_handler("put metric alarm")
def put_metric_alarm(client, params: Dict[str, Any]) -> None:
    client.put_metric_alarm(aws_retry=True, **params)


@CloudWatchErrorHandler.deletion_error_handler("delete alarms")
def delete_alarms(client, names: List[str]) -> bool:
    client.delete_alarms(aws_retry=True, AlarmNames=names)
    return True


def converge(module, client) -> Dict[str, Any]:
    alarms = module.params["alarms"]
    names = [alarm["name"] for alarm in alarms]
    found = {alarm["AlarmName"]: alarm for alarm in describe_alarms(client, names)} if names else {}
    changes: List[str] = []
    before = {name: comparable(found[name]) for name in names if name in found}
    states = {name: found[name].get("StateValue") for name in names if name in found}
    if module.params["state"] == "absent":
        gone = [name for name in names if name in found]
        changes.extend(f"delete {name}" for name in gone)
        if gone and not module.check_mode:
            delete_alarms(client, gone)
        return {"changes": changes, "alarms": {}, "diff": {"before": before, "after": {}}}
    after = {}
    for alarm in alarms:
        params = put_params(alarm)
        after[alarm["name"]] = comparable(params)
        if alarm["name"] in found:
            differ = differences(found[alarm["name"]], params)
            if not differ:
                continue
            changes.append(f"update {alarm['name']}: {', '.join(differ)}")
        else:
            changes.append(f"create {alarm['name']}")
            states[alarm["name"]] = "INSUFFICIENT_DATA"
            if module.params["tags"]:
                params["Tags"] = ansible_dict_to_boto3_tag_list(module.params["tags"])
        if not module.check_mode:
            put_metric_alarm(client, params)
    return {"changes": changes, "alarms": states, "diff": {"before": before, "after": after}}


def main() -> None:
    alarm_options = dict(
        name=dict(type="str", required=True),
        description=dict(type="str", default=""),
        namespace=dict(type="str"),
        metric_name=dict(type="str"),
        dimensions=dict(type="dict", default={}),
        statistic=dict(type="str", choices=["SampleCount", "Average", "Sum", "Minimum", "Maximum"]),
        extended_statistic=dict(type="str"),
        period=dict(type="int"),
        unit=dict(type="str"),
        metrics=dict(type="list", elements="dict"),
        evaluation_periods=dict(type="int"),
        datapoints_to_alarm=dict(type="int"),
        threshold=dict(type="float"),
        comparison=dict(
            type="str",
            choices=[
                "GreaterThanOrEqualToThreshold",
                "GreaterThanThreshold",
                "LessThanThreshold",
                "LessThanOrEqualToThreshold",
            ],
        ),
        treat_missing_data=dict(
            type="str", choices=["breaching", "notBreaching", "ignore", "missing"], default="missing"
        ),
        alarm_actions=dict(type="list", elements="str", default=[]),
        ok_actions=dict(type="list", elements="str", default=[]),
    )
    module = AnsibleAWSModule(
        argument_spec=dict(
            alarms=dict(type="list", elements="dict", required=True, options=alarm_options),
            tags=dict(type="dict", default={}),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        supports_check_mode=True,
    )
    problems = check_alarms(module.params["alarms"], module.params["state"])
    if problems:
        module.fail_json(msg=f"{'; '.join(problems)}. No AWS call was made.")
    client = module.client("cloudwatch", retry_decorator=CLOUDWATCH_RETRY)
    try:
        result = converge(module, client)
    except AnsibleAWSError as e:
        module.fail_json_aws_error(e)
    if not module._diff:
        result.pop("diff")
    module.exit_json(changed=bool(result["changes"]), **result)


if __name__ == "__main__":
    main()
