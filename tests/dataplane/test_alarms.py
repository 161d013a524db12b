"""The alarm evaluator's decisions (datapoints in, state and reason out), the load balancer's
metric datums, and the percentiles of the local CloudWatch: pure functions, no API."""

from __future__ import annotations

import datetime

import pytest

from localcloud.dataplane.alarms import (
    ALARM,
    INSUFFICIENT,
    OK,
    AlarmError,
    alarm_values,
    decide,
    parse_alarm,
    parse_expression,
    window,
)
from localcloud.dataplane.lb.metrics import LbMetrics, bucket, dimension_value
from localcloud.dataplane.registry import TargetRegistry
from localcloud.patches.cloudwatch_metric_statistics import percentile

T0 = int(datetime.datetime(2026, 12, 2, 16, 40, tzinfo=datetime.UTC).timestamp())  # 02/12/26 16:40:00
NOW = T0 + 185.0
LB_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/shop/50dc6c495c0c9188"
TG_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/shop-blue/73e2d6bc24d8a067"
DIMS = [{"Name": "TargetGroup", "Value": "targetgroup/shop-blue/73e2d6bc24d8a067"}]


def plain(**overrides) -> dict:
    alarm = {
        "AlarmName": "shop-blue-5xx",
        "Namespace": "AWS/ApplicationELB",
        "MetricName": "HTTPCode_Target_5XX_Count",
        "Dimensions": DIMS,
        "Statistic": "Sum",
        "Period": 60,
        "EvaluationPeriods": 1,
        "Threshold": 5.0,
        "ComparisonOperator": "GreaterThanThreshold",
    }
    alarm.update(overrides)
    return alarm


def rate_alarm(expression: str = "100 * FILL(errors, 0) / requests", **overrides) -> dict:
    def stat(name):
        return {
            "Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": name, "Dimensions": DIMS},
            "Period": 60,
            "Stat": "Sum",
        }

    alarm = {
        "AlarmName": "shop-blue-5xx-rate",
        "Metrics": [
            {"Id": "rate", "Expression": expression, "ReturnData": True},
            {"Id": "errors", "MetricStat": stat("HTTPCode_Target_5XX_Count"), "ReturnData": False},
            {"Id": "requests", "MetricStat": stat("RequestCount"), "ReturnData": False},
        ],
        "EvaluationPeriods": 1,
        "Threshold": 5.0,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
    }
    alarm.update(overrides)
    return alarm


def points(*values) -> list[tuple[int, float | None]]:
    """Datapoints a minute apart, the last at 16:40:00 (oldest first)."""
    return [(T0 - 60 * (len(values) - 1 - n), value) for n, value in enumerate(values)]


# -- one of one, the reason's wording -------------------------------------------------------------


def test_one_breaching_datapoint_alarms_with_cloudwatchs_reason():
    decision = decide(parse_alarm(plain()), points(12.5), OK, NOW)
    assert decision.state == ALARM
    assert decision.reason == (
        "Threshold Crossed: 1 out of the last 1 datapoints [12.5 (02/12/26 16:40:00)] was greater than the "
        "threshold (5.0) (minimum 1 datapoint for OK -> ALARM transition)."
    )
    assert decision.reason_data["recentDatapoints"] == [12.5]
    assert decision.reason_data["evaluatedDatapoints"] == [{"timestamp": "2026-12-02T16:40:00.000+0000", "value": 12.5}]
    assert decision.reason_data["statistic"] == "Sum"
    assert decision.reason_data["period"] == 60


def test_back_to_ok_says_not_and_names_the_transition():
    decision = decide(parse_alarm(plain()), points(5.0), ALARM, NOW)
    assert decision.state == OK
    assert decision.reason == (
        "Threshold Crossed: 1 out of the last 1 datapoints [5.0 (02/12/26 16:40:00)] was not greater than the "
        "threshold (5.0) (minimum 1 datapoint for ALARM -> OK transition)."
    )


@pytest.mark.parametrize(
    ("operator", "value", "state", "wording"),
    [
        ("GreaterThanOrEqualToThreshold", 5.0, ALARM, "was greater than or equal to"),
        ("GreaterThanOrEqualToThreshold", 4.9, OK, "was not greater than or equal to"),
        ("LessThanThreshold", 4.9, ALARM, "was less than"),
        ("LessThanThreshold", 5.0, OK, "was not less than"),
        ("LessThanOrEqualToThreshold", 5.0, ALARM, "was less than or equal to"),
        ("LessThanOrEqualToThreshold", 5.1, OK, "was not less than or equal to"),
    ],
)
def test_comparison_operators(operator, value, state, wording):
    decision = decide(parse_alarm(plain(ComparisonOperator=operator)), points(value), INSUFFICIENT, NOW)
    assert decision.state == state
    assert f"] {wording} the threshold (5.0)" in decision.reason


# -- M out of N -------------------------------------------------------------------------------------


def test_two_of_three_breaching_alarm_citing_both_newest_first():
    spec = parse_alarm(plain(EvaluationPeriods=3, DatapointsToAlarm=2))
    decision = decide(spec, points(12.0, 1.0, 8.0), OK, NOW)
    assert decision.state == ALARM
    assert decision.reason == (
        "Threshold Crossed: 2 out of the last 3 datapoints [8.0 (02/12/26 16:40:00), 12.0 (02/12/26 16:38:00)] "
        "were greater than the threshold (5.0) (minimum 2 datapoints for OK -> ALARM transition)."
    )


def test_one_of_three_breaching_is_not_enough_for_two_of_three():
    spec = parse_alarm(plain(EvaluationPeriods=3, DatapointsToAlarm=2))
    decision = decide(spec, points(12.0, 1.0, 2.0), ALARM, NOW)
    assert decision.state == OK
    assert decision.reason.startswith("Threshold Crossed: 2 out of the last 3 datapoints [2.0 (02/12/26 16:40:00), 1.0")
    assert "were not greater than the threshold (5.0) (minimum 2 datapoints for ALARM -> OK transition)." in (
        decision.reason
    )


def test_datapoints_to_alarm_defaults_to_the_evaluation_periods():
    spec = parse_alarm(plain(EvaluationPeriods=3))
    assert spec.datapoints_to_alarm == 3
    assert decide(spec, points(9.0, 9.0, 1.0), OK, NOW).state == OK
    assert decide(spec, points(9.0, 9.0, 9.0), OK, NOW).state == ALARM


# -- missing data -------------------------------------------------------------------------------------


def test_no_data_at_all_per_treatment():
    none = points(None, None, None)
    missing = decide(parse_alarm(plain(EvaluationPeriods=3)), none, OK, NOW)
    assert (missing.state, missing.reason) == (INSUFFICIENT, "Insufficient Data: 3 datapoints were unknown.")
    assert decide(parse_alarm(plain(EvaluationPeriods=3, TreatMissingData="ignore")), none, ALARM, NOW) is None
    breaching = decide(parse_alarm(plain(EvaluationPeriods=3, TreatMissingData="breaching")), none, OK, NOW)
    assert breaching.state == ALARM
    assert breaching.reason == (
        "Threshold Crossed: no datapoints were received for 3 periods and 3 missing datapoints were treated as "
        "[Breaching]."
    )
    calm = decide(parse_alarm(plain(EvaluationPeriods=3, TreatMissingData="notBreaching")), none, ALARM, NOW)
    assert calm.state == OK
    assert calm.reason.endswith("were treated as [NonBreaching].")


@pytest.mark.parametrize(
    ("treatment", "values", "state"),
    [
        # 3 of 3, one datapoint there and breaching: missing/ignore judge what is there (all breach)
        ("missing", (None, None, 9.0), ALARM),
        ("ignore", (None, None, 9.0), ALARM),
        ("breaching", (None, None, 9.0), ALARM),
        ("notBreaching", (None, None, 9.0), OK),
        # one there, not breaching
        ("missing", (None, None, 1.0), OK),
        ("breaching", (None, None, 1.0), OK),  # 2 of 3 breaching (missing ones), 3 needed
        # two there, one breaching: fewer than 3 breach whatever the treatment, except breaching
        ("missing", (None, 1.0, 9.0), OK),
        ("breaching", (None, 9.0, 9.0), ALARM),
        ("notBreaching", (None, 9.0, 9.0), OK),
    ],
)
def test_partly_missing_data_per_treatment(treatment, values, state):
    spec = parse_alarm(plain(EvaluationPeriods=3, TreatMissingData=treatment))
    assert decide(spec, points(*values), INSUFFICIENT, NOW).state == state


def test_missing_datapoints_treated_as_breaching_are_named_in_the_reason():
    spec = parse_alarm(plain(EvaluationPeriods=3, TreatMissingData="breaching"))
    decision = decide(spec, points(None, 9.0, None), OK, NOW)
    assert decision.reason == (
        "Threshold Crossed: 1 out of the last 1 datapoints [9.0 (02/12/26 16:39:00)] and 2 missing datapoints "
        "treated as [Breaching] was greater than the threshold (5.0) (minimum 3 datapoints for OK -> ALARM "
        "transition)."
    )


# -- extended statistics (p99) ----------------------------------------------------------------------


def test_an_extended_statistic_alarm_reads_that_percentile():
    spec = parse_alarm(
        plain(MetricName="TargetResponseTime", Statistic=None, ExtendedStatistic="p99", Threshold=0.5, Period=10)
    )
    assert [(q.name, q.stat, q.period) for q in spec.queries] == [("TargetResponseTime", "p99", 10)]
    decision = decide(spec, alarm_values(spec, {"m1": {T0: 0.75}}, [T0]), OK, NOW)
    assert decision.state == ALARM
    assert decision.reason_data["statistic"] == "p99"
    assert "[0.75 (02/12/26 16:40:00)] was greater than the threshold (0.5)" in decision.reason


def test_percentiles_by_nearest_rank_over_weighted_values():
    pairs = [(0.01, 98.0), (0.2, 1.0), (0.9, 1.0)]  # 100 samples
    assert percentile(pairs, "p50") == 0.01
    assert percentile(pairs, "p98") == 0.01
    assert percentile(pairs, "p99") == 0.2
    assert percentile(pairs, "p99.5") == 0.9
    assert percentile(pairs, "p100") == 0.9
    assert percentile([], "p99") is None


# -- metric math ---------------------------------------------------------------------------------


def test_metric_math_error_rate_per_period():
    spec = parse_alarm(rate_alarm())
    assert spec.period == 60 and spec.expression == "100 * FILL(errors, 0) / requests"
    starts = [T0 - 120, T0 - 60, T0]
    series = {"errors": {T0 - 60: 3.0, T0: 10.0}, "requests": {T0 - 120: 40.0, T0 - 60: 60.0, T0: 80.0}}
    assert alarm_values(spec, series, starts) == [(T0 - 120, 0.0), (T0 - 60, 5.0), (T0, 12.5)]
    decision = decide(spec, alarm_values(spec, series, [T0]), OK, NOW)
    assert decision.reason == (
        "Threshold Crossed: 1 out of the last 1 datapoints [12.5 (02/12/26 16:40:00)] was greater than the "
        "threshold (5.0) (minimum 1 datapoint for OK -> ALARM transition)."
    )


def test_metric_math_no_requests_or_a_zero_divisor_is_no_datapoint():
    spec = parse_alarm(rate_alarm())
    assert alarm_values(spec, {"errors": {T0: 1.0}}, [T0]) == [(T0, None)]  # no requests: no datapoint
    assert alarm_values(spec, {"errors": {T0: 1.0}, "requests": {T0: 0.0}}, [T0]) == [(T0, None)]
    unfilled = parse_alarm(rate_alarm("100 * errors / requests"))
    assert alarm_values(unfilled, {"requests": {T0: 10.0}}, [T0]) == [(T0, None)]  # no 5xx published: none


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("errors + requests * 2", 21.0),
        ("(errors + requests) * 2", 22.0),
        ("requests - errors - 1", 8.0),
        ("requests / errors / 2", 5.0),
        ("-errors + 10", 9.0),
        ("FILL(missing_one, -2) * errors", -2.0),
        ("1.5e1 - requests", 5.0),
    ],
)
def test_metric_math_arithmetic(expression, value):
    node = parse_expression(expression)
    from localcloud.dataplane.alarms import evaluate_expression

    assert evaluate_expression(node, {"errors": 1.0, "requests": 10.0, "missing_one": None}) == value


@pytest.mark.parametrize(
    ("alarm", "message"),
    [
        (rate_alarm("100 * errors / (requests"), "expected )"),
        (rate_alarm("RATE(errors)"), "function RATE is not evaluated locally"),
        (rate_alarm("errors requests"), "unexpected requests"),
        (plain(ComparisonOperator="LessThanLowerOrGreaterThanUpperThreshold"), "is not evaluated locally"),
        (plain(TreatMissingData="sometimes"), "TreatMissingData 'sometimes'"),
        (rate_alarm(Metrics=rate_alarm()["Metrics"][1:]), "exactly one of its metrics must return data"),
    ],
)
def test_alarms_it_cannot_evaluate_are_refused_with_the_reason(alarm, message):
    with pytest.raises(AlarmError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_alarm(alarm)


def test_the_window_is_the_last_whole_periods_that_ended_lag_seconds_ago():
    spec = parse_alarm(plain(Period=10, EvaluationPeriods=3))
    assert window(spec, T0 + 12.9, lag=3.0) == [T0 - 30, T0 - 20, T0 - 10]  # 16:40:00-10 ended 2.9 s ago
    assert window(spec, T0 + 13.0, lag=3.0) == [T0 - 20, T0 - 10, T0]  # ... 3 s ago: it is in
    assert window(spec, T0 + 22.9, lag=3.0) == [T0 - 20, T0 - 10, T0]


# -- the load balancer's datums ---------------------------------------------------------------------


def test_lb_metrics_datums_per_second_group_and_balancer():
    registry = TargetRegistry()
    for ip in ("10.0.1.5", "10.0.1.6"):
        registry.register(TG_ARN, ip, 8000, f"task-{ip}")
        for _ in range(2):
            registry.record_check(TG_ARN, ip, 8000, ok=True, reason="", healthy_threshold=2, unhealthy_threshold=2)
    registry.register(TG_ARN, "10.0.1.7", 8000, "task-sick")
    for _ in range(2):
        registry.record_check(
            TG_ARN, "10.0.1.7", 8000, ok=False, reason="x", healthy_threshold=2, unhealthy_threshold=2
        )
    clock = [T0 + 0.5]
    metrics = LbMetrics(lambda: None, registry, clock=lambda: clock[0])
    metrics.topology = lambda: {TG_ARN: {LB_ARN}}
    for n in range(10):
        metrics.target_response(LB_ARN, TG_ARN, 500 if n < 2 else 200, 0.0123 if n else 0.5)
    metrics.lb_response(LB_ARN, TG_ARN, 502)  # a target chosen, its connection failed
    metrics.lb_response(LB_ARN, None, 503)  # no target
    metrics.lb_response(LB_ARN, None, 301)  # a redirect
    clock[0] = T0 + 1.2
    metrics.target_response(LB_ARN, TG_ARN, 200, 0.01)  # the next second: not collected yet

    datums = metrics.collect(T0 + 1.5)
    got = {
        (d["MetricName"], tuple(x["Name"] for x in d["Dimensions"])): d.get("Value", (d.get("Values"), d.get("Counts")))
        for d in datums
    }
    tg, lb = ("TargetGroup", "LoadBalancer"), ("LoadBalancer",)
    assert got == {
        ("RequestCount", tg): 11.0,
        ("HTTPCode_Target_2XX_Count", tg): 8.0,
        ("HTTPCode_Target_5XX_Count", tg): 2.0,
        ("TargetResponseTime", tg): ([0.012, 0.5], [9.0, 1.0]),
        ("RequestCountPerTarget", ("TargetGroup",)): 5.5,  # 11 requests, 2 healthy targets
        ("RequestCountPerTarget", tg): 5.5,
        ("RequestCount", lb): 11.0,
        ("HTTPCode_Target_2XX_Count", lb): 8.0,
        ("HTTPCode_Target_5XX_Count", lb): 2.0,
        ("TargetResponseTime", lb): ([0.012, 0.5], [9.0, 1.0]),
        ("HTTPCode_ELB_502_Count", lb): 1.0,
        ("HTTPCode_ELB_503_Count", lb): 1.0,
        ("HTTPCode_ELB_5XX_Count", lb): 2.0,
        ("HTTPCode_ELB_3XX_Count", lb): 1.0,
        ("HealthyHostCount", tg): 2.0,
        ("UnHealthyHostCount", tg): 1.0,
    }
    first = next(d for d in datums if d["MetricName"] == "RequestCount")
    assert first["Timestamp"] == datetime.datetime.fromtimestamp(T0, datetime.UTC)
    assert first["StorageResolution"] == 1 and first["Unit"] == "Count"
    assert first["Dimensions"] == [
        {"Name": "TargetGroup", "Value": "targetgroup/shop-blue/73e2d6bc24d8a067"},
        {"Name": "LoadBalancer", "Value": "app/shop/50dc6c495c0c9188"},
    ]
    # The next second comes with the next collection, and only once.
    later = [d for d in metrics.collect(T0 + 2.5) if d["MetricName"] == "RequestCount"]
    assert [d["Value"] for d in later] == [1.0, 1.0]
    assert not [d for d in metrics.collect(T0 + 3.5) if d["MetricName"] == "RequestCount"]


def test_response_times_beyond_150_distinct_values_are_split_into_datums():
    metrics = LbMetrics(lambda: None, TargetRegistry(), clock=lambda: T0 + 0.1)
    for n in range(400):
        metrics.target_response(LB_ARN, TG_ARN, 200, 0.001 * 1.02**n)  # 1 ms to 2.7 s: ~270 distinct
    parts = [
        d for d in metrics.collect(T0 + 1) if d["MetricName"] == "TargetResponseTime" and len(d["Dimensions"]) == 2
    ]
    assert len(parts) >= 2 and all(len(d["Values"]) <= 150 for d in parts)
    assert sum(sum(d["Counts"]) for d in parts) == 400


def test_dimension_values_and_buckets():
    assert dimension_value(LB_ARN) == "app/shop/50dc6c495c0c9188"
    assert dimension_value(TG_ARN) == "targetgroup/shop-blue/73e2d6bc24d8a067"
    assert bucket(0.012345) == 0.012 and bucket(1.26) == 1.3 and bucket(0) == 0.0
