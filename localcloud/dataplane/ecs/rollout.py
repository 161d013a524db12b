"""The service scheduler's arithmetic: rolling update steps, launch backoff and the deployment
circuit breaker's threshold, as pure functions."""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class TaskView:
    """What a rollout decision needs to know of a running task."""

    task_id: str
    current: bool  # belongs to the service's PRIMARY deployment
    healthy: bool
    started: float


@dataclasses.dataclass(frozen=True)
class Plan:
    start: int
    stop: tuple[str, ...]


def plan_rollout(
    desired: int, minimum_healthy_percent: int, maximum_percent: int, tasks: list[TaskView], stopping: int = 0
) -> Plan:
    """How many tasks to start and which to stop now, as ECS's rolling update decides.

    ``tasks`` are the service's tasks that are not being stopped; ``stopping`` counts those still
    draining or stopping (they keep counting against ``maximumPercent`` until they are gone).
    Healthy tasks never fall below ``ceil(desired * minimumHealthyPercent / 100)``; all tasks never
    exceed ``floor(desired * maximumPercent / 100)``; tasks of old deployments that are not healthy
    count for nothing and go first; extra tasks of the current deployment go, least healthy and
    newest first.
    """
    minimum_healthy = math.ceil(desired * minimum_healthy_percent / 100) if desired else 0
    maximum_total = math.floor(desired * maximum_percent / 100) if desired else 0
    current = [t for t in tasks if t.current]
    old = [t for t in tasks if not t.current]
    stop: list[str] = []

    excess = len(current) - desired
    if excess > 0:
        doomed = sorted(current, key=lambda t: (t.healthy, -t.started))[:excess]
        stop += [t.task_id for t in doomed]
        current = [t for t in current if t.task_id not in stop]

    stop += [t.task_id for t in old if not t.healthy]
    old_healthy = sorted((t for t in old if t.healthy), key=lambda t: t.started)
    healthy_total = sum(t.healthy for t in current) + len(old_healthy)
    stoppable = max(0, healthy_total - minimum_healthy)
    stop += [t.task_id for t in old_healthy[:stoppable]]

    room = maximum_total - (len(tasks) + stopping)
    start = max(0, min(desired - len(current), room))
    return Plan(start=start, stop=tuple(stop))


def backoff_delay(failures: int, base: float, cap: float) -> float:
    """Seconds to wait before the next launch after ``failures`` consecutive failed tasks."""
    if failures <= 0:
        return 0.0
    return min(cap, base * 2 ** (failures - 1))


def circuit_breaker_threshold(desired: int) -> int:
    """Failed tasks after which ECS's deployment circuit breaker fails a deployment."""
    return max(3, min(200, math.ceil(desired / 2)))
