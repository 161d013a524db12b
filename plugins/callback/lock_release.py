# Copyright: Contributors to the ecs_production.platform collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: lock_release
type: notification
short_description: Releases the environment lock a run still holds when ansible-playbook exits (Ctrl-C included)
version_added: 0.1.0
description:
  - Notes the environment lock a run takes (an C(ecs_production.platform.environment_lock) task with
    O(ecs_production.platform.environment_lock#module:state=acquired) that acquired it) and forgets it when the
    run releases it. If ansible-playbook exits while the run still holds the lock - Ctrl-C (SIGINT), which stops
    ansible-playbook at once without running the playbook's C(always) section, or a run that never reached its
    unlock - it releases the lock as the module does (only the value written under this run's token, under the
    claim that makes one run the only one deleting it) and says so.
  - A run killed with SIGKILL cannot release anything; the next run on the same host takes its lock over at
    once (its holder process is gone), and elsewhere the lock goes stale after
    O(ecs_production.platform.environment_lock#module:stale_after) seconds.
  - The AWS connection is the play's C(platform_aws_defaults) (region, endpoint and credentials, as the
    playbooks' C(module_defaults)), templated when the run takes the lock, and boto3's own credential chain.
  - Enabled in this repository's C(ansible.cfg) (C(callbacks_enabled)).
requirements:
  - enabled in callbacks_enabled
  - boto3
"""

import atexit
import os
import threading
from datetime import UTC, datetime

from ansible.plugins.callback import CallbackBase

LOCK_ACTIONS = ("ecs_production.platform.environment_lock", "environment_lock")
# platform_aws_defaults (module_defaults of the playbooks) -> boto3 client arguments.
CLIENT_ARGUMENTS = {
    "region": "region_name",
    "endpoint_url": "endpoint_url",
    "access_key": "aws_access_key_id",
    "secret_key": "aws_secret_access_key",
    "session_token": "aws_session_token",
}


OMITTED = "__omit_place_holder__"


def held_lock(action: str, result: dict, check_mode: bool) -> dict | None:
    """What to keep of an environment_lock task's result: {name, token, operation, owner} when it acquired
    (or renewed) the lock for this run; None otherwise."""
    if action not in LOCK_ACTIONS or check_mode:
        return None
    args = (result.get("invocation") or {}).get("module_args") or {}
    if args.get("state", "acquired") in ("acquired", "renewed") and result.get("acquired") and result.get("token"):
        return {
            "name": result.get("name") or args.get("name"),
            "token": result["token"],
            "operation": args.get("operation") or "",
            "owner": args.get("owner") or "",
        }
    return None


def released_lock(action: str, result: dict) -> str | None:
    """The lock name an environment_lock task released (or found not held), else None."""
    args = (result.get("invocation") or {}).get("module_args") or {}
    if action in LOCK_ACTIONS and args.get("state") == "released":
        return result.get("name") or args.get("name")
    return None


def client_arguments(defaults: dict) -> dict:
    """boto3 client arguments from platform_aws_defaults, without the values left out (omit, empty)."""
    return {
        CLIENT_ARGUMENTS[key]: value
        for key, value in (defaults or {}).items()
        if key in CLIENT_ARGUMENTS and isinstance(value, str) and value and not value.startswith(OMITTED)
    }


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "ecs_production.platform.lock_release"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.held: dict | None = None
        self.play = None
        self.client = None
        self.protocol = None
        self.error: Exception | None = None
        self.importing: threading.Thread | None = None
        self.imported: tuple | None = None
        self.pid = os.getpid()  # forked workers inherit the handler: only ansible-playbook itself releases
        atexit.register(self.release_if_held)

    def v2_playbook_on_play_start(self, play):
        self.play = play

    def v2_runner_on_start(self, host, task):  # noqa: ARG002 - the callback's signature
        """While the first lock task's module runs, import boto3 and the lock protocol in the background
        (about 0.3-1 s the run would otherwise wait for when the lock is taken). The worker that runs the task
        was forked already, and the thread is joined before the next task forks one."""
        acquiring = task.action in LOCK_ACTIONS and task.args.get("state", "acquired") == "acquired"
        if acquiring and self.importing is None and self.client is None:
            self.importing = threading.Thread(target=self._import, name="lock_release-import", daemon=True)
            self.importing.start()

    def v2_playbook_on_task_start(self, task, is_conditional):  # noqa: ARG002 - the callback's signature
        self._imported_now()

    def _import(self) -> None:
        try:
            import boto3
            from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
            from ansible_collections.ecs_production.platform.plugins.module_utils import lock
            from ansible_collections.ecs_production.platform.plugins.module_utils.ssm import SSM_RETRY
            from ansible_collections.ecs_production.platform.plugins.modules import environment_lock

            self.imported = (boto3, RetryingBotoClientWrapper, lock, SSM_RETRY, environment_lock)
        except Exception as error:  # noqa: BLE001 - prepare() imports again and keeps the error
            self.error = error

    def _imported_now(self) -> None:
        """Wait for the background import, if one runs (no fork while it does)."""
        if self.importing is not None and self.importing.is_alive():
            self.importing.join(timeout=60)

    def v2_runner_on_ok(self, result):
        action = result._task.action
        held = held_lock(action, result._result, bool(result._task.check_mode))
        if held:
            self.held = held
            self.prepare()
        elif self.held and released_lock(action, result._result) == self.held["name"]:
            self.held = None

    def prepare(self) -> None:
        """The SSM client and the lock protocol, made while the run holds the lock: at exit, Python no longer
        lets boto3 be imported (its imports register exit handlers)."""
        if self.client is not None:
            return
        self._imported_now()
        if self.imported is None:
            self._import()
        try:
            if self.imported is None:
                raise self.error or RuntimeError("boto3 could not be imported")
            boto3, RetryingBotoClientWrapper, lock, SSM_RETRY, environment_lock = self.imported  # noqa: N806
            self.error = None
            self.client = RetryingBotoClientWrapper(boto3.client("ssm", **self.connection()), SSM_RETRY)
            self.protocol = (lock.read_lock, environment_lock.Request, environment_lock.delete_exclusively)
        except Exception as error:  # noqa: BLE001 - only what happens at exit depends on it: say so then
            self.error = error

    def connection(self) -> dict:
        """The play's platform_aws_defaults, templated for localhost."""
        from ansible.template import Templar

        variable_manager, loader = self.play._variable_manager, self.play._loader
        host = variable_manager._inventory.get_host("localhost")
        variables = variable_manager.get_vars(play=self.play, host=host)
        defaults = Templar(loader=loader, variables=variables).template(variables["platform_aws_defaults"])
        return client_arguments(defaults)

    def release_if_held(self):
        if self.held is None or os.getpid() != self.pid:
            return
        held, self.held = self.held, None
        try:
            if self.client is None:
                raise self.error or RuntimeError("no AWS client was made")
            read_lock, request_class, delete_exclusively = self.protocol
            current = read_lock(self.client, held["name"], 3600)
            if current is None or current.token != held["token"]:
                return  # released, broken or taken over meanwhile: not this run's to release
            request = request_class(stale_after=3600, **held)
            if delete_exclusively(self.client, request, current, datetime.now(UTC)):
                self._display.display(f"Released the environment lock {held['name']} this run held, as it exited.")
        except Exception as error:  # noqa: BLE001 - at exit: say so, the next run on this host takes it over
            self._display.warning(
                f"Could not release the environment lock {held['name']} as the run exited ({error}); the next run"
                " on this host takes it over, or re-run with -e break_lock=true."
            )
