"""Unit tests for ecs_production.platform.tagged_resources_info."""

from __future__ import annotations

import json
from unittest.mock import MagicMock, patch

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.ecs_production.platform.plugins.modules import tagged_resources_info as mod
from botocore.exceptions import ClientError

ACCOUNT = "123456789012"
WANTED = {"Project": "myapp", "Environment": "prod", "ManagedBy": "ansible"}
TAG_LIST = [{"Key": key, "Value": value} for key, value in WANTED.items()]


def client_error(code: str, message: str = "boom", operation: str = "Operation") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def resource(arn: str, **extra) -> dict:
    item = mod.to_resource(arn, dict(WANTED))
    item.update(extra)
    return item


# ---- ARNs and tags ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arn", "service", "resource_type", "resource_id", "region"),
    [
        (f"arn:aws:ec2:us-east-1:{ACCOUNT}:vpc/vpc-0abc", "ec2", "ec2:vpc", "vpc-0abc", "us-east-1"),
        (f"arn:aws:ec2:us-east-1:{ACCOUNT}:security-group/sg-1", "ec2", "ec2:security-group", "sg-1", "us-east-1"),
        (f"arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/app", "ecs", "ecs:cluster", "app", "us-east-1"),
        (f"arn:aws:ecs:us-east-1:{ACCOUNT}:service/app/web", "ecs", "ecs:service", "app/web", "us-east-1"),
        (f"arn:aws:ecs:us-east-1:{ACCOUNT}:task-definition/web:3", "ecs", "ecs:task-definition", "web:3", "us-east-1"),
        (f"arn:aws:ecs:us-east-1:{ACCOUNT}:task/app/0123abcd", "ecs", "ecs:task", "app/0123abcd", "us-east-1"),
        (f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/ecs/web", "logs", "logs:log-group", "/ecs/web", "us-east-1"),
        (f"arn:aws:rds:eu-west-1:{ACCOUNT}:db:app-db", "rds", "rds:db", "app-db", "eu-west-1"),
        (f"arn:aws:rds:eu-west-1:{ACCOUNT}:subgrp:app", "rds", "rds:subgrp", "app", "eu-west-1"),
        (
            f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}:loadbalancer/app/web/50dc6c495c0c9188",
            "elasticloadbalancing",
            "elasticloadbalancing:loadbalancer",
            "app/web/50dc6c495c0c9188",
            "us-east-1",
        ),
        (
            f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}:targetgroup/web/73e2d6bc24d8a067",
            "elasticloadbalancing",
            "elasticloadbalancing:targetgroup",
            "web/73e2d6bc24d8a067",
            "us-east-1",
        ),
        (f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd", "kms", "kms:key", "1234abcd", "us-east-1"),
        (f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/app/db/pw", "ssm", "ssm:parameter", "app/db/pw", "us-east-1"),
        (
            f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:app-AbCdEf",
            "secretsmanager",
            "secretsmanager:secret",
            "app-AbCdEf",
            "us-east-1",
        ),
        (f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/abc", "acm", "acm:certificate", "abc", "us-east-1"),
        (f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/app/web", "ecr", "ecr:repository", "app/web", "us-east-1"),
        (f"arn:aws:iam::{ACCOUNT}:role/service/app-task", "iam", "iam:role", "service/app-task", ""),
        (f"arn:aws:iam::{ACCOUNT}:instance-profile/app", "iam", "iam:instance-profile", "app", ""),
        ("arn:aws:route53:::hostedzone/Z123", "route53", "route53:hostedzone", "Z123", ""),
        (
            f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:cpu-high",
            "cloudwatch",
            "cloudwatch:alarm",
            "cpu-high",
            "us-east-1",
        ),
        ("arn:aws:s3:::my-bucket", "s3", "s3:bucket", "my-bucket", ""),
        (f"arn:aws:sqs:us-east-1:{ACCOUNT}:jobs", "sqs", "sqs:queue", "jobs", "us-east-1"),
        (f"arn:aws:sns:us-east-1:{ACCOUNT}:alerts", "sns", "sns:topic", "alerts", "us-east-1"),
        ("arn:aws:apigateway:us-east-1::/restapis/a1b2c3", "apigateway", "apigateway:restapis", "a1b2c3", "us-east-1"),
        (f"arn:aws-cn:codecommit:cn-north-1:{ACCOUNT}:repo", "codecommit", "codecommit", "repo", "cn-north-1"),
    ],
)
def test_parse_arn(arn, service, resource_type, resource_id, region):
    assert mod.parse_arn(arn) == {
        "service": service,
        "resource_type": resource_type,
        "resource_id": resource_id,
        "region": region,
    }


def test_parse_arn_not_an_arn():
    assert mod.parse_arn("vpc-0abc") == {"service": "", "resource_type": "", "resource_id": "vpc-0abc", "region": ""}


@pytest.mark.parametrize(
    ("tags", "matches"),
    [
        (dict(WANTED), True),
        (dict(WANTED, Name="web", Owner="team"), True),
        ({"Project": "myapp", "Environment": "prod"}, False),
        (dict(WANTED, Environment="staging"), False),
        (dict(WANTED, Environment="Prod"), False),
        ({"project": "myapp", "environment": "prod", "managedby": "ansible"}, False),
        ({}, False),
    ],
)
def test_tags_match(tags, matches):
    assert mod.tags_match(tags, WANTED) is matches


def test_normalize_tags_makes_strings():
    assert mod.normalize_tags({"Count": 3, "On": True, "Empty": None, "Name": "x"}) == {
        "Count": "3",
        "On": "True",
        "Empty": "",
        "Name": "x",
    }


def test_tag_filters_one_per_key_sorted():
    assert mod.tag_filters(WANTED) == [
        {"Key": "Environment", "Values": ["prod"]},
        {"Key": "ManagedBy", "Values": ["ansible"]},
        {"Key": "Project", "Values": ["myapp"]},
    ]


@pytest.mark.parametrize(
    ("resource_types", "include_iam", "expected"),
    [
        (None, True, []),
        ([], False, []),
        (["ec2", "iam:role"], False, ["ec2", "iam:role"]),
        (["ec2", "iam:role", "ecs:cluster"], True, ["ec2", "ecs:cluster"]),
        (["iam"], True, None),
        (["iam:role", "iam:policy"], True, None),
    ],
)
def test_split_type_filters(resource_types, include_iam, expected):
    assert mod.split_type_filters(resource_types, include_iam) == expected


@pytest.mark.parametrize(
    ("resource_type", "resource_types", "selected"),
    [
        ("iam:role", None, True),
        ("iam:role", ["iam"], True),
        ("iam:role", ["iam:role"], True),
        ("iam:policy", ["iam:role"], False),
        ("iam:role", ["ec2"], False),
    ],
)
def test_type_selected(resource_type, resource_types, selected):
    assert mod.type_selected(resource_type, resource_types) is selected


# ---- pagination ------------------------------------------------------------------------------


def test_get_tagged_resources_follows_every_page_even_empty_ones():
    client = MagicMock()
    client.get_resources.side_effect = [
        {"ResourceTagMappingList": [{"ResourceARN": "arn:1", "Tags": TAG_LIST}], "PaginationToken": "t1"},
        {"ResourceTagMappingList": [], "PaginationToken": "t2"},
        {"ResourceTagMappingList": [{"ResourceARN": "arn:2", "Tags": TAG_LIST}], "PaginationToken": ""},
    ]
    filters = mod.tag_filters(WANTED)
    mappings = mod.get_tagged_resources(client, filters, [])
    assert [m["ResourceARN"] for m in mappings] == ["arn:1", "arn:2"]
    calls = client.get_resources.call_args_list
    assert len(calls) == 3
    assert calls[0].kwargs == {"aws_retry": True, "TagFilters": filters, "ResourcesPerPage": 100}
    assert calls[1].kwargs["PaginationToken"] == "t1"
    assert calls[2].kwargs["PaginationToken"] == "t2"


def test_get_tagged_resources_passes_type_filters():
    client = MagicMock()
    client.get_resources.return_value = {"ResourceTagMappingList": []}
    mod.get_tagged_resources(client, [], ["ecs", "ec2:vpc"])
    assert client.get_resources.call_args.kwargs["ResourceTypeFilters"] == ["ecs", "ec2:vpc"]


def test_get_tagged_resources_wraps_errors():
    client = MagicMock()
    client.get_resources.side_effect = client_error("AccessDeniedException")
    with pytest.raises(AnsibleAWSError, match="list tagged resources"):
        mod.get_tagged_resources(client, [], [])


def test_iam_listing_follows_markers():
    client = MagicMock()
    client.list_roles.side_effect = [
        {"Roles": [{"RoleName": "a"}], "IsTruncated": True, "Marker": "m1"},
        {"Roles": [{"RoleName": "b"}], "IsTruncated": False},
    ]
    assert [r["RoleName"] for r in mod.list_iam_roles(client, "/app/")] == ["a", "b"]
    assert client.list_roles.call_args_list[0].kwargs == {"aws_retry": True, "PathPrefix": "/app/"}
    assert client.list_roles.call_args_list[1].kwargs == {"aws_retry": True, "PathPrefix": "/app/", "Marker": "m1"}


def iam_client() -> MagicMock:
    client = MagicMock()
    client.list_roles.return_value = {
        "Roles": [
            {"RoleName": "ours", "Arn": f"arn:aws:iam::{ACCOUNT}:role/ours"},
            {"RoleName": "theirs", "Arn": f"arn:aws:iam::{ACCOUNT}:role/theirs"},
            {"RoleName": "vanished", "Arn": f"arn:aws:iam::{ACCOUNT}:role/vanished"},
        ]
    }
    role_tags = {
        "ours": {"Tags": TAG_LIST + [{"Key": "Name", "Value": "ours"}]},
        "theirs": {"Tags": [{"Key": "Project", "Value": "myapp"}, {"Key": "Environment", "Value": "test"}]},
    }

    def list_role_tags(aws_retry, RoleName, **_kwargs):  # noqa: N803 - boto3 parameter name
        if RoleName not in role_tags:
            raise client_error("NoSuchEntity")
        return role_tags[RoleName]

    client.list_role_tags.side_effect = list_role_tags
    client.list_policies.return_value = {"Policies": [{"PolicyName": "p", "Arn": f"arn:aws:iam::{ACCOUNT}:policy/p"}]}
    client.list_policy_tags.return_value = {"Tags": TAG_LIST, "IsTruncated": False}
    client.list_instance_profiles.return_value = {
        "InstanceProfiles": [{"InstanceProfileName": "ip", "Arn": f"arn:aws:iam::{ACCOUNT}:instance-profile/ip"}]
    }
    client.get_instance_profile.return_value = {"InstanceProfile": {"Tags": []}}
    return client


def test_iam_resources_reads_tags_and_skips_vanished_roles():
    client = iam_client()
    found = mod.iam_resources(client, WANTED, "/", None)
    assert [r["arn"] for r in found] == [f"arn:aws:iam::{ACCOUNT}:role/ours", f"arn:aws:iam::{ACCOUNT}:policy/p"]
    assert found[0]["tags"]["Name"] == "ours"
    assert found[0]["resource_type"] == "iam:role"
    assert client.list_policies.call_args.kwargs == {"aws_retry": True, "Scope": "Local", "PathPrefix": "/"}
    client.get_instance_profile.assert_called_once_with(aws_retry=True, InstanceProfileName="ip")


def test_iam_resources_honours_resource_types():
    client = iam_client()
    found = mod.iam_resources(client, WANTED, "/", ["iam:policy"])
    assert [r["resource_type"] for r in found] == ["iam:policy"]
    client.list_roles.assert_not_called()
    client.list_instance_profiles.assert_not_called()


# ---- state lookups ---------------------------------------------------------------------------


def test_kms_key_states():
    client = MagicMock()
    arns = [f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{n}" for n in ("a", "b", "c")]
    client.describe_key.side_effect = [
        {"KeyMetadata": {"KeyState": "Enabled"}},
        {"KeyMetadata": {"KeyState": "PendingDeletion"}},
        client_error("NotFoundException"),
    ]
    states = mod.kms_key_states(client, [resource(arn) for arn in arns])
    assert states == {arns[0]: "Enabled", arns[1]: "PendingDeletion", arns[2]: mod.NOT_FOUND}
    assert client.describe_key.call_args_list[0].kwargs == {"aws_retry": True, "KeyId": arns[0]}


def test_kms_key_states_other_errors_raise():
    client = MagicMock()
    client.describe_key.side_effect = client_error("AccessDeniedException")
    with pytest.raises(AnsibleAWSError) as caught:
        mod.kms_key_states(client, [resource(f"arn:aws:kms:us-east-1:{ACCOUNT}:key/a")])
    assert mod.error_code(caught.value) == "AccessDeniedException"


def test_rds_states_use_identifier():
    client = MagicMock()
    client.describe_db_instances.side_effect = [
        {"DBInstances": [{"DBInstanceStatus": "deleting"}]},
        client_error("DBInstanceNotFound"),
    ]
    db1, db2 = (f"arn:aws:rds:us-east-1:{ACCOUNT}:db:{name}" for name in ("one", "two"))
    assert mod.rds_instance_states(client, [resource(db1), resource(db2)]) == {db1: "deleting", db2: mod.NOT_FOUND}
    assert client.describe_db_instances.call_args_list[0].kwargs == {"aws_retry": True, "DBInstanceIdentifier": "one"}
    client.describe_db_clusters.side_effect = [client_error("DBClusterNotFoundFault")]
    cluster = f"arn:aws:rds:us-east-1:{ACCOUNT}:cluster:c"
    assert mod.rds_cluster_states(client, [resource(cluster)]) == {cluster: mod.NOT_FOUND}


def test_ecs_cluster_states_batches_and_failures():
    client = MagicMock()
    arns = [f"arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/c{n}" for n in range(150)]

    def describe_clusters(aws_retry, clusters):
        return {
            "clusters": [{"clusterArn": arn, "status": "INACTIVE"} for arn in clusters if arn != arns[5]],
            "failures": [{"arn": arns[5], "reason": "MISSING"}] if arns[5] in clusters else [],
        }

    client.describe_clusters.side_effect = describe_clusters
    states = mod.ecs_cluster_states(client, [resource(arn) for arn in arns])
    assert client.describe_clusters.call_count == 2
    assert len(client.describe_clusters.call_args_list[0].kwargs["clusters"]) == 100
    assert states[arns[5]] == mod.NOT_FOUND
    assert states[arns[149]] == "INACTIVE"


def test_ecs_service_states_group_by_cluster():
    client = MagicMock()
    web = [f"arn:aws:ecs:us-east-1:{ACCOUNT}:service/web/s{n}" for n in range(12)]
    gone_cluster = f"arn:aws:ecs:us-east-1:{ACCOUNT}:service/old/s"
    short = f"arn:aws:ecs:us-east-1:{ACCOUNT}:service/legacy"

    def describe_services(aws_retry, cluster, services):
        if cluster == "old":
            raise client_error("ClusterNotFoundException")
        return {"services": [{"serviceArn": arn, "status": "DRAINING"} for arn in services], "failures": []}

    client.describe_services.side_effect = describe_services
    states = mod.ecs_service_states(client, [resource(arn) for arn in [*web, gone_cluster, short]])
    assert {call.kwargs["cluster"] for call in client.describe_services.call_args_list} == {"web", "old"}
    assert [len(call.kwargs["services"]) for call in client.describe_services.call_args_list] == [1, 10, 2]
    assert states[gone_cluster] == mod.NOT_FOUND
    assert all(states[arn] == "DRAINING" for arn in web)
    assert short not in states  # a short ARN does not name its cluster: state unknown


def test_ecs_task_states_use_last_status():
    client = MagicMock()
    task = f"arn:aws:ecs:us-east-1:{ACCOUNT}:task/web/abc"
    client.describe_tasks.return_value = {"tasks": [{"taskArn": task, "lastStatus": "STOPPED"}], "failures": []}
    assert mod.ecs_task_states(client, [resource(task)]) == {task: "STOPPED"}


def test_ecs_task_definition_states():
    client = MagicMock()
    active, missing = (f"arn:aws:ecs:us-east-1:{ACCOUNT}:task-definition/web:{n}" for n in (1, 2))
    client.describe_task_definition.side_effect = [
        {"taskDefinition": {"status": "INACTIVE"}},
        client_error("ClientException", "Unable to describe task definition."),
    ]
    assert mod.ecs_task_definition_states(client, [resource(active), resource(missing)]) == {
        active: "INACTIVE",
        missing: mod.NOT_FOUND,
    }


def test_ecs_task_definition_other_client_exception_raises():
    client = MagicMock()
    client.describe_task_definition.side_effect = client_error("ClientException", "Something else")
    with pytest.raises(AnsibleAWSError):
        mod.ecs_task_definition_states(client, [resource(f"arn:aws:ecs:us-east-1:{ACCOUNT}:task-definition/x:1")])


def test_ec2_nat_gateway_states_filter_and_paginate():
    client = MagicMock()
    nats = {nat_id: f"arn:aws:ec2:us-east-1:{ACCOUNT}:natgateway/{nat_id}" for nat_id in ("nat-1", "nat-2", "nat-3")}
    client.describe_nat_gateways.side_effect = [
        {"NatGateways": [{"NatGatewayId": "nat-1", "State": "deleted"}], "NextToken": "n"},
        {"NatGateways": [{"NatGatewayId": "nat-2", "State": "available"}]},
    ]
    states = mod.ec2_nat_gateway_states(client, [resource(arn) for arn in nats.values()])
    assert states == {nats["nat-1"]: "deleted", nats["nat-2"]: "available", nats["nat-3"]: mod.NOT_FOUND}
    first = client.describe_nat_gateways.call_args_list[0].kwargs
    assert first["Filters"] == [{"Name": "nat-gateway-id", "Values": ["nat-1", "nat-2", "nat-3"]}]
    assert client.describe_nat_gateways.call_args_list[1].kwargs["NextToken"] == "n"


def test_ec2_instance_states():
    client = MagicMock()
    arn = f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-1"
    client.describe_instances.return_value = {
        "Reservations": [{"Instances": [{"InstanceId": "i-1", "State": {"Name": "terminated"}}]}]
    }
    assert mod.ec2_instance_states(client, [resource(arn)]) == {arn: "terminated"}


def test_vpc_endpoint_and_acm_and_secret_states():
    client = MagicMock()
    vpce = f"arn:aws:ec2:us-east-1:{ACCOUNT}:vpc-endpoint/vpce-1"
    client.describe_vpc_endpoints.side_effect = [client_error("InvalidVpcEndpointId.NotFound")]
    assert mod.ec2_vpc_endpoint_states(client, [resource(vpce)]) == {vpce: mod.NOT_FOUND}
    cert = f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/c"
    client.describe_certificate.return_value = {"Certificate": {"Status": "EXPIRED"}}
    assert mod.acm_certificate_states(client, [resource(cert)]) == {cert: "EXPIRED"}
    secrets = [f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:{n}" for n in ("a", "b", "c")]
    client.describe_secret.side_effect = [
        {"DeletedDate": "2025-01-01"},
        {"Name": "b"},
        client_error("ResourceNotFoundException"),
    ]
    assert mod.secret_states(client, [resource(arn) for arn in secrets]) == {
        secrets[0]: "PendingDeletion",
        secrets[1]: "Active",
        secrets[2]: mod.NOT_FOUND,
    }


# ---- the exclusion logic (lookups patched) ---------------------------------------------------


def cannot_tell(_client, _items):
    return {}


def all_deleted(_client, items):
    return {item["arn"]: "Deleted" for item in items}


def fake_checks(lookup_kms):
    return {
        "kms:key": mod.StateCheck("kms", lookup_kms, ("PendingDeletion", "PendingReplicaDeletion")),
        "ecs:cluster": mod.StateCheck("ecs", cannot_tell, ("DEPROVISIONING", "INACTIVE")),
        "ec2:natgateway": mod.StateCheck("ec2", all_deleted, ("deleted",)),
    }


def test_exclusion_logic_splits_gone_from_left():
    keys = [
        f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{n}" for n in ("enabled", "disabled", "pending", "replica", "missing")
    ]
    states = ["Enabled", "Disabled", "PendingDeletion", "PendingReplicaDeletion", mod.NOT_FOUND]
    kms_states = dict(zip(keys, states, strict=True))
    kms_lookup = MagicMock(side_effect=lambda _client, items: {i["arn"]: kms_states[i["arn"]] for i in items})
    cluster = f"arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/app"
    nat = f"arn:aws:ec2:us-east-1:{ACCOUNT}:natgateway/nat-1"
    vpc = f"arn:aws:ec2:us-east-1:{ACCOUNT}:vpc/vpc-1"
    resources = [resource(arn) for arn in [*keys, cluster, nat, vpc]]
    clients = {}
    client_for = MagicMock(side_effect=lambda service: clients.setdefault(service, MagicMock(name=service)))
    checks = fake_checks(kms_lookup)

    mod.look_up_states(MagicMock(), resources, client_for, checks)
    left, gone = mod.split_gone(resources, checks)

    assert kms_lookup.call_count == 1  # one call per type, with all of that type
    assert kms_lookup.call_args.args[0] is clients["kms"]
    assert len(kms_lookup.call_args.args[1]) == 5
    assert sorted(r["arn"] for r in left) == sorted([keys[0], keys[1], cluster, vpc])
    assert sorted(r["arn"] for r in gone) == sorted([keys[2], keys[3], keys[4], nat])  # NAT: case-insensitive
    by_arn = {r["arn"]: r for r in resources}
    assert by_arn[keys[1]]["state"] == "Disabled"
    assert "state" not in by_arn[cluster]  # the lookup could not tell: unknown, and left
    assert "state" not in by_arn[vpc]  # not a checked type
    assert "ec2" in clients and "ecs" in clients


def test_exclusion_logic_keeps_resources_it_may_not_check():
    module = MagicMock()
    denied = AnsibleAWSError(message="Failed to describe KMS keys", exception=client_error("AccessDeniedException"))
    key = resource(f"arn:aws:kms:us-east-1:{ACCOUNT}:key/a")
    mod.look_up_states(module, [key], MagicMock(), fake_checks(MagicMock(side_effect=denied)))
    left, gone = mod.split_gone([key], fake_checks(MagicMock()))
    assert left == [key] and gone == []
    assert "state" not in key
    assert "counted as left" in module.warn.call_args.args[0]


def test_exclusion_logic_other_errors_fail():
    broken = AnsibleAWSError(message="Failed to describe KMS keys", exception=client_error("InternalFailure"))
    key = resource(f"arn:aws:kms:us-east-1:{ACCOUNT}:key/a")
    with pytest.raises(AnsibleAWSError):
        mod.look_up_states(MagicMock(), [key], MagicMock(), fake_checks(MagicMock(side_effect=broken)))


def test_documentation_lists_every_checked_type_and_state():
    for resource_type, check in mod.STATE_CHECKS.items():
        line = next(line for line in mod.DOCUMENTATION.splitlines() if f'"V({resource_type}):' in line)
        for state in check.gone_states:
            assert f"V({state})" in line, (resource_type, state)


# ---- main() -----------------------------------------------------------------------------------


class ModuleExit(Exception):
    def __init__(self, result):
        super().__init__(result)
        self.result = result


class ModuleFail(ModuleExit):
    pass


@pytest.fixture
def run_main():
    """Run main() with the given args and fake clients; returns (result, the services a client was made for)."""

    def run(args, clients):
        made = []

        def client(self, service, retry_decorator=None, **_kwargs):
            made.append(service)
            return clients[service]

        def exit_json(self, **kwargs):
            raise ModuleExit(kwargs)

        def fail_json(self, **kwargs):
            raise ModuleFail(kwargs)

        with (
            patch_module_args(args),
            patch.object(AnsibleAWSModule, "client", client),
            patch.object(AnsibleAWSModule, "exit_json", exit_json),
            patch.object(AnsibleAWSModule, "fail_json", fail_json),
            pytest.raises(ModuleExit) as caught,
        ):
            mod.main()
        return caught.value, made

    return run


def fake_clients():
    key_left = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/left"
    key_going = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/going"
    tagging = MagicMock()
    tagging.get_resources.side_effect = [
        {
            "ResourceTagMappingList": [
                {"ResourceARN": f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/app", "Tags": TAG_LIST},
                {"ResourceARN": key_going, "Tags": TAG_LIST},
            ],
            "PaginationToken": "next",
        },
        {
            "ResourceTagMappingList": [
                {"ResourceARN": key_left, "Tags": TAG_LIST},
                {"ResourceARN": f"arn:aws:ec2:us-east-1:{ACCOUNT}:vpc/vpc-1", "Tags": TAG_LIST},
            ]
        },
    ]
    kms = MagicMock()
    kms.describe_key.side_effect = lambda **kwargs: {
        "KeyMetadata": {"KeyState": "PendingDeletion" if kwargs["KeyId"] == key_going else "Enabled"}
    }
    return {"resourcegroupstaggingapi": tagging, "iam": iam_client(), "kms": kms}


def test_main_lists_sorted_resources_and_excludes_gone(run_main):
    outcome, made = run_main({"tags": WANTED}, fake_clients())
    assert not isinstance(outcome, ModuleFail)
    result = outcome.result
    assert result["changed"] is False
    arns = [r["arn"] for r in result["resources"]]
    assert arns == sorted(arns)
    assert arns == [
        f"arn:aws:ec2:us-east-1:{ACCOUNT}:vpc/vpc-1",
        f"arn:aws:iam::{ACCOUNT}:policy/p",
        f"arn:aws:iam::{ACCOUNT}:role/ours",
        f"arn:aws:kms:us-east-1:{ACCOUNT}:key/left",
        f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/app",
    ]
    assert result["count"] == 5
    assert result["by_service"] == {"ec2": 1, "iam": 2, "kms": 1, "logs": 1}
    assert [(r["arn"], r["state"]) for r in result["excluded"]] == [
        (f"arn:aws:kms:us-east-1:{ACCOUNT}:key/going", "PendingDeletion")
    ]
    assert result["resources"][3]["state"] == "Enabled"
    assert sorted(made) == ["iam", "kms", "resourcegroupstaggingapi"]
    json.dumps(result)  # the result is plain JSON


def test_main_in_check_mode_without_exclusion_or_iam(run_main):
    clients = fake_clients()
    args = {"tags": WANTED, "exclude_gone": False, "include_iam": False, "_ansible_check_mode": True}
    outcome, made = run_main(args, clients)
    result = outcome.result
    assert result["changed"] is False
    assert result["count"] == 4
    assert "excluded" not in result
    assert all("state" not in r for r in result["resources"])
    assert made == ["resourcegroupstaggingapi"]
    assert clients["resourcegroupstaggingapi"].get_resources.call_args_list[0].kwargs["TagFilters"] == mod.tag_filters(
        WANTED
    )


def test_main_iam_only_types_skip_the_tagging_api(run_main):
    outcome, made = run_main({"tags": WANTED, "resource_types": ["iam:role"]}, fake_clients())
    assert [r["arn"] for r in outcome.result["resources"]] == [f"arn:aws:iam::{ACCOUNT}:role/ours"]
    assert made == ["iam"]


@pytest.mark.parametrize(("tags", "message"), [({}, "at least one tag"), ({"": "x"}, "empty key")])
def test_main_refuses_bad_tags_before_any_call(run_main, tags, message):
    outcome, made = run_main({"tags": tags}, {})
    assert isinstance(outcome, ModuleFail)
    assert message in outcome.result["msg"]
    assert made == []


def test_main_reports_aws_errors(run_main):
    clients = fake_clients()
    clients["resourcegroupstaggingapi"].get_resources.side_effect = client_error("AccessDeniedException")
    outcome, _made = run_main({"tags": WANTED}, clients)
    assert isinstance(outcome, ModuleFail)
    assert "list tagged resources" in outcome.result["msg"]
