"""The production profile, end to end on a local cloud of its own: ``inventories/local-production`` (tasks in
private app subnets behind a NAT gateway per zone and VPC endpoints, data subnets with no route out, WAF,
Multi-AZ, a read replica, Container Insights, ECS Exec, a database that refuses connections without TLS,
Performance Insights, autoscaling) provisions, serves v1 through the load balancer from tasks without a public
IP, passes the security audit, scales under real load while a deploy and a swap respect blue/green, re-runs
with changed=0 and tears down leaving nothing, NAT gateways, their Elastic IPs, the endpoints and the WAF web
ACL (associated with the load balancer while it stands) included.

One test, in the order an operator's runs go: each step needs the one before, and a cloud of its own (its
environment, ``localprod``, and the load balancer's local ports) costs one ``localcloud up``.
"""

from __future__ import annotations

import time

import psycopg
import pytest

from localcloud.harness import REPO, LocalCloud, request, wait_for
from localcloud.loadgen import start_load
from tests.e2e.platform_support import live_resources, tagged_arns

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

INVENTORY = str(REPO / "inventories" / "local-production")
ENVIRONMENT = "localprod"
PREFIX = f"ecs-prod-{ENVIRONMENT}"
IDENTITY = {"Project": "ecs-prod", "Environment": ENVIRONMENT, "ManagedBy": "ecs_production.platform"}


@pytest.fixture(scope="module")
def cloud():
    cloud = LocalCloud()
    cloud.up()
    yield cloud
    cloud.down(remove=True)


def tags_of(resource: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def subnets_by_tier(ec2) -> dict[str, set[str]]:
    filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in IDENTITY.items()]
    tiers: dict[str, set[str]] = {}
    for subnet in ec2.describe_subnets(Filters=filters)["Subnets"]:
        tiers.setdefault(tags_of(subnet).get("Tier", "?"), set()).add(subnet["SubnetId"])
    return tiers


def table_of(subnet: str, tables: list[dict]) -> dict:
    return next(t for t in tables if any(a.get("SubnetId") == subnet for a in t["Associations"]))


def routes_out(table: dict) -> list[tuple[str, str]]:
    """(destination, target) of every route but the VPC's local one."""
    return sorted(
        (
            route.get("DestinationCidrBlock") or route.get("DestinationPrefixListId", "?"),
            route.get("NatGatewayId") or route.get("GatewayId") or "?",
        )
        for route in table["Routes"]
        if route.get("GatewayId") != "local"
    )


def check_network(cloud) -> set[str]:
    """The three tiers as the profile asks: returns the app subnets."""
    ec2 = cloud.client("ec2")
    tiers = subnets_by_tier(ec2)
    assert {tier: len(ids) for tier, ids in tiers.items()} == {"public": 2, "app": 2, "private": 2}
    subnets = {s["SubnetId"]: s for s in ec2.describe_subnets(SubnetIds=sorted(tiers["app"]))["Subnets"]}
    assert not any(s["MapPublicIpOnLaunch"] for s in subnets.values())
    tables = ec2.describe_route_tables()["RouteTables"]
    nats = {
        g["SubnetId"]: g["NatGatewayId"]
        for g in ec2.describe_nat_gateways(Filter=[{"Name": "state", "Values": ["available"]}])["NatGateways"]
    }
    assert set(nats) == tiers["public"], "one NAT gateway in each public subnet (per_az)"
    s3 = ec2.describe_vpc_endpoints(Filters=[{"Name": "service-name", "Values": ["com.amazonaws.us-east-1.s3"]}])
    s3_id = s3["VpcEndpoints"][0]["VpcEndpointId"]
    used_nats = set()
    for subnet in tiers["app"]:
        out = routes_out(table_of(subnet, tables))
        # only through NAT or endpoints: the default route to a NAT gateway, S3's prefix list to its endpoint
        assert [target for _, target in out] in ([nats_id, s3_id] for nats_id in nats.values()), out
        used_nats.add(out[0][1])
        zone = subnets[subnet]["AvailabilityZone"]
        nat_subnet = next(s for s, n in nats.items() if n == out[0][1])
        assert ec2.describe_subnets(SubnetIds=[nat_subnet])["Subnets"][0]["AvailabilityZone"] == zone
    assert used_nats == set(nats.values()), "each app subnet through its own zone's NAT gateway"
    for subnet in tiers["private"]:
        assert routes_out(table_of(subnet, tables)) == [], "a data subnet has no route out"
    endpoints = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-endpoint-type", "Values": ["Interface"]}])
    assert sorted(e["ServiceName"].rsplit("us-east-1.", 1)[1] for e in endpoints["VpcEndpoints"]) == sorted(
        ["ecr.api", "ecr.dkr", "logs", "ssm", "kms"]
    )
    assert all(set(e["SubnetIds"]) == tiers["app"] for e in endpoints["VpcEndpoints"])
    return tiers["app"]


def check_tasks(cloud, app_subnets: set[str]) -> None:
    """No task has a public IP: the services ask for none, in the app subnets, and their tasks run there."""
    ecs = cloud.client("ecs")
    services = ecs.describe_services(cluster=PREFIX, services=[f"{PREFIX}-blue", f"{PREFIX}-green"])["services"]
    for service in services:
        network = service["networkConfiguration"]["awsvpcConfiguration"]
        assert network["assignPublicIp"] == "DISABLED"
        assert set(network["subnets"]) == app_subnets
    arns = ecs.list_tasks(cluster=PREFIX, serviceName=f"{PREFIX}-blue")["taskArns"]
    tasks = ecs.describe_tasks(cluster=PREFIX, tasks=arns)["tasks"]
    assert len(tasks) >= 1  # blue starts with 2 and may already have been scaled in to its minimum, 1
    for task in tasks:
        details = {d["name"]: d["value"] for a in task["attachments"] for d in a["details"]}
        assert details["subnetId"] in app_subnets
        assert not any("public" in name.lower() for name in details), details


def check_waf(cloud) -> None:
    """The web ACL: the AWS common rule set and the rate limit, associated with the load balancer."""
    wafv2, elbv2 = cloud.client("wafv2"), cloud.client("elbv2")
    lb_arn = elbv2.describe_load_balancers(Names=[f"{PREFIX}-alb"])["LoadBalancers"][0]["LoadBalancerArn"]
    acl = wafv2.get_web_acl_for_resource(ResourceArn=lb_arn)["WebACL"]
    assert acl["Name"] == f"{PREFIX}-waf"
    statements = [rule["Statement"] for rule in sorted(acl["Rules"], key=lambda r: r["Priority"])]
    assert statements[0]["ManagedRuleGroupStatement"] == {"VendorName": "AWS", "Name": "AWSManagedRulesCommonRuleSet"}
    assert statements[1]["RateBasedStatement"]["Limit"] == 2000
    assert wafv2.list_resources_for_web_acl(WebACLArn=acl["ARN"])["ResourceArns"] == [lb_arn]


def inline_statements(iam, role: str) -> list[dict]:
    return [
        statement
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]
        for statement in iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]["Statement"]
    ]


def check_ecs_exec(cloud) -> None:
    """ECS Exec on both services; the task role, not the execution role, has the four channel actions alone."""
    services = cloud.client("ecs").describe_services(cluster=PREFIX, services=[f"{PREFIX}-blue", f"{PREFIX}-green"])
    assert [s["enableExecuteCommand"] for s in services["services"]] == [True, True], services["services"]
    iam = cloud.client("iam")
    channels = [
        statement
        for statement in inline_statements(iam, f"{PREFIX}-task")
        if any(str(action).startswith("ssmmessages:") for action in statement["Action"])
    ]
    assert channels == [
        {
            "Sid": "EcsExecSessionChannels",
            "Effect": "Allow",
            "Action": [
                "ssmmessages:CreateControlChannel",
                "ssmmessages:CreateDataChannel",
                "ssmmessages:OpenControlChannel",
                "ssmmessages:OpenDataChannel",
            ],
            "Resource": "*",
        }
    ]
    assert "ssmmessages" not in str(inline_statements(iam, f"{PREFIX}-execution"))


def check_database(cloud) -> None:
    """TLS only (the parameter group's rds.force_ssl): the local server refuses a plaintext connection and
    accepts verify-full against the local cloud's CA, which the tasks are given; Performance Insights on."""
    rds = cloud.client("rds")
    instance = rds.describe_db_instances(DBInstanceIdentifier=f"{PREFIX}-db")["DBInstances"][0]
    assert instance["PerformanceInsightsEnabled"] and instance["PerformanceInsightsRetentionPeriod"] == 7
    group = instance["DBParameterGroups"][0]["DBParameterGroupName"]
    assert group == f"{PREFIX}-db-postgres15"
    set_in_group = rds.describe_db_parameters(DBParameterGroupName=group, Source="user")["Parameters"]
    assert {p["ParameterName"]: p["ParameterValue"] for p in set_in_group}["rds.force_ssl"] == "1"
    server = next(d for d in cloud.status()["databases"] if d["identifier"] == f"{PREFIX}-db")
    ca = str(cloud.state_dir.resolve() / "tls" / "lb-cert.pem")
    settings = {
        "host": instance["Endpoint"]["Address"],
        "hostaddr": server["address"].split(":")[0],
        "port": instance["Endpoint"]["Port"],
        "user": "app_admin",
        "dbname": "app",
        "connect_timeout": 5,
    }
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(**settings, sslmode="disable")
    # No password here: reaching the authentication step means the verify-full handshake passed.
    with pytest.raises(psycopg.OperationalError, match="password") as refused:
        psycopg.connect(**settings, sslmode="verify-full", sslrootcert=ca)
    assert "certificate" not in str(refused.value)
    ecs = cloud.client("ecs")
    definition = ecs.describe_services(cluster=PREFIX, services=[f"{PREFIX}-blue"])["services"][0]["taskDefinition"]
    container = ecs.describe_task_definition(taskDefinition=definition)["taskDefinition"]["containerDefinitions"][0]
    environment = {e["name"]: e["value"] for e in container["environment"]}
    assert (environment["DB_SSLMODE"], environment["DB_SSLROOTCERT"]) == ("verify-full", ca)


def check_replica(cloud) -> None:
    """The read replica: RDS names its source, and locally it is a real streaming standby of the database's
    server - an item written through the load balancer is on it, over verify-full TLS, and it takes no write."""
    rds = cloud.client("rds")
    replica = rds.describe_db_instances(DBInstanceIdentifier=f"{PREFIX}-db-replica")["DBInstances"][0]
    assert replica["ReadReplicaSourceDBInstanceIdentifier"] == f"{PREFIX}-db"
    assert not replica["PubliclyAccessible"] and replica["StorageEncrypted"]
    assert replica["DBParameterGroups"][0]["DBParameterGroupName"] == f"{PREFIX}-db-postgres15"
    server = next(d for d in cloud.status()["databases"] if d["identifier"] == f"{PREFIX}-db-replica")
    assert server["replica_of"] == f"{PREFIX}-db", server
    status, item, _ = request("POST", f"{cloud.https}/items", {"name": "on the replica too"})
    assert status == 201, item
    password = cloud.client("ssm").get_parameter(Name="/ecs-prod/localprod/db/password", WithDecryption=True)
    settings = {
        "host": replica["Endpoint"]["Address"],
        "hostaddr": server["address"].split(":")[0],
        "port": replica["Endpoint"]["Port"],
        "user": "app_admin",
        "password": password["Parameter"]["Value"],
        "dbname": "app",
        "connect_timeout": 5,
        "sslmode": "verify-full",
        "sslrootcert": str(cloud.state_dir.resolve() / "tls" / "lb-cert.pem"),
    }

    def streamed() -> bool:
        with psycopg.connect(**settings) as connection:
            return connection.execute("SELECT name FROM items WHERE id = %s", (item["id"],)).fetchone() is not None

    wait_for(streamed, timeout=30, what="the item on the replica")
    with psycopg.connect(**settings) as connection:
        assert connection.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            connection.execute("DELETE FROM items")


def scaling_of(cloud) -> dict[str, dict]:
    """Colour -> its scalable target (min, max, suspended) and its policies' metric types, as the API answers."""
    aas = cloud.client("application-autoscaling")
    targets = aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    policies = aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]
    found = {}
    for color in ("blue", "green"):
        resource = f"service/{PREFIX}/{PREFIX}-{color}"
        target = next(t for t in targets if t["ResourceId"] == resource)
        found[color] = {
            "min": target["MinCapacity"],
            "max": target["MaxCapacity"],
            "suspended": all(target["SuspendedState"].values()),
            "metrics": sorted(
                p["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]["PredefinedMetricType"]
                for p in policies
                if p["ResourceId"] == resource
            ),
        }
    return found


def desired(cloud) -> dict[str, int]:
    services = cloud.client("ecs").describe_services(cluster=PREFIX, services=[f"{PREFIX}-blue", f"{PREFIX}-green"])
    return {s["serviceName"].rsplit("-", 1)[1]: s["desiredCount"] for s in services["services"]}


def activities(cloud, color: str) -> list[dict]:
    targets = cloud.status().get("scaling", {}).get("targets", {})
    return targets.get(f"service/{PREFIX}/{PREFIX}-{color}", {}).get("activities", [])


def check_autoscaling(cloud, tmp_path) -> None:
    """Autoscaling that respects blue/green, under real load through the load balancer. A light load runs
    throughout (a target group without traffic is never scaled in, on AWS as here): blue (serving) scales in to
    its minimum; a deploy sizes green (suspended) like blue; a heavy load scales blue out; the swap gives green
    at least blue's count before the traffic moves, with no failed request, and green is not scaled in while its
    metrics still cover the time it had no traffic; then green scales in under the light load while blue,
    suspended, keeps its tasks for a rollback."""
    both = ["ALBRequestCountPerTarget", "ECSServiceAverageCPUUtilization"]
    assert scaling_of(cloud) == {
        "blue": {"min": 1, "max": 3, "suspended": False, "metrics": both},
        "green": {"min": 0, "max": 3, "suspended": True, "metrics": both},
    }
    # 2 requests a second: 60 a minute per task for a target of 600, below 90 % of it with any count.
    light = start_load(cloud.https, tmp_path / "light-load.jsonl", rate=2, connections=1, paths="/health")
    heavy = None
    try:
        # Blue goes from its initial 2 tasks to its minimum (the scaler, not a playbook).
        wait_for(lambda: desired(cloud)["blue"] == 1, timeout=150, what="blue scaled in to 1 under a light load")
        # status.json is rewritten every second: the activity shows there a moment later.
        wait_for(lambda: any(a["to"] == 1 for a in activities(cloud, "blue")), timeout=10, what="blue's scale-in")

        cloud.cli("publish", "v2")
        deploy = cloud.playbook("deploy", "-i", INVENTORY, "-e", "version=v2")
        assert deploy.returncode == 0, deploy.tail()
        assert desired(cloud)["green"] == desired(cloud)["blue"] == 1
        assert scaling_of(cloud)["green"]["suspended"]

        # 25 requests a second more (1500 a minute per task for a target of 600): blue scales out, to 3 at most.
        heavy = start_load(cloud.https, tmp_path / "heavy-load.jsonl", rate=25, connections=4, paths="/health,/")
        wait_for(lambda: desired(cloud)["blue"] >= 2, timeout=90, what="blue scaled out under load")
        wait_for(lambda: healthy_blue(cloud) >= 2, timeout=120, what="blue's new tasks healthy")
        wait_for(
            lambda: any(a["to"] >= 2 and "> target" in a["reason"] for a in activities(cloud, "blue")),
            timeout=10,
            what="blue's scale-out activity, with its reason",
        )
        under_load = desired(cloud)["blue"]
        swap = cloud.playbook("swap", "-i", INVENTORY, "-e", "color=green")
        assert swap.returncode == 0, swap.tail()
        # Green took the traffic with at least what blue ran, and scales; blue is suspended, its tasks kept.
        assert desired(cloud)["green"] >= under_load, (desired(cloud), under_load, swap.tail())
        assert scaling_of(cloud)["green"] == {"min": 1, "max": 3, "suspended": False, "metrics": both}
        assert scaling_of(cloud)["blue"]["suspended"] and scaling_of(cloud)["blue"]["min"] == 0
        time.sleep(3)  # the heavy load goes on a moment on green alone
        records = heavy.stop()
        heavy = None
        failed = [r for r in records if r.get("status") != 200]
        assert records and failed == [], failed[:5]
        assert {r.get("color") for r in records[-20:]} == {"green"}

        # Under the light load green scales in to its minimum; blue, suspended, is not scaled in.
        blue_kept = desired(cloud)["blue"]
        wait_for(lambda: desired(cloud)["green"] == 1, timeout=150, what="green scaled in to 1 under a light load")
        assert desired(cloud)["blue"] == blue_kept >= 2
    finally:
        for load in (heavy, light):
            if load is not None:
                load.stop()
    light_failed = [r for r in light.records() if r.get("status") != 200]
    assert light_failed == [], light_failed[:5]


def healthy_blue(cloud) -> int:
    elbv2 = cloud.client("elbv2")
    arn = elbv2.describe_target_groups(Names=[f"{PREFIX}-blue"])["TargetGroups"][0]["TargetGroupArn"]
    health = elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    return sum(1 for d in health if d["TargetHealth"]["State"] == "healthy")


def closed_on_aws(cloud: LocalCloud, arn: str) -> bool:
    """Whether the resource is one AWS keeps listing once deleted, in its closed state."""
    ecs = cloud.client("ecs")
    if ":natgateway/" in arn:
        return True  # live_resources() found none pending or available
    if arn.startswith("arn:aws:ecs:") and ":cluster/" in arn:
        return all(c["status"] == "INACTIVE" for c in ecs.describe_clusters(clusters=[arn])["clusters"])
    if arn.startswith("arn:aws:ecs:") and ":service/" in arn:
        cluster = arn.split(":service/", 1)[1].split("/", maxsplit=1)[0]
        services = ecs.describe_services(cluster=cluster, services=[arn])["services"]
        return all(service["status"] in ("DRAINING", "INACTIVE") for service in services)
    if arn.startswith("arn:aws:kms:"):
        state = cloud.client("kms").describe_key(KeyId=arn)["KeyMetadata"]["KeyState"]
        return state in ("PendingDeletion", "PendingReplicaDeletion")
    if ":task-definition/" in arn:
        return ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]["status"] != "ACTIVE"
    return False


def test_the_production_profile_serves_from_private_subnets_re_runs_clean_and_leaves_nothing(cloud, tmp_path):
    started = time.monotonic()
    run = cloud.playbook("provision", "-i", INVENTORY)
    assert run.returncode == 0, run.tail()
    app_subnets = check_network(cloud)
    check_waf(cloud)

    # The local data plane routes to tasks by their private addresses: v1 serves through the ALB.
    cloud.cli("publish", "v1", "--redeploy")  # the only repository of this cloud
    wait_for(lambda: healthy_blue(cloud) >= 1, timeout=300, what="blue's healthy targets")
    wait_for(lambda: request("GET", f"{cloud.https}/health")[0] == 200, timeout=60, what="/health through the ALB")
    check_tasks(cloud, app_subnets)
    cluster = cloud.client("ecs").describe_clusters(clusters=[PREFIX], include=["SETTINGS"])["clusters"][0]
    assert {"name": "containerInsights", "value": "enabled"} in cluster["settings"], cluster.get("settings")
    check_database(cloud)
    check_ecs_exec(cloud)
    check_replica(cloud)
    # The audit allows what the profile asks for (ECS Exec, the NAT routes of the app subnets) and nothing more.
    audit = cloud.playbook("audit", "-i", INVENTORY)
    assert audit.returncode == 0, audit.tail()
    assert "rules passed" in audit.output and "AUDIT FAILED" not in audit.output
    check_autoscaling(cloud, tmp_path)

    again = cloud.playbook("provision", "-i", INVENTORY)
    assert again.returncode == 0, again.tail()
    assert again.changed == 0, again.tail()

    # Switched off, the replica goes (its server too); the database stays.
    without = cloud.playbook("provision", "-i", INVENTORY, "-e", "rds_read_replica=false")
    assert without.returncode == 0, without.tail()
    assert without.changed == 1, without.tail()
    instances = [d["DBInstanceIdentifier"] for d in cloud.client("rds").describe_db_instances()["DBInstances"]]
    assert instances == [f"{PREFIX}-db"], instances
    wait_for(
        lambda: [d["identifier"] for d in cloud.status()["databases"]] == [f"{PREFIX}-db"],
        timeout=60,
        what="the replica's server gone",
    )

    down = cloud.playbook("teardown", "-i", INVENTORY)
    assert down.returncode == 0, down.tail()
    assert "Nothing tagged for ecs-prod-localprod is left" in down.output
    assert live_resources(cloud, ENVIRONMENT) == {}
    # What AWS keeps listing once deleted (a NAT gateway for a while, an INACTIVE cluster, service or
    # task definition, a KMS key pending deletion) is left out, as teardown's own check leaves it out.
    left = [arn for arn in tagged_arns(cloud, ENVIRONMENT) if not closed_on_aws(cloud, arn)]
    assert left == [], left
    print(
        f"production profile: provision {run.seconds:.0f} s, re-run {again.seconds:.0f} s, "
        f"teardown {down.seconds:.0f} s, in all {time.monotonic() - started:.0f} s"
    )
