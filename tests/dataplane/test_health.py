"""The load balancer's health checks: real HTTP checks against aiohttp servers on loopback."""

from __future__ import annotations

import asyncio
import time

import pytest

from localcloud.dataplane.health import (
    REASON_FAILED,
    REASON_MISMATCH,
    REASON_TIMEOUT,
    HealthChecker,
    HealthCheckSettings,
    parse_matcher,
)
from localcloud.dataplane.registry import Health, TargetRegistry
from tests.dataplane.conftest import lb_free_port, lb_wait_until

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("spec", "accepted", "refused"),
    [
        ("200", [200], [199, 201, 204, 500]),
        ("200,204", [200, 204], [201, 202, 302]),
        ("200-299", [200, 204, 250, 299], [199, 300, 500]),
        (" 200 , 300-302 ", [200, 300, 302], [299, 303]),
    ],
)
def test_matcher(spec, accepted, refused):
    matches = parse_matcher(spec)
    assert [code for code in accepted if matches(code)] == accepted
    assert [code for code in refused if matches(code)] == []


@pytest.mark.parametrize("spec", ["", "abc", "200-", "299-200", "20", "200;204"])
def test_matcher_refuses_nonsense(spec):
    with pytest.raises(ValueError, match="matcher"):
        parse_matcher(spec)


def test_settings_come_from_the_target_group():
    settings = HealthCheckSettings.from_target_group(
        {
            "HealthCheckPath": "/health",
            "HealthCheckIntervalSeconds": 15,
            "HealthCheckTimeoutSeconds": 5,
            "HealthyThresholdCount": 2,
            "UnhealthyThresholdCount": 3,
            "HealthCheckPort": "traffic-port",
            "Matcher": {"HttpCode": "200-299"},
        }
    )
    assert (settings.path, settings.interval, settings.timeout) == ("/health", 15, 5)
    assert (settings.healthy_threshold, settings.unhealthy_threshold, settings.matcher) == (2, 3, "200-299")


def run_checks(settings, *targets, scale=1.0):
    """One check of each (ip, port) with a HealthChecker of its own."""

    async def go():
        checker = HealthChecker(TargetRegistry(), time_scale=scale)
        await checker.start()
        try:
            return [await checker.check(ip, port, settings) for ip, port in targets]
        finally:
            await checker.close()

    return asyncio.run(go())


def test_one_check_and_its_reasons(lb_backends):
    ok = lb_backends.start("ok")
    no_content = lb_backends.start("no-content", health_status=204)
    slow = lb_backends.start("slow", health_delay=3)
    gone = ("127.0.0.1", lb_free_port())
    settings = HealthCheckSettings(path="/health", timeout=2, matcher="200")
    results = run_checks(settings, ok.address, no_content.address, slow.address, gone, scale=0.25)
    assert results == [(True, ""), (False, REASON_MISMATCH), (False, REASON_TIMEOUT), (False, REASON_FAILED)]
    wider = HealthCheckSettings(path="/health", matcher="200-299")
    assert run_checks(wider, no_content.address) == [(True, "")]
    assert ok.hits["/health"] == 1


def test_thresholds_and_interval_of_the_target_group(lb_cloud, lb_planes, lb_backends):
    """initial -> healthy after 2 passed checks, -> unhealthy after 2 failed ones, at the group's
    own pace: a check every 2 s (1 s timeout), as DescribeTargetGroups says."""
    group = lb_cloud.target_group(
        "paced",
        HealthCheckIntervalSeconds=2,
        HealthCheckTimeoutSeconds=1,
        HealthyThresholdCount=2,
        UnhealthyThresholdCount=2,
    )
    task = lb_backends.start("paced")
    plane = lb_planes(health_time_scale=1.0)
    heard = []
    plane.registry.subscribe(lambda _target, old, new: heard.append((time.monotonic(), old, new)))
    registered = time.monotonic()
    plane.registry.register(group, task.ip, task.port, "task-1")

    lb_wait_until(lambda: task.hits.get("/health"), timeout=1)  # first check promptly
    first_check = time.monotonic() - registered
    lb_wait_until(lambda: heard, timeout=6)
    became_healthy = heard[0][0] - registered
    assert heard[0][1:] == (Health.INITIAL, Health.HEALTHY)
    assert task.hits["/health"] == 2

    task.health_status = 503
    failing = time.monotonic()
    lb_wait_until(lambda: len(heard) == 2, timeout=8)
    became_unhealthy = heard[1][0] - failing
    assert heard[1][1:] == (Health.HEALTHY, Health.UNHEALTHY)
    target = plane.registry.targets(group)[0]
    assert target.reason == REASON_MISMATCH
    print(
        f"first check {first_check * 1000:.0f} ms after registration; healthy after {became_healthy:.2f} s; "
        f"unhealthy {became_unhealthy:.2f} s after the task started failing"
    )
    assert first_check < 0.5
    assert 1.8 < became_healthy < 3.0  # checks at ~0 s and ~2 s
    assert 1.8 < became_unhealthy < 5.0  # two failed checks, 2 s apart

    task.health_status = 200
    lb_wait_until(lambda: len(heard) == 3, timeout=8)
    assert heard[2][1:] == (Health.UNHEALTHY, Health.HEALTHY)


def test_draining_targets_are_not_checked(lb_cloud, lb_planes, lb_backends):
    group = lb_cloud.target_group("drained")
    task = lb_backends.start("drained")
    plane = lb_planes()  # checks every 0.25 s
    plane.registry.register(group, task.ip, task.port, "task-1")
    lb_wait_until(lambda: plane.registry.targets(group)[0].health is Health.HEALTHY, timeout=5)
    plane.registry.begin_draining(group, task.ip, task.port)
    time.sleep(0.3)  # a check in flight may still land
    checks = task.hits["/health"]
    time.sleep(1.0)
    assert task.hits["/health"] == checks
    assert plane.registry.targets(group)[0].health is Health.DRAINING
