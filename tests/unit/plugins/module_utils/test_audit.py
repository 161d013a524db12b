"""Unit tests for module_utils/audit.py, the rules of the platform_audit module: each passes on an
environment as provision leaves it and fails, naming the resource, on its violation."""

from __future__ import annotations

import copy
import json

import pytest
from ansible_collections.ecs_production.platform.plugins.module_utils import audit

PREFIX = "app-prod"
ACCOUNT = "123456789012"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
PARAMETERS = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/app/prod/*"
KMS_THROUGH_SSM = {
    "Sid": "DecryptTheEnvironmentsParametersThroughSsm",
    "Effect": "Allow",
    "Action": "kms:Decrypt",
    "Resource": KEY,
    "Condition": {"StringEquals": {"kms:ViaService": "ssm.us-east-1.amazonaws.com"}},
}


def group(group_id: str, name: str, ingress: list) -> dict:
    return {"GroupId": group_id, "GroupName": f"{PREFIX}-{name}", "IpPermissions": ingress}


def tcp(port: int, *, cidr: str = "", group_id: str = "", ipv6: str = "") -> dict:
    return {
        "IpProtocol": "tcp",
        "FromPort": port,
        "ToPort": port,
        "IpRanges": [{"CidrIp": cidr}] if cidr else [],
        "Ipv6Ranges": [{"CidrIpv6": ipv6}] if ipv6 else [],
        "UserIdGroupPairs": [{"GroupId": group_id}] if group_id else [],
        "PrefixListIds": [],
    }


def clean() -> dict:
    """An environment as provision leaves it (roles/*), in the shape platform_audit reads it."""
    return {
        "parameter_path": "/app/prod",
        "password_parameter": "/app/prod/db/password",
        "public_ports": [80, 443],
        "execution_managed_policies": ["AmazonECSTaskExecutionRolePolicy"],
        "expect_alb_deletion_protection": False,
        "expect_rds_deletion_protection": False,
        "kms_key_arn": KEY,
        "alb_security_group_ids": ["sg-alb"],
        "tasks_security_group_ids": ["sg-tasks"],
        "security_groups": [
            group("sg-alb", "alb", [tcp(80, cidr="0.0.0.0/0"), tcp(443, cidr="0.0.0.0/0")]),
            group("sg-tasks", "tasks", [tcp(8000, group_id="sg-alb")]),
            group("sg-db", "db", [tcp(5432, group_id="sg-tasks")]),
            {
                "GroupId": "sg-default",
                "GroupName": "default",
                "IpPermissions": [
                    {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": "sg-default"}], "IpRanges": []}
                ],
            },
        ],
        "subnets": [
            {"SubnetId": "subnet-pub1", "Tags": [{"Key": "Tier", "Value": "public"}, {"Key": "Name", "Value": "p"}]},
            {"SubnetId": "subnet-priv1", "Tags": [{"Key": "Tier", "Value": "private"}, {"Key": "Name", "Value": "q"}]},
            {"SubnetId": "subnet-priv2", "Tags": [{"Key": "Name", "Value": f"{PREFIX}-private-us-east-1b"}]},
        ],
        "route_tables": [
            {"RouteTableId": "rtb-main", "Associations": [{"Main": True}], "Routes": [{"GatewayId": "local"}]},
            {
                "RouteTableId": "rtb-public",
                "Associations": [{"SubnetId": "subnet-pub1"}],
                "Routes": [
                    {"GatewayId": "local", "DestinationCidrBlock": "10.0.0.0/16"},
                    {"GatewayId": "igw-1", "DestinationCidrBlock": "0.0.0.0/0"},
                ],
            },
            {
                "RouteTableId": "rtb-private",
                "Associations": [{"SubnetId": "subnet-priv1"}, {"SubnetId": "subnet-priv2"}],
                "Routes": [{"GatewayId": "local", "DestinationCidrBlock": "10.0.0.0/16"}],
            },
        ],
        "db_instances": [
            {
                "DBInstanceIdentifier": f"{PREFIX}-db",
                "Endpoint": {"Address": "db.local", "Port": 5432},
                "VpcSecurityGroups": [{"VpcSecurityGroupId": "sg-db"}],
                "PubliclyAccessible": False,
                "StorageEncrypted": True,
                "DeletionProtection": False,
            }
        ],
        "roles": [
            {
                "name": f"{PREFIX}-execution",
                "kind": "execution",
                "managed": ["arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"],
                "inline": {
                    "ssm-parameters": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {"Effect": "Allow", "Action": "ssm:GetParameters", "Resource": PARAMETERS},
                            KMS_THROUGH_SSM,
                        ],
                    }
                },
            },
            {
                "name": f"{PREFIX}-task",
                "kind": "task",
                "managed": [],
                "inline": {
                    # as IAM returns it when boto3 does not decode it: URL-encoded JSON
                    "ssm-parameters": json.dumps(
                        {
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Effect": "Allow",
                                    "Action": ["ssm:GetParameter", "ssm:GetParameters"],
                                    "Resource": PARAMETERS,
                                },
                                KMS_THROUGH_SSM,
                            ],
                        }
                    ).replace(" ", "%20")
                },
            },
        ],
        "services": [
            {"serviceName": f"{PREFIX}-blue", "status": "ACTIVE", "enableExecuteCommand": False},
            {"serviceName": f"{PREFIX}-green", "status": "ACTIVE"},
        ],
        "task_definitions": [
            {
                "family": f"{PREFIX}-blue",
                "revision": 1,
                "containerDefinitions": [
                    {
                        "name": "app",
                        "environment": [
                            {"name": "DB_HOST", "value": "db.local"},
                            {"name": "DB_USER", "value": "app"},
                            {"name": "DB_PASSWORD_SSM_PARAM", "value": "/app/prod/db/password"},
                            {"name": "GUNICORN_WORKERS", "value": "2"},
                            {"name": "MONKEY_MODE", "value": "on"},
                        ],
                    }
                ],
            }
        ],
        "parameters": [
            {"Name": "/app/prod/db/password", "Type": "SecureString"},
            {"Name": "/app/prod/lock", "Type": "String"},
        ],
        "log_groups": [{"logGroupName": f"/ecs/{PREFIX}", "retentionInDays": 7}],
        "repositories": [
            {
                "repositoryName": PREFIX,
                "imageTagMutability": "IMMUTABLE",
                "imageScanningConfiguration": {"scanOnPush": True},
            }
        ],
        "load_balancers": [
            {
                "name": f"{PREFIX}-alb",
                "attributes": {"deletion_protection.enabled": "false"},
                "listeners": [
                    {
                        "Protocol": "HTTP",
                        "Port": 80,
                        "DefaultActions": [
                            {"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443"}}
                        ],
                        "Rules": [{"IsDefault": True, "Actions": []}],
                    },
                    {"Protocol": "HTTPS", "Port": 443, "SslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06"},
                    {"Protocol": "HTTPS", "Port": 9443, "SslPolicy": "ELBSecurityPolicy-TLS13-1-3-2021-06"},
                ],
            }
        ],
    }


def by_rule(env: dict) -> dict:
    result = audit.evaluate(env)
    return {rule["rule"]: rule for rule in result["rules"]}, result["violations"]


def test_the_environment_as_provisioned_passes_every_rule():
    rules, violations = by_rule(clean())
    assert violations == []
    assert [rule.name for rule in audit.RULES] == list(rules)
    assert all(rule["passed"] for rule in rules.values())
    assert rules["open_ingress"]["checked"] == 4
    assert rules["private_subnet_route"]["checked"] == 2
    assert rules["role_privileges"]["checked"] == 2
    assert rules["ecs_exec"]["checked"] == 2


def set_in(env: dict, path: str, value) -> None:
    target = env
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if isinstance(target, list) else target[key]
    last = keys[-1]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value


def add_inline(role: int, statement: dict):
    def change(env):
        env["roles"][role]["inline"]["extra"] = {"Version": "2012-10-17", "Statement": [statement]}

    return change


def add_env(name: str, value: str):
    def change(env):
        env["task_definitions"][0]["containerDefinitions"][0]["environment"].append({"name": name, "value": value})

    return change


def add_ingress(index: int, permission: dict):
    def change(env):
        env["security_groups"][index]["IpPermissions"].append(permission)

    return change


def setter(path: str, value):
    return lambda env: set_in(env, path, value)


# The statement roles/iam gives the task role with iam_ecs_exec (the actions as the role writes them).
EXEC_CHANNELS = {
    "Sid": "EcsExecSessionChannels",
    "Effect": "Allow",
    "Action": [
        "ssmmessages:CreateControlChannel",
        "ssmmessages:CreateDataChannel",
        "ssmmessages:OpenControlChannel",
        "ssmmessages:OpenDataChannel",
    ],
    "Resource": "*",
}


VIOLATIONS = [
    ("open_ingress", add_ingress(1, tcp(22, cidr="0.0.0.0/0")), "tcp 22 from 0.0.0.0/0", "app-prod-tasks"),
    ("open_ingress", add_ingress(0, tcp(8080, ipv6="::/0")), "tcp 8080 from ::/0", "app-prod-alb"),
    (
        "open_ingress",
        add_ingress(0, {"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}),
        "tcp 0-65535",
        "sg-alb",
    ),
    (
        "open_ingress",
        add_ingress(3, {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}),
        "all traffic",
        "default",
    ),
    ("database_port", add_ingress(2, tcp(5432, cidr="10.0.0.0/16")), "from 10.0.0.0/16", "sg-db"),
    ("database_port", add_ingress(2, tcp(5432, group_id="sg-alb")), "from sg-alb", "app-prod-db"),
    (
        "database_port",
        add_ingress(2, {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": "sg-default"}]}),
        "all traffic",
        "sg-db",
    ),
    ("database_public", setter("db_instances.0.PubliclyAccessible", True), "publicly accessible", "app-prod-db"),
    ("database_encrypted", setter("db_instances.0.StorageEncrypted", False), "not encrypted", "app-prod-db"),
    (
        "private_subnet_route",
        lambda env: env["route_tables"][2]["Routes"].append(
            {"GatewayId": "igw-1", "DestinationCidrBlock": "0.0.0.0/0"}
        ),
        "sends 0.0.0.0/0 to the internet gateway igw-1",
        "subnet-priv1",
    ),
    (
        "private_subnet_route",
        # subnet-priv2 falls back on the main table once unassociated
        lambda env: (
            env["route_tables"][2]["Associations"].pop(),
            env["route_tables"][0]["Routes"].append({"GatewayId": "igw-1", "DestinationCidrBlock": "0.0.0.0/0"}),
        ),
        "rtb-main",
        "subnet-priv2",
    ),
    (
        "role_privileges",
        add_inline(1, {"Effect": "Allow", "Action": "*", "Resource": "*"}),
        "wildcard action *",
        "task",
    ),
    (
        "role_privileges",
        add_inline(0, {"Effect": "Allow", "Action": "ssm:*", "Resource": PARAMETERS}),
        "ssm:*",
        "execution",
    ),
    (
        "role_privileges",
        add_inline(1, {"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": "*"}),
        'Resource "*"',
        "task",
    ),
    (
        "role_privileges",
        add_inline(1, {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/k"}),
        "s3:GetObject, beyond",
        "task",
    ),
    (
        "role_privileges",
        add_inline(
            1, {"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": "arn:aws:ssm:*:*:parameter/other/*"}
        ),
        "outside /app/prod/",
        "task",
    ),
    (
        "role_privileges",
        add_inline(1, {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "arn:aws:kms:us-east-1:1:key/*"}),
        "not only the environment's key",
        "task",
    ),
    ("role_privileges", add_inline(1, {"Effect": "Allow", "NotAction": "iam:*", "Resource": KEY}), "NotAction", "task"),
    (
        "role_privileges",
        lambda env: env["roles"][1]["managed"].append("arn:aws:iam::aws:policy/AdministratorAccess"),
        "managed policy arn:aws:iam::aws:policy/AdministratorAccess",
        "app-prod-task",
    ),
    (
        "role_privileges",
        lambda env: env["roles"][0]["managed"].append("arn:aws:iam::aws:policy/AmazonSSMFullAccess"),
        "AmazonSSMFullAccess",
        "app-prod-execution",
    ),
    (
        "role_privileges",
        add_inline(1, EXEC_CHANNELS),
        "ssmmessages:CreateControlChannel, ssmmessages:CreateDataChannel",
        "app-prod-task",
    ),
    ("ecs_exec", setter("services.1.enableExecuteCommand", True), "allows ECS Exec", "service app-prod-green"),
    ("plain_secrets", add_env("DB_PASSWORD", "hunter2"), "DB_PASSWORD", "app-prod-blue:1"),
    ("plain_secrets", add_env("STRIPE_API_KEY", "sk_live"), "STRIPE_API_KEY", "app-prod-blue:1"),
    ("plain_secrets", add_env("githubToken", "x"), "githubToken", "app-prod-blue:1"),
    ("secure_parameters", setter("parameters.0.Type", "String"), "String parameter", "/app/prod/db/password"),
    (
        "secure_parameters",
        lambda env: env["parameters"].append({"Name": "/app/prod/app/api-token", "Type": "String"}),
        "not a SecureString",
        "/app/prod/app/api-token",
    ),
    ("log_retention", lambda env: env["log_groups"][0].pop("retentionInDays"), "no retention", "/ecs/app-prod"),
    ("ecr_immutable_tags", setter("repositories.0.imageTagMutability", "MUTABLE"), "MUTABLE", "app-prod"),
    (
        "ecr_scan_on_push",
        setter("repositories.0.imageScanningConfiguration", {"scanOnPush": False}),
        "on push",
        "app-prod",
    ),
    (
        "listener_tls",
        setter("load_balancers.0.listeners.1.SslPolicy", "ELBSecurityPolicy-2016-08"),
        "ELBSecurityPolicy-2016-08",
        "HTTPS 443",
    ),
    (
        "listener_tls",
        setter("load_balancers.0.listeners.2.SslPolicy", "ELBSecurityPolicy-TLS13-1-1-2021-06"),
        "not a TLS 1.2+ one",
        "HTTPS 9443",
    ),
    (
        "listener_tls",
        setter("load_balancers.0.listeners.0.DefaultActions", [{"Type": "forward", "TargetGroupArn": "tg"}]),
        "(forward) instead of redirecting",
        "HTTP 80",
    ),
    (
        "listener_tls",
        lambda env: env["load_balancers"][0]["listeners"][0]["Rules"].append(
            {"IsDefault": False, "Priority": "10", "Actions": [{"Type": "forward"}]}
        ),
        "rule 10",
        "HTTP 80",
    ),
    ("deletion_protection", setter("expect_alb_deletion_protection", True), "alb_deletion_protection", "app-prod-alb"),
    ("deletion_protection", setter("expect_rds_deletion_protection", True), "rds_deletion_protection", "app-prod-db"),
]


@pytest.mark.parametrize(
    ("rule", "change", "detail", "resource"),
    VIOLATIONS,
    ids=[f"{case[0]}-{index}" for index, case in enumerate(VIOLATIONS)],
)
def test_each_rule_fails_on_its_violation_naming_it(rule, change, detail, resource):
    env = clean()
    change(env)
    rules, violations = by_rule(env)
    assert not rules[rule]["passed"]
    assert rules[rule]["violations"] == len([item for item in violations if item["rule"] == rule]) >= 1
    # no other rule is affected
    assert [name for name, result in rules.items() if not result["passed"]] == [rule]
    found = [item for item in violations if item["rule"] == rule]
    assert any(detail in item["detail"] and resource in item["resource"] for item in found), found


def with_app_tier(env: dict, routes: list) -> dict:
    """The production layout: an app subnet (tasks) with its own route table, beside the public and data ones."""
    env["subnets"].append(
        {"SubnetId": "subnet-app1", "Tags": [{"Key": "Tier", "Value": "app"}, {"Key": "Name", "Value": "a"}]}
    )
    env["route_tables"].append(
        {
            "RouteTableId": "rtb-app-a",
            "Associations": [{"SubnetId": "subnet-app1"}],
            "Routes": [{"GatewayId": "local", "DestinationCidrBlock": "10.0.0.0/16"}, *routes],
        }
    )
    return env


def test_an_app_subnet_may_leave_through_a_nat_gateway_or_endpoints():
    env = with_app_tier(
        clean(),
        [
            {"NatGatewayId": "nat-1", "DestinationCidrBlock": "0.0.0.0/0"},
            {"GatewayId": "vpce-s3", "DestinationPrefixListId": "pl-s3"},
        ],
    )
    rules, violations = by_rule(env)
    assert violations == []
    assert rules["private_subnet_route"]["checked"] == 3


def test_an_app_subnet_routed_to_the_internet_gateway_fails():
    env = with_app_tier(clean(), [{"GatewayId": "igw-1", "DestinationCidrBlock": "0.0.0.0/0"}])
    rules, violations = by_rule(env)
    assert [name for name, result in rules.items() if not result["passed"]] == ["private_subnet_route"]
    assert [(v["resource"], v["detail"]) for v in violations] == [
        ("subnet subnet-app1 (a)", "route table rtb-app-a sends 0.0.0.0/0 to the internet gateway igw-1")
    ]


def test_a_data_subnet_routed_through_a_nat_gateway_fails():
    env = clean()
    env["route_tables"][2]["Routes"].append({"NatGatewayId": "nat-1", "DestinationCidrBlock": "0.0.0.0/0"})
    rules, violations = by_rule(env)
    assert [name for name, result in rules.items() if not result["passed"]] == ["private_subnet_route"]
    assert sorted(v["resource"] for v in violations) == [
        "subnet subnet-priv1 (q)",
        f"subnet subnet-priv2 ({PREFIX}-private-us-east-1b)",
    ]
    assert all("to the NAT gateway nat-1 (a data subnet has no route out)" in v["detail"] for v in violations)


def test_deletion_protection_passes_when_asked_for_and_on():
    env = clean()
    env.update(expect_alb_deletion_protection=True, expect_rds_deletion_protection=True)
    env["load_balancers"][0]["attributes"]["deletion_protection.enabled"] = "true"
    env["db_instances"][0]["DeletionProtection"] = True
    rules, violations = by_rule(env)
    assert violations == []
    assert rules["deletion_protection"]["checked"] == 2


def test_the_alb_may_open_other_ports_when_the_environment_does():
    env = clean()
    env["public_ports"] = [443]
    rules, violations = by_rule(env)
    assert [item["detail"] for item in violations] == ["allows tcp 80 from 0.0.0.0/0"]


def test_a_deny_statement_and_the_kms_key_without_its_arn_known_are_fine():
    env = clean()
    env.pop("kms_key_arn")
    env["roles"][1]["inline"]["deny"] = {"Statement": {"Effect": "Deny", "Action": "*", "Resource": "*"}}
    assert audit.evaluate(env)["violations"] == []


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("DB_PASSWORD", True),
        ("PASSWORD", True),
        ("SECRET_KEY", True),
        ("api-token", True),
        ("DbPassword", True),
        ("DB_PASSWORD_SSM_PARAM", False),
        ("PASSWORD_FILE", False),
        ("KMS_KEY_ARN", False),
        ("MONKEY", False),
        ("DB_HOST", False),
        ("lock", False),
    ],
)
def test_looks_secret(name, secret):
    assert audit.looks_secret(name) is secret


def test_the_report_has_a_line_per_rule_then_per_violation():
    env = copy.deepcopy(clean())
    env["log_groups"][0].pop("retentionInDays")
    lines = audit.report(audit.evaluate(env))
    assert len(lines) == len(audit.RULES) + 1
    assert lines[0].startswith("PASS  open_ingress")
    assert any(line.startswith("FAIL  log_retention") for line in lines)
    assert lines[-1] == "VIOLATION log_retention: log group /ecs/app-prod: has no retention: it keeps events forever"


def with_ecs_exec(env: dict) -> dict:
    """ECS Exec on, as provision leaves it with ecs_enable_execute_command: true."""
    env["expect_ecs_exec"] = True
    for service in env["services"]:
        service["enableExecuteCommand"] = True
    add_inline(1, EXEC_CHANNELS)(env)
    return env


def test_with_ecs_exec_asked_for_the_services_and_the_task_roles_channels_pass():
    rules, violations = by_rule(with_ecs_exec(clean()))
    assert violations == []
    assert rules["ecs_exec"]["checked"] == 2


@pytest.mark.parametrize(
    ("change", "detail", "resource"),
    [
        # only the task role runs the Session Manager agent's channels
        (add_inline(0, EXEC_CHANNELS), "ssmmessages:CreateControlChannel", "app-prod-execution"),
        # the channels and nothing else: a session may not start sessions elsewhere
        (
            add_inline(1, {**EXEC_CHANNELS, "Action": [*EXEC_CHANNELS["Action"], "ssm:StartSession"]}),
            "ssm:StartSession, beyond",
            "app-prod-task",
        ),
        (add_inline(1, {**EXEC_CHANNELS, "Action": "ssmmessages:*"}), "wildcard action ssmmessages:*", "app-prod-task"),
        (
            add_inline(1, {**EXEC_CHANNELS, "Action": "ssmmessages:OpenDataChannel", "NotResource": "x"}),
            "NotResource",
            "app-prod-task",
        ),
    ],
    ids=["execution-role", "one-action-more", "wildcard", "not-resource"],
)
def test_with_ecs_exec_the_role_rule_still_refuses_anything_beyond_the_task_roles_channels(change, detail, resource):
    env = with_ecs_exec(clean())
    change(env)
    rules, violations = by_rule(env)
    assert [name for name, result in rules.items() if not result["passed"]] == ["role_privileges"]
    assert any(detail in item["detail"] and resource in item["resource"] for item in violations), violations
