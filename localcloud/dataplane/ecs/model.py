"""The data plane's state of ECS: the tasks it runs, the deployments and the services."""

from __future__ import annotations

import dataclasses
import datetime
import subprocess
import uuid
from pathlib import Path

from localcloud.dataplane.ecs.container import ContainerHealth, ContainerSpec
from localcloud.dataplane.images import RunnableImage

EVENTS_KEPT = 100  # describe_services returns the 100 newest events


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
    image: RunnableImage | None = None  # the pulled snapshot and its venv

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
            "image_layer": self.image.layer_digest if self.image else None,
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
