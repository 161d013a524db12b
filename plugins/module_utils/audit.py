# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The rules of the ``platform_audit`` module, as pure functions over what it read from AWS.

Each rule takes the environment as read (a dict of the raw API answers, see ``platform_audit``) and returns
how many resources it checked and the violations it found, each ``{rule, resource, detail}``. The rules are
those of AWS Security Hub's foundational best practices and the AWS Config ECS conformance pack that apply
to this platform; ``RULES`` lists them in the order the report shows them.
"""

import json
import re
from collections import namedtuple
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import unquote

ANY_IPV4 = "0.0.0.0/0"
ANY_IPV6 = "::/0"
# The ELBSecurityPolicy family whose minimum protocol is TLS 1.2 (TLS 1.3 policies with 1.2 allowed or not,
# their Res/Ext/FIPS/PQ variants, and the TLS 1.2 and forward-secrecy 1.2 policies).
TLS12_POLICY = re.compile(r"^ELBSecurityPolicy-(TLS13-1-[23]-|TLS-1-2-|FS-1-2-)")
# Words of a name that mark a secret, and last words that mark a reference to one (a parameter's name).
SECRET_WORDS = {"PASSWORD", "PASSWD", "PWD", "SECRET", "SECRETS", "TOKEN", "KEY", "APIKEY", "CREDENTIAL", "CREDENTIALS"}
REFERENCE_WORDS = {"PARAM", "PARAMETER", "ARN", "NAME", "PATH", "FILE", "ID", "SSM", "REF"}
# What the platform's roles may be allowed (roles/iam): reading the environment's parameters, decrypting them.
ROLE_ACTIONS = {"ssm:getparameter", "ssm:getparameters", "kms:decrypt"}
# What ECS Exec needs of the task role (roles/iam, iam_ecs_exec): the Session Manager agent's channels. AWS
# gives these actions no resource-level permission, so their statement names Resource "*".
ECS_EXEC_ACTIONS = {
    "ssmmessages:createcontrolchannel",
    "ssmmessages:createdatachannel",
    "ssmmessages:opencontrolchannel",
    "ssmmessages:opendatachannel",
}

Violation = Dict[str, str]
Rule = namedtuple("Rule", ["name", "title", "check"])


def violation(rule: str, resource: str, detail: str) -> Violation:
    return {"rule": rule, "resource": resource, "detail": detail}


def tag_dict(tags: Optional[Iterable[Mapping[str, str]]]) -> Dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in tags or []}


def as_list(value: Any) -> List[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def group_label(group: Mapping[str, Any]) -> str:
    return f"{group.get('GroupId', '?')} ({group.get('GroupName', '?')})"


def looks_secret(name: str) -> bool:
    """Whether a variable or parameter name names a secret (DB_PASSWORD, api-token, SECRET_KEY) rather than a
    reference to one (DB_PASSWORD_SSM_PARAM, PASSWORD_FILE)."""
    words = [word for word in re.split(r"[^A-Za-z0-9]+", name.upper()) if word]
    if not words or words[-1] in REFERENCE_WORDS:
        return False
    return any(word in SECRET_WORDS or word.endswith(("PASSWORD", "SECRET", "TOKEN")) for word in words)


# ---- security groups ---------------------------------------------------------------------------------


def ports_of(permission: Mapping[str, Any]) -> Tuple[str, int, int]:
    """Protocol and port range of an ingress permission; all protocols are ``-1`` over 0-65535."""
    protocol = str(permission.get("IpProtocol", "-1")).lower()
    protocol = {"6": "tcp", "17": "udp", "1": "icmp", "all": "-1"}.get(protocol, protocol)
    if protocol == "-1":
        return protocol, 0, 65535
    return protocol, int(permission.get("FromPort", 0)), int(permission.get("ToPort", 65535))


def describe_ports(protocol: str, low: int, high: int) -> str:
    if protocol == "-1":
        return "all traffic"
    if protocol in ("icmp", "icmpv6"):
        return protocol
    return f"{protocol} {low}" if low == high else f"{protocol} {low}-{high}"


def open_sources(permission: Mapping[str, Any]) -> List[str]:
    sources = [item.get("CidrIp") for item in permission.get("IpRanges", []) if item.get("CidrIp") == ANY_IPV4]
    sources += [item.get("CidrIpv6") for item in permission.get("Ipv6Ranges", []) if item.get("CidrIpv6") == ANY_IPV6]
    return sources


def check_open_ingress(env: Mapping[str, Any]) -> Tuple[int, List[Violation]]:
    """No ingress from 0.0.0.0/0 or ::/0 but the ALB group's listener ports (Security Hub EC2.18, EC2.19)."""
    allowed_groups = set(env.get("alb_security_group_ids", []))
    allowed_ports = {int(port) for port in env.get("public_ports", [80, 443])}
    found = []
    groups = env.get("security_groups", [])
    for group in groups:
        for permission in group.get("IpPermissions", []):
            sources = open_sources(permission)
            if not sources:
                continue
            protocol, low, high = ports_of(permission)
            if group.get("GroupId") in allowed_groups and protocol == "tcp" and low == high and low in allowed_ports:
                continue
            found.append(
                violation(
                    "open_ingress",
                    f"security group {group_label(group)}",
                    f"allows {describe_ports(protocol, low, high)} from {' and '.join(sources)}",
                )
            )
    return len(groups), found


def check_database_port(env: Mapping[str, Any]) -> Tuple[int, List[Violation]]:
    """The database port reachable only from the tasks' security group (Security Hub RDS, Config conformance)."""
    tasks = set(env.get("tasks_security_group_ids", []))
    groups = {group.get("GroupId"): group for group in env.get("security_groups", [])}
    found = []
    checked = 0
    for instance in env.get("db_instances", []):
        port = int((instance.get("Endpoint") or {}).get("Port") or instance.get("DbInstancePort") or 5432)
        for member in instance.get("VpcSecurityGroups", []):
            group = groups.get(member.get("VpcSecurityGroupId"))
            if group is None:
                continue
            checked += 1
            for permission in group.get("IpPermissions", []):
                protocol, low, high = ports_of(permission)
                if protocol not in ("-1", "tcp") or not low <= port <= high:
                    continue
                sources = [item.get("CidrIp") for item in permission.get("IpRanges", [])]
                sources += [item.get("CidrIpv6") for item in permission.get("Ipv6Ranges", [])]
                sources += [item.get("PrefixListId") for item in permission.get("PrefixListIds", [])]
                sources += [
                    pair.get("GroupId")
                    for pair in permission.get("UserIdGroupPairs", [])
                    if pair.get("GroupId") not in tasks
                ]
                if sources:
                    found.append(
                        violation(
                            "database_port",
                            f"security group {group_label(group)} of {instance.get('DBInstanceIdentifier')}",
                            f"allows the database port {port} ({describe_ports(protocol, low, high)}) from "
                            f"{', '.join(str(source) for source in sources)}, not only from the tasks' security group",
                        )
                    )
    return checked, found


# ---- the database --------------------------------------------------------------------------------------


def check_database_public(env: Mapping[str, Any]) -> Tuple[int, List[Violation]]:
    """No publicly accessible database (Security Hub RDS.2)."""
    instances = env.get("db_instances", [])
    found = [
        violation("database_public", f"DB instance {instance.get('DBInstanceIdentifier')}", "is publicly accessible")
        for instance in instances
        if instance.get("PubliclyAccessible")
    ]
    return len(instances), found


def check_database_encrypted(env: Mapping[str, Any]) -> Tuple[int, List[Violation]]:
    """Encrypted database storage (Security Hub RDS.3)."""
    instances = env.get("db_instances", [])
    found = [
        violation(
            "database_encrypted", f"DB instance {instance.get('DBInstanceIdentifier')}", "storage is not encrypted"
        )
        for instance in instances
        if not instance.get("StorageEncrypted")
    ]
    return len(instances), found


# ---- the network ---------------------------------------------------------------------------------------


# The tiers of vpc_network (Tier tag): "app" subnets (tasks) may leave the VPC through NAT gateways or endpoints,
# "private" (the data tier; "data" too) not at all; neither may route to an internet gateway.
APP_TIERS = ("app",)
DATA_TIERS = ("private", "data")


def tier_of(subnet: Mapping[str, Any]) -> str:
    tags = tag_dict(subnet.get("Tags"))
    if "Tier" in tags:
        return tags["Tier"]
    name = tags.get("Name", "")
    for tier in APP_TIERS + DATA_TIERS:
        if f"-{tier}-" in name:
            return tier
    return ""


def is_private(subnet: Mapping[str, Any]) -> bool:
    return tier_of(subnet) in APP_TIERS + DATA_TIERS


def route_table_of(subnet_id: str, tables: Sequence[Mapping[str, Any]]) -> Optional[Mapping[str, Any]]:
    """The route table a subnet uses: its explicit association, else the VPC's main table."""
    main = None
    for table in tables:
        for association in table.get("Associations", []):
            if association.get("SubnetId") == subnet_id:
                return table
            if association.get("Main"):
                main = table
    return main


def route_out(route: Mapping[str, Any]) -> str:
    """Where a route leaves the VPC for the internet - an internet gateway or a NAT gateway - else ""."""
    gateway = route.get("GatewayId") or ""
    if gateway.startswith("igw-"):
        return f"the internet gateway {gateway}"
    if route.get("NatGatewayId"):
        return f"the NAT gateway {route['NatGatewayId']}"
    return ""


def check_private_subnets(env: Mapping[str, Any]) -> Tuple[int, List[Violation]]:
    """No route from a private subnet to an internet gateway; none out of a data subnet at all (NAT included)."""
    tables = env.get("route_tables", [])
    private = [subnet for subnet in env.get("subnets", []) if is_private(subnet)]
    found = []
    for subnet in private:
        table = route_table_of(subnet["SubnetId"], tables)
        if table is None:
            continue
        data = tier_of(subnet) in DATA_TIERS
        for route in table.get("Routes", []):
            out = route_out(route)
            if not out or (out.startswith("the NAT") and not data):
                continue
            destination = route.get("DestinationCidrBlock") or route.get("DestinationIpv6CidrBlock") or "?"
            name = tag_dict(subnet.get("Tags")).get("Name", "")
            found.append(
                violation(
                    "private_subnet_route",
                    f"subnet {subnet['SubnetId']} ({name})",
                    f"route table {table.get('RouteTableId')} sends {destination} to {out}"
                    + (" (a data subnet has no route out)" if out.startswith("the NAT") else ""),
                )
            )
    return len(private), found


# ---- IAM -----------------------------------------------------------------------------------------------


def policy_document(document: Any) -> Dict[str, Any]:
    """A policy document as a dict, whether boto3 decoded it or it is (URL-encoded) JSON."""
    if isinstance(document, dict):
        return document
    text = str(document)
    if text.startswith("%"):
        text = unquote(text)
    try:
        return json.loads(text)
    except ValueError:
        return json.loads(unquote(text))


def parameter_path_of(resource: str) -> Optional[str]:
    """The parameter name an SSM ARN names (arn:aws:ssm:r:a:parameter/x/y -> /x/y)."""
    marker = ":parameter"
    if not resource.startswith("arn:") or marker not in resource:
        return None
    return resource.split(marker, 1)[1]


def is_ecs_exec_statement(statement: Mapping[str, Any]) -> bool:
    """Whether a statement allows the ECS Exec channel actions and nothing else (any of them, on any resource)."""
    actions = {str(action).lower() for action in as_list(statement.get("Action"))}
    return (
        bool(actions)
        and actions <= ECS_EXEC_ACTIONS
        and "NotAction" not in statement
        and "NotResource" not in statement
        and "Condition" not in statement
    )


def statement_problems(statement: Mapping[str, Any], env: Mapping[str, Any], kind: str = "") -> List[str]:
    if statement.get("Effect") != "Allow":
        return []
    if kind == "task" and env.get("expect_ecs_exec") and is_ecs_exec_statement(statement):
        return []  # ECS Exec is on: the task role's channel actions, Resource "*" as AWS requires
    problems = []
    if "NotAction" in statement:
        problems.append(f"allows everything but {as_list(statement['NotAction'])} (NotAction)")
    if "NotResource" in statement:
        problems.append(f"allows every resource but {as_list(statement['NotResource'])} (NotResource)")
    actions = [str(action) for action in as_list(statement.get("Action"))]
    resources = [str(resource) for resource in as_list(statement.get("Resource"))]
    wildcards = [action for action in actions if "*" in action or "?" in action]
    if wildcards:
        problems.append(f"allows the wildcard action {', '.join(wildcards)}")
    beyond = [action for action in actions if action not in wildcards and action.lower() not in ROLE_ACTIONS]
    if beyond:
        problems.append(f"allows {', '.join(beyond)}, beyond reading the environment's parameters")
    if "*" in resources:
        problems.append('allows Resource "*"')
        return problems
    path = env.get("parameter_path", "").rstrip("/") + "/"
    key = env.get("kms_key_arn") or ""
    lowered = {action.lower() for action in actions}
    if lowered & {"ssm:getparameter", "ssm:getparameters"}:
        outside = [resource for resource in resources if not (parameter_path_of(resource) or "").startswith(path)]
        if outside:
            problems.append(f"allows reading parameters outside {path}: {', '.join(outside)}")
    if "kms:decrypt" in lowered:
        others = [resource for resource in resources if not is_key(resource, key)]
        if others:
            problems.append(f"allows kms:Decrypt on {', '.join(others)}, not only the environment's key")
    return problems


def is_key(resource: str, key: str) -> bool:
    """Whether a resource is one KMS key (the environment's when it is known), not a wildcard or an alias."""
    if key:
        return resource == key
    return ":kms:" in resource and ":key/" in resource and "*" not in resource and "?" not in resource


def managed_allowed(arn: str, allowed: Sequence[str]) -> bool:
    return any(arn == item or arn.endswith("/" + item) for item in allowed)


def check_roles(env: Mapping[str, Any]) -> Tuple[int, List[Violation]]:
    """The task and execution roles allow only what they need (Security Hub IAM.1/IAM.21, ECS conformance)."""
    roles = env.get("roles", [])
    found = []
    for role in roles:
        label = f"role {role['name']}"
        allowed = env.get("execution_managed_policies", []) if role.get("kind") == "execution" else []
        for arn in role.get("managed", []):
            if not managed_allowed(arn, allowed):
                found.append(violation("role_privileges", label, f"carries the managed policy {arn}"))
        for name, document in sorted(role.get("inline", {}).items()):
            statements = as_list(policy_document(document).get("Statement"))
            for index, statement in enumerate(statements):
                sid = statement.get("Sid") or f"statement {index}"
                for problem in statement_problems(statement, env, role.get("kind", "")):
                    found.append(violation("role_privileges", label, f"inline policy {name}, {sid}: {problem}"))
    return len(roles), found


# ---- ECS, SSM, logs, ECR -------------------------------------------------------------------------------


def task_definition_label(definition: Mapping[str, Any]) -> str:
    return f"task definition {definition.get('family')}:{definition.get('revision')}"


def check_task_definitions(env: Mapping[str, Any]) -> Tuple[int, List[Violation]]:
    """No secret in a container's plain environment; ``secrets`` instead (ECS conformance, ECS.8)."""
    definitions = env.get("task_definitions", [])
    found = []
    for definition in definitions:
        for container in definition.get("containerDefinitions", []):
            for variable in container.get("environment", []):
                name, value = variable.get("name", ""), variable.get("value", "")
                if value and looks_secret(name):
                    found.append(
                        violation(
                            "plain_secrets",
                            task_definition_label(definition),
                            f"container {container.get('name')} has {name} in its plain environment; "
                            "pass it as a secret (secrets, valueFrom an SSM SecureString)",
                        )
                    )
    return len(definitions), found


def check_ecs_exec(env: Mapping[str, Any]) -> Tuple[int, List[Violation]]:
    """ECS Exec (a shell in a running task) is on only where the environment asks for it (ECS Exec is an
    interactive way in that bypasses the deploy path; Security Hub's ECS controls expect it justified)."""
    services = env.get("services", [])
    found = []
    if not env.get("expect_ecs_exec"):
        for service in services:
            if service.get("enableExecuteCommand"):
                found.append(
                    violation(
                        "ecs_exec",
                        f"service {service.get('serviceName')}",
                        "allows ECS Exec (enableExecuteCommand), the environment does not ask for it "
                        "(ecs_enable_execute_command)",
                    )
                )
    return len(services), found


def check_parameters(env: Mapping[str, Any]) -> Tuple[int, List[Violation]]:
    """Secrets under the environment's path are SecureString parameters."""
    parameters = env.get("parameters", [])
    password = env.get("password_parameter") or ""
    found = [
        violation(
            "secure_parameters",
            f"parameter {parameter.get('Name')}",
            f"is a {parameter.get('Type')} parameter holding a secret, not a SecureString",
        )
        for parameter in parameters
        if parameter.get("Type") != "SecureString"
        and (parameter.get("Name") == password or looks_secret(str(parameter.get("Name", "")).rsplit("/", 1)[-1]))
    ]
    return len(parameters), found


def check_log_retention(env: Mapping[str, Any]) -> Tuple[int, List[Violation]]:
    """Log groups keep their events for a set time (CloudWatch conformance: log group retention)."""
    groups = env.get("log_groups", [])
    found = [
        violation(
            "log_retention", f"log group {group.get('logGroupName')}", "has no retention: it keeps events forever"
        )
        for group in groups
        if not group.get("retentionInDays")
    ]
    return len(groups), found


def check_ecr_immutable(env: Mapping[str, Any]) -> Tuple[int, List[Violation]]:
    """Immutable image tags (Security Hub ECR.2)."""
    repositories = env.get("repositories", [])
    found = [
        violation(
            "ecr_immutable_tags",
            f"repository {repository.get('repositoryName')}",
            f"image tags are {repository.get('imageTagMutability')}, not IMMUTABLE",
        )
        for repository in repositories
        if repository.get("imageTagMutability") != "IMMUTABLE"
    ]
    return len(repositories), found


def check_ecr_scan(env: Mapping[str, Any]) -> Tuple[int, List[Violation]]:
    """Images scanned on push (Security Hub ECR.1)."""
    repositories = env.get("repositories", [])
    found = [
        violation("ecr_scan_on_push", f"repository {repository.get('repositoryName')}", "does not scan images on push")
        for repository in repositories
        if not (repository.get("imageScanningConfiguration") or {}).get("scanOnPush")
    ]
    return len(repositories), found


# ---- the load balancer ---------------------------------------------------------------------------------


def redirects_to_https(actions: Sequence[Mapping[str, Any]]) -> bool:
    kinds = [action.get("Type") for action in actions]
    if kinds != ["redirect"]:
        return False
    config = actions[0].get("RedirectConfig") or {}
    return str(config.get("Protocol", "")).upper() == "HTTPS"


def check_listeners(env: Mapping[str, Any]) -> Tuple[int, List[Violation]]:
    """HTTPS listeners with a TLS 1.2+ policy (Security Hub ELB.17), HTTP redirected to HTTPS (ELB.1)."""
    found = []
    checked = 0
    for balancer in env.get("load_balancers", []):
        for listener in balancer.get("listeners", []):
            checked += 1
            label = f"listener {listener.get('Protocol')} {listener.get('Port')} of {balancer.get('name')}"
            protocol = listener.get("Protocol")
            if protocol in ("HTTPS", "TLS"):
                policy = listener.get("SslPolicy") or ""
                if not TLS12_POLICY.match(policy):
                    found.append(
                        violation("listener_tls", label, f"uses the policy {policy or 'none'}, not a TLS 1.2+ one")
                    )
            elif protocol == "HTTP":
                if not redirects_to_https(listener.get("DefaultActions", [])):
                    kinds = "/".join(str(action.get("Type")) for action in listener.get("DefaultActions", []))
                    found.append(
                        violation(
                            "listener_tls", label, f"answers plain HTTP ({kinds}) instead of redirecting to HTTPS"
                        )
                    )
                for rule in listener.get("Rules", []):
                    if rule.get("IsDefault"):
                        continue
                    if not redirects_to_https(rule.get("Actions", [])):
                        found.append(
                            violation(
                                "listener_tls",
                                label,
                                f"rule {rule.get('Priority')} answers plain HTTP instead of redirecting to HTTPS",
                            )
                        )
    return checked, found


def check_deletion_protection(env: Mapping[str, Any]) -> Tuple[int, List[Violation]]:
    """Deletion protection on where the environment asks for it (Security Hub ELB.6, RDS.8)."""
    found = []
    checked = 0
    if env.get("expect_alb_deletion_protection"):
        for balancer in env.get("load_balancers", []):
            checked += 1
            if str(balancer.get("attributes", {}).get("deletion_protection.enabled", "false")).lower() != "true":
                found.append(
                    violation(
                        "deletion_protection",
                        f"load balancer {balancer.get('name')}",
                        "deletion protection is off, the environment asks for it (alb_deletion_protection)",
                    )
                )
    if env.get("expect_rds_deletion_protection"):
        for instance in env.get("db_instances", []):
            checked += 1
            if not instance.get("DeletionProtection"):
                found.append(
                    violation(
                        "deletion_protection",
                        f"DB instance {instance.get('DBInstanceIdentifier')}",
                        "deletion protection is off, the environment asks for it (rds_deletion_protection)",
                    )
                )
    return checked, found


RULES: List[Rule] = [
    Rule("open_ingress", "security groups open to the internet only on the ALB's listener ports", check_open_ingress),
    Rule("database_port", "the database port reachable only from the tasks' security group", check_database_port),
    Rule("database_public", "the database not publicly accessible", check_database_public),
    Rule("database_encrypted", "the database storage encrypted", check_database_encrypted),
    Rule(
        "private_subnet_route",
        "no route from a private subnet to an internet gateway, none out of a data subnet",
        check_private_subnets,
    ),
    Rule("role_privileges", "task and execution roles without wildcards or grants beyond their needs", check_roles),
    Rule("plain_secrets", "no secret in a task definition's plain environment", check_task_definitions),
    Rule("ecs_exec", "ECS Exec only where the environment asks for it", check_ecs_exec),
    Rule("secure_parameters", "secrets under the environment's path are SecureString", check_parameters),
    Rule("log_retention", "log groups with a retention", check_log_retention),
    Rule("ecr_immutable_tags", "ECR image tags immutable", check_ecr_immutable),
    Rule("ecr_scan_on_push", "ECR images scanned on push", check_ecr_scan),
    Rule("listener_tls", "HTTPS listeners with a TLS 1.2+ policy, HTTP redirected to HTTPS", check_listeners),
    Rule("deletion_protection", "deletion protection where the environment asks for it", check_deletion_protection),
]


def evaluate(env: Mapping[str, Any], rules: Optional[Sequence[Rule]] = None) -> Dict[str, Any]:
    """Every rule over the environment: ``rules`` (name, title, passed, checked, violations) and ``violations``."""
    results = []
    violations: List[Violation] = []
    for rule in RULES if rules is None else rules:
        checked, found = rule.check(env)
        results.append(
            {"rule": rule.name, "title": rule.title, "passed": not found, "checked": checked, "violations": len(found)}
        )
        violations.extend(found)
    return {"rules": results, "violations": violations}


def report(result: Mapping[str, Any]) -> List[str]:
    """The audit as lines: one per rule, then one per violation."""
    lines = [
        f"{'PASS' if rule['passed'] else 'FAIL'}  {rule['rule']:<22} {rule['checked']:>3} checked  {rule['title']}"
        for rule in result.get("rules", [])
    ]
    for item in result.get("violations", []):
        lines.append(f"VIOLATION {item['rule']}: {item['resource']}: {item['detail']}")
    return lines
