"""Unit tests for ecs_production.platform.cloudwatch_dashboard: input refused before any call, bodies compared by
content, and main() over a fake CloudWatch (one read; a write only where the body differs)."""

from __future__ import annotations

import json

import botocore.exceptions
import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.ecs_production.platform.plugins.modules import cloudwatch_dashboard as mod
from module_runner import run_module

WIDGET = {
    "type": "metric",
    "x": 0,
    "y": 0,
    "width": 12,
    "height": 6,
    "properties": {"title": "Requests", "region": "us-east-1", "metrics": [["AWS/ApplicationELB", "RequestCount"]]},
}
BODY = {"widgets": [WIDGET]}


@pytest.mark.parametrize(
    ("name", "body", "problem"),
    [
        ("has space", BODY, "name must be 1 to 255 letters, digits, '-' or '_', not 'has space'"),
        ("x" * 256, BODY, "name must be 1 to 255"),
        ("ok", {}, "body.widgets must be a non-empty list of widgets"),
        ("ok", {"widgets": []}, "body.widgets must be a non-empty list of widgets"),
        ("ok", {"widgets": ["text"]}, "body.widgets[0] must be a dict, not str"),
        ("ok", {"widgets": [WIDGET, {"type": "metric"}]}, "body.widgets[1] needs a type and a dict of properties"),
    ],
)
def test_bad_input_is_refused(name, body, problem):
    problems = mod.check_input(name, body, "present")
    assert any(problem in p for p in problems), problems


def test_absent_needs_only_a_good_name():
    assert mod.check_input("prod", None, "absent") == []
    assert mod.check_input("pr od", None, "absent") != []


def test_bodies_compare_by_content_not_by_key_order():
    reordered = {"widgets": [dict(reversed(list(WIDGET.items())))]}
    assert mod.canonical(reordered) == mod.canonical(BODY)
    assert mod.canonical({"widgets": [dict(WIDGET, width=6)]}) != mod.canonical(BODY)


class FakeCloudWatch:
    def __init__(self, dashboards: dict | None = None):
        self.dashboards = dashboards or {}
        self.calls: list[tuple[str, dict]] = []
        self.messages: list[dict] = []

    def get_dashboard(self, aws_retry, **kwargs):  # noqa: ARG002 - the wrappers always ask for retries
        self.calls.append(("get_dashboard", kwargs))
        name = kwargs["DashboardName"]
        if name not in self.dashboards:
            error = {"Error": {"Code": "ResourceNotFound", "Message": "Dashboard does not exist"}}
            raise botocore.exceptions.ClientError(error, "GetDashboard")
        return {
            "DashboardName": name,
            "DashboardArn": f"arn:aws:cloudwatch::123456789012:dashboard/{name}",
            "DashboardBody": self.dashboards[name],
        }

    def put_dashboard(self, aws_retry, **kwargs):  # noqa: ARG002
        self.calls.append(("put_dashboard", kwargs))
        self.dashboards[kwargs["DashboardName"]] = kwargs["DashboardBody"]
        return {"DashboardValidationMessages": self.messages}

    def delete_dashboards(self, aws_retry, **kwargs):  # noqa: ARG002
        self.calls.append(("delete_dashboards", kwargs))
        for name in kwargs["DashboardNames"]:
            self.dashboards.pop(name, None)


def run(monkeypatch, capsys, client, **args):
    return run_module(mod, monkeypatch, capsys, client, **args)


def names(client) -> list[str]:
    return [name for name, _kwargs in client.calls]


def test_main_creates_then_changes_nothing_then_updates_then_deletes(monkeypatch, capsys):
    client = FakeCloudWatch()
    result = run(monkeypatch, capsys, client, name="prod", body=BODY)
    assert result["changed"] and result["change"] == "create"
    assert result["dashboard_arn"].endswith(":dashboard/prod")
    assert json.loads(client.dashboards["prod"]) == BODY

    client.calls.clear()
    # AWS hands the body back in its own spacing and key order: still no change, and only the read.
    client.dashboards["prod"] = json.dumps({"widgets": [dict(reversed(list(WIDGET.items())))]}, indent=2)
    result = run(monkeypatch, capsys, client, name="prod", body=BODY)
    assert not result["changed"] and names(client) == ["get_dashboard"]

    client.calls.clear()
    wider = {"widgets": [dict(WIDGET, width=24)]}
    result = run(monkeypatch, capsys, client, name="prod", body=wider, _ansible_diff=True)
    assert result["change"] == "update" and names(client) == ["get_dashboard", "put_dashboard"]
    assert result["diff"]["before"]["widgets"][0]["width"] == 12
    assert result["diff"]["after"]["widgets"][0]["width"] == 24

    client.calls.clear()
    result = run(monkeypatch, capsys, client, name="prod", state="absent")
    assert result["changed"] and result["change"] == "delete" and client.dashboards == {}
    assert client.calls[-1] == ("delete_dashboards", {"DashboardNames": ["prod"]})
    result = run(monkeypatch, capsys, client, name="prod", state="absent")
    assert not result["changed"] and result["change"] == ""


def test_check_mode_writes_nothing(monkeypatch, capsys):
    client = FakeCloudWatch()
    result = run(monkeypatch, capsys, client, name="prod", body=BODY, _ansible_check_mode=True)
    assert result["changed"] and result["change"] == "create" and client.dashboards == {}
    client.dashboards["prod"] = json.dumps(BODY)
    result = run(monkeypatch, capsys, client, name="prod", state="absent", _ansible_check_mode=True)
    assert result["changed"] and "prod" in client.dashboards
    assert "put_dashboard" not in names(client) and "delete_dashboards" not in names(client)


def test_validation_messages_are_warnings(monkeypatch, capsys):
    client = FakeCloudWatch()
    client.messages = [{"DataPath": "/widgets/0", "Message": "Should NOT have additional properties"}]
    result = run(monkeypatch, capsys, client, name="prod", body=BODY)
    assert result["validation_messages"] == client.messages
    assert "/widgets/0: Should NOT have additional properties" in json.dumps(result["warnings"]), result["warnings"]


def test_bad_input_is_refused_before_any_client(monkeypatch, capsys):
    made = []
    monkeypatch.setattr(
        mod.AnsibleAWSModule,
        "client",
        lambda _self, service, retry_decorator=None: made.append(service),  # noqa: ARG005
    )
    with patch_module_args({"region": "us-east-1", "name": "prod", "body": {"widgets": []}}), pytest.raises(SystemExit):
        mod.main()
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] and "No AWS call was made" in result["msg"] and made == []
