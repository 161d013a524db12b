"""Unit tests for ecs_production.platform.bluegreen_info: input refused before any client is made, the state it
reads from fake AWS clients (weights, health, services, versions, alarms, last swap, lock) and in how many calls,
and its wait - done, failed for good at once, timed out with a diagnosis - on a fake clock."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import botocore.exceptions
import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.ecs_production.platform.plugins.modules import bluegreen_info as mod

PREFIX = "arn:aws:elasticloadbalancing:us-east-1:123456789012"
LB_ARN = f"{PREFIX}:loadbalancer/app/app-alb/1111111111111111"
PROD = f"{PREFIX}:listener/app/app-alb/1111111111111111/2222222222222222"
TEST = f"{PREFIX}:listener/app/app-alb/1111111111111111/3333333333333333"
BLUE = f"{PREFIX}:targetgroup/app-blue/0123456789abcdef"
GREEN = f"{PREFIX}:targetgroup/app-green/fedcba9876543210"
TD = "arn:aws:ecs:us-east-1:123456789012:task-definition"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def client_error(code: str, operation: str = "Op") -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": code}}, operation)


def forward(blue: int, green: int) -> list:
    groups = [{"TargetGroupArn": BLUE, "Weight": blue}, {"TargetGroupArn": GREEN, "Weight": green}]
    return [{"Type": "forward", "ForwardConfig": {"TargetGroups": groups}}]


class FakeClock:
    def __init__(self):
        self.mono = 0.0
        self.sleeps: list[float] = []

    def now(self):
        return NOW

    def monotonic(self):
        return self.mono

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.mono += seconds


class FakeAws:
    """elbv2, ecs, cloudwatch and ssm over one environment; ``timeline`` replaces the green service and targets
    at each look (the last one stays)."""

    def __init__(self):
        self.calls: list[str] = []
        self.weights = {443: (100, 0), 9443: (0, 100)}
        self.tags = {"BlueGreenFrom": "green", "BlueGreenTo": "blue"}
        self.targets = {BLUE: ["healthy", "healthy"], GREEN: []}
        self.services = {
            "app-blue": {"desiredCount": 2, "runningCount": 2, "taskDefinition": f"{TD}/app-blue:3"},
            "app-green": {"desiredCount": 0, "runningCount": 0, "taskDefinition": f"{TD}/app-green:1"},
        }
        self.versions = {"app-blue:3": "v1", "app-green:1": "v1", "app-green:2": "v2"}
        self.alarms = {"app-blue-5xx": "OK", "app-green-5xx": "ALARM"}
        self.lock = None
        self.timeline: list[tuple[dict, list[str]]] = []
        self.stopped: list[dict] = []  # DescribeTasks of the green service's stopped tasks
        self.logs: dict[str, list[str]] = {}  # log stream -> messages (a stream not here: AccessDenied)

    def _call(self, name, kwargs):
        assert kwargs.pop("aws_retry", True) is True
        self.calls.append(name)

    # elbv2
    def get_paginator(self, operation):
        assert operation == "describe_listeners"
        fake = self

        class Paginator:
            def paginate(self, **kwargs):
                fake.calls.append("describe_listeners")
                assert kwargs == {"LoadBalancerArn": LB_ARN}
                listeners = [
                    {"ListenerArn": PROD, "Port": 443, "DefaultActions": forward(*fake.weights[443])},
                    {"ListenerArn": TEST, "Port": 9443, "DefaultActions": forward(*fake.weights[9443])},
                ]

                class Result:
                    def build_full_result(self):
                        return {"Listeners": listeners}

                return Result()

        return Paginator()

    def describe_load_balancers(self, **kwargs):
        self._call("describe_load_balancers", kwargs)
        if kwargs != {"Names": ["app-alb"]}:
            raise client_error("LoadBalancerNotFound")
        return {"LoadBalancers": [{"LoadBalancerArn": LB_ARN}]}

    def describe_target_groups(self, **kwargs):
        self._call("describe_target_groups", kwargs)
        known = {"app-blue": BLUE, "app-green": GREEN}
        return {"TargetGroups": [{"TargetGroupArn": known[n], "TargetGroupName": n} for n in kwargs["Names"]]}

    def describe_tags(self, **kwargs):
        self._call("describe_tags", kwargs)
        assert kwargs["ResourceArns"] == [PROD]
        return {
            "TagDescriptions": [{"ResourceArn": PROD, "Tags": [{"Key": k, "Value": v} for k, v in self.tags.items()]}]
        }

    def describe_target_health(self, **kwargs):
        self._call("describe_target_health", kwargs)
        states = self.targets[kwargs["TargetGroupArn"]]
        return {
            "TargetHealthDescriptions": [
                {"Target": {"Id": f"10.0.1.{i}", "Port": 8000}, "TargetHealth": {"State": s}}
                for i, s in enumerate(states)
            ]
        }

    # ecs
    def describe_services(self, **kwargs):
        self._call("describe_services", kwargs)
        if self.timeline and "app-green" in kwargs["services"]:
            service, targets = self.timeline.pop(0) if len(self.timeline) > 1 else self.timeline[0]
            self.services["app-green"] = service
            self.targets[GREEN] = targets
        return {
            "services": [
                dict(copy.deepcopy(self.services[name]), serviceName=name, status="ACTIVE")
                for name in kwargs["services"]
            ]
        }

    def describe_task_definition(self, **kwargs):
        self._call("describe_task_definition", kwargs)
        name = kwargs["taskDefinition"].rsplit("/", 1)[-1]
        env = [{"name": "APP_VERSION", "value": self.versions[name]}]
        logging = {
            "logDriver": "awslogs",
            "options": {"awslogs-group": "/ecs/app", "awslogs-region": "us-east-1", "awslogs-stream-prefix": "green"},
        }
        container = {"name": "app", "image": "r/app:x", "environment": env, "logConfiguration": logging}
        return {"taskDefinition": {"containerDefinitions": [container]}}

    def list_tasks(self, **kwargs):
        self._call("list_tasks", kwargs)
        assert kwargs == {"cluster": "app", "serviceName": "app-green", "desiredStatus": "STOPPED"}
        return {"taskArns": [t["taskArn"] for t in self.stopped]}

    def describe_tasks(self, **kwargs):
        self._call("describe_tasks", kwargs)
        return {"tasks": [copy.deepcopy(t) for t in self.stopped if t["taskArn"] in kwargs["tasks"]]}

    # logs
    def get_log_events(self, **kwargs):
        self._call("get_log_events", kwargs)
        assert kwargs["logGroupName"] == "/ecs/app" and kwargs["startFromHead"] is False
        if kwargs["logStreamName"] not in self.logs:
            raise client_error("AccessDeniedException")
        return {"events": [{"message": m} for m in self.logs[kwargs["logStreamName"]][-kwargs["limit"] :]]}

    # cloudwatch
    def describe_alarms(self, **kwargs):
        self._call("describe_alarms", kwargs)
        return {
            "MetricAlarms": [
                {"AlarmName": n, "StateValue": self.alarms[n]} for n in kwargs["AlarmNames"] if n in self.alarms
            ]
        }

    # ssm
    def get_parameter(self, **kwargs):
        self._call("get_parameter", kwargs)
        if self.lock is None:
            raise client_error("ParameterNotFound")
        return {"Parameter": {"Value": json.dumps(self.lock), "LastModifiedDate": NOW}}


ARGS = {
    "load_balancer_arn": LB_ARN,
    "test_port": 9443,
    "target_groups": {"blue": BLUE, "green": GREEN},
    "services": {"blue": "app/app-blue", "green": "app/app-green"},
    "region": "us-east-1",
}


def run(monkeypatch, capsys, aws: FakeAws, clock: FakeClock | None = None, **args):
    made = []

    def client(_self, service, retry_decorator=None, **_kwargs):
        made.append(service)
        return aws

    monkeypatch.setattr(mod.AnsibleAWSModule, "client", client)
    clock = clock or FakeClock()
    monkeypatch.setattr(mod, "Clock", lambda: clock)
    given = {key: value for key, value in dict(ARGS, **args).items() if value is not None}
    with patch_module_args(given), pytest.raises(SystemExit):
        mod.main()
    return json.loads(capsys.readouterr().out), made


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"target_groups": {"blue": BLUE}}, "target_groups must name 2 to 5 colours, not 1"),
        ({"services": {"purple": "a/b"}}, "services: 'purple' is not a colour of target_groups (blue, green)"),
        ({"services": {"blue": "nocluster"}}, "services.blue must be CLUSTER/SERVICE, not 'nocluster'"),
        ({"alarms": {"blue": "x"}}, "alarms.blue must be a list of alarm names"),
        ({"port": 0}, "port must be a TCP port (1-65535), not 0"),
        ({"test_port": 70000}, "test_port must be a TCP port (1-65535) or 0 for none"),
        ({"wait": {"color": "red", "until": "healthy"}}, "wait.color 'red' is not a colour of target_groups"),
        ({"wait": {"color": "green", "until": "healthy", "count": 0}}, "wait.count must be at least 1, not 0"),
        ({"wait": {"color": "green", "until": "soon"}}, "value of until must be one of: healthy, drained"),
        ({"load_balancer_name": "app-alb"}, "parameters are mutually exclusive: load_balancer_arn|load_balancer_name"),
    ],
)
def test_bad_input_is_refused_before_any_client(monkeypatch, capsys, args, message):
    aws = FakeAws()
    result, made = run(monkeypatch, capsys, aws, **args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert made == [] and aws.calls == []


def test_reads_the_whole_state_in_a_handful_of_calls(monkeypatch, capsys):
    aws = FakeAws()
    aws.lock = {"owner": "bob@ci", "operation": "deploy v2", "acquired_at": "2026-12-01T11:59:30+00:00",
                "expires_at": "2026-12-01T12:59:30+00:00", "token": "secret-token"}  # fmt: skip
    alarms = {"blue": ["app-blue-5xx"], "green": ["app-green-5xx", "app-green-gone"]}
    result, made = run(monkeypatch, capsys, aws, alarms=alarms, lock_parameter="/app/prod/lock")
    state = result["state"]
    assert result["changed"] is False
    assert (state["weights"], state["test_weights"], state["test_port"]) == (
        {"blue": 100, "green": 0},
        {"blue": 0, "green": 100},
        9443,
    )
    assert (state["active"], state["idle"], state["rollback"]) == ("blue", "green", "green")
    assert state["last_swap"] == {"from": "green", "to": "blue"}
    blue = state["colors"]["blue"]
    assert (blue["desired"], blue["running"], blue["healthy"], blue["version"], blue["task_definition"]) == (
        2,
        2,
        2,
        "v1",
        "app-blue:3",
    )
    assert state["colors"]["green"]["alarms"] == {"app-green-5xx": "ALARM", "app-green-gone": "MISSING"}
    assert list(state["alarms"]) == ["app-blue-5xx", "app-green-5xx", "app-green-gone"]
    assert state["lock"]["owner"] == "bob@ci" and state["lock"]["age_seconds"] == 30
    # A held lock is read, not tried: status shows its holder without the warning of a check-mode acquire.
    assert not result.get("warnings"), result.get("warnings")
    assert "secret-token" not in json.dumps(result)
    assert (state["listener_arn"], state["test_listener_arn"]) == (PROD, TEST)
    # Target groups by ARN: no lookup; one DescribeServices for the cluster; one call per task definition.
    assert sorted(aws.calls) == sorted(
        ["describe_listeners", "describe_tags", "describe_target_health", "describe_target_health", "describe_services",
         "describe_task_definition", "describe_task_definition", "describe_alarms", "get_parameter"]
    )  # fmt: skip
    assert sorted(set(made)) == ["cloudwatch", "ecs", "elbv2", "ssm"]


def test_by_names_it_looks_the_load_balancer_and_target_groups_up_and_skips_what_is_not_asked(monkeypatch, capsys):
    aws = FakeAws()
    args = {
        "load_balancer_arn": None,
        "load_balancer_name": "app-alb",
        "target_groups": {"blue": "app-blue", "green": "app-green"},
    }
    result, made = run(monkeypatch, capsys, aws, versions=False, **args)
    assert result["state"]["colors"]["green"]["target_group_arn"] == GREEN
    assert result["state"]["colors"]["blue"]["version"] == "-"
    assert "describe_task_definition" not in aws.calls
    assert aws.calls.count("describe_target_groups") == 1
    assert "cloudwatch" not in made and "ssm" not in made
    assert result["state"]["lock"] is None


def test_a_missing_load_balancer_or_listener_fails_clearly(monkeypatch, capsys):
    args = {"load_balancer_arn": None, "load_balancer_name": "nope"}
    result, _made = run(monkeypatch, capsys, FakeAws(), **args)
    assert result["failed"] and result["msg"] == "Load balancer nope not found: provision first"
    result, _made = run(monkeypatch, capsys, FakeAws(), port=8443)
    assert result["failed"] and "has no listener on port 8443" in result["msg"]


def green(desired=2, running=2, td="app-green:2", rollout="COMPLETED", events=()):
    return {
        "desiredCount": desired,
        "runningCount": running,
        "pendingCount": desired - running,
        "taskDefinition": f"{TD}/{td}",
        "deployments": [
            {"status": "PRIMARY", "taskDefinition": f"{TD}/{td}", "rolloutState": rollout, "runningCount": running}
        ],
        "events": [{"message": m} for m in events],
    }


WAIT = {
    "color": "green",
    "until": "healthy",
    "count": 2,
    "task_definition": f"{TD}/app-green:2",
    "timeout": 60,
    "interval": 5,
}


def test_wait_healthy_polls_until_the_targets_and_the_deployment_are_there(monkeypatch, capsys):
    aws = FakeAws()
    aws.timeline = [
        (green(running=0, rollout="IN_PROGRESS"), []),
        (green(rollout="IN_PROGRESS"), ["initial", "initial"]),
        (green(rollout="IN_PROGRESS"), ["healthy", "healthy"]),
        (green(), ["healthy", "healthy"]),
    ]
    clock = FakeClock()
    result, _made = run(monkeypatch, capsys, aws, clock, wait=WAIT)
    assert "failed" not in result, result
    assert result["state"]["colors"]["green"]["healthy"] == 2
    assert result["waited"] == 15.0 and clock.sleeps == [5, 5, 5]
    assert [line.split(" ", 2)[:2] for line in result["progress"]] == [["0", "s"], ["5", "s"], ["10", "s"], ["15", "s"]]
    assert "green: healthy 0/2, tasks running 0/2 pending 2, deployment IN_PROGRESS" in result["progress"][0]


def test_wait_healthy_fails_at_once_on_a_deployment_rolled_back(monkeypatch, capsys):
    aws = FakeAws()
    aws.timeline = [
        (green(td="app-green:1", rollout="IN_PROGRESS", events=["deployment failed: tasks failed"]), ["healthy"] * 2)
    ]
    clock = FakeClock()
    result, _made = run(monkeypatch, capsys, aws, clock, wait=WAIT, events=10)
    assert result["failed"] is True
    assert clock.sleeps == []
    assert result["diagnosis"][0] == (
        "green did not get 2 healthy target(s) running v2: the deployment of app-green:2 failed and ECS rolled the "
        "service back to app-green:1."
    )
    assert result["msg"].startswith(result["diagnosis"][0])
    assert "deployment failed: tasks failed" in result["diagnosis"][5]
    assert result["state"]["active"] == "blue"


def stopped_task(task_id: str, stopped_at: str, reason: str, exit_code=None, health="UNKNOWN") -> dict:
    return {
        "taskArn": f"arn:aws:ecs:us-east-1:123456789012:task/app/{task_id}",
        "taskDefinitionArn": f"{TD}/app-green:2",
        "stoppedReason": reason,
        "stoppedAt": stopped_at,
        "containers": [{"name": "app", "exitCode": exit_code, "healthStatus": health}],
    }


def test_a_failed_wait_quotes_the_stopped_tasks_exit_and_last_log_lines(monkeypatch, capsys):
    aws = FakeAws()
    aws.timeline = [
        (green(td="app-green:1", rollout="IN_PROGRESS", events=["deployment failed: tasks failed"]), ["healthy"] * 2)
    ]
    aws.stopped = [
        stopped_task("a" * 32, "2026-01-01T10:00:01", "Essential container in task exited", exit_code=3),
        stopped_task("b" * 32, "2026-01-01T10:00:09", "Task failed container health checks", health="UNHEALTHY"),
    ]
    aws.logs = {f"green/app/{'a' * 32}": ["starting", "items-api: this release cannot start: broken on purpose"]}
    result, made = run(monkeypatch, capsys, aws, FakeClock(), wait=WAIT, events=10)
    assert result["failed"] is True
    stopped = [line for line in result["diagnosis"] if line.startswith("stopped task, newest first: ")]
    # Newest first: the health check failure (its log unreadable: no line, no failure), then the exit.
    assert stopped == [
        "stopped task, newest first: task bbbbbbbbbbbb (app-green:2): Task failed container health checks; "
        "container health check UNHEALTHY",
        "stopped task, newest first: task aaaaaaaaaaaa (app-green:2): Essential container in task exited; "
        "container app exited with code 3; its last log lines: ['starting', "
        "'items-api: this release cannot start: broken on purpose']",
    ]
    assert "items-api: this release cannot start: broken on purpose" in result["msg"]
    assert "logs" in made and aws.calls.count("get_log_events") == 2


def test_wait_times_out_with_a_diagnosis(monkeypatch, capsys):
    aws = FakeAws()
    aws.timeline = [(green(running=1, rollout="IN_PROGRESS"), ["unhealthy"])]
    clock = FakeClock()
    result, _made = run(monkeypatch, capsys, aws, clock, wait=dict(WAIT, timeout=12))
    assert result["failed"] is True
    assert sum(clock.sleeps) == 12
    assert result["diagnosis"][0] == "green did not get 2 healthy target(s) running v2 within 12 s."
    assert len(result["progress"]) == 1  # the same line each look


def test_wait_drained(monkeypatch, capsys):
    aws = FakeAws()
    aws.timeline = [(green(running=2), []), (green(desired=0, running=1), []), (green(desired=0, running=0), [])]
    result, _made = run(monkeypatch, capsys, aws, wait={"color": "green", "until": "drained", "interval": 2})
    assert "failed" not in result and result["state"]["colors"]["green"]["running"] == 0
    aws.timeline = [(green(desired=0, running=1), [])]
    result, _made = run(
        monkeypatch, capsys, aws, wait={"color": "green", "until": "drained", "timeout": 4, "interval": 2}
    )
    assert result["failed"] and result["diagnosis"][0] == "green still runs 1 task(s) after 4 s."
