"""Unit tests for ecs_production.platform.elb_listener: input validation, the decisions the module makes
against a fake load balancer standing in for its AWS call wrappers, and main() end to end on a fake client."""

from __future__ import annotations

import copy
import json
from unittest.mock import MagicMock

import botocore.exceptions
import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.ecs_production.platform.plugins.module_utils import elbv2_listeners
from ansible_collections.ecs_production.platform.plugins.modules import elb_listener as mod

PREFIX = "arn:aws:elasticloadbalancing:us-east-1:123456789012"
LB_ARN = f"{PREFIX}:loadbalancer/app/app/1111111111111111"
BLUE = f"{PREFIX}:targetgroup/app-blue/0123456789abcdef"
GREEN = f"{PREFIX}:targetgroup/app-green/fedcba9876543210"
CERT = "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"
OTHER_CERT = "arn:aws:acm:us-east-1:123456789012:certificate/66666666-7777-8888-9999-000000000000"
POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
TARGET_GROUPS = {"app-blue": BLUE, "app-green": GREEN, BLUE: BLUE, GREEN: GREEN}


def forward_names(blue: int, green: int, **config) -> list[dict]:
    groups = [{"TargetGroupName": "app-blue", "Weight": blue}, {"TargetGroupName": "app-green", "Weight": green}]
    return [{"Type": "forward", "ForwardConfig": dict(config, TargetGroups=groups)}]


def described_forward(blue: int, green: int, stickiness: dict | None = None) -> list[dict]:
    """A weighted forward as AWS describes it."""
    return [
        {
            "Type": "forward",
            "ForwardConfig": {
                "TargetGroups": [{"TargetGroupArn": BLUE, "Weight": blue}, {"TargetGroupArn": GREEN, "Weight": green}],
                "TargetGroupStickinessConfig": stickiness or {"Enabled": False},
            },
        }
    ]


DEFAULTS = {
    "state": "present",
    "load_balancer_arn": None,
    "load_balancer_name": "app",
    "port": 443,
    "protocol": "HTTPS",
    "certificate_arn": CERT,
    "ssl_policy": POLICY,
    "default_actions": forward_names(100, 0),
    "default_actions_on_create_only": False,
    "tags": None,
    "purge_tags": True,
}


def want(**params) -> mod.Want:
    return mod.want_from_params(dict(DEFAULTS, **params))


def https_listener(**fields) -> dict:
    listener = {
        "ListenerArn": f"{PREFIX}:listener/app/app/1111111111111111/443",
        "LoadBalancerArn": LB_ARN,
        "Port": 443,
        "Protocol": "HTTPS",
        "Certificates": [{"CertificateArn": CERT}],
        "SslPolicy": POLICY,
        "DefaultActions": described_forward(100, 0),
    }
    listener.update(fields)
    return listener


class FakeModule:
    def __init__(self, check_mode: bool = False):
        self.check_mode = check_mode


class FakeElb:
    """One load balancer's listeners and tags, behind the wrappers elb_listener calls."""

    def __init__(self, listeners: list[dict] | None = None, tags: dict | None = None):
        self.listeners = {listener["Port"]: copy.deepcopy(listener) for listener in listeners or []}
        self.tags = {listener["ListenerArn"]: dict(tags or {}) for listener in listeners or []}
        self.writes: list[tuple] = []
        self.resolved: list[list[str]] = []

    def install(self, monkeypatch) -> FakeElb:
        for name in ("find_listener", "create_listener", "modify_listener", "delete_listener", "get_tags",
                     "add_tags", "remove_tags", "resolve_target_group_arns"):  # fmt: skip
            monkeypatch.setattr(mod, name, getattr(self, name))
        return self

    def by_arn(self, arn: str) -> dict:
        return next(listener for listener in self.listeners.values() if listener["ListenerArn"] == arn)

    def find_listener(self, _client, load_balancer_arn, port):
        assert load_balancer_arn == LB_ARN
        return copy.deepcopy(self.listeners.get(port))

    def resolve_target_group_arns(self, _client, refs):
        self.resolved.append(list(refs))
        missing = [ref for ref in refs if ref not in TARGET_GROUPS]
        if missing:
            raise AnsibleAWSError(message=f"Target group(s) not found: {', '.join(missing)}")
        return {ref: TARGET_GROUPS[ref] for ref in refs}

    def create_listener(self, _client, **params):
        self.writes.append(("create", params))
        listener = {k: v for k, v in params.items() if k != "Tags"}
        listener["ListenerArn"] = f"{PREFIX}:listener/app/app/1111111111111111/{params['Port']}"
        self.listeners[params["Port"]] = listener
        self.tags[listener["ListenerArn"]] = {t["Key"]: t["Value"] for t in params.get("Tags", [])}
        return copy.deepcopy(listener)

    def modify_listener(self, _client, arn, **changes):
        self.writes.append(("modify", changes))
        listener = self.by_arn(arn)
        listener.update(copy.deepcopy(changes))
        return copy.deepcopy(listener)

    def delete_listener(self, _client, arn):
        self.writes.append(("delete", arn))
        self.listeners = {p: listener for p, listener in self.listeners.items() if listener["ListenerArn"] != arn}
        return True

    def get_tags(self, _client, arn):
        return dict(self.tags.get(arn, {}))

    def add_tags(self, _client, arn, tags):
        self.writes.append(("add_tags", dict(tags)))
        self.tags[arn].update(tags)

    def remove_tags(self, _client, arn, keys):
        self.writes.append(("remove_tags", sorted(keys)))
        for key in keys:
            self.tags[arn].pop(key)


LOAD_BALANCER = {"LoadBalancerArn": LB_ARN, "LoadBalancerName": "app", "Type": "application"}


def present(check_mode: bool, **params) -> dict:
    return mod.ensure_present(FakeModule(check_mode), None, LOAD_BALANCER, want(**params))


# ---- input validation ----


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"port": 0}, "port must be from 1 to 65535, not 0"),
        ({"port": 65536}, "port must be from 1 to 65535, not 65536"),
        ({"protocol": "HTTP", "ssl_policy": None}, "certificate_arn is only valid with protocol HTTPS"),
        ({"protocol": "HTTP", "certificate_arn": None}, "ssl_policy is only valid with protocol HTTPS"),
        ({"default_actions": forward_names(1000, 0)}, "Weight must be an integer from 0 to 999, not 1000"),
        ({"default_actions": [{"Type": "forward", "ForwardConfig": {"TargetGroups": []}}]}, "at least one target"),
        ({"default_actions": []}, "default_actions must be a list holding one action"),
        ({"state": "absent", "port": -1}, "port must be from 1 to 65535"),
    ],
)
def test_check_params_rejects(params, problem):
    problems = mod.check_params(dict(DEFAULTS, **params))
    assert any(problem in p for p in problems), problems


def test_check_params_accepts_and_ignores_actions_when_absent():
    assert mod.check_params(dict(DEFAULTS)) == []
    assert mod.check_params(dict(DEFAULTS, state="absent", protocol=None, default_actions=None)) == []


# ---- decisions ----


@pytest.mark.parametrize("check_mode", [False, True])
def test_create_writes_forward_config_only_with_tls_and_tags(monkeypatch, check_mode):
    elb = FakeElb().install(monkeypatch)
    result = present(check_mode, tags={"Environment": "prod"})

    assert result["changed"] is True
    assert result["weights"] == {"app-blue": 100, "app-green": 0}
    assert result["listener"]["certificates"] == [CERT]
    assert result["listener"]["ssl_policy"] == POLICY
    assert result["listener"]["tags"] == {"Environment": "prod"}
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"]["default_actions"] == elbv2_listeners.normalize_actions(described_forward(100, 0))
    assert elb.resolved == [["app-blue", "app-green"]]
    if check_mode:
        assert elb.writes == []
        assert "arn" not in result["listener"]
        return
    [(kind, params)] = elb.writes
    assert kind == "create"
    assert params["DefaultActions"] == elbv2_listeners.normalize_actions(described_forward(100, 0))
    assert "TargetGroupArn" not in params["DefaultActions"][0]
    assert params["Certificates"] == [{"CertificateArn": CERT}]
    assert params["SslPolicy"] == POLICY
    assert params["Tags"] == [{"Key": "Environment", "Value": "prod"}]
    assert result["listener"]["arn"].endswith("/443")


def test_create_http_sends_no_tls_settings_and_no_weights_for_a_redirect(monkeypatch):
    elb = FakeElb().install(monkeypatch)
    redirect = [{"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}]
    result = present(False, port=80, protocol="HTTP", certificate_arn=None, ssl_policy=None,
                     default_actions=redirect)  # fmt: skip
    [(_kind, params)] = elb.writes
    assert set(params) == {"LoadBalancerArn", "Protocol", "Port", "DefaultActions"}
    assert "weights" not in result
    assert result["listener"]["certificates"] == []
    assert elb.resolved == [[]]


@pytest.mark.parametrize("check_mode", [False, True])
def test_rerun_changes_nothing_and_writes_nothing(monkeypatch, check_mode):
    elb = FakeElb([https_listener()], tags={"Environment": "prod"}).install(monkeypatch)
    result = present(check_mode, tags={"Environment": "prod"})
    assert result["changed"] is False
    assert elb.writes == []
    assert result["diff"]["before"] == result["diff"]["after"]
    assert result["weights"] == {"app-blue": 100, "app-green": 0}


@pytest.mark.parametrize("check_mode", [False, True])
def test_on_create_only_keeps_weights_set_since_without_resolving(monkeypatch, check_mode):
    swapped = https_listener(DefaultActions=described_forward(0, 100))
    elb = FakeElb([swapped]).install(monkeypatch)
    result = present(check_mode, default_actions_on_create_only=True)
    assert result["changed"] is False
    assert elb.writes == []
    assert elb.resolved == []
    assert result["weights"] == {"app-blue": 0, "app-green": 100}


@pytest.mark.parametrize("check_mode", [False, True])
def test_on_create_only_still_enforces_tls_settings(monkeypatch, check_mode):
    elb = FakeElb([https_listener(DefaultActions=described_forward(0, 100), SslPolicy="old")]).install(monkeypatch)
    result = present(check_mode, default_actions_on_create_only=True)
    assert result["changed"] is True
    assert result["diff"]["after"]["default_actions"] == result["diff"]["before"]["default_actions"]
    assert elb.writes == ([] if check_mode else [("modify", {"SslPolicy": POLICY})])


@pytest.mark.parametrize("check_mode", [False, True])
def test_enforced_weights_are_written_back(monkeypatch, check_mode):
    elb = FakeElb([https_listener(DefaultActions=described_forward(0, 100))]).install(monkeypatch)
    result = present(check_mode)
    assert result["changed"] is True
    assert result["weights"] == {"app-blue": 100, "app-green": 0}
    assert elbv2_listeners.forward_weights(result["diff"]["before"]["default_actions"]) == {BLUE: 0, GREEN: 100}
    assert elbv2_listeners.forward_weights(result["diff"]["after"]["default_actions"]) == {BLUE: 100, GREEN: 0}
    if check_mode:
        assert elb.writes == []
    else:
        assert elb.writes == [
            ("modify", {"DefaultActions": elbv2_listeners.normalize_actions(described_forward(100, 0))})
        ]


@pytest.mark.parametrize("check_mode", [False, True])
def test_stickiness_is_compared_and_written(monkeypatch, check_mode):
    sticky = {"Enabled": True, "DurationSeconds": 300}
    elb = FakeElb([https_listener()]).install(monkeypatch)
    result = present(check_mode, default_actions=forward_names(100, 0, TargetGroupStickinessConfig=sticky))
    assert result["changed"] is True
    assert result["diff"]["after"]["default_actions"][0]["ForwardConfig"]["TargetGroupStickinessConfig"] == sticky
    assert len(elb.writes) == (0 if check_mode else 1)


@pytest.mark.parametrize(
    ("current", "params", "changes"),
    [
        pytest.param({"SslPolicy": "old"}, {}, {"SslPolicy": POLICY}, id="ssl policy"),
        pytest.param({}, {"ssl_policy": None}, {}, id="no ssl policy asked for"),
        pytest.param(
            {"Certificates": [{"CertificateArn": OTHER_CERT}]},
            {},
            {"Certificates": [{"CertificateArn": CERT}]},
            id="certificate",
        ),
        pytest.param(
            {"Protocol": "HTTP", "Certificates": [], "SslPolicy": "ELBSecurityPolicy-2016-08"},
            {},
            {"Protocol": "HTTPS", "Certificates": [{"CertificateArn": CERT}], "SslPolicy": POLICY},
            id="HTTP to HTTPS",
        ),
        pytest.param(
            {},
            {"protocol": "HTTP", "certificate_arn": None, "ssl_policy": None},
            {"Protocol": "HTTP"},
            id="HTTPS to HTTP",
        ),
    ],
)
def test_listener_changes(current, params, changes):
    resolved = elbv2_listeners.normalize_actions(described_forward(100, 0))
    assert mod.listener_changes(https_listener(**current), want(**params), resolved) == changes


def test_listener_changes_leaves_actions_alone_when_given_none():
    assert mod.listener_changes(https_listener(DefaultActions=described_forward(0, 100)), want(), None) == {}


@pytest.mark.parametrize("check_mode", [False, True])
@pytest.mark.parametrize(
    ("params", "writes", "after"),
    [
        ({"tags": {"b": "2"}}, [("remove_tags", ["a"]), ("add_tags", {"b": "2"})], {"b": "2"}),
        ({"tags": {"b": "2"}, "purge_tags": False}, [("add_tags", {"b": "2"})], {"a": "1", "b": "2"}),
        ({"tags": {"a": "1"}}, [], {"a": "1"}),
        ({"tags": None}, [], {"a": "1"}),
        ({"tags": {}}, [("remove_tags", ["a"])], {}),
    ],
)
def test_tags(monkeypatch, check_mode, params, writes, after):
    elb = FakeElb([https_listener()], tags={"a": "1"}).install(monkeypatch)
    result = present(check_mode, **params)
    assert result["changed"] is bool(writes)
    assert result["listener"]["tags"] == after
    assert elb.writes == ([] if check_mode else writes)


def test_unknown_target_group_fails_before_writing(monkeypatch):
    elb = FakeElb([https_listener()]).install(monkeypatch)
    actions = [{"Type": "forward", "ForwardConfig": {"TargetGroups": [{"TargetGroupName": "nope"}]}}]
    with pytest.raises(AnsibleAWSError, match="Target group\\(s\\) not found: nope"):
        present(False, default_actions=actions)
    assert elb.writes == []


@pytest.mark.parametrize("check_mode", [False, True])
def test_absent_deletes_the_listener(monkeypatch, check_mode):
    elb = FakeElb([https_listener()], tags={"a": "1"}).install(monkeypatch)
    result = mod.ensure_absent(FakeModule(check_mode), None, LOAD_BALANCER, 443)
    assert result["changed"] is True
    assert result["diff"]["before"]["port"] == 443
    assert result["diff"]["before"]["tags"] == {"a": "1"}
    assert result["diff"]["after"] == {}
    assert elb.writes == ([] if check_mode else [("delete", https_listener()["ListenerArn"])])


@pytest.mark.parametrize("load_balancer", [LOAD_BALANCER, None])
def test_absent_without_listener_changes_nothing(monkeypatch, load_balancer):
    elb = FakeElb([https_listener()]).install(monkeypatch)
    result = mod.ensure_absent(FakeModule(), None, load_balancer, 80 if load_balancer else 443)
    assert result["changed"] is False
    assert elb.writes == []


@pytest.mark.parametrize(
    ("load_balancer", "message"),
    [(None, "Load balancer app not found"), (dict(LOAD_BALANCER, Type="network"), "is a network load balancer")],
)
def test_present_needs_an_application_load_balancer(load_balancer, message):
    with pytest.raises(AnsibleAWSError, match=message):
        mod.require_application_load_balancer(load_balancer, "app")


def test_listener_view_hides_the_ssl_policy_the_emulator_reports_for_http():
    listener = https_listener(Protocol="HTTP", Certificates=[], SslPolicy="ELBSecurityPolicy-2016-08")
    view = mod.listener_view(listener, {})
    assert view["ssl_policy"] is None
    assert view["certificates"] == []
    assert mod.diff_view(listener, {})["ssl_policy"] is None


# ---- main() on a fake ELBv2 client ----


def client_error(code: str) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": code}}, "Operation")


class FakeClient:
    """The ELBv2 API calls elb_listener makes, over one load balancer; records every write."""

    WRITES = ("create_listener", "modify_listener", "delete_listener", "add_tags", "remove_tags")

    def __init__(self, listeners: list[dict] | None = None):
        self.listeners = [copy.deepcopy(listener) for listener in listeners or []]
        self.tags: dict[str, list[dict]] = {listener["ListenerArn"]: [] for listener in self.listeners}
        self.calls: list[tuple[str, dict]] = []

    def _record(self, name: str, kwargs: dict) -> None:
        assert kwargs.pop("aws_retry", None) is True, f"{name} called without aws_retry=True"
        self.calls.append((name, kwargs))

    @property
    def writes(self) -> list[tuple[str, dict]]:
        return [call for call in self.calls if call[0] in self.WRITES]

    def describe_load_balancers(self, **kwargs):
        self._record("describe_load_balancers", kwargs)
        if kwargs.get("Names", ["app"]) != ["app"]:
            raise client_error("LoadBalancerNotFound")
        return {"LoadBalancers": [dict(LOAD_BALANCER)]}

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

    def describe_tags(self, **kwargs):
        self._record("describe_tags", kwargs)
        return {"TagDescriptions": [{"ResourceArn": a, "Tags": self.tags[a]} for a in kwargs["ResourceArns"]]}

    def create_listener(self, **kwargs):
        self._record("create_listener", kwargs)
        listener = {k: v for k, v in kwargs.items() if k != "Tags"}
        listener["ListenerArn"] = f"{PREFIX}:listener/app/app/1111111111111111/{kwargs['Port']}"
        self.listeners.append(listener)
        self.tags[listener["ListenerArn"]] = kwargs.get("Tags", [])
        return {"Listeners": [copy.deepcopy(listener)]}

    def modify_listener(self, **kwargs):
        self._record("modify_listener", kwargs)
        listener = next(item for item in self.listeners if item["ListenerArn"] == kwargs["ListenerArn"])
        listener.update(copy.deepcopy(kwargs))
        return {"Listeners": [copy.deepcopy(listener)]}


def run_main(monkeypatch, capsys, args: dict, client: FakeClient, check_mode: bool = False) -> tuple[dict, MagicMock]:
    factory = MagicMock(return_value=client)
    monkeypatch.setattr(mod.AnsibleAWSModule, "client", factory)
    with patch_module_args(dict(args, _ansible_check_mode=check_mode, _ansible_diff=True)), pytest.raises(SystemExit):
        mod.main()
    return json.loads(capsys.readouterr().out), factory


MAIN_ARGS = {
    "load_balancer_name": "app",
    "port": 443,
    "protocol": "HTTPS",
    "certificate_arn": CERT,
    "ssl_policy": POLICY,
    "default_actions": forward_names(100, 0),
    "tags": {"Environment": "prod"},
}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"certificate_arn": None}, "protocol is HTTPS but all of the following are missing: certificate_arn"),
        ({"default_actions": forward_names(0, 1000)}, "Weight must be an integer from 0 to 999, not 1000"),
        ({"load_balancer_arn": LB_ARN}, "mutually exclusive: load_balancer_arn|load_balancer_name"),
        ({"load_balancer_name": None}, "one of the following is required: load_balancer_arn, load_balancer_name"),
        ({"port": 0}, "port must be from 1 to 65535"),
        ({"default_actions": None}, "state is present but all of the following are missing: default_actions"),
        ({"protocol": "HTTP"}, "certificate_arn is only valid with protocol HTTPS"),
    ],
)
def test_main_rejects_bad_input_before_any_client(monkeypatch, capsys, args, message):
    result, factory = run_main(monkeypatch, capsys, {k: v for k, v in dict(MAIN_ARGS, **args).items() if v is not None},
                               FakeClient())  # fmt: skip
    assert result["failed"]
    assert message in result["msg"]
    factory.assert_not_called()


def test_main_creates_then_reruns_without_writes(monkeypatch, capsys):
    client = FakeClient()
    result, factory = run_main(monkeypatch, capsys, MAIN_ARGS, client)
    assert result["changed"] is True
    assert result["weights"] == {"app-blue": 100, "app-green": 0}
    assert result["listener"]["tags"] == {"Environment": "prod"}
    assert factory.call_args.args == ("elbv2",)
    assert factory.call_args.kwargs["retry_decorator"] is elbv2_listeners.ELBV2_RETRY
    assert [name for name, _kwargs in client.writes] == ["create_listener"]

    client.calls.clear()
    result, _factory = run_main(monkeypatch, capsys, MAIN_ARGS, client)
    assert result["changed"] is False
    assert result["diff"]["before"] == result["diff"]["after"]
    assert client.writes == []


def test_main_check_mode_makes_no_write_call(monkeypatch, capsys):
    client = FakeClient([https_listener(DefaultActions=described_forward(0, 100), SslPolicy="old")])
    result, _factory = run_main(monkeypatch, capsys, MAIN_ARGS, client, check_mode=True)
    assert result["changed"] is True
    assert result["listener"]["ssl_policy"] == POLICY
    assert result["weights"] == {"app-blue": 100, "app-green": 0}
    assert client.writes == []


def test_main_reports_unknown_target_groups(monkeypatch, capsys):
    args = dict(MAIN_ARGS, default_actions=[{"Type": "forward", "TargetGroupName": "nope"}])
    result, _factory = run_main(monkeypatch, capsys, args, FakeClient())
    assert result["failed"]
    assert result["msg"] == "Target group(s) not found: nope"


def test_main_fails_on_a_missing_load_balancer_but_absent_succeeds(monkeypatch, capsys):
    result, _factory = run_main(monkeypatch, capsys, dict(MAIN_ARGS, load_balancer_name="gone"), FakeClient())
    assert result["failed"]
    assert result["msg"] == "Load balancer gone not found"
    result, _factory = run_main(monkeypatch, capsys, {"load_balancer_name": "gone", "port": 443, "state": "absent"},
                                FakeClient())  # fmt: skip
    assert result["changed"] is False
