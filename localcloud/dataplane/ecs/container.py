"""A task's container: what it runs, its environment, its process and its container health check.

A task runs one container (the one a load balancer names, else the first essential one): the
snapshot of the image its task definition names, pulled from the local ECR, running the image's CMD
with the image's own venv (:mod:`localcloud.dataplane.images`), with the image's ENV, the task
definition's environment and what the ECS agent provides (:func:`task_environment`). Its container
health check follows Docker's rules (:class:`ContainerHealth`) and runs as a process of its own
(:func:`run_health_check`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from localcloud.dataplane.images import ImageStore

if TYPE_CHECKING:
    from localcloud.dataplane.ecs.model import LocalTask

DEFAULT_STOP_TIMEOUT = 30.0
HEALTH_LOG_LIMIT = 64 * 1024
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
    """What every task process shares: the image store and the agent's settings. ``python`` is the
    controller's interpreter (venvs are made from it); ``app_dir`` the checkout's ``app/``, whose
    requirements decide which venvs may be linked from the controller's packages."""

    state_dir: Path
    app_dir: Path
    python: str
    endpoint_url: str
    hosts_file: Path
    taskenv_dir: Path
    owner: str  # the value of OWNER_ENV

    @property
    def images(self) -> ImageStore:
        return ImageStore(self.state_dir, checkout_app=self.app_dir, python=self.python)


def task_environment(
    spec: ContainerSpec, runtime: TaskRuntime, *, ip: str, region: str, home: Path, bin_dir: Path
) -> dict[str, str]:
    """The image's ENV, then the task definition's environment, then what the ECS agent sets. The
    PATH is the image venv's ``bin`` alone: python, as in a slim image (no curl, whatever the host has)."""
    env = dict(IMAGE_ENVIRONMENT, PATH=str(bin_dir), HOME=str(home))
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


# -- running the container health check ----------------------------------------------------------


def run_health_check(task: LocalTask, runtime: TaskRuntime, now: float) -> None:
    """One step of the task's container health check: reap the check in flight (killed after its
    ``timeout``) and record its result, or start the next one when it is due."""
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
            _health_log(task, f"health check timed out after {health.spec.timeout:g} s")
            ok = False
        else:
            _health_log(task, f"health check exited {code}")
            ok = code == 0
        task.check_process = None
        task.health_status = health.record(ok, now)
        return
    if not health.due(now):
        return
    if task.image is None:
        return
    env = task_environment(
        task.container,
        runtime,
        ip=task.ip or "",
        region=task.region,
        home=task.directory / "home",
        bin_dir=task.image.bin_dir,
    )
    argv = list(health.spec.argv)
    executable = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=env["PATH"])
    if executable is None:
        # What Docker reports for an exec-form check whose program is not in the image.
        _health_log(task, f'exec: "{argv[0]}": executable file not found in $PATH')
        task.health_status = health.record(False, now)
        return
    output = open(task.directory / "health.log", "ab")  # noqa: SIM115 - handed to the check process
    try:
        task.check_process = subprocess.Popen(
            [executable, *argv[1:]],
            cwd=task.image.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        task.check_started = now
    except OSError as exc:
        _health_log(task, f"health check could not start: {exc}")
        task.health_status = health.record(False, now)
    finally:
        output.close()


def _health_log(task: LocalTask, line: str) -> None:
    path = task.directory / "health.log"
    try:
        if path.exists() and path.stat().st_size > HEALTH_LOG_LIMIT:
            path.write_text("")
        with path.open("a") as handle:
            handle.write(f"{datetime.datetime.now(datetime.UTC).isoformat()} {line}\n")
    except OSError:
        pass


def kill_health_check(task: LocalTask) -> None:
    """Kill the task's container health check in flight, if any."""
    if task.check_process is not None:
        signal_group(task.check_process.pid, signal.SIGKILL)
        task.check_process.wait()
        task.check_process = None
