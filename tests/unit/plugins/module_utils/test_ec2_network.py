"""Unit tests for module_utils/ec2_network.py, the decisions of the vpc_network module: its input checks,
security group rules as atoms and what to authorize or revoke, tags, routes and subnet associations."""

from __future__ import annotations

import pytest
from ansible_collections.ecs_production.platform.plugins.module_utils import ec2_network as net

GROUPS = {"alb": "sg-alb", "tasks": "sg-tasks", "db": "sg-db"}


def params(**overrides) -> dict:
    base = {
        "state": "present",
        "cidr_block": "10.0.0.0/16",
        "availability_zones": [],
        "tiers": [
            {"name": "public", "cidrs": ["10.0.1.0/24", "10.0.2.0/24"], "default_route": "internet_gateway"},
            {"name": "private", "cidrs": ["10.0.11.0/24", "10.0.12.0/24"], "default_route": "none"},
        ],
        "security_groups": [
            {"name": "alb", "ingress": [{"ports": [80, 443], "cidrs": ["0.0.0.0/0"]}], "egress": []},
            {"name": "tasks", "ingress": [{"ports": [8000], "groups": ["alb"]}], "egress": []},
        ],
        "tags": {"Project": "p"},
    }
    base.update(overrides)
    return base


def test_a_good_network_has_no_problem():
    assert net.check_params(params()) == []


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"cidr_block": "10.0.0.1/16"}, "cidr_block '10.0.0.1/16' must be an IPv4 network from /16 to /28"),
        ({"cidr_block": "10.0.0.0/8"}, "must be an IPv4 network from /16 to /28"),
        ({"availability_zones": ["a", "a"]}, "availability_zones lists a zone twice"),
        ({"tiers": []}, "tiers must name at least one tier of subnets"),
        (
            {"tiers": [{"name": "x", "cidrs": ["10.1.0.0/24"]}]},
            "tiers.x.cidrs: 10.1.0.0/24 is not inside the VPC's 10.0.0.0/16",
        ),
        ({"tiers": [{"name": "x", "cidrs": ["nope"]}]}, "tiers.x.cidrs: 'nope' is not an IPv4 network address"),
        (
            {"tiers": [{"name": "x", "cidrs": ["10.0.0.0/23"]}, {"name": "y", "cidrs": ["10.0.1.0/24"]}]},
            "tiers.y.cidrs: 10.0.1.0/24 overlaps 10.0.0.0/23 of tiers.x",
        ),
        (
            {"tiers": [{"name": "x", "cidrs": ["10.0.1.0/24", "10.0.2.0/24"]}], "availability_zones": ["a"]},
            "2 subnets for 1",
        ),
        (
            {"tiers": [{"name": "x", "cidrs": ["10.0.1.0/24"]}, {"name": "x", "cidrs": ["10.0.2.0/24"]}]},
            "name of its own",
        ),
    ],
)
def test_bad_networks_are_refused_with_the_reason(overrides, problem):
    assert any(problem in p for p in net.check_params(params(**overrides))), net.check_params(params(**overrides))


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"ports": [70000], "cidrs": ["0.0.0.0/0"]}, "70000 is not a port or a range"),
        ({"ports": ["200-100"], "cidrs": ["0.0.0.0/0"]}, "'200-100' is not a port or a range"),
        ({"ports": [80]}, "names no peer: give cidrs, groups or prefix_lists"),
        ({"ports": [443], "prefix_lists": ["s3"]}, "'s3' is neither a prefix list id (pl-...) nor the name"),
        ({"ports": [80], "groups": ["nope"]}, "'nope' is not one of security_groups (alb, tasks)"),
        ({"ports": [80], "cidrs": ["10.0.0.1/8"]}, "'10.0.0.1/8' is not an IPv4 network address"),
        ({"protocol": "tcp", "cidrs": ["0.0.0.0/0"]}, "ports must list ports or ranges for tcp"),
        ({"protocol": "sctp", "ports": [1], "cidrs": ["0.0.0.0/0"]}, "protocol must be one of"),
    ],
)
def test_bad_rules_are_refused_naming_the_group_direction_and_rule(rule, problem):
    groups = params()["security_groups"]
    groups[0]["egress"] = [rule]
    problems = net.check_params(params(security_groups=groups))
    assert any(p.startswith("security_groups.alb.egress[0]") and problem in p for p in problems), problems


def test_absent_only_needs_tags():
    assert net.check_params({"state": "absent", "tags": {"Project": "p"}}) == []
    assert net.check_params({"state": "absent", "tags": {}}) != []


@pytest.mark.parametrize(("value", "parsed"), [(80, (80, 80)), ("443", (443, 443)), ("1024-2048", (1024, 2048)),
                                               ("x", None), (-1, None), ("5-", None)])  # fmt: skip
def test_parse_ports(value, parsed):
    assert net.parse_ports(value) == parsed


def test_desired_rules_expand_to_one_atom_per_port_and_peer():
    atoms = net.desired_atoms(
        [{"ports": [80, "1000-1001"], "cidrs": ["0.0.0.0/0"], "groups": ["alb"], "description": "d"},
         {"protocol": "all", "cidrs": ["10.0.0.0/8"]}],
        GROUPS,
    )  # fmt: skip
    assert atoms == {
        net.Atom("tcp", 80, 80, "cidr", "0.0.0.0/0"): "d",
        net.Atom("tcp", 80, 80, "group", "sg-alb"): "d",
        net.Atom("tcp", 1000, 1001, "cidr", "0.0.0.0/0"): "d",
        net.Atom("tcp", 1000, 1001, "group", "sg-alb"): "d",
        net.Atom("-1", None, None, "cidr", "10.0.0.0/8"): "",
    }


def test_prefix_lists_are_peers_by_id_or_by_their_resolved_name():
    rules = [{"ports": [443], "prefix_lists": ["com.amazonaws.us-east-1.s3", "pl-0aaa"], "description": "s3"}]
    assert net.prefix_list_names([{"name": "tasks", "egress": rules, "ingress": []}]) == ["com.amazonaws.us-east-1.s3"]
    atoms = net.desired_atoms(rules, GROUPS, {"com.amazonaws.us-east-1.s3": "pl-63a5400a"})
    assert atoms == {
        net.Atom("tcp", 443, 443, "prefix_list", "pl-63a5400a"): "s3",
        net.Atom("tcp", 443, 443, "prefix_list", "pl-0aaa"): "s3",
    }
    # and read back as EC2 describes them, the same atoms: a re-run changes nothing
    described = [atom.permission("s3") for atom in atoms]
    assert net.plan_rules(net.current_atoms(described), atoms).empty


def test_an_external_tier_is_a_valid_default_route():
    app = {"name": "app", "cidrs": ["10.0.21.0/24", "10.0.22.0/24"], "default_route": "external"}
    tiers = params()["tiers"] + [app]
    assert net.check_params(params(tiers=tiers)) == []


def test_current_rules_are_read_as_atoms_whatever_the_grouping():
    permissions = [
        {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80,
         "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "web"}, {"CidrIp": "10.0.0.0/8"}],
         "UserIdGroupPairs": [{"GroupId": "sg-alb", "UserId": "123"}]},
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "Ipv6Ranges": [{"CidrIpv6": "::/0"}]},
    ]  # fmt: skip
    assert net.current_atoms(permissions) == {
        net.Atom("tcp", 80, 80, "cidr", "0.0.0.0/0"): "web",
        net.Atom("tcp", 80, 80, "cidr", "10.0.0.0/8"): "",
        net.Atom("tcp", 80, 80, "group", "sg-alb"): "",
        net.Atom("-1", None, None, "cidr", "0.0.0.0/0"): "",
        net.Atom("-1", None, None, "cidr6", "::/0"): "",
    }


def test_plan_rules_authorizes_what_is_missing_revokes_what_is_extra_and_fixes_descriptions():
    keep = net.Atom("tcp", 443, 443, "cidr", "0.0.0.0/0")
    extra = net.Atom("-1", None, None, "cidr", "0.0.0.0/0")
    new = net.Atom("tcp", 8000, 8000, "group", "sg-tasks")
    plan = net.plan_rules({keep: "old", extra: ""}, {keep: "new", new: "to tasks"})
    assert plan.authorize == {new: "to tasks"}
    assert plan.revoke == {extra: ""}
    assert plan.describe == {keep: "new"}
    assert net.plan_rules({keep: "x"}, {keep: "x"}).empty


def test_an_atom_round_trips_through_its_permission():
    for atom in (
        net.Atom("tcp", 80, 90, "cidr", "0.0.0.0/0"),
        net.Atom("-1", None, None, "group", "sg-1"),
        net.Atom("udp", 53, 53, "cidr6", "::/0"),
        net.Atom("tcp", 443, 443, "prefix_list", "pl-1"),
    ):
        assert net.current_atoms([atom.permission("d")]) == {atom: "d"}
    assert net.Atom("tcp", 8000, 8000, "group", "sg-alb").label({"sg-alb": "alb"}) == "tcp 8000 sg alb"
    assert net.Atom("-1", None, None, "cidr", "0.0.0.0/0").label() == "all 0.0.0.0/0"
    assert net.Atom("tcp", 1, 9, "cidr", "10.0.0.0/8").label() == "tcp 1-9 10.0.0.0/8"


def test_tag_changes_set_the_differences_and_remove_the_rest_but_aws_own():
    current = {"Name": "old", "Project": "p", "Extra": "x", "aws:cloudformation:stack-name": "s"}
    assert net.tag_changes(current, {"Name": "new", "Project": "p"}) == ({"Name": "new"}, ["Extra"])


def test_routes_plan():
    routes = [
        {"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local", "Origin": "CreateRouteTable"},
        {"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-old", "Origin": "CreateRoute"},
        {"DestinationCidrBlock": "192.168.0.0/16", "NatGatewayId": "nat-1", "Origin": "CreateRoute"},
        {"DestinationCidrBlock": "172.16.0.0/12", "GatewayId": "vgw-1", "Origin": "EnableVgwRoutePropagation"},
    ]
    current = net.managed_routes(routes)
    assert current == {"0.0.0.0/0": "igw-old", "192.168.0.0/16": "nat-1"}
    plan = net.plan_routes(current, {"0.0.0.0/0": "igw-new"})
    assert (plan.create, plan.replace, plan.delete) == ({}, {"0.0.0.0/0": "igw-new"}, ["192.168.0.0/16"])
    assert net.plan_routes({}, {}).empty


def test_associations_plan_moves_subnets_from_other_tables_and_drops_foreign_ones():
    tables = [
        {"RouteTableId": "rtb-main", "Associations": [{"Main": True, "RouteTableAssociationId": "a-main"}]},
        {"RouteTableId": "rtb-pub", "Associations": [
            {"SubnetId": "s1", "RouteTableAssociationId": "a1"}, {"SubnetId": "s9", "RouteTableAssociationId": "a9"}]},
        {"RouteTableId": "rtb-other", "Associations": [{"SubnetId": "s2", "RouteTableAssociationId": "a2"}]},
    ]  # fmt: skip
    plan = net.plan_associations("rtb-pub", ["s1", "s2", "s3"], tables)
    assert plan.associate == ["s3"]
    assert plan.move == {"s2": "a2"}
    assert plan.disassociate == {"s9": "a9"}
    assert net.plan_associations("rtb-pub", ["s1", "s9"], tables[:2]).empty


def test_subnet_layout_puts_the_nth_cidr_of_each_tier_in_the_nth_zone():
    layout = net.subnet_layout(params()["tiers"] + [{"name": "one", "cidrs": ["10.0.21.0/24"]}], ["a", "b"])
    assert [(s["tier"], s["cidr"], s["az"]) for s in layout] == [
        ("public", "10.0.1.0/24", "a"),
        ("public", "10.0.2.0/24", "b"),
        ("private", "10.0.11.0/24", "a"),
        ("private", "10.0.12.0/24", "b"),
        ("one", "10.0.21.0/24", "a"),
    ]
