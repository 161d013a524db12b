"""Unit tests for ecs_production.platform's elbv2_listeners module_utils: validation, normalisation and
comparison of listener actions, forward weights, target group resolution and the AWS call wrappers."""

from __future__ import annotations

import copy
from unittest.mock import MagicMock

import botocore.exceptions
import pytest
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.ecs_production.platform.plugins.module_utils import elbv2_listeners as lu

PREFIX = "arn:aws:elasticloadbalancing:us-east-1:123456789012"
BLUE = f"{PREFIX}:targetgroup/app-blue/0123456789abcdef"
GREEN = f"{PREFIX}:targetgroup/app-green/fedcba9876543210"
LB_ARN = f"{PREFIX}:loadbalancer/app/app/1111111111111111"
LISTENER_ARN = f"{PREFIX}:listener/app/app/1111111111111111/2222222222222222"


def client_error(code: str) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": code}}, "Operation")


def forward(*groups, stickiness=None, **extra) -> dict:
    config = {"TargetGroups": [dict(g) for g in groups]}
    if stickiness is not None:
        config["TargetGroupStickinessConfig"] = stickiness
    return dict({"Type": "forward", "ForwardConfig": config}, **extra)


def weighted(blue: int, green: int, **kwargs) -> dict:
    return forward({"TargetGroupArn": BLUE, "Weight": blue}, {"TargetGroupArn": GREEN, "Weight": green}, **kwargs)


# ---- normalisation and comparison ----


@pytest.mark.parametrize(
    ("described", "written"),
    [
        pytest.param(
            [{"Type": "forward", "TargetGroupArn": BLUE}],
            [forward({"TargetGroupArn": BLUE, "Weight": 1})],
            id="TargetGroupArn alone is a ForwardConfig of weight 1",
        ),
        pytest.param(
            [
                {
                    "Type": "forward",
                    "Order": 1,
                    "TargetGroupArn": BLUE,
                    "ForwardConfig": {
                        "TargetGroups": [{"TargetGroupArn": BLUE, "Weight": 1}],
                        "TargetGroupStickinessConfig": {"Enabled": False},
                    },
                }
            ],
            [forward({"TargetGroupArn": BLUE})],
            id="AWS describes a single target group both ways, with Order",
        ),
        pytest.param([weighted(100, 0)], [weighted(100, 0, stickiness={"Enabled": False})], id="no stickiness"),
        pytest.param(
            [weighted(100, 0, stickiness={"Enabled": False, "DurationSeconds": 3600})],
            [weighted(100, 0)],
            id="disabled stickiness ignores its duration",
        ),
        pytest.param(
            [forward({"TargetGroupArn": GREEN, "Weight": 0}, {"TargetGroupArn": BLUE, "Weight": 100})],
            [weighted(100, 0)],
            id="target group order",
        ),
        pytest.param([weighted(100, 0)], [weighted("100", "0")], id="weights as strings of digits"),
        pytest.param(
            [
                {
                    "Type": "redirect",
                    "RedirectConfig": {
                        "Protocol": "HTTPS",
                        "Port": "443",
                        "Host": "#{host}",
                        "Path": "/#{path}",
                        "Query": "#{query}",
                        "StatusCode": "HTTP_301",
                    },
                }
            ],
            [{"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": 443, "StatusCode": "HTTP_301"}}],
            id="redirect defaults filled in as AWS stores them",
        ),
        pytest.param(
            [{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404", "ContentType": "text/plain"}}],
            [
                {
                    "Type": "fixed-response",
                    "FixedResponseConfig": {"StatusCode": 404, "ContentType": "text/plain", "MessageBody": None},
                }
            ],
            id="fixed response with an int status and a None body",
        ),
        pytest.param(
            [
                {"Type": "fixed-response", "Order": 2, "FixedResponseConfig": {"StatusCode": "503"}},
                {"Type": "authenticate-oidc", "Order": 1, "AuthenticateOidcConfig": {"Issuer": "x"}},
            ],
            [
                {"Type": "authenticate-oidc", "Order": 1, "AuthenticateOidcConfig": {"Issuer": "x"}},
                {"Type": "fixed-response", "Order": 2, "FixedResponseConfig": {"StatusCode": 503}},
            ],
            id="several actions compare in Order",
        ),
    ],
)
def test_equivalent_actions_compare_equal(described, written):
    assert lu.actions_equal(described, written)


@pytest.mark.parametrize(
    ("current", "desired"),
    [
        pytest.param([weighted(100, 0)], [weighted(0, 100)], id="weights"),
        pytest.param([weighted(100, 0)], [weighted(100, 0, stickiness={"Enabled": True, "DurationSeconds": 60})]),
        pytest.param(
            [weighted(100, 0, stickiness={"Enabled": True, "DurationSeconds": 60})],
            [weighted(100, 0, stickiness={"Enabled": True, "DurationSeconds": 120})],
            id="stickiness duration",
        ),
        pytest.param([weighted(100, 0)], [forward({"TargetGroupArn": BLUE, "Weight": 100})], id="a target group less"),
        pytest.param(
            [{"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "StatusCode": "HTTP_301"}}],
            [{"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "StatusCode": "HTTP_302"}}],
            id="redirect status",
        ),
        pytest.param(
            [weighted(100, 0)], [{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "503"}}], id="type"
        ),
        pytest.param(
            [
                {"Type": "authenticate-oidc", "Order": 1, "AuthenticateOidcConfig": {"Issuer": "x"}},
                {"Type": "fixed-response", "Order": 2, "FixedResponseConfig": {"StatusCode": "503"}},
            ],
            [{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "503"}}],
            id="an action less",
        ),
    ],
)
def test_different_actions_compare_different(current, desired):
    assert not lu.actions_equal(current, desired)


def test_normalised_forward_is_forward_config_only_and_sorted():
    action = {"Type": "forward", "Order": 1, "TargetGroupArn": BLUE}
    assert lu.normalize_actions([action]) == [
        {
            "Type": "forward",
            "ForwardConfig": {
                "TargetGroups": [{"TargetGroupArn": BLUE, "Weight": 1}],
                "TargetGroupStickinessConfig": {"Enabled": False},
            },
        }
    ]


def test_normalising_does_not_touch_its_input():
    actions = [weighted(100, 0, stickiness={"Enabled": True, "DurationSeconds": 60}, Order=1)]
    before = copy.deepcopy(actions)
    lu.normalize_actions(actions)
    assert actions == before


def test_several_actions_without_order_keep_their_positions():
    first = {"Type": "authenticate-cognito", "AuthenticateCognitoConfig": {"UserPoolArn": "p"}}
    last = {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200"}}
    assert [a["Type"] for a in lu.normalize_actions([first, last])] == ["authenticate-cognito", "fixed-response"]


# ---- validation ----


def tg(name: str, weight=None) -> dict:
    entry = {"TargetGroupName": name}
    if weight is not None:
        entry["Weight"] = weight
    return entry


@pytest.mark.parametrize(
    ("actions", "problem"),
    [
        (None, "default_actions must be a list holding one action"),
        ([], "default_actions must be a list holding one action"),
        (["forward"], "default_actions[0] must be a dict"),
        ([{"Type": "authenticate-oidc"}], "Type must be one of forward, redirect, fixed-response"),
        ([{"Type": "forward"}], "a forward action needs at least one target group"),
        ([forward()], "a forward action needs at least one target group"),
        ([forward(tg("blue", 1000))], "TargetGroups[0].Weight must be an integer from 0 to 999, not 1000"),
        ([forward(tg("blue", -1))], "Weight must be an integer from 0 to 999, not -1"),
        ([forward(tg("blue", 1.5))], "Weight must be an integer from 0 to 999, not 1.5"),
        ([forward(tg("blue", True))], "Weight must be an integer from 0 to 999, not True"),
        ([forward(tg("blue", "ten"))], "Weight must be an integer from 0 to 999, not 'ten'"),
        ([forward(tg("blue", 1), tg("blue", 2))], "a target group appears more than once"),
        ([forward(*(tg(f"tg{i}") for i in range(6)))], "at most 5 target groups"),
        ([forward({"TargetGroupArn": BLUE, "TargetGroupName": "blue"})], "exactly one of TargetGroupArn and"),
        ([forward({"Weight": 1})], "exactly one of TargetGroupArn and TargetGroupName"),
        ([forward({"TargetGroupName": "blue", "Wieght": 1})], "unsupported keys: Wieght"),
        ([dict(forward(tg("blue")), Extra=1)], "(forward) has unsupported keys: Extra"),
        ([{"Type": "forward", "ForwardConfig": {"TargetGroups": "blue"}}], "TargetGroups must be a list"),
        ([{"Type": "forward", "ForwardConfig": "blue"}], "ForwardConfig must be a dict"),
        ([dict(forward(tg("blue"), tg("green")), TargetGroupName="blue")], "must name its only target group"),
        ([forward(tg("blue"), stickiness={"Enabled": "yes"})], "a dict with a boolean Enabled"),
        ([forward(tg("blue"), stickiness={"Enabled": True})], "DurationSeconds must be 1 to 604800"),
        ([forward(tg("blue"), stickiness={"Enabled": True, "DurationSeconds": 0})], "DurationSeconds must be"),
        ([{"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS"}}], "StatusCode HTTP_301 or HTTP_302"),
        ([{"Type": "redirect"}], "RedirectConfig must be a dict"),
        ([{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "302"}}], "StatusCode 2XX, 4XX or 5XX"),
        ([{"Type": "fixed-response"}], "FixedResponseConfig must be a dict"),
        ([forward(tg("blue")), forward(tg("green"))], "exactly one forward, redirect or fixed-response action"),
    ],
)
def test_validate_actions_rejects(actions, problem):
    problems = lu.validate_actions(actions)
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize(
    "actions",
    [
        [forward(tg("blue", 100), tg("green", 0))],
        [forward(tg("blue", "999"), {"TargetGroupArn": GREEN, "Weight": 0})],
        [forward(tg("blue"), stickiness={"Enabled": True, "DurationSeconds": 604800})],
        [forward(tg("blue"), stickiness={"Enabled": False})],
        [{"Type": "forward", "TargetGroupName": "blue"}],
        [{"Type": "forward", "TargetGroupArn": BLUE, "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": BLUE}]}}],
        [{"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}],
        [{"Type": "fixed-response", "Order": 1, "FixedResponseConfig": {"StatusCode": 503, "MessageBody": "x"}}],
    ],
)
def test_validate_actions_accepts(actions):
    assert lu.validate_actions(actions) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (999, 999), ("42", 42), (" 7 ", 7), (1000, None), (-1, None), (True, None), (None, None), (2.0, None)],
)
def test_parse_weight(value, expected):
    assert lu.parse_weight(value) == expected


# ---- forward weights ----


def test_forward_weights_reads_every_shape():
    assert lu.forward_weights([weighted(100, 0)]) == {BLUE: 100, GREEN: 0}
    assert lu.forward_weights([{"Type": "forward", "TargetGroupArn": BLUE}]) == {BLUE: 1}
    assert lu.forward_weights([forward({"TargetGroupArn": BLUE})]) == {BLUE: 1}
    assert lu.forward_weights([{"Type": "redirect", "RedirectConfig": {"StatusCode": "HTTP_301"}}]) == {}
    assert lu.forward_weights([]) == {}


def test_build_forward_action_keeps_stickiness_and_order_of_the_action_it_replaces():
    current = weighted(100, 0, stickiness={"Enabled": True, "DurationSeconds": 300}, Order=2)
    built = lu.build_forward_action({BLUE: 0, GREEN: "100"}, current)
    assert built == {
        "Type": "forward",
        "Order": 2,
        "ForwardConfig": {
            "TargetGroups": [{"TargetGroupArn": BLUE, "Weight": 0}, {"TargetGroupArn": GREEN, "Weight": 100}],
            "TargetGroupStickinessConfig": {"Enabled": True, "DurationSeconds": 300},
        },
    }
    assert lu.forward_weights([built]) == {BLUE: 0, GREEN: 100}


def test_build_forward_action_without_a_current_action_disables_stickiness():
    built = lu.build_forward_action({BLUE: 1})
    assert built["ForwardConfig"]["TargetGroupStickinessConfig"] == {"Enabled": False}
    assert "Order" not in built


@pytest.mark.parametrize(
    ("weights", "message"),
    [({}, "at least one target group"), ({BLUE: 1000}, "from 0 to 999"), ({BLUE: -5}, "not -5")],
)
def test_build_forward_action_rejects(weights, message):
    with pytest.raises(ValueError, match=message):
        lu.build_forward_action(weights)


def test_with_forward_weights_replaces_only_the_forward_action():
    auth = {"Type": "authenticate-oidc", "Order": 1, "AuthenticateOidcConfig": {"Issuer": "x"}}
    actions = [auth, weighted(100, 0, stickiness={"Enabled": True, "DurationSeconds": 60}, Order=2)]
    updated = lu.with_forward_weights(actions, {BLUE: 0, GREEN: 100})
    assert updated[0] == auth
    assert lu.forward_weights(updated) == {BLUE: 0, GREEN: 100}
    assert updated[1]["ForwardConfig"]["TargetGroupStickinessConfig"]["Enabled"] is True
    assert lu.forward_weights(actions) == {BLUE: 100, GREEN: 0}


def test_with_forward_weights_needs_a_forward_action():
    with pytest.raises(ValueError, match="do not forward"):
        lu.with_forward_weights([{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "503"}}], {BLUE: 1})


# ---- target group references ----


@pytest.mark.parametrize(
    ("arn", "name"),
    [(BLUE, "app-blue"), (GREEN, "app-green"), ("app-blue", "app-blue"), (LB_ARN, LB_ARN)],
)
def test_target_group_name(arn, name):
    assert lu.target_group_name(arn) == name


def test_resolve_actions_replaces_names_and_writes_forward_config_only():
    actions = [forward(tg("app-blue", 100), {"TargetGroupArn": GREEN, "Weight": 0})]
    assert lu.target_group_refs(actions) == ["app-blue", GREEN]
    resolved = lu.resolve_actions(actions, {"app-blue": BLUE, GREEN: GREEN})
    assert resolved == lu.normalize_actions([weighted(100, 0)])
    single = lu.resolve_actions([{"Type": "forward", "TargetGroupName": "app-blue"}], {"app-blue": BLUE})
    assert single == lu.normalize_actions([forward({"TargetGroupArn": BLUE, "Weight": 1})])
    assert "TargetGroupName" not in single[0] and "TargetGroupArn" not in single[0]


def describe_known(known: dict):
    """describe_target_groups as AWS answers it for these {name or ARN: ARN}: every reference, or
    TargetGroupNotFound for the whole call when one is missing."""

    def describe(**kw):
        refs = kw.get("Names") or kw.get("TargetGroupArns")
        if any(ref not in known for ref in refs):
            raise client_error("TargetGroupNotFound")
        return {
            "TargetGroups": [
                {"TargetGroupArn": known[ref], "TargetGroupName": lu.target_group_name(known[ref])} for ref in refs
            ]
        }

    return describe


def test_resolve_target_group_arns_reads_names_and_arns_in_one_call_each():
    client = MagicMock()
    client.describe_target_groups.side_effect = describe_known({"app-blue": BLUE, "app-green": GREEN, GREEN: GREEN})
    assert lu.resolve_target_group_arns(client, ["app-blue", GREEN, "app-green", "app-blue"]) == {
        "app-blue": BLUE,
        GREEN: GREEN,
        "app-green": GREEN,
    }
    assert client.describe_target_groups.call_count == 2
    client.describe_target_groups.assert_any_call(aws_retry=True, Names=["app-blue", "app-green"])
    client.describe_target_groups.assert_any_call(aws_retry=True, TargetGroupArns=[GREEN])


def test_resolve_target_group_arns_looks_one_by_one_only_when_one_is_missing():
    client = MagicMock()
    client.describe_target_groups.side_effect = describe_known({"app-blue": BLUE})
    with pytest.raises(AnsibleAWSError, match="Target group\\(s\\) not found: gone$"):
        lu.resolve_target_group_arns(client, ["app-blue", "gone"])
    # The batch, then each name alone to tell which one is missing.
    assert [c.kwargs["Names"] for c in client.describe_target_groups.call_args_list] == [
        ["app-blue", "gone"],
        ["app-blue"],
        ["gone"],
    ]


def test_resolve_target_group_arns_names_every_missing_one():
    client = MagicMock()
    client.describe_target_groups.side_effect = client_error("TargetGroupNotFound")
    with pytest.raises(AnsibleAWSError, match="Target group\\(s\\) not found: nope, gone"):
        lu.resolve_target_group_arns(client, ["nope", "gone"])


# ---- AWS wrappers ----


def test_find_load_balancer_by_name_or_arn():
    client = MagicMock()
    client.describe_load_balancers.return_value = {"LoadBalancers": [{"LoadBalancerArn": LB_ARN}]}
    assert lu.find_load_balancer(client, name="app")["LoadBalancerArn"] == LB_ARN
    client.describe_load_balancers.assert_called_with(aws_retry=True, Names=["app"])
    lu.find_load_balancer(client, arn=LB_ARN)
    client.describe_load_balancers.assert_called_with(aws_retry=True, LoadBalancerArns=[LB_ARN])
    client.describe_load_balancers.side_effect = client_error("LoadBalancerNotFound")
    assert lu.find_load_balancer(client, name="gone") is None


def test_find_listener_picks_the_port():
    client = MagicMock()
    client.get_paginator.return_value.paginate.return_value.build_full_result.return_value = {
        "Listeners": [{"Port": 80, "ListenerArn": "l80"}, {"Port": 443, "ListenerArn": "l443"}]
    }
    assert lu.find_listener(client, LB_ARN, 443)["ListenerArn"] == "l443"
    assert lu.find_listener(client, LB_ARN, 8443) is None
    client.get_paginator.assert_called_with("describe_listeners")
    client.get_paginator.return_value.paginate.assert_called_with(LoadBalancerArn=LB_ARN)


def test_listener_wrappers_pass_aws_retry_and_map_not_found():
    client = MagicMock()
    client.delete_listener.side_effect = client_error("ListenerNotFound")
    assert lu.delete_listener(client, LISTENER_ARN) is False
    client.delete_listener.assert_called_once_with(aws_retry=True, ListenerArn=LISTENER_ARN)
    client.describe_listeners.side_effect = client_error("ListenerNotFound")
    assert lu.describe_listener(client, LISTENER_ARN) is None
    client.describe_tags.return_value = {
        "TagDescriptions": [{"ResourceArn": LISTENER_ARN, "Tags": [{"Key": "a", "Value": "b"}]}]
    }
    assert lu.get_tags(client, LISTENER_ARN) == {"a": "b"}
    lu.add_tags(client, LISTENER_ARN, {"c": "d"})
    client.add_tags.assert_called_once_with(
        aws_retry=True, ResourceArns=[LISTENER_ARN], Tags=[{"Key": "c", "Value": "d"}]
    )
    lu.remove_tags(client, LISTENER_ARN, ["a"])
    client.remove_tags.assert_called_once_with(aws_retry=True, ResourceArns=[LISTENER_ARN], TagKeys=["a"])


def test_wrapper_errors_become_ansible_aws_errors():
    client = MagicMock()
    client.modify_listener.side_effect = client_error("CertificateNotFound")
    with pytest.raises(AnsibleAWSError, match="Failed to modify listener"):
        lu.modify_listener(client, LISTENER_ARN, SslPolicy="x")
    client.create_listener.side_effect = client_error("DuplicateListener")
    with pytest.raises(AnsibleAWSError, match="Failed to create listener"):
        lu.create_listener(client, LoadBalancerArn=LB_ARN, Port=80)


def test_retry_retries_throttling(monkeypatch):
    from ansible_collections.amazon.aws.plugins.module_utils import cloud

    monkeypatch.setattr(cloud.time, "sleep", lambda _seconds: None)
    calls = []

    @lu.ELBV2_RETRY
    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise client_error("Throttling")
        return "ok"

    assert flaky() == "ok"
    assert len(calls) == 3
