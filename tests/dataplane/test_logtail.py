"""``localcloud logs SERVICE``: a service's lines read back from CloudWatch Logs on the local AWS API,
found through the service's task definition as an operator would find them on AWS."""

from __future__ import annotations

import contextlib
import itertools
import time
import uuid

import pytest

from localcloud import logtail

REGION = "us-east-1"


def _service(ecs, cluster: str, name: str, prefix: str) -> None:
    options = {"awslogs-group": "/ecs/items-local", "awslogs-region": REGION, "awslogs-stream-prefix": prefix}
    definition = ecs.register_task_definition(
        family=name,
        containerDefinitions=[
            {"name": "sidecar", "image": "busybox", "memory": 64},
            {
                "name": "app",
                "image": "items:v1",
                "memory": 256,
                "logConfiguration": {"logDriver": "awslogs", "options": options},
            },
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=definition, desiredCount=0)


def _put(logs, group: str, stream: str, *messages: str, at_ms: int | None = None) -> None:
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    start = at_ms or int(time.time() * 1000)
    events = [{"timestamp": start + i, "message": m} for i, m in enumerate(messages)]
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)


@pytest.fixture
def account(aws_api):
    aws_api.reset()
    ecs, logs = aws_api.client("ecs", REGION), aws_api.client("logs", REGION)
    ecs.create_cluster(clusterName="items-local")
    logs.create_log_group(logGroupName="/ecs/items-local")
    _service(ecs, "items-local", "items-local-blue", "blue")
    _service(ecs, "items-local", "items-local-green", "green")
    return ecs, logs


def test_the_lines_of_the_service_s_tasks_in_time_order_and_none_of_the_other_colour(account):
    ecs, logs = account
    source = logtail.find_source(ecs, "items-local-blue", REGION)
    assert (source.cluster, source.group, source.stream_prefix) == ("items-local", "/ecs/items-local", "blue/app/")
    now = int(time.time() * 1000)
    _put(logs, "/ecs/items-local", "blue/app/task1", "first", at_ms=now - 2000)
    _put(logs, "/ecs/items-local", "blue/app/task1", "third", at_ms=now - 1990)
    _put(logs, "/ecs/items-local", "blue/app/task2", "second", at_ms=now - 1999)
    _put(logs, "/ecs/items-local", "green/app/task3", "green line", at_ms=now - 1999)
    _put(logs, "/ecs/items-local", "blue/app/task1", "too old", at_ms=now - 120_000)

    lines = list(logtail.tail(logs, source, since_seconds=60))

    assert [line.split(" ", 2)[1:] for line in lines] == [["task1", "first"], ["task2", "second"], ["task1", "third"]]


def test_follow_prints_what_arrives_once_and_stops_when_told(account):
    ecs, logs = account
    source = logtail.find_source(ecs, "items-local-green", REGION)
    _put(logs, "/ecs/items-local", "green/app/t1", "before")
    marker = uuid.uuid4().hex
    steps = itertools.count()

    def sleep(_seconds):  # lines arrive between two looks
        step = next(steps)
        if step == 0:
            _put(logs, "/ecs/items-local", "green/app/t1", f"after {marker}")
        if step == 1:
            _put(logs, "/ecs/items-local", "green/app/t2", "from a new task")
        time.sleep(0.05)

    lines = list(logtail.tail(logs, source, since_seconds=60, follow=True, follow_seconds=3, interval=0.1, sleep=sleep))

    messages = [line.split(" ", 2)[2] for line in lines]
    assert messages == ["before", f"after {marker}", "from a new task"]


def test_a_service_that_does_not_exist_or_logs_nowhere_is_named_in_the_error(account):
    ecs, _ = account
    with pytest.raises(logtail.LogTailError, match="no active service items-local-purple"):
        logtail.find_source(ecs, "items-local-purple", REGION)
    definition = ecs.register_task_definition(
        family="quiet", containerDefinitions=[{"name": "app", "image": "items:v1", "memory": 64}]
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster="items-local", serviceName="quiet", taskDefinition=definition, desiredCount=0)
    with pytest.raises(logtail.LogTailError, match="no container of .*quiet:1 sends its output to CloudWatch Logs"):
        logtail.find_source(ecs, "quiet", REGION)
