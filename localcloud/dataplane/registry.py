"""Target groups' targets and their health, shared by the ECS task runner and the load balancer.

The ECS runner registers a task's address in its service's target group when the task starts,
asks for draining when it stops, and removes it once gone. The load balancer's health checker
records each check; the registry turns the checks into ALB's states with the target group's
thresholds: ``initial`` until ``healthy_threshold`` consecutive successes, ``healthy``, and
``unhealthy`` after ``unhealthy_threshold`` consecutive failures; ``draining`` from the moment the
task is being stopped. Observers hear every state change (the API sync uses that to register a
target with the AWS API only while it is healthy, so whoever reads target health through the API
sees what the load balancer sees).
"""

from __future__ import annotations

import dataclasses
import enum
import threading
import time
from collections.abc import Callable

TargetKey = tuple[str, str, int]  # (target group ARN, ip, port)


class Health(enum.StrEnum):
    INITIAL = "initial"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    DRAINING = "draining"


@dataclasses.dataclass
class Target:
    target_group_arn: str
    ip: str
    port: int
    task_id: str
    health: Health = Health.INITIAL
    reason: str = "Elb.RegistrationInProgress"
    successes: int = 0
    failures: int = 0
    since: float = dataclasses.field(default_factory=time.monotonic)
    inflight: int = 0

    @property
    def key(self) -> TargetKey:
        return (self.target_group_arn, self.ip, self.port)

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"


Observer = Callable[[Target, Health, Health], None]


class TargetRegistry:
    """Thread-safe; every accessor returns copies, never the registry's own objects."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._targets: dict[TargetKey, Target] = {}
        self._observers: list[Observer] = []

    def subscribe(self, observer: Observer) -> None:
        self._observers.append(observer)

    def register(self, target_group_arn: str, ip: str, port: int, task_id: str) -> Target:
        """A task's address joins the target group, in state ``initial``."""
        with self._lock:
            target = Target(target_group_arn, ip, port, task_id)
            self._targets[target.key] = target
            return dataclasses.replace(target)

    def begin_draining(self, target_group_arn: str, ip: str, port: int) -> bool:
        """The task is stopping: no new requests from now on. False when it was not registered."""
        return self._transition((target_group_arn, ip, port), Health.DRAINING, "Target.DeregistrationInProgress")

    def deregister(self, target_group_arn: str, ip: str, port: int) -> None:
        with self._lock:
            target = self._targets.pop((target_group_arn, ip, port), None)
        if target is not None and target.health is not Health.DRAINING:
            self._notify(target, target.health, Health.DRAINING)

    def record_check(
        self,
        target_group_arn: str,
        ip: str,
        port: int,
        *,
        ok: bool,
        reason: str,
        healthy_threshold: int,
        unhealthy_threshold: int,
    ) -> Health | None:
        """One health check's outcome; returns the target's state after it (None: not registered)."""
        with self._lock:
            target = self._targets.get((target_group_arn, ip, port))
            if target is None:
                return None
            if target.health is Health.DRAINING:
                return target.health
            if ok:
                target.successes, target.failures = target.successes + 1, 0
                becomes = Health.HEALTHY if target.successes >= healthy_threshold else None
                if target.health is Health.HEALTHY:
                    becomes = None
            else:
                target.failures, target.successes = target.failures + 1, 0
                becomes = Health.UNHEALTHY if target.failures >= unhealthy_threshold else None
                if target.health is Health.UNHEALTHY:
                    becomes = None
            if becomes is None:
                if not ok:
                    target.reason = reason
                return target.health
        self._transition(target.key, becomes, "" if becomes is Health.HEALTHY else reason)
        return becomes

    def targets(self, target_group_arn: str | None = None) -> list[Target]:
        with self._lock:
            return [
                dataclasses.replace(t)
                for t in self._targets.values()
                if target_group_arn is None or t.target_group_arn == target_group_arn
            ]

    def routable(self, target_group_arn: str) -> list[Target]:
        """Where new requests may go: the healthy targets; when none is healthy but some are
        unhealthy, all the unhealthy ones (ALB fails open). Never initial or draining ones."""
        members = self.targets(target_group_arn)
        healthy = [t for t in members if t.health is Health.HEALTHY]
        return healthy or [t for t in members if t.health is Health.UNHEALTHY]

    def begin_request(self, key: TargetKey) -> None:
        with self._lock:
            if key in self._targets:
                self._targets[key].inflight += 1

    def end_request(self, key: TargetKey) -> None:
        with self._lock:
            if key in self._targets and self._targets[key].inflight > 0:
                self._targets[key].inflight -= 1

    def inflight(self, key: TargetKey) -> int:
        with self._lock:
            target = self._targets.get(key)
            return target.inflight if target else 0

    def _transition(self, key: TargetKey, new: Health, reason: str) -> bool:
        with self._lock:
            target = self._targets.get(key)
            if target is None:
                return False
            old = target.health
            if old is new:
                return True
            target.health, target.reason, target.since = new, reason, time.monotonic()
            snapshot = dataclasses.replace(target)
        self._notify(snapshot, old, new)
        return True

    def _notify(self, target: Target, old: Health, new: Health) -> None:
        for observer in list(self._observers):
            observer(target, old, new)
