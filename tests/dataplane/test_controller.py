"""The controller wires the parts: tasks and databases it runs are served by the load balancer
plane through the listeners, target health reaches the API, and status.json tells it all."""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import pytest

from localcloud.awsapi import free_port

from .conftest import DpCloud, dp_state_dir, dp_wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cloud(dp_api):
    state_dir = dp_state_dir()
    stale = Path(state_dir) / "tasks" / "left-by-a-crash"
    stale.mkdir(parents=True)
    port = free_port()
    cloud = DpCloud(dp_api, state_dir, load_balancer=True, port_map={80: port})
    cloud.http_port, cloud.stale = port, stale
    try:
        yield cloud
    finally:
        cloud.close()
        shutil.rmtree(state_dir, ignore_errors=True)


def test_a_listener_serves_the_tasks_and_target_health_reaches_the_api(cloud):
    assert not cloud.stale.exists()  # a previous run's tasks do not survive a start
    cloud.create_database()
    cloud.publish("v7")
    group = cloud.elbv2.create_target_group(
        Name="wired",
        Protocol="HTTP",
        Port=8000,
        VpcId=cloud.vpc_id,
        TargetType="ip",
        HealthCheckPath="/health",
        HealthCheckIntervalSeconds=5,
        HealthyThresholdCount=2,
    )["TargetGroups"][0]["TargetGroupArn"]
    balancer = cloud.elbv2.create_load_balancer(Name="wired", Subnets=[cloud.subnet])["LoadBalancers"][0]
    cloud.elbv2.create_listener(
        LoadBalancerArn=balancer["LoadBalancerArn"],
        Port=80,
        Protocol="HTTP",
        DefaultActions=[
            {"Type": "forward", "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": group, "Weight": 1}]}}
        ],
    )
    cloud.service("wired", cloud.task_definition("wired", "v7"), 1, group)

    def through_the_listener():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{cloud.http_port}/", timeout=2) as response:
                return json.loads(response.read())
        except OSError:
            return None

    served = dp_wait_until(through_the_listener, 60, interval=0.5, what="the app through the listener")
    assert (served["service"], served["version"], served["deployment"]) == ("items-api", "v7", "blue")
    task = cloud.tasks("wired", running=True)[0]

    def api_health():
        described = cloud.elbv2.describe_target_health(TargetGroupArn=group)["TargetHealthDescriptions"]
        return [(d["Target"]["Id"], d["TargetHealth"]["State"]) for d in described]

    dp_wait_until(lambda: api_health() == [(task.ip, "healthy")], 20, what="the target healthy in the API")

    status = json.loads((cloud.plane.state_dir / "status.json").read_text())
    listener = next(item for item in status["load_balancer"]["listeners"] if item["port"] == 80)
    assert listener["local_url"] == f"http://127.0.0.1:{cloud.http_port}"
    assert [t["address"] for t in status["tasks"] if t["last_status"] == "RUNNING"] == [f"{task.ip}:8000"]
    assert [d["identifier"] for d in status["databases"]] == ["dp-db"]

    cloud.remove_service("wired")
    dp_wait_until(lambda: api_health() == [], 20, what="the target gone from the API")
