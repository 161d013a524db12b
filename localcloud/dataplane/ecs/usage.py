"""AWS/ECS service metrics from the tasks' processes: ``CPUUtilization`` and ``MemoryUtilization``.

ECS publishes, per service (dimensions ``ClusterName`` and ``ServiceName``), the CPU and memory
its running tasks use as a percentage of what their task definitions reserve (``cpu`` units, 1024
to a vCPU, and ``memory`` MiB). A local task is a process group (its leader is the task's process;
gunicorn's workers are in its group), so its use is read from ``/proc``: the CPU time (``utime`` +
``stime``, and ``cutime`` + ``cstime`` for the children it reaped) and the resident memory of every
process of the group. CPU is the time used between two samples over the time between them; memory
is the resident size at the sample. A service's value is the sum over its tasks divided by the sum
of their reservations, as ECS computes it.

Datapoints are published with ``StorageResolution: 1`` every ``interval`` seconds (ECS publishes
one a minute), so a dashboard or a target-tracking policy on CPU reads the same names here and on
AWS. A process that ends between two samples is not counted for that interval.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from localcloud.dataplane.ecs.model import LocalTask

log = logging.getLogger(__name__)

NAMESPACE = "AWS/ECS"
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclasses.dataclass(frozen=True)
class GroupUsage:
    cpu_seconds: float
    rss_bytes: int


def read_groups(groups: Iterable[int], proc: Path = Path("/proc")) -> dict[int, GroupUsage]:
    """CPU seconds and resident bytes of every process of each process group in ``groups``."""
    wanted = set(groups)
    totals: dict[int, list[float]] = {}
    if not wanted:
        return {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:  # the process ended meanwhile
            continue
        # the command name (field 2) may hold spaces and parentheses: split after the last ")"
        fields = raw[raw.rfind(")") + 2 :].split()
        pgrp = int(fields[2])
        if pgrp not in wanted:
            continue
        total = totals.setdefault(pgrp, [0.0, 0])
        # utime + stime, and cutime + cstime: the children it reaped (a worker that exited) count
        total[0] += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / TICKS
        total[1] += int(fields[21]) * PAGE  # rss in pages
    return {pgrp: GroupUsage(cpu, int(rss)) for pgrp, (cpu, rss) in totals.items()}


def _units(value: str | None, default: int) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


@dataclasses.dataclass
class ServiceUsage:
    cpu_percent: float
    memory_percent: float
    tasks: int


class UsagePublisher:
    """Sample the running tasks' processes and publish each service's CPU and memory use."""

    def __init__(
        self,
        clients: Callable[[str, str], object],
        account_id: str,
        *,
        proc: Path = Path("/proc"),
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.clients = clients
        self.account_id = account_id
        self.proc = proc
        self.clock = clock or time.monotonic
        self._last: dict[str, tuple[float, float]] = {}  # task id -> (sample time, cpu seconds)
        self.published = 0

    def measure(self, tasks: Iterable[LocalTask]) -> dict[tuple[str, str, str], ServiceUsage]:
        """(region, cluster, service) -> use, for services with a running task sampled twice."""
        running = [t for t in tasks if t.last_status == "RUNNING" and t.pid]
        groups = read_groups((t.pid for t in running), self.proc)
        now = self.clock()
        sums: dict[tuple[str, str, str], list[float]] = {}
        last = {}
        for task in running:
            usage = groups.get(task.pid)
            if usage is None:
                continue
            last[task.task_id] = (now, usage.cpu_seconds)
            before = self._last.get(task.task_id)
            if before is None or now <= before[0]:
                continue
            cpu_share = max(0.0, usage.cpu_seconds - before[1]) / (now - before[0])  # vCPUs used
            key = (task.region, task.cluster_name, task.service_name)
            total = sums.setdefault(key, [0.0, 0.0, 0.0, 0.0, 0])
            total[0] += cpu_share
            total[1] += _units(task.cpu, 256) / 1024
            total[2] += usage.rss_bytes / (1024 * 1024)
            total[3] += _units(task.memory, 512)
            total[4] += 1
        self._last = last
        return {
            key: ServiceUsage(round(100 * cpu / reserved_cpu, 2), round(100 * mem / reserved_mem, 2), int(count))
            for key, (cpu, reserved_cpu, mem, reserved_mem, count) in sums.items()
        }

    def publish(self, tasks: Iterable[LocalTask]) -> dict[tuple[str, str, str], ServiceUsage]:
        measured = self.measure(tasks)
        stamp = datetime.datetime.now(datetime.UTC)
        by_region: dict[str, list[dict]] = {}
        for (region, cluster, service), usage in measured.items():
            dimensions = [{"Name": "ClusterName", "Value": cluster}, {"Name": "ServiceName", "Value": service}]
            for name, value in (("CPUUtilization", usage.cpu_percent), ("MemoryUtilization", usage.memory_percent)):
                by_region.setdefault(region, []).append(
                    {
                        "MetricName": name,
                        "Dimensions": dimensions,
                        "Timestamp": stamp,
                        "Value": value,
                        "Unit": "Percent",
                        "StorageResolution": 1,
                    }
                )
        for region, data in by_region.items():
            try:
                for first in range(0, len(data), 1000):
                    self.clients("cloudwatch", region).put_metric_data(
                        Namespace=NAMESPACE, MetricData=data[first : first + 1000]
                    )
                self.published += len(data)
            except Exception as exc:  # noqa: BLE001 - metrics must never stop the data plane
                log.warning("publishing ECS usage to %s failed: %s", region, exc)
        return measured
