"""ECS DescribeServices reports a service's taskDefinition as the full task definition ARN after
UpdateService too, as AWS does. moto stored the reference as given ("family:3" or "family"), so
the same service read differently before and after an update."""

from __future__ import annotations

from moto.ecs.models import EC2ContainerServiceBackend


def apply() -> None:
    update_service = EC2ContainerServiceBackend.update_service

    def update_service_with_arn(self, service_properties):
        reference = service_properties.get("task_definition")
        service = update_service(self, service_properties)
        if reference:
            service.task_definition = self.describe_task_definition(reference).arn
        return service

    EC2ContainerServiceBackend.update_service = update_service_with_arn
