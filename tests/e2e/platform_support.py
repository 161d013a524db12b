"""Running the collection's playbooks against a local AWS API, and reading the account back."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RECAP = re.compile(r"^localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)

PROJECT, ENVIRONMENT = "ecs-prod", "local"
PREFIX = f"{PROJECT}-{ENVIRONMENT}"
IDENTITY = {"Project": PROJECT, "Environment": ENVIRONMENT, "ManagedBy": "ecs_production.platform"}


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def changed(self) -> int:
        found = RECAP.findall(self.stdout)
        assert found, f"no play recap in the output:\n{self.output[-5000:]}"
        return int(found[-1][1])

    def tail(self, chars: int = 6000) -> str:
        return self.output[-chars:]


def playbook_env(api, extra: dict | None = None) -> dict:
    env = dict(
        os.environ,
        AWS_ENDPOINT_URL=api.endpoint_url,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    env.update(extra or {})
    return env


def playbook_command(name: str, *args: str) -> list[str]:
    return ["ansible-playbook", str(REPO / "playbooks" / f"{name}.yml"), *args]


def run_playbook(api, name: str, *args: str, env: dict | None = None, timeout: int = 900) -> Run:
    result = subprocess.run(
        playbook_command(name, *args),
        cwd=REPO,
        env=playbook_env(api, env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(result.returncode, result.stdout, result.stderr)


def kill_playbook_when(api, name: str, marker: str, timeout: int = 600) -> str:
    """Start a playbook and SIGKILL it (and its module processes) once ``marker`` shows in its output."""
    process = subprocess.Popen(
        playbook_command(name),
        cwd=REPO,
        env=playbook_env(api),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen = []
    deadline = time.monotonic() + timeout
    try:
        for line in process.stdout:
            seen.append(line)
            if marker in line or time.monotonic() > deadline:
                break
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    output = "".join(seen)
    assert marker in output, f"the playbook never reached {marker!r}:\n{output[-5000:]}"
    return output


def tagged_arns(api) -> list[str]:
    """Everything tagged for the environment, as the tagging API and IAM list it (nothing filtered)."""
    tagging = api.client("resourcegroupstaggingapi")
    filters = [{"Key": k, "Values": [v]} for k, v in IDENTITY.items()]
    arns = []
    for page in tagging.get_paginator("get_resources").paginate(TagFilters=filters):
        arns += [r["ResourceARN"] for r in page["ResourceTagMappingList"]]
    iam = api.client("iam")
    arns += [r["Arn"] for r in iam.list_roles(PathPrefix=f"/{PROJECT}/{ENVIRONMENT}/")["Roles"]]
    return sorted(arns)


def live_resources(api) -> dict[str, list[str]]:
    """What of the environment still exists, read service by service (an independent check of teardown)."""
    ec2, elbv2, rds = api.client("ec2"), api.client("elbv2"), api.client("rds")
    tag_filter = [{"Name": f"tag:{k}", "Values": [v]} for k, v in IDENTITY.items()]
    found = {
        "vpcs": [v["VpcId"] for v in ec2.describe_vpcs(Filters=tag_filter)["Vpcs"]],
        "subnets": [s["SubnetId"] for s in ec2.describe_subnets(Filters=tag_filter)["Subnets"]],
        "security_groups": [g["GroupId"] for g in ec2.describe_security_groups(Filters=tag_filter)["SecurityGroups"]],
        "internet_gateways": [
            g["InternetGatewayId"] for g in ec2.describe_internet_gateways(Filters=tag_filter)["InternetGateways"]
        ],
        "load_balancers": [lb["LoadBalancerName"] for lb in elbv2.describe_load_balancers()["LoadBalancers"]],
        "target_groups": [tg["TargetGroupName"] for tg in elbv2.describe_target_groups()["TargetGroups"]],
        "db_instances": [d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]],
        "db_subnet_groups": [g["DBSubnetGroupName"] for g in rds.describe_db_subnet_groups()["DBSubnetGroups"]],
        "parameters": [
            p["Name"]
            for p in api.client("ssm").get_parameters_by_path(Path=f"/{PROJECT}/{ENVIRONMENT}", Recursive=True)[
                "Parameters"
            ]
        ],
        "roles": [r["RoleName"] for r in api.client("iam").list_roles(PathPrefix=f"/{PROJECT}/")["Roles"]],
        "log_groups": [g["logGroupName"] for g in api.client("logs").describe_log_groups()["logGroups"]],
        "repositories": [r["repositoryName"] for r in api.client("ecr").describe_repositories()["repositories"]],
        "certificates": [c["CertificateArn"] for c in api.client("acm").list_certificates()["CertificateSummaryList"]],
        "clusters": [
            c["clusterName"]
            for c in api.client("ecs").describe_clusters(clusters=[PREFIX])["clusters"]
            if c["status"] == "ACTIVE"
        ],
    }
    kms = api.client("kms")
    found["kms_keys"] = [
        k["KeyId"]
        for k in kms.list_keys()["Keys"]
        if kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]["KeyState"] not in ("PendingDeletion",)
        and kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]["KeyManager"] == "CUSTOMER"
    ]
    return {kind: ids for kind, ids in found.items() if ids}


def listener_weights(api) -> dict[str, int]:
    elbv2 = api.client("elbv2")
    lb = elbv2.describe_load_balancers(Names=[f"{PREFIX}-alb"])["LoadBalancers"][0]
    listener = next(
        li for li in elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"] if li["Port"] == 443
    )
    groups = listener["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]
    return {g["TargetGroupArn"].split("/")[1].rsplit("-", 1)[1]: g["Weight"] for g in groups}


def set_listener_weights(api, weights: dict[str, int]) -> None:
    elbv2 = api.client("elbv2")
    lb = elbv2.describe_load_balancers(Names=[f"{PREFIX}-alb"])["LoadBalancers"][0]
    listener = next(
        li for li in elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"] if li["Port"] == 443
    )
    arns = {
        tg["TargetGroupName"].rsplit("-", 1)[1]: tg["TargetGroupArn"]
        for tg in elbv2.describe_target_groups(Names=[f"{PREFIX}-{c}" for c in weights])["TargetGroups"]
    }
    elbv2.modify_listener(
        ListenerArn=listener["ListenerArn"],
        DefaultActions=[
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [{"TargetGroupArn": arns[c], "Weight": w} for c, w in weights.items()]
                },
            }
        ],
    )


def desired_counts(api) -> dict[str, int]:
    services = api.client("ecs").describe_services(cluster=PREFIX, services=[f"{PREFIX}-blue", f"{PREFIX}-green"])
    return {s["serviceName"].rsplit("-", 1)[1]: s["desiredCount"] for s in services["services"]}
