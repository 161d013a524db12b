"""Unit tests for ecs_production.platform.ecs_service_scaling: main() over a fake Application Auto Scaling
(two reads for every service, writes only where a target or policy differs), the blue/green states
(suspended idle colour with minimum 0, a kept state, a raised minimum), check mode, diff, removal and
the refusals made before any call."""

from __future__ import annotations

import pytest
from ansible_collections.ecs_production.platform.plugins.modules import ecs_service_scaling as mod
from module_runner import run_module

LB = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/prod-alb/50dc6c495c0c9188"
TG = {
    "prod-blue": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/prod-blue/73e2d6bc24d8a067",
    "prod-green": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/prod-green/83e2d6bc24d8a068",
}


class Pages:
    def __init__(self, result):
        self.result = result

    def build_full_result(self):
        return self.result


class FakeScaling:
    def __init__(self):
        self.targets: dict[str, dict] = {}
        self.policies: dict[tuple[str, str], dict] = {}
        self.calls: list[tuple[str, dict]] = []

    def get_paginator(self, operation):
        fake = self

        class Paginator:
            def paginate(self, **kwargs):
                fake.calls.append((operation, kwargs))
                if operation == "describe_scalable_targets":
                    found = [t for rid, t in fake.targets.items() if rid in kwargs["ResourceIds"]]
                    return Pages({"ScalableTargets": [dict(t) for t in found]})
                return Pages({"ScalingPolicies": [dict(p) for p in fake.policies.values()]})

        return Paginator()

    def register_scalable_target(self, aws_retry, **kwargs):  # noqa: ARG002 - the wrappers always ask for retries
        self.calls.append(("register_scalable_target", kwargs))
        self.targets[kwargs["ResourceId"]] = dict(kwargs)

    def deregister_scalable_target(self, aws_retry, **kwargs):  # noqa: ARG002
        self.calls.append(("deregister_scalable_target", kwargs))
        del self.targets[kwargs["ResourceId"]]

    def put_scaling_policy(self, aws_retry, **kwargs):  # noqa: ARG002
        self.calls.append(("put_scaling_policy", kwargs))
        self.policies[(kwargs["ResourceId"], kwargs["PolicyName"])] = dict(kwargs)

    def delete_scaling_policy(self, aws_retry, **kwargs):  # noqa: ARG002
        self.calls.append(("delete_scaling_policy", kwargs))
        del self.policies[(kwargs["ResourceId"], kwargs["PolicyName"])]


def run(monkeypatch, capsys, client, **args):
    return run_module(mod, monkeypatch, capsys, client, **args)


def names(client) -> list[str]:
    return [name for name, _kwargs in client.calls]


def both(blue=None, green=None, extra=None):
    services = []
    for name, suspended in (("prod-blue", blue), ("prod-green", green)):
        service = {"name": name, "target_group_arn": TG[name]}
        if suspended is not None:
            service["suspended"] = suspended
        services.append(service)
    args = {
        "cluster": "prod",
        "services": services,
        "load_balancer_arn": LB,
        "min_capacity": 2,
        "max_capacity": 6,
        "requests_per_target": 600,
        "cpu_utilization": 60,
    }
    args.update(extra or {})
    return args


def test_registers_the_active_colour_and_suspends_the_idle_one_then_changes_nothing(monkeypatch, capsys):
    client = FakeScaling()
    result = run(monkeypatch, capsys, client, **both(blue=False, green=True))
    assert result["changed"] and result["changed_services"] == ["prod-blue", "prod-green"]
    blue = client.targets["service/prod/prod-blue"]
    green = client.targets["service/prod/prod-green"]
    assert (blue["MinCapacity"], blue["MaxCapacity"]) == (2, 6)
    assert not any(blue["SuspendedState"].values())
    assert green["MinCapacity"] == 0 and all(green["SuspendedState"].values())
    requests = client.policies[("service/prod/prod-blue", "requests-per-target")]
    configuration = requests["TargetTrackingScalingPolicyConfiguration"]
    assert configuration["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "ALBRequestCountPerTarget",
        "ResourceLabel": "app/prod-alb/50dc6c495c0c9188/targetgroup/prod-blue/73e2d6bc24d8a067",
    }
    assert configuration["TargetValue"] == 600.0 and configuration["ScaleInCooldown"] == 300
    cpu = client.policies[("service/prod/prod-green", "cpu-utilization")]["TargetTrackingScalingPolicyConfiguration"]
    assert cpu["PredefinedMetricSpecification"] == {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"}
    # Targets are registered before their policies: AWS refuses a policy for a target it does not know.
    assert names(client).index("register_scalable_target") < names(client).index("put_scaling_policy")

    client.calls.clear()
    result = run(monkeypatch, capsys, client, **both(blue=False, green=True))
    assert not result["changed"] and names(client) == ["describe_scalable_targets", "describe_scaling_policies"]
    assert [t["policies"] for t in result["targets"]] == [["cpu-utilization", "requests-per-target"]] * 2


def test_a_run_without_suspended_keeps_each_state_and_its_minimum(monkeypatch, capsys):
    client = FakeScaling()
    run(monkeypatch, capsys, client, **both(blue=True, green=False))
    client.calls.clear()
    result = run(monkeypatch, capsys, client, **both())
    assert not result["changed"] and [t["suspended"] for t in result["targets"]] == [True, False]
    assert [t["min_capacity"] for t in result["targets"]] == [0, 2]


def test_a_new_target_left_without_a_state_scales_unless_initially_suspended(monkeypatch, capsys):
    client = FakeScaling()
    result = run(monkeypatch, capsys, client, _ansible_check_mode=True, **both())
    assert [t["suspended"] for t in result["targets"]] == [False, False]
    args = both()
    args["services"][1]["initially_suspended"] = True
    result = run(monkeypatch, capsys, client, **args)
    assert [(t["suspended"], t["min_capacity"]) for t in result["targets"]] == [(False, 2), (True, 0)]
    # Once registered, the state is kept whatever initially_suspended says.
    args["services"][1]["initially_suspended"] = False
    client.calls.clear()
    result = run(monkeypatch, capsys, client, **args)
    assert not result["changed"] and [t["suspended"] for t in result["targets"]] == [False, True]


def test_a_raised_minimum_above_the_maximum_is_the_maximum(monkeypatch, capsys):
    client = FakeScaling()
    args = both()
    args["services"] = [
        {"name": "prod-green", "target_group_arn": TG["prod-green"], "suspended": False, "min_capacity": 9}
    ]
    result = run(monkeypatch, capsys, client, **args)
    assert result["targets"][0]["min_capacity"] == 6 and client.targets["service/prod/prod-green"]["MinCapacity"] == 6


def test_a_raised_minimum_resumes_the_colour_and_shows_in_the_diff(monkeypatch, capsys):
    client = FakeScaling()
    run(monkeypatch, capsys, client, **both(blue=False, green=True))
    client.calls.clear()
    args = both(blue=None, green=None)
    args["services"] = [
        {"name": "prod-green", "target_group_arn": TG["prod-green"], "suspended": False, "min_capacity": 5}
    ]
    result = run(monkeypatch, capsys, client, _ansible_diff=True, **args)
    assert result["changed"] and result["changed_services"] == ["prod-green"]
    assert names(client) == ["describe_scalable_targets", "describe_scaling_policies", "register_scalable_target"]
    assert (
        result["diff"]["before"]["prod-green"]["min_capacity"] == 0
        and result["diff"]["before"]["prod-green"]["suspended"]
    )
    assert result["diff"]["after"]["prod-green"]["min_capacity"] == 5
    assert result["diff"]["after"]["prod-green"]["policies"]["cpu-utilization"]["target_value"] == 60.0
    assert client.targets["service/prod/prod-green"]["MinCapacity"] == 5


def test_a_changed_target_value_rewrites_that_policy_and_a_dropped_one_is_deleted(monkeypatch, capsys):
    client = FakeScaling()
    run(monkeypatch, capsys, client, **both(blue=False, green=True))
    client.calls.clear()
    run(monkeypatch, capsys, client, **both(extra={"requests_per_target": 900, "cpu_utilization": 0}))
    written = [(name, kw["ResourceId"], kw["PolicyName"]) for name, kw in client.calls if "policy" in name]
    assert written == [
        ("put_scaling_policy", "service/prod/prod-blue", "requests-per-target"),
        ("delete_scaling_policy", "service/prod/prod-blue", "cpu-utilization"),
        ("put_scaling_policy", "service/prod/prod-green", "requests-per-target"),
        ("delete_scaling_policy", "service/prod/prod-green", "cpu-utilization"),
    ]
    assert "register_scalable_target" not in names(client)


def test_other_policies_of_a_target_are_left_alone(monkeypatch, capsys):
    client = FakeScaling()
    run(monkeypatch, capsys, client, **both(blue=False, green=True))
    client.policies[("service/prod/prod-blue", "teams-own")] = {
        "ResourceId": "service/prod/prod-blue",
        "PolicyName": "teams-own",
    }
    client.calls.clear()
    result = run(monkeypatch, capsys, client, **both(extra={"cpu_utilization": 0}))
    assert result["changed"] and ("service/prod/prod-blue", "teams-own") in client.policies


def test_check_mode_writes_nothing(monkeypatch, capsys):
    client = FakeScaling()
    result = run(monkeypatch, capsys, client, _ansible_check_mode=True, **both(blue=False, green=True))
    assert result["changed"] and client.targets == {} and client.policies == {}
    assert names(client) == ["describe_scalable_targets", "describe_scaling_policies"]


def test_absent_deletes_the_policies_then_the_targets(monkeypatch, capsys):
    client = FakeScaling()
    run(monkeypatch, capsys, client, **both(blue=False, green=True))
    client.calls.clear()
    args = {"cluster": "prod", "services": [{"name": "prod-blue"}, {"name": "prod-green"}], "state": "absent"}
    result = run(monkeypatch, capsys, client, **args)
    assert result["changed"] and client.targets == {} and client.policies == {}
    writes = [name for name in names(client) if not name.startswith("describe")]
    assert writes == ["delete_scaling_policy", "delete_scaling_policy", "deregister_scalable_target"] * 2
    client.calls.clear()
    result = run(monkeypatch, capsys, client, **args)
    assert not result["changed"] and names(client) == ["describe_scalable_targets"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"min_capacity": 7}, "min_capacity must be between 0 and max_capacity (6), not 7"),
        ({"max_capacity": 0, "min_capacity": 0}, "max_capacity must be 1 or more, not 0"),
        ({"cpu_utilization": 150}, "cpu_utilization must be a percentage"),
        ({"requests_per_target": -1}, "requests_per_target must be 0"),
        ({"load_balancer_arn": None}, "requests_per_target needs load_balancer_arn"),
        (
            {"load_balancer_arn": "arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/net/n/1"},
            "cannot make a resource label",
        ),
        ({"scale_in_cooldown": -5}, "the cooldowns must be 0 seconds or more"),
        ({"cluster": " "}, "cluster must name an ECS cluster"),
    ],
)
def test_refusals_make_no_call(monkeypatch, capsys, extra, message):
    client = FakeScaling()
    result = run(monkeypatch, capsys, client, **both(blue=False, green=True, extra=extra))
    assert result["failed"] and message in result["msg"] and "No AWS call was made" in result["msg"]
    assert client.calls == []


def test_a_service_without_its_target_group_or_with_a_negative_minimum_is_refused(monkeypatch, capsys):
    client = FakeScaling()
    args = both()
    args["services"] = [{"name": "prod-blue", "min_capacity": -1}]
    result = run(monkeypatch, capsys, client, **args)
    assert "the min_capacity of prod-blue must be 0 or more, not -1" in result["msg"]
    assert "requests_per_target needs the target_group_arn of prod-blue" in result["msg"]
    assert client.calls == []


def test_the_same_configuration_ignores_what_aws_adds():
    params = both(extra={"scale_out_cooldown": 60, "scale_in_cooldown": 300})
    want = mod.wanted_policies(params, {"name": "prod-blue", "target_group_arn": TG["prod-blue"]})[mod.CPU]
    have = dict(want, TargetValue=60)  # AWS may answer an int
    assert mod.same_configuration(have, want)
    assert not mod.same_configuration(dict(have, ScaleOutCooldown=61), want)
    assert not mod.same_configuration(dict(have, DisableScaleIn=True), want)
    assert not mod.same_configuration({k: v for k, v in have.items() if k != "PredefinedMetricSpecification"}, want)


def test_without_the_policies_only_the_targets_are_read_and_written(monkeypatch, capsys):
    client = FakeScaling()
    run(monkeypatch, capsys, client, **both(blue=False, green=True))
    client.calls.clear()
    args = both(extra={"manage_policies": False, "cpu_utilization": 0})
    args["services"] = [{"name": "prod-green", "suspended": False, "min_capacity": 3}]
    result = run(monkeypatch, capsys, client, **args)
    assert names(client) == ["describe_scalable_targets", "register_scalable_target"]
    assert result["targets"][0]["min_capacity"] == 3 and result["targets"][0]["policies"] == []
    # The CPU policy stays although cpu_utilization is 0: it is not this run's to manage.
    assert ("service/prod/prod-green", "cpu-utilization") in client.policies
