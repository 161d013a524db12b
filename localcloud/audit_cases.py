"""The security audit's rules and one injected violation of each, through the API.

Shared by ``tests/e2e/test_audit.py`` (a fresh provision passes every rule; each violation fails the
audit naming it) and ``bench/reliability.py`` (how many are caught). Each injection changes the account
of a provisioned environment (``inventories/local``) and returns what undoes it.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from localcloud.harness import PREFIX, run_playbook

PATH = "/ecs-prod/local"
RULES = [
    "open_ingress",
    "database_port",
    "database_public",
    "database_encrypted",
    "private_subnet_route",
    "role_privileges",
    "plain_secrets",
    "ecs_exec",
    "secure_parameters",
    "log_retention",
    "ecr_immutable_tags",
    "ecr_scan_on_push",
    "listener_tls",
    "deletion_protection",
]


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


def exec_on_a_service(api):
    ecs = api.client("ecs")
    ecs.update_service(cluster=PREFIX, service=f"{PREFIX}-green", enableExecuteCommand=True)
    return lambda: ecs.update_service(cluster=PREFIX, service=f"{PREFIX}-green", enableExecuteCommand=False)


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


def nothing(api):  # noqa: ARG001 - the injections' signature
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
    ("ecs_exec", exec_on_a_service, (), f"service {PREFIX}-green: allows ECS Exec"),
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


def violation_problems(api, rule: str, inject, args: tuple, named: str) -> list[str]:
    """Inject one violation, run the audit, undo it: what is wrong with the audit's answer (nothing: it
    failed, its AUDIT FAILED line naming the rule and ``named``, and it lists the rule as FAIL)."""
    undo = inject(api)
    try:
        run = run_playbook(api, "audit", *args)
    finally:
        undo()
    problems = []
    if run.returncode == 0:
        problems.append("the audit passed")
    failure = next((line for line in run.output.splitlines() if "AUDIT FAILED" in line), "")
    if f"[{rule}]" not in failure or named not in failure:
        problems.append(f"the failure does not name [{rule}] and {named!r}")
    if not re.search(rf"FAIL\s+{rule}\b", run.stdout):
        problems.append(f"{rule} is not listed as FAIL")
    return [f"{rule} ({inject.__name__}): {problem}\n{run.tail(1500)}" for problem in problems]
