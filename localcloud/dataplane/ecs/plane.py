"""The reconciler: every ECS service of the local AWS API run as local task processes."""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable

from localcloud.dataplane import ecr, images, logs
from localcloud.dataplane.ecs.container import (
    ContainerHealth,
    TaskRuntime,
    container_spec,
    exit_code,
    kill_health_check,
    run_health_check,
    signal_group,
    task_environment,
)
from localcloud.dataplane.ecs.mirror import MotoEcsMirror
from localcloud.dataplane.ecs.model import Deployment, LocalTask, ServiceState, new_deployment_id, utcnow
from localcloud.dataplane.ecs.rollout import TaskView, backoff_delay, circuit_breaker_threshold, plan_rollout
from localcloud.dataplane.hosts import TASK_NETWORK, AddressPool, port_is_free
from localcloud.dataplane.registry import Health, TargetRegistry

log = logging.getLogger(__name__)

DEFAULT_DEREGISTRATION_DELAY = 300.0
MIN_DRAIN = 0.5  # a draining target keeps its in-flight requests at least this long
STOPPED_TASKS_KEPT = 50  # per service, as describe_tasks keeps stopped tasks for a while

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
        run_health_check(task, self.runtime, now)
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

    def begin_stop(self, task: LocalTask, reason: str, code: str, now: float, *, failed: bool = False) -> None:
        """Drain the task's targets, then SIGTERM (see :meth:`_progress_stop`)."""
        if task.desired_status == "STOPPED":
            return
        task.desired_status, task.stop_reason, task.stop_code = "STOPPED", reason, code
        task.failed = task.failed or failed
        task.stopping_at = utcnow()
        kill_health_check(task)
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

    def _finish(self, task: LocalTask, reason: str, code: str, *, failed: bool) -> None:
        """The task is gone: its targets, address, health check and log follow with it."""
        if task.targets:
            for tg in task.targets:
                self.registry.begin_draining(tg, task.ip, task.port)
            self._deregister(task)
        kill_health_check(task)
        if task.process is not None:
            if task.process.poll() is None:
                signal_group(task.pid, signal.SIGKILL)
                task.process.wait()
            task.exit_code = exit_code(task.process)
            signal_group(task.pid, signal.SIGKILL)  # workers the master left behind
        with contextlib.suppress(OSError):
            (task.directory / "stopped").touch()  # its snapshot may be collected now
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

    def _pull(self, task: LocalTask) -> str | None:
        """Resolve the task's image through the local ECR and get its snapshot and venv; the reason
        when it cannot be pulled."""
        image = task.container.image
        try:
            layer = ecr.pull(lambda region: self.clients("ecr", region), image)
            # What the task runs from now on, whatever happens to the tag: the collector keeps it.
            (task.directory / "image").write_text(layer)
            task.image = self.runtime.images.runnable(layer)
        except ecr.PullError as exc:
            return str(exc)
        except images.ImageError as exc:
            return f"CannotPullContainerError: {image}: {exc}"
        except Exception as exc:  # noqa: BLE001
            return f"CannotPullContainerError: {exc}"
        return None

    def _launch_problem(self, task: LocalTask) -> str | None:
        spec = task.container
        if spec.health_check_error:
            return f"CannotCreateContainerError: {spec.health_check_error}"
        problem = self._pull(task)
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
        image = task.image
        env = task_environment(
            task.container,
            self.runtime,
            ip=task.ip,
            region=task.region,
            home=task.directory / "home",
            bin_dir=image.bin_dir,
        )
        stdout_path, stderr_path = task.directory / "stdout.log", task.directory / "stderr.log"
        with stdout_path.open("ab") as stdout, stderr_path.open("ab") as stderr:
            task.process = subprocess.Popen(
                image.argv(),
                cwd=image.root,
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
            kill_health_check(task)
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
