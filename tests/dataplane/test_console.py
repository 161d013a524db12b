"""``localcloud console``: its data endpoint read from the local AWS API (weights, targets, per colour
traffic from the published metrics, tasks and versions, alarms) and the page that draws it."""

from __future__ import annotations

import datetime
import json
import threading
import urllib.error
import urllib.request

import pytest

from localcloud import console

from .conftest import lb_forward

REGION = "us-east-1"


@pytest.fixture
def platform(aws_api, lb_cloud):
    """A load balancer with blue at 90 and green at 10, a service per colour, metrics and an alarm."""
    blue, green = lb_cloud.target_group("items-blue"), lb_cloud.target_group("items-green")
    for arn, colour in ((blue, "blue"), (green, "green")):
        lb_cloud.elbv2.add_tags(ResourceArns=[arn], Tags=[{"Key": "Color", "Value": colour}])
    lb = lb_cloud.load_balancer("items-alb")
    lb_cloud.listener(lb, 443, lb_forward((blue, 90), (green, 10)))
    lb_cloud.listener(lb, 80, lb_forward((blue, 1)), protocol="HTTP")
    lb_cloud.elbv2.register_targets(TargetGroupArn=blue, Targets=[{"Id": "10.0.1.5", "Port": 8000}])

    ecs = aws_api.client("ecs", REGION)
    for cluster in ecs.list_clusters()["clusterArns"]:
        for service in ecs.list_services(cluster=cluster)["serviceArns"]:
            ecs.delete_service(cluster=cluster, service=service, force=True)
    ecs.create_cluster(clusterName="items")
    for colour, tag in (("blue", "v1"), ("green", "v2")):
        definition = ecs.register_task_definition(
            family=f"items-{colour}",
            containerDefinitions=[{"name": "app", "image": f"123456789012.dkr.ecr.{REGION}.amazonaws.com/items:{tag}"}],
            cpu="256",
            memory="512",
        )["taskDefinition"]["taskDefinitionArn"]
        ecs.create_service(cluster="items", serviceName=f"items-{colour}", taskDefinition=definition, desiredCount=1)

    cloudwatch = aws_api.client("cloudwatch", REGION)
    period_start = datetime.datetime.now(datetime.UTC).replace(microsecond=0) - datetime.timedelta(seconds=60)
    period_start -= datetime.timedelta(seconds=period_start.second % 10)

    def dims(arn: str) -> list[dict]:
        return [
            {"Name": "TargetGroup", "Value": "targetgroup/" + arn.split(":targetgroup/")[1]},
            {"Name": "LoadBalancer", "Value": "app/" + lb.split(":loadbalancer/app/")[1]},
        ]

    def put(arn: str, name: str, value: float, second: int, unit: str = "Count") -> None:
        stamp = period_start + datetime.timedelta(seconds=second)
        datum = {"MetricName": name, "Dimensions": dims(arn), "Timestamp": stamp, "Value": value, "Unit": unit}
        cloudwatch.put_metric_data(Namespace="AWS/ApplicationELB", MetricData=[{**datum, "StorageResolution": 1}])

    put(blue, "RequestCount", 60, 1)
    put(blue, "RequestCount", 40, 2)
    put(blue, "HTTPCode_Target_5XX_Count", 5, 3)
    put(blue, "TargetResponseTime", 0.25, 4, unit="Seconds")
    put(green, "RequestCount", 20, 11)
    cloudwatch.put_metric_alarm(
        AlarmName="items-blue-5xx",
        Namespace="AWS/ApplicationELB",
        MetricName="HTTPCode_Target_5XX_Count",
        Statistic="Sum",
        Period=10,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
    )
    cloudwatch.set_alarm_state(AlarmName="items-blue-5xx", StateValue="ALARM", StateReason="by the test")
    return period_start.strftime("%H:%M:%S"), (period_start + datetime.timedelta(seconds=10)).strftime("%H:%M:%S")


def test_the_data_has_the_weights_targets_traffic_tasks_and_alarms(aws_api, platform):
    blue_period, green_period = platform
    state = console.ConsoleData(aws_api.client, REGION).snapshot()

    (lb,) = state["load_balancers"]
    assert lb["name"] == "items-alb"
    by_port = {listener["port"]: listener["action"] for listener in lb["listeners"]}
    assert [(w["colour"], w["weight"], w["percent"]) for w in by_port[443]["weights"]] == [
        ("blue", 90, 90.0),
        ("green", 10, 10.0),
    ]
    assert by_port[80]["weights"][0]["colour"] == "blue"
    groups = {g["colour"]: g for g in state["target_groups"]}
    assert [t["id"] for t in groups["blue"]["targets"]] == ["10.0.1.5"]
    assert groups["green"]["targets"] == []
    assert groups["blue"]["healthy"] == sum(t["state"] == "healthy" for t in groups["blue"]["targets"])

    blue = state["series"]["blue"]
    at = blue["time"].index(blue_period)
    assert blue["requests_per_second"][at] == 10.0  # 100 requests in a 10 s point
    assert blue["error_rate_percent"][at] == 5.0
    assert blue["p99_ms"][at] == 250.0
    green = state["series"]["green"]
    assert green["requests_per_second"][green["time"].index(green_period)] == 2.0
    assert sum(green["error_rate_percent"]) == 0

    services = {s["name"]: s for s in state["services"]}
    assert (services["items-blue"]["version"], services["items-green"]["version"]) == ("v1", "v2")
    assert services["items-blue"]["desired"] == 1
    assert {a["name"]: a["state"] for a in state["alarms"]} == {"items-blue-5xx": "ALARM"}


@pytest.fixture
def served(aws_api, platform):  # noqa: ARG001 - the platform is what is served
    server = console.make_server(console.ConsoleData(aws_api.client, REGION), port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - a loopback URL
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def test_the_server_serves_the_page_the_data_and_nothing_else(served):
    status, kind, body = _get(served + "/api/state")
    assert (status, kind) == (200, "application/json")
    state = json.loads(body)
    assert set(state) >= {"load_balancers", "target_groups", "series", "services", "alarms"}

    status, kind, page = _get(served + "/")
    assert (status, kind) == (200, "text/html; charset=utf-8")
    for part in ("listeners", "targets", "services", "alarms", "chart-requests", "chart-errors", "chart-latency"):
        assert f'id="{part}"' in page.decode(), part
    assert b"setInterval(refresh, 2000)" in page
    assert b"http://" not in page and b"https://" not in page  # nothing from the network

    assert _get(served + "/nope")[0] == 404
