"""ECS CreateService keeps healthCheckGracePeriodSeconds, deploymentConfiguration and
enableExecuteCommand, as AWS does. moto drops them on create (but keeps them on update), so a
service looked different right after creation than after its first update."""

from __future__ import annotations

from moto.ecs.responses import EC2ContainerServiceResponse

SETTINGS = {
    "healthCheckGracePeriodSeconds": "health_check_grace_period_seconds",
    "deploymentConfiguration": "deployment_configuration",
    "enableExecuteCommand": "enable_execute_command",
}


def apply() -> None:
    create_service = EC2ContainerServiceResponse.create_service

    def create_service_with_settings(self):
        result = create_service(self)
        cluster = self._get_param("cluster", "default")
        services, _ = self.ecs_backend.describe_services(cluster, [self._get_param("serviceName")])
        for param, attribute in SETTINGS.items():
            value = self._get_param(param)
            if value is not None:
                for service in services:
                    setattr(service, attribute, value)
        return result

    EC2ContainerServiceResponse.create_service = create_service_with_settings
