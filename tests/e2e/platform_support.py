"""Reading the account back after the collection's playbooks ran against a local AWS API (running them:
``localcloud.harness``)."""

from __future__ import annotations

from localcloud.harness import ENVIRONMENT, PROJECT

IDENTITY = {"Project": PROJECT, "Environment": ENVIRONMENT, "ManagedBy": "ecs_production.platform"}


def identity(environment: str = ENVIRONMENT) -> dict[str, str]:
    return dict(IDENTITY, Environment=environment)


def tagged_arns(api, environment: str = ENVIRONMENT) -> list[str]:
    """Everything tagged for the environment, as the tagging API and IAM list it (nothing filtered)."""
    tagging = api.client("resourcegroupstaggingapi")
    filters = [{"Key": k, "Values": [v]} for k, v in identity(environment).items()]
    arns = []
    for page in tagging.get_paginator("get_resources").paginate(TagFilters=filters):
        arns += [r["ResourceARN"] for r in page["ResourceTagMappingList"]]
    iam = api.client("iam")
    arns += [r["Arn"] for r in iam.list_roles(PathPrefix=f"/{PROJECT}/{environment}/")["Roles"]]
    return sorted(arns)


def live_resources(api, environment: str = ENVIRONMENT) -> dict[str, list[str]]:
    """What of the environment still exists, read service by service (an independent check of teardown).
    NAT gateways, VPC endpoints and Elastic IPs too (the production profile's): the first two by their tags
    and state, the addresses account-wide (the NAT gateways' are untagged; no other environment makes any)."""
    ec2, elbv2, rds = api.client("ec2"), api.client("elbv2"), api.client("rds")
    tags = identity(environment)
    prefix = f"{PROJECT}-{environment}"
    tag_filter = [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]
    found = {
        "vpcs": [v["VpcId"] for v in ec2.describe_vpcs(Filters=tag_filter)["Vpcs"]],
        "subnets": [s["SubnetId"] for s in ec2.describe_subnets(Filters=tag_filter)["Subnets"]],
        "security_groups": [g["GroupId"] for g in ec2.describe_security_groups(Filters=tag_filter)["SecurityGroups"]],
        "internet_gateways": [
            g["InternetGatewayId"] for g in ec2.describe_internet_gateways(Filters=tag_filter)["InternetGateways"]
        ],
        # The local AWS API ignores tag filters on NAT gateways: the tags are compared here.
        "nat_gateways": [
            g["NatGatewayId"]
            for g in ec2.describe_nat_gateways(Filter=[{"Name": "state", "Values": ["pending", "available"]}])[
                "NatGateways"
            ]
            if tags.items() <= {t["Key"]: t["Value"] for t in g.get("Tags", [])}.items()
        ],
        "vpc_endpoints": [
            e["VpcEndpointId"]
            for e in ec2.describe_vpc_endpoints(Filters=tag_filter)["VpcEndpoints"]
            if e["State"].lower() not in ("deleted", "deleting")
        ],
        "elastic_ips": [a.get("AllocationId", a.get("PublicIp")) for a in ec2.describe_addresses()["Addresses"]],
        "web_acls": [a["Name"] for a in api.client("wafv2").list_web_acls(Scope="REGIONAL")["WebACLs"]],
        "load_balancers": [lb["LoadBalancerName"] for lb in elbv2.describe_load_balancers()["LoadBalancers"]],
        "target_groups": [tg["TargetGroupName"] for tg in elbv2.describe_target_groups()["TargetGroups"]],
        "db_instances": [d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]],
        "db_subnet_groups": [g["DBSubnetGroupName"] for g in rds.describe_db_subnet_groups()["DBSubnetGroups"]],
        "parameters": [
            p["Name"]
            for p in api.client("ssm").get_parameters_by_path(Path=f"/{PROJECT}/{environment}", Recursive=True)[
                "Parameters"
            ]
        ],
        "roles": [r["RoleName"] for r in api.client("iam").list_roles(PathPrefix=f"/{PROJECT}/")["Roles"]],
        "log_groups": [g["logGroupName"] for g in api.client("logs").describe_log_groups()["logGroups"]],
        "repositories": [r["repositoryName"] for r in api.client("ecr").describe_repositories()["repositories"]],
        "certificates": [c["CertificateArn"] for c in api.client("acm").list_certificates()["CertificateSummaryList"]],
        "clusters": [
            c["clusterName"]
            for c in api.client("ecs").describe_clusters(clusters=[f"{PROJECT}-{environment}"])["clusters"]
            if c["status"] == "ACTIVE"
        ],
        "alarms": [
            a["AlarmName"] for a in api.client("cloudwatch").describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]
        ],
        "dashboards": [
            d["DashboardName"]
            for d in api.client("cloudwatch").list_dashboards(DashboardNamePrefix=prefix)["DashboardEntries"]
        ],
    }
    kms = api.client("kms")
    keys = [kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"] for k in kms.list_keys()["Keys"]]
    found["kms_keys"] = [
        key["KeyId"] for key in keys if key["KeyState"] != "PendingDeletion" and key["KeyManager"] == "CUSTOMER"
    ]
    return {kind: ids for kind, ids in found.items() if ids}
