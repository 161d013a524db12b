"""Unit tests for ecs_production.platform.load_balancer: input refused before any call, and the decisions of
module_utils/elbv2_load_balancer.py (health check and attribute changes, how attribute values are written)."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.ecs_production.platform.plugins.module_utils import elbv2_load_balancer as lb
from ansible_collections.ecs_production.platform.plugins.modules import load_balancer as mod

FORWARD = [{"Type": "forward", "ForwardConfig": {"TargetGroups": [{"TargetGroupName": "app-blue", "Weight": 100}]}}]


def params(**overrides) -> dict:
    base = {
        "name": "app-alb",
        "subnets": ["subnet-a", "subnet-b"],
        "security_groups": ["sg-a"],
        "target_groups": [{"name": "app-blue", "port": 8000, "vpc_id": "vpc-a", "health_check": {"path": "/health"}}],
        "listeners": [
            {"port": 443, "protocol": "HTTPS", "certificate_arn": "arn:aws:acm:x", "default_actions": FORWARD}
        ],
    }
    base.update(overrides)
    return base


def test_a_good_load_balancer_has_no_problem():
    assert mod.check_params(params()) == []


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"subnets": ["subnet-a"]}, "subnets must name two or more subnets (in different zones), not 1"),
        ({"target_groups": [{"name": "x", "port": 0, "vpc_id": "v"}]}, "target_groups.x.port must be 1-65535, not 0"),
        (
            {"target_groups": [{"name": "x", "port": 80, "vpc_id": "v", "health_check": {"paht": "/"}}]},
            "target_groups.x.health_check: unknown paht",
        ),
        (
            {"target_groups": [{"name": "x", "port": 80, "vpc_id": "v"}] * 2},
            "each target group needs a name of its own",
        ),
        (
            {"listeners": [{"port": 443, "protocol": "HTTPS", "default_actions": FORWARD}]},
            "listeners.443: an HTTPS listener needs certificate_arn",
        ),
        (
            {
                "listeners": [
                    {"port": 80, "protocol": "HTTP", "default_actions": [{"Type": "forward"}, {"Type": "forward"}]}
                ]
            },
            "listeners.80: ",
        ),
        (
            {"listeners": [{"port": 80, "protocol": "HTTP", "default_actions": FORWARD}] * 2},
            "each listener needs a port of its own",
        ),
    ],
)
def test_bad_input_is_refused_with_the_reason(overrides, problem):
    problems = mod.check_params(params(**overrides))
    assert any(problem in p for p in problems), problems


def test_main_refuses_bad_input_before_any_client(monkeypatch, capsys):
    made = []
    monkeypatch.setattr(mod.AnsibleAWSModule, "client", lambda _self, service, **_kwargs: made.append(service))
    with patch_module_args(dict(params(subnets=["subnet-a"]), region="us-east-1")), pytest.raises(SystemExit):
        mod.main()
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] and "No AWS call was made" in result["msg"] and made == []


def test_health_check_changes_name_only_what_differs():
    current = {"HealthCheckPath": "/health", "HealthCheckIntervalSeconds": 15, "Matcher": {"HttpCode": "200"}}
    assert lb.health_check_changes(current, {"path": "/health", "interval": 15, "matcher": 200}) == {}
    assert lb.health_check_changes(current, {"path": "/ready", "interval": 15, "timeout": None}) == {
        "HealthCheckPath": "/ready"
    }


def test_attribute_changes_are_written_as_elbv2_stores_them():
    current = {
        "idle_timeout.timeout_seconds": "60",
        "deletion_protection.enabled": "false",
        "routing.http2.enabled": "true",
    }
    asked = {"idle_timeout": 60, "deletion_protection": True, "http2": True, "drop_invalid_header_fields": None}
    assert lb.lb_attribute_changes(current, asked) == [{"Key": "deletion_protection.enabled", "Value": "true"}]
    assert lb.text(False) == "false" and lb.text(30) == "30"
