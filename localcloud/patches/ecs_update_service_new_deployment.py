"""ECS UpdateService with another task definition, or with forceNewDeployment, starts a new
deployment, as AWS does: a new PRIMARY deployment (rolloutState IN_PROGRESS, no task running yet),
while the previous one becomes ACTIVE until its tasks are gone. moto kept its single deployment
(still COMPLETED, with the old task definition), so a deploy looked finished before it started.
In the local cloud the data plane then rolls the deployment out and completes it."""

from __future__ import annotations

import copy

from moto.core.utils import utcnow
from moto.ecs.models import EC2ContainerServiceBackend
from moto.moto_api._internal import mock_random


def _arn(backend, reference):
    """The task definition ARN of a reference as moto may hold it ("family:3", "family", an ARN)."""
    return backend.describe_task_definition(reference).arn if reference else None


def apply() -> None:
    update_service = EC2ContainerServiceBackend.update_service

    def update_service_deploying(self, service_properties):
        cluster_name = service_properties.get("cluster", "default")
        service_name = str(service_properties.get("service", "")).split("/")[-1]
        force = bool(service_properties.get("force_new_deployment"))
        service = self._get_service(cluster_name, service_name)
        before_definition = _arn(self, service.task_definition)
        before = copy.deepcopy(service.deployments)
        result = update_service(self, service_properties)
        if service.deployment_controller.get("type", "ECS") != "ECS":
            return result
        definition = _arn(self, service.task_definition)
        if definition == before_definition and not force:
            service.deployments = before  # nothing to deploy (moto's own force handling undone)
            return result
        now = utcnow()
        primary = next((d for d in before if d.get("status") == "PRIMARY"), {})
        deployment_id = f"ecs-svc/{mock_random.randint(0, 10**19 - 1):019d}"
        new = {
            **copy.deepcopy(primary),
            "id": deployment_id,
            "status": "PRIMARY",
            "taskDefinition": definition,
            "desiredCount": service.desired_count,
            "pendingCount": 0,
            "runningCount": 0,
            "failedTasks": 0,
            "createdAt": now,
            "updatedAt": now,
            "rolloutState": "IN_PROGRESS",
            "rolloutStateReason": f"ECS deployment {deployment_id} in progress.",
        }
        previous = [dict(d, status="ACTIVE", updatedAt=now) if d.get("status") == "PRIMARY" else d for d in before]
        service.deployments = [new, *previous]
        return result

    EC2ContainerServiceBackend.update_service = update_service_deploying
