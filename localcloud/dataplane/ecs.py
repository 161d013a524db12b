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
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import math
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from localcloud.dataplane import ecr, logs
from localcloud.dataplane.hosts import TASK_NETWORK, AddressPool, port_is_free
from localcloud.dataplane.registry import Health, TargetRegistry

log = logging.getLogger(__name__)

DEFAULT_STOP_TIMEOUT = 30.0
DEFAULT_DEREGISTRATION_DELAY = 300.0
MIN_DRAIN = 0.5  # a draining target keeps its in-flight requests at least this long
STOPPED_TASKS_KEPT = 50  # per service, as describe_tasks keeps stopped tasks for a while
EVENTS_KEPT = 100  # describe_services returns the 100 newest events
HEALTH_LOG_LIMIT = 64 * 1024
APP_COMMAND = ("-m", "gunicorn", "-c", "gunicorn.conf.py", "items_api:create_app()")
# The image's own ENV (app/Dockerfile); the task definition's environment overrides it.
IMAGE_ENVIRONMENT = {
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
    "LANG": "C.UTF-8",
    "APP_HOST": "0.0.0.0",  # noqa: S104 - replaced by the task's own address below
    "APP_PORT": "8000",
}
OWNER_ENV = "LOCALCLOUD_OWNER"  # on every process of a local cloud: its state dir (see `localcloud down`)
TASK_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}  # noqa: S105 - dummies

# -- the container health check -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HealthCheckSpec:
    """A container ``healthCheck`` with ECS's defaults (interval 30, timeout 5, retries 3, start 0)."""

    argv: tuple[str, ...]
    shell_form: bool  # CMD-SHELL: argv is /bin/sh -c "command"
    interval: float = 30.0
    timeout: float = 5.0
    retries: int = 3
    start_period: float = 0.0


def parse_health_check(definition: dict | None) -> HealthCheckSpec | None:
    """The health check of a container definition; None when there is none (or ``["NONE"]``).

    ``["CMD", exe, args...]`` runs ``exe`` directly; ``["CMD-SHELL", "cmd"]`` runs ``/bin/sh -c cmd``.
    Anything else is refused (ValueError), as Docker refuses to create such a container.
    """
    if not definition or not definition.get("command"):
        return None
    command = [str(part) for part in definition["command"]]
    kind, rest = command[0], command[1:]
    if kind == "NONE":
        return None
    if kind not in ("CMD", "CMD-SHELL") or not rest or not rest[0].strip():
        raise ValueError(f"invalid health check command {command!r}: it must start with CMD or CMD-SHELL and a command")
    settings = {
        "interval": float(definition.get("interval") or 30),
        "timeout": float(definition.get("timeout") or 5),
        "retries": int(definition.get("retries") or 3),
        "start_period": float(definition.get("startPeriod") or 0),
    }
    if kind == "CMD-SHELL":
        return HealthCheckSpec(("/bin/sh", "-c", " ".join(rest)), shell_form=True, **settings)
    return HealthCheckSpec(tuple(rest), shell_form=False, **settings)


class ContainerHealth:
    """Docker's health state machine for one container, on a given clock.

    UNKNOWN until the first result; a success makes it HEALTHY (and ends the start period);
    ``retries`` consecutive failures make it UNHEALTHY, except that failures inside the start
    period do not count while the container has never been healthy. Checks run ``interval``
    seconds apart, the first one ``interval`` after the container started.
    """

    def __init__(self, spec: HealthCheckSpec, started: float):
        self.spec = spec
        self.started = started
        self.status = "UNKNOWN"
        self.failures = 0
        self.next_at = started + spec.interval
        self._started_up = False

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def record(self, ok: bool, now: float) -> str:
        if ok:
            self.status, self.failures, self._started_up = "HEALTHY", 0, True
        elif self._started_up or now >= self.started + self.spec.start_period:
            self.failures += 1
            if self.failures >= self.spec.retries:
                self.status = "UNHEALTHY"
        self.next_at = now + self.spec.interval
        return self.status


# -- the deployment decisions ---------------------------------------------------------------------


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


# -- the container and its process ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    port: int | None
    environment: dict[str, str]
    health_check: HealthCheckSpec | None
    health_check_error: str | None
    stop_timeout: float
    log_configuration: dict | None


def container_spec(task_definition: dict, container_name: str | None = None) -> ContainerSpec:
    """The container the local cloud runs for a task definition: the one a load balancer names,
    else the first essential one (sidecars are not run)."""
    containers = task_definition.get("containerDefinitions") or []
    if not containers:
        raise ValueError(f"task definition {task_definition.get('taskDefinitionArn')} has no container")
    chosen = next((c for c in containers if c.get("name") == container_name), None) if container_name else None
    chosen = chosen or next((c for c in containers if c.get("essential", True)), containers[0])
    ports = [m.get("containerPort") for m in chosen.get("portMappings") or [] if m.get("containerPort")]
    try:
        health, health_error = parse_health_check(chosen.get("healthCheck")), None
    except ValueError as exc:
        health, health_error = None, str(exc)
    return ContainerSpec(
        name=chosen["name"],
        image=chosen.get("image", ""),
        port=int(ports[0]) if ports else None,
        environment={e["name"]: str(e.get("value", "")) for e in chosen.get("environment") or []},
        health_check=health,
        health_check_error=health_error,
        stop_timeout=float(chosen.get("stopTimeout") or DEFAULT_STOP_TIMEOUT),
        log_configuration=chosen.get("logConfiguration"),
    )


@dataclasses.dataclass(frozen=True)
class TaskRuntime:
    """What every task process shares: the "image" (app dir, interpreter, PATH) and the agent's settings."""

    state_dir: Path
    app_dir: Path
    python: str
    endpoint_url: str
    hosts_file: Path
    taskenv_dir: Path
    owner: str  # the value of OWNER_ENV

    @property
    def image_bin(self) -> Path:
        return self.state_dir / "image" / "bin"

    def prepare(self) -> None:
        """The image's PATH: a directory with ``python`` and ``python3`` only, as in a slim image
        (no curl, whatever the host has)."""
        self.image_bin.mkdir(parents=True, exist_ok=True)
        for name in ("python", "python3"):
            script = self.image_bin / name
            script.write_text(f'#!/bin/sh\nexec "{self.python}" "$@"\n')
            script.chmod(0o755)


def task_environment(spec: ContainerSpec, runtime: TaskRuntime, *, ip: str, region: str, home: Path) -> dict[str, str]:
    """The image's ENV, then the task definition's environment, then what the ECS agent sets."""
    env = dict(IMAGE_ENVIRONMENT, PATH=str(runtime.image_bin), HOME=str(home))
    env.update(spec.environment)
    env.setdefault("AWS_REGION", region)
    env.setdefault("AWS_DEFAULT_REGION", env["AWS_REGION"])
    env.update(TASK_CREDENTIALS)  # the task role's credentials (dummies: the emulator takes any)
    env.update(
        {
            "AWS_ENDPOINT_URL": runtime.endpoint_url,
            "AWS_EXECUTION_ENV": "AWS_ECS_FARGATE",
            "AWS_EC2_METADATA_DISABLED": "true",
            "APP_HOST": ip,  # the task's own interface, as 0.0.0.0 is inside its network namespace
            "PYTHONPATH": os.pathsep.join(filter(None, [str(runtime.taskenv_dir), spec.environment.get("PYTHONPATH")])),
            "LOCALCLOUD_HOSTS_FILE": str(runtime.hosts_file),
            OWNER_ENV: runtime.owner,
        }
    )
    return env


def exit_code(process: subprocess.Popen) -> int | None:
    """The exit code as Docker reports it: a signal N is 128 + N (137 for SIGKILL)."""
    code = process.poll()
    return 128 - code if code is not None and code < 0 else code


def signal_group(pid: int | None, sig: int) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)


# -- tasks ----------------------------------------------------------------------------------------


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclasses.dataclass(eq=False)
class LocalTask:
    task_id: str
    region: str
    account_id: str
    cluster_arn: str
    cluster_name: str
    service_name: str
    task_definition_arn: str
    deployment_id: str
    container: ContainerSpec
    cpu: str | None
    memory: str | None
    directory: Path
    created_at: datetime.datetime = dataclasses.field(default_factory=utcnow)
    last_status: str = "PROVISIONING"
    desired_status: str = "RUNNING"
    health_status: str = "UNKNOWN"
    ip: str | None = None
    process: subprocess.Popen | None = None
    health: ContainerHealth | None = None
    check_process: subprocess.Popen | None = None
    check_started: float = 0.0
    targets: list[str] = dataclasses.field(default_factory=list)
    target_health: dict[str, str] = dataclasses.field(default_factory=dict)
    started_mono: float = 0.0
    started_at: datetime.datetime | None = None
    stopping_at: datetime.datetime | None = None
    stopped_at: datetime.datetime | None = None
    stop_reason: str = ""
    stop_code: str = ""
    exit_code: int | None = None
    drain_started: float = 0.0
    drain_deadline: float = 0.0
    kill_deadline: float = 0.0
    killed: bool = False
    ever_healthy: bool = False
    failed: bool = False
    subnet: str | None = None

    @property
    def arn(self) -> str:
        return f"arn:aws:ecs:{self.region}:{self.account_id}:task/{self.cluster_name}/{self.task_id}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def port(self) -> int | None:
        return self.container.port

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def version(self) -> str | None:
        return self.container.environment.get("APP_VERSION")

    def status(self) -> dict:
        return {
            "task_id": self.task_id,
            "task_arn": self.arn,
            "region": self.region,
            "cluster": self.cluster_name,
            "service": self.service_name,
            "task_definition": self.task_definition_arn.split("/")[-1],
            "deployment": self.deployment_id,
            "image": self.container.image,
            "version": self.version,
            "last_status": self.last_status,
            "desired_status": self.desired_status,
            "health_status": self.health_status,
            "address": f"{self.ip}:{self.port}" if self.ip and self.port else self.ip,
            "pid": self.pid if self.alive else None,
            "targets": dict(self.target_health),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "stopped_at": self.stopped_at.isoformat() if self.stopped_at else None,
            "stopped_reason": self.stop_reason or None,
            "exit_code": self.exit_code,
            "logs": str(self.directory),
        }


@dataclasses.dataclass
class Deployment:
    id: str
    task_definition: str
    status: str = "PRIMARY"
    created_at: datetime.datetime = dataclasses.field(default_factory=utcnow)
    updated_at: datetime.datetime = dataclasses.field(default_factory=utcnow)
    desired: int = 0
    running: int = 0
    pending: int = 0
    failed: int = 0
    breaker_count: int = 0  # the circuit breaker's count: reset when a task turns healthy
    rollout_state: str = "IN_PROGRESS"
    rollout_reason: str = ""

    def __post_init__(self):
        self.rollout_reason = self.rollout_reason or f"ECS deployment {self.id} in progress."

    def as_api(self, launch_type: str | None, network_configuration: dict | None, platform_version: str | None) -> dict:
        deployment = {
            "id": self.id,
            "status": self.status,
            "taskDefinition": self.task_definition,
            "desiredCount": self.desired,
            "pendingCount": self.pending,
            "runningCount": self.running,
            "failedTasks": self.failed,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "launchType": launch_type,
            "platformVersion": platform_version,
            "platformFamily": "Linux",
            "rolloutState": self.rollout_state,
            "rolloutStateReason": self.rollout_reason,
        }
        if network_configuration:
            deployment["networkConfiguration"] = network_configuration
        return deployment


def new_deployment_id() -> str:
    return f"ecs-svc/{uuid.uuid4().int % 10**19:019d}"


@dataclasses.dataclass(eq=False)
class ServiceState:
    """The data plane's side of one service: its deployments, events and launch throttling."""

    region: str
    cluster_arn: str
    cluster_name: str
    name: str
    arn: str = ""
    active: bool = True
    gone: bool = False
    desired: int = 0
    task_definition: str = ""
    load_balancers: list[dict] = dataclasses.field(default_factory=list)
    minimum_healthy_percent: int = 100
    maximum_percent: int = 200
    circuit_breaker: dict = dataclasses.field(default_factory=dict)
    grace_period: float = 0.0
    launch_type: str | None = None
    platform_version: str | None = None
    network_configuration: dict | None = None
    deployments: list[Deployment] = dataclasses.field(default_factory=list)
    events: list[dict] = dataclasses.field(default_factory=list)
    consecutive_failures: int = 0
    next_launch_at: float = 0.0
    stable_task_definition: str | None = None
    steady: bool = False
    unable_reported: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.region, self.cluster_arn, self.name)

    @property
    def primary(self) -> Deployment | None:
        return next((d for d in self.deployments if d.status == "PRIMARY"), None)

    def event(self, message: str) -> None:
        self.events.insert(0, {"id": str(uuid.uuid4()), "createdAt": utcnow(), "message": message})
        del self.events[EVENTS_KEPT:]

    def status(self, tasks: list[LocalTask]) -> dict:
        mine = [t for t in tasks if t.service_name == self.name and t.cluster_arn == self.cluster_arn]
        return {
            "region": self.region,
            "cluster": self.cluster_name,
            "service": self.name,
            "desired": self.desired,
            "running": sum(t.last_status == "RUNNING" for t in mine),
            "pending": sum(t.last_status in ("PROVISIONING", "PENDING") for t in mine),
            "task_definition": self.task_definition.split("/")[-1],
            "deployments": [
                {
                    "id": d.id,
                    "status": d.status,
                    "task_definition": d.task_definition.split("/")[-1],
                    "running": d.running,
                    "failed": d.failed,
                    "rollout": d.rollout_state,
                }
                for d in self.deployments
            ],
            "events": [e["message"] for e in self.events[:5]],
        }


# -- the plane ------------------------------------------------------------------------------------

Clients = Callable[[str, str], object]  # (service, region) -> boto3 client


class EcsPlane:
    """Runs every ECS service of the local AWS API as local task processes; call :meth:`reconcile` often."""

    def __init__(
        self,
        clients: Clients,
        registry: TargetRegistry,
        runtime: TaskRuntime,
        *,
        regions: Callable[[], Iterable[str]],
        account_id: str,
        shipper: logs.LogShipper | None = None,
        mirror: MotoEcsMirror | None = None,
        addresses: AddressPool | None = None,
        backoff_base: float = 2.0,
        backoff_cap: float = 60.0,
        attribute_ttl: float = 5.0,
    ):
        self.clients = clients
        self.registry = registry
        self.runtime = runtime
        self.regions = regions
        self.account_id = account_id
        self.shipper = shipper
        self.mirror = mirror
        self.addresses = addresses or AddressPool(TASK_NETWORK)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.attribute_ttl = attribute_ttl
        self.services: dict[tuple[str, str, str], ServiceState] = {}
        self.tasks: dict[str, LocalTask] = {}
        self._task_definitions: dict[tuple[str, str], dict] = {}
        self._tg_delay: dict[str, tuple[float, float]] = {}
        (runtime.state_dir / "tasks").mkdir(parents=True, exist_ok=True)
        runtime.prepare()

    # ---- reading the API

    def _read_services(self, region: str) -> list[dict] | None:
        """Every service of every active cluster of the region, or None when the API failed."""
        ecs = self.clients("ecs", region)
        try:
            cluster_arns = [
                arn for page in ecs.get_paginator("list_clusters").paginate() for arn in page["clusterArns"]
            ]
            services = []
            for start in range(0, len(cluster_arns), 100):
                for cluster in ecs.describe_clusters(clusters=cluster_arns[start : start + 100])["clusters"]:
                    if cluster.get("status") != "ACTIVE":
                        continue
                    arns = [
                        arn
                        for page in ecs.get_paginator("list_services").paginate(cluster=cluster["clusterArn"])
                        for arn in page["serviceArns"]
                    ]
                    for first in range(0, len(arns), 10):
                        described = ecs.describe_services(
                            cluster=cluster["clusterArn"], services=arns[first : first + 10]
                        )
                        for service in described["services"]:
                            service["_clusterName"] = cluster["clusterName"]
                            services.append(service)
            return services
        except Exception as exc:  # noqa: BLE001 - a failed read changes nothing this round
            log.warning("reading the ECS services of %s failed: %s", region, exc)
            return None

    def _task_definition(self, region: str, reference: str) -> dict:
        key = (region, reference)
        if key not in self._task_definitions:
            described = self.clients("ecs", region).describe_task_definition(taskDefinition=reference)
            definition = described["taskDefinition"]
            self._task_definitions[key] = definition
            self._task_definitions[(region, definition["taskDefinitionArn"])] = definition
        return self._task_definitions[key]

    def _deregistration_delay(self, target_group_arn: str) -> float:
        cached = self._tg_delay.get(target_group_arn)
        now = time.monotonic()
        if cached and cached[1] > now:
            return cached[0]
        region = target_group_arn.split(":")[3]
        delay = 0.0  # a target group that is gone has nothing to drain
        try:
            attributes = self.clients("elbv2", region).describe_target_group_attributes(TargetGroupArn=target_group_arn)
            values = {a["Key"]: a["Value"] for a in attributes["Attributes"]}
            delay = float(values.get("deregistration_delay.timeout_seconds", DEFAULT_DEREGISTRATION_DELAY))
        except Exception as exc:  # noqa: BLE001
            log.info("no deregistration delay for %s: %s", target_group_arn, exc)
        self._tg_delay[target_group_arn] = (delay, now + self.attribute_ttl)
        return delay

    # ---- the reconcile round

    def reconcile(self) -> None:
        now = time.monotonic()
        seen: set[tuple[str, str, str]] = set()
        for region in list(self.regions()):
            services = self._read_services(region)
            if services is None:
                seen.update(k for k in self.services if k[0] == region)  # unknown: leave them as they are
                continue
            for described in services:
                state = self._update_service(region, described)
                if state is not None:
                    seen.add(state.key)
        for key, state in self.services.items():
            if key not in seen:
                state.gone, state.active, state.desired = True, False, 0

        stop_requests = self.mirror.stop_requests(self.tasks.values()) if self.mirror else {}
        for task in list(self.tasks.values()):
            self._step_task(task, now, stop_requests.get(task.task_id))
        for state in list(self.services.values()):
            self._step_service(state, now)
        self._prune()
        if self.mirror is not None:
            try:
                self.mirror.sync(list(self.services.values()), list(self.tasks.values()))
            except Exception:  # noqa: BLE001 - the reflection must never stop the plane
                log.exception("reflecting ECS into the emulator failed")

    def _update_service(self, region: str, described: dict) -> ServiceState | None:
        key = (region, described["clusterArn"], described["serviceName"])
        state = self.services.get(key)
        if state is None:
            state = ServiceState(region, described["clusterArn"], described["_clusterName"], described["serviceName"])
            self.services[key] = state
        state.gone = False
        state.arn = described.get("serviceArn", "")
        state.active = described.get("status") == "ACTIVE"
        state.desired = int(described.get("desiredCount") or 0) if state.active else 0
        state.load_balancers = [lb for lb in described.get("loadBalancers") or [] if lb.get("targetGroupArn")]
        configuration = described.get("deploymentConfiguration") or {}
        state.minimum_healthy_percent = int(configuration.get("minimumHealthyPercent", 100))
        state.maximum_percent = int(configuration.get("maximumPercent", 200))
        state.circuit_breaker = configuration.get("deploymentCircuitBreaker") or {}
        state.grace_period = float(described.get("healthCheckGracePeriodSeconds") or 0)
        state.launch_type = described.get("launchType")
        state.platform_version = described.get("platformVersion")
        state.network_configuration = described.get("networkConfiguration")
        reference = described.get("taskDefinition")
        if not reference:
            return state
        try:
            arn = self._task_definition(region, reference)["taskDefinitionArn"]
        except Exception as exc:  # noqa: BLE001
            log.warning("service %s: task definition %s unreadable: %s", state.name, reference, exc)
            return state
        api_primary = next(
            (d.get("id") for d in described.get("deployments") or [] if d.get("status") == "PRIMARY"), None
        )
        primary = state.primary
        # UpdateService starts a deployment (a new PRIMARY in the API: another task definition, or
        # forceNewDeployment); the plane adopts its id.
        unknown = api_primary if api_primary and api_primary not in {d.id for d in state.deployments} else None
        if primary is None:
            self._deploy(state, arn, api_primary or new_deployment_id())
        elif unknown or arn != primary.task_definition:
            self._deploy(state, arn, unknown or new_deployment_id())
        state.task_definition = arn
        return state

    def _deploy(self, state: ServiceState, task_definition: str, deployment_id: str) -> None:
        for deployment in state.deployments:
            if deployment.status == "PRIMARY":
                deployment.status, deployment.updated_at = "ACTIVE", utcnow()
        state.deployments.insert(0, Deployment(deployment_id, task_definition))
        state.steady = False
        state.consecutive_failures, state.next_launch_at, state.unable_reported = 0, 0.0, False

    # ---- one task

    def healthy(self, task: LocalTask) -> bool:
        """Counts as healthy for a deployment: running, its container check (if any) passing, and
        healthy in every target group of the service."""
        if task.last_status != "RUNNING" or task.desired_status != "RUNNING" or not task.alive:
            return False
        if task.container.health_check is not None and task.health_status != "HEALTHY":
            return False
        return all(task.target_health.get(tg) == Health.HEALTHY.value for tg in task.targets)

    def _step_task(self, task: LocalTask, now: float, stop_request: str | None) -> None:
        if task.last_status == "STOPPED":
            return
        # A service's state outlives its tasks (see _prune).
        state = self.services[(task.region, task.cluster_arn, task.service_name)]
        self._refresh_target_health(task)
        if task.last_status != "RUNNING" or task.desired_status != "RUNNING":
            self._progress_stop(task, now)
            return
        self._run_health_check(task, now)
        if stop_request is not None:
            self.begin_stop(task, stop_request or "Task stopped by user", "UserInitiated", now)
            return
        failure = self._failure(task, state, now)
        if failure is not None:
            event, reason, code = failure
            state.event(event)
            if code == "EssentialContainerExited":
                self._finish(task, reason, code, failed=True)
            else:
                self.begin_stop(task, reason, code, now, failed=True)
            self._record_failure(state, task, now)
            return
        if self.healthy(task) and not task.ever_healthy:
            task.ever_healthy = True
            for deployment in state.deployments:
                if deployment.id == task.deployment_id:
                    deployment.breaker_count = 0
            state.consecutive_failures, state.unable_reported = 0, False

    def _failure(self, task: LocalTask, state: ServiceState, now: float) -> tuple[str, str, str] | None:
        """Why ECS would replace this running task now: (service event, stopped reason, stop code)."""
        prefix = f"(service {task.service_name})"
        if not task.alive:
            return (
                f"{prefix} (task {task.task_id}) essential container {task.container.name} "
                f"exited with code {exit_code(task.process)}.",
                "Essential container in task exited",
                "EssentialContainerExited",
            )
        if task.health_status == "UNHEALTHY":
            return (
                f"{prefix} (task {task.task_id}) failed container health checks.",
                "Task failed container health checks",
                "ServiceSchedulerInitiated",
            )
        if now - task.started_mono < state.grace_period:
            return None
        for tg, health in task.target_health.items():
            if health == Health.UNHEALTHY.value:
                reason = next((t.reason for t in self.registry.targets(tg) if t.ip == task.ip), "")
                return (
                    f"{prefix} (port {task.port}) is unhealthy in (target-group {tg}) "
                    f"due to (reason {reason or 'Health checks failed'}).",
                    f"Task failed ELB health checks in (target-group {tg})",
                    "ServiceSchedulerInitiated",
                )
        return None

    def _refresh_target_health(self, task: LocalTask) -> None:
        for tg in task.targets:
            found = [t for t in self.registry.targets(tg) if t.ip == task.ip and t.port == task.port]
            task.target_health[tg] = found[0].health.value if found else "unused"

    def _run_health_check(self, task: LocalTask, now: float) -> None:
        health = task.health
        if health is None:
            return
        if task.check_process is not None:
            code = task.check_process.poll()
            if code is None and now - task.check_started < health.spec.timeout:
                return
            if code is None:
                signal_group(task.check_process.pid, signal.SIGKILL)
                task.check_process.wait()
                self._health_log(task, f"health check timed out after {health.spec.timeout:g} s")
                ok = False
            else:
                self._health_log(task, f"health check exited {code}")
                ok = code == 0
            task.check_process = None
            task.health_status = health.record(ok, now)
            return
        if not health.due(now):
            return
        env = task_environment(
            task.container, self.runtime, ip=task.ip or "", region=task.region, home=task.directory / "home"
        )
        argv = list(health.spec.argv)
        executable = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=env["PATH"])
        if executable is None:
            # What Docker reports for an exec-form check whose program is not in the image.
            self._health_log(task, f'exec: "{argv[0]}": executable file not found in $PATH')
            task.health_status = health.record(False, now)
            return
        output = open(task.directory / "health.log", "ab")  # noqa: SIM115 - handed to the check process
        try:
            task.check_process = subprocess.Popen(
                [executable, *argv[1:]],
                cwd=self.runtime.app_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            task.check_started = now
        except OSError as exc:
            self._health_log(task, f"health check could not start: {exc}")
            task.health_status = health.record(False, now)
        finally:
            output.close()

    @staticmethod
    def _health_log(task: LocalTask, line: str) -> None:
        path = task.directory / "health.log"
        try:
            if path.exists() and path.stat().st_size > HEALTH_LOG_LIMIT:
                path.write_text("")
            with path.open("a") as handle:
                handle.write(f"{utcnow().isoformat()} {line}\n")
        except OSError:
            pass

    def begin_stop(self, task: LocalTask, reason: str, code: str, now: float, *, failed: bool = False) -> None:
        """Drain the task's targets, then SIGTERM (see :meth:`_progress_stop`)."""
        if task.desired_status == "STOPPED":
            return
        task.desired_status, task.stop_reason, task.stop_code = "STOPPED", reason, code
        task.failed = task.failed or failed
        task.stopping_at = utcnow()
        self._kill_check(task)
        if task.last_status != "RUNNING" or not task.alive:
            self._finish(task, reason, code, failed=failed)
            return
        draining = [tg for tg in task.targets if self.registry.begin_draining(tg, task.ip, task.port)]
        task.last_status = "DEACTIVATING"
        task.drain_started = now
        task.drain_deadline = now + max([self._deregistration_delay(tg) for tg in draining], default=0.0)
        state = self.services.get((task.region, task.cluster_arn, task.service_name))
        if state and draining:
            state.event(f"(service {task.service_name}) has begun draining connections on 1 tasks.")

    def _progress_stop(self, task: LocalTask, now: float) -> None:
        if task.last_status == "DEACTIVATING":
            inflight = sum(self.registry.inflight((tg, task.ip, task.port)) for tg in task.targets)
            drained = inflight == 0 and now - task.drain_started >= MIN_DRAIN
            if not (drained or now >= task.drain_deadline or not task.alive):
                return
            self._deregister(task)
            task.last_status = "STOPPING"
            task.kill_deadline = now + task.container.stop_timeout
            signal_group(task.pid, signal.SIGTERM)
        if task.last_status == "STOPPING":
            if task.alive:
                if now >= task.kill_deadline and not task.killed:
                    signal_group(task.pid, signal.SIGKILL)
                    task.killed = True
                return
            self._finish(task, task.stop_reason, task.stop_code, failed=task.failed)

    def _deregister(self, task: LocalTask) -> None:
        state = self.services.get((task.region, task.cluster_arn, task.service_name))
        for tg in task.targets:
            self.registry.deregister(tg, task.ip, task.port)
            if state:
                state.event(f"(service {task.service_name}) deregistered 1 targets in (target-group {tg})")
            task.target_health[tg] = "unused"
        task.targets = []

    def _kill_check(self, task: LocalTask) -> None:
        if task.check_process is not None:
            signal_group(task.check_process.pid, signal.SIGKILL)
            task.check_process.wait()
            task.check_process = None

    def _finish(self, task: LocalTask, reason: str, code: str, *, failed: bool) -> None:
        """The task is gone: its targets, address, health check and log follow with it."""
        if task.targets:
            for tg in task.targets:
                self.registry.begin_draining(tg, task.ip, task.port)
            self._deregister(task)
        self._kill_check(task)
        if task.process is not None:
            if task.process.poll() is None:
                signal_group(task.pid, signal.SIGKILL)
                task.process.wait()
            task.exit_code = exit_code(task.process)
            signal_group(task.pid, signal.SIGKILL)  # workers the master left behind
        if task.ip:
            self.addresses.release(task.ip)
        task.last_status = task.desired_status = "STOPPED"
        task.stop_reason = task.stop_reason or reason
        task.stop_code = task.stop_code or code
        task.failed = task.failed or failed
        task.stopping_at = task.stopping_at or utcnow()
        task.stopped_at = utcnow()
        task.health_status = "UNKNOWN" if task.health is None else task.health_status
        if self.shipper is not None:
            self.shipper.close(task.task_id)
        state = self.services.get((task.region, task.cluster_arn, task.service_name))
        if state:
            state.event(f"(service {task.service_name}) has stopped 1 running tasks: (task {task.task_id}).")

    def _record_failure(self, state: ServiceState, task: LocalTask, now: float) -> None:
        deployment = next((d for d in state.deployments if d.id == task.deployment_id), None)
        if deployment is not None:
            deployment.failed += 1
            deployment.breaker_count += 1
        if task.ever_healthy:
            return
        state.consecutive_failures += 1
        state.next_launch_at = now + backoff_delay(state.consecutive_failures, self.backoff_base, self.backoff_cap)
        if state.consecutive_failures >= 3 and not state.unable_reported:
            state.unable_reported = True
            state.event(
                f"(service {state.name}) is unable to consistently start tasks successfully. "
                "For more information, see the Troubleshooting section of the Amazon ECS Developer Guide."
            )

    # ---- one service

    def _service_tasks(self, state: ServiceState) -> list[LocalTask]:
        return [
            t
            for t in self.tasks.values()
            if t.region == state.region and t.cluster_arn == state.cluster_arn and t.service_name == state.name
        ]

    def _step_service(self, state: ServiceState, now: float) -> None:
        tasks = self._service_tasks(state)
        live = [t for t in tasks if t.desired_status == "RUNNING" and t.last_status != "STOPPED"]
        stopping = [t for t in tasks if t.desired_status == "STOPPED" and t.last_status != "STOPPED"]
        primary = state.primary
        self._circuit_breaker(state, primary)
        primary = state.primary
        views = [
            TaskView(t.task_id, primary is not None and t.deployment_id == primary.id, self.healthy(t), t.started_mono)
            for t in live
        ]
        desired = state.desired if primary is not None else 0
        plan = plan_rollout(desired, state.minimum_healthy_percent, state.maximum_percent, views, len(stopping))
        for task_id in plan.stop:
            task = self.tasks[task_id]
            reason = f"Scaling activity initiated by (deployment {task.deployment_id})"
            self.begin_stop(task, reason, "ServiceSchedulerInitiated", now)
        # A deployment the circuit breaker failed launches nothing more (AWS: "stop launching new tasks").
        launching = primary is not None and primary.rollout_state != "FAILED" and state.active
        if plan.start and launching and now >= state.next_launch_at:
            started = [self._launch(state, primary, now) for _ in range(plan.start)]
            started = [t for t in started if t is not None]
            if started:
                names = " ".join(f"(task {t.task_id})" for t in started)
                state.event(f"(service {state.name}) has started {len(started)} tasks: {names}.")
        self._account(state)

    def _circuit_breaker(self, state: ServiceState, primary: Deployment | None) -> None:
        if primary is None or primary.rollout_state != "IN_PROGRESS" or not state.circuit_breaker.get("enable"):
            return
        if primary.breaker_count < circuit_breaker_threshold(state.desired):
            return
        primary.rollout_state = "FAILED"
        primary.rollout_reason = f"ECS deployment circuit breaker: tasks failed to start. ({primary.id})"
        state.event(f"(service {state.name}) (deployment {primary.id}) deployment failed: tasks failed to start.")
        target = state.stable_task_definition
        if state.circuit_breaker.get("rollback") and target and target != primary.task_definition:
            state.event(f"(service {state.name}) rolling back to task definition {target.split('/')[-1]}.")
            # Through the API, as ECS does it: the next round reads the new deployment back.
            try:
                self.clients("ecs", state.region).update_service(
                    cluster=state.cluster_arn, service=state.name, taskDefinition=target
                )
            except Exception as exc:  # noqa: BLE001
                log.warning("rolling back %s failed: %s", state.name, exc)

    def _account(self, state: ServiceState) -> None:
        """Counts per deployment, rollout states, and the steady-state event."""
        tasks = self._service_tasks(state)
        remaining = set()
        for deployment in state.deployments:
            mine = [t for t in tasks if t.deployment_id == deployment.id and t.last_status != "STOPPED"]
            running = sum(t.last_status == "RUNNING" for t in mine)
            pending = sum(t.last_status in ("PROVISIONING", "PENDING") for t in mine)
            desired = (
                state.desired if deployment.status == "PRIMARY" else sum(t.desired_status == "RUNNING" for t in mine)
            )
            if (running, pending, desired) != (deployment.running, deployment.pending, deployment.desired):
                deployment.running, deployment.pending, deployment.desired = running, pending, desired
                deployment.updated_at = utcnow()
            if mine:
                remaining.add(deployment.id)
        # An old deployment is gone once its last task has stopped.
        state.deployments = [d for d in state.deployments if d.status == "PRIMARY" or d.id in remaining]
        primary = state.primary
        if primary is None:
            return
        healthy = [t for t in tasks if t.deployment_id == primary.id and self.healthy(t)]
        settled = len(state.deployments) == 1 and len(healthy) == state.desired == primary.running
        if settled and primary.rollout_state == "IN_PROGRESS":
            primary.rollout_state, primary.rollout_reason = "COMPLETED", f"ECS deployment {primary.id} completed."
            primary.updated_at = utcnow()
        if settled and primary.rollout_state == "COMPLETED":
            state.stable_task_definition = primary.task_definition
        if settled and not state.steady:
            state.event(f"(service {state.name}) has reached a steady state.")
        state.steady = settled

    def _launch(self, state: ServiceState, deployment: Deployment, now: float) -> LocalTask | None:
        try:
            definition = self._task_definition(state.region, deployment.task_definition)
        except Exception as exc:  # noqa: BLE001
            log.warning("service %s: task definition unreadable: %s", state.name, exc)
            return None
        container_name = next((lb.get("containerName") for lb in state.load_balancers if lb.get("containerName")), None)
        spec = container_spec(definition, container_name)
        task_id = uuid.uuid4().hex
        directory = self.runtime.state_dir / "tasks" / task_id
        (directory / "home").mkdir(parents=True)
        task = LocalTask(
            task_id=task_id,
            region=state.region,
            account_id=self.account_id,
            cluster_arn=state.cluster_arn,
            cluster_name=state.cluster_name,
            service_name=state.name,
            task_definition_arn=definition["taskDefinitionArn"],
            deployment_id=deployment.id,
            container=spec,
            cpu=definition.get("cpu"),
            memory=definition.get("memory"),
            directory=directory,
            subnet=next(
                iter(((state.network_configuration or {}).get("awsvpcConfiguration") or {}).get("subnets") or []), None
            ),
        )
        self.tasks[task_id] = task
        problem = self._launch_problem(task)
        if problem:
            task.stop_reason, task.stop_code = problem, "TaskFailedToStart"
            self._finish(task, problem, "TaskFailedToStart", failed=True)
            state.event(f"(service {state.name}) (task {task_id}) failed to start: {problem}")
            self._record_failure(state, task, now)
            return task
        task.last_status = "PENDING"
        try:
            self._start_process(task, state, now)
        except Exception as exc:  # noqa: BLE001
            reason = f"CannotStartContainerError: {exc}"
            self._finish(task, reason, "TaskFailedToStart", failed=True)
            state.event(f"(service {state.name}) (task {task_id}) failed to start: {reason}")
            self._record_failure(state, task, now)
        return task

    def _launch_problem(self, task: LocalTask) -> str | None:
        spec = task.container
        if spec.health_check_error:
            return f"CannotCreateContainerError: {spec.health_check_error}"
        try:
            problem = ecr.pull_error(lambda region: self.clients("ecr", region), spec.image)
        except Exception as exc:  # noqa: BLE001
            problem = f"CannotPullContainerError: {exc}"
        if problem:
            return problem
        where = logs.destination(spec.log_configuration, spec.name, task.task_id, task.region)
        if where is not None:
            options = spec.log_configuration.get("options") or {}
            client = self.clients("logs", where.region)
            try:
                groups = client.describe_log_groups(logGroupNamePrefix=where.group)["logGroups"]
            except Exception as exc:  # noqa: BLE001
                return f"ResourceInitializationError: failed to validate logger args: {exc}"
            if not any(g["logGroupName"] == where.group for g in groups):
                if str(options.get("awslogs-create-group", "")).lower() != "true":
                    return (
                        "ResourceInitializationError: failed to validate logger args: create stream has been "
                        "retried 1 times: failed to create Cloudwatch log stream: ResourceNotFoundException: "
                        f"The specified log group {where.group} does not exist."
                    )
                client.create_log_group(logGroupName=where.group)
        return None

    def _start_process(self, task: LocalTask, state: ServiceState, now: float) -> None:
        port = task.port or int(task.container.environment.get("APP_PORT") or 8000)
        task.ip = self.addresses.allocate(lambda ip: port_is_free(ip, port))
        env = task_environment(
            task.container, self.runtime, ip=task.ip, region=task.region, home=task.directory / "home"
        )
        stdout_path, stderr_path = task.directory / "stdout.log", task.directory / "stderr.log"
        with stdout_path.open("ab") as stdout, stderr_path.open("ab") as stderr:
            task.process = subprocess.Popen(
                [self.runtime.python, *APP_COMMAND],
                cwd=self.runtime.app_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        (task.directory / "pid").write_text(str(task.process.pid))
        task.last_status = "RUNNING"
        task.started_at = utcnow()
        task.started_mono = time.monotonic()  # after started_at: the grace period is never cut short
        if task.container.health_check is not None:
            task.health = ContainerHealth(task.container.health_check, now)
        where = logs.destination(task.container.log_configuration, task.container.name, task.task_id, task.region)
        if self.shipper is not None and where is not None:
            self.shipper.follow(task.task_id, [stdout_path, stderr_path], where)
        registered: dict[str, int] = {}
        for lb in state.load_balancers:
            if lb.get("containerName") not in (None, task.container.name):
                continue
            port = int(lb.get("containerPort") or task.port or 0)
            if port != task.port:
                continue
            self.registry.register(lb["targetGroupArn"], task.ip, port, task.task_id)
            task.targets.append(lb["targetGroupArn"])
            registered[lb["targetGroupArn"]] = registered.get(lb["targetGroupArn"], 0) + 1
        for tg, count in registered.items():
            state.event(f"(service {state.name}) registered {count} targets in (target-group {tg})")

    # ---- housekeeping

    def _prune(self) -> None:
        by_service: dict[tuple, list[LocalTask]] = {}
        for task in self.tasks.values():
            if task.last_status == "STOPPED":
                by_service.setdefault((task.region, task.cluster_arn, task.service_name), []).append(task)
        for key, stopped in by_service.items():
            state = self.services.get(key)
            keep = 0 if state is None or state.gone else STOPPED_TASKS_KEPT
            stopped.sort(key=lambda t: t.stopped_at or t.created_at, reverse=True)
            for task in stopped[keep:]:
                del self.tasks[task.task_id]
                shutil.rmtree(task.directory, ignore_errors=True)
        for key, state in list(self.services.items()):
            if state.gone and not self._service_tasks(state):
                del self.services[key]

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop every task now (the whole local cloud is stopping): SIGTERM to all at once, SIGKILL
        to what is left after their stop timeout (at most ``timeout``)."""
        running = [t for t in self.tasks.values() if t.last_status != "STOPPED"]
        for task in running:
            self._kill_check(task)
            for tg in task.targets:
                self.registry.begin_draining(tg, task.ip, task.port)
            task.desired_status, task.stop_reason = "STOPPED", task.stop_reason or "The local cloud is stopping"
            task.stop_code = task.stop_code or "ServiceSchedulerInitiated"
            signal_group(task.pid, signal.SIGTERM)
        deadline = time.monotonic() + min(timeout, max([t.container.stop_timeout for t in running], default=0))
        while time.monotonic() < deadline and any(t.alive for t in running):
            time.sleep(0.05)
        for task in running:
            self._finish(task, task.stop_reason, task.stop_code, failed=False)

    def status(self) -> dict:
        tasks = sorted(self.tasks.values(), key=lambda t: (t.service_name, t.created_at))
        return {
            "services": [s.status(tasks) for s in self.services.values()],
            "tasks": [t.status() for t in tasks],
        }


# -- reflection into the emulator ------------------------------------------------------------------


class _Reflected:
    """Plain attributes named as moto's serializer looks them up (snake_case of the API's fields)."""

    def __init__(self, **attributes):
        self.__dict__.update(attributes)


class ReflectedTask(_Reflected):
    """A task as moto's ECS backend keeps one: ``describe_tasks`` serializes it, ``list_tasks``
    filters it, ``stop_task`` marks it (which the plane then reads as a stop request)."""

    def advance(self) -> None:  # moto's ManagedState hook, called by describe_tasks
        return None


class MotoEcsMirror:
    """Reflects the plane's tasks, counts, deployments and events into the in-process ECS backend.

    The API has no call to report tasks that a service runs (only ECS itself does that), so this
    writes moto's own objects: the one place where the plane touches the emulator's ECS internals.
    """

    def __init__(self, account_id: str):
        from moto.ecs.models import ecs_backends

        self._backends = ecs_backends
        self.account_id = account_id
        self._objects: dict[str, ReflectedTask] = {}
        self._clusters: set[tuple[str, str]] = set()

    def _backend(self, region: str):
        return self._backends[self.account_id][region]

    def stop_requests(self, tasks: Iterable[LocalTask]) -> dict[str, str]:
        """Tasks someone asked to stop through the API (``stop_task``): {task id: reason}."""
        requests = {}
        for task in tasks:
            reflected = self._objects.get(task.task_id)
            if reflected is not None and task.desired_status == "RUNNING" and reflected.desired_status == "STOPPED":
                requests[task.task_id] = reflected.stopped_reason or ""
        return requests

    def sync(self, services: list[ServiceState], tasks: list[LocalTask]) -> None:
        by_cluster: dict[tuple[str, str], list[LocalTask]] = {}
        for task in tasks:
            by_cluster.setdefault((task.region, task.cluster_name), []).append(task)
        for key in self._clusters - set(by_cluster):
            by_cluster[key] = []
        for (region, cluster_name), cluster_tasks in by_cluster.items():
            backend = self._backend(region)
            cluster = backend.clusters.get(cluster_name)
            if cluster is None:
                continue
            # A new dict each time: request threads may be iterating the old one.
            table = {
                arn: t for arn, t in (backend.tasks.get(cluster_name) or {}).items() if not isinstance(t, ReflectedTask)
            }
            for task in cluster_tasks:
                table[task.arn] = self._reflect(task, cluster.arn)
            backend.tasks[cluster_name] = table
            cluster.running_tasks_count = sum(t.last_status == "RUNNING" for t in cluster_tasks)
            cluster.pending_tasks_count = sum(t.last_status in ("PROVISIONING", "PENDING") for t in cluster_tasks)
        self._clusters = {key for key, value in by_cluster.items() if value}
        live_ids = {t.task_id for t in tasks}
        for task_id in set(self._objects) - live_ids:
            del self._objects[task_id]
        for state in services:
            self._reflect_service(state, tasks)

    def _reflect_service(self, state: ServiceState, tasks: list[LocalTask]) -> None:
        backend = self._backend(state.region)
        service = backend.services.get(f"{state.cluster_name}:{state.name}")
        if service is None:
            return
        mine = [t for t in tasks if t.cluster_arn == state.cluster_arn and t.service_name == state.name]
        service.running_count = sum(t.last_status == "RUNNING" for t in mine)
        service.pending_count = sum(t.last_status in ("PROVISIONING", "PENDING") for t in mine)
        known = {d.id for d in state.deployments}
        api_primary = next((d.get("id") for d in service.deployments or [] if d.get("status") == "PRIMARY"), None)
        # A deployment started through the API since this round read the service is kept for the next round.
        if state.deployments and (api_primary is None or api_primary in known):
            service.deployments = [
                d.as_api(state.launch_type, state.network_configuration, state.platform_version)
                for d in state.deployments
            ]
        service.events = list(state.events)

    def _reflect(self, task: LocalTask, cluster_arn: str) -> ReflectedTask:
        reflected = self._objects.get(task.task_id)
        if reflected is None:
            reflected = ReflectedTask()
            self._objects[task.task_id] = reflected
        interface = []
        if task.ip:
            interface = [{"attachmentId": task.task_id, "privateIpv4Address": task.ip}]
        container = _Reflected(
            container_arn=f"arn:aws:ecs:{task.region}:{task.account_id}:container/{task.cluster_name}/{task.task_id}/{task.container.name}",
            task_arn=task.arn,
            name=task.container.name,
            image=task.container.image,
            runtime_id=f"{task.task_id}-{task.container.name}",
            last_status=task.last_status if task.last_status in ("PENDING", "RUNNING", "STOPPED") else "RUNNING",
            exit_code=task.exit_code,
            reason=task.stop_reason if task.last_status == "STOPPED" else None,
            network_bindings=[],
            network_interfaces=interface,
            health_status=task.health_status,
            cpu="0",
        )
        details = [
            {"name": "subnetId", "value": task.subnet or ""},
            {"name": "privateIPv4Address", "value": task.ip or ""},
        ]
        reflected.__dict__.update(
            task_arn=task.arn,
            cluster_arn=cluster_arn,
            cluster_name=task.cluster_name,
            task_definition_arn=task.task_definition_arn,
            container_instance_arn=None,
            group=f"service:{task.service_name}",
            started_by=task.deployment_id,
            launch_type="FARGATE",
            platform_version="1.4.0",
            platform_family="Linux",
            availability_zone=f"{task.region}a",
            connectivity="CONNECTED" if task.started_at else None,
            connectivity_at=task.started_at,
            cpu=task.cpu,
            memory=task.memory,
            created_at=task.created_at,
            pull_started_at=task.created_at,
            pull_stopped_at=task.started_at,
            started_at=task.started_at,
            stopping_at=task.stopping_at,
            execution_stopped_at=task.stopped_at,
            stopped_at=task.stopped_at,
            stopped_reason=task.stop_reason or None,
            stop_code=task.stop_code or None,
            last_status=task.last_status,
            desired_status=task.desired_status,
            health_status=task.health_status,
            containers=[container],
            attachments=[
                {"id": task.task_id, "type": "ElasticNetworkInterface", "status": "ATTACHED", "details": details}
            ],
            overrides={"containerOverrides": [{"name": task.container.name}], "inferenceAcceleratorOverrides": []},
            tags=[],
            version=1,
            enable_execute_command=False,
            ephemeral_storage={"sizeInGiB": 20},
        )
        return reflected
