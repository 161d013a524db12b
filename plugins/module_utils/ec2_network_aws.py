# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The AWS side of the ``vpc_network`` module: read the network in one call per resource type, converge it
towards what is asked (the decisions are ``ec2_network``'s), and remove what carries the environment's tags.

Every write is skipped in check mode; a resource that would be created gets an id of zeros there, so that the
rest of the plan (routes, associations, rules that refer to it) can still be made and reported.
"""

from typing import Any, Dict, List, Mapping, Optional

from ansible_collections.amazon.aws.plugins.module_utils.botocore import paginated_query_with_retries
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list

from ansible_collections.ecs_production.platform.plugins.module_utils import ec2_network as plan
from ansible_collections.ecs_production.platform.plugins.module_utils.common import Refused

# Right after a creation EC2 may answer NotFound for a moment (eventual consistency): retry those too.
EC2_RETRY = AWSRetry.jittered_backoff(
    retries=10,
    catch_extra_error_codes=[
        "InvalidVpcID.NotFound",
        "InvalidSubnetID.NotFound",
        "InvalidRouteTableID.NotFound",
        "InvalidGroup.NotFound",
        "InvalidInternetGatewayID.NotFound",
    ],
)
PLANNED = {
    "vpc": "vpc-00000000000000000",
    "igw": "igw-00000000000000000",
    "subnet": "subnet-0000000000000000{}",
    "rtb": "rtb-0000000000000000{}",
    "sg": "sg-0000000000000000{}",
}
DELETE_INTERVAL = 10


class Ec2ErrorHandler(AWSErrorHandler):
    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code(
            [
                "InvalidVpcID.NotFound",
                "InvalidSubnetID.NotFound",
                "InvalidRouteTableID.NotFound",
                "InvalidGroup.NotFound",
                "InvalidInternetGatewayID.NotFound",
                "InvalidAssociationID.NotFound",
                "InvalidPermission.NotFound",
                "InvalidRoute.NotFound",
            ]
        )


@Ec2ErrorHandler.list_error_handler("describe the network", default_value=[])
def describe(ec2, operation: str, key: str, **params) -> List[Dict[str, Any]]:
    """Every item of a Describe* call, all pages."""
    return paginated_query_with_retries(ec2, operation, EC2_RETRY, **params)[key]


@Ec2ErrorHandler.common_error_handler("change the network")
def call(ec2, operation: str, **params) -> Dict[str, Any]:
    return getattr(ec2, operation)(aws_retry=True, **params)


@Ec2ErrorHandler.deletion_error_handler("delete from the network")
def delete(ec2, operation: str, **params) -> bool:
    getattr(ec2, operation)(aws_retry=True, **params)
    return True


def tag_specification(kind: str, tags: Mapping[str, str]) -> List[Dict[str, Any]]:
    return [{"ResourceType": kind, "Tags": ansible_dict_to_boto3_tag_list(tags)}]


def name_of(resource: Mapping[str, Any]) -> str:
    return plan.tag_dict(resource.get("Tags")).get("Name", "")


class Converger:
    """Brings the network to what the module's parameters ask, recording each change."""

    def __init__(self, module, ec2):
        self.module = module
        self.ec2 = ec2
        self.params = module.params
        self.check = module.check_mode
        self.changes: List[str] = []
        self.name = self.params["name"]
        self.tags = dict(self.params["tags"])
        self.before: Dict[str, Any] = {}
        self.after: Dict[str, Any] = {}

    def write(self, change: str, operation: str, **params) -> Optional[Dict[str, Any]]:
        self.changes.append(change)
        return None if self.check else call(self.ec2, operation, **params)

    def ensure_tags(
        self, resource_id: str, current: Optional[List[Dict[str, str]]], desired: Mapping[str, str], label: str
    ):
        to_set, to_unset = plan.tag_changes(plan.tag_dict(current), desired)
        if to_set:
            self.write(
                f"tag {label}: {', '.join(sorted(to_set))}",
                "create_tags",
                Resources=[resource_id],
                Tags=ansible_dict_to_boto3_tag_list(to_set),
            )
        if to_unset:
            self.write(
                f"untag {label}: {', '.join(to_unset)}",
                "delete_tags",
                Resources=[resource_id],
                Tags=[{"Key": key} for key in to_unset],
            )

    def named(self, suffix: str, **extra: str) -> Dict[str, str]:
        return dict(self.tags, Name=f"{self.name}-{suffix}", **extra)

    # ---- the parts, in the order they depend on each other ----

    def zones(self) -> List[str]:
        zones = list(self.params["availability_zones"])
        needed = max(len(tier["cidrs"]) for tier in self.params["tiers"])
        if not zones:
            found = call(
                self.ec2,
                "describe_availability_zones",
                Filters=[
                    {"Name": "state", "Values": ["available"]},
                    {"Name": "zone-type", "Values": ["availability-zone"]},
                ],
            )["AvailabilityZones"]
            zones = sorted(zone["ZoneName"] for zone in found)[:needed]
        if len(zones) < needed:
            raise Refused(
                f"The region offers {len(zones)} usable availability zones ({', '.join(zones)}), fewer than "
                f"the {needed} subnets of the largest tier"
            )
        return zones

    def vpc(self) -> str:
        desired = self.named("vpc")
        found = describe(self.ec2, "describe_vpcs", "Vpcs", Filters=[{"Name": "tag:Name", "Values": [desired["Name"]]}])
        if len(found) > 1:
            raise Refused(f"{len(found)} VPCs are named {desired['Name']}: {', '.join(v['VpcId'] for v in found)}")
        if not found:
            self.before["vpc"] = None
            created = self.write(
                f"create VPC {desired['Name']} {self.params['cidr_block']}",
                "create_vpc",
                CidrBlock=self.params["cidr_block"],
                TagSpecifications=tag_specification("vpc", desired),
            )
            vpc_id = PLANNED["vpc"] if created is None else created["Vpc"]["VpcId"]
            if created is not None:
                self.ec2.get_waiter("vpc_available").wait(VpcIds=[vpc_id])
            self.dns(vpc_id, {"EnableDnsSupport": True, "EnableDnsHostnames": False})
        else:
            vpc = found[0]
            vpc_id = vpc["VpcId"]
            if vpc["CidrBlock"] != self.params["cidr_block"]:
                raise Refused(
                    f"VPC {desired['Name']} ({vpc_id}) has the CIDR block {vpc['CidrBlock']}, not "
                    f"{self.params['cidr_block']}: a VPC's primary block cannot change"
                )
            self.before["vpc"] = {"id": vpc_id, "cidr": vpc["CidrBlock"]}
            self.ensure_tags(vpc_id, vpc.get("Tags"), desired, f"VPC {desired['Name']}")
            current = {
                key: call(self.ec2, "describe_vpc_attribute", VpcId=vpc_id, Attribute=attribute)[key]["Value"]
                for key, attribute in (
                    ("EnableDnsSupport", "enableDnsSupport"),
                    ("EnableDnsHostnames", "enableDnsHostnames"),
                )
            }
            self.dns(vpc_id, current)
        self.after["vpc"] = {"id": vpc_id, "cidr": self.params["cidr_block"]}
        return vpc_id

    def dns(self, vpc_id: str, current: Mapping[str, bool]) -> None:
        for key, option in (("EnableDnsSupport", "dns_support"), ("EnableDnsHostnames", "dns_hostnames")):
            if current[key] != self.params[option]:
                self.write(
                    f"set {option} of the VPC to {self.params[option]}",
                    "modify_vpc_attribute",
                    VpcId=vpc_id,
                    **{key: {"Value": self.params[option]}},
                )

    def internet_gateway(self, vpc_id: str) -> str:
        if not any(tier["default_route"] == "internet_gateway" for tier in self.params["tiers"]):
            return ""
        desired = self.named("igw")
        found = describe(
            self.ec2,
            "describe_internet_gateways",
            "InternetGateways",
            Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}],
        )
        if found:
            self.ensure_tags(found[0]["InternetGatewayId"], found[0].get("Tags"), desired, desired["Name"])
            return found[0]["InternetGatewayId"]
        created = self.write(
            f"create internet gateway {desired['Name']}",
            "create_internet_gateway",
            TagSpecifications=tag_specification("internet-gateway", desired),
        )
        if created is None:
            return PLANNED["igw"]
        igw_id = created["InternetGateway"]["InternetGatewayId"]
        call(self.ec2, "attach_internet_gateway", InternetGatewayId=igw_id, VpcId=vpc_id)
        return igw_id

    def subnets(self, vpc_id: str, zones: List[str]) -> Dict[str, List[str]]:
        found = {
            s["CidrBlock"]: s
            for s in describe(self.ec2, "describe_subnets", "Subnets", Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])
        }
        self.before["subnets"] = sorted(found)
        ids: Dict[str, List[str]] = {tier["name"]: [] for tier in self.params["tiers"]}
        for index, want in enumerate(plan.subnet_layout(self.params["tiers"], zones)):
            desired = self.named(f"{want['tier']}-{want['az']}", Tier=want["tier"])
            subnet = found.get(want["cidr"])
            if subnet is None:
                created = self.write(
                    f"create subnet {desired['Name']} {want['cidr']}",
                    "create_subnet",
                    VpcId=vpc_id,
                    CidrBlock=want["cidr"],
                    AvailabilityZone=want["az"],
                    TagSpecifications=tag_specification("subnet", desired),
                )
                subnet_id = PLANNED["subnet"].format(index) if created is None else created["Subnet"]["SubnetId"]
                if created is not None:
                    self.ec2.get_waiter("subnet_available").wait(SubnetIds=[subnet_id])
                subnet = {"SubnetId": subnet_id, "MapPublicIpOnLaunch": False, "AvailabilityZone": want["az"]}
            elif subnet["AvailabilityZone"] != want["az"]:
                raise Refused(
                    f"Subnet {subnet['SubnetId']} ({want['cidr']}) is in {subnet['AvailabilityZone']}, not "
                    f"{want['az']}: a subnet cannot move; delete it or change the tier's CIDRs"
                )
            else:
                self.ensure_tags(subnet["SubnetId"], subnet.get("Tags"), desired, f"subnet {desired['Name']}")
            if subnet["MapPublicIpOnLaunch"] != want["map_public_ip"]:
                self.write(
                    f"set map_public_ip of {desired['Name']} to {want['map_public_ip']}",
                    "modify_subnet_attribute",
                    SubnetId=subnet["SubnetId"],
                    MapPublicIpOnLaunch={"Value": want["map_public_ip"]},
                )
            ids[want["tier"]].append(subnet["SubnetId"])
        self.after["subnets"] = sorted(w["cidr"] for w in plan.subnet_layout(self.params["tiers"], zones))
        return ids

    def route_tables(self, vpc_id: str, igw_id: str, subnet_ids: Mapping[str, List[str]]) -> Dict[str, str]:
        tables = describe(
            self.ec2, "describe_route_tables", "RouteTables", Filters=[{"Name": "vpc-id", "Values": [vpc_id]}]
        )
        by_name = {name_of(t): t for t in tables if name_of(t)}
        ids = {}
        for index, tier in enumerate(self.params["tiers"]):
            if tier["default_route"] == "external":
                continue  # routed by someone else (per-zone tables towards NAT gateways, say): left alone
            desired = self.named(tier["name"], Tier=tier["name"])
            table = by_name.get(desired["Name"])
            if table is None:
                created = self.write(
                    f"create route table {desired['Name']}",
                    "create_route_table",
                    VpcId=vpc_id,
                    TagSpecifications=tag_specification("route-table", desired),
                )
                table_id = PLANNED["rtb"].format(index) if created is None else created["RouteTable"]["RouteTableId"]
                table = {"RouteTableId": table_id, "Routes": [], "Associations": []}
                tables.append(table)
            else:
                self.ensure_tags(table["RouteTableId"], table.get("Tags"), desired, f"route table {desired['Name']}")
            ids[tier["name"]] = table["RouteTableId"]
            wanted = {plan.ANY_IPV4: igw_id} if tier["default_route"] == "internet_gateway" else {}
            self.routes(table, wanted, desired["Name"])
            self.associations(table["RouteTableId"], subnet_ids[tier["name"]], tables, desired["Name"])
        return ids

    def routes(self, table: Mapping[str, Any], wanted: Mapping[str, str], label: str) -> None:
        routes = plan.plan_routes(plan.managed_routes(table.get("Routes") or []), wanted)
        table_id = table["RouteTableId"]
        for dest, target in routes.create.items():
            self.write(
                f"route {dest} of {label} to {target}",
                "create_route",
                RouteTableId=table_id,
                DestinationCidrBlock=dest,
                GatewayId=target,
            )
        for dest, target in routes.replace.items():
            self.write(
                f"route {dest} of {label} to {target} instead",
                "replace_route",
                RouteTableId=table_id,
                DestinationCidrBlock=dest,
                GatewayId=target,
            )
        for dest in routes.delete:
            self.write(
                f"remove route {dest} of {label}", "delete_route", RouteTableId=table_id, DestinationCidrBlock=dest
            )

    def associations(self, table_id: str, subnets: List[str], tables: List[Mapping[str, Any]], label: str) -> None:
        moves = plan.plan_associations(table_id, subnets, tables)
        for subnet in moves.associate:
            self.write(
                f"associate {subnet} with {label}", "associate_route_table", RouteTableId=table_id, SubnetId=subnet
            )
        for subnet, association in moves.move.items():
            self.write(
                f"associate {subnet} with {label} instead",
                "replace_route_table_association",
                AssociationId=association,
                RouteTableId=table_id,
            )
        for subnet, association in moves.disassociate.items():
            self.write(f"disassociate {subnet} from {label}", "disassociate_route_table", AssociationId=association)

    def security_groups(self, vpc_id: str) -> Dict[str, str]:
        groups = self.params["security_groups"]
        found = {
            g["GroupName"]: g
            for g in describe(
                self.ec2, "describe_security_groups", "SecurityGroups", Filters=[{"Name": "vpc-id", "Values": [vpc_id]}]
            )
        }
        ids: Dict[str, str] = {}
        for index, group in enumerate(groups):
            full = f"{self.name}-{group['name']}"
            desired = self.named(group["name"])
            if full in found:
                ids[group["name"]] = found[full]["GroupId"]
                self.ensure_tags(found[full]["GroupId"], found[full].get("Tags"), desired, f"sg {group['name']}")
                continue
            created = self.write(
                f"create security group {full}",
                "create_security_group",
                GroupName=full,
                Description=group["description"],
                VpcId=vpc_id,
                TagSpecifications=tag_specification("security-group", desired),
            )
            ids[group["name"]] = PLANNED["sg"].format(index) if created is None else created["GroupId"]
            # A new group allows all egress: its current rules, which the plan below revokes unless asked for.
            found[full] = {
                "IpPermissions": [],
                "IpPermissionsEgress": [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": plan.ANY_IPV4}]}],
            }
        names = {group_id: name for name, group_id in ids.items()}
        prefix_lists = self.prefix_lists(plan.prefix_list_names(groups))
        self.before["security_groups"] = {}
        self.after["security_groups"] = {}
        for group in groups:
            current = found[f"{self.name}-{group['name']}"]
            self.rules(ids[group["name"]], group, current, names, prefix_lists)
        return ids

    def prefix_lists(self, wanted: List[str]) -> Dict[str, str]:
        """{name: id} of the AWS-managed prefix lists the rules name (com.amazonaws.REGION.s3)."""
        if not wanted:
            return {}
        found = describe(
            self.ec2,
            "describe_managed_prefix_lists",
            "PrefixLists",
            Filters=[{"Name": "prefix-list-name", "Values": wanted}],
        )
        ids = {item["PrefixListName"]: item["PrefixListId"] for item in found}
        missing = [name for name in wanted if name not in ids]
        if missing:
            raise Refused(f"No managed prefix list is named {', '.join(missing)} in this region")
        return ids

    def rules(
        self,
        group_id: str,
        group: Mapping[str, Any],
        current: Mapping[str, Any],
        names: Mapping[str, str],
        prefix_lists: Optional[Mapping[str, str]] = None,
    ):
        label = group["name"]
        before, after = {}, {}
        for direction, key in (("ingress", "IpPermissions"), ("egress", "IpPermissionsEgress")):
            have = plan.current_atoms(current.get(key) or [])
            want = plan.desired_atoms(group[direction] or [], {n: i for i, n in names.items()}, prefix_lists)
            before[direction] = sorted(atom.label(names) for atom in have)
            after[direction] = sorted(atom.label(names) for atom in want)
            rules = plan.plan_rules(have, want)
            # Revoked first: a rule that changes peer or ports is one revoke and one authorize. A revocation
            # names the rule without its description.
            for verb, atoms, operation in (
                ("revoke", dict.fromkeys(rules.revoke, ""), f"revoke_security_group_{direction}"),
                ("authorize", rules.authorize, f"authorize_security_group_{direction}"),
                ("describe", rules.describe, f"update_security_group_rule_descriptions_{direction}"),
            ):
                if atoms:
                    self.write(
                        f"{verb} sg {label} {direction} {', '.join(sorted(atom.label(names) for atom in atoms))}",
                        operation,
                        GroupId=group_id,
                        IpPermissions=[atom.permission(description) for atom, description in atoms.items()],
                    )
        self.before["security_groups"][label] = before if current.get("GroupId") else None
        self.after["security_groups"][label] = after

    def converge(self) -> Dict[str, Any]:
        zones = self.zones()
        vpc_id = self.vpc()
        igw_id = self.internet_gateway(vpc_id)
        subnet_ids = self.subnets(vpc_id, zones)
        route_tables = self.route_tables(vpc_id, igw_id, subnet_ids)
        groups = self.security_groups(vpc_id)
        return {
            "vpc_id": vpc_id,
            "availability_zones": zones,
            "subnets": subnet_ids,
            "route_tables": route_tables,
            "internet_gateway_id": igw_id,
            "security_groups": groups,
            "changes": self.changes,
            "diff": {"before": self.before, "after": self.after},
        }


# ---- removal ----


class Remover:
    """Deletes everything carrying all of the module's tags, in dependency order."""

    def __init__(self, module, ec2, clock):
        self.ec2 = ec2
        self.clock = clock
        self.check = module.check_mode
        self.filters = [{"Name": f"tag:{key}", "Values": [value]} for key, value in module.params["tags"].items()]
        self.deadline = clock.monotonic() + module.params["delete_timeout"]
        self.changes: List[str] = []
        self.deleted: Dict[str, List[str]] = {}

    def find(self, operation: str, key: str) -> List[Dict[str, Any]]:
        return describe(self.ec2, operation, key, Filters=self.filters)

    def step(self, change: str, operation: str, **params) -> None:
        """A change that must happen before the deletions it unblocks; retried like them."""
        self.changes.append(change)
        if not self.check:
            self.retry(lambda: delete(self.ec2, operation, **params), change)

    def gone(self, kind: str, resource_id: str, operation: str, **params) -> None:
        self.deleted.setdefault(kind, []).append(resource_id)
        self.step(f"delete {kind} {resource_id}", operation, **params)

    def retry(self, action, label: str) -> None:
        """Run a deletion, again every DELETE_INTERVAL seconds while AWS answers DependencyViolation (network
        interfaces of a deleted load balancer or task linger for minutes), until the deadline."""
        while True:
            try:
                action()
                return
            except AnsibleAWSError as error:
                code = getattr(error.exception, "response", {}).get("Error", {}).get("Code", "")
                if code != "DependencyViolation":
                    raise
                if self.clock.monotonic() >= self.deadline:
                    raise Refused(
                        f"Could not {label}: AWS still reports dependents after the delete_timeout"
                    ) from error
            self.clock.sleep(DELETE_INTERVAL)

    def remove(self) -> Dict[str, Any]:
        groups = self.find("describe_security_groups", "SecurityGroups")
        for group in groups:  # they refer to each other: empty them all first
            for direction, key in (("ingress", "IpPermissions"), ("egress", "IpPermissionsEgress")):
                if group.get(key):
                    self.step(
                        f"revoke every {direction} rule of {group['GroupId']}",
                        f"revoke_security_group_{direction}",
                        GroupId=group["GroupId"],
                        IpPermissions=group[key],
                    )
        for group in groups:
            self.gone("security_group", group["GroupId"], "delete_security_group", GroupId=group["GroupId"])
        for table in self.find("describe_route_tables", "RouteTables"):
            for association in table.get("Associations") or []:
                if not association.get("Main"):
                    self.step(
                        f"disassociate {association.get('SubnetId')} from {table['RouteTableId']}",
                        "disassociate_route_table",
                        AssociationId=association["RouteTableAssociationId"],
                    )
            self.gone("route_table", table["RouteTableId"], "delete_route_table", RouteTableId=table["RouteTableId"])
        for subnet in self.find("describe_subnets", "Subnets"):
            self.gone("subnet", subnet["SubnetId"], "delete_subnet", SubnetId=subnet["SubnetId"])
        for igw in self.find("describe_internet_gateways", "InternetGateways"):
            igw_id = igw["InternetGatewayId"]
            for attachment in igw.get("Attachments") or []:
                self.step(
                    f"detach {igw_id} from {attachment['VpcId']}",
                    "detach_internet_gateway",
                    VpcId=attachment["VpcId"],
                    InternetGatewayId=igw_id,
                )
            self.gone("internet_gateway", igw_id, "delete_internet_gateway", InternetGatewayId=igw_id)
        for vpc in self.find("describe_vpcs", "Vpcs"):
            self.gone("vpc", vpc["VpcId"], "delete_vpc", VpcId=vpc["VpcId"])
        return {
            "vpc_id": "",
            "changes": self.changes,
            "deleted": self.deleted,
            "diff": {"before": self.deleted, "after": {}},
        }


def remove_network(module, ec2, clock) -> Dict[str, Any]:
    return Remover(module, ec2, clock).remove()
