"""Unit tests for the lock_release callback: which task results mean this run holds the lock (or released
it), the AWS connection taken from platform_aws_defaults, and the release at exit over a fake SSM that
deletes only this run's own lock value."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import botocore.exceptions
import pytest
from ansible_collections.ecs_production.platform.plugins.callback import lock_release as cb

LOCK = "/ecs-prod/test/lock"
ACTION = "ecs_production.platform.environment_lock"


def acquired(token="t1", state="acquired", **extra):  # noqa: S107 - a lock token, not a password
    return {
        "name": LOCK,
        "acquired": True,
        "token": token,
        "invocation": {"module_args": {"name": LOCK, "state": state, "operation": "provision", "owner": "me@host"}},
        **extra,
    }


def released():
    return {"name": LOCK, "changed": True, "invocation": {"module_args": {"name": LOCK, "state": "released"}}}


def test_an_acquired_lock_is_held_with_its_token_operation_and_owner():
    held = cb.held_lock(ACTION, acquired(), check_mode=False)
    assert held == {"name": LOCK, "token": "t1", "operation": "provision", "owner": "me@host"}
    assert cb.held_lock("environment_lock", acquired(), check_mode=False) == held


@pytest.mark.parametrize(
    ("action", "result", "check_mode"),
    [
        ("ansible.builtin.set_fact", acquired(), False),  # another module
        (ACTION, acquired(), True),  # check mode writes no lock
        (ACTION, {**acquired(), "acquired": False}, False),  # another run holds it
        (ACTION, {**acquired(), "token": ""}, False),
        (ACTION, released(), False),
    ],
)
def test_other_results_hold_nothing(action, result, check_mode):
    assert cb.held_lock(action, result, check_mode) is None


def test_a_release_names_the_lock_released():
    assert cb.released_lock(ACTION, released()) == LOCK
    assert cb.released_lock(ACTION, acquired()) is None
    assert cb.released_lock("ansible.builtin.debug", released()) is None


def test_client_arguments_leave_out_omitted_and_empty_values():
    defaults = {
        "region": "us-east-1",
        "endpoint_url": "http://127.0.0.1:4566",
        "access_key": "testing",
        "secret_key": "testing",
        "session_token": "__omit_place_holder__abc123",
        "profile": "ignored",
    }
    assert cb.client_arguments(defaults) == {
        "region_name": "us-east-1",
        "endpoint_url": "http://127.0.0.1:4566",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    assert cb.client_arguments({"endpoint_url": ""}) == {}
    assert cb.client_arguments(None) == {}


class FakeSSM:
    """Parameters in memory, with SSM's errors; every call recorded."""

    def __init__(self):
        self.parameters: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []

    @staticmethod
    def error(code):
        return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": code}}, "op")

    def get_parameter(self, aws_retry=False, **params):  # noqa: ARG002
        self.calls.append(("get", params["Name"]))
        if params["Name"] not in self.parameters:
            raise self.error("ParameterNotFound")
        return {"Parameter": {"Name": params["Name"], "Value": self.parameters[params["Name"]]}}

    def put_parameter(self, aws_retry=False, **params):  # noqa: ARG002
        self.calls.append(("put", params["Name"]))
        if params["Name"] in self.parameters and not params.get("Overwrite"):
            raise self.error("ParameterAlreadyExists")
        self.parameters[params["Name"]] = params["Value"]
        return {"Version": 1}

    def delete_parameter(self, aws_retry=False, **params):  # noqa: ARG002
        self.calls.append(("delete", params["Name"]))
        if self.parameters.pop(params["Name"], None) is None:
            raise self.error("ParameterNotFound")


class Display:
    def __init__(self):
        self.lines: list[str] = []
        self.warnings: list[str] = []

    def display(self, text):
        self.lines.append(text)

    def warning(self, text):
        self.warnings.append(text)


@pytest.fixture
def callback(monkeypatch):
    monkeypatch.setattr(cb.atexit, "register", lambda _handler: None)
    made = cb.CallbackModule()
    made._display = Display()
    made.client = FakeSSM()
    monkeypatch.setattr(made, "prepare", lambda: None)
    from ansible_collections.ecs_production.platform.plugins.module_utils.lock import read_lock
    from ansible_collections.ecs_production.platform.plugins.modules.environment_lock import (
        Request,
        delete_exclusively,
    )

    made.protocol = (read_lock, Request, delete_exclusively)
    return made


def task_result(result, action=ACTION, check_mode=False):
    return SimpleNamespace(_task=SimpleNamespace(action=action, check_mode=check_mode), _result=result)


def lock_value(token):
    return json.dumps({"owner": "me@host", "operation": "provision", "token": token})


def test_at_exit_the_lock_still_held_is_released_and_said(callback):
    callback.v2_runner_on_ok(task_result(acquired("t1")))
    callback.client.parameters[LOCK] = lock_value("t1")
    callback.release_if_held()
    assert LOCK not in callback.client.parameters
    assert callback._display.lines == [f"Released the environment lock {LOCK} this run held, as it exited."]
    # Read, claim (create-if-absent), read again under the claim, delete the lock, drop the claim.
    assert [call for call, _name in callback.client.calls] == ["get", "put", "get", "delete", "delete"]
    assert ("delete", LOCK) in callback.client.calls and callback.client.parameters == {}
    callback.client.calls.clear()
    callback.release_if_held()  # once only
    assert callback.client.calls == []


def test_a_lock_the_run_released_itself_is_not_touched_at_exit(callback):
    callback.v2_runner_on_ok(task_result(acquired("t1")))
    callback.v2_runner_on_ok(task_result(released()))
    callback.client.parameters[LOCK] = lock_value("someone-else")
    callback.release_if_held()
    assert callback.client.parameters[LOCK] == lock_value("someone-else") and callback.client.calls == []


def test_a_lock_taken_over_or_broken_meanwhile_is_left_to_its_new_holder(callback):
    callback.v2_runner_on_ok(task_result(acquired("t1")))
    callback.client.parameters[LOCK] = lock_value("t2")
    callback.release_if_held()
    assert callback.client.parameters[LOCK] == lock_value("t2")
    assert [call for call, _name in callback.client.calls] == ["get"] and callback._display.lines == []


def test_a_forked_worker_releases_nothing(callback, monkeypatch):
    callback.v2_runner_on_ok(task_result(acquired("t1")))
    callback.client.parameters[LOCK] = lock_value("t1")
    worker = os.getpid() + 1
    monkeypatch.setattr(cb.os, "getpid", lambda: worker)
    callback.release_if_held()
    assert LOCK in callback.client.parameters and callback.client.calls == []


def test_without_a_client_it_warns_how_to_recover(callback):
    callback.client = None
    callback.error = RuntimeError("no credentials")
    callback.v2_runner_on_ok(task_result(acquired("t1")))
    callback.release_if_held()
    (warning,) = callback._display.warnings
    assert "no credentials" in warning and "-e break_lock=true" in warning and "takes it over" in warning


def test_the_lock_task_start_imports_boto3_in_the_background_and_the_next_task_waits_for_it(monkeypatch):
    monkeypatch.setattr(cb.atexit, "register", lambda _handler: None)
    made = cb.CallbackModule()
    released = SimpleNamespace(action=ACTION, args={"state": "released", "force": True})
    made.v2_runner_on_start("localhost", released)
    assert made.importing is None  # breaking a lock takes nothing
    acquire = SimpleNamespace(action=ACTION, args={"name": "/p/e/lock", "state": "acquired"})
    made.v2_runner_on_start("localhost", acquire)
    assert made.importing is not None
    made.v2_playbook_on_task_start(SimpleNamespace(action="ansible.builtin.set_fact"), False)
    assert not made.importing.is_alive()  # joined before the next task (and its fork)
    assert made.imported is not None and made.imported[0].__name__ == "boto3"
    monkeypatch.setattr(made, "connection", lambda: {"region_name": "us-east-1"})
    made.prepare()  # the client made from what the thread imported
    assert made.client is not None and made.error is None
    assert made.protocol[0] is made.imported[2].read_lock
