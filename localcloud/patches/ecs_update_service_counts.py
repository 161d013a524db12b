"""ECS UpdateService leaves a service's runningCount and pendingCount alone, as AWS does: they count
tasks, which only the service scheduler starts and stops. moto sets runningCount to the new
desiredCount at once, so a scale-up looked "running" before any task ran (and a wait for
``runningCount == desiredCount`` passed at once). In the local cloud the data plane reports the
real counts; without it they stay as they were."""

from __future__ import annotations

from moto.ecs.models import EC2ContainerServiceBackend


def apply() -> None:
    update_service = EC2ContainerServiceBackend.update_service

    def update_service_keeping_counts(self, service_properties):
        cluster_name = service_properties.get("cluster", "default")
        service_name = str(service_properties.get("service", "")).split("/")[-1]
        service = self._get_service(cluster_name, service_name)
        cluster = self._get_cluster(cluster_name)
        counts = (service.running_count, service.pending_count)
        cluster_counts = (cluster.running_tasks_count, cluster.pending_tasks_count)
        result = update_service(self, service_properties)
        service.running_count, service.pending_count = counts
        cluster.running_tasks_count, cluster.pending_tasks_count = cluster_counts
        return result

    EC2ContainerServiceBackend.update_service = update_service_keeping_counts
