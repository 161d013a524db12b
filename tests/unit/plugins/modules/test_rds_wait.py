"""Unit tests for ecs_production.platform.rds_wait over a fake RDS whose instances change status as time
passes: it waits until available or gone, lists each change, and fails at once on a hopeless status."""

from __future__ import annotations

import botocore.exceptions
import pytest
from ansible_collections.ecs_production.platform.plugins.modules import rds_wait as mod


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class FakeRds:
    """``timelines[identifier]`` is a list of (from time, status); None as a status: the instance is gone."""

    def __init__(self, clock: FakeClock, timelines: dict):
        self.clock, self.timelines = clock, timelines

    def describe_db_instances(self, aws_retry, DBInstanceIdentifier):  # noqa: ARG002, N803 - the API's names
        status = None
        for start, value in self.timelines.get(DBInstanceIdentifier, []):
            if self.clock.now >= start:
                status = value
        if status is None:
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "DBInstanceNotFound", "Message": "not found"}}, "DescribeDBInstances"
            )
        return {"DBInstances": [{"DBInstanceIdentifier": DBInstanceIdentifier, "DBInstanceStatus": status}]}


def params(**overrides):
    return dict({"db_instance_identifiers": ["db"], "state": "available", "timeout": 600, "interval": 15}, **overrides)


def test_waits_until_available_listing_each_change():
    clock = FakeClock()
    rds = FakeRds(clock, {"db": [(0, "creating"), (40, "backing-up"), (70, "available")]})
    result = mod.wait(rds, params(), clock)
    assert "msg" not in result
    assert result["instances"][0]["db_instance_status"] == "available"
    assert result["progress"] == ["0 s db creating", "45 s db backing-up", "75 s db available"]
    assert result["waited"] == 75.0


def test_waits_for_every_instance():
    clock = FakeClock()
    rds = FakeRds(clock, {"a": [(0, "available")], "b": [(0, "modifying"), (30, "available")]})
    result = mod.wait(rds, params(db_instance_identifiers=["a", "b"]), clock)
    assert "msg" not in result and len(result["instances"]) == 2 and result["waited"] == 30.0


def test_waits_until_gone():
    clock = FakeClock()
    rds = FakeRds(clock, {"db": [(0, "deleting"), (20, None)]})
    result = mod.wait(rds, params(state="deleted"), clock)
    assert "msg" not in result and result["instances"] == []
    assert result["progress"] == ["0 s db deleting", "30 s db gone"]


@pytest.mark.parametrize(
    ("timeline", "why"),
    [
        ([(0, "creating"), (15, "incompatible-network")], "db is incompatible-network"),
        ([], "db does not exist"),
    ],
)
def test_a_hopeless_status_fails_at_once(timeline, why):
    clock = FakeClock()
    result = mod.wait(FakeRds(clock, {"db": timeline}), params(), clock)
    assert result["msg"] == f"Waited for db to be available: {why}"
    assert clock.now <= 15


def test_times_out_saying_where_it_stands():
    clock = FakeClock()
    result = mod.wait(FakeRds(clock, {"db": [(0, "creating")]}), params(timeout=60), clock)
    assert result["msg"] == "Waited for db to be available: still db creating after 60 s"
    assert sum(clock.sleeps) == 60
