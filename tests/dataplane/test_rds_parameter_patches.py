"""The emulator fixes the rds role's parameter group and Performance Insights rely on, against the local AWS API
as the local cloud runs it (``localcloud/patches/rds_db_parameters.py``, ``rds_performance_insights.py``)."""

from __future__ import annotations

import botocore.exceptions
import pytest


@pytest.fixture
def rds(aws_api):
    aws_api.reset()
    return aws_api.client("rds")


def parameters(rds, group: str, **filters) -> dict[str, dict]:
    return {
        p["ParameterName"]: p for p in rds.describe_db_parameters(DBParameterGroupName=group, **filters)["Parameters"]
    }


def test_a_postgres_group_lists_its_family_parameters_typed_and_the_ones_set_as_user(rds):
    rds.create_db_parameter_group(DBParameterGroupName="g", DBParameterGroupFamily="postgres15", Description="d")
    listed = parameters(rds, "g")
    assert listed["rds.force_ssl"]["DataType"] == "boolean" and listed["rds.force_ssl"]["IsModifiable"]
    assert "ParameterValue" not in listed["rds.force_ssl"] and listed["rds.force_ssl"]["Source"] == "engine-default"
    assert listed["log_min_duration_statement"]["DataType"] == "integer"
    assert parameters(rds, "g", Source="user") == {}
    rds.modify_db_parameter_group(
        DBParameterGroupName="g",
        Parameters=[{"ParameterName": "rds.force_ssl", "ParameterValue": "1", "ApplyMethod": "immediate"}],
    )
    user = parameters(rds, "g", Source="user")
    assert list(user) == ["rds.force_ssl"]
    assert (user["rds.force_ssl"]["ParameterValue"], user["rds.force_ssl"]["DataType"]) == ("1", "boolean")


def test_a_group_that_does_not_exist_is_not_found(rds):
    for call in (rds.describe_db_parameter_groups, rds.describe_db_parameters):
        with pytest.raises(botocore.exceptions.ClientError) as missing:
            call(DBParameterGroupName="nosuch")
        assert missing.value.response["Error"]["Code"] == "DBParameterGroupNotFound"
    assert rds.describe_db_parameter_groups()["DBParameterGroups"] == []


def instance(rds, identifier: str) -> dict:
    return rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]


def test_performance_insights_is_reported_as_asked_on_create_and_modify(rds):
    common = {
        "DBInstanceClass": "db.t4g.micro",
        "Engine": "postgres",
        "EngineVersion": "15",
        "MasterUsername": "app_admin",
        "MasterUserPassword": "a-password-1",
        "AllocatedStorage": 20,
    }
    rds.create_db_instance(DBInstanceIdentifier="with", EnablePerformanceInsights=True, **common)
    rds.create_db_instance(DBInstanceIdentifier="without", **common)
    seen = instance(rds, "with")
    assert (seen["PerformanceInsightsEnabled"], seen["PerformanceInsightsRetentionPeriod"]) == (True, 7)
    assert instance(rds, "without")["PerformanceInsightsEnabled"] is False
    rds.modify_db_instance(
        DBInstanceIdentifier="without",
        EnablePerformanceInsights=True,
        PerformanceInsightsRetentionPeriod=31,
        ApplyImmediately=True,
    )
    seen = instance(rds, "without")
    assert (seen["PerformanceInsightsEnabled"], seen["PerformanceInsightsRetentionPeriod"]) == (True, 31)
    rds.modify_db_instance(DBInstanceIdentifier="without", EnablePerformanceInsights=False, ApplyImmediately=True)
    seen = instance(rds, "without")
    assert seen["PerformanceInsightsEnabled"] is False and "PerformanceInsightsRetentionPeriod" not in seen
