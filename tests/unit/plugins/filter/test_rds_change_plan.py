"""Unit tests for rds_change_plan and rds_change_lines: which differences between the instance RDS describes and
what the inventory wants need the operator's consent."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.ecs_production.platform.plugins.filter.rds_change_plan import rds_change_lines, rds_change_plan

KEY = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"


def instance(**overrides):
    """An instance as amazon.aws.rds_instance_info returns it (snake_case), matching WANTED."""
    found = {
        "db_instance_identifier": "ecs-prod-prod-db",
        "db_instance_class": "db.t4g.micro",
        "allocated_storage": 20,
        "storage_type": "gp3",
        "iops": 3000,
        "multi_az": False,
        "engine_version": "15.7",
        "kms_key_id": KEY,
        "db_subnet_group": {"subnets": [{"subnet_identifier": "subnet-b"}, {"subnet_identifier": "subnet-a"}]},
        "pending_modified_values": {},
    }
    found.update(overrides)
    return found


def wanted(**overrides):
    settings = {
        "instance_class": "db.t4g.micro",
        "allocated_storage": 20,
        "storage_type": "gp3",
        "multi_az": False,
        "engine_major_version": "15",
        "kms_key_id": KEY,
        "subnet_ids": ["subnet-a", "subnet-b"],
        "password_regenerated": False,
    }
    settings.update(overrides)
    return settings


def test_an_instance_as_wanted_needs_nothing():
    plan = rds_change_plan(instance(), wanted())
    assert plan == {"changes": [], "before": {}, "after": {}, "notes": [], "allocated_storage": 20}
    assert rds_change_lines(plan) == []


def test_no_instance_yet_is_a_creation_not_a_change():
    assert rds_change_plan(None, wanted(allocated_storage="30")) == {
        "changes": [],
        "before": {},
        "after": {},
        "notes": [],
        "allocated_storage": 30,
    }


@pytest.mark.parametrize(
    ("found", "asked", "attribute", "before", "after"),
    [
        ({}, {"instance_class": "db.t4g.small"}, "instance class", "db.t4g.micro", "db.t4g.small"),
        ({}, {"allocated_storage": "50"}, "allocated storage (GiB)", 20, 50),
        ({}, {"storage_type": "io1"}, "storage type", "gp3", "io1"),
        ({}, {"iops": 6000}, "provisioned IOPS", 3000, 6000),
        ({}, {"multi_az": True}, "Multi-AZ", False, True),
        ({"multi_az": True}, {"multi_az": "false"}, "Multi-AZ", True, False),
        (
            {},
            {"subnet_ids": ["subnet-a", "subnet-c"]},
            "DB subnet group subnets",
            ["subnet-a", "subnet-b"],
            ["subnet-a", "subnet-c"],
        ),
        ({}, {"password_regenerated": True}, "master password", "the value in SSM (missing)", "a new random value"),
    ],
)
def test_each_disruptive_change_is_listed_with_its_before_and_after(found, asked, attribute, before, after):
    plan = rds_change_plan(instance(**found), wanted(**asked))
    (change,) = plan["changes"]
    assert (change["attribute"], change["current"], change["wanted"]) == (attribute, before, after)
    assert change["consentable"] and change["effect"]
    assert plan["before"] == {attribute: before} and plan["after"] == {attribute: after}


def test_a_major_version_change_is_listed_but_never_made_with_consent():
    plan = rds_change_plan(instance(engine_version="15.7"), wanted(engine_major_version="16"))
    (change,) = plan["changes"]
    assert (change["attribute"], change["current"], change["wanted"]) == ("engine version", "15.7", "16.x")
    assert not change["consentable"] and "not made by provision, even with consent" in change["effect"]
    # A minor version RDS moved to by itself is no change.
    assert rds_change_plan(instance(engine_version="15.10"), wanted())["changes"] == []


def test_several_changes_come_in_a_fixed_order_and_read_as_lines():
    plan = rds_change_plan(instance(), wanted(multi_az=True, instance_class="db.m7g.large", allocated_storage=40))
    assert [c["attribute"] for c in plan["changes"]] == ["instance class", "allocated storage (GiB)", "Multi-AZ"]
    lines = rds_change_lines(plan)
    assert lines[0].startswith("instance class: db.t4g.micro -> db.m7g.large (RDS moves the database")
    assert lines[1].startswith("allocated storage (GiB): 20 -> 40 (storage grows and can never shrink back")
    assert lines[2].startswith("Multi-AZ: False -> True (RDS builds a standby")
    subnets = rds_change_lines(rds_change_plan(instance(), wanted(subnet_ids=["subnet-c", "subnet-d"])))
    assert subnets[0].startswith("DB subnet group subnets: subnet-a, subnet-b -> subnet-c, subnet-d (")


def test_a_change_already_pending_is_not_asked_for_again():
    pending = {"db_instance_class": "db.t4g.small", "multi_az": True}
    plan = rds_change_plan(
        instance(pending_modified_values=pending), wanted(instance_class="db.t4g.small", multi_az=True)
    )
    assert plan["changes"] == []


def test_storage_raised_by_autoscaling_is_kept_and_noted_not_shrunk():
    plan = rds_change_plan(instance(allocated_storage=35), wanted(allocated_storage=20))
    assert plan["changes"] == [] and plan["allocated_storage"] == 35
    (note,) = plan["notes"]
    assert "stays at 35 GiB, not 20" in note


def test_another_kms_key_is_a_note_since_provision_leaves_it():
    plan = rds_change_plan(instance(kms_key_id="arn:aws:kms:us-east-1:123456789012:key/other"), wanted())
    assert plan["changes"] == []
    (note,) = plan["notes"]
    assert "key/other, not the environment's key" in note and "never delete the instance's key" in note


def test_iops_not_asked_for_is_not_compared():
    assert rds_change_plan(instance(iops=12000), wanted(iops=None))["changes"] == []


@pytest.mark.parametrize(
    ("found", "asked", "message"),
    [
        (instance(), ["not a dict"], "wanted must be a dict"),
        ("an instance", wanted(), "give it one instance"),
        (instance(), wanted(allocated_storage="lots"), "allocated_storage must be a whole number"),
        (instance(), wanted(multi_az="maybe"), "multi_az must be a boolean"),
    ],
)
def test_bad_input_is_an_error_naming_it(found, asked, message):
    with pytest.raises(AnsibleFilterError, match=message):
        rds_change_plan(found, asked)


def test_lines_need_a_plan():
    with pytest.raises(AnsibleFilterError, match="give it what rds_change_plan returns"):
        rds_change_lines(["instance class"])
