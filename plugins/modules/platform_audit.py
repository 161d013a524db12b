#!/usr/bin/python

# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Ansible modules import below DOCUMENTATION, EXAMPLES and RETURN.
# ruff: noqa: E402

DOCUMENTATION = r"""
---
module: platform_audit
version_added: 0.1.0
short_description: Audit an environment of the platform against the AWS security rules that apply to it
description:
  - Reads an environment of the platform (found by its names, C(<name_prefix>-*), and its tags) once, and checks
    it against the rules of AWS Security Hub's foundational best practices and the AWS Config ECS conformance
    pack that apply to it.
  - "V(open_ingress): no security group of the VPC allows ingress from V(0.0.0.0/0) or V(::/0), except the
    load balancer's group on O(public_ports) (TCP, one port per rule)."
  - "V(database_port): the database's security groups allow its port only from the tasks' security group
    (C(<name_prefix>-tasks)), never from an address range, a prefix list or another group."
  - "V(database_public): no DB instance is publicly accessible."
  - "V(database_encrypted): every DB instance's storage is encrypted."
  - "V(private_subnet_route): no private subnet - an app subnet (tag C(Tier=app), the tasks') or a data subnet
    (tag C(Tier=private), the database's) - uses a route table with a route to an internet gateway; a data subnet
    has no route out through a NAT gateway either (an app subnet may have one, and VPC endpoints)."
  - "V(role_privileges): the roles C(<name_prefix>-execution) and C(<name_prefix>-task) carry no managed policy
    but O(execution_role_managed_policies) (the execution role only), and their inline policies allow no
    wildcard action, no C(Resource: *), no C(NotAction) or C(NotResource), nothing but C(ssm:GetParameter),
    C(ssm:GetParameters) on parameters under O(parameter_path) and C(kms:Decrypt) on the environment's key
    (C(alias/<name_prefix>)). With O(ecs_exec), the task role (never the execution role) may also have a
    statement of the ECS Exec channel actions alone (C(ssmmessages:CreateControlChannel),
    C(CreateDataChannel), C(OpenControlChannel), C(OpenDataChannel)), on C(Resource: *) as AWS requires."
  - "V(plain_secrets): no container of the task definitions in use (and the newest of each colour's family)
    has a variable whose name looks like a secret (C(PASSWORD), C(SECRET), C(TOKEN), C(KEY) as a word) with a
    value in its plain C(environment); a name that ends in a reference word (C(_PARAM), C(_ARN), C(_NAME),
    C(_FILE), ...) names a secret, it does not hold one."
  - "V(ecs_exec): without O(ecs_exec), no service of the environment allows ECS Exec (C(enableExecuteCommand))."
  - "V(secure_parameters): no parameter under O(parameter_path) that is O(password_parameter) or whose name
    looks like a secret is of another type than C(SecureString)."
  - "V(log_retention): the log groups C(/ecs/<name_prefix>) (and below it) have a retention."
  - "V(ecr_immutable_tags) and V(ecr_scan_on_push): the repository C(<name_prefix>) has immutable tags and scans
    on push."
  - "V(listener_tls): the HTTPS listeners of C(<name_prefix>-alb) use a TLS 1.2+ C(ELBSecurityPolicy)
    (C(TLS13-1-2-*), C(TLS13-1-3-*), C(TLS-1-2-*), C(FS-1-2-*)), and its HTTP listeners only redirect to HTTPS
    (default action and rules)."
  - "V(deletion_protection): with O(alb_deletion_protection) the load balancer, with O(rds_deletion_protection)
    the DB instances, have deletion protection on."
  - The module never changes anything and never fails on a violation; it returns them in RV(violations) and
    the outcome of each rule in RV(rules), for a playbook to report and fail on
    (C(ecs_production.platform.audit) does). It runs in check mode as it does otherwise.
  - A resource that does not exist is not a violation; it is listed in RV(missing).
author:
  - ecs_production.platform contributors (@ecs-production)
options:
  name_prefix:
    description:
      - The prefix of the environment's resource names, C(<project>-<environment>).
    type: str
    required: true
  parameter_path:
    description:
      - The environment's SSM parameter path, C(/<project>/<environment>), without a trailing slash.
    type: str
    required: true
  password_parameter:
    description:
      - The parameter holding the database password; C(<parameter_path>/db/password) when not given.
    type: str
  tags:
    description:
      - The environment's identifying tags. DB instances that carry all of them are audited besides
        C(<name_prefix>-db).
    type: dict
    default: {}
  colors:
    description:
      - The colours whose services (C(<name_prefix>-<colour>) in the cluster C(<name_prefix>)) and task
        definition families are audited.
    type: list
    elements: str
    default: [blue, green]
  public_ports:
    description:
      - The ports the load balancer's security group may open to the internet.
    type: list
    elements: int
    default: [80, 443]
  execution_role_managed_policies:
    description:
      - The managed policies the execution role may carry, by name or ARN. The task role may carry none.
    type: list
    elements: str
    default: [AmazonECSTaskExecutionRolePolicy]
  alb_deletion_protection:
    description:
      - Whether the environment asks for deletion protection on its load balancer.
    type: bool
    default: false
  rds_deletion_protection:
    description:
      - Whether the environment asks for deletion protection on its database.
    type: bool
    default: false
  ecs_exec:
    description:
      - Whether the environment asks for ECS Exec (the ecs role's C(ecs_enable_execute_command)). Then its
        services may allow it and its task role may have the channel actions it needs.
    type: bool
    default: false
notes:
  - "AWS calls: C(DescribeVpcs), C(DescribeSecurityGroups), C(DescribeSubnets), C(DescribeRouteTables);
    C(DescribeLoadBalancers), C(DescribeLoadBalancerAttributes), C(DescribeListeners), C(DescribeRules) per
    HTTP listener; C(DescribeDBInstances); per role C(GetRole), C(ListRolePolicies), C(GetRolePolicy) per
    inline policy, C(ListAttachedRolePolicies); C(kms:DescribeKey); C(ecs:DescribeServices) and
    C(ecs:DescribeTaskDefinition) per task definition; C(ssm:GetParametersByPath) (without decryption: values
    are never read); C(logs:DescribeLogGroups); C(ecr:DescribeRepositories). All are retried on throttling."
  - Registry-level (enhanced) ECR scanning is not considered; the repository's own scan on push is.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Audit the environment
  ecs_production.platform.platform_audit:
    name_prefix: myapp-prod
    parameter_path: /myapp/prod
    tags: {Project: myapp, Environment: prod, ManagedBy: ecs_production.platform}
    alb_deletion_protection: true
    rds_deletion_protection: true
  register: audit

- name: Fail naming each violation
  ansible.builtin.fail:
    msg: "{{ audit.violations | map(attribute='rule') | list }}"
  when: audit.violations | length > 0
"""

RETURN = r"""
violations:
  description: Every violation found, in the order of RV(rules).
  returned: always
  type: list
  elements: dict
  contains:
    rule:
      description: The rule violated, one of the names the description lists.
      type: str
      sample: open_ingress
    resource:
      description: What violates it.
      type: str
      sample: security group sg-0123456789abcdef0 (myapp-prod-tasks)
    detail:
      description: How.
      type: str
      sample: allows tcp 22 from 0.0.0.0/0
rules:
  description: Every rule checked, in the order the description lists them.
  returned: always
  type: list
  elements: dict
  contains:
    rule:
      description: Its name.
      type: str
      sample: open_ingress
    title:
      description: What it asks for.
      type: str
    passed:
      description: Whether no resource violates it.
      type: bool
    checked:
      description: How many resources it looked at.
      type: int
    violations:
      description: How many violations it found.
      type: int
report:
  description: The outcome as lines, one per rule (C(PASS) or C(FAIL)), then one per violation.
  returned: always
  type: list
  elements: str
missing:
  description: The resources of the environment that were looked for and do not exist.
  returned: always
  type: list
  elements: str
  sample: [load balancer myapp-prod-alb]
passed:
  description: Whether every rule passed.
  returned: always
  type: bool
"""

from typing import Any, Callable, Dict, List

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.botocore import paginated_query_with_retries
from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.ecs_production.platform.plugins.module_utils import audit

RETRY = AWSRetry.jittered_backoff(retries=10)


def pages(client, operation: str, key: str, **params) -> List[Dict[str, Any]]:
    return paginated_query_with_retries(client, operation, RETRY, **params)[key]


def tags_match(tags: Dict[str, str], wanted: Dict[str, str]) -> bool:
    return bool(wanted) and all(tags.get(key) == str(value) for key, value in wanted.items())


class Reader:
    """Reads what the rules need, once; what is looked for and absent goes to ``missing``."""

    def __init__(self, params: Dict[str, Any], client_for: Callable[[str], Any]):
        self.params = params
        self.prefix = params["name_prefix"]
        self.client_for = client_for
        self.missing: List[str] = []

    @AWSErrorHandler.common_error_handler("read the network")
    def network(self, env: Dict[str, Any]) -> None:
        ec2 = self.client_for("ec2")
        vpcs = pages(ec2, "describe_vpcs", "Vpcs", Filters=[{"Name": "tag:Name", "Values": [f"{self.prefix}-vpc"]}])
        if not vpcs:
            self.missing.append(f"VPC {self.prefix}-vpc")
            return
        env["vpc_ids"] = [vpc["VpcId"] for vpc in vpcs]
        in_vpc = [{"Name": "vpc-id", "Values": env["vpc_ids"]}]
        env["security_groups"] = pages(ec2, "describe_security_groups", "SecurityGroups", Filters=in_vpc)
        env["subnets"] = pages(ec2, "describe_subnets", "Subnets", Filters=in_vpc)
        env["route_tables"] = pages(ec2, "describe_route_tables", "RouteTables", Filters=in_vpc)
        by_name = {group["GroupName"]: group["GroupId"] for group in env["security_groups"]}
        env["alb_security_group_ids"] = [by_name[name] for name in [f"{self.prefix}-alb"] if name in by_name]
        env["tasks_security_group_ids"] = [by_name[name] for name in [f"{self.prefix}-tasks"] if name in by_name]

    @AWSErrorHandler.common_error_handler("read the load balancer")
    def load_balancer(self, env: Dict[str, Any]) -> None:
        elbv2 = self.client_for("elbv2")
        name = f"{self.prefix}-alb"
        try:
            found = elbv2.describe_load_balancers(aws_retry=True, Names=[name])["LoadBalancers"]
        except is_boto3_error_code("LoadBalancerNotFound"):
            found = []
        if not found:
            self.missing.append(f"load balancer {name}")
        env["load_balancers"] = []
        for balancer in found:
            arn = balancer["LoadBalancerArn"]
            attributes = elbv2.describe_load_balancer_attributes(aws_retry=True, LoadBalancerArn=arn)["Attributes"]
            listeners = pages(elbv2, "describe_listeners", "Listeners", LoadBalancerArn=arn)
            for listener in listeners:
                if listener.get("Protocol") == "HTTP":
                    listener["Rules"] = pages(elbv2, "describe_rules", "Rules", ListenerArn=listener["ListenerArn"])
            env["alb_security_group_ids"] = sorted(
                set(env.get("alb_security_group_ids", [])) | set(balancer.get("SecurityGroups", []))
            )
            env["load_balancers"].append(
                {
                    "arn": arn,
                    "name": balancer["LoadBalancerName"],
                    "attributes": {item["Key"]: item["Value"] for item in attributes},
                    "listeners": listeners,
                }
            )

    @AWSErrorHandler.common_error_handler("read the database")
    def database(self, env: Dict[str, Any]) -> None:
        name = f"{self.prefix}-db"
        instances = pages(self.client_for("rds"), "describe_db_instances", "DBInstances")
        wanted = {str(key): str(value) for key, value in self.params["tags"].items()}
        env["db_instances"] = [
            instance
            for instance in instances
            if instance["DBInstanceIdentifier"] == name or tags_match(audit.tag_dict(instance.get("TagList")), wanted)
        ]
        if name not in [instance["DBInstanceIdentifier"] for instance in env["db_instances"]]:
            self.missing.append(f"DB instance {name}")

    @AWSErrorHandler.common_error_handler("read the roles")
    def roles(self, env: Dict[str, Any]) -> None:
        iam = self.client_for("iam")
        env["roles"] = []
        for kind in ("execution", "task"):
            name = f"{self.prefix}-{kind}"
            try:
                iam.get_role(aws_retry=True, RoleName=name)
            except is_boto3_error_code("NoSuchEntity"):
                self.missing.append(f"role {name}")
                continue
            inline = {}
            for policy in pages(iam, "list_role_policies", "PolicyNames", RoleName=name):
                inline[policy] = iam.get_role_policy(aws_retry=True, RoleName=name, PolicyName=policy)["PolicyDocument"]
            managed = pages(iam, "list_attached_role_policies", "AttachedPolicies", RoleName=name)
            env["roles"].append(
                {"name": name, "kind": kind, "inline": inline, "managed": [item["PolicyArn"] for item in managed]}
            )

    @AWSErrorHandler.common_error_handler("read the key")
    def key(self, env: Dict[str, Any]) -> None:
        try:
            found = self.client_for("kms").describe_key(aws_retry=True, KeyId=f"alias/{self.prefix}")
            env["kms_key_arn"] = found["KeyMetadata"]["Arn"]
        except is_boto3_error_code("NotFoundException"):
            self.missing.append(f"KMS key alias/{self.prefix}")

    @AWSErrorHandler.common_error_handler("read the task definitions")
    def task_definitions(self, env: Dict[str, Any]) -> None:
        ecs = self.client_for("ecs")
        families = [f"{self.prefix}-{color}" for color in self.params["colors"]]
        wanted = list(families)
        try:
            services = ecs.describe_services(aws_retry=True, cluster=self.prefix, services=families)
            env["services"] = [service for service in services.get("services", []) if service.get("status") == "ACTIVE"]
            for service in services.get("services", []):
                wanted.append(service["taskDefinition"])
                wanted.extend(deployment["taskDefinition"] for deployment in service.get("deployments", []))
        except is_boto3_error_code("ClusterNotFoundException"):
            self.missing.append(f"ECS cluster {self.prefix}")
        definitions: Dict[str, Dict[str, Any]] = {}
        for reference in wanted:
            try:
                found = ecs.describe_task_definition(aws_retry=True, taskDefinition=reference)["taskDefinition"]
            except is_boto3_error_code("ClientException"):
                continue  # a family without any revision
            if reference in families and found.get("status") != "ACTIVE":
                continue
            definitions[found["taskDefinitionArn"]] = found
        env["task_definitions"] = [definitions[arn] for arn in sorted(definitions)]

    @AWSErrorHandler.common_error_handler("read the parameters")
    def parameters(self, env: Dict[str, Any]) -> None:
        env["parameters"] = pages(
            self.client_for("ssm"),
            "get_parameters_by_path",
            "Parameters",
            Path=self.params["parameter_path"],
            Recursive=True,
            WithDecryption=False,
        )

    @AWSErrorHandler.common_error_handler("read the log groups")
    def log_groups(self, env: Dict[str, Any]) -> None:
        name = f"/ecs/{self.prefix}"
        found = pages(self.client_for("logs"), "describe_log_groups", "logGroups", logGroupNamePrefix=name)
        env["log_groups"] = [
            group for group in found if group["logGroupName"] in (name,) or group["logGroupName"].startswith(name + "/")
        ]
        if not env["log_groups"]:
            self.missing.append(f"log group {name}")

    @AWSErrorHandler.common_error_handler("read the repository")
    def repository(self, env: Dict[str, Any]) -> None:
        try:
            found = self.client_for("ecr").describe_repositories(aws_retry=True, repositoryNames=[self.prefix])
            env["repositories"] = found["repositories"]
        except is_boto3_error_code("RepositoryNotFoundException"):
            env["repositories"] = []
            self.missing.append(f"ECR repository {self.prefix}")

    def read(self) -> Dict[str, Any]:
        params = self.params
        env: Dict[str, Any] = {
            "parameter_path": params["parameter_path"].rstrip("/"),
            "password_parameter": params["password_parameter"] or f"{params['parameter_path'].rstrip('/')}/db/password",
            "public_ports": params["public_ports"],
            "execution_managed_policies": params["execution_role_managed_policies"],
            "expect_alb_deletion_protection": params["alb_deletion_protection"],
            "expect_rds_deletion_protection": params["rds_deletion_protection"],
            "expect_ecs_exec": params["ecs_exec"],
        }
        for part in (
            self.network,
            self.load_balancer,
            self.database,
            self.roles,
            self.key,
            self.task_definitions,
            self.parameters,
            self.log_groups,
            self.repository,
        ):
            part(env)
        return env


def main() -> None:
    argument_spec = dict(
        name_prefix=dict(type="str", required=True),
        parameter_path=dict(type="str", required=True),
        password_parameter=dict(type="str", no_log=False),
        tags=dict(type="dict", default={}),
        colors=dict(type="list", elements="str", default=["blue", "green"]),
        public_ports=dict(type="list", elements="int", default=[80, 443]),
        execution_role_managed_policies=dict(type="list", elements="str", default=["AmazonECSTaskExecutionRolePolicy"]),
        alb_deletion_protection=dict(type="bool", default=False),
        rds_deletion_protection=dict(type="bool", default=False),
        ecs_exec=dict(type="bool", default=False),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    if not module.params["parameter_path"].startswith("/"):
        module.fail_json(msg=f"parameter_path must start with /: {module.params['parameter_path']!r}")

    clients: Dict[str, Any] = {}

    def client_for(service: str):
        if service not in clients:
            clients[service] = module.client(service, retry_decorator=RETRY)
        return clients[service]

    reader = Reader(module.params, client_for)
    try:
        env = reader.read()
    except AnsibleAWSError as e:
        module.fail_json_aws_error(e)
    result = audit.evaluate(env)
    module.exit_json(
        changed=False,
        violations=result["violations"],
        rules=result["rules"],
        report=audit.report(result),
        missing=reader.missing,
        passed=not result["violations"],
    )


if __name__ == "__main__":
    main()
