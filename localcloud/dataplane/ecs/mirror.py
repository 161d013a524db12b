"""What the plane does, reflected into the emulator's in-process ECS backend (:class:`MotoEcsMirror`)."""

from __future__ import annotations

from collections.abc import Iterable

from localcloud.dataplane.ecs.model import LocalTask, ServiceState


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
