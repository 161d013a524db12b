"""Unit tests for the collection's filters: tagged and overlapping_cidrs."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.ecs_production.platform.plugins.filter.overlapping_cidrs import overlapping_cidrs
from ansible_collections.ecs_production.platform.plugins.filter.tagged import tagged

IDENTITY = {"Project": "ecs-prod", "Environment": "prod"}


def test_tagged_keeps_resources_carrying_every_tag_in_either_shape_and_order():
    resources = [
        {"name": "a", "tags": {"Project": "ecs-prod", "Environment": "prod", "Extra": "x"}},
        {"name": "b", "tags": {"Project": "ecs-prod", "Environment": "staging"}},
        {"name": "c", "tags": [{"Key": "Environment", "Value": "prod"}, {"Key": "Project", "Value": "ecs-prod"}]},
        {"name": "d"},
        {"name": "e", "tags": None},
    ]
    assert [r["name"] for r in tagged(resources, IDENTITY)] == ["a", "c"]


def test_tagged_reads_another_attribute_and_accepts_nothing():
    assert tagged([{"TagList": [{"Key": "Project", "Value": "ecs-prod"}]}], {"Project": "ecs-prod"}, "TagList")
    assert tagged(None, IDENTITY) == []


@pytest.mark.parametrize("identity", [{}, None, ["Project"]])
def test_tagged_refuses_an_empty_or_malformed_identity(identity):
    with pytest.raises(AnsibleFilterError, match="non-empty dict"):
        tagged([{"tags": {}}], identity)


def test_tagged_refuses_tags_of_another_type():
    with pytest.raises(AnsibleFilterError, match="not str"):
        tagged([{"tags": "Project=ecs-prod"}], IDENTITY)


def test_disjoint_subnets_do_not_overlap():
    assert overlapping_cidrs(["10.0.1.0/24", "10.0.2.0/24", "10.0.11.0/24", "10.0.12.0/24"]) == []
    assert overlapping_cidrs([]) == []


def test_every_overlapping_pair_is_named_in_input_order():
    cidrs = ["10.0.1.0/24", "10.0.0.0/16", "10.0.2.0/24", "10.0.1.0/24", "192.168.0.0/24"]
    assert overlapping_cidrs(cidrs) == [
        "10.0.1.0/24 and 10.0.0.0/16",
        "10.0.1.0/24 and 10.0.1.0/24",
        "10.0.0.0/16 and 10.0.2.0/24",
        "10.0.0.0/16 and 10.0.1.0/24",
    ]


def test_adjacent_networks_do_not_overlap_but_a_shared_address_does():
    assert overlapping_cidrs(["10.0.0.0/25", "10.0.0.128/25"]) == []
    assert overlapping_cidrs(["10.0.0.0/25", "10.0.0.127/32"]) == ["10.0.0.0/25 and 10.0.0.127/32"]


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "10.0.0", "subnet", ""])
def test_a_value_that_is_not_a_cidr_is_named(bad):
    with pytest.raises(AnsibleFilterError, match="is not a CIDR"):
        overlapping_cidrs(["10.0.1.0/24", bad])


def test_a_string_instead_of_a_list_is_refused():
    with pytest.raises(AnsibleFilterError, match="expects a list"):
        overlapping_cidrs("10.0.1.0/24")
