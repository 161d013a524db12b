"""Unit tests for ecs_production.platform.iam_roles: main() over a fake IAM (four reads a role on a re-run, a
new role created with everything in one go, writes only where something differs, purging of policies the
role should not have), check mode, diff, and the refusals made before any call."""

from __future__ import annotations

import copy
import json

import pytest
from ansible_collections.ecs_production.platform.plugins.modules import iam_roles as mod
from botocore.exceptions import ClientError
from module_runner import run_module

TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
READ = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": "arn:aws:ssm:*:*:parameter/x/*"}],
}
MANAGED = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"


class Pages:
    def __init__(self, result):
        self.result = result

    def build_full_result(self):
        return self.result


class FakeIam:
    def __init__(self):
        self.roles: dict[str, dict] = {}
        self.calls: list[tuple[str, dict]] = []

    def _role(self, name):
        if name not in self.roles:
            raise ClientError({"Error": {"Code": "NoSuchEntity", "Message": "no role"}}, "GetRole")
        return self.roles[name]

    def get_role(self, **kwargs):
        self.calls.append(("get_role", kwargs))
        role = self._role(kwargs["RoleName"])
        answer = {k: copy.deepcopy(v) for k, v in role.items() if k not in ("attached", "inline")}
        return {"Role": answer}

    def get_paginator(self, operation):
        fake = self

        class Paginator:
            def paginate(self, **kwargs):
                fake.calls.append((operation, kwargs))
                role = fake._role(kwargs["RoleName"])
                if operation == "list_attached_role_policies":
                    return Pages({"AttachedPolicies": [{"PolicyArn": a, "PolicyName": a} for a in role["attached"]]})
                return Pages({"PolicyNames": sorted(role["inline"])})

        return Paginator()

    def get_role_policy(self, aws_retry, **kwargs):  # noqa: ARG002 - the wrappers always ask for retries
        self.calls.append(("get_role_policy", kwargs))
        return {"PolicyDocument": copy.deepcopy(self._role(kwargs["RoleName"])["inline"][kwargs["PolicyName"]])}

    def create_role(self, aws_retry, **kwargs):  # noqa: ARG002
        self.calls.append(("create_role", kwargs))
        name = kwargs["RoleName"]
        self.roles[name] = {
            "RoleName": name,
            "Path": kwargs["Path"],
            "Arn": f"arn:aws:iam::123456789012:role{kwargs['Path']}{name}",
            "Description": kwargs.get("Description", ""),
            "AssumeRolePolicyDocument": json.loads(kwargs["AssumeRolePolicyDocument"]),
            "Tags": kwargs.get("Tags", []),
            "attached": [],
            "inline": {},
        }
        if kwargs.get("PermissionsBoundary"):
            self.roles[name]["PermissionsBoundary"] = {"PermissionsBoundaryArn": kwargs["PermissionsBoundary"]}
        return {"Role": dict(self.roles[name])}

    def __getattr__(self, operation):
        def write(aws_retry=False, **kwargs):  # noqa: ARG001
            self.calls.append((operation, kwargs))
            role = self._role(kwargs["RoleName"])
            if operation == "attach_role_policy":
                role["attached"].append(kwargs["PolicyArn"])
            elif operation == "detach_role_policy":
                role["attached"].remove(kwargs["PolicyArn"])
            elif operation == "put_role_policy":
                role["inline"][kwargs["PolicyName"]] = json.loads(kwargs["PolicyDocument"])
            elif operation == "delete_role_policy":
                del role["inline"][kwargs["PolicyName"]]
            elif operation == "update_assume_role_policy":
                role["AssumeRolePolicyDocument"] = json.loads(kwargs["PolicyDocument"])
            elif operation == "update_role":
                role["Description"] = kwargs["Description"]
            elif operation == "tag_role":
                tags = {t["Key"]: t["Value"] for t in role["Tags"]} | {t["Key"]: t["Value"] for t in kwargs["Tags"]}
                role["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
            elif operation == "untag_role":
                role["Tags"] = [t for t in role["Tags"] if t["Key"] not in kwargs["TagKeys"]]
            elif operation == "put_role_permissions_boundary":
                role["PermissionsBoundary"] = {"PermissionsBoundaryArn": kwargs["PermissionsBoundary"]}
            elif operation == "delete_role_permissions_boundary":
                role.pop("PermissionsBoundary", None)
            else:
                raise AttributeError(operation)

        if operation.startswith("_"):
            raise AttributeError(operation)
        return write


def run(monkeypatch, capsys, client, **args):
    return run_module(mod, monkeypatch, capsys, client, **args)


def names(client) -> list[str]:
    return [name for name, _kwargs in client.calls]


def two(changes: dict | None = None) -> dict:
    roles = [
        {
            "name": "p-execution",
            "description": "execution",
            "trust_policy": json.dumps(TRUST),
            "managed_policies": [MANAGED],
            "inline_policies": {"ssm-parameters": READ},
        },
        {
            "name": "p-task",
            "description": "task",
            "trust_policy": json.dumps(TRUST),
            "inline_policies": {"ssm-parameters": READ},
        },
    ]
    args = {"path": "/p/", "tags": {"Project": "p"}, "roles": roles}
    args.update(changes or {})
    return args


def test_creates_each_role_with_everything_then_reads_four_times_a_role(monkeypatch, capsys):
    client = FakeIam()
    result = run(monkeypatch, capsys, client, **two())
    assert result["changed"] and [r["changed"] for r in result["roles"]] == [True, True]
    assert result["roles"][0]["arn"] == "arn:aws:iam::123456789012:role/p/p-execution"
    assert result["roles"][0]["managed_policies"] == [MANAGED] and result["roles"][1]["inline_policies"] == [
        "ssm-parameters"
    ]
    assert names(client) == [
        "get_role", "create_role", "attach_role_policy", "put_role_policy",
        "get_role", "create_role", "put_role_policy",
    ]  # fmt: skip
    created = client.calls[1][1]
    assert (
        created["Tags"] == [{"Key": "Project", "Value": "p"}]
        and json.loads(created["AssumeRolePolicyDocument"]) == TRUST
    )

    client.calls.clear()
    result = run(monkeypatch, capsys, client, **two())
    assert not result["changed"]
    per_role = ["get_role", "list_attached_role_policies", "list_role_policies", "get_role_policy"]
    assert names(client) == per_role * 2
    assert result["roles"][0]["managed_policies"] == [MANAGED]


def test_only_what_differs_is_written_and_the_diff_shows_it(monkeypatch, capsys):
    client = FakeIam()
    run(monkeypatch, capsys, client, **two())
    client.calls.clear()
    wider = dict(READ, Statement=READ["Statement"] + [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}])
    args = two({"tags": {"Project": "p", "Owner": "team"}, "boundary": "arn:aws:iam::123456789012:policy/boundary"})
    args["roles"][1]["inline_policies"] = {"ssm-parameters": wider}
    args["roles"][1]["description"] = "the task"
    result = run(monkeypatch, capsys, client, _ansible_diff=True, **args)
    writes = [(n, kw["RoleName"]) for n, kw in client.calls if not n.startswith(("get_", "list_"))]
    assert writes == [
        ("put_role_permissions_boundary", "p-execution"),
        ("tag_role", "p-execution"),
        ("update_role", "p-task"),
        ("put_role_permissions_boundary", "p-task"),
        ("tag_role", "p-task"),
        ("put_role_policy", "p-task"),
    ]
    assert result["diff"]["before"]["p-task"]["description"] == "task"
    assert result["diff"]["after"]["p-task"]["tags"] == {"Project": "p", "Owner": "team"}
    assert client.roles["p-task"]["inline"]["ssm-parameters"] == wider


def test_a_changed_trust_policy_is_updated(monkeypatch, capsys):
    client = FakeIam()
    run(monkeypatch, capsys, client, **two())
    client.calls.clear()
    trust = copy.deepcopy(TRUST)
    trust["Statement"][0]["Condition"] = {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    args = two()
    args["roles"] = args["roles"][:1]
    args["roles"][0]["trust_policy"] = json.dumps(trust)
    result = run(monkeypatch, capsys, client, **args)
    assert result["changed"] and "update_assume_role_policy" in names(client)
    assert client.roles["p-execution"]["AssumeRolePolicyDocument"] == trust


def test_policies_the_role_should_not_have_are_purged_and_the_attachments_read_again(monkeypatch, capsys):
    client = FakeIam()
    run(monkeypatch, capsys, client, **two())
    client.roles["p-task"]["inline"]["by-hand"] = READ
    client.roles["p-task"]["attached"].append("arn:aws:iam::aws:policy/AdministratorAccess")
    client.calls.clear()
    args = two()
    args["roles"] = args["roles"][1:]
    result = run(monkeypatch, capsys, client, **args)
    assert ("delete_role_policy", {"RoleName": "p-task", "PolicyName": "by-hand"}) in client.calls
    assert client.roles["p-task"]["attached"] == [] and client.roles["p-task"]["inline"] == {"ssm-parameters": READ}
    # The attachments changed: what AWS lists afterwards is read again and returned (the iam role audits it).
    assert names(client).count("list_attached_role_policies") == 2 and result["roles"][0]["managed_policies"] == []


def test_check_mode_writes_nothing_and_a_new_role_has_no_arn_yet(monkeypatch, capsys):
    client = FakeIam()
    result = run(monkeypatch, capsys, client, _ansible_check_mode=True, **two())
    assert result["changed"] and [r["arn"] for r in result["roles"]] == ["", ""]
    assert names(client) == ["get_role", "get_role"] and client.roles == {}
    run(monkeypatch, capsys, client, **two())
    client.calls.clear()
    args = two()
    args["roles"][0]["managed_policies"] = []
    result = run(monkeypatch, capsys, client, _ansible_check_mode=True, **args)
    assert result["changed"] and result["roles"][0]["managed_policies"] == []
    assert all(n.startswith(("get_", "list_")) for n in names(client)) and client.roles["p-execution"]["attached"] == [
        MANAGED
    ]


def test_a_role_under_another_path_is_refused_unchanged(monkeypatch, capsys):
    client = FakeIam()
    run(monkeypatch, capsys, client, **two())
    client.calls.clear()
    result = run(monkeypatch, capsys, client, **two({"path": "/q/"}))
    assert result["failed"] and "IAM cannot move a role" in result["msg"]
    assert names(client) == ["get_role"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"path": "p/"}, "path must begin and end with /"),
        ({"roles": [{"name": "x", "trust_policy": "{not json"}]}, "the trust_policy of x is not a JSON document"),
        (
            {"roles": [{"name": "x", "trust_policy": '{"Version": "2012-10-17"}'}]},
            "the trust_policy of x has no Statement",
        ),
        (
            {"roles": [{"name": "x", "trust_policy": json.dumps(TRUST), "managed_policies": ["AdministratorAccess"]}]},
            "must be policy ARNs",
        ),
        ({"roles": [{"name": "x", "trust_policy": json.dumps(TRUST)}] * 2}, "distinct role names"),
    ],
)
def test_refusals_make_no_call(monkeypatch, capsys, change, message):
    client = FakeIam()
    result = run(monkeypatch, capsys, client, **two(change))
    assert result["failed"] and message in result["msg"] and "No AWS call was made" in result["msg"]
    assert client.calls == []
