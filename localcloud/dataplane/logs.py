"""Task logs: each task's stdout and stderr in files under the state dir, and in CloudWatch Logs.

A task writes ``<state>/tasks/<task-id>/stdout.log`` and ``stderr.log`` directly (they are the
process's own file descriptors, so nothing is lost when the data plane is busy). The shipper
follows those files, as the ``awslogs`` log driver follows a container's output, and sends each
complete line to the log group and stream the task definition's ``logConfiguration`` names: group
``awslogs-group``, stream ``<awslogs-stream-prefix>/<container name>/<task id>``, both stdout and
stderr into the one stream. Work is bounded: at most ``MAX_READ`` bytes per file and round, batches
within CloudWatch's limits (1,000 events and 1 MiB per call), events over 256 KiB truncated. When the log
group does not exist (deleted under a running task) the lines are dropped and counted, as the
driver would fail to deliver them.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

MAX_READ = 256 * 1024
MAX_CLOSING_ROUNDS = 64
MAX_BATCH_EVENTS = 1000
MAX_BATCH_BYTES = 1024 * 1024
MAX_EVENT_BYTES = 256 * 1024 - 26
EVENT_OVERHEAD = 26


@dataclasses.dataclass
class LogDestination:
    region: str
    group: str
    stream: str


def destination(
    log_configuration: dict | None, container_name: str, task_id: str, region: str
) -> LogDestination | None:
    """Where the awslogs driver would send this container's output, or None (another driver, none)."""
    if not log_configuration or log_configuration.get("logDriver") != "awslogs":
        return None
    options = log_configuration.get("options") or {}
    group = options.get("awslogs-group")
    if not group:
        return None
    prefix = options.get("awslogs-stream-prefix")
    stream = f"{prefix}/{container_name}/{task_id}" if prefix else task_id
    return LogDestination(options.get("awslogs-region") or region, group, stream)


@dataclasses.dataclass
class _Source:
    path: Path
    offset: int = 0
    partial: bytes = b""


@dataclasses.dataclass
class _Follow:
    task_id: str
    destination: LogDestination
    sources: list[_Source]
    stream_created: bool = False
    closing: bool = False
    shipped: int = 0
    dropped: int = 0


class LogShipper:
    """Follows task log files and puts their lines into CloudWatch Logs, in a thread of its own."""

    def __init__(self, logs_client: Callable[[str], object], interval: float = 1.0):
        self._client = logs_client
        self.interval = interval
        self._follows: dict[str, _Follow] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="log-shipper", daemon=True)
        self._thread.start()

    def follow(self, task_id: str, files: list[Path], where: LogDestination) -> None:
        with self._lock:
            self._follows[task_id] = _Follow(task_id, where, [_Source(Path(f)) for f in files])

    def close(self, task_id: str) -> None:
        """The task has stopped: ship what is left (a last line without newline too), then forget it."""
        with self._lock:
            follow = self._follows.get(task_id)
            if follow is not None:
                follow.closing = True
        self._wake.set()

    def counts(self, task_id: str) -> tuple[int, int] | None:
        with self._lock:
            follow = self._follows.get(task_id)
            return (follow.shipped, follow.dropped) if follow else None

    def stop(self, timeout: float = 10.0) -> None:
        """Ship everything still pending, then stop."""
        with self._lock:
            for follow in self._follows.values():
                follow.closing = True
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def flush(self) -> None:
        """One round, in the caller's thread (tests, and the final round)."""
        with self._lock:
            follows = list(self._follows.values())
        for follow in follows:
            try:
                # A stopped task's files are read to the end (bounded); a running one's a slice per round.
                rounds = MAX_CLOSING_ROUNDS if follow.closing else 1
                while self._ship(follow) and rounds > 1:
                    rounds -= 1
            except Exception:  # noqa: BLE001 - one failing stream must not stop the others
                log.exception("shipping the logs of task %s failed", follow.task_id)
            if follow.closing:
                with self._lock:
                    self._follows.pop(follow.task_id, None)

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            self.flush()
        self.flush()

    def _read_lines(self, follow: _Follow) -> tuple[list[tuple[int, str]], bool]:
        """New complete lines of the task's files, and whether a file has more to read."""
        now = int(time.time() * 1000)
        lines: list[tuple[int, str]] = []
        more = False
        for source in follow.sources:
            try:
                with source.path.open("rb") as handle:
                    handle.seek(source.offset)
                    chunk = handle.read(MAX_READ)
            except OSError:
                continue
            source.offset += len(chunk)
            more = more or len(chunk) == MAX_READ
            data = source.partial + chunk
            *complete, source.partial = data.split(b"\n")
            if follow.closing and source.partial and len(chunk) < MAX_READ:
                complete.append(source.partial)
                source.partial = b""
            if len(source.partial) > MAX_EVENT_BYTES:
                complete.append(source.partial)
                source.partial = b""
            for raw in complete:
                text = raw.decode("utf-8", "replace").rstrip("\r")
                if text:
                    lines.append((now, _truncate(text)))
        return lines, more

    def _ship(self, follow: _Follow) -> bool:
        """Ship what is new; True when there is more to read."""
        lines, more = self._read_lines(follow)
        if not lines:
            return more
        where = follow.destination
        client = self._client(where.region)
        if not follow.stream_created:
            if not self._create_stream(client, where):
                follow.dropped += len(lines)
                return more
            follow.stream_created = True
        for batch in _batches(lines):
            try:
                client.put_log_events(
                    logGroupName=where.group,
                    logStreamName=where.stream,
                    logEvents=[{"timestamp": ts, "message": message} for ts, message in batch],
                )
                follow.shipped += len(batch)
            except Exception as exc:  # noqa: BLE001 - the group may be gone; the lines are dropped
                follow.dropped += len(batch)
                if _error_code(exc) == "ResourceNotFoundException":
                    follow.stream_created = False
                else:
                    log.warning("put_log_events to %s %s failed: %s", where.group, where.stream, exc)
        return more

    @staticmethod
    def _create_stream(client, where: LogDestination) -> bool:
        try:
            client.create_log_stream(logGroupName=where.group, logStreamName=where.stream)
        except Exception as exc:  # noqa: BLE001
            code = _error_code(exc)
            if code == "ResourceAlreadyExistsException":
                return True
            if code != "ResourceNotFoundException":
                log.warning("create_log_stream %s %s failed: %s", where.group, where.stream, exc)
            return False
        return True


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return response.get("Error", {}).get("Code", "")


def _truncate(text: str) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= MAX_EVENT_BYTES:
        return text
    return encoded[:MAX_EVENT_BYTES].decode("utf-8", "ignore")


def _batches(lines: list[tuple[int, str]]):
    batch: list[tuple[int, str]] = []
    size = 0
    for line in lines:
        line_size = len(line[1].encode("utf-8")) + EVENT_OVERHEAD
        if batch and (len(batch) >= MAX_BATCH_EVENTS or size + line_size > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(line)
        size += line_size
    if batch:
        yield batch
