"""The task runner's decisions, as pure functions: health check commands and states, rolling
update steps, backoff, addresses, image references and the task's environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from localcloud.dataplane import ecr, logs
from localcloud.dataplane.ecs.container import (
    ContainerHealth,
    HealthCheckSpec,
    TaskRuntime,
    container_spec,
    parse_health_check,
    task_environment,
)
from localcloud.dataplane.ecs.rollout import TaskView, backoff_delay, circuit_breaker_threshold, plan_rollout
from localcloud.dataplane.hosts import AddressPool

# -- container health check -----------------------------------------------------------------------


def test_health_check_commands_in_cmd_and_cmd_shell_form_with_ecs_defaults():
    spec = parse_health_check({"command": ["CMD", "python", "-m", "items_api.healthcheck"]})
    assert spec == HealthCheckSpec(("python", "-m", "items_api.healthcheck"), shell_form=False)
    assert (spec.interval, spec.timeout, spec.retries, spec.start_period) == (30, 5, 3, 0)

    shell = parse_health_check(
        {"command": ["CMD-SHELL", "curl -f http://localhost:8000/ || exit 1"], "interval": 15, "retries": 2}
    )
    assert shell.argv == ("/bin/sh", "-c", "curl -f http://localhost:8000/ || exit 1") and shell.shell_form
    assert (shell.interval, shell.retries) == (15, 2)


@pytest.mark.parametrize("command", [None, [], ["NONE"]])
def test_no_health_check(command):
    assert parse_health_check({"command": command} if command is not None else None) is None


@pytest.mark.parametrize("command", [["curl", "-f", "http://x/"], ["CMD"], ["CMD-SHELL", " "]])
def test_a_malformed_health_check_is_refused(command):
    with pytest.raises(ValueError, match="CMD or CMD-SHELL"):
        parse_health_check({"command": command})


def test_container_health_counts_failures_only_after_the_start_period_until_first_healthy():
    spec = HealthCheckSpec(("true",), shell_form=False, interval=10, retries=2, start_period=30)
    health = ContainerHealth(spec, started=100.0)
    assert not health.due(105) and health.due(110)
    assert health.record(False, 110) == "UNKNOWN"  # inside the start period: not counted
    assert health.record(False, 120) == "UNKNOWN"
    assert health.record(False, 131) == "UNKNOWN"  # first counted failure
    assert health.record(False, 141) == "UNHEALTHY"
    assert health.next_at == 151


def test_container_health_a_success_ends_the_start_period_and_resets_the_count():
    spec = HealthCheckSpec(("true",), shell_form=False, interval=1, retries=2, start_period=60)
    health = ContainerHealth(spec, started=0.0)
    assert health.record(True, 1) == "HEALTHY"
    assert health.record(False, 2) == "HEALTHY"  # counted now, although within 60 s
    assert health.record(True, 3) == "HEALTHY"
    assert health.record(False, 4) == "HEALTHY"
    assert health.record(False, 5) == "UNHEALTHY"


# -- rolling updates ------------------------------------------------------------------------------


def tasks(current: int = 0, current_healthy: int = 0, old: int = 0, old_healthy: int = 0) -> list[TaskView]:
    views = [TaskView(f"new{n}", True, n < current_healthy, 10.0 + n) for n in range(current)]
    views += [TaskView(f"old{n}", False, n < old_healthy, float(n)) for n in range(old)]
    return views


def test_a_new_service_starts_its_desired_count():
    assert plan_rollout(2, 100, 200, []).start == 2


def test_min_100_max_200_starts_the_new_tasks_then_stops_old_ones_only_once_new_ones_are_healthy():
    first = plan_rollout(2, 100, 200, tasks(old=2, old_healthy=2))
    assert (first.start, first.stop) == (2, ())
    waiting = plan_rollout(2, 100, 200, tasks(current=2, old=2, old_healthy=2))
    assert (waiting.start, waiting.stop) == (0, ())
    half = plan_rollout(2, 100, 200, tasks(current=2, current_healthy=1, old=2, old_healthy=2))
    assert (half.start, half.stop) == (0, ("old0",))
    done = plan_rollout(2, 100, 200, tasks(current=2, current_healthy=2, old=1, old_healthy=1))
    assert done.stop == ("old0",)


def test_min_0_max_100_stops_first_and_starts_once_they_are_gone():
    first = plan_rollout(2, 0, 100, tasks(old=2, old_healthy=2))
    assert (first.start, sorted(first.stop)) == (0, ["old0", "old1"])
    draining = plan_rollout(2, 0, 100, [], stopping=2)
    assert draining.start == 0  # stopping tasks still count against maximumPercent
    assert plan_rollout(2, 0, 100, [], stopping=0).start == 2


def test_min_50_max_100_replaces_one_at_a_time():
    first = plan_rollout(2, 50, 100, tasks(old=2, old_healthy=2))
    assert (first.start, first.stop) == (0, ("old0",))
    then = plan_rollout(2, 50, 100, tasks(old=1, old_healthy=1))
    assert (then.start, then.stop) == (1, ())


def test_old_tasks_that_are_not_healthy_count_for_nothing_and_go_first():
    plan = plan_rollout(2, 100, 200, tasks(old=2, old_healthy=1))
    assert plan.stop == ("old1",)
    assert plan.start == 2


def test_scaling_in_stops_the_least_healthy_and_newest_first_and_zero_stops_all():
    plan = plan_rollout(1, 100, 200, tasks(current=3, current_healthy=2))
    assert sorted(plan.stop) == ["new1", "new2"] and plan.start == 0
    everything = plan_rollout(0, 100, 200, tasks(current=2, current_healthy=2, old=1, old_healthy=1))
    assert sorted(everything.stop) == ["new0", "new1", "old0"] and everything.start == 0


def test_scaling_out_respects_the_maximum():
    assert plan_rollout(4, 100, 200, tasks(current=2, current_healthy=2)).start == 2
    assert plan_rollout(4, 100, 150, tasks(current=2, current_healthy=2), stopping=3).start == 1


def test_backoff_and_circuit_breaker_threshold():
    assert [backoff_delay(n, 2, 60) for n in range(7)] == [0, 2, 4, 8, 16, 32, 60]
    assert [circuit_breaker_threshold(n) for n in (0, 1, 2, 10, 1000)] == [3, 3, 3, 5, 200]


# -- addresses ------------------------------------------------------------------------------------


def test_addresses_are_handed_out_lowest_first_skip_refused_ones_and_come_back(tmp_path):
    pool = AddressPool("127.1.0.0/16", tmp_path)
    assert [pool.allocate() for _ in range(3)] == ["127.1.0.1", "127.1.0.2", "127.1.0.3"]
    pool.release("127.1.0.2")
    assert pool.allocate(lambda ip: ip != "127.1.0.2") == "127.1.0.4"  # busy: skipped, not lost
    assert pool.allocate() == "127.1.0.2"
    assert pool.in_use() == {"127.1.0.1", "127.1.0.2", "127.1.0.3", "127.1.0.4"}


def test_addresses_skip_0_and_255_and_run_out(tmp_path):
    small = AddressPool("127.0.5.0/30", tmp_path)  # .1 and .2 only
    assert [small.allocate(), small.allocate()] == ["127.0.5.1", "127.0.5.2"]
    with pytest.raises(RuntimeError, match="no free address"):
        small.allocate()
    big = AddressPool("127.1.0.0/16", tmp_path)
    for ip in (f"127.1.0.{n}" for n in range(1, 255)):
        big.claim(ip)
    assert big.allocate() == "127.1.1.1"
    with pytest.raises(ValueError, match="not a loopback"):
        AddressPool("10.0.0.0/24")


def test_two_clouds_never_hand_out_the_same_address(tmp_path):
    """Clouds side by side share the networks: an address one pool hands out is claimed machine-wide (a
    lock file) until released, whatever the other pool's own bookkeeping says."""
    one, two = AddressPool("127.1.0.0/16", tmp_path), AddressPool("127.1.0.0/16", tmp_path)
    assert one.allocate() == "127.1.0.1"
    assert two.allocate() == "127.1.0.2"  # .1 is the other cloud's
    assert one.allocate(lambda ip: ip != "127.1.0.3") == "127.1.0.4"
    assert two.allocate() == "127.1.0.3"  # refused by the first pool's check: not kept claimed
    one.release("127.1.0.1")
    assert two.allocate() == "127.1.0.1"
    assert one.allocate() == "127.1.0.5"


# -- images ---------------------------------------------------------------------------------------


def test_ecr_image_references():
    ref = ecr.parse_image("123456789012.dkr.ecr.us-east-1.amazonaws.com/ecs-prod-local:v1")
    assert (ref.registry_id, ref.region, ref.repository, ref.tag) == (
        "123456789012",
        "us-east-1",
        "ecs-prod-local",
        "v1",
    )
    assert ref.image_id == {"imageTag": "v1"}
    assert ecr.parse_image("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app").image_id == {"imageTag": "latest"}
    assert ecr.parse_image("python:3.11-slim") is None
    assert ecr.parse_image("ghcr.io/owner/app:v1") is None


# -- what a task gets -----------------------------------------------------------------------------

DEFINITION = {
    "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/app:3",
    "containerDefinitions": [
        {"name": "sidecar", "image": "x", "essential": False},
        {
            "name": "app",
            "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v3",
            "portMappings": [{"containerPort": 8000}],
            "environment": [{"name": "APP_VERSION", "value": "v3"}, {"name": "AWS_REGION", "value": "eu-west-1"}],
            "healthCheck": {"command": ["CMD", "python", "-m", "items_api.healthcheck"], "interval": 15},
            "stopTimeout": 20,
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": "/ecs/app",
                    "awslogs-stream-prefix": "blue",
                    "awslogs-region": "us-east-1",
                },
            },
        },
    ],
}


def test_the_container_run_is_the_essential_one_or_the_one_the_load_balancer_names():
    spec = container_spec(DEFINITION)
    assert (spec.name, spec.port, spec.stop_timeout, spec.health_check.interval) == ("app", 8000, 20, 15)
    assert container_spec(DEFINITION, "sidecar").name == "sidecar"
    broken = {"containerDefinitions": [{"name": "app", "healthCheck": {"command": ["curl"]}}]}
    assert "CMD or CMD-SHELL" in container_spec(broken).health_check_error


def test_the_task_environment_is_image_then_definition_then_agent(tmp_path: Path):
    runtime = TaskRuntime(
        state_dir=tmp_path,
        app_dir=tmp_path / "app",
        python="/usr/bin/python3",
        endpoint_url="http://127.0.0.1:4566",
        hosts_file=tmp_path / "hosts",
        taskenv_dir=tmp_path / "taskenv",
        owner=str(tmp_path),
    )
    env = task_environment(
        container_spec(DEFINITION),
        runtime,
        ip="127.1.0.7",
        region="us-east-1",
        home=tmp_path,
        bin_dir=tmp_path / "venv" / "bin",
    )
    assert env["APP_VERSION"] == "v3" and env["APP_PORT"] == "8000"  # definition, image default
    assert env["AWS_REGION"] == "eu-west-1" and env["AWS_DEFAULT_REGION"] == "eu-west-1"  # the definition's wins
    assert env["APP_HOST"] == "127.1.0.7" and env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    assert env["PATH"] == str(tmp_path / "venv" / "bin")  # the image's venv only: no curl, whatever the host has
    assert env["PYTHONPATH"].split(":")[0] == str(tmp_path / "taskenv")
    assert env["LOCALCLOUD_HOSTS_FILE"] == str(tmp_path / "hosts") and env["LOCALCLOUD_OWNER"] == str(tmp_path)
    assert not any("PASSWORD" in name and "SSM" not in name for name in env)


def test_the_awslogs_destination():
    where = logs.destination(DEFINITION["containerDefinitions"][1]["logConfiguration"], "app", "abc", "us-east-1")
    assert (where.group, where.stream, where.region) == ("/ecs/app", "blue/app/abc", "us-east-1")
    assert logs.destination({"logDriver": "json-file"}, "app", "abc", "us-east-1") is None
    assert logs.destination(None, "app", "abc", "us-east-1") is None
