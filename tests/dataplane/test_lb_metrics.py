"""The load balancer's AWS/ApplicationELB metrics and the alarms that evaluate them, for real:
traffic through the local load balancer, read back with GetMetricStatistics from the local API,
and a metric math alarm that the evaluator moves from the published data."""

from __future__ import annotations

import datetime
import json
import re
import threading
import time
from collections import Counter

import pytest

from localcloud.dataplane.alarms import AlarmEvaluator
from localcloud.dataplane.lb.metrics import LbMetrics, dimension_value
from localcloud.dataplane.registry import TargetRegistry
from tests.dataplane.conftest import lb_forward, lb_wait_until
from tests.dataplane.test_lb import (
    blue_green,  # noqa: F401 - the fixture (a load balancer "shop")
    https_client,
    register,
)

pytestmark = pytest.mark.timeout(120)
UTC = datetime.UTC


def _plane(lb_cloud, lb_planes, flush: float = 0.5):
    registry = TargetRegistry()
    metrics = LbMetrics(lambda: lb_cloud.api.client("cloudwatch"), registry, flush_interval=flush)
    return lb_planes(registry, metrics=metrics), metrics


def _dims(shop, colour: str | None) -> list[dict]:
    dims = [{"Name": "LoadBalancer", "Value": dimension_value(shop["lb"])}]
    if colour:
        dims.insert(0, {"Name": "TargetGroup", "Value": dimension_value(shop[colour])})
    return dims


def _datapoints(cloudwatch, name, dims, since, *, period=60, statistics=("Sum",), extended=(), margin=60):
    params = {
        "Namespace": "AWS/ApplicationELB",
        "MetricName": name,
        "Dimensions": dims,
        "StartTime": since - datetime.timedelta(seconds=margin),
        "EndTime": datetime.datetime.now(UTC) + datetime.timedelta(seconds=60),
        "Period": period,
    }
    if statistics:
        params["Statistics"] = list(statistics)
    if extended:
        params["ExtendedStatistics"] = list(extended)
    return cloudwatch.get_metric_statistics(**params)["Datapoints"]


def _sum(cloudwatch, name, dims, since, **options) -> float:
    return sum(point["Sum"] for point in _datapoints(cloudwatch, name, dims, since, **options))


def test_get_metric_statistics_returns_the_requests_sent_per_target_group(lb_cloud, lb_planes, request):
    shop = request.getfixturevalue("blue_green")
    plane, _metrics = _plane(lb_cloud, lb_planes)
    register(plane, shop["blue"], shop["blue_task"])
    register(plane, shop["green"], shop["green_task"])
    lb_cloud.elbv2.modify_listener(
        ListenerArn=shop["https"], DefaultActions=lb_forward((shop["blue"], 70), (shop["green"], 30))
    )
    lb_wait_until(lambda: plane.status()["listeners"][1]["default_action"]["weights"] == {"blue": 70, "green": 30})
    since = datetime.datetime.now(UTC)
    sent: Counter = Counter()
    client = https_client(plane)
    try:
        # At least 10 s of traffic (more than one 10 s period) and 300 requests: 1 in 10 answered 500
        # by the task, 5 in a row of every 50 answered after 50 ms (at least 5 % of each group's:
        # its p99, not its p50).
        began = time.monotonic()
        number = 0
        while time.monotonic() < began + 10.5 or (number < 300 and time.monotonic() < began + 60):
            path = "/status/500" if number % 10 == 3 else "/slow?s=0.05" if 7 <= number % 50 <= 11 else "/items"
            response = client.get(path)
            sent[response.json()["deployment"], response.status // 100] += 1
            number += 1
    finally:
        client.close()
    cloudwatch = lb_cloud.api.client("cloudwatch")
    requests = {colour: sent[colour, 2] + sent[colour, 5] for colour in ("blue", "green")}
    assert requests["blue"] >= 200 and requests["green"] >= 80, sent

    # Published within a couple of flushes; every request counted once, per group and per balancer.
    lb_wait_until(
        lambda: _sum(cloudwatch, "RequestCount", _dims(shop, None), since) == sum(requests.values()), timeout=10
    )
    for colour in ("blue", "green"):
        dims = _dims(shop, colour)
        assert _sum(cloudwatch, "RequestCount", dims, since) == requests[colour]
        assert _sum(cloudwatch, "HTTPCode_Target_2XX_Count", dims, since) == sent[colour, 2]
        assert _sum(cloudwatch, "HTTPCode_Target_5XX_Count", dims, since) == sent[colour, 5]
        assert _sum(cloudwatch, "RequestCountPerTarget", dims[:1], since) == requests[colour]  # one target each
        healthy = _datapoints(cloudwatch, "HealthyHostCount", dims, since, statistics=("Maximum", "Minimum"), margin=0)
        assert healthy and {p["Maximum"] for p in healthy} == {1.0} and {p["Minimum"] for p in healthy} == {1.0}
        unhealthy = _datapoints(cloudwatch, "UnHealthyHostCount", dims, since, statistics=("Maximum",), margin=0)
        assert unhealthy and {p["Maximum"] for p in unhealthy} == {0.0}
        # Response times: every request a sample; p99 is a slow one, p50 is not.
        times = _datapoints(
            cloudwatch, "TargetResponseTime", dims, since, statistics=("SampleCount",), extended=("p50", "p99")
        )
        assert sum(p["SampleCount"] for p in times) == requests[colour]
        busiest = max(times, key=lambda p: p["SampleCount"])
        assert busiest["ExtendedStatistics"]["p99"] >= 0.045, busiest
        assert busiest["ExtendedStatistics"]["p50"] < 0.045, busiest
    assert _sum(cloudwatch, "HTTPCode_Target_5XX_Count", _dims(shop, None), since) == sum(
        sent[c, 5] for c in ("blue", "green")
    )
    assert _sum(cloudwatch, "HTTPCode_ELB_5XX_Count", _dims(shop, None), since) == 0
    # High resolution: 10 s periods on the clock, the traffic spread over more than one.
    tens = _datapoints(cloudwatch, "RequestCount", _dims(shop, "blue"), since, period=10)
    assert len(tens) >= 2
    assert {p["Timestamp"].timestamp() % 10 for p in tens} == {0.0}
    assert sum(p["Sum"] for p in tens) == requests["blue"]


def test_a_5xx_rate_alarm_fires_from_real_traffic_citing_the_data(lb_cloud, lb_planes, request):
    shop = request.getfixturevalue("blue_green")
    plane, _metrics = _plane(lb_cloud, lb_planes)
    register(plane, shop["blue"], shop["blue_task"])
    cloudwatch = lb_cloud.api.client("cloudwatch")
    name = "shop-blue-5xx-rate"
    dims = _dims(shop, "blue")

    def stat(metric: str) -> dict:
        return {
            "Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": metric, "Dimensions": dims},
            "Period": 10,
            "Stat": "Sum",
        }

    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Metrics=[
            {"Id": "rate", "Expression": "100 * FILL(errors, 0) / requests", "Label": "5xx %", "ReturnData": True},
            {"Id": "errors", "MetricStat": stat("HTTPCode_Target_5XX_Count"), "ReturnData": False},
            {"Id": "requests", "MetricStat": stat("RequestCount"), "ReturnData": False},
        ],
        ComparisonOperator="GreaterThanThreshold",
        Threshold=5.0,
        EvaluationPeriods=1,
        DatapointsToAlarm=1,
        TreatMissingData="notBreaching",
    )
    evaluator = AlarmEvaluator(lb_cloud.api.client, lambda: ["us-east-1"], interval=0.5, lag=1.5)
    failing = {"share": 5}  # 1 in 5 requests fails: 20 %
    stop = threading.Event()

    def traffic() -> None:
        client = https_client(plane)
        try:
            number = 0
            while not stop.is_set():
                share = failing["share"]
                client.get("/status/503" if share and number % share == 0 else "/items")
                number += 1
                time.sleep(0.005)
        finally:
            client.close()

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    evaluator.start()
    try:
        alarm = lb_wait_until(lambda: _alarm(cloudwatch, name, "ALARM"), timeout=30)
        match = re.fullmatch(
            r"Threshold Crossed: 1 out of the last 1 datapoints \[([0-9.]+) \((\d\d/\d\d/\d\d \d\d:\d\d:\d\d)\)\] "
            r"was greater than the threshold \(5\.0\) \(minimum 1 datapoint for (OK|INSUFFICIENT_DATA) -> ALARM "
            r"transition\)\.",
            alarm["StateReason"],
        )
        assert match, alarm["StateReason"]
        # The cited value is that period's 5xx share of the requests, as GetMetricStatistics has it.
        start = datetime.datetime.strptime(match[2], "%d/%m/%y %H:%M:%S").replace(tzinfo=UTC)
        window = {
            "StartTime": start,
            "EndTime": start + datetime.timedelta(seconds=10),
            "Period": 10,
            "Namespace": "AWS/ApplicationELB",
            "Dimensions": dims,
            "Statistics": ["Sum"],
        }
        errors = cloudwatch.get_metric_statistics(MetricName="HTTPCode_Target_5XX_Count", **window)["Datapoints"]
        requests = cloudwatch.get_metric_statistics(MetricName="RequestCount", **window)["Datapoints"]
        assert float(match[1]) == pytest.approx(100 * errors[0]["Sum"] / requests[0]["Sum"])
        assert 15 <= float(match[1]) <= 25
        data = json.loads(alarm["StateReasonData"])
        assert data["evaluatedDatapoints"][0]["value"] == pytest.approx(float(match[1]))

        # The tasks recover: the next period under the threshold brings the alarm back to OK.
        failing["share"] = 0
        alarm = lb_wait_until(lambda: _alarm(cloudwatch, name, "OK"), timeout=30)
        match = re.fullmatch(
            r"Threshold Crossed: 1 out of the last 1 datapoints \[([0-9.e-]+) \(.*\)\] was not greater than the "
            r"threshold \(5\.0\) \(minimum 1 datapoint for ALARM -> OK transition\)\.",
            alarm["StateReason"],
        )
        assert match and float(match[1]) <= 5.0, alarm["StateReason"]
    finally:
        stop.set()
        evaluator.stop()
        sender.join(timeout=10)
        cloudwatch.delete_alarms(AlarmNames=[name])


def _alarm(cloudwatch, name: str, state: str) -> dict | None:
    alarms = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    return alarms[0] if alarms and alarms[0]["StateValue"] == state else None


def test_a_hand_set_state_holds_a_period_then_the_data_decides_and_only_changes_are_recorded(lb_cloud):
    cloudwatch = lb_cloud.api.client("cloudwatch")
    name, dims = "queue-depth", [{"Name": "Queue", "Value": "orders"}]
    now = int(time.time())
    # A metric at 50 every second from 30 s ago to 60 s ahead: every 10 s period breaches.
    cloudwatch.put_metric_data(
        Namespace="Shop",
        MetricData=[
            {
                "MetricName": "Depth",
                "Dimensions": dims,
                "Timestamp": datetime.datetime.fromtimestamp(second, UTC),
                "Value": 50.0,
                "StorageResolution": 1,
            }
            for second in range(now - 30, now + 60)
        ],
    )
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace="Shop",
        MetricName="Depth",
        Dimensions=dims,
        Statistic="Maximum",
        Period=10,
        EvaluationPeriods=2,
        Threshold=10.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    evaluator = AlarmEvaluator(lb_cloud.api.client, lambda: ["us-east-1"], interval=0.3, lag=0.5)
    evaluator.start()
    try:
        alarm = lb_wait_until(lambda: _alarm(cloudwatch, name, "ALARM"), timeout=10)
        assert alarm["StateReason"].startswith("Threshold Crossed: 2 out of the last 2 datapoints [50.0 (")
        assert alarm["StateReason"].endswith(
            "were greater than the threshold (10.0) (minimum 2 datapoints for OK -> ALARM transition)."
        )
        # The evaluator counts a change just after its SetAlarmState returns: wait for the count.
        lb_wait_until(lambda: evaluator.changes >= 1, timeout=5)
        assert evaluator.changes == 1
        time.sleep(11)  # another period evaluated, still breaching: no new state change
        assert _alarm(cloudwatch, name, "ALARM")["StateUpdatedTimestamp"] == alarm["StateUpdatedTimestamp"]
        assert evaluator.changes == 1
        # An operator sets OK: it holds for a period (CloudWatch: until the next evaluation), then
        # the data puts the alarm back in ALARM.
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="silenced by hand")
        set_at = time.monotonic()
        alarm = lb_wait_until(lambda: _alarm(cloudwatch, name, "ALARM"), timeout=20)
        assert time.monotonic() - set_at >= 9.0
        assert "for OK -> ALARM transition" in alarm["StateReason"]
        lb_wait_until(lambda: evaluator.changes >= 2, timeout=5)
        assert evaluator.changes == 2
    finally:
        evaluator.stop()
        cloudwatch.delete_alarms(AlarmNames=[name])
