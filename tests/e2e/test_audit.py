"""The security audit end to end against the local AWS API: a fresh provision passes every rule; each
violation, injected through the API, makes ``playbooks/audit.yml`` fail naming it, and is undone after.

Provisioned once per module (a reset of the local account, then the provision playbook). Each test undoes
its injection in a ``finally``, so the tests are independent and each passes alone (``pytest -k``).
"""

from __future__ import annotations

import re
from typing import Callable

import pytest

from localcloud.harness import PREFIX, run_playbook

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

PATH = "/ecs-prod/local"
RULES = [
    "open_ingress",
    "database_port",
    "database_public",
    "database_encrypted",
    "private_subnet_route",
    "role_privileges",
    "plain_secrets",
    "secure_parameters",
    "log_retention",
    "ecr_immutable_tags",
    "ecr_scan_on_push",
    "listener_tls",
    "deletion_protection",
]


@pytest.fixture(scope="module")
def provisioned(aws_api):
    aws_api.reset()
    run = run_playbook(aws_api, "provision")
    assert run.returncode == 0, f"provisioning for the test:\n{run.tail()}"
    return aws_api


def group_id(api, name: str) -> str:
    found = api.client("ec2").describe_security_groups(Filters=[{"Name": "group-name", "Values": [name]}])
    return found["SecurityGroups"][0]["GroupId"]


def listener(api, port: int) -> dict:
    elbv2 = api.client("elbv2")
    arn = elbv2.describe_load_balancers(Names=[f"{PREFIX}-alb"])["LoadBalancers"][0]["LoadBalancerArn"]
    return next(item for item in elbv2.describe_listeners(LoadBalancerArn=arn)["Listeners"] if item["Port"] == port)


# ---- the injections: each changes the account and returns what undoes it ----------------------------------


def ingress(api, group: str, port: int, cidr: str) -> Callable[[], None]:
    ec2 = api.client("ec2")
    permission = {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": cidr}]}
    sg = group_id(api, group)
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[permission])
    return lambda: ec2.revoke_security_group_ingress(GroupId=sg, IpPermissions=[permission])


def ssh_from_anywhere(api):
    return ingress(api, f"{PREFIX}-tasks", 22, "0.0.0.0/0")


def database_from_the_vpc(api):
    return ingress(api, f"{PREFIX}-db", 5432, "10.0.0.0/16")


def public_database(api):
    rds = api.client("rds")
    rds.modify_db_instance(DBInstanceIdentifier=f"{PREFIX}-db", PubliclyAccessible=True, ApplyImmediately=True)
    return lambda: rds.modify_db_instance(
        DBInstanceIdentifier=f"{PREFIX}-db", PubliclyAccessible=False, ApplyImmediately=True
    )


def unencrypted_database(api):
    rds = api.client("rds")
    name = f"{PREFIX}-db-plain"
    rds.create_db_instance(
        DBInstanceIdentifier=name,
        DBInstanceClass="db.t4g.micro",
        Engine="postgres",
        AllocatedStorage=20,
        MasterUsername="app",
        MasterUserPassword="not-a-secret-1234",
        StorageEncrypted=False,
        PubliclyAccessible=False,
        VpcSecurityGroupIds=[group_id(api, f"{PREFIX}-db")],
        DBSubnetGroupName=f"{PREFIX}-db",
        Tags=[
            {"Key": "Project", "Value": "ecs-prod"},
            {"Key": "Environment", "Value": "local"},
            {"Key": "ManagedBy", "Value": "ecs_production.platform"},
        ],
    )
    return lambda: rds.delete_db_instance(DBInstanceIdentifier=name, SkipFinalSnapshot=True)


def private_route_to_the_internet(api):
    ec2 = api.client("ec2")
    table = ec2.describe_route_tables(Filters=[{"Name": "tag:Name", "Values": [f"{PREFIX}-private"]}])
    table_id = table["RouteTables"][0]["RouteTableId"]
    igw = ec2.describe_internet_gateways(Filters=[{"Name": "tag:Name", "Values": [f"{PREFIX}-igw"]}])
    ec2.create_route(
        RouteTableId=table_id,
        DestinationCidrBlock="0.0.0.0/0",
        GatewayId=igw["InternetGateways"][0]["InternetGatewayId"],
    )
    return lambda: ec2.delete_route(RouteTableId=table_id, DestinationCidrBlock="0.0.0.0/0")


def task_role_admin(api):
    iam = api.client("iam")
    document = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'
    iam.put_role_policy(RoleName=f"{PREFIX}-task", PolicyName="everything", PolicyDocument=document)
    return lambda: iam.delete_role_policy(RoleName=f"{PREFIX}-task", PolicyName="everything")


def execution_role_ssm_star(api):
    iam = api.client("iam")
    document = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ssm:*", "Resource": "*"}]}'
    iam.put_role_policy(RoleName=f"{PREFIX}-execution", PolicyName="ssm-all", PolicyDocument=document)
    return lambda: iam.delete_role_policy(RoleName=f"{PREFIX}-execution", PolicyName="ssm-all")


def password_in_the_environment(api):
    ecs = api.client("ecs")
    current = ecs.describe_task_definition(taskDefinition=f"{PREFIX}-green")["taskDefinition"]
    container = dict(current["containerDefinitions"][0])
    container["environment"] = [*container.get("environment", []), {"name": "DB_PASSWORD", "value": "hunter2"}]
    keys = ("taskRoleArn", "executionRoleArn", "networkMode", "requiresCompatibilities", "cpu", "memory")
    registered = ecs.register_task_definition(
        family=f"{PREFIX}-green",
        containerDefinitions=[container],
        **{key: current[key] for key in keys if key in current},
    )
    arn = registered["taskDefinition"]["taskDefinitionArn"]
    return lambda: ecs.deregister_task_definition(taskDefinition=arn)


def plain_string_secret(api):
    ssm = api.client("ssm")
    ssm.put_parameter(Name=f"{PATH}/app/api-token", Value="abc123", Type="String")
    return lambda: ssm.delete_parameter(Name=f"{PATH}/app/api-token")


def no_retention(api):
    logs = api.client("logs")
    name = f"/ecs/{PREFIX}"
    days = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]["retentionInDays"]
    logs.delete_retention_policy(logGroupName=name)
    return lambda: logs.put_retention_policy(logGroupName=name, retentionInDays=days)


def mutable_tags(api):
    ecr = api.client("ecr")
    ecr.put_image_tag_mutability(repositoryName=PREFIX, imageTagMutability="MUTABLE")
    return lambda: ecr.put_image_tag_mutability(repositoryName=PREFIX, imageTagMutability="IMMUTABLE")


def no_scan_on_push(api):
    ecr = api.client("ecr")
    ecr.put_image_scanning_configuration(repositoryName=PREFIX, imageScanningConfiguration={"scanOnPush": False})
    return lambda: ecr.put_image_scanning_configuration(
        repositoryName=PREFIX, imageScanningConfiguration={"scanOnPush": True}
    )


def old_tls_policy(api):
    elbv2 = api.client("elbv2")
    https = listener(api, 443)
    elbv2.modify_listener(ListenerArn=https["ListenerArn"], SslPolicy="ELBSecurityPolicy-2016-08")
    return lambda: elbv2.modify_listener(ListenerArn=https["ListenerArn"], SslPolicy=https["SslPolicy"])


def http_forwards(api):
    elbv2 = api.client("elbv2")
    http = listener(api, 80)
    blue = elbv2.describe_target_groups(Names=[f"{PREFIX}-blue"])["TargetGroups"][0]["TargetGroupArn"]
    elbv2.modify_listener(ListenerArn=http["ListenerArn"], DefaultActions=[{"Type": "forward", "TargetGroupArn": blue}])
    return lambda: elbv2.modify_listener(ListenerArn=http["ListenerArn"], DefaultActions=http["DefaultActions"])


def nothing(api):
    return lambda: None


# (rule, injection, extra arguments of the audit, what the failure must name)
CASES = [
    ("open_ingress", ssh_from_anywhere, (), "-tasks): allows tcp 22 from 0.0.0.0/0"),
    ("database_port", database_from_the_vpc, (), "allows the database port 5432 (tcp 5432) from 10.0.0.0/16"),
    ("database_public", public_database, (), f"DB instance {PREFIX}-db: is publicly accessible"),
    ("database_encrypted", unencrypted_database, (), f"DB instance {PREFIX}-db-plain: storage is not encrypted"),
    ("private_subnet_route", private_route_to_the_internet, (), "sends 0.0.0.0/0 to the internet gateway igw-"),
    ("role_privileges", task_role_admin, (), f"role {PREFIX}-task: inline policy everything"),
    ("role_privileges", execution_role_ssm_star, (), "allows the wildcard action ssm:*"),
    ("plain_secrets", password_in_the_environment, (), "has DB_PASSWORD in its plain environment"),
    ("secure_parameters", plain_string_secret, (), f"parameter {PATH}/app/api-token: is a String parameter"),
    ("log_retention", no_retention, (), f"log group /ecs/{PREFIX}: has no retention"),
    ("ecr_immutable_tags", mutable_tags, (), f"repository {PREFIX}: image tags are MUTABLE"),
    ("ecr_scan_on_push", no_scan_on_push, (), f"repository {PREFIX}: does not scan images on push"),
    ("listener_tls", old_tls_policy, (), "uses the policy ELBSecurityPolicy-2016-08"),
    ("listener_tls", http_forwards, (), "answers plain HTTP (forward) instead of redirecting"),
    (
        "deletion_protection",
        nothing,
        ("-e", "alb_deletion_protection=true", "-e", "rds_deletion_protection=true"),
        f"load balancer {PREFIX}-alb: deletion protection is off",
    ),
]


def test_a_fresh_provision_passes_every_rule(provisioned):
    run = run_playbook(provisioned, "audit")
    assert run.returncode == 0, run.tail()
    for rule in RULES:
        assert re.search(rf"PASS\s+{rule}\b", run.stdout), f"{rule} not listed as passed:\n{run.tail()}"
    assert "FAIL " not in run.stdout
    assert f"{len(RULES)} of {len(RULES)} rules passed" in run.stdout
    assert run.changed == 0

    checked = run_playbook(provisioned, "audit", "--check")
    assert checked.returncode == 0, checked.tail()
    assert f"{len(RULES)} of {len(RULES)} rules passed" in checked.stdout


@pytest.mark.parametrize(
    ("rule", "inject", "args", "named"), CASES, ids=[f"{case[0]}-{case[1].__name__}" for case in CASES]
)
def test_each_violation_fails_the_audit_naming_it(provisioned, rule, inject, args, named):
    undo = inject(provisioned)
    try:
        run = run_playbook(provisioned, "audit", *args)
    finally:
        undo()
    assert run.returncode != 0, run.tail()
    failure = next((line for line in run.output.splitlines() if "AUDIT FAILED" in line), "")
    assert f"[{rule}]" in failure, run.tail()
    assert named in failure, run.tail()
    assert re.search(rf"FAIL\s+{rule}\b", run.stdout), run.tail()


def test_deletion_protection_asked_for_and_on_passes(provisioned):
    api = provisioned
    elbv2, rds = api.client("elbv2"), api.client("rds")
    arn = elbv2.describe_load_balancers(Names=[f"{PREFIX}-alb"])["LoadBalancers"][0]["LoadBalancerArn"]

    def protect(on: bool) -> None:
        value = "true" if on else "false"
        elbv2.modify_load_balancer_attributes(
            LoadBalancerArn=arn, Attributes=[{"Key": "deletion_protection.enabled", "Value": value}]
        )
        rds.modify_db_instance(DBInstanceIdentifier=f"{PREFIX}-db", DeletionProtection=on, ApplyImmediately=True)

    protect(True)
    try:
        run = run_playbook(api, "audit", "-e", "alb_deletion_protection=true", "-e", "rds_deletion_protection=true")
    finally:
        protect(False)
    assert run.returncode == 0, run.tail()
    assert re.search(r"PASS\s+deletion_protection\s+2 checked", run.stdout), run.tail()
