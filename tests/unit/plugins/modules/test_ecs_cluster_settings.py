"""Unit tests for ecs_production.platform.ecs_cluster_settings: main() over a fake ECS (one read; a write only
where the setting differs), check mode, diff, a missing cluster."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.ecs_production.platform.plugins.modules import ecs_cluster_settings as mod
from module_runner import run_module

ARN = "arn:aws:ecs:us-east-1:123456789012:cluster/prod"


class FakeEcs:
    def __init__(self, settings: list | None = None, status: str = "ACTIVE"):
        self.cluster = {"clusterArn": ARN, "clusterName": "prod", "status": status}
        if settings is not None:
            self.cluster["settings"] = settings
        self.calls: list[tuple[str, dict]] = []

    def describe_clusters(self, aws_retry, **kwargs):  # noqa: ARG002 - the wrappers always ask for retries
        self.calls.append(("describe_clusters", kwargs))
        wanted = kwargs["clusters"][0]
        found = [dict(self.cluster)] if wanted in ("prod", ARN) else []
        if "SETTINGS" not in kwargs.get("include", []):
            for cluster in found:
                cluster.pop("settings", None)
        return {"clusters": found, "failures": []}

    def update_cluster(self, aws_retry, **kwargs):  # noqa: ARG002
        self.calls.append(("update_cluster", kwargs))
        self.cluster["settings"] = kwargs["settings"]
        return {"cluster": dict(self.cluster)}


def run(monkeypatch, capsys, client, **args):
    return run_module(mod, monkeypatch, capsys, client, **args)


def names(client) -> list[str]:
    return [name for name, _kwargs in client.calls]


def test_enables_then_changes_nothing_then_disables(monkeypatch, capsys):
    client = FakeEcs(settings=[{"name": "containerInsights", "value": "disabled"}])
    result = run(monkeypatch, capsys, client, cluster="prod", container_insights="enabled", _ansible_diff=True)
    assert result["changed"] and result["settings"] == {"containerInsights": "enabled"}
    assert result["diff"] == {"before": {"containerInsights": "disabled"}, "after": {"containerInsights": "enabled"}}
    written = {"cluster": ARN, "settings": [{"name": "containerInsights", "value": "enabled"}]}
    assert client.calls[-1] == ("update_cluster", written)
    assert result["cluster_arn"] == ARN

    client.calls.clear()
    result = run(monkeypatch, capsys, client, cluster="prod", container_insights="enabled")
    assert not result["changed"] and names(client) == ["describe_clusters"] and "diff" not in result

    result = run(monkeypatch, capsys, client, cluster=ARN, container_insights="disabled")
    assert result["changed"] and client.cluster["settings"] == [{"name": "containerInsights", "value": "disabled"}]


def test_a_cluster_without_the_setting_has_it_disabled(monkeypatch, capsys):
    client = FakeEcs(settings=None)
    result = run(monkeypatch, capsys, client, cluster="prod", container_insights="disabled")
    assert not result["changed"] and names(client) == ["describe_clusters"]
    assert client.calls[0][1]["include"] == ["SETTINGS"]


def test_check_mode_writes_nothing(monkeypatch, capsys):
    client = FakeEcs(settings=[{"name": "containerInsights", "value": "disabled"}])
    result = run(monkeypatch, capsys, client, cluster="prod", container_insights="enhanced", _ansible_check_mode=True)
    assert result["changed"] and result["settings"] == {"containerInsights": "enhanced"}
    assert names(client) == ["describe_clusters"]


@pytest.mark.parametrize("status", ["INACTIVE", None])
def test_a_missing_or_inactive_cluster_fails_changing_nothing(monkeypatch, capsys, status):
    client = FakeEcs(status=status or "ACTIVE")
    cluster = "prod" if status else "other"
    result = run(monkeypatch, capsys, client, cluster=cluster, container_insights="enabled")
    assert result["failed"] and "does not exist or is not ACTIVE" in result["msg"]
    assert names(client) == ["describe_clusters"]


def test_a_bad_value_is_refused_before_any_client(monkeypatch, capsys):
    made = []
    monkeypatch.setattr(
        mod.AnsibleAWSModule,
        "client",
        lambda _self, service, retry_decorator=None: made.append(service),  # noqa: ARG005
    )
    args = {"region": "us-east-1", "cluster": "prod", "container_insights": "on"}
    with patch_module_args(args), pytest.raises(SystemExit):
        mod.main()
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] and "container_insights" in result["msg"] and made == []


class FakeTaggedEcs(FakeEcs):
    def __init__(self, tags: list | None = None):
        super().__init__(settings=[{"name": "containerInsights", "value": "enabled"}])
        self.cluster["tags"] = tags or []

    def describe_clusters(self, aws_retry, **kwargs):
        answer = super().describe_clusters(aws_retry, **kwargs)
        if "TAGS" not in kwargs.get("include", []):
            for cluster in answer["clusters"]:
                cluster.pop("tags", None)
        return answer

    def tag_resource(self, aws_retry, **kwargs):  # noqa: ARG002
        self.calls.append(("tag_resource", kwargs))
        tags = {t["key"]: t["value"] for t in self.cluster["tags"]} | {t["key"]: t["value"] for t in kwargs["tags"]}
        self.cluster["tags"] = [{"key": k, "value": v} for k, v in tags.items()]

    def untag_resource(self, aws_retry, **kwargs):  # noqa: ARG002
        self.calls.append(("untag_resource", kwargs))
        self.cluster["tags"] = [t for t in self.cluster["tags"] if t["key"] not in kwargs["tagKeys"]]


def test_tags_are_read_with_the_settings_and_written_only_when_they_differ(monkeypatch, capsys):
    client = FakeTaggedEcs(tags=[{"key": "Project", "value": "shop"}, {"key": "Team", "value": "a"}])
    wanted = {"Project": "shop", "Environment": "prod"}
    result = run(
        monkeypatch, capsys, client, cluster="prod", container_insights="enabled", tags=wanted, _ansible_diff=True
    )
    assert result["changed"] and result["tags"] == {"Project": "shop", "Team": "a", "Environment": "prod"}
    assert client.calls[0] == ("describe_clusters", {"clusters": ["prod"], "include": ["SETTINGS", "TAGS"]})
    assert client.calls[1] == ("tag_resource", {"resourceArn": ARN, "tags": [{"key": "Environment", "value": "prod"}]})
    assert result["diff"]["before"]["tags"] == {"Project": "shop", "Team": "a"}

    client.calls.clear()
    result = run(monkeypatch, capsys, client, cluster="prod", container_insights="enabled", tags=wanted)
    assert not result["changed"] and names(client) == ["describe_clusters"]

    result = run(
        monkeypatch, capsys, client, cluster="prod", container_insights="enabled", tags=wanted, purge_tags=True
    )
    assert result["changed"] and client.calls[-1] == ("untag_resource", {"resourceArn": ARN, "tagKeys": ["Team"]})
    assert result["tags"] == wanted


def test_tags_in_check_mode_are_planned_not_written(monkeypatch, capsys):
    client = FakeTaggedEcs()
    result = run(
        monkeypatch,
        capsys,
        client,
        cluster="prod",
        container_insights="enabled",
        tags={"A": "1"},
        _ansible_check_mode=True,
    )
    assert result["changed"] and result["tags"] == {"A": "1"} and names(client) == ["describe_clusters"]
