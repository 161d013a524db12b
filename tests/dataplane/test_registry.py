"""The target registry turns health checks into ALB's target states."""

from __future__ import annotations

from localcloud.dataplane.registry import Health, TargetRegistry

TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/blue/1"


def checks(registry, ip, outcomes, healthy=2, unhealthy=3):
    return [
        registry.record_check(
            TG,
            ip,
            8000,
            ok=ok,
            reason="Target.ResponseCodeMismatch",
            healthy_threshold=healthy,
            unhealthy_threshold=unhealthy,
        )
        for ok in outcomes
    ]


def test_a_new_target_is_initial_and_not_routable():
    registry = TargetRegistry()
    registry.register(TG, "127.1.0.1", 8000, "task-1")
    assert [t.health for t in registry.targets(TG)] == [Health.INITIAL]
    assert registry.routable(TG) == []


def test_healthy_after_the_healthy_threshold_and_unhealthy_after_the_unhealthy_threshold():
    registry = TargetRegistry()
    registry.register(TG, "127.1.0.1", 8000, "task-1")
    assert checks(registry, "127.1.0.1", [True, True]) == [Health.INITIAL, Health.HEALTHY]
    assert checks(registry, "127.1.0.1", [False, False, False]) == [Health.HEALTHY, Health.HEALTHY, Health.UNHEALTHY]
    assert registry.targets(TG)[0].reason == "Target.ResponseCodeMismatch"
    assert checks(registry, "127.1.0.1", [True, False, True, True]) == [
        Health.UNHEALTHY,
        Health.UNHEALTHY,
        Health.UNHEALTHY,
        Health.HEALTHY,
    ]


def test_routable_prefers_healthy_and_fails_open_to_unhealthy_only():
    registry = TargetRegistry()
    for n in (1, 2, 3):
        registry.register(TG, f"127.1.0.{n}", 8000, f"task-{n}")
    checks(registry, "127.1.0.1", [True, True])
    checks(registry, "127.1.0.2", [False, False, False])
    assert [t.ip for t in registry.routable(TG)] == ["127.1.0.1"]

    checks(registry, "127.1.0.1", [False, False, False])
    assert sorted(t.ip for t in registry.routable(TG)) == ["127.1.0.1", "127.1.0.2"]  # 127.1.0.3 is initial


def test_draining_targets_get_no_new_requests_and_ignore_checks():
    registry = TargetRegistry()
    registry.register(TG, "127.1.0.1", 8000, "task-1")
    checks(registry, "127.1.0.1", [True, True])
    assert registry.begin_draining(TG, "127.1.0.1", 8000)
    assert registry.routable(TG) == []
    assert checks(registry, "127.1.0.1", [True, True]) == [Health.DRAINING, Health.DRAINING]
    assert not registry.begin_draining(TG, "127.9.9.9", 8000)


def test_observers_hear_each_transition_once_and_removal_counts_as_draining():
    registry = TargetRegistry()
    heard = []
    registry.subscribe(lambda target, old, new: heard.append((target.ip, old, new)))
    registry.register(TG, "127.1.0.1", 8000, "task-1")
    checks(registry, "127.1.0.1", [True, True, True])
    registry.deregister(TG, "127.1.0.1", 8000)
    assert heard == [
        ("127.1.0.1", Health.INITIAL, Health.HEALTHY),
        ("127.1.0.1", Health.HEALTHY, Health.DRAINING),
    ]
    assert registry.targets(TG) == []


def test_inflight_counts_and_copies_do_not_leak_state():
    registry = TargetRegistry()
    target = registry.register(TG, "127.1.0.1", 8000, "task-1")
    registry.begin_request(target.key)
    registry.begin_request(target.key)
    registry.end_request(target.key)
    assert registry.inflight(target.key) == 1
    copy = registry.targets(TG)[0]
    copy.health = Health.HEALTHY
    assert registry.targets(TG)[0].health is Health.INITIAL
