"""ApiTargetSync: what describe_target_health answers through the AWS API follows the registry."""

from __future__ import annotations

import threading

import pytest

from localcloud.dataplane.apisync import ApiTargetSync
from localcloud.dataplane.registry import Health, TargetRegistry
from tests.dataplane.conftest import lb_wait_until

pytestmark = pytest.mark.timeout(60)


def registered(cloud, group):
    described = cloud.elbv2.describe_target_health(TargetGroupArn=group)["TargetHealthDescriptions"]
    return sorted((d["Target"]["Id"], d["Target"]["Port"]) for d in described)


def check(registry, group, ip, ok, times=2):
    for _ in range(times):
        registry.record_check(
            group, ip, 8000, ok=ok, reason="Target.ResponseCodeMismatch", healthy_threshold=2, unhealthy_threshold=2
        )


@pytest.fixture
def lb_sync(lb_cloud):
    syncs = []

    def start(**options):
        sync = ApiTargetSync(lb_cloud.elbv2_factory, **options)
        syncs.append(sync)
        return sync

    yield start
    for sync in syncs:
        sync.stop()


def test_only_healthy_targets_are_registered_with_the_api(lb_cloud, lb_sync):
    group = lb_cloud.target_group("blue")
    registry = TargetRegistry()
    sync = lb_sync()
    sync.attach(registry)
    for n in (1, 2, 3):
        registry.register(group, f"10.0.1.{n}", 8000, f"task-{n}")
    assert sync.flush()
    assert registered(lb_cloud, group) == []  # initial: not yet

    check(registry, group, "10.0.1.1", ok=True)
    check(registry, group, "10.0.1.2", ok=True)
    check(registry, group, "10.0.1.3", ok=False)
    assert sync.flush()
    assert registered(lb_cloud, group) == [("10.0.1.1", 8000), ("10.0.1.2", 8000)]
    states = {
        d["Target"]["Id"]: d["TargetHealth"]["State"]
        for d in lb_cloud.elbv2.describe_target_health(TargetGroupArn=group)["TargetHealthDescriptions"]
    }
    assert states == {"10.0.1.1": "healthy", "10.0.1.2": "healthy"}

    registry.begin_draining(group, "10.0.1.1", 8000)  # stopping: leaves at once
    check(registry, group, "10.0.1.2", ok=False)  # unhealthy: leaves
    check(registry, group, "10.0.1.3", ok=True)  # recovered: joins
    assert sync.flush()
    assert registered(lb_cloud, group) == [("10.0.1.3", 8000)]

    registry.deregister(group, "10.0.1.3", 8000)
    assert sync.flush()
    assert registered(lb_cloud, group) == []
    assert sync.errors == []


def test_observers_do_not_block_on_the_api(lb_cloud, lb_sync):
    """The registry's caller (the health checker's loop) never waits for an API call."""
    group = lb_cloud.target_group("blue")
    registry = TargetRegistry()
    gate = threading.Event()

    def slow_factory():
        gate.wait(10)
        return lb_cloud.elbv2_factory()

    sync = lb_sync()
    sync._factory = slow_factory
    sync.attach(registry)
    registry.register(group, "10.0.1.1", 8000, "task-1")
    check(registry, group, "10.0.1.1", ok=True)  # returns although the worker is stuck
    assert registry.targets(group)[0].health is Health.HEALTHY
    gate.set()
    assert sync.flush()
    assert registered(lb_cloud, group) == [("10.0.1.1", 8000)]


def test_resync_corrects_drift_and_forgets_deleted_groups(lb_cloud, lb_sync):
    group = lb_cloud.target_group("blue")
    registry = TargetRegistry()
    registry.register(group, "10.0.1.1", 8000, "task-1")
    check(registry, group, "10.0.1.1", ok=True)  # healthy before the sync was attached
    sync = lb_sync(resync_interval=0.2)
    sync.attach(registry)
    assert sync.flush()
    assert registered(lb_cloud, group) == [("10.0.1.1", 8000)]

    # Someone else's registration, and one of ours lost (e.g. the API was reset meanwhile).
    lb_cloud.elbv2.register_targets(TargetGroupArn=group, Targets=[{"Id": "10.0.9.9", "Port": 8000}])
    lb_cloud.elbv2.deregister_targets(TargetGroupArn=group, Targets=[{"Id": "10.0.1.1", "Port": 8000}])
    lb_wait_until(lambda: registered(lb_cloud, group) == [("10.0.1.1", 8000)], timeout=3)

    lb_cloud.elbv2.delete_target_group(TargetGroupArn=group)
    check(registry, group, "10.0.1.1", ok=False)  # deregister of a group that is gone: no harm
    assert sync.flush()
    lb_wait_until(lambda: group not in sync._known_groups, timeout=3)
    assert sync.errors == []


def test_with_the_load_balancer_health_checks(lb_cloud, lb_planes, lb_backends, lb_sync):
    group = lb_cloud.target_group("blue")
    up, down = lb_backends.start("up"), lb_backends.start("down", health_status=500)
    plane = lb_planes()
    sync = lb_sync()
    sync.attach(plane.registry)
    plane.registry.register(group, up.ip, up.port, "task-up")
    plane.registry.register(group, down.ip, down.port, "task-down")
    lb_wait_until(lambda: registered(lb_cloud, group) == [(up.ip, up.port)], timeout=5)
    up.health_status = 500
    lb_wait_until(lambda: registered(lb_cloud, group) == [], timeout=5)
