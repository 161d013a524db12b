"""Unit tests for module_utils/bluegreen.py: the blue/green decisions (active, idle, rollback, steps, deploy
size, when a deploy is done or failed and why) and how the status and the diagnosis read, plus the filters
that expose them to the playbooks."""

from __future__ import annotations

import datetime

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.ecs_production.platform.plugins.filter import bluegreen as filters
from ansible_collections.ecs_production.platform.plugins.filter.forwarded_target_groups import (
    forwarded_target_groups,
)
from ansible_collections.ecs_production.platform.plugins.module_utils import bluegreen as bg

TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup"


def target(state: str, tid: str = "10.0.1.5", reason: str = "", description: str = "") -> dict:
    health = {"State": state}
    if reason:
        health.update(Reason=reason, Description=description)
    return bg.target_view({"Target": {"Id": tid, "Port": 8000}, "TargetHealth": health})


def service(*, desired=2, running=2, pending=0, td="app-green:7", deployments=None, events=()) -> dict:
    return {
        "serviceName": "app-green",
        "status": "ACTIVE",
        "desiredCount": desired,
        "runningCount": running,
        "pendingCount": pending,
        "taskDefinition": f"arn:aws:ecs:us-east-1:123456789012:task-definition/{td}",
        "deployments": deployments
        if deployments is not None
        else [
            {"status": "PRIMARY", "taskDefinition": td, "rolloutState": "COMPLETED", "createdAt": "2026-12-01T10:00"}
        ],
        "events": [{"message": message} for message in events],
    }


def task_definition(version="v7", image_tag="v7") -> dict:
    env = [{"name": "APP_VERSION", "value": version}] if version else []
    return {"containerDefinitions": [{"name": "app", "image": f"repo/app:{image_tag}", "environment": env}]}


def color(weight=0, targets=(), svc=None, td=None, *, test_weight=0, alarms=None, events=0) -> dict:
    return bg.color_state(
        weight=weight,
        test_weight=test_weight,
        target_group="app-green",
        target_group_arn=f"{TG}/app-green/1",
        targets=list(targets),
        service_name="c/app-green",
        service=svc,
        task_definition=td,
        alarms=alarms,
        events=events,
    )


def state(blue=100, green=0, record=None, **kwargs) -> dict:
    colors = {"blue": color(blue, svc=service(td="app-blue:3")), "green": color(green, svc=service(**kwargs))}
    return bg.platform_state(colors, test_port=9443, record=record)


# ---- readers ----


def test_color_state_counts_healthy_targets_and_reads_the_primary_deployment_and_version():
    deployments = [
        {
            "status": "PRIMARY",
            "taskDefinition": "x/app-green:7",
            "rolloutState": "IN_PROGRESS",
            "createdAt": datetime.datetime(2026, 12, 1, 10, 0),
        },
        {"status": "ACTIVE", "taskDefinition": "x/app-green:6", "rolloutState": "COMPLETED"},
    ]
    c = color(
        10,
        [target("healthy"), target("initial"), target("healthy", "10.0.1.6")],
        service(deployments=deployments),
        task_definition(),
    )
    assert (c["weight"], c["healthy"], c["desired"], c["running"]) == (10, 2, 2, 2)
    assert c["deployment"]["task_definition"] == "app-green:7"
    assert c["deployment"]["rollout_state"] == "IN_PROGRESS"
    assert c["deployed_at"] == "2026-12-01T10:00:00"
    assert c["version"] == "v7"
    assert c["task_definition"] == "app-green:7"
    assert c["exists"] is True


@pytest.mark.parametrize(
    ("definition", "version"),
    [
        pytest.param(task_definition("v9", "v1"), "v9", id="APP_VERSION wins"),
        pytest.param(task_definition("", "v4"), "v4", id="else the image tag"),
        pytest.param(
            {"containerDefinitions": [{"name": "app", "image": "repo/app@sha256:abcdef0123456789abcdef"}]},
            "sha256:abcdef012345",
            id="digest",
        ),
        pytest.param({"containerDefinitions": [{"name": "app", "image": "registry:5000/app"}]}, "?", id="no tag"),
        pytest.param({"containerDefinitions": []}, "?", id="no container"),
    ],
)
def test_container_version(definition, version):
    assert bg.container_version(definition) == version


def test_a_colour_without_a_service_or_task_definition_reads_as_absent():
    c = color(0, svc=None)
    assert (c["exists"], c["desired"], c["version"], c["task_definition"], c["deployment"]) == (False, 0, "-", "", None)


# ---- decisions ----


@pytest.mark.parametrize(
    ("weights", "active", "idle"),
    [
        ({"blue": 100, "green": 0}, "blue", "green"),
        ({"blue": 0, "green": 100}, "green", "blue"),
        ({"blue": 10, "green": 90}, "green", "blue"),
        ({"blue": 50, "green": 50}, "blue", "green"),  # a tie: the first colour
        ({"blue": 0, "green": 0}, "blue", "green"),
    ],
)
def test_active_and_idle(weights, active, idle):
    assert bg.active_color(["blue", "green"], weights) == active
    assert bg.idle_color(["blue", "green"], active) == idle


@pytest.mark.parametrize(
    ("weights", "record", "target"),
    [
        pytest.param((0, 100), {"BlueGreenFrom": "blue", "BlueGreenTo": "green"}, "blue", id="back where it came from"),
        pytest.param((90, 10), {"BlueGreenFrom": "blue", "BlueGreenTo": "green"}, "blue", id="mid-canary, back"),
        pytest.param(
            (100, 0), {"BlueGreenFrom": "blue", "BlueGreenTo": "green"}, "green", id="already there: the idle"
        ),
        pytest.param((0, 100), None, "blue", id="no record: the idle"),
        pytest.param((0, 100), {"BlueGreenFrom": "purple", "BlueGreenTo": "green"}, "blue", id="foreign record"),
    ],
)
def test_rollback_color(weights, record, target):
    s = state(*weights, record=record)
    assert bg.rollback_color(s) == target


def test_last_swap_is_read_from_the_record_only_when_both_ends_are_colours():
    assert state(record={"BlueGreenFrom": "blue", "BlueGreenTo": "green"})["last_swap"] == {
        "from": "blue",
        "to": "green",
    }
    assert state(record={"BlueGreenFrom": "blue"})["last_swap"] is None
    assert state(record={"Name": "x"})["last_swap"] is None


@pytest.mark.parametrize(
    ("steps", "current", "todo"),
    [([100], 0, [100]), ([10, 50, 100], 0, [10, 50, 100]), ([10, 50, 100], 10, [50, 100]), ([10, 50, 100], 100, []),
     (["10", "100"], "50", [100])],
)  # fmt: skip
def test_steps_to_take(steps, current, todo):
    assert bg.steps_to_take(steps, int(current)) == todo
    assert filters.bluegreen_steps_to_take(steps, current) == todo


def test_deploy_size_is_the_active_colours_desired_count_at_least_one():
    s = state()
    assert bg.deploy_size(s) == 2
    s["colors"]["blue"]["desired"] = 0
    assert bg.deploy_size(s) == 1


def healthy_color(healthy=2, rollout="COMPLETED", td="app-green:7", primary_td=None, primary_running=2):
    deployments = [
        {
            "status": "PRIMARY",
            "taskDefinition": primary_td or td,
            "rolloutState": rollout,
            "runningCount": primary_running,
        }
    ]
    return color(0, [target("healthy", f"10.0.1.{i}") for i in range(healthy)], service(td=td, deployments=deployments))


@pytest.mark.parametrize(
    ("c", "wanted", "verdict"),
    [
        pytest.param(healthy_color(2), "app-green:7", bg.Verdict(bg.DONE), id="healthy and completed"),
        pytest.param(healthy_color(1), "app-green:7", bg.Verdict(bg.WAITING), id="too few healthy"),
        pytest.param(healthy_color(2, "IN_PROGRESS"), "app-green:7", bg.Verdict(bg.WAITING), id="deployment going on"),
        pytest.param(
            healthy_color(2, "FAILED"),
            "app-green:7",
            bg.Verdict(bg.FAILED, "the deployment of app-green:7 failed"),
            id="circuit breaker failed it",
        ),
        pytest.param(
            healthy_color(2, "IN_PROGRESS", td="app-green:6"),
            "app-green:7",
            bg.Verdict(
                bg.FAILED, "the deployment of app-green:7 failed and ECS rolled the service back to app-green:6"
            ),
            id="rolled back: its healthy targets do not count",
        ),
        pytest.param(healthy_color(2, ""), None, bg.Verdict(bg.DONE), id="no rollout state: the counts decide"),
        pytest.param(
            healthy_color(2, "", primary_running=0),
            "app-green:7",
            bg.Verdict(bg.WAITING),
            id="healthy targets of stopped tasks do not count for a deployment not started",
        ),
    ],
)
def test_judge_healthy(c, wanted, verdict):
    assert bg.judge_healthy(c, 2, wanted) == verdict


def test_judge_drained():
    assert bg.judge_drained(color(svc=service(running=1))).status == bg.WAITING
    assert bg.judge_drained(color(0, [target("healthy")], svc=service(running=0))).status == bg.WAITING
    assert bg.judge_drained(color(0, [target("draining")], svc=service(running=0))).status == bg.DONE
    assert bg.judge_drained(color(svc=service(running=0))).status == bg.DONE


# ---- how it reads ----


def test_progress_line_says_how_far_a_colour_is():
    c = color(0, [target("healthy"), target("initial", "10.0.1.6")], service(running=2, pending=0))
    assert bg.progress("green", c, 2) == (
        "green: healthy 1/2, tasks running 2/2 pending 0, deployment COMPLETED; targets 1 healthy, 1 initial"
    )
    assert bg.progress("green", color(svc=service(running=1)), None).endswith("targets none registered")


def test_diagnosis_of_a_rolled_back_deployment_lists_the_facts():
    c = color(
        0,
        [target("unhealthy", reason="Target.ResponseCodeMismatch", description="Health checks failed with 502")],
        service(
            td="app-green:6",
            deployments=[
                {"status": "PRIMARY", "taskDefinition": "app-green:6", "rolloutState": "IN_PROGRESS"},
                {
                    "status": "ACTIVE",
                    "taskDefinition": "app-green:7",
                    "rolloutState": "FAILED",
                    "rolloutStateReason": "circuit breaker",
                },
            ],
            events=[
                "(service app-green) has started 2 tasks",
                "(service app-green) deployment failed: tasks failed to start",
            ],
        ),
        events=20,
    )
    verdict = bg.judge_healthy(c, 2, "app-green:7")
    lines = bg.diagnosis("green", c, required=2, version="v7", timeout=60, verdict=verdict, events=c["events"])
    assert lines[0] == (
        "green did not get 2 healthy target(s) running v7: the deployment of app-green:7 failed and ECS rolled the "
        "service back to app-green:6."
    )
    assert lines[1] == "service: desired 2, running 2, pending 0"
    assert lines[2] == "deployments: PRIMARY app-green:6 IN_PROGRESS; ACTIVE app-green:7 FAILED (circuit breaker)"
    assert lines[3] == "targets: 10.0.1.5:8000 unhealthy (Target.ResponseCodeMismatch: Health checks failed with 502)"
    assert lines[4].startswith("recent service events, newest first: ['(service app-green) has started 2 tasks'")
    failures = "failures among the service's events, newest first:"
    assert lines[5] == f"{failures} ['(service app-green) deployment failed: tasks failed to start']"


def test_diagnosis_of_a_timeout_says_whether_the_targets_or_the_deployment_held_it_up():
    stuck = healthy_color(2, "IN_PROGRESS")
    first = bg.diagnosis("green", stuck, required=2, version="v7", timeout=60, verdict=bg.Verdict(bg.WAITING))[0]
    assert "its targets are healthy but the deployment of app-green:7 did not complete within 60 s" in first
    slow = healthy_color(0)
    first = bg.diagnosis("green", slow, required=2, version="v7", timeout=60, verdict=bg.Verdict(bg.WAITING))[0]
    assert first == "green did not get 2 healthy target(s) running v7 within 60 s."


def test_status_lines_mark_the_active_colour_and_list_alarms_last_swap_and_lock():
    s = state(0, 100, record={"BlueGreenFrom": "blue", "BlueGreenTo": "green"})
    s["alarms"] = {"ecs-prod-blue-5xx": "OK", "ecs-prod-green-5xx": "ALARM"}
    s["lock"] = {"owner": "alice@ci", "operation": "swap to green", "age_seconds": 12.4}
    lines = filters.bluegreen_status_lines(s, "ecs-prod")
    assert lines[0].split() == [
        "colour",
        "weight",
        "test",
        "version",
        "task",
        "definition",
        "desired",
        "running",
        "healthy",
        "deployed",
    ]
    assert lines[1].split()[:3] == ["blue", "0%", "0%"]
    assert lines[2].split()[:1] == ["green*"]
    assert lines[3] == "alarms: blue-5xx OK, green-5xx ALARM"
    assert lines[4] == "last swap: blue -> green"
    assert lines[5] == "lock: held by alice@ci (swap to green) for 12 s"
    s["lock"], s["alarms"], s["last_swap"] = None, {}, None
    assert filters.bluegreen_status_lines(s)[-3:] == ["alarms: none", "last swap: none recorded", "lock: free"]


def test_traffic_lines_with_and_without_a_state():
    assert filters.bluegreen_traffic_lines(state()) == [
        "weights 443    blue 100 / green 0",
        "services       blue desired 2 / green desired 2",
    ]
    assert filters.bluegreen_traffic_lines(None) == ["weights 443    none", "services       none"]


def test_state_after_a_swap_takes_the_weights_health_and_record_the_switch_returned():
    before = state(100, 0)
    before["colors"]["green"]["healthy"] = 1
    before["lock"] = {"owner": "me", "operation": "swap to green", "age_seconds": 3}
    before["listener_arn"] = "arn:listener/443"
    switched = {
        "after": {"blue": 0, "green": 100},
        "health": {"green": {"healthy": 2, "required": 2, "passed": True}},
        "record": {"from": "blue", "to": "green"},
    }
    after = filters.bluegreen_state_after(before, switched, {"after": {"blue": 100, "green": 0}}, retired="blue")
    assert after["weights"] == {"blue": 0, "green": 100}
    assert after["test_weights"] == {"blue": 100, "green": 0}
    assert (after["active"], after["idle"], after["rollback"]) == ("green", "blue", "blue")
    assert after["colors"]["green"]["healthy"] == 2 and before["colors"]["green"]["healthy"] == 1
    assert after["colors"]["blue"]["desired"] == 0 and after["colors"]["green"]["desired"] == 2
    assert after["colors"]["green"]["version"] == before["colors"]["green"]["version"]
    assert after["last_swap"] == {"from": "blue", "to": "green"} and after["lock"] is None
    assert after["listener_arn"] == "arn:listener/443"
    assert before["weights"] == {"blue": 100, "green": 0}  # the state read is not changed in place


def test_state_after_a_switch_that_moved_nothing_keeps_what_was_read():
    before = state(0, 100, record={"BlueGreenFrom": "blue", "BlueGreenTo": "green"})
    after = filters.bluegreen_state_after(before, None, {"skipped": True, "changed": False})
    assert after["weights"] == before["weights"] and after["test_weights"] == before["test_weights"]
    assert after["last_swap"] == {"from": "blue", "to": "green"} and after["active"] == "green"
    with pytest.raises(AnsibleFilterError, match="retired must be one of blue, green"):
        filters.bluegreen_state_after(before, retired="red")
    with pytest.raises(AnsibleFilterError, match="switched must be a traffic_switch result"):
        filters.bluegreen_state_after(before, "green")


@pytest.mark.parametrize("name", ["bluegreen_status_lines", "bluegreen_deploy_size", "bluegreen_state_after"])
def test_the_filters_refuse_something_that_is_not_a_state(name):
    with pytest.raises(AnsibleFilterError, match="give it the state bluegreen_info returns"):
        getattr(filters, name)({"weights": {}})


def test_forwarded_target_groups_names_every_target_group_of_the_listener_once():
    lb = {
        "listeners": [
            {"port": 80, "default_actions": [{"type": "redirect"}]},
            {
                "port": 443,
                "default_actions": [
                    {
                        "type": "forward",
                        "forward_config": {
                            "target_groups": [
                                {"target_group_arn": f"{TG}/app-blue/1", "weight": 100},
                                {"target_group_arn": f"{TG}/app-green/2", "weight": 0},
                            ]
                        },
                    }
                ],
            },
            {"port": 9443, "default_actions": [{"type": "forward", "target_group_arn": f"{TG}/app-green/2"}]},
        ]
    }
    assert forwarded_target_groups(lb, 443) == [
        {"target_group_arn": f"{TG}/app-blue/1", "target_group_name": "app-blue"},
        {"target_group_arn": f"{TG}/app-green/2", "target_group_name": "app-green"},
    ]
    assert forwarded_target_groups(lb, 9443) == [
        {"target_group_arn": f"{TG}/app-green/2", "target_group_name": "app-green"}
    ]
    assert forwarded_target_groups({}, 443) == []
    with pytest.raises(AnsibleFilterError):
        forwarded_target_groups([], 443)
