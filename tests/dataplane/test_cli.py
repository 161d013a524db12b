"""``localcloud up|status|publish|reset|down`` as a user runs it: one background process with the
data plane, everything in the state dir, and nothing left behind by ``down``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import boto3
import pytest

from localcloud.awsapi import free_port
from localcloud.cli import StateDir, owned_processes, pid_alive, port_open

from .conftest import DP_MASTER_PASSWORD, dp_state_dir, dp_wait_until

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


class Cli:
    def __init__(self, state_dir: str):
        self.state_dir = state_dir
        self.port, self.http, self.https = free_port(), free_port(), free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LOCALCLOUD"))}
        self.env["PYTHONPATH"] = str(REPO)

    def __call__(self, *args: str, timeout: float = 150) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "localcloud", "--state-dir", self.state_dir, *args]
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=timeout, check=False)

    def up(self) -> subprocess.CompletedProcess:
        return self(
            "up", "--port", str(self.port), f"--listener-port=80={self.http}", f"--listener-port=443={self.https}"
        )

    def status(self) -> dict:
        return json.loads(self("status", "--json").stdout)

    def client(self, service: str):
        return boto3.client(
            service,
            region_name="us-east-1",
            endpoint_url=f"http://127.0.0.1:{self.port}",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


def address_holders(ip: str) -> set[int]:
    """The processes holding the machine-wide claim of a data plane address (AddressPool's flock on
    ``<tmp>/localcloud-addresses/<ip>``: the Cli's clouds run with the default lock directory)."""
    try:
        info = (Path(tempfile.gettempdir()) / "localcloud-addresses" / ip).stat()
    except FileNotFoundError:
        return set()
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    holders = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == device:
            holders.add(int(fields[4]))
    return holders


@pytest.fixture
def cli():
    state_dir = dp_state_dir()
    cli = Cli(state_dir)
    try:
        yield cli
    finally:
        cli("down")
        shutil.rmtree(state_dir, ignore_errors=True)


def platform(cli: Cli) -> None:
    """A database and a one-task service of a published image, made through the API."""
    rds, ecs, ec2 = cli.client("rds"), cli.client("ecs"), cli.client("ec2")
    rds.create_db_instance(
        DBInstanceIdentifier="cli-db",
        Engine="postgres",
        DBInstanceClass="db.t4g.micro",
        MasterUsername="app_admin",
        MasterUserPassword=DP_MASTER_PASSWORD,
        DBName="app",
        AllocatedStorage=20,
    )
    cli.client("ssm").put_parameter(Name="/cli/db/password", Value=DP_MASTER_PASSWORD, Type="SecureString")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="tasks", Description="tasks", VpcId=vpc)["GroupId"]
    uri = cli.client("ecr").create_repository(repositoryName="cli-app")["repository"]["repositoryUri"]
    ecs.create_cluster(clusterName="cli")
    env = {
        "APP_VERSION": "v1",
        "DEPLOYMENT_COLOR": "blue",
        "GUNICORN_WORKERS": "1",
        "AWS_REGION": "us-east-1",
        "DB_HOST": "cli-db.aaaaaaaaaa.us-east-1.rds.amazonaws.com",
        "DB_NAME": "app",
        "DB_USER": "app_admin",
        "DB_PASSWORD_SSM_PARAM": "/cli/db/password",
    }
    definition = ecs.register_task_definition(
        family="cli",
        networkMode="awsvpc",
        cpu="256",
        memory="512",
        containerDefinitions=[
            {
                "name": "app",
                "image": f"{uri}:v1",
                "portMappings": [{"containerPort": 8000}],
                "environment": [{"name": k, "value": v} for k, v in env.items()],
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    network = {"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}}
    ecs.create_service(
        cluster="cli",
        serviceName="cli-web",
        taskDefinition=definition,
        desiredCount=1,
        launchType="FARGATE",
        networkConfiguration=network,
    )


def test_up_runs_the_cloud_and_down_leaves_no_process_and_no_port(cli):
    assert cli("status").returncode == 3  # down
    up = cli.up()
    assert up.returncode == 0, up.stdout + up.stderr
    status = cli.status()
    assert status["awsapi"]["ready"] and status["data_plane"]["state"] == "running"
    assert status["awsapi"]["endpoint_url"] == f"http://127.0.0.1:{cli.port}"

    platform(cli)
    published = cli("publish", "v1")  # the only repository
    assert published.returncode == 0 and "published" in published.stdout and ":v1" in published.stdout
    assert "already published" in cli("publish", "v1", "--repository", "cli-app").stdout
    assert cli("publish", "v1", "--repository", "nope").returncode == 2

    def running():
        current = cli.status()
        tasks = [t for t in current["tasks"] if t["last_status"] == "RUNNING" and t["pid"]]
        databases = [d for d in current["databases"] if d["state"] == "available"]
        return (tasks, databases, current) if tasks and databases else None

    tasks, databases, status = dp_wait_until(running, 90, interval=0.5, what="a task and a database")
    text = cli("status").stdout
    assert "cli-db.aaaaaaaaaa.us-east-1.rds.amazonaws.com:5432 -> 127.0.5." in text
    assert f"{tasks[0]['task_id'][:12]}  cli-web  RUNNING" in text
    assert [s["service"] for s in status["services"]] == ["cli-web"]
    addresses = [
        (a.rpartition(":")[0], int(a.rpartition(":")[2])) for a in (tasks[0]["address"], databases[0]["address"])
    ]
    addresses.append(("127.0.0.1", cli.port))
    dp_wait_until(lambda: all(port_open(*address) for address in addresses), 30, what=f"{addresses} open")
    addresses.append(("127.0.0.1", cli.http))  # no load balancer here: closed before and after
    state = StateDir(Path(cli.state_dir).resolve())
    assert len(owned_processes(state)) >= 3  # the API, the task, PostgreSQL

    down = cli("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert owned_processes(state) == []
    # Closed, unless another local cloud on this machine has claimed a task's or the database's address since.
    assert [address for address in addresses if port_open(*address) and not address_holders(address[0])] == []
    assert cli("status").returncode == 3

    again = cli.up()  # up after down starts clean
    assert again.returncode == 0, again.stdout + again.stderr
    status = cli.status()
    assert (status["tasks"], status["databases"], status["services"]) == ([], [], [])
    assert not (Path(cli.state_dir) / "rds" / "us-east-1").exists()
    assert cli.client("ecr").describe_repositories()["repositories"] == []


def test_reset_empties_the_api_and_stops_what_the_data_plane_runs(cli):
    assert cli.up().returncode == 0
    cli.client("rds").create_db_instance(
        DBInstanceIdentifier="reset-db",
        Engine="postgres",
        DBInstanceClass="db.t4g.micro",
        MasterUsername="app_admin",
        MasterUserPassword=DP_MASTER_PASSWORD,
        AllocatedStorage=20,
    )
    database = dp_wait_until(
        lambda: [d for d in cli.status()["databases"] if d["state"] == "available"], 60, interval=0.5, what="a database"
    )[0]
    host, _, port = database["address"].rpartition(":")
    server, ours = database["pid"], StateDir(Path(cli.state_dir)).read_pid("awsapi")
    assert server and ours in address_holders(host)

    reset = cli("reset")
    assert reset.returncode == 0, reset.stdout + reset.stderr
    assert cli.client("rds").describe_db_instances()["DBInstances"] == []
    assert cli.status()["databases"] == [] and not pid_alive(server)
    # The address is released; nothing listens on it any more unless another local cloud on this machine
    # (a test of another worker, another user's cloud) has claimed it since.
    holders = address_holders(host)
    assert ours not in holders
    assert not port_open(host, int(port)) or holders
    assert cli.status()["awsapi"]["ready"]  # the API itself keeps running
