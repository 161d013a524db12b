"""AWS/ECS CPUUtilization and MemoryUtilization from the tasks' real processes (``/proc``),
published to the local CloudWatch under ECS's names and dimensions."""

from __future__ import annotations

import datetime
import subprocess
import sys
import types

import pytest

from localcloud.dataplane.ecs.usage import NAMESPACE, UsagePublisher, read_groups

# A task: a process group whose leader waits for a line, then a child burns 0.5 s of CPU while
# the leader holds 64 MiB, both print "done" and stay until stdin closes.
WORKER = r"""
import subprocess, sys, time
memory = bytearray(64 * 1024 * 1024)
for i in range(0, len(memory), 4096):
    memory[i] = 1
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()
child = subprocess.run([sys.executable, "-c",
    "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass"])
sys.stdout.write("done\n"); sys.stdout.flush()
sys.stdin.readline()
"""


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def worker():
    process = subprocess.Popen(
        [sys.executable, "-c", WORKER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a task's
    )
    try:
        assert process.stdout.readline().strip() == "ready"
        yield process
    finally:
        process.kill()
        process.wait(timeout=10)


def _task(pid: int, *, cpu: str, memory: str, service: str = "items-local-blue") -> types.SimpleNamespace:
    return types.SimpleNamespace(
        task_id=f"t{pid}",
        pid=pid,
        last_status="RUNNING",
        region="us-east-1",
        cluster_name="items-local",
        service_name=service,
        cpu=cpu,
        memory=memory,
    )


def test_a_group_s_cpu_counts_its_children_and_its_memory_is_resident(worker):
    before = read_groups([worker.pid])[worker.pid]
    worker.stdin.write("go\n")
    worker.stdin.flush()
    assert worker.stdout.readline().strip() == "done"
    after = read_groups([worker.pid])[worker.pid]
    assert 0.45 <= after.cpu_seconds - before.cpu_seconds <= 0.7  # the child's 0.5 s, reaped by the leader
    assert after.rss_bytes >= 64 * 1024 * 1024
    assert read_groups([]) == {}


def test_a_service_s_use_is_a_share_of_its_reservation_published_under_ecs_names(aws_api, worker):
    aws_api.reset()
    clock = Clock()
    publisher = UsagePublisher(aws_api.client, "123456789012", clock=clock)
    task = _task(worker.pid, cpu="512", memory="1024")
    idle = _task(worker.pid + 10_000_000, cpu="256", memory="512", service="items-local-green")  # no such process

    assert publisher.publish([task, idle]) == {}  # a first sample has nothing to compare with
    worker.stdin.write("go\n")
    worker.stdin.flush()
    assert worker.stdout.readline().strip() == "done"
    clock.now += 1.0
    measured = publisher.publish([task, idle])

    usage = measured[("us-east-1", "items-local", "items-local-blue")]
    assert set(measured) == {("us-east-1", "items-local", "items-local-blue")}
    assert 90 <= usage.cpu_percent <= 140, usage  # 0.5 s of CPU in 1 s, of 0.5 vCPU reserved
    assert 100 * 64 / 1024 <= usage.memory_percent <= 100 * 160 / 1024, usage
    cloudwatch = aws_api.client("cloudwatch", "us-east-1")
    now = datetime.datetime.now(datetime.UTC)
    for name, value in (("CPUUtilization", usage.cpu_percent), ("MemoryUtilization", usage.memory_percent)):
        points = cloudwatch.get_metric_statistics(
            Namespace=NAMESPACE,
            MetricName=name,
            Dimensions=[
                {"Name": "ClusterName", "Value": "items-local"},
                {"Name": "ServiceName", "Value": "items-local-blue"},
            ],
            StartTime=now - datetime.timedelta(minutes=5),
            EndTime=now + datetime.timedelta(minutes=1),
            Period=60,
            Statistics=["Maximum"],
        )["Datapoints"]
        assert [(p["Maximum"], p["Unit"]) for p in points] == [(value, "Percent")], name
    assert publisher.published == 2
