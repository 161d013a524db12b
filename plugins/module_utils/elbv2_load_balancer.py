# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The ``load_balancer`` module's work: read an Application Load Balancer with its target groups, listeners,
attributes and tags in one call per kind, and write only what differs.

Listener actions are compared with ``elbv2_listeners``' normal form (ForwardConfig always); target groups a
listener names are resolved to the ARNs of this module's own target groups, without a call. In check mode
nothing is written, and what would be created gets an ARN of zeros so that the listeners can be planned.
"""

from typing import Any, Dict, List, Mapping, Optional

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.botocore import paginated_query_with_retries
from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict
from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags

from ansible_collections.ecs_production.platform.plugins.module_utils.common import Refused
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import ELBV2_RETRY
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import find_target_groups
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import normalize_actions
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import resolve_actions
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import target_group_refs

PLANNED_PREFIX = "arn:aws:elasticloadbalancing:us-east-1:000000000000:"
MAX_TAG_ARNS = 20  # DescribeTags takes up to 20 resources
# Module option -> the load balancer attribute it sets, and how the value is written.
LB_ATTRIBUTES = {
    "idle_timeout": "idle_timeout.timeout_seconds",
    "deletion_protection": "deletion_protection.enabled",
    "http2": "routing.http2.enabled",
    "drop_invalid_header_fields": "routing.http.drop_invalid_header_fields.enabled",
}
# Target group health check option -> CreateTargetGroup/ModifyTargetGroup parameter.
HEALTH_CHECK = {
    "protocol": "HealthCheckProtocol",
    "port": "HealthCheckPort",
    "path": "HealthCheckPath",
    "interval": "HealthCheckIntervalSeconds",
    "timeout": "HealthCheckTimeoutSeconds",
    "healthy_threshold": "HealthyThresholdCount",
    "unhealthy_threshold": "UnhealthyThresholdCount",
}
# What a target group cannot change once created.
FIXED = {"protocol": "Protocol", "port": "Port", "target_type": "TargetType", "vpc_id": "VpcId"}


class LoadBalancerErrorHandler(AWSErrorHandler):
    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code(["LoadBalancerNotFound", "ListenerNotFound", "TargetGroupNotFound"])


def text(value: Any) -> str:
    """An attribute value as ELBv2 stores it (strings, booleans lower case)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def health_check_params(check: Mapping[str, Any]) -> Dict[str, Any]:
    params = {HEALTH_CHECK[key]: value for key, value in check.items() if key in HEALTH_CHECK and value is not None}
    if check.get("matcher"):
        params["Matcher"] = {"HttpCode": str(check["matcher"])}
    return params


def health_check_changes(current: Mapping[str, Any], check: Mapping[str, Any]) -> Dict[str, Any]:
    """The ModifyTargetGroup parameters that differ from the target group as described."""
    wanted = health_check_params(check)
    return {key: value for key, value in wanted.items() if current.get(key) != value}


def lb_attribute_changes(current: Mapping[str, str], params: Mapping[str, Any]) -> List[Dict[str, str]]:
    return [
        {"Key": key, "Value": text(params[option])}
        for option, key in LB_ATTRIBUTES.items()
        if params.get(option) is not None and current.get(key) != text(params[option])
    ]


@LoadBalancerErrorHandler.list_error_handler("describe load balancer")
def find_load_balancer(client, name: str) -> Optional[Dict[str, Any]]:
    found = client.describe_load_balancers(aws_retry=True, Names=[name])["LoadBalancers"]
    return found[0] if found else None


@LoadBalancerErrorHandler.common_error_handler("call ELBv2")
def call(client, operation: str, **params) -> Dict[str, Any]:
    return getattr(client, operation)(aws_retry=True, **params)


def attributes(client, operation: str, **params) -> Dict[str, str]:
    return {a["Key"]: a["Value"] for a in call(client, operation, **params)["Attributes"]}


def tags_of(client, arns: List[str]) -> Dict[str, Dict[str, str]]:
    """{ARN: tags} of up to any number of resources, 20 per call."""
    found: Dict[str, Dict[str, str]] = {}
    for start in range(0, len(arns), MAX_TAG_ARNS):
        batch = arns[start : start + MAX_TAG_ARNS]
        for entry in call(client, "describe_tags", ResourceArns=batch)["TagDescriptions"]:
            found[entry["ResourceArn"]] = boto3_tag_list_to_ansible_dict(entry.get("Tags") or [])
    return found


class Converger:
    """Brings the load balancer, its target groups and listeners to what the module's parameters ask."""

    def __init__(self, module, client):
        self.module = module
        self.client = client
        self.params = module.params
        self.check = module.check_mode
        self.changes: List[str] = []
        self.before: Dict[str, Any] = {}
        self.after: Dict[str, Any] = {}
        self.tags: Dict[str, Dict[str, Any]] = {}  # ARN -> {"want": tags, "purge": bool, "label": str}

    def write(self, change: str, operation: str, **params) -> Optional[Dict[str, Any]]:
        self.changes.append(change)
        return None if self.check else call(self.client, operation, **params)

    def want_tags(self, arn: str, tags: Optional[Mapping[str, str]], label: str, purge: bool = True) -> None:
        if tags is not None and not arn.startswith(PLANNED_PREFIX):
            self.tags[arn] = {"want": dict(tags), "purge": purge, "label": label}

    # ---- target groups ----

    def target_groups(self) -> Dict[str, str]:
        wanted = self.params["target_groups"]
        found = find_target_groups(self.client, [group["name"] for group in wanted]) if wanted else {}
        arns: Dict[str, str] = {}
        for group in wanted:
            current = found.get(group["name"])
            arns[group["name"]] = self.target_group(group, current)
        return arns

    def target_group(self, group: Mapping[str, Any], current: Optional[Dict[str, Any]]) -> str:
        name = group["name"]
        tags = dict(self.params["tags"], **(group.get("tags") or {}))
        if current is None:
            created = self.write(
                f"create target group {name}",
                "create_target_group",
                Name=name,
                **{FIXED[key]: group[key] for key in FIXED if group.get(key) is not None},
                **health_check_params(group.get("health_check") or {}),
                Tags=ansible_dict_to_boto3_tag_list(tags),
            )
            arn = f"{PLANNED_PREFIX}targetgroup/{name}/0000000000000000"
            if created is not None:
                arn = created["TargetGroups"][0]["TargetGroupArn"]
                self.target_group_attributes(arn, name, {})
            return arn
        arn = current["TargetGroupArn"]
        fixed = [key for key in FIXED if group.get(key) is not None and current.get(FIXED[key]) != group[key]]
        if fixed:
            raise Refused(
                f"Target group {name} has {', '.join(f'{k} {current.get(FIXED[k])}' for k in fixed)}, asked "
                f"{', '.join(f'{k} {group[k]}' for k in fixed)}: AWS cannot change these; replace the target group"
            )
        changes = health_check_changes(current, group.get("health_check") or {})
        if changes:
            self.write(
                f"health check of {name}: {', '.join(sorted(changes))}",
                "modify_target_group",
                TargetGroupArn=arn,
                **changes,
            )
        self.target_group_attributes(
            arn, name, attributes(self.client, "describe_target_group_attributes", TargetGroupArn=arn)
        )
        self.want_tags(arn, tags, f"target group {name}")
        return arn

    def target_group_attributes(self, arn: str, name: str, current: Mapping[str, str]) -> None:
        group = next(g for g in self.params["target_groups"] if g["name"] == name)
        delay = group.get("deregistration_delay")
        if delay is not None and current.get("deregistration_delay.timeout_seconds") != text(delay):
            self.write(
                f"deregistration delay of {name}: {delay}",
                "modify_target_group_attributes",
                TargetGroupArn=arn,
                Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": text(delay)}],
            )

    # ---- the load balancer ----

    def load_balancer(self) -> Dict[str, Any]:
        name = self.params["name"]
        current = find_load_balancer(self.client, name)
        if current is None:
            self.before["load_balancer"] = None
            created = self.write(
                f"create load balancer {name}",
                "create_load_balancer",
                Name=name,
                Subnets=self.params["subnets"],
                SecurityGroups=self.params["security_groups"],
                Scheme=self.params["scheme"],
                Type="application",
                Tags=ansible_dict_to_boto3_tag_list(self.params["tags"]),
            )
            if created is None:
                return {"LoadBalancerArn": f"{PLANNED_PREFIX}loadbalancer/app/{name}/0000000000000000", "planned": True}
            current = created["LoadBalancers"][0]
            if self.params["wait"]:
                self.client.get_waiter("load_balancer_available").wait(LoadBalancerArns=[current["LoadBalancerArn"]])
            self.apply_attributes(current["LoadBalancerArn"], {})
            return current
        arn = current["LoadBalancerArn"]
        self.before["load_balancer"] = {
            "subnets": sorted(az["SubnetId"] for az in current["AvailabilityZones"]),
            "security_groups": sorted(current.get("SecurityGroups") or []),
        }
        if current.get("Scheme") != self.params["scheme"]:
            raise Refused(f"Load balancer {name} is {current.get('Scheme')}, not {self.params['scheme']}: replace it")
        if self.before["load_balancer"]["subnets"] != sorted(self.params["subnets"]):
            self.write(f"subnets of {name}", "set_subnets", LoadBalancerArn=arn, Subnets=self.params["subnets"])
        if self.before["load_balancer"]["security_groups"] != sorted(self.params["security_groups"]):
            self.write(
                f"security groups of {name}",
                "set_security_groups",
                LoadBalancerArn=arn,
                SecurityGroups=self.params["security_groups"],
            )
        self.apply_attributes(arn, attributes(self.client, "describe_load_balancer_attributes", LoadBalancerArn=arn))
        self.want_tags(arn, self.params["tags"], f"load balancer {name}")
        return current

    def apply_attributes(self, arn: str, current: Mapping[str, str]) -> None:
        changes = lb_attribute_changes(current, self.params)
        if changes:
            self.write(
                f"attributes of {self.params['name']}: {', '.join(c['Key'] for c in changes)}",
                "modify_load_balancer_attributes",
                LoadBalancerArn=arn,
                Attributes=changes,
            )

    # ---- listeners ----

    def listeners(self, lb: Mapping[str, Any], group_arns: Mapping[str, str]) -> Dict[int, str]:
        current = {}
        if not lb.get("planned"):
            current = {
                listener["Port"]: listener
                for listener in paginated_query_with_retries(
                    self.client, "describe_listeners", ELBV2_RETRY, LoadBalancerArn=lb["LoadBalancerArn"]
                )["Listeners"]
            }
        arns = {}
        for listener in self.params["listeners"]:
            arns[listener["port"]] = self.listener(
                lb["LoadBalancerArn"], listener, current.get(listener["port"]), group_arns
            )
        return arns

    def listener(self, lb_arn: str, want: Mapping[str, Any], current: Optional[Dict[str, Any]], groups) -> str:
        port = want["port"]
        refs = {ref: groups.get(ref, ref) for ref in target_group_refs(want["default_actions"])}
        unknown = [ref for ref, arn in refs.items() if not arn.startswith("arn:")]
        if unknown:
            raise Refused(f"Listener {port} forwards to {', '.join(unknown)}, not a target group of this module")
        actions = resolve_actions(want["default_actions"], refs)
        tags = dict(self.params["tags"], **(want.get("tags") or {}))
        https = want["protocol"] == "HTTPS"
        if current is None:
            params: Dict[str, Any] = {
                "LoadBalancerArn": lb_arn,
                "Port": port,
                "Protocol": want["protocol"],
                "DefaultActions": actions,
                "Tags": ansible_dict_to_boto3_tag_list(tags),
            }
            if https:
                params["Certificates"] = [{"CertificateArn": want["certificate_arn"]}]
                if want.get("ssl_policy"):
                    params["SslPolicy"] = want["ssl_policy"]
            created = self.write(f"create listener {port}", "create_listener", **params)
            return (
                f"{PLANNED_PREFIX}listener/planned/{port}"
                if created is None
                else created["Listeners"][0]["ListenerArn"]
            )
        arn = current["ListenerArn"]
        changes: Dict[str, Any] = {}
        if current["Protocol"] != want["protocol"]:
            changes["Protocol"] = want["protocol"]
        if https:
            certificate = (current.get("Certificates") or [{}])[0].get("CertificateArn")
            if "Protocol" in changes or certificate != want["certificate_arn"]:
                changes["Certificates"] = [{"CertificateArn": want["certificate_arn"]}]
            if want.get("ssl_policy") and (current.get("SslPolicy") != want["ssl_policy"] or "Protocol" in changes):
                changes["SslPolicy"] = want["ssl_policy"]
        if (
            not want["default_actions_on_create_only"]
            and normalize_actions(current.get("DefaultActions") or []) != actions
        ):
            changes["DefaultActions"] = actions
        if changes:
            self.write(f"listener {port}: {', '.join(sorted(changes))}", "modify_listener", ListenerArn=arn, **changes)
        self.want_tags(arn, tags, f"listener {port}", purge=want["purge_tags"])
        return arn

    # ---- tags, in one read ----

    def apply_tags(self) -> None:
        current = tags_of(self.client, list(self.tags)) if self.tags else {}
        for arn, spec in self.tags.items():
            to_set, to_unset = compare_aws_tags(current.get(arn, {}), spec["want"], purge_tags=spec["purge"])
            if to_unset:
                self.write(
                    f"untag {spec['label']}: {', '.join(sorted(to_unset))}",
                    "remove_tags",
                    ResourceArns=[arn],
                    TagKeys=to_unset,
                )
            if to_set:
                self.write(
                    f"tag {spec['label']}: {', '.join(sorted(to_set))}",
                    "add_tags",
                    ResourceArns=[arn],
                    Tags=ansible_dict_to_boto3_tag_list(to_set),
                )

    def converge(self) -> Dict[str, Any]:
        groups = self.target_groups()
        lb = self.load_balancer()
        listeners = self.listeners(lb, groups)
        self.apply_tags()
        self.after["load_balancer"] = {
            "subnets": sorted(self.params["subnets"]),
            "security_groups": sorted(self.params["security_groups"]),
        }
        return {
            "load_balancer": {
                "arn": lb["LoadBalancerArn"],
                "name": self.params["name"],
                "dns_name": lb.get("DNSName", ""),
                "canonical_hosted_zone_id": lb.get("CanonicalHostedZoneId", ""),
            },
            "target_groups": groups,
            "listeners": {str(port): arn for port, arn in listeners.items()},
            "changes": self.changes,
            "diff": {"before": self.before, "after": self.after},
        }
