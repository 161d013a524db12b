"""ECS made real: every service's desired count of its task definition runs as local processes.

A task is the app (``app/``) under gunicorn, for any image whose tag exists in the local ECR, on
its own loopback address (``127.1.x.y``) and the container port, with the task definition's
environment plus what the ECS agent provides. The plane follows ECS's service scheduler:

- **Launch**: the image is "pulled" (its tag must exist in the local ECR, else the task stops
  with ``CannotPullContainerError``), the awslogs log group must exist, then the process starts
  and its address joins the service's target groups (``initial`` in the shared registry, whose
  health the load balancer's checker decides).
- **Container health check**: the task definition's own command (CMD or CMD-SHELL) runs in the
  task's environment every ``interval``, ``timeout`` each, ``retries`` consecutive failures after
  ``startPeriod``: an UNHEALTHY task is replaced ("Task failed container health checks"). The
  task's PATH holds only ``python`` (as a slim image does), so a curl-based check fails here as it
  did on Fargate, whatever the host has installed.
- **Load balancer health**: after ``healthCheckGracePeriodSeconds`` a task whose target is
  unhealthy is replaced ("Task failed ELB health checks").
- **Deployments**: a new task definition (or ``forceNewDeployment``) makes a new PRIMARY
  deployment; new tasks start, and old ones drain only once enough are healthy: tasks healthy in
  every target group and by their container check never fall below ``minimumHealthyPercent`` and
  all tasks never exceed ``maximumPercent`` (:func:`plan_rollout`). With the deployment circuit
  breaker on, a deployment whose tasks keep failing is marked FAILED and launches no more tasks;
  with rollback, the service goes back to the last completed task definition.
- **Stop**: the targets drain (no new requests; in-flight ones get up to the target group's
  deregistration delay), are deregistered, then SIGTERM; SIGKILL to the process group after the
  container's ``stopTimeout``.
- **Failures** (a crashed process, failed health) are replaced with exponential backoff, as ECS
  throttles a service that cannot start tasks.

What it does is reflected into the emulator's ECS backend (:class:`MotoEcsMirror`): tasks for
``list_tasks``/``describe_tasks``, running and pending counts, deployments and service events for
``describe_services``, so that ``status``, waiters and runbooks read the truth through the API.

Its modules:

- :mod:`~localcloud.dataplane.ecs.rollout`: the scheduler's arithmetic (rolling update steps,
  launch backoff, the circuit breaker's threshold), pure functions.
- :mod:`~localcloud.dataplane.ecs.container`: a task's container: the task definition's container
  and its health check, the task's environment and process, and running the container health check.
- :mod:`~localcloud.dataplane.ecs.model`: the plane's state: tasks, deployments, services.
- :mod:`~localcloud.dataplane.ecs.plane`: :class:`EcsPlane`, the reconciler.
- :mod:`~localcloud.dataplane.ecs.mirror`: :class:`MotoEcsMirror`, the reflection into the emulator.

``docs/local-cloud.md`` ("ECS: services become processes") describes the behaviour for users.
"""

from __future__ import annotations

from localcloud.dataplane.ecs.container import (
    OWNER_ENV,
    ContainerHealth,
    HealthCheckSpec,
    TaskRuntime,
    container_spec,
    parse_health_check,
    task_environment,
)
from localcloud.dataplane.ecs.mirror import MotoEcsMirror
from localcloud.dataplane.ecs.plane import EcsPlane
from localcloud.dataplane.ecs.rollout import TaskView, backoff_delay, circuit_breaker_threshold, plan_rollout

__all__ = [
    "OWNER_ENV",
    "ContainerHealth",
    "EcsPlane",
    "HealthCheckSpec",
    "MotoEcsMirror",
    "TaskRuntime",
    "TaskView",
    "backoff_delay",
    "circuit_breaker_threshold",
    "container_spec",
    "parse_health_check",
    "plan_rollout",
    "task_environment",
]
