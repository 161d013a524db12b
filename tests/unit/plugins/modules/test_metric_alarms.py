"""Unit tests for ecs_production.platform.metric_alarms: input refused before any call, the PutMetricAlarm
parameters, what counts as a difference, and main() over a fake CloudWatch (one read, writes only where needed)."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.ecs_production.platform.plugins.modules import metric_alarms as mod
from module_runner import run_module

FIVE_XX = {
    "name": "app-green-5xx",
    "description": "5xx",
    "namespace": "AWS/ApplicationELB",
    "metric_name": "HTTPCode_Target_5XX_Count",
    "dimensions": {"TargetGroup": "targetgroup/app-green/1", "LoadBalancer": "app/app/2"},
    "statistic": "Sum",
    "period": 60,
    "evaluation_periods": 1,
    "threshold": 5,
    "comparison": "GreaterThanThreshold",
    "treat_missing_data": "notBreaching",
}
RATE = {
    "name": "app-green-rate",
    "evaluation_periods": 2,
    "threshold": 5,
    "comparison": "GreaterThanThreshold",
    "metrics": [
        {
            "Id": "e",
            "MetricStat": {"Metric": {"Namespace": "N", "MetricName": "E"}, "Period": 60, "Stat": "Sum"},
            "ReturnData": False,
        },
        {"Id": "rate", "Expression": "100 * e / 1", "ReturnData": True},
    ],
}


@pytest.mark.parametrize(
    ("alarm", "problem"),
    [
        ({"period": 45}, "period must be 10, 20, 30 or a multiple of 60, not 45"),
        ({"extended_statistic": "p99"}, "give exactly one of statistic and extended_statistic"),
        ({"statistic": None}, "give exactly one of statistic and extended_statistic"),
        ({"namespace": None}, "namespace and metric_name are required without metrics"),
        ({"period": None}, "period is required without metrics"),
        ({"datapoints_to_alarm": 2}, "datapoints_to_alarm must be 1 to evaluation_periods (1), not 2"),
        ({"evaluation_periods": None}, "evaluation_periods required"),
        (
            {"metrics": RATE["metrics"]},
            "give either metrics (metric math) or namespace/metric_name/statistic, not both",
        ),
    ],
)
def test_bad_alarms_are_refused_naming_the_alarm(alarm, problem):
    problems = mod.check_alarms([dict(FIVE_XX, **alarm)], "present")
    assert any(p.startswith("alarms.app-green-5xx: ") and problem in p for p in problems), problems


def test_metric_math_needs_exactly_one_expression_returning_data():
    assert mod.check_alarms([RATE], "present") == []
    both = dict(RATE, metrics=[dict(m, ReturnData=True) for m in RATE["metrics"]])
    assert "exactly one of metrics must return data (ReturnData), not 2" in mod.check_alarms([both], "present")[0]


def test_names_are_unique_and_absent_needs_only_names():
    assert "each alarm needs a name of its own" in mod.check_alarms([FIVE_XX, FIVE_XX], "present")[0]
    assert mod.check_alarms([{"name": "x"}], "absent") == []


def test_put_params_of_a_single_metric_and_of_metric_math():
    params = mod.put_params(FIVE_XX)
    assert params["Dimensions"] == [
        {"Name": "LoadBalancer", "Value": "app/app/2"},
        {"Name": "TargetGroup", "Value": "targetgroup/app-green/1"},
    ]
    assert (params["Statistic"], params["Period"], params["DatapointsToAlarm"], params["Threshold"]) == (
        "Sum",
        60,
        1,
        5.0,
    )
    assert "ExtendedStatistic" not in params and "Metrics" not in params
    math = mod.put_params(RATE)
    assert math["Metrics"] == RATE["metrics"] and "Namespace" not in math and "Period" not in math


def described(params: dict, **changes) -> dict:
    """An alarm as DescribeAlarms returns it for these PutMetricAlarm parameters (DatapointsToAlarm left out, as
    for an alarm created without it)."""
    found = {k: v for k, v in params.items() if k != "DatapointsToAlarm"}
    found.update({"StateValue": "OK", "AlarmArn": "arn:x", "StateReason": "r", **changes})
    return found


def test_differences_name_the_settings_and_ignore_what_aws_adds():
    params = mod.put_params(FIVE_XX)
    assert mod.differences(described(params), params) == []
    assert mod.differences(described(params, Threshold=10.0), params) == ["Threshold"]
    reordered = dict(params, Dimensions=list(reversed(params["Dimensions"])))
    assert mod.differences(described(reordered), params) == []
    assert mod.differences(
        described(params, DatapointsToAlarm=1), mod.put_params(dict(FIVE_XX, evaluation_periods=3))
    ) == [
        "DatapointsToAlarm",
        "EvaluationPeriods",
    ]


def test_metric_math_dimensions_in_another_order_are_no_difference():
    dimensions = [{"Name": "TargetGroup", "Value": "targetgroup/g/1"}, {"Name": "LoadBalancer", "Value": "app/a/2"}]
    query = {
        "Id": "e",
        "MetricStat": {
            "Metric": {"Namespace": "N", "MetricName": "E", "Dimensions": dimensions},
            "Period": 60,
            "Stat": "Sum",
        },
        "ReturnData": False,
    }
    params = mod.put_params(dict(RATE, metrics=[query, RATE["metrics"][1]]))
    swapped = dict(query, MetricStat=dict(query["MetricStat"], Metric=dict(query["MetricStat"]["Metric"])))
    swapped["MetricStat"]["Metric"]["Dimensions"] = list(reversed(dimensions))
    assert mod.differences(described(dict(params, Metrics=[swapped, RATE["metrics"][1]])), params) == []
    other = [{"Name": "TargetGroup", "Value": "targetgroup/g/9"}, dimensions[1]]
    swapped["MetricStat"]["Metric"]["Dimensions"] = other
    assert mod.differences(described(dict(params, Metrics=[swapped, RATE["metrics"][1]])), params) == ["Metrics"]


class FakeCloudWatch:
    def __init__(self, alarms: dict | None = None):
        self.alarms = alarms or {}
        self.calls: list[tuple[str, dict]] = []

    def describe_alarms(self, aws_retry, **kwargs):  # noqa: ARG002 - the wrappers always ask for retries
        self.calls.append(("describe_alarms", kwargs))
        return {"MetricAlarms": [self.alarms[n] for n in kwargs["AlarmNames"] if n in self.alarms]}

    def put_metric_alarm(self, aws_retry, **kwargs):  # noqa: ARG002
        self.calls.append(("put_metric_alarm", kwargs))
        self.alarms[kwargs["AlarmName"]] = described(kwargs, StateValue="INSUFFICIENT_DATA")

    def delete_alarms(self, aws_retry, **kwargs):  # noqa: ARG002
        self.calls.append(("delete_alarms", kwargs))
        for name in kwargs["AlarmNames"]:
            self.alarms.pop(name, None)


def run(monkeypatch, capsys, client, **args):
    return run_module(mod, monkeypatch, capsys, client, **args)


def test_main_creates_then_changes_nothing_then_updates_one_then_deletes_in_one_call(monkeypatch, capsys):
    client = FakeCloudWatch()
    result = run(monkeypatch, capsys, client, alarms=[FIVE_XX, RATE], tags={"Project": "p"})
    assert result["changed"] and sorted(result["changes"]) == ["create app-green-5xx", "create app-green-rate"]
    puts = [kwargs for name, kwargs in client.calls if name == "put_metric_alarm"]
    assert [p["Tags"] for p in puts] == [[{"Key": "Project", "Value": "p"}]] * 2
    assert [name for name, _kwargs in client.calls].count("describe_alarms") == 1

    client.calls.clear()
    result = run(monkeypatch, capsys, client, alarms=[FIVE_XX, RATE])
    assert not result["changed"] and [name for name, _kwargs in client.calls] == ["describe_alarms"]
    assert result["alarms"] == {"app-green-5xx": "INSUFFICIENT_DATA", "app-green-rate": "INSUFFICIENT_DATA"}

    client.calls.clear()
    result = run(monkeypatch, capsys, client, alarms=[dict(FIVE_XX, threshold=10), RATE], _ansible_diff=True)
    assert result["changes"] == ["update app-green-5xx: Threshold"]
    assert result["diff"]["before"]["app-green-5xx"]["Threshold"] == 5.0
    assert [kwargs["AlarmName"] for name, kwargs in client.calls if name == "put_metric_alarm"] == ["app-green-5xx"]

    client.calls.clear()
    result = run(monkeypatch, capsys, client, alarms=[{"name": "app-green-5xx"}, {"name": "gone"}], state="absent")
    assert result["changes"] == ["delete app-green-5xx"]
    assert client.calls[-1] == ("delete_alarms", {"AlarmNames": ["app-green-5xx"]})


def test_main_check_mode_writes_nothing(monkeypatch, capsys):
    client = FakeCloudWatch()
    result = run(monkeypatch, capsys, client, alarms=[FIVE_XX], _ansible_check_mode=True)
    assert result["changed"] and client.alarms == {}
    assert [name for name, _kwargs in client.calls] == ["describe_alarms"]


def test_main_refuses_bad_input_before_any_client(monkeypatch, capsys):
    made = []
    monkeypatch.setattr(
        mod.AnsibleAWSModule,
        "client",
        lambda _self, service, retry_decorator=None: made.append(service),  # noqa: ARG005
    )
    with patch_module_args({"region": "us-east-1", "alarms": [dict(FIVE_XX, period=45)]}), pytest.raises(SystemExit):
        mod.main()
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] and "No AWS call was made" in result["msg"] and made == []
