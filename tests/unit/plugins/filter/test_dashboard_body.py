"""Unit tests for the dashboard_body filter: the widgets, their metrics and dimensions, the rows left out when a
resource is unknown, and bad input."""

from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.ecs_production.platform.plugins.filter.dashboard_body import dashboard_body

LB = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/ecs-prod-prod-alb/50dc6c495c0c9188"
TGS = {
    "blue": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/ecs-prod-prod-blue/73e2d6bc24d8a067",
    "green": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/ecs-prod-prod-green/943f017f100becff",
}
INPUTS = {
    "region": "us-east-1",
    "load_balancer_arn": LB,
    "target_groups": TGS,
    "db_instance_identifier": "ecs-prod-prod-db",
    "cluster": "ecs-prod-prod",
    "services": {"blue": "ecs-prod-prod-blue", "green": "ecs-prod-prod-green"},
    "alarm_5xx_rate_percent": 5,
}
LB_DIM = "app/ecs-prod-prod-alb/50dc6c495c0c9188"
BLUE_DIM = "targetgroup/ecs-prod-prod-blue/73e2d6bc24d8a067"


def titled(body: dict) -> dict[str, dict]:
    return {w["properties"].get("title", "text"): w for w in body["widgets"]}


def test_every_row_with_every_resource_known():
    body = dashboard_body(INPUTS)
    widgets = titled(body)
    assert len(body["widgets"]) == 12
    # A 24-column grid, four rows of three 8-wide widgets, no two in one place.
    assert sorted((w["x"], w["y"]) for w in body["widgets"]) == [(x, y) for x in (0, 8, 16) for y in (0, 6, 12, 18)]
    requests = widgets["Requests per colour"]["properties"]
    assert requests["metrics"][0] == [
        "AWS/ApplicationELB", "RequestCount", "TargetGroup", BLUE_DIM, "LoadBalancer", LB_DIM, {"label": "blue"},
    ]  # fmt: skip
    assert [m[-1]["label"] for m in requests["metrics"]] == ["blue", "green"]
    assert widgets["p99 response time per colour (s)"]["properties"]["stat"] == "p99"
    assert all(w["properties"]["region"] == "us-east-1" for w in body["widgets"])
    assert json.loads(json.dumps(body)) == body  # plain JSON data, as PutDashboard takes it


def test_the_5xx_rate_is_metric_math_per_colour_with_the_alarms_line():
    rate = titled(dashboard_body(INPUTS))["Target 5xx rate per colour (%)"]["properties"]
    expressions = [m[0] for m in rate["metrics"] if isinstance(m[0], dict)]
    assert [e["expression"] for e in expressions] == ["100 * FILL(e0, 0) / r0", "100 * FILL(e1, 0) / r1"]
    assert [e["label"] for e in expressions] == ["blue", "green"]
    hidden = {m[-1]["id"]: m[1] for m in rate["metrics"] if not isinstance(m[0], dict)}
    assert hidden == {
        "e0": "HTTPCode_Target_5XX_Count",
        "r0": "RequestCount",
        "e1": "HTTPCode_Target_5XX_Count",
        "r1": "RequestCount",
    }
    assert rate["annotations"] == {"horizontal": [{"label": "alarm", "value": 5.0}]}


def test_database_and_service_rows_name_their_resources():
    widgets = titled(dashboard_body(INPUTS))
    assert widgets["Database CPU (%)"]["properties"]["metrics"] == [
        ["AWS/RDS", "CPUUtilization", "DBInstanceIdentifier", "ecs-prod-prod-db"]
    ]
    memory = widgets["Service memory per colour (%)"]["properties"]["metrics"]
    assert memory[1] == [
        "AWS/ECS", "MemoryUtilization", "ClusterName", "ecs-prod-prod", "ServiceName", "ecs-prod-prod-green",
        {"label": "green"},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("missing", "rows_left"),
    [
        ({"load_balancer_arn": ""}, {12, 18}),
        ({"target_groups": {}}, {12, 18}),
        ({"db_instance_identifier": ""}, {0, 6, 18}),
        ({"cluster": ""}, {0, 6, 12}),
        ({"services": {}}, {0, 6, 12}),
    ],
)
def test_a_row_whose_resource_is_unknown_is_left_out(missing, rows_left):
    body = dashboard_body(dict(INPUTS, **missing))
    assert {w["y"] for w in body["widgets"]} == rows_left


def test_nothing_known_gives_a_text_widget():
    body = dashboard_body({"region": "us-east-1"})
    assert [w["type"] for w in body["widgets"]] == ["text"]
    assert "provision it first" in body["widgets"][0]["properties"]["markdown"]


def test_one_colour_only_draws_that_colour():
    body = dashboard_body(dict(INPUTS, target_groups={"green": TGS["green"]}, services={"green": "s-green"}))
    requests = titled(body)["Requests per colour"]["properties"]["metrics"]
    assert [m[-1]["label"] for m in requests] == ["green"]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ("not a dict", "expects a dict of inputs"),
        ({"load_balancer_arn": LB}, "region is required"),
        (dict(INPUTS, alarm_5xx_rate_percent="five"), "alarm_5xx_rate_percent must be a number"),
    ],
)
def test_bad_input_is_refused(inputs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        dashboard_body(inputs)
