"""The emulator fixes the production profile relies on, against the local AWS API as the local cloud runs it
(``localcloud/patches/``): NAT gateway tags found by their AWS resource type, and WAFv2 web ACL associations
listed, moved and guarding the deletion as on AWS."""

from __future__ import annotations

import botocore.exceptions
import pytest


@pytest.fixture
def api(aws_api):
    aws_api.reset()
    return aws_api


def test_describe_tags_finds_a_nat_gateway_by_its_aws_resource_type(api):
    ec2 = api.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(
        SubnetId=subnet,
        AllocationId=allocation,
        TagSpecifications=[{"ResourceType": "natgateway", "Tags": [{"Key": "Name", "Value": "n"}]}],
    )["NatGateway"]["NatGatewayId"]
    found = ec2.describe_tags(
        Filters=[{"Name": "resource-id", "Values": [nat]}, {"Name": "resource-type", "Values": ["natgateway"]}]
    )["Tags"]
    assert [(t["Key"], t["Value"], t["ResourceType"]) for t in found] == [("Name", "n", "natgateway")]


def web_acl(wafv2, name: str) -> dict:
    return wafv2.create_web_acl(
        Name=name,
        Scope="REGIONAL",
        DefaultAction={"Allow": {}},
        Rules=[],
        VisibilityConfig={"SampledRequestsEnabled": False, "CloudWatchMetricsEnabled": False, "MetricName": name},
    )["Summary"]


def test_web_acl_associations_are_listed_moved_and_guard_the_deletion(api):
    wafv2 = api.client("wafv2")
    lb = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/x-alb/0123456789abcdef"
    first, second = web_acl(wafv2, "first"), web_acl(wafv2, "second")
    assert wafv2.list_resources_for_web_acl(WebACLArn=first["ARN"])["ResourceArns"] == []
    wafv2.associate_web_acl(WebACLArn=first["ARN"], ResourceArn=lb)
    wafv2.associate_web_acl(WebACLArn=first["ARN"], ResourceArn=lb)  # again: still once
    assert wafv2.list_resources_for_web_acl(WebACLArn=first["ARN"])["ResourceArns"] == [lb]
    wafv2.associate_web_acl(WebACLArn=second["ARN"], ResourceArn=lb)  # a resource has one web ACL
    assert wafv2.list_resources_for_web_acl(WebACLArn=first["ARN"])["ResourceArns"] == []
    assert wafv2.get_web_acl_for_resource(ResourceArn=lb)["WebACL"]["Name"] == "second"
    token = wafv2.get_web_acl(Name="second", Scope="REGIONAL", Id=second["Id"])["LockToken"]
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        wafv2.delete_web_acl(Name="second", Scope="REGIONAL", Id=second["Id"], LockToken=token)
    assert refused.value.response["Error"]["Code"] == "WAFAssociatedItemException"
    wafv2.disassociate_web_acl(ResourceArn=lb)
    wafv2.delete_web_acl(Name="second", Scope="REGIONAL", Id=second["Id"], LockToken=token)
    assert [a["Name"] for a in wafv2.list_web_acls(Scope="REGIONAL")["WebACLs"]] == ["first"]
