"""Application Auto Scaling target tracking on the local cloud: the decision as AWS makes it (pure
unit tests), and the scaler reading targets, policies, services and CloudWatch datapoints through a
real local AWS API and changing the service's desiredCount."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import uuid

import pytest

from localcloud.dataplane.controller import DataPlane
from localcloud.dataplane.scaling import (
    CPU,
    MEMORY,
    REQUESTS,
    Decision,
    MetricSource,
    NotFollowed,
    Policy,
    Reading,
    ServiceScaler,
    decide,
    enabled_by_env,
    metric_source,
    parse_policy,
    proposal,
    window_value,
)

LABEL = "app/items-lb/50dc6c495c0c9188/targetgroup/items-blue/6d0ecf831eec9f09"
REQUEST_POLICY = Policy("requests", REQUESTS, 100.0, scale_out_cooldown=60, scale_in_cooldown=120, resource_label=LABEL)
CPU_POLICY = Policy("cpu", CPU, 50.0, scale_out_cooldown=60, scale_in_cooldown=120)
BOTH_SUSPENDED = {"DynamicScalingInSuspended": True, "DynamicScalingOutSuspended": True}
NOW = 10_000.0


def _decide(current: int, *readings: Reading, minimum: int = 1, maximum: int = 10, **options) -> Decision | None:
    return decide(current, minimum, maximum, options.pop("suspended", None), list(readings), now=NOW, **options)


def requests(short: float | None, long: float | None = None, **changes) -> Reading:
    policy = dataclasses.replace(REQUEST_POLICY, **changes)
    return Reading(policy, short, long)


def cpu(short: float | None, long: float | None = None, **changes) -> Reading:
    policy = dataclasses.replace(CPU_POLICY, **changes)
    return Reading(policy, short, long)


# ---- the decision -------------------------------------------------------------------------------------


def test_proposals_round_up_and_a_service_at_zero_asks_for_one():
    assert proposal(1, 412.0, 100.0) == 5
    assert proposal(3, 100.0, 100.0) == 3
    assert proposal(3, 300.0, 100.0) == 9  # exactly 9, not 10 from a rounding error
    assert proposal(4, 30.0, 100.0) == 2
    assert proposal(0, 5.0, 100.0) == 1
    assert proposal(0, 0.0, 100.0) == 0


def test_scale_out_on_requests_to_the_proposal_with_the_reason():
    decision = _decide(1, requests(412.0, 200.0))
    assert decision == Decision(1, 5, "out", "ALBRequestCountPerTarget 412.0 > target 100.0")


def test_scale_out_on_cpu_and_the_largest_proposal_wins():
    assert _decide(2, cpu(80.0, 60.0)) == Decision(2, 4, "out", "ECSServiceAverageCPUUtilization 80.0 > target 50.0")
    # requests ask for ceil(2 * 150 / 100) = 3, CPU for ceil(2 * 80 / 50) = 4
    decision = _decide(2, requests(150.0, 150.0), cpu(80.0, 80.0))
    assert (decision.to_count, decision.direction) == (4, "out")
    assert (
        decision.reason
        == "ALBRequestCountPerTarget 150.0 > target 100.0; ECSServiceAverageCPUUtilization 80.0 > target 50.0"
    )


def test_scale_out_is_capped_at_max_capacity_and_nothing_happens_at_max():
    decision = _decide(2, requests(1000.0, 1000.0), maximum=6)
    assert (decision.from_count, decision.to_count) == (2, 6)
    assert decision.reason.endswith("(capped at MaxCapacity 6)")
    assert _decide(6, requests(1000.0, 1000.0), maximum=6) is None


def test_scale_in_to_the_least_reduction_kept_at_min_capacity():
    # requests ask for ceil(8 * 30 / 100) = 3, CPU for ceil(8 * 10 / 50) = 2: the larger one
    decision = _decide(8, requests(30.0, 30.0), cpu(10.0, 10.0))
    assert decision == Decision(
        8,
        3,
        "in",
        "ALBRequestCountPerTarget 30.0 < 90 % of target 100.0; "
        "ECSServiceAverageCPUUtilization 10.0 < 90 % of target 50.0",
    )
    decision = _decide(4, requests(1.0, 1.0), minimum=2)
    assert (decision.to_count, decision.reason) == (
        2,
        "ALBRequestCountPerTarget 1.0 < 90 % of target 100.0 (kept at MinCapacity 2)",
    )
    assert _decide(2, requests(1.0, 1.0), minimum=2) is None


def test_scale_in_needs_every_policy_with_data_below_90_percent_of_its_target():
    assert _decide(4, requests(20.0, 20.0), cpu(46.0, 46.0)) is None  # CPU at 92 % of its target
    assert _decide(4, requests(20.0, 20.0), cpu(44.0, 44.0)) is None  # 88 %, but ceil(4 * 44 / 50) is still 4
    assert _decide(4, requests(20.0, 20.0), cpu(30.0, 30.0)).to_count == 3  # the larger of 1 and 3
    assert _decide(4, requests(95.0, 95.0)) is None  # below the target, not below 90 % of it
    assert _decide(20, requests(92.0, 92.0), maximum=20) is None  # would propose 19
    assert _decide(20, requests(89.0, 89.0), maximum=20).to_count == 18
    # The short window decides scale-out: a spike now blocks a scale-in the long window would allow.
    assert _decide(4, requests(20.0, 20.0), cpu(60.0, 30.0)).direction == "out"


def test_scale_out_cooldown_is_each_policy_s_own_from_the_last_scale_out():
    assert _decide(2, requests(400.0), last_scale_out=NOW - 30) is None  # within its 60 s
    assert _decide(2, requests(400.0), last_scale_out=NOW - 60).to_count == 8
    # the CPU policy is out of its cooldown (20 s): it alone proposes
    decision = _decide(2, requests(400.0), cpu(75.0, scale_out_cooldown=20), last_scale_out=NOW - 30)
    assert (decision.to_count, decision.reason) == (3, "ECSServiceAverageCPUUtilization 75.0 > target 50.0")
    # a scale-in a moment ago does not hold back a scale-out
    assert _decide(2, requests(400.0), last_scale_in=NOW - 1).to_count == 8


def test_scale_in_cooldown_counts_from_the_last_activity_either_way():
    assert _decide(4, requests(10.0, 10.0), last_scale_in=NOW - 100) is None  # within its 120 s
    assert _decide(4, requests(10.0, 10.0), last_scale_out=NOW - 100) is None
    assert _decide(4, requests(10.0, 10.0), last_scale_in=NOW - 130, last_scale_out=NOW - 100) is None
    assert _decide(4, requests(10.0, 10.0), last_scale_in=NOW - 120, last_scale_out=NOW - 125).to_count == 1


def test_disable_scale_in_on_any_policy_keeps_the_count():
    assert _decide(4, requests(10.0, 10.0), cpu(5.0, 5.0, disable_scale_in=True)) is None
    assert _decide(4, requests(10.0, 10.0, disable_scale_in=True)) is None
    assert _decide(4, requests(400.0, 10.0, disable_scale_in=True)).direction == "out"  # out still works


def test_suspended_scale_out_or_scale_in_stops_that_direction_only():
    out_suspended = {"DynamicScalingOutSuspended": True, "DynamicScalingInSuspended": False}
    in_suspended = {"DynamicScalingOutSuspended": False, "DynamicScalingInSuspended": True}
    assert _decide(2, requests(400.0, 400.0), suspended=out_suspended) is None
    assert _decide(4, requests(10.0, 10.0), suspended=out_suspended).to_count == 1
    assert _decide(4, requests(10.0, 10.0), suspended=in_suspended) is None
    assert _decide(2, requests(400.0, 400.0), suspended=in_suspended).to_count == 8


def test_both_suspended_never_touches_the_service_even_outside_its_bounds():
    assert _decide(2, requests(400.0, 400.0), suspended=BOTH_SUSPENDED) is None
    assert _decide(4, requests(10.0, 10.0), suspended=BOTH_SUSPENDED) is None
    assert _decide(0, suspended=BOTH_SUSPENDED, minimum=2) is None  # the idle colour at 0
    assert _decide(9, suspended=BOTH_SUSPENDED, maximum=4) is None


def test_a_policy_without_data_abstains_from_scaling_out_and_blocks_scaling_in():
    assert _decide(4) is None
    assert _decide(4, requests(None, None), cpu(None, None)) is None
    assert _decide(4, requests(0.0, 0.0)).to_count == 1  # a window of datapoints of 0 requests: to MinCapacity
    assert _decide(2, requests(None, None), cpu(80.0, 80.0)).to_count == 4  # CPU alone scales out
    # A target group without traffic over the whole window (missing datapoints) is not ready to scale in,
    # so CPU alone does not scale in: AWS's low alarm of the request policy is not in ALARM.
    assert _decide(4, requests(None, None), cpu(10.0, 10.0)) is None
    assert _decide(4, requests(None, 50.0), cpu(10.0, 10.0)).to_count == 2  # the least reduction
    assert _decide(4, requests(400.0, None)).direction == "out"  # short data only: it can still scale out


def test_the_scale_in_window_needs_datapoints_at_both_ends():
    source = metric_source(Policy("r", REQUESTS, 100.0, resource_label=LABEL), "service/c/s")
    steady = [(100.0 + i, 2.0, 1.0) for i in range(30)]
    assert window_value(source, steady, 100.0, 30, covered=True) == 120.0
    # Traffic for the last 10 s only (a colour that has just been sent it): not covered, no value.
    recent = steady[20:]
    assert window_value(source, recent, 100.0, 30) == 40.0
    assert window_value(source, recent, 100.0, 30, covered=True) is None
    # Nor a window whose last datapoints are missing (the traffic stopped).
    assert window_value(source, steady[:15], 100.0, 30, covered=True) is None
    # A datapoint every 5 s (the tasks' CPU) covers it.
    cpu_source = metric_source(Policy("c", CPU, 60.0), "service/c/s")
    sparse = [(102.0 + 5 * i, 30.0, 1.0) for i in range(6)]
    assert window_value(cpu_source, sparse, 100.0, 30, covered=True) == 30.0


def test_a_count_outside_the_bounds_is_brought_inside_without_a_cooldown():
    decision = _decide(0, minimum=2, maximum=4)
    assert decision == Decision(0, 2, "out", "desired count 0 below MinCapacity 2", bounds=True)
    assert _decide(9, requests(400.0, 400.0), minimum=2, maximum=4) == Decision(
        9, 4, "in", "desired count 9 above MaxCapacity 4", bounds=True
    )
    assert _decide(3, minimum=2, maximum=4) is None
    # within a cooldown too: the bounds come first
    assert _decide(1, minimum=2, last_scale_in=NOW, last_scale_out=NOW).to_count == 2
    # only the directions that are not suspended
    assert _decide(0, minimum=2, suspended={"DynamicScalingOutSuspended": True}) is None
    assert _decide(9, maximum=4, suspended={"DynamicScalingInSuspended": True}) is None


# ---- policies and metrics -----------------------------------------------------------------------------


def _described(metric_type: str = REQUESTS, **configuration) -> dict:
    return {
        "PolicyName": "p",
        "PolicyType": "TargetTrackingScaling",
        "ResourceId": "service/items-local/items-local-blue",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": 100.0,
            "PredefinedMetricSpecification": {"PredefinedMetricType": metric_type, "ResourceLabel": LABEL},
            **configuration,
        },
    }


def test_policies_are_read_with_ecs_default_cooldowns_and_their_metrics_located():
    policy = parse_policy(_described(ScaleOutCooldown=30, DisableScaleIn=True))
    assert (policy.target, policy.scale_out_cooldown, policy.scale_in_cooldown, policy.disable_scale_in) == (
        100.0,
        30.0,
        300.0,
        True,
    )
    resource = "service/items-local/items-local-blue"
    assert metric_source(policy, resource) == MetricSource(
        "AWS/ApplicationELB",
        "RequestCountPerTarget",
        (("TargetGroup", "targetgroup/items-blue/6d0ecf831eec9f09"),),
        True,
    )
    cluster_service = (("ClusterName", "items-local"), ("ServiceName", "items-local-blue"))
    assert metric_source(parse_policy(_described(CPU)), resource) == MetricSource(
        "AWS/ECS", "CPUUtilization", cluster_service, False
    )
    assert metric_source(parse_policy(_described(MEMORY)), resource).name == "MemoryUtilization"


@pytest.mark.parametrize(
    ("described", "message"),
    [
        (
            {
                **_described(),
                "TargetTrackingScalingPolicyConfiguration": {
                    "TargetValue": 1.0,
                    "CustomizedMetricSpecification": {"MetricName": "X"},
                },
            },
            "CustomizedMetricSpecification is not followed",
        ),
        ({**_described(), "PolicyType": "StepScaling"}, "StepScaling policies are not followed"),
        (_described("ALBSomethingElse"), "'ALBSomethingElse' is not followed"),
    ],
)
def test_policies_it_does_not_follow_say_why(described, message):
    with pytest.raises(NotFollowed, match=message):
        parse_policy(described)


def test_window_values_requests_per_minute_and_averages():
    requests_source = MetricSource("AWS/ApplicationELB", "RequestCountPerTarget", (), True)
    points = [(100.0 + second, 5.0, 1.0) for second in range(10)]  # 5 requests per target a second
    assert window_value(requests_source, points, 100.0, 10) == 300.0  # per minute
    assert window_value(requests_source, points, 105.0, 10) == 150.0  # the seconds without requests count
    assert window_value(requests_source, points, 200.0, 10) is None
    cpu_source = MetricSource("AWS/ECS", "CPUUtilization", (), False)
    assert window_value(cpu_source, [(100.0, 60.0, 1.0), (105.0, 80.0, 2.0)], 100.0, 10) == pytest.approx(46.667)


def test_the_switch_and_the_windows_come_from_the_environment():
    assert enabled_by_env({}) and enabled_by_env({"LOCALCLOUD_SCALING": "1"})
    assert not enabled_by_env({"LOCALCLOUD_SCALING": "0"})
    scaler = ServiceScaler(
        lambda *_: None,
        list,
        environ={
            "LOCALCLOUD_SCALING_INTERVAL": "0.5",
            "LOCALCLOUD_SCALING_OUT_WINDOW": "6",
            "LOCALCLOUD_SCALING_IN_WINDOW": "x",
        },
    )
    assert (scaler.interval, scaler.out_window, scaler.in_window) == (0.5, 6, 30)
    assert (
        ServiceScaler(lambda *_: None, list, environ={}).interval,
        ServiceScaler(lambda *_: None, list, environ={}).out_window,
    ) == (2.0, 10)


def test_api_errors_are_logged_and_never_raised():
    class Failing:
        def __getattr__(self, name):
            def call(**_):
                raise RuntimeError(f"{name} is down")

            return call

    scaler = ServiceScaler(lambda *_: Failing(), lambda: ["us-east-1"], environ={})
    assert scaler.run() == []
    assert scaler.status()["errors"] == {"us-east-1": "RuntimeError: describe_scalable_targets is down"}


def test_an_unstarted_data_plane_says_scaling_is_off(tmp_path):
    assert DataPlane("http://127.0.0.1:9", tmp_path).status()["scaling"] == {"enabled": False, "targets": {}}


# ---- against the local AWS API ----------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _stamp(second: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(second, datetime.UTC)


def test_the_scaler_follows_request_count_datapoints_out_to_max_and_back_in(aws_api):
    clients = functools.lru_cache(maxsize=None)(aws_api.client)
    ecs, autoscaling, cloudwatch = clients("ecs"), clients("application-autoscaling"), clients("cloudwatch")
    suffix = uuid.uuid4().hex[:8]
    cluster, service = f"scaling-{suffix}", f"items-{suffix}-blue"
    resource_id = f"service/{cluster}/{service}"
    group = f"targetgroup/items-{suffix}/6d0ecf831eec9f09"
    ecs.create_cluster(clusterName=cluster)
    definition = ecs.register_task_definition(
        family=f"items-{suffix}", containerDefinitions=[{"name": "app", "image": "items:1", "memory": 512}]
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster=cluster, serviceName=service, taskDefinition=definition, desiredCount=1)
    target = {"ServiceNamespace": "ecs", "ResourceId": resource_id, "ScalableDimension": "ecs:service:DesiredCount"}
    autoscaling.register_scalable_target(**target, MinCapacity=1, MaxCapacity=4)
    autoscaling.put_scaling_policy(
        PolicyName=f"{service}-requests",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 100.0,  # requests per target per minute
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "ALBRequestCountPerTarget",
                "ResourceLabel": f"app/items-{suffix}/50dc6c495c0c9188/{group}",
            },
            "ScaleOutCooldown": 5,
            "ScaleInCooldown": 5,
        },
        **target,
    )
    # The load balancer's per-second RequestCountPerTarget, as it publishes them (TargetGroup alone,
    # and TargetGroup with LoadBalancer): 5 a second (300 a minute) for a minute, then 0.5 a second
    # (30 a minute) from 100 s to 200 s. Twenty minutes ago: the scaler's clock is the test's.
    base = int(datetime.datetime.now(datetime.UTC).timestamp()) - 1200
    both = [{"Name": "LoadBalancer", "Value": f"app/items-{suffix}/50dc6c495c0c9188"}]
    data = [
        {
            "MetricName": "RequestCountPerTarget",
            "Dimensions": [{"Name": "TargetGroup", "Value": group}, *extra],
            "Timestamp": _stamp(second),
            "Value": 5.0 if second < base + 60 else 0.5,
            "Unit": "Count",
            "StorageResolution": 1,
        }
        for second in [*range(base, base + 60), *range(base + 100, base + 200)]
        for extra in ([], both)
    ]
    for first in range(0, len(data), 500):
        cloudwatch.put_metric_data(Namespace="AWS/ApplicationELB", MetricData=data[first : first + 500])

    clock = Clock(base + 40)
    scaler = ServiceScaler(clients, lambda: ["us-east-1"], out_window=5, in_window=15, lag=1, clock=clock, environ={})

    def desired() -> int:
        return ecs.describe_services(cluster=cluster, services=[service])["services"][0]["desiredCount"]

    try:
        # 300 a minute per target for 1 task: ceil(1 * 300 / 100) = 3
        assert [(d.from_count, d.to_count) for d in scaler.run()] == [(1, 3)]
        assert desired() == 3
        clock.now += 2
        assert scaler.run() == []  # within the scale-out cooldown
        clock.now += 4
        # still 300 (the datapoints do not know about the new tasks): ceil(3 * 300 / 100) = 9, max 4
        decision = scaler.run()[0]
        assert (decision.to_count, decision.reason) == (
            4,
            "ALBRequestCountPerTarget 300.0 > target 100.0 (capped at MaxCapacity 4)",
        )
        assert desired() == 4
        clock.now += 10
        assert scaler.run() == []  # at max; the low datapoints have not started

        # 30 a minute, below 90 % of 100 over the long window: ceil(4 * 30 / 100) = 2, then 1
        clock.now = base + 130
        decision = scaler.run()[0]
        assert (decision.from_count, decision.to_count, decision.direction) == (4, 2, "in")
        assert decision.reason == "ALBRequestCountPerTarget 30.0 < 90 % of target 100.0"
        assert desired() == 2
        clock.now += 3
        assert scaler.run() == []  # within the scale-in cooldown
        clock.now += 3
        assert [(d.from_count, d.to_count) for d in scaler.run()] == [(2, 1)]
        clock.now += 10
        assert scaler.run() == []  # at min
        assert desired() == 1

        status = scaler.status()["targets"][resource_id]
        assert (status["min"], status["max"], status["suspended"], status["desired"]) == (1, 4, False, 1)
        assert [(a["from"], a["to"]) for a in status["activities"]] == [(1, 3), (3, 4), (4, 2), (2, 1)]
        assert status["metrics"] == {
            f"{service}-requests": {"metric": "ALBRequestCountPerTarget", "target": 100.0, "short": 30.0, "long": 30.0}
        }

        # The playbooks suspend the idle colour and set its count: the scaler leaves it alone.
        autoscaling.register_scalable_target(**target, SuspendedState=BOTH_SUSPENDED)
        ecs.update_service(cluster=cluster, service=service, desiredCount=0)
        clock.now += 10
        assert scaler.run() == []
        assert desired() == 0
        assert scaler.status()["targets"][resource_id]["suspended"] is True

        # Deregistered: forgotten.
        autoscaling.deregister_scalable_target(**target)
        scaler.run()
        assert resource_id not in scaler.status()["targets"]
    finally:
        for policy in autoscaling.describe_scaling_policies(ServiceNamespace="ecs", ResourceId=resource_id)[
            "ScalingPolicies"
        ]:
            autoscaling.delete_scaling_policy(PolicyName=policy["PolicyName"], **target)
        if any(
            t["ResourceId"] == resource_id
            for t in autoscaling.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
        ):
            autoscaling.deregister_scalable_target(**target)
        ecs.delete_service(cluster=cluster, service=service, force=True)
        ecs.delete_cluster(cluster=cluster)


def test_localcloud_status_lists_each_target_with_its_last_activity():
    from localcloud.cli import _scaling_lines

    status = {
        "scaling": {
            "enabled": True,
            "targets": {
                "service/prod/prod-blue": {
                    "suspended": False,
                    "min": 1,
                    "max": 3,
                    "desired": 2,
                    "activities": [
                        {"time": "t1", "from": 2, "to": 1, "reason": "first"},
                        {"time": "t2", "from": 1, "to": 2, "reason": "ALBRequestCountPerTarget 900.0 > target 600.0"},
                    ],
                },
                "service/prod/prod-green": {"suspended": True, "min": 0, "max": 3, "desired": 0, "activities": []},
            },
        }
    }
    assert _scaling_lines(status) == [
        "autoscaling",
        "  service/prod/prod-blue  scaling  min 1  max 3  desired 2",
        "    t2  1 -> 2: ALBRequestCountPerTarget 900.0 > target 600.0",
        "  service/prod/prod-green  suspended  min 0  max 3  desired 0",
    ]
    assert _scaling_lines({"scaling": {"enabled": False, "targets": {}}}) == []
