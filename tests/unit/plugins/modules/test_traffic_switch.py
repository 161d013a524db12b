"""Unit tests for ecs_production.platform.traffic_switch: input validation (no client is ever made for bad
input), weight and colour resolution, the health gate's decisions against a fake load balancer and ECS standing
in for the AWS call wrappers, and main() end to end on fake clients."""

from __future__ import annotations

import copy
import json
from unittest.mock import MagicMock

import botocore.exceptions
import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.amazon.aws.plugins.module_utils import cloud
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
from ansible_collections.ecs_production.platform.plugins.module_utils import elbv2_listeners
from ansible_collections.ecs_production.platform.plugins.modules import traffic_switch as mod

PREFIX = "arn:aws:elasticloadbalancing:us-east-1:123456789012"
LB_ARN = f"{PREFIX}:loadbalancer/app/app/1111111111111111"
LISTENER_ARN = f"{PREFIX}:listener/app/app/1111111111111111/2222222222222222"
BLUE = f"{PREFIX}:targetgroup/app-blue/0123456789abcdef"
GREEN = f"{PREFIX}:targetgroup/app-green/fedcba9876543210"
OTHER = f"{PREFIX}:targetgroup/app-other/aaaaaaaaaaaaaaaa"
TARGET_GROUPS = {"app-blue": BLUE, "app-green": GREEN, "app-other": OTHER, BLUE: BLUE, GREEN: GREEN, OTHER: OTHER}
COLORS = {"blue": "app-blue", "green": "app-green"}
STICKY = {"Enabled": True, "DurationSeconds": 60}


def forward(weights: dict, stickiness: dict | None = None, **extra) -> dict:
    """A forward action as AWS describes it, {ARN: weight}."""
    groups = [{"TargetGroupArn": arn, "Weight": weight} for arn, weight in weights.items()]
    config = {"TargetGroups": groups, "TargetGroupStickinessConfig": stickiness or {"Enabled": False}}
    return dict({"Type": "forward", "ForwardConfig": config}, **extra)


def listener(blue: int = 100, green: int = 0, stickiness: dict | None = None, actions: list | None = None) -> dict:
    return {
        "ListenerArn": LISTENER_ARN,
        "LoadBalancerArn": LB_ARN,
        "Port": 443,
        "Protocol": "HTTPS",
        "DefaultActions": actions or [forward({BLUE: blue, GREEN: green}, stickiness, Order=1)],
    }


def written_weights(actions: list) -> dict:
    return elbv2_listeners.forward_weights(actions)


PARAMS = {
    "listener_arn": None,
    "load_balancer_name": "app",
    "port": 443,
    "target_groups": COLORS,
    "color": None,
    "weights": None,
    "min_healthy": 1,
    "services": None,
    "force": False,
    "wait_healthy_timeout": 0,
}


# ---- input validation (no AWS call) ----


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        pytest.param({"weights": {"blue": 60, "green": 50}}, "weights must add up to 100, not 110", id="sum over"),
        pytest.param({"weights": {"blue": 90}}, "weights must add up to 100, not 90", id="sum under"),
        pytest.param({"weights": {}}, "weights must add up to 100, not 0", id="empty weights"),
        pytest.param(
            {"weights": {"blue": 101, "green": 0}},
            "weights.blue must be an integer from 0 to 100, not 101",
            id="over 100",
        ),
        pytest.param(
            {"weights": {"blue": 110, "green": -10}},
            "weights.green must be an integer from 0 to 100, not -10",
            id="negative",
        ),
        pytest.param(
            {"weights": {"blue": True, "green": 99}},
            "weights.blue must be an integer from 0 to 100, not True",
            id="bool is not an int",
        ),
        pytest.param(
            {"weights": {"blue": 50.0, "green": 50}},
            "weights.blue must be an integer from 0 to 100, not 50.0",
            id="float",
        ),
        pytest.param({"weights": {"blue": "ninety", "green": 10}}, "not 'ninety'", id="word"),
        pytest.param({"weights": {"blue": None, "green": 100}}, "weights.blue must be an integer", id="null"),
        pytest.param(
            {"weights": {"purple": 100}},
            "'purple' not colour(s) of target_groups (blue, green)",
            id="unknown colour in weights",
        ),
        pytest.param(
            {"color": "purple"}, "color 'purple' is not a colour of target_groups (blue, green)", id="unknown colour"
        ),
        pytest.param(
            {"color": "blue", "target_groups": {}},
            "target_groups must name the target group of at least",
            id="no target groups",
        ),
        pytest.param(
            {"color": "blue", "target_groups": {"blue": "app-blue", "green": ""}},
            "target_groups.green must be a target group name or ARN",
            id="empty target group",
        ),
        pytest.param(
            {"color": "blue", "target_groups": {"blue": "app-blue", "green": ["x"]}},
            "target_groups.green must be a target group name or ARN",
            id="target group not a string",
        ),
        pytest.param(
            {"color": "blue", "target_groups": {"blue": "app-blue", "green": "app-blue"}},
            "each colour needs its own target group; given more than once: app-blue",
            id="shared",
        ),
        pytest.param(
            {"color": "c0", "target_groups": {f"c{i}": f"tg{i}" for i in range(6)}},
            "target_groups takes at most 5 colours, not 6",
            id="six colours",
        ),
        pytest.param(
            {"color": "blue", "services": {"purple": "c/s"}},
            "services: 'purple' is not a colour",
            id="service of an unknown colour",
        ),
        pytest.param(
            {"color": "blue", "services": {"green": "just-a-name"}},
            "services.green must be CLUSTER/SERVICE",
            id="service without cluster",
        ),
        pytest.param(
            {"color": "blue", "services": {"green": {"cluster": "c"}}},
            "services.green must be CLUSTER/SERVICE",
            id="service dict without service",
        ),
        pytest.param(
            {"color": "blue", "services": {"green": {"cluster": "c", "service": "s", "x": 1}}},
            "services.green must be CLUSTER/SERVICE",
            id="service dict with extra keys",
        ),
        pytest.param({"color": "blue", "min_healthy": 0}, "min_healthy must be at least 1, not 0", id="min_healthy"),
        pytest.param(
            {"color": "blue", "wait_healthy_timeout": -1}, "wait_healthy_timeout must be 0 or more", id="negative wait"
        ),
        pytest.param({"color": "blue", "port": 0}, "port must be from 1 to 65535, not 0", id="port"),
        pytest.param(
            {"color": "blue", "load_balancer_name": None, "port": None, "listener_arn": LB_ARN},
            "listener_arn must be the ARN of a listener",
            id="not a listener ARN",
        ),
    ],
)
def test_check_params_rejects(params, problem):
    problems = mod.check_params(dict(PARAMS, **params))
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize(
    "params",
    [
        {"color": "green"},
        {"weights": {"blue": 90, "green": 10}},
        {"weights": {"green": 100}},
        {"weights": {"blue": "90", "green": " 10 "}},
        {"weights": {"blue": 50, "green": 50}, "services": {"blue": "c/s", "green": {"cluster": "c", "service": "t"}}},
        {"color": "blue", "load_balancer_name": None, "port": None, "listener_arn": LISTENER_ARN},
    ],
)
def test_check_params_accepts(params):
    assert mod.check_params(dict(PARAMS, **params)) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (100, 100), ("10", 10), (" 7 ", 7), (101, None), (-1, None), (True, None), (False, None),
     (1.0, None), ("1.5", None), ("", None), (None, None), ([], None)],
)  # fmt: skip
def test_parse_percent(value, expected):
    assert mod.parse_percent(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("prod/items-green", mod.ServiceRef("prod", "items-green")),
        ({"cluster": "prod", "service": "items-green"}, mod.ServiceRef("prod", "items-green")),
        (
            "arn:aws:ecs:us-east-1:123456789012:cluster/prod/items-green",
            mod.ServiceRef("arn:aws:ecs:us-east-1:123456789012:cluster/prod", "items-green"),
        ),
        ("items-green", None),
        ("prod/", None),
        ("/items", None),
        ({"cluster": "prod", "service": ""}, None),
        ({"cluster": "prod", "service": 3}, None),
        (["prod", "items"], None),
    ],
)
def test_parse_service(value, expected):
    assert mod.parse_service(value) == expected


@pytest.mark.parametrize(
    ("color", "weights", "expected"),
    [
        ("green", None, {"blue": 0, "green": 100}),
        ("blue", None, {"blue": 100, "green": 0}),
        (None, {"blue": 90, "green": 10}, {"blue": 90, "green": 10}),
        (None, {"green": 100}, {"blue": 0, "green": 100}),
        (None, {"green": "25", "blue": 75}, {"blue": 75, "green": 25}),
    ],
)
def test_desired_weights_cover_every_colour_in_order(color, weights, expected):
    result = mod.desired_weights(COLORS, color, weights)
    assert result == expected
    assert list(result) == list(COLORS)


def test_request_from_params():
    request = mod.request_from_params(
        dict(PARAMS, target_groups={"blue": " app-blue ", "green": GREEN}, weights={"green": 10, "blue": 90},
             services={"green": "prod/items-green"}, min_healthy=2, force=True, wait_healthy_timeout=30)
    )  # fmt: skip
    assert request.target_groups == {"blue": "app-blue", "green": GREEN}
    assert request.weights == {"blue": 90, "green": 10}
    assert request.services == {"green": mod.ServiceRef("prod", "items-green")}
    assert (request.min_healthy, request.force, request.wait_timeout) == (2, True, 30)


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ({"blue": 100, "green": 0}, "blue"),
        ({"blue": 0, "green": 100}, "green"),
        ({"blue": 90, "green": 10}, "blue"),
        ({"blue": 10, "green": 90}, "green"),
        ({"blue": 50, "green": 50}, "mixed"),
        ({"blue": 1, "green": 0}, "blue"),
        ({"blue": 0, "green": 0}, "none"),
        ({"blue": 40, "green": 40, "red": 20}, "mixed"),
    ],
)
def test_active_color(weights, expected):
    assert mod.active_color(weights) == expected


@pytest.mark.parametrize(
    ("health", "passed", "problem"),
    [
        (mod.Health("tg", healthy=1, required=1), True, None),
        (mod.Health("tg", healthy=0, required=1), False, "green has 0 healthy target(s) in tg, 1 required"),
        (mod.Health("tg", 2, 2, desired=2, service="c/s"), True, None),
        (
            mod.Health("tg", 1, 2, desired=2, service="c/s"),
            False,
            "green has 1 healthy target(s) in tg, 2 required (its service c/s desires 2)",
        ),
        (
            mod.Health("tg", 3, 1, desired=0, service="c/s"),
            False,
            "green has 3 healthy target(s) in tg, but its service c/s has a desired count of 0",
        ),
    ],
)
def test_health_verdict_and_message(health, passed, problem):
    assert health.passed is passed
    assert mod.gate_problems({"green": health}) == ([] if passed else [problem])
    assert health.view()["passed"] is passed


@pytest.mark.parametrize(("min_healthy", "desired", "required"), [(1, None, 1), (1, 2, 2), (3, 2, 3), (1, 0, 1)])
def test_required_healthy_is_the_higher_of_min_healthy_and_desired(min_healthy, desired, required):
    assert mod.required_healthy(min_healthy, desired) == required


# ---- the listener's forward action (no AWS call) ----

ARNS = {"blue": BLUE, "green": GREEN}


@pytest.mark.parametrize(
    ("actions", "before", "others"),
    [
        ([forward({BLUE: 90, GREEN: 10})], {"blue": 90, "green": 10}, {}),
        ([forward({BLUE: 100})], {"blue": 100, "green": 0}, {}),
        ([{"Type": "forward", "TargetGroupArn": GREEN}], {"blue": 0, "green": 1}, {}),
        ([forward({BLUE: 100, GREEN: 0, OTHER: 0})], {"blue": 100, "green": 0}, {OTHER: 0}),
        (
            [{"Type": "authenticate-oidc", "Order": 1}, forward({BLUE: 0, GREEN: 100}, Order=2)],
            {"blue": 0, "green": 100},
            {},
        ),
    ],
)
def test_forward_plan_reads_weights_by_colour(actions, before, others):
    assert mod.forward_plan(listener(actions=actions), ARNS) == (before, others)


def test_forward_plan_refuses_a_listener_that_does_not_forward():
    redirect = [{"Type": "redirect", "RedirectConfig": {"StatusCode": "HTTP_301"}}]
    with pytest.raises(mod.Refused, match="is redirect, not a forward to target groups"):
        mod.forward_plan(listener(actions=redirect), ARNS)


def test_forward_plan_refuses_traffic_to_a_target_group_outside_the_colours():
    with pytest.raises(mod.Refused, match=r"also forwards to app-other \(weight 5\), which is not in target_groups"):
        mod.forward_plan(listener(actions=[forward({BLUE: 95, GREEN: 0, OTHER: 5})]), ARNS)


def test_forward_plan_refuses_more_than_five_target_groups():
    others = {f"{PREFIX}:targetgroup/x{i}/{i:016d}": 0 for i in range(4)}
    with pytest.raises(mod.Refused, match="more than the 5 a forward action takes"):
        mod.forward_plan(listener(actions=[forward({BLUE: 100, **others})]), ARNS)


def test_arn_weights_keep_other_target_groups_at_zero():
    assert mod.arn_weights(ARNS, {"blue": 0, "green": 100}, {OTHER: 0}) == {BLUE: 0, GREEN: 100, OTHER: 0}


# ---- decisions, on a fake load balancer and ECS behind the wrappers ----


class FakeModule:
    def __init__(self, check_mode: bool = False, **params):
        self.check_mode = check_mode
        self.params = dict(PARAMS, **params)
        self.warnings: list[str] = []
        self.clients: list[str] = []

    def warn(self, message):
        self.warnings.append(message)

    def client(self, service, retry_decorator=None):
        assert service == "ecs"
        assert retry_decorator is mod.ECS_RETRY
        self.clients.append(service)
        return "ecs-client"


class FakeCloud:
    """One load balancer with one listener, target groups with healthy targets, ECS services."""

    def __init__(self, current: dict, healthy: dict | None = None, services: dict | None = None):
        self.listener = copy.deepcopy(current)
        self.healthy = {BLUE: 1, GREEN: 1, **(healthy or {})}  # target group ARN -> healthy count (or a list)
        self.services = services or {}  # "cluster/service" -> desired count
        self.writes: list[dict] = []
        self.health_reads: list[str] = []
        self.service_reads: list[str] = []

    def install(self, monkeypatch) -> FakeCloud:
        for name in ("describe_listener", "find_load_balancer", "find_listener", "resolve_target_group_arns",
                     "describe_target_health", "find_service", "modify_listener"):  # fmt: skip
            monkeypatch.setattr(mod, name, getattr(self, name))
        return self

    def describe_listener(self, _client, arn):
        return copy.deepcopy(self.listener) if arn == LISTENER_ARN else None

    def find_load_balancer(self, _client, name=None, **_kwargs):
        return {"LoadBalancerArn": LB_ARN} if name == "app" else None

    def find_listener(self, _client, load_balancer_arn, port):
        assert load_balancer_arn == LB_ARN
        return copy.deepcopy(self.listener) if port == 443 else None

    def resolve_target_group_arns(self, _client, refs):
        refs = list(refs)
        missing = [ref for ref in refs if ref not in TARGET_GROUPS]
        if missing:
            raise AnsibleAWSError(message=f"Target group(s) not found: {', '.join(missing)}")
        return {ref: TARGET_GROUPS[ref] for ref in refs}

    def describe_target_health(self, _client, arn):
        self.health_reads.append(arn)
        count = self.healthy[arn]
        if isinstance(count, list):  # a count per read, the last one repeated
            count = count.pop(0) if len(count) > 1 else count[0]
        unhealthy = [{"Target": {"Id": "10.0.0.99"}, "TargetHealth": {"State": "unhealthy"}}]
        healthy = [{"Target": {"Id": f"10.0.0.{i}"}, "TargetHealth": {"State": "healthy"}} for i in range(count)]
        return healthy + unhealthy

    def find_service(self, client, ref):
        assert client == "ecs-client"
        self.service_reads.append(ref.label)
        desired = self.services.get(ref.label)
        return None if desired is None else {"serviceName": ref.service, "desiredCount": desired, "status": "ACTIVE"}

    def modify_listener(self, _client, arn, **changes):
        assert arn == LISTENER_ARN
        assert set(changes) == {"DefaultActions"}
        self.writes.append(copy.deepcopy(changes))
        self.listener.update(copy.deepcopy(changes))
        return copy.deepcopy(self.listener)


def switch(check_mode: bool = False, **params) -> tuple[dict, FakeModule]:
    module = FakeModule(check_mode, **params)
    return mod.switch(module, "elbv2-client", mod.request_from_params(module.params)), module


@pytest.mark.parametrize("check_mode", [False, True])
def test_all_to_green_writes_forward_config_keeping_stickiness_and_order(monkeypatch, check_mode):
    cloud_ = FakeCloud(listener(100, 0, stickiness=STICKY)).install(monkeypatch)
    result, module = switch(check_mode, color="green")

    assert result["changed"] is True
    assert result["before"] == {"blue": 100, "green": 0}
    assert result["after"] == {"blue": 0, "green": 100}
    assert result["target_group_weights"] == {
        "before": {"app-blue": 100, "app-green": 0},
        "after": {"app-blue": 0, "app-green": 100},
    }
    assert result["active_color"] == "green"
    assert result["listener_arn"] == LISTENER_ARN
    assert result["diff"] == {"before": {"blue": 100, "green": 0}, "after": {"blue": 0, "green": 100}}
    assert result["health"] == {
        "green": {"target_group": "app-green", "healthy": 1, "required": 1, "desired": None, "service": None,
                  "passed": True},
    }  # fmt: skip
    assert cloud_.health_reads == [GREEN]  # only the colour that would receive traffic
    assert module.warnings == []
    assert module.clients == []  # no services: no ECS client
    if check_mode:
        assert cloud_.writes == []
        assert result["msg"] == "Would switch the listener from all traffic to blue to all traffic to green"
        return
    assert result["msg"] == "Switched the listener from all traffic to blue to all traffic to green"
    [write] = cloud_.writes
    [action] = write["DefaultActions"]
    assert set(action) == {"Type", "ForwardConfig"}  # never the TargetGroupArn form
    assert action["ForwardConfig"]["TargetGroupStickinessConfig"] == STICKY
    assert written_weights(write["DefaultActions"]) == {BLUE: 0, GREEN: 100}


def test_order_of_several_actions_is_kept(monkeypatch):
    actions = [{"Type": "authenticate-oidc", "Order": 1, "AuthenticateOidcConfig": {"Issuer": "x"}},
               forward({BLUE: 100, GREEN: 0}, STICKY, Order=2)]  # fmt: skip
    cloud_ = FakeCloud(listener(actions=actions)).install(monkeypatch)
    switch(color="green")
    [write] = cloud_.writes
    assert write["DefaultActions"][0] == actions[0]
    assert write["DefaultActions"][1]["Order"] == 2
    assert write["DefaultActions"][1]["ForwardConfig"]["TargetGroupStickinessConfig"] == STICKY


@pytest.mark.parametrize("check_mode", [False, True])
def test_canary_weights_gate_both_colours(monkeypatch, check_mode):
    cloud_ = FakeCloud(listener(0, 100)).install(monkeypatch)
    result, _module = switch(check_mode, weights={"blue": 90, "green": 10})
    assert result["changed"] is True
    assert result["after"] == {"blue": 90, "green": 10}
    assert result["active_color"] == "blue"
    assert result["msg"].endswith("to weights blue 90, green 10")
    assert sorted(cloud_.health_reads) == sorted([BLUE, GREEN])
    assert cloud_.writes == ([] if check_mode else [{"DefaultActions": cloud_.listener["DefaultActions"]}])


@pytest.mark.parametrize("check_mode", [False, True])
@pytest.mark.parametrize(
    ("current", "params"),
    [
        (listener(0, 100), {"color": "green"}),
        (listener(0, 100), {"weights": {"green": 100}}),
        (listener(90, 10), {"weights": {"blue": "90", "green": 10}}),
        (listener(actions=[forward({BLUE: 100})]), {"color": "blue"}),
    ],
)
def test_already_there_is_not_changed_and_reads_no_health(monkeypatch, check_mode, current, params):
    # No healthy target anywhere: a no-op is never refused, the no-op check comes before the gate.
    cloud_ = FakeCloud(current, healthy={BLUE: 0, GREEN: 0}).install(monkeypatch)
    result, module = switch(check_mode, services={"green": "c/gone"}, **params)
    assert result["changed"] is False
    assert result["before"] == result["after"]
    assert result["diff"]["before"] == result["diff"]["after"]
    assert result["health"] == {}
    assert result["msg"].startswith("The listener already sends ")
    assert cloud_.writes == []
    assert cloud_.health_reads == []
    assert module.clients == []


def test_implicit_weight_is_rewritten_as_percentages(monkeypatch):
    cloud_ = FakeCloud(listener(actions=[{"Type": "forward", "TargetGroupArn": BLUE}])).install(monkeypatch)
    result, _module = switch(color="blue")
    assert result["changed"] is True
    assert result["before"] == {"blue": 1, "green": 0}
    assert written_weights(cloud_.writes[0]["DefaultActions"]) == {BLUE: 100, GREEN: 0}


@pytest.mark.parametrize("check_mode", [False, True])
def test_gate_refuses_a_colour_without_healthy_targets(monkeypatch, check_mode):
    cloud_ = FakeCloud(listener(100, 0), healthy={GREEN: 0}).install(monkeypatch)
    with pytest.raises(mod.Refused) as refused:
        switch(check_mode, color="green")
    assert refused.value.message == (
        "Refused to send traffic to green: green has 0 healthy target(s) in app-green, 1 required. "
        "Nothing was changed (force=true overrides the health gate)."
    )
    result = refused.value.result
    assert result["changed"] is False
    assert result["after"] == result["before"] == {"blue": 100, "green": 0}
    assert result["health"]["green"]["passed"] is False
    assert cloud_.writes == []


@pytest.mark.parametrize("check_mode", [False, True])
def test_gate_judges_the_final_state_even_when_a_colour_loses_weight(monkeypatch, check_mode):
    cloud_ = FakeCloud(listener(50, 50), healthy={GREEN: 0}).install(monkeypatch)
    with pytest.raises(mod.Refused, match="green has 0 healthy target"):
        switch(check_mode, weights={"blue": 60, "green": 40})
    assert cloud_.writes == []
    # All traffic to the healthy colour drains the failing one.
    result, _module = switch(check_mode, color="blue")
    assert result["changed"] is True
    assert result["health"].keys() == {"blue"}


@pytest.mark.parametrize("check_mode", [False, True])
def test_min_healthy(monkeypatch, check_mode):
    FakeCloud(listener(100, 0), healthy={GREEN: 2}).install(monkeypatch)
    with pytest.raises(mod.Refused, match="green has 2 healthy target\\(s\\) in app-green, 3 required"):
        switch(check_mode, color="green", min_healthy=3)
    result, _module = switch(check_mode, color="green", min_healthy=2)
    assert result["health"]["green"]["required"] == 2


@pytest.mark.parametrize("check_mode", [False, True])
@pytest.mark.parametrize(
    ("healthy", "desired", "min_healthy", "problem"),
    [
        (1, 2, 1, "green has 1 healthy target(s) in app-green, 2 required (its service prod/green desires 2)"),
        (2, 2, 3, "green has 2 healthy target(s) in app-green, 3 required (its service prod/green desires 2)"),
        (4, 0, 1, "green has 4 healthy target(s) in app-green, but its service prod/green has a desired count of 0"),
        (2, 2, 1, None),
        (3, 2, 1, None),
    ],
)
def test_service_gate(monkeypatch, check_mode, healthy, desired, min_healthy, problem):  # noqa: PLR0917
    cloud_ = FakeCloud(listener(100, 0), healthy={GREEN: healthy}, services={"prod/green": desired})
    cloud_.install(monkeypatch)
    params = {"color": "green", "min_healthy": min_healthy,
              "services": {"green": {"cluster": "prod", "service": "green"}, "blue": "prod/blue"}}  # fmt: skip
    if problem:
        with pytest.raises(mod.Refused) as refused:
            switch(check_mode, **params)
        assert problem in refused.value.message
        assert refused.value.result["health"]["green"]["desired"] == desired
        assert cloud_.writes == []
    else:
        result, module = switch(check_mode, **params)
        assert result["changed"] is True
        assert result["health"]["green"] == {"target_group": "app-green", "healthy": healthy, "required": desired,
                                             "desired": desired, "service": "prod/green", "passed": True}  # fmt: skip
        assert module.clients == ["ecs"]
        assert len(cloud_.writes) == (0 if check_mode else 1)
    assert cloud_.service_reads == ["prod/green"]  # blue gets no traffic: its service is not looked up


def test_missing_service_is_an_error(monkeypatch):
    cloud_ = FakeCloud(listener(100, 0)).install(monkeypatch)
    with pytest.raises(mod.Refused, match="ECS service prod/green of green not found"):
        switch(color="green", services={"green": "prod/green"})
    assert cloud_.writes == []


@pytest.mark.parametrize("check_mode", [False, True])
def test_force_overrides_the_gate_with_a_warning(monkeypatch, check_mode):
    cloud_ = FakeCloud(listener(100, 0), healthy={GREEN: 0}).install(monkeypatch)
    result, module = switch(check_mode, color="green", force=True, wait_healthy_timeout=300)
    assert result["changed"] is True
    assert result["health"]["green"]["passed"] is False
    assert module.warnings == ["force=true: switching although green has 0 healthy target(s) in app-green, 1 required"]
    assert cloud_.health_reads == [GREEN]  # force does not wait
    assert len(cloud_.writes) == (0 if check_mode else 1)


class Clock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.mark.parametrize("check_mode", [False, True])
def test_wait_until_the_gate_passes(monkeypatch, check_mode):
    clock = Clock()
    monkeypatch.setattr(mod.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(mod.time, "sleep", clock.sleep)
    cloud_ = FakeCloud(listener(100, 0), healthy={GREEN: [0, 1, 2]}).install(monkeypatch)
    result, _module = switch(check_mode, color="green", min_healthy=2, wait_healthy_timeout=60)
    assert result["changed"] is True
    assert result["health"]["green"]["healthy"] == 2
    assert clock.sleeps == [mod.WAIT_DELAY, mod.WAIT_DELAY]
    assert len(cloud_.health_reads) == 3


def test_wait_gives_up_at_the_timeout(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(mod.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(mod.time, "sleep", clock.sleep)
    cloud_ = FakeCloud(listener(100, 0), healthy={GREEN: 0}).install(monkeypatch)
    with pytest.raises(mod.Refused, match="Refused to send traffic to green \\(after waiting 12s\\): green has 0"):
        switch(color="green", wait_healthy_timeout=12)
    assert clock.sleeps == [5, 5, 2]
    assert cloud_.writes == []


def test_other_target_groups_are_kept_at_zero(monkeypatch):
    cloud_ = FakeCloud(listener(actions=[forward({BLUE: 100, GREEN: 0, OTHER: 0}, STICKY)])).install(monkeypatch)
    result, _module = switch(color="green")
    assert written_weights(cloud_.writes[0]["DefaultActions"]) == {BLUE: 0, GREEN: 100, OTHER: 0}
    assert result["target_group_weights"]["after"] == {"app-blue": 0, "app-green": 100, "app-other": 0}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"load_balancer_name": "gone"}, "Load balancer gone not found"),
        ({"port": 8443}, "Load balancer app has no listener on port 8443"),
        ({"listener_arn": LISTENER_ARN + "0", "load_balancer_name": None, "port": None}, "not found"),
    ],
)
def test_missing_listener(monkeypatch, params, message):
    FakeCloud(listener()).install(monkeypatch)
    with pytest.raises(mod.Refused, match=message):
        switch(color="green", **params)


def test_colours_sharing_a_target_group_by_name_and_arn(monkeypatch):
    cloud_ = FakeCloud(listener()).install(monkeypatch)
    with pytest.raises(mod.Refused, match="Colours blue, green name the same target group"):
        switch(color="green", target_groups={"blue": "app-blue", "green": BLUE})
    assert cloud_.writes == []


def test_unknown_target_group(monkeypatch):
    FakeCloud(listener()).install(monkeypatch)
    with pytest.raises(AnsibleAWSError, match="Target group\\(s\\) not found: nope"):
        switch(color="green", target_groups={"blue": "app-blue", "green": "nope"})


# ---- module_utils helpers for target health ----


def test_count_healthy_targets():
    states = ["healthy", "initial", "unhealthy", "healthy", "draining", "unused", "unavailable"]
    described = [{"Target": {"Id": str(i)}, "TargetHealth": {"State": s}} for i, s in enumerate(states)]
    assert elbv2_listeners.count_healthy_targets(described) == 2
    assert elbv2_listeners.count_healthy_targets([{"Target": {"Id": "x"}}]) == 0


def test_describe_target_health_passes_aws_retry_and_wraps_errors():
    client = MagicMock()
    client.describe_target_health.return_value = {"TargetHealthDescriptions": [{"TargetHealth": {"State": "healthy"}}]}
    assert elbv2_listeners.describe_target_health(client, GREEN) == [{"TargetHealth": {"State": "healthy"}}]
    client.describe_target_health.assert_called_once_with(aws_retry=True, TargetGroupArn=GREEN)
    client.describe_target_health.side_effect = client_error("TargetGroupNotFound")
    with pytest.raises(AnsibleAWSError, match="Failed to describe target health"):
        elbv2_listeners.describe_target_health(client, GREEN)


def test_find_service_ignores_inactive_and_missing():
    client = MagicMock()
    ref = mod.ServiceRef("prod", "green")
    client.describe_services.return_value = {"services": [{"status": "ACTIVE", "desiredCount": 2}], "failures": []}
    assert mod.find_service(client, ref)["desiredCount"] == 2
    client.describe_services.assert_called_once_with(aws_retry=True, cluster="prod", services=["green"])
    client.describe_services.return_value = {"services": [{"status": "INACTIVE"}], "failures": []}
    assert mod.find_service(client, ref) is None
    client.describe_services.return_value = {"services": [], "failures": [{"reason": "MISSING"}]}
    assert mod.find_service(client, ref) is None
    client.describe_services.side_effect = client_error("ClusterNotFoundException")
    assert mod.find_service(client, ref) is None
    client.describe_services.side_effect = client_error("AccessDeniedException")
    with pytest.raises(AnsibleAWSError, match="Failed to describe ECS service"):
        mod.find_service(client, ref)


# ---- main() on fake ELBv2 and ECS clients ----


def client_error(code: str) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": code}}, "Operation")


class FakeClient:
    """The API calls traffic_switch makes, over one load balancer with one listener and over ECS; records
    every call and checks it asked for retries."""

    WRITES = ("modify_listener", "add_tags")

    def __init__(self, current: dict | None = None, healthy: dict | None = None, desired: dict | None = None):
        self.listeners = [copy.deepcopy(current or listener())]
        self.healthy = {BLUE: 1, GREEN: 1, **(healthy or {})}
        self.desired = desired or {}
        self.calls: list[tuple[str, dict]] = []
        self.throttle: dict[str, int] = {}  # operation -> how many times to answer Throttling first

    def _record(self, name: str, kwargs: dict, retried: bool = True) -> None:
        if retried:
            assert kwargs.pop("aws_retry", None) is True, f"{name} called without aws_retry=True"
        self.calls.append((name, kwargs))
        if self.throttle.get(name):
            self.throttle[name] -= 1
            raise client_error("ThrottlingException" if name == "describe_services" else "Throttling")

    @property
    def writes(self) -> list[tuple[str, dict]]:
        return [call for call in self.calls if call[0] in self.WRITES]

    def names(self) -> list[str]:
        return [name for name, _kwargs in self.calls]

    def describe_load_balancers(self, **kwargs):
        self._record("describe_load_balancers", kwargs)
        if kwargs.get("Names") != ["app"]:
            raise client_error("LoadBalancerNotFound")
        return {"LoadBalancers": [{"LoadBalancerArn": LB_ARN, "LoadBalancerName": "app", "Type": "application"}]}

    def describe_listeners(self, **kwargs):
        self._record("describe_listeners", kwargs)
        found = [copy.deepcopy(item) for item in self.listeners if item["ListenerArn"] in kwargs["ListenerArns"]]
        if not found:
            raise client_error("ListenerNotFound")
        return {"Listeners": found}

    def get_paginator(self, operation):
        assert operation == "describe_listeners"
        paginator = MagicMock()
        paginator.paginate.return_value.build_full_result.side_effect = lambda: {
            "Listeners": copy.deepcopy(self.listeners)
        }
        return paginator

    def describe_target_groups(self, **kwargs):
        self._record("describe_target_groups", kwargs)
        # As AWS: every reference described, or TargetGroupNotFound for the whole call.
        refs = kwargs.get("Names") or kwargs.get("TargetGroupArns")
        if any(ref not in TARGET_GROUPS for ref in refs):
            raise client_error("TargetGroupNotFound")
        return {"TargetGroups": [{"TargetGroupArn": TARGET_GROUPS[ref]} for ref in refs]}

    def describe_target_health(self, **kwargs):
        self._record("describe_target_health", kwargs)
        count = self.healthy[kwargs["TargetGroupArn"]]
        return {"TargetHealthDescriptions": [{"TargetHealth": {"State": "healthy"}}] * count}

    def describe_services(self, **kwargs):
        self._record("describe_services", kwargs)
        label = f"{kwargs['cluster']}/{kwargs['services'][0]}"
        if label not in self.desired:
            return {"services": [], "failures": [{"arn": label, "reason": "MISSING"}]}
        return {"services": [{"status": "ACTIVE", "desiredCount": self.desired[label]}], "failures": []}

    def add_tags(self, **kwargs):
        self._record("add_tags", kwargs)
        self.tags = {tag["Key"]: tag["Value"] for tag in kwargs["Tags"]}

    def modify_listener(self, **kwargs):
        self._record("modify_listener", kwargs)
        item = next(item for item in self.listeners if item["ListenerArn"] == kwargs["ListenerArn"])
        item.update(copy.deepcopy({k: v for k, v in kwargs.items() if k != "ListenerArn"}))
        return {"Listeners": [copy.deepcopy(item)]}


class RetryingClient:
    """What module.client() returns with a retry_decorator: the retry wrapper over a client, here over the fake
    (the fake then sees the calls without aws_retry, which the wrapper consumes)."""

    def __init__(self, fake: FakeClient, retry):
        self.fake = fake
        self.wrapper = RetryingBotoClientWrapper(self, retry)

    def __getattr__(self, name):
        method = getattr(self.fake, name)
        if name.startswith("describe_") or name == "modify_listener":
            return lambda **kwargs: method(aws_retry=True, **kwargs)
        return method


def run_main(
    monkeypatch,
    capsys,
    args: dict,
    client: FakeClient,
    *,
    check_mode: bool = False,
    diff: bool = True,
    retrying: bool = False,
) -> tuple[dict, MagicMock]:
    def make(service, retry_decorator=None):
        assert service in ("elbv2", "ecs")
        return RetryingClient(client, retry_decorator).wrapper if retrying else client

    factory = MagicMock(side_effect=make)
    monkeypatch.setattr(mod.AnsibleAWSModule, "client", factory)
    with patch_module_args(dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)), pytest.raises(SystemExit):
        mod.main()
    return json.loads(capsys.readouterr().out), factory


MAIN_ARGS = {"load_balancer_name": "app", "port": 443, "target_groups": COLORS}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"weights": {"blue": 60, "green": 50}}, "weights must add up to 100, not 110"),
        ({"weights": {"blue": 101, "green": -1}}, "weights.blue must be an integer from 0 to 100, not 101"),
        ({"weights": {"blue": True, "green": 0}}, "weights.blue must be an integer from 0 to 100, not True"),
        ({"weights": {"blue": 99.5, "green": 0.5}}, "weights.blue must be an integer from 0 to 100, not 99.5"),
        ({"weights": {"purple": 100}}, "'purple' not colour(s) of target_groups (blue, green)"),
        ({"color": "purple"}, "color 'purple' is not a colour of target_groups (blue, green)"),
        ({"colour": "purple"}, "color 'purple' is not a colour of target_groups (blue, green)"),
        ({"color": "blue", "target_groups": {}}, "target_groups must name the target group of at least one colour"),
        ({"color": "blue", "services": {"green": "nocluster"}}, "services.green must be CLUSTER/SERVICE"),
        ({"color": "blue", "min_healthy": 0}, "min_healthy must be at least 1"),
        ({"color": "blue", "port": 70000}, "port must be from 1 to 65535"),
        ({"color": "blue", "weights": {"blue": 100}}, "parameters are mutually exclusive: color|weights"),
        ({}, "one of the following is required: color, weights"),
        ({"color": "blue", "target_groups": None}, "missing required arguments: target_groups"),
        ({"color": "blue", "port": None}, "parameters are required together: load_balancer_name, port"),
        (
            {"color": "blue", "load_balancer_name": None, "port": None},
            "one of the following is required: listener_arn, load_balancer_name",
        ),
        ({"color": "blue", "listener_arn": LISTENER_ARN}, "mutually exclusive: listener_arn|load_balancer_name"),
        ({"color": "blue", "min_healthy": "two"}, "min_healthy"),
        ({"color": "blue", "record": {"from": "green"}}, "record must be {from: COLOUR, to: COLOUR}"),
        ({"color": "blue", "record": {"from": "red", "to": "blue"}}, "record.from 'red' is not a colour"),
        ({"color": "blue", "record": {"from": "blue", "to": "blue"}}, "record.from and record.to must differ"),
    ],
)
def test_main_rejects_bad_input_before_any_client(monkeypatch, capsys, args, message):
    client = FakeClient()
    merged = {k: v for k, v in dict(MAIN_ARGS, **args).items() if v is not None}
    result, factory = run_main(monkeypatch, capsys, merged, client)
    assert result["failed"]
    assert message in result["msg"]
    factory.assert_not_called()
    assert client.calls == []


def test_main_all_to_green_then_rerun(monkeypatch, capsys):
    client = FakeClient(listener(100, 0, stickiness=STICKY))
    result, factory = run_main(monkeypatch, capsys, dict(MAIN_ARGS, color="green"), client)
    assert result["changed"] is True
    assert result["after"] == {"blue": 0, "green": 100}
    assert result["active_color"] == "green"
    assert result["diff"] == {"before": {"blue": 100, "green": 0}, "after": {"blue": 0, "green": 100}}
    assert factory.call_args_list[0].args == ("elbv2",)
    assert factory.call_args_list[0].kwargs["retry_decorator"] is elbv2_listeners.ELBV2_RETRY
    assert factory.call_count == 1
    [(_name, write)] = client.writes
    assert write["ListenerArn"] == LISTENER_ARN
    [action] = write["DefaultActions"]
    assert action["ForwardConfig"]["TargetGroupStickinessConfig"] == STICKY
    assert written_weights([action]) == {BLUE: 0, GREEN: 100}
    assert "TargetGroupArn" not in action

    client.calls.clear()
    result, _factory = run_main(monkeypatch, capsys, dict(MAIN_ARGS, color="green"), client)
    assert result["changed"] is False
    assert result["before"] == result["after"] == {"blue": 0, "green": 100}
    assert client.writes == []
    assert "describe_target_health" not in client.names()


def test_main_check_mode_makes_no_write_call(monkeypatch, capsys):
    client = FakeClient(listener(0, 100))
    args = dict(MAIN_ARGS, weights={"blue": 90, "green": 10})
    result, _factory = run_main(monkeypatch, capsys, args, client, check_mode=True)
    assert result["changed"] is True
    assert result["after"] == {"blue": 90, "green": 10}
    assert result["msg"].startswith("Would switch")
    assert client.writes == []
    assert client.listeners[0] == listener(0, 100)


def test_main_without_diff_mode_returns_no_diff(monkeypatch, capsys):
    result, _factory = run_main(monkeypatch, capsys, dict(MAIN_ARGS, color="green"), FakeClient(), diff=False)
    assert result["changed"] is True
    assert "diff" not in result


def test_main_refuses_an_unhealthy_colour(monkeypatch, capsys):
    client = FakeClient(listener(100, 0), healthy={GREEN: 0})
    result, _factory = run_main(monkeypatch, capsys, dict(MAIN_ARGS, color="green"), client)
    assert result["failed"]
    assert result["changed"] is False
    assert "Refused to send traffic to green: green has 0 healthy target(s) in app-green, 1 required" in result["msg"]
    assert result["health"]["green"]["healthy"] == 0
    assert "diff" not in result
    assert client.writes == []


def test_main_service_gate_uses_an_ecs_client_with_retries(monkeypatch, capsys):
    client = FakeClient(listener(100, 0), healthy={GREEN: 1}, desired={"prod/green": 2})
    args = dict(MAIN_ARGS, color="green", services={"green": "prod/green"})
    result, factory = run_main(monkeypatch, capsys, args, client)
    assert result["failed"]
    assert "(its service prod/green desires 2)" in result["msg"]
    assert [call.args for call in factory.call_args_list] == [("elbv2",), ("ecs",)]
    assert factory.call_args_list[1].kwargs["retry_decorator"] is mod.ECS_RETRY
    assert client.writes == []


def test_main_reports_aws_errors(monkeypatch, capsys):
    args = dict(MAIN_ARGS, color="green", target_groups={"blue": "app-blue", "green": "nope"})
    result, _factory = run_main(monkeypatch, capsys, args, FakeClient())
    assert result["failed"]
    assert result["msg"] == "Target group(s) not found: nope"


def test_main_retries_throttling(monkeypatch, capsys):
    monkeypatch.setattr(cloud.time, "sleep", lambda _seconds: None)
    client = FakeClient(listener(100, 0), desired={"prod/green": 1})
    client.throttle = {"describe_load_balancers": 2, "describe_target_health": 1, "describe_services": 2,
                       "modify_listener": 1}  # fmt: skip
    args = dict(MAIN_ARGS, color="green", services={"green": "prod/green"})
    result, _factory = run_main(monkeypatch, capsys, args, client, retrying=True)
    assert result["changed"] is True, result
    assert client.names().count("describe_load_balancers") == 3
    assert client.names().count("describe_services") == 3
    assert client.names().count("modify_listener") == 2
    assert client.listeners[0]["DefaultActions"][0]["ForwardConfig"]["TargetGroups"][1]["Weight"] == 100


# ---- the record of where a swap comes from ----


def test_main_records_where_the_swap_comes_from_on_the_listener_before_switching(monkeypatch, capsys):
    client = FakeClient(listener(100, 0))
    args = dict(MAIN_ARGS, color="green", record={"from": "blue", "to": "green"})
    result, _factory = run_main(monkeypatch, capsys, args, client)
    assert result["changed"] is True
    assert result["record"] == {"from": "blue", "to": "green"}
    # The record first, then the weights: a run killed in between leaves the record of a swap not made,
    # which a rollback reads as "go back to blue" while blue has all the traffic - the idle colour then.
    assert [name for name, _kwargs in client.writes] == ["add_tags", "modify_listener"]
    tags_call = client.writes[0][1]
    assert tags_call["ResourceArns"] == [LISTENER_ARN]
    assert client.tags == {"BlueGreenFrom": "blue", "BlueGreenTo": "green"}


@pytest.mark.parametrize(
    ("current", "healthy", "check_mode"),
    [
        pytest.param((0, 100), {}, False, id="nothing to switch"),
        pytest.param((100, 0), {GREEN: 0}, False, id="refused by the gate"),
        pytest.param((100, 0), {}, True, id="check mode"),
    ],
)
def test_main_writes_no_record_when_the_weights_are_not_written(monkeypatch, capsys, current, healthy, check_mode):
    client = FakeClient(listener(*current), healthy=healthy)
    args = dict(MAIN_ARGS, color="green", record={"from": "blue", "to": "green"})
    result, _factory = run_main(monkeypatch, capsys, args, client, check_mode=check_mode)
    assert client.writes == []
    assert result["record"] == ({"from": "blue", "to": "green"} if check_mode else None)
