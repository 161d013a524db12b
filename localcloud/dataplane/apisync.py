"""Keeps the targets registered with the AWS API equal to the load balancer's healthy ones.

The data plane's :class:`~localcloud.dataplane.registry.TargetRegistry` holds every task's target
and its health; the AWS API holds what ``describe_target_health`` answers to the playbooks (the
deploy waits for the new colour's targets there). :class:`ApiTargetSync` listens to the registry:
a target that becomes ``healthy`` is registered with the API (``register_targets``), one that
leaves ``healthy`` (unhealthy, draining, removed) is deregistered. So whoever reads target health
through the API sees what the load balancer routes to. (The emulator reports every registered
target as healthy, hence registration only while healthy.)

The registry calls observers in the thread that changed the state (the health checker's, the ECS
runner's): they only queue the change. One worker thread makes the API calls in order, retries a
failed call a few times, and every ``resync_interval`` seconds compares each known target group
with the registry and corrects the difference (an API restarted or reset, a call that failed for
good). A target group that the API no longer knows is forgotten.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from localcloud.dataplane.registry import Health, Target, TargetRegistry

LOG = logging.getLogger(__name__)

RETRIES = 3
RETRY_DELAY = 0.2
_STOP = object()
_FLUSH = "flush"


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


class ApiTargetSync:
    """Registers healthy targets with the AWS API and deregisters the others (see the module doc)."""

    def __init__(self, elbv2_factory: Callable[[], Any], *, resync_interval: float = 10.0) -> None:
        self._factory = elbv2_factory
        self._resync_interval = resync_interval
        self._queue: queue.Queue = queue.Queue()
        self._registries: list[TargetRegistry] = []
        self._known_groups: set[str] = set()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.errors: list[str] = []  # the last few API errors, for status and tests

    def attach(self, registry: TargetRegistry) -> None:
        """Subscribe to the registry's transitions; register the targets healthy already."""
        with self._lock:
            self._registries.append(registry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="localcloud-lb-apisync", daemon=True)
                self._thread.start()
        registry.subscribe(self._observe)
        self._queue.put(("resync",))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every change queued so far has reached the API; False on timeout."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._queue.put((_FLUSH, done))
        return done.wait(timeout)

    def stop(self) -> None:
        """Finish the queued calls (bounded) and end the worker thread. Idempotent."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(_STOP)
            thread.join(timeout=30)

    # -- the registry's side (any thread): queue only --------------------------------------------

    def _observe(self, target: Target, old: Health, new: Health) -> None:
        if new is Health.HEALTHY:
            self._queue.put(("register", target.target_group_arn, target.ip, target.port))
        elif old is Health.HEALTHY:
            self._queue.put(("deregister", target.target_group_arn, target.ip, target.port))

    # -- the worker -----------------------------------------------------------------------------

    def _work(self) -> None:
        client = None
        next_resync = time.monotonic() + self._resync_interval
        while True:
            try:
                item = self._queue.get(timeout=max(0.05, next_resync - time.monotonic()))
            except queue.Empty:
                item = ("resync",)
            if item is _STOP:
                return
            if item[0] == _FLUSH:
                item[1].set()
                continue
            try:
                if client is None:
                    client = self._factory()
                if item[0] == "resync":
                    self._resync(client)
                    next_resync = time.monotonic() + self._resync_interval
                else:
                    self._apply(client, *item)
            except Exception as exc:  # never let the worker die; the next resync corrects
                self._note(f"{item[0]}: {type(exc).__name__}: {exc}")

    def _call(self, call: Callable[..., Any], **params) -> Any:
        for attempt in range(RETRIES):
            try:
                return call(**params)
            except Exception as exc:
                if _error_code(exc) in ("TargetGroupNotFound", "ValidationError", "InvalidTarget"):
                    raise
                if attempt == RETRIES - 1:
                    raise
                time.sleep(RETRY_DELAY * (attempt + 1))
        return None

    def _apply(self, client: Any, op: str, group_arn: str, ip: str, port: int) -> None:
        self._known_groups.add(group_arn)
        call = client.register_targets if op == "register" else client.deregister_targets
        try:
            self._call(call, TargetGroupArn=group_arn, Targets=[{"Id": ip, "Port": port}])
        except Exception as exc:
            if _error_code(exc) == "TargetGroupNotFound":
                self._known_groups.discard(group_arn)
                return
            raise

    def _resync(self, client: Any) -> None:
        healthy: dict[str, set[tuple[str, int]]] = {}
        for registry in list(self._registries):
            for target in registry.targets():
                members = healthy.setdefault(target.target_group_arn, set())
                if target.health is Health.HEALTHY:
                    members.add((target.ip, target.port))
        self._known_groups |= healthy.keys()
        for group_arn in sorted(self._known_groups):
            want = healthy.get(group_arn, set())
            try:
                described = self._call(client.describe_target_health, TargetGroupArn=group_arn)
            except Exception as exc:
                if _error_code(exc) == "TargetGroupNotFound":
                    self._known_groups.discard(group_arn)
                    continue
                raise
            have = {(d["Target"]["Id"], int(d["Target"].get("Port", 0))) for d in described["TargetHealthDescriptions"]}
            if want - have:
                targets = [{"Id": ip, "Port": port} for ip, port in sorted(want - have)]
                self._call(client.register_targets, TargetGroupArn=group_arn, Targets=targets)
            if have - want:
                targets = [{"Id": ip, "Port": port} for ip, port in sorted(have - want)]
                self._call(client.deregister_targets, TargetGroupArn=group_arn, Targets=targets)

    def _note(self, message: str) -> None:
        LOG.warning("API target sync: %s", message)
        self.errors = [*self.errors[-9:], message]
