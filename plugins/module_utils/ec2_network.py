# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the ``vpc_network`` module decides, as pure functions over the EC2 API's shapes (no AWS call):
the checks of its input, the security group rules as single permissions ("atoms") and what to authorize
and revoke, the tags, the routes and the subnet associations to change.

A rule atom is one (protocol, from port, to port, peer) triple of one direction, the unit in which EC2
authorizes and revokes; a rule of the module's input (several ports, several peers) expands to several.
"""

import ipaddress
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Tuple

PROTOCOLS = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "all": "-1", "-1": "-1"}
DEFAULT_ROUTES = ("internet_gateway", "none", "external")
ANY_IPV4 = "0.0.0.0/0"
MAX_PORT = 65535


class Atom(NamedTuple):
    """One permission of a security group: a protocol, a port range (None for every port) and one peer."""

    protocol: str
    from_port: Optional[int]
    to_port: Optional[int]
    kind: str  # "cidr", "cidr6", "group" or "prefix_list"
    peer: str

    def permission(self, description: str = "") -> Dict[str, Any]:
        """The IpPermission that authorizes (or revokes) exactly this atom."""
        perm: Dict[str, Any] = {"IpProtocol": self.protocol}
        if self.from_port is not None:
            perm.update(FromPort=self.from_port, ToPort=self.to_port)
        entry: Dict[str, Any] = {}
        if description:
            entry["Description"] = description
        if self.kind == "cidr":
            perm["IpRanges"] = [dict(entry, CidrIp=self.peer)]
        elif self.kind == "cidr6":
            perm["Ipv6Ranges"] = [dict(entry, CidrIpv6=self.peer)]
        elif self.kind == "group":
            perm["UserIdGroupPairs"] = [dict(entry, GroupId=self.peer)]
        else:
            perm["PrefixListIds"] = [dict(entry, PrefixListId=self.peer)]
        return perm

    def label(self, names: Optional[Mapping[str, str]] = None) -> str:
        """Readable, for diffs: "tcp 8000 from sg alb", "all from 0.0.0.0/0"."""
        ports = (
            ""
            if self.from_port is None
            else f" {self.from_port}" + (f"-{self.to_port}" if self.to_port != self.from_port else "")
        )
        peer = f"sg {(names or {}).get(self.peer, self.peer)}" if self.kind == "group" else self.peer
        protocol = "all" if self.protocol == "-1" else self.protocol
        return f"{protocol}{ports} {peer}"


# ---- input ----


def parse_ports(value: Any) -> Optional[Tuple[int, int]]:
    """A port (8000, "8000") or a range ("1024-2048") as (from, to); None when it is neither."""
    text = str(value).strip()
    low, dash, high = text.partition("-")
    if not low.isdigit() or (dash and not high.isdigit()):
        return None
    first, last = int(low), int(high or low)
    if not 0 <= first <= last <= MAX_PORT:
        return None
    return first, last


def _network(value: Any) -> Optional[ipaddress.IPv4Network]:
    try:
        network = ipaddress.ip_network(str(value), strict=True)
    except ValueError:
        return None
    return network if network.version == 4 else None


def check_params(params: Mapping[str, Any]) -> List[str]:
    """Problems with the input that AnsibleModule's own checks do not catch; found before any AWS call."""
    if params.get("state") == "absent":
        return [] if params.get("tags") else ["tags must identify what to remove (Project, Environment, ManagedBy...)"]
    problems = []
    vpc = _network(params.get("cidr_block"))
    if vpc is None or not 16 <= vpc.prefixlen <= 28:
        problems.append(
            f"cidr_block {params.get('cidr_block')!r} must be an IPv4 network from /16 to /28 (e.g. 10.0.0.0/16)"
        )
    zones = params.get("availability_zones") or []
    if len(set(zones)) != len(zones):
        problems.append(f"availability_zones lists a zone twice: {zones}")
    tiers = params.get("tiers") or []
    if not tiers:
        problems.append("tiers must name at least one tier of subnets")
    seen: List[Tuple[str, ipaddress.IPv4Network]] = []
    for tier in tiers:
        problems.extend(_check_tier(tier, vpc, zones, seen))
    names = [tier["name"] for tier in tiers]
    if len(set(names)) != len(names):
        problems.append(f"tiers: each tier needs a name of its own, not {names}")
    groups = [group["name"] for group in params.get("security_groups") or []]
    if len(set(groups)) != len(groups):
        problems.append(f"security_groups: each group needs a name of its own, not {groups}")
    for group in params.get("security_groups") or []:
        for direction in ("ingress", "egress"):
            for index, rule in enumerate(group.get(direction) or []):
                problems.extend(_check_rule(rule, f"security_groups.{group['name']}.{direction}[{index}]", groups))
    return problems


def _check_tier(tier: Mapping[str, Any], vpc, zones: List[str], seen: List) -> List[str]:
    problems = []
    where = f"tiers.{tier.get('name')}"
    cidrs = tier.get("cidrs") or []
    if not cidrs:
        problems.append(f"{where}.cidrs must list one subnet CIDR per availability zone")
    if zones and len(cidrs) > len(zones):
        problems.append(f"{where}.cidrs has {len(cidrs)} subnets for {len(zones)} availability zones")
    for cidr in cidrs:
        network = _network(cidr)
        if network is None:
            problems.append(f"{where}.cidrs: {cidr!r} is not an IPv4 network address (such as 10.0.1.0/24)")
            continue
        if vpc is not None and not network.subnet_of(vpc):
            problems.append(f"{where}.cidrs: {cidr} is not inside the VPC's {vpc}")
        for other_where, other in seen:
            if network.overlaps(other):
                problems.append(f"{where}.cidrs: {cidr} overlaps {other} of {other_where}")
        seen.append((where, network))
    if tier.get("default_route", "none") not in DEFAULT_ROUTES:
        problems.append(f"{where}.default_route must be one of {', '.join(DEFAULT_ROUTES)}")
    return problems


def _check_rule(rule: Mapping[str, Any], where: str, groups: List[str]) -> List[str]:
    problems = []
    protocol = str(rule.get("protocol", "tcp"))
    if protocol not in PROTOCOLS:
        problems.append(f"{where}.protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    ports = rule.get("ports") or []
    if PROTOCOLS.get(protocol) in ("tcp", "udp") and not ports:
        problems.append(f"{where}.ports must list ports or ranges for {protocol}")
    for port in ports:
        if parse_ports(port) is None:
            problems.append(f"{where}.ports: {port!r} is not a port or a range such as 1024-2048 (0-{MAX_PORT})")
    peers = list(rule.get("cidrs") or []) + list(rule.get("groups") or []) + list(rule.get("prefix_lists") or [])
    if not peers:
        problems.append(f"{where} names no peer: give cidrs, groups or prefix_lists")
    for prefix_list in rule.get("prefix_lists") or []:
        if not str(prefix_list).startswith(("pl-", "com.amazonaws.")):
            problems.append(
                f"{where}.prefix_lists: {prefix_list!r} is neither a prefix list id (pl-...) nor the name of an "
                "AWS-managed one (com.amazonaws.REGION.s3)"
            )
    for cidr in rule.get("cidrs") or []:
        if _network(cidr) is None:
            problems.append(f"{where}.cidrs: {cidr!r} is not an IPv4 network address")
    for group in rule.get("groups") or []:
        if group not in groups:
            problems.append(f"{where}.groups: {group!r} is not one of security_groups ({', '.join(groups)})")
    return problems


# ---- security group rules ----


def desired_atoms(
    rules: Iterable[Mapping[str, Any]],
    group_ids: Mapping[str, str],
    prefix_list_ids: Optional[Mapping[str, str]] = None,
) -> Dict[Atom, str]:
    """{atom: description} of the module's rules, peers named by group name resolved through group_ids, prefix
    lists named by their AWS-managed name resolved through prefix_list_ids (ids pass as they are)."""
    atoms: Dict[Atom, str] = {}
    for rule in rules:
        protocol = PROTOCOLS[str(rule.get("protocol", "tcp"))]
        ranges: List[Tuple[Optional[int], Optional[int]]] = [(None, None)]
        if protocol != "-1":
            ranges = [parse_ports(port) for port in rule.get("ports") or []] or [(None, None)]
        description = rule.get("description") or ""
        peers = [("cidr", cidr) for cidr in rule.get("cidrs") or []]
        peers += [("group", group_ids[name]) for name in rule.get("groups") or []]
        peers += [("prefix_list", (prefix_list_ids or {}).get(name, name)) for name in rule.get("prefix_lists") or []]
        for first, last in ranges:
            for kind, peer in peers:
                atoms[Atom(protocol, first, last, kind, peer)] = description
    return atoms


def current_atoms(permissions: Iterable[Mapping[str, Any]]) -> Dict[Atom, str]:
    """{atom: description} of a security group's IpPermissions (or IpPermissionsEgress) as EC2 describes them."""
    atoms: Dict[Atom, str] = {}
    for perm in permissions:
        protocol = str(perm.get("IpProtocol"))
        first = perm.get("FromPort") if protocol != "-1" else None
        last = perm.get("ToPort") if protocol != "-1" else None
        for entry in perm.get("IpRanges") or []:
            atoms[Atom(protocol, first, last, "cidr", entry["CidrIp"])] = entry.get("Description", "")
        for entry in perm.get("Ipv6Ranges") or []:
            atoms[Atom(protocol, first, last, "cidr6", entry["CidrIpv6"])] = entry.get("Description", "")
        for entry in perm.get("UserIdGroupPairs") or []:
            atoms[Atom(protocol, first, last, "group", entry["GroupId"])] = entry.get("Description", "")
        for entry in perm.get("PrefixListIds") or []:
            atoms[Atom(protocol, first, last, "prefix_list", entry["PrefixListId"])] = entry.get("Description", "")
    return atoms


class RulePlan(NamedTuple):
    authorize: Dict[Atom, str]
    revoke: Dict[Atom, str]
    describe: Dict[Atom, str]  # atoms kept whose description changes

    @property
    def empty(self) -> bool:
        return not (self.authorize or self.revoke or self.describe)


def plan_rules(current: Mapping[Atom, str], desired: Mapping[Atom, str]) -> RulePlan:
    """What to authorize, revoke and re-describe so that a group's rules of one direction are ``desired``."""
    return RulePlan(
        authorize={atom: d for atom, d in desired.items() if atom not in current},
        revoke={atom: d for atom, d in current.items() if atom not in desired},
        describe={atom: d for atom, d in desired.items() if atom in current and current[atom] != d},
    )


# ---- tags ----


def tag_dict(tags: Optional[Iterable[Mapping[str, str]]]) -> Dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in tags or []}


def tag_changes(current: Mapping[str, str], desired: Mapping[str, str]) -> Tuple[Dict[str, str], List[str]]:
    """(tags to set, keys to remove) so that a resource carries exactly ``desired`` (AWS's own aws: tags kept)."""
    to_set = {key: value for key, value in desired.items() if current.get(key) != value}
    to_unset = sorted(key for key in current if key not in desired and not key.startswith("aws:"))
    return to_set, to_unset


# ---- routes and associations ----


def managed_routes(routes: Iterable[Mapping[str, Any]]) -> Dict[str, str]:
    """{destination: target id} of the IPv4 routes created with CreateRoute (not the local or propagated ones)."""
    found = {}
    for route in routes:
        if route.get("Origin") != "CreateRoute" or "DestinationCidrBlock" not in route:
            continue
        target = route.get("GatewayId") or route.get("NatGatewayId") or route.get("NetworkInterfaceId") or ""
        target = target or route.get("TransitGatewayId") or route.get("VpcPeeringConnectionId") or "?"
        found[route["DestinationCidrBlock"]] = target
    return found


class RoutePlan(NamedTuple):
    create: Dict[str, str]
    replace: Dict[str, str]
    delete: List[str]

    @property
    def empty(self) -> bool:
        return not (self.create or self.replace or self.delete)


def plan_routes(current: Mapping[str, str], desired: Mapping[str, str]) -> RoutePlan:
    return RoutePlan(
        create={dest: target for dest, target in desired.items() if dest not in current},
        replace={dest: target for dest, target in desired.items() if dest in current and current[dest] != target},
        delete=sorted(dest for dest in current if dest not in desired),
    )


class AssociationPlan(NamedTuple):
    associate: List[str]  # subnets with no explicit association
    move: Dict[str, str]  # subnet -> its association id on another route table
    disassociate: Dict[str, str]  # subnet -> association id on this table, for subnets not wanted here

    @property
    def empty(self) -> bool:
        return not (self.associate or self.move or self.disassociate)


def plan_associations(table_id: str, subnets: Iterable[str], tables: Iterable[Mapping[str, Any]]) -> AssociationPlan:
    """How to make exactly ``subnets`` associated with route table ``table_id``, given every route table of the
    VPC as DescribeRouteTables returns them."""
    wanted = list(subnets)
    where: Dict[str, Tuple[str, str]] = {}  # subnet -> (table, association id)
    for table in tables:
        for association in table.get("Associations") or []:
            if association.get("SubnetId") and not association.get("Main"):
                where[association["SubnetId"]] = (table["RouteTableId"], association["RouteTableAssociationId"])
    return AssociationPlan(
        associate=[subnet for subnet in wanted if subnet not in where],
        move={subnet: where[subnet][1] for subnet in wanted if subnet in where and where[subnet][0] != table_id},
        disassociate={
            subnet: association
            for subnet, (table, association) in where.items()
            if table == table_id and subnet not in wanted
        },
    )


def subnet_layout(tiers: Iterable[Mapping[str, Any]], zones: List[str]) -> List[Dict[str, Any]]:
    """Every subnet the tiers ask for: {tier, cidr, az, map_public_ip}, the n-th CIDR of a tier in the n-th zone."""
    return [
        {"tier": tier["name"], "cidr": cidr, "az": zone, "map_public_ip": bool(tier.get("map_public_ip"))}
        for tier in tiers
        for cidr, zone in zip(tier["cidrs"], zones)  # noqa: B905 - a tier may use fewer zones than there are
    ]


def prefix_list_names(security_groups: Iterable[Mapping[str, Any]]) -> List[str]:
    """The AWS-managed prefix lists the rules name (com.amazonaws.REGION.s3), to resolve to their ids."""
    return sorted(
        {
            str(name)
            for group in security_groups
            for direction in ("ingress", "egress")
            for rule in group.get(direction) or []
            for name in rule.get("prefix_lists") or []
            if not str(name).startswith("pl-")
        }
    )
