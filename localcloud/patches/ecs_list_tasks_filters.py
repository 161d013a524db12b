"""ECS ListTasks filters as AWS does: ``serviceName`` returns only the tasks that service started,
and without ``desiredStatus`` only tasks whose desired status is RUNNING are listed (AWS: "The
default status filter is RUNNING"). moto ignored serviceName (every task of the cluster) and
listed stopped tasks by default, so "the tasks of the blue service" read wrong."""

from __future__ import annotations

from moto.core.responses import ActionResult
from moto.ecs.responses import EC2ContainerServiceResponse


def apply() -> None:
    def list_tasks(self) -> ActionResult:
        service_name = self._get_param("serviceName")
        tasks = self.ecs_backend.list_tasks(
            self._get_param("cluster", "default"),
            self._get_param("containerInstance"),
            self._get_param("family"),
            self._get_param("startedBy"),
            None,
            self._get_param("desiredStatus") or "RUNNING",
        )
        if service_name:
            group = f"service:{service_name.split('/')[-1]}"
            tasks = [t for t in tasks if getattr(t, "group", None) == group]
        return ActionResult({"taskArns": [t.task_arn for t in tasks]})

    EC2ContainerServiceResponse.list_tasks = list_tasks
