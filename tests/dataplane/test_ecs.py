"""The ECS task runner with real processes: services become gunicorn tasks of app/ on their own
loopback addresses, against a real PostgreSQL made from an RDS instance, as ECS would run them."""

from __future__ import annotations

import os
import shutil
import signal
import time
import urllib.request

import pytest

from localcloud.dataplane.registry import Health

from .conftest import DP_MASTER_PASSWORD, dp_wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cloud(dp_cloud):
    dp_cloud.create_database()
    dp_cloud.publish("v1")
    dp_cloud.publish("v2")
    return dp_cloud


def get(address: str, path: str, timeout: float = 2.0):
    with urllib.request.urlopen(f"http://{address}{path}", timeout=timeout) as response:
        return response.status, dict(response.headers), response.read()


def environ(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as handle:
        pairs = [item.split(b"=", 1) for item in handle.read().split(b"\0") if b"=" in item]
    return {k.decode(): v.decode() for k, v in pairs}


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_service_runs_its_desired_count_as_app_processes_on_their_own_addresses(cloud):
    group = cloud.target_group("runs")
    definition = cloud.task_definition("runs", "v1", environment={"EXTRA_SETTING": "from-the-task-definition"})
    cloud.service("runs", definition, 2, group)

    dp_wait_until(lambda: len(cloud.healthy_tasks("runs")) == 2, 60, what="two healthy tasks")
    tasks = cloud.tasks("runs", running=True)
    addresses = sorted(t.ip for t in tasks)
    assert len(set(addresses)) == 2 and all(ip.startswith("127.1.") for ip in addresses)
    for task in tasks:
        status, headers, _ = get(f"{task.ip}:8000", "/live")
        assert status == 200 and headers["X-App-Version"] == "v1" and headers["X-Deployment-Color"] == "blue"
        env = environ(task.pid)
        assert env["EXTRA_SETTING"] == "from-the-task-definition"
        assert env["APP_HOST"] == task.ip and env["DB_HOST"] == cloud.database["Address"]
        assert env["AWS_ENDPOINT_URL"] == cloud.api.endpoint_url
        assert DP_MASTER_PASSWORD not in "\0".join(env.values())  # the app reads it from SSM
        assert task.health_status == "HEALTHY"  # the task definition's own check passed

    registered = {(t.ip, t.port): t.health for t in cloud.plane.registry.targets(group)}
    assert registered == {(ip, 8000): Health.HEALTHY for ip in addresses}

    # The API tells the same story.
    described = cloud.described("runs")
    assert (described["runningCount"], described["pendingCount"]) == (2, 0)
    assert [d["rolloutState"] for d in described["deployments"]] == ["COMPLETED"]
    assert "(service runs) has reached a steady state." in cloud.events("runs")
    arns = cloud.ecs.list_tasks(cluster=cloud.cluster, serviceName="runs")["taskArns"]
    api_tasks = cloud.ecs.describe_tasks(cluster=cloud.cluster, tasks=arns)["tasks"]
    assert sorted(t["taskArn"].split("/")[-1] for t in api_tasks) == sorted(t.task_id for t in tasks)
    for api_task in api_tasks:
        assert (api_task["lastStatus"], api_task["healthStatus"], api_task["group"]) == (
            "RUNNING",
            "HEALTHY",
            "service:runs",
        )
        assert api_task["containers"][0]["networkInterfaces"][0]["privateIpv4Address"] in addresses

    # Logs: in files under the state dir, and in the log group the task definition names.
    task = tasks[0]
    get(f"{task.ip}:8000", "/live?marker=dp-log-check")
    assert "Listening at" in (task.directory / "stderr.log").read_text()
    logs = cloud.api.client("logs")
    stream = f"blue/app/{task.task_id}"

    def shipped():
        try:
            events = logs.get_log_events(logGroupName=cloud.log_group, logStreamName=stream)["events"]
        except logs.exceptions.ResourceNotFoundException:  # no stream yet
            return []
        return [e["message"] for e in events]

    dp_wait_until(lambda: any("dp-log-check" in m for m in shipped()), 15, what="the access log line in CloudWatch")
    assert any("Listening at" in m for m in shipped())  # stderr goes to the same stream
    assert "dp-log-check" in (task.directory / "stdout.log").read_text()

    cloud.remove_service("runs")


def test_an_image_tag_missing_from_ecr_fails_like_a_failed_pull_and_starts_no_process(cloud):
    definition = cloud.task_definition("missing", "v404")
    cloud.service("missing", definition, 1)

    dp_wait_until(lambda: len(cloud.tasks("missing", running=False)) >= 2, 20, what="two failed launches")
    assert all(t.process is None for t in cloud.tasks("missing"))
    for task in cloud.tasks("missing", running=False):
        assert task.stop_reason.startswith("CannotPullContainerError")
        assert f"{cloud.repository}:v404: not found" in task.stop_reason
        assert task.process is None and not (task.directory / "pid").exists()
    events = cloud.events("missing")
    assert any("failed to start: CannotPullContainerError" in e for e in events)
    stopped = cloud.ecs.list_tasks(cluster=cloud.cluster, serviceName="missing", desiredStatus="STOPPED")["taskArns"]
    api_task = cloud.ecs.describe_tasks(cluster=cloud.cluster, tasks=stopped[:1])["tasks"][0]
    assert (api_task["lastStatus"], api_task["stopCode"]) == ("STOPPED", "TaskFailedToStart")
    assert api_task["stoppedReason"].startswith("CannotPullContainerError")
    cloud.remove_service("missing")


def test_a_container_health_check_that_cannot_pass_gets_the_task_replaced_again_and_again(cloud):
    # The seed's check: curl, which a slim image does not have. The host may have curl; the task does not.
    check = ["CMD-SHELL", "curl -f http://localhost:8000/live || exit 1"]
    definition = cloud.task_definition("curl", "v1", health_check=check, interval=1, retries=2)
    cloud.service("curl", definition, 1)

    def failed():
        return [t for t in cloud.tasks("curl", running=False) if t.stop_reason == "Task failed container health checks"]

    dp_wait_until(lambda: len(failed()) >= 2, 60, what="two tasks replaced for their health check")
    assert "curl: not found" in (failed()[0].directory / "health.log").read_text()
    assert any("failed container health checks" in e for e in cloud.events("curl"))
    if shutil.which("curl"):
        assert failed()[0].health_status == "UNHEALTHY"  # even though this machine has curl
    cloud.remove_service("curl")


def test_a_killed_task_is_replaced_and_nothing_of_it_is_left(cloud):
    definition = cloud.task_definition("killed", "v1")
    cloud.service("killed", definition, 1)
    dp_wait_until(lambda: cloud.healthy_tasks("killed"), 60, what="a healthy task")
    victim = cloud.tasks("killed", running=True)[0]
    pgid = victim.pid

    os.kill(victim.pid, signal.SIGKILL)  # the master only: its worker is left to the runner
    dp_wait_until(lambda: victim.last_status == "STOPPED", 10, what="the task seen as stopped")
    assert (victim.stop_reason, victim.exit_code) == ("Essential container in task exited", 137)
    dp_wait_until(lambda: not group_alive(pgid), 5, what="its worker gone too")
    dp_wait_until(lambda: cloud.healthy_tasks("killed"), 60, what="a replacement")
    assert cloud.tasks("killed", running=True)[0].task_id != victim.task_id
    assert any("exited with code 137" in e for e in cloud.events("killed"))
    cloud.remove_service("killed")


def test_scaling_to_zero_drains_then_stops_with_sigterm_and_in_flight_requests_get_the_delay(cloud):
    group = cloud.target_group("drain", delay=4)
    definition = cloud.task_definition("drain", "v1")
    cloud.service("drain", definition, 2, group)
    dp_wait_until(lambda: len(cloud.healthy_tasks("drain")) == 2, 60, what="two healthy tasks")
    busy, idle = cloud.tasks("drain", running=True)
    cloud.plane.registry.begin_request((group, busy.ip, busy.port))  # a request in flight on one of them

    cloud.ecs.update_service(cluster=cloud.cluster, service="drain", desiredCount=0)
    started = time.monotonic()
    dp_wait_until(lambda: idle.last_status == "STOPPED", 10, what="the idle task stopped")
    assert busy.last_status == "DEACTIVATING"  # still finishing its request
    assert [t.health for t in cloud.plane.registry.targets(group)] == [Health.DRAINING]
    dp_wait_until(lambda: busy.last_status == "STOPPED", 15, what="the busy task stopped after the delay")
    assert time.monotonic() - started >= 3.5
    for task in (busy, idle):
        assert task.exit_code == 0  # gunicorn's graceful exit on SIGTERM, not SIGKILL
        assert "Handling signal: term" in (task.directory / "stderr.log").read_text()
        assert task.stop_reason.startswith("Scaling activity initiated by (deployment ecs-svc/")
        assert not group_alive(task.pid)
    assert cloud.plane.registry.targets(group) == []
    assert cloud.described("drain")["runningCount"] == 0
    cloud.ecs.delete_service(cluster=cloud.cluster, service="drain", force=True)


def test_a_task_that_ignores_sigterm_is_killed_after_its_stop_timeout(cloud):
    definition = cloud.task_definition("stubborn", "v1", stop_timeout=2)
    cloud.service("stubborn", definition, 1)
    dp_wait_until(lambda: cloud.healthy_tasks("stubborn"), 60, what="a healthy task")
    task = cloud.tasks("stubborn", running=True)[0]
    os.kill(task.pid, signal.SIGSTOP)  # a stopped process cannot act on SIGTERM

    cloud.ecs.update_service(cluster=cloud.cluster, service="stubborn", desiredCount=0)
    dp_wait_until(lambda: task.last_status == "STOPPING", 5, what="SIGTERM sent")
    sent = time.monotonic()
    dp_wait_until(lambda: task.last_status == "STOPPED", 10, what="SIGKILL after the stop timeout")
    assert time.monotonic() - sent >= 1.5
    assert task.exit_code == 137
    cloud.ecs.delete_service(cluster=cloud.cluster, service="stubborn", force=True)


def test_a_target_failing_the_load_balancer_check_is_replaced_after_the_grace_period(cloud):
    group = cloud.target_group("elb", path="/no-such-page")
    definition = cloud.task_definition("elb", "v1")
    cloud.service("elb", definition, 1, group, grace=3)

    dp_wait_until(lambda: cloud.tasks("elb", running=False), 40, what="a task replaced")
    task = cloud.tasks("elb", running=False)[0]
    assert task.stop_reason == f"Task failed ELB health checks in (target-group {group})"
    assert (task.stopping_at - task.started_at).total_seconds() >= 3  # not during the grace period
    assert any(f"is unhealthy in (target-group {group})" in e for e in cloud.events("elb"))
    cloud.remove_service("elb")


def test_a_new_task_definition_rolls_out_keeping_the_minimum_healthy_and_the_maximum(cloud):
    group = cloud.target_group("roll", delay=1)
    cloud.service("roll", cloud.task_definition("roll", "v1"), 2, group)
    dp_wait_until(lambda: len(cloud.healthy_tasks("roll")) == 2, 60, what="v1 healthy")

    cloud.ecs.update_service(cluster=cloud.cluster, service="roll", taskDefinition=cloud.task_definition("roll", "v2"))
    described = cloud.described("roll")
    assert [(d["status"], d["rolloutState"]) for d in described["deployments"]] == [
        ("PRIMARY", "IN_PROGRESS"),
        ("ACTIVE", "COMPLETED"),
    ]
    least_healthy, most_tasks = 2, 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        live = cloud.tasks("roll", running=True)
        healthy = [t for t in cloud.plane.registry.targets(group) if t.health is Health.HEALTHY]
        least_healthy, most_tasks = min(least_healthy, len(healthy)), max(most_tasks, len(live))
        if sorted(t.version for t in live) == ["v2", "v2"] and len(cloud.healthy_tasks("roll")) == 2:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"not rolled out: {[(t.version, t.last_status) for t in cloud.tasks('roll', running=True)]}")
    assert least_healthy >= 2  # minimumHealthyPercent 100
    assert most_tasks <= 4  # maximumPercent 200
    dp_wait_until(lambda: len(cloud.described("roll")["deployments"]) == 1, 10, what="the old deployment gone")
    deployment = cloud.described("roll")["deployments"][0]
    assert (deployment["rolloutState"], deployment["taskDefinition"].split("/")[-1]) == ("COMPLETED", "roll:2")
    for address in (f"{t.ip}:8000" for t in cloud.tasks("roll", running=True)):
        assert get(address, "/live")[1]["X-App-Version"] == "v2"
    cloud.remove_service("roll")


def test_a_deployment_whose_tasks_keep_failing_rolls_back_with_the_circuit_breaker(cloud):
    cloud.service("breaker", cloud.task_definition("breaker", "v1"), 1, circuit_breaker=True)
    dp_wait_until(lambda: cloud.healthy_tasks("breaker"), 60, what="v1 healthy")

    bad = cloud.task_definition("breaker", "v404")
    cloud.ecs.update_service(cluster=cloud.cluster, service="breaker", taskDefinition=bad)
    least_healthy = 1
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        least_healthy = min(least_healthy, len(cloud.healthy_tasks("breaker")))
        described = cloud.described("breaker")
        deployments = [d["rolloutState"] for d in described["deployments"]]
        if described["taskDefinition"].endswith("breaker:1") and deployments == ["COMPLETED"]:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"no rollback: {cloud.events('breaker')[:5]}")
    assert least_healthy == 1  # v1 served throughout
    assert [t.version for t in cloud.healthy_tasks("breaker")] == ["v1"]
    events = cloud.events("breaker")
    assert any("deployment failed: tasks failed to start." in e for e in events)
    assert any("rolling back to task definition breaker:1" in e for e in events)
    failed = [t for t in cloud.tasks("breaker", running=False) if t.version == "v404"]
    assert len(failed) >= 3 and all(t.stop_reason.startswith("CannotPullContainerError") for t in failed)
    cloud.remove_service("breaker")


def test_stop_task_through_the_api_stops_the_process_and_the_service_replaces_it(cloud):
    cloud.service("stopme", cloud.task_definition("stopme", "v1"), 1)
    dp_wait_until(lambda: cloud.healthy_tasks("stopme"), 60, what="a healthy task")
    task = cloud.tasks("stopme", running=True)[0]

    cloud.ecs.stop_task(cluster=cloud.cluster, task=task.arn, reason="stopped by the test")
    dp_wait_until(lambda: task.last_status == "STOPPED", 15, what="the task stopped")
    assert (task.stop_reason, task.stop_code, task.exit_code) == ("stopped by the test", "UserInitiated", 0)
    dp_wait_until(lambda: cloud.tasks("stopme", running=True), 10, what="a replacement")
    running = cloud.ecs.list_tasks(cluster=cloud.cluster, serviceName="stopme")["taskArns"]
    assert task.arn not in running and len(running) == 1
    cloud.remove_service("stopme")


def test_a_first_deployment_failed_for_want_of_its_image_runs_once_published_and_redeployed(cloud):
    from localcloud.cli import redeploy_failed

    # What provision does before anyone pushed v3: the breaker fails the deployment, with nothing to roll back to.
    cloud.service("early", cloud.task_definition("early", "v3"), 1, circuit_breaker=True)
    dp_wait_until(
        lambda: cloud.described("early")["deployments"][0]["rolloutState"] == "FAILED", 30, what="the deployment failed"
    )
    launched = len(cloud.tasks("early"))
    time.sleep(2)
    assert len(cloud.tasks("early")) == launched  # a failed deployment launches nothing more

    cloud.publish("v3")
    assert redeploy_failed(cloud.ecs, f"{cloud.repository}:v2") == []  # another image: left alone
    assert redeploy_failed(cloud.ecs, f"{cloud.repository}:v3") == [("dp", "early")]
    dp_wait_until(lambda: [t.version for t in cloud.healthy_tasks("early")] == ["v3"], 60, what="v3 running")
    dp_wait_until(
        lambda: [d["rolloutState"] for d in cloud.described("early")["deployments"]] == ["COMPLETED"],
        10,
        what="the new deployment completed",
    )
    cloud.remove_service("early")


def test_a_deployment_still_failing_for_want_of_its_image_is_redeployed_too(cloud):
    from localcloud.cli import redeploy_failed

    # Without the breaker the deployment never turns FAILED: it stays IN_PROGRESS with failed tasks,
    # as a deployment with the breaker is until its threshold, when the image is pushed meanwhile.
    cloud.service("failing", cloud.task_definition("failing", "v4"), 1)
    dp_wait_until(lambda: cloud.described("failing")["deployments"][0]["failedTasks"] >= 1, 30, what="a failed task")
    assert cloud.described("failing")["deployments"][0]["rolloutState"] == "IN_PROGRESS"
    cloud.publish("v4")
    assert redeploy_failed(cloud.ecs, f"{cloud.repository}:v4") == [("dp", "failing")]
    deployments = cloud.described("failing")["deployments"]
    assert [d["status"] for d in deployments][0] == "PRIMARY" and deployments[0]["failedTasks"] == 0
    dp_wait_until(lambda: [t.version for t in cloud.healthy_tasks("failing")] == ["v4"], 60, what="v4 running")
    assert redeploy_failed(cloud.ecs, f"{cloud.repository}:v4") == []  # healthy now: left alone
    cloud.remove_service("failing")
