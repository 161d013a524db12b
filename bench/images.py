"""Benchmark the local cloud's images: how long ``localcloud publish`` takes (a first publish, the
same context again, a changed release), and how soon a new version's first task starts after its
pull when its requirements are unchanged.

    python bench/images.py [--json]

What runs, on loopback and bounded in time: a whole local cloud (``bin/localcloud up`` in a state dir
of its own), made through the API into a one-task service with a database: an immutable ECR
repository, an RDS instance (a real PostgreSQL), the password in SSM, a cluster and a service of v1.

Figures:

* ``publish_first``: ``localcloud publish v1`` of ``app/`` into an empty store (snapshot, the venv of
  its requirements built, PutImage); ``publish_again``: the same context again (a no-op: same digest,
  no new image; the issue's bound is 2 s); ``publish_changed``: v2, another release of the code
  (``localcloud.harness.release_context``), with the same requirements (its venv is reused). Each as
  the user sees it (the command's wall time, Python's start-up included) and as the command reports
  it (the publish itself), and the command's CPU time (user + system, Python's start-up included):
  on a loaded machine the wall time is mostly waiting for a CPU.
* ``first_task``: after ``UpdateService`` to v2, the seconds until v2's first task is RUNNING (pulled:
  the tag resolved through ECR, its snapshot and venv found, the process started) and until it
  answers ``GET /live`` on its own address (the app's start-up: settings, SSM, the database).
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from localcloud.harness import LocalCloud, release_context, wait_for  # noqa: E402

PASSWORD = "bench-password-0123456789"  # noqa: S105 - a local database that lives for the benchmark
REGION = "us-east-1"


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def publish(cloud: LocalCloud, *args: str) -> dict:
    started, cpu = time.monotonic(), children_cpu()
    result = cloud.cli("publish", *args)
    wall, cpu = time.monotonic() - started, children_cpu() - cpu
    reported = re.search(r" in ([0-9.]+) s", result.stdout)
    digest = re.search(r"\((sha256:[0-9a-f]{64})\)", result.stdout)
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),  # the command's own CPU time: what it costs on an idle machine
        "publish_s": float(reported.group(1)) if reported else None,
        "new": "already published" not in result.stdout,
        "digest": digest.group(1) if digest else None,
    }


def platform(cloud: LocalCloud) -> dict:
    """A database, its password in SSM, an immutable repository, a cluster, the network of a service."""
    rds, ec2 = cloud.client("rds"), cloud.client("ec2")
    rds.create_db_instance(
        DBInstanceIdentifier="bench-db",
        Engine="postgres",
        DBInstanceClass="db.t4g.micro",
        MasterUsername="app_admin",
        MasterUserPassword=PASSWORD,
        DBName="app",
        AllocatedStorage=20,
    )
    cloud.client("ssm").put_parameter(Name="/bench/db/password", Value=PASSWORD, Type="SecureString")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="tasks", Description="tasks", VpcId=vpc)["GroupId"]
    repository = cloud.client("ecr").create_repository(repositoryName="bench-app", imageTagMutability="IMMUTABLE")
    cloud.client("ecs").create_cluster(clusterName="bench")
    return {"uri": repository["repository"]["repositoryUri"], "subnet": subnet, "group": group}


def task_definition(cloud: LocalCloud, uri: str, tag: str) -> str:
    env = {
        "APP_VERSION": tag,
        "DEPLOYMENT_COLOR": "blue",
        "GUNICORN_WORKERS": "1",
        "AWS_REGION": REGION,
        "DB_HOST": "bench-db.aaaaaaaaaa.us-east-1.rds.amazonaws.com",
        "DB_NAME": "app",
        "DB_USER": "app_admin",
        "DB_PASSWORD_SSM_PARAM": "/bench/db/password",
    }
    return cloud.client("ecs").register_task_definition(
        family="bench",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[
            {
                "name": "app",
                "image": f"{uri}:{tag}",
                "portMappings": [{"containerPort": 8000}],
                "environment": [{"name": k, "value": v} for k, v in env.items()],
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]


def tasks_of(cloud: LocalCloud, tag: str) -> list[dict]:
    ecs = cloud.client("ecs")
    arns = ecs.list_tasks(cluster="bench", serviceName="bench-web")["taskArns"]
    found = ecs.describe_tasks(cluster="bench", tasks=arns)["tasks"] if arns else []
    return [t for t in found if t["containers"][0]["image"].endswith(f":{tag}") and t["lastStatus"] != "STOPPED"]


def live(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}:8000/live", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def address_of(task: dict) -> str | None:
    interfaces = task["containers"][0].get("networkInterfaces") or []
    return interfaces[0].get("privateIpv4Address") if interfaces else None


def first_task(cloud: LocalCloud, tag: str, since: float, timeout: float = 120) -> dict:
    """Seconds from ``since`` until ``tag``'s first task runs, then until it answers /live."""
    running = wait_for(
        lambda: next((t for t in tasks_of(cloud, tag) if t["lastStatus"] == "RUNNING" and address_of(t)), None),
        timeout=timeout,
        interval=0.05,
        what=f"a running task of {tag}",
    )
    started = time.monotonic() - since
    wait_for(lambda: live(address_of(running)), timeout=timeout, interval=0.05, what=f"{tag} answering /live")
    return {"running_s": round(started, 2), "serving_s": round(time.monotonic() - since, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = parser.parse_args(argv)
    figures: dict = {}
    cloud = LocalCloud()
    cloud.up()
    try:
        made = platform(cloud)
        with tempfile.TemporaryDirectory(prefix="bench-images-") as work:
            figures["publish_first"] = publish(cloud, "v1", "--repository", "bench-app")
            figures["publish_again"] = publish(cloud, "v1", "--repository", "bench-app")
            v2 = release_context(Path(work) / "v2", "v2: another release of the code")
            figures["publish_changed"] = publish(cloud, "v2", "--repository", "bench-app", "--context", str(v2))
        ecs = cloud.client("ecs")
        network = {"awsvpcConfiguration": {"subnets": [made["subnet"]], "securityGroups": [made["group"]]}}
        since = time.monotonic()
        ecs.create_service(
            cluster="bench",
            serviceName="bench-web",
            taskDefinition=task_definition(cloud, made["uri"], "v1"),
            desiredCount=1,
            launchType="FARGATE",
            networkConfiguration=network,
        )
        figures["first_task_v1_with_a_new_database"] = first_task(cloud, "v1", since, timeout=180)
        v2_definition = task_definition(cloud, made["uri"], "v2")
        since = time.monotonic()
        ecs.update_service(cluster="bench", service="bench-web", taskDefinition=v2_definition)
        figures["first_task"] = first_task(cloud, "v2", since)
    finally:
        cloud.down(remove=True)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print("localcloud images")
    for name in ("publish_first", "publish_again", "publish_changed"):
        f = figures[name]
        print(
            f"  {name:<16} {f['wall_s']:6.2f} s wall, {f['cpu_s']:5.2f} s CPU ({f['publish_s']:.2f} s in the command)  "
            f"{'new image' if f['new'] else 'no new image'}  {f['digest'][:19]}..."
        )
    for name in ("first_task_v1_with_a_new_database", "first_task"):
        f = figures[name]
        label = "v1, first task (database new)" if name != "first_task" else "v2, first task after its pull"
        print(f"  {label:<34} running after {f['running_s']:5.2f} s, serving /live after {f['serving_s']:5.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
