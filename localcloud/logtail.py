"""``localcloud logs SERVICE``: the log lines an ECS service's tasks wrote, read from CloudWatch Logs.

The service's task definition names where its containers' output goes (the ``awslogs`` driver's
group and stream prefix); the streams are ``<prefix>/<container>/<task id>``. The lines are read
with the same CloudWatch Logs calls one would make on AWS (``DescribeLogStreams`` to find the
streams, ``FilterLogEvents`` over them), so what this prints is what was shipped, not the task's
files on disk. ``--follow`` asks again every ``interval`` seconds for what is new, as ``aws logs
tail --follow`` does, until interrupted (or for ``follow_seconds`` when given).
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from collections.abc import Callable, Iterator

MAX_STREAMS = 100  # FilterLogEvents takes at most 100 stream names
LATE_MS = 5000  # a follow asks again this far back: lines shipped late from another task's stream


class LogTailError(Exception):
    """The service, its task definition or its log configuration cannot be found."""


@dataclasses.dataclass(frozen=True)
class LogSource:
    cluster: str
    service: str
    region: str
    group: str
    stream_prefix: str


def find_source(ecs, service: str, region: str, cluster: str | None = None) -> LogSource:
    """Where the running task definition of ``service`` sends its output (the first awslogs container)."""
    clusters = [cluster] if cluster else ecs.list_clusters()["clusterArns"]
    found = []
    for name in clusters:
        described = ecs.describe_services(cluster=name, services=[service])["services"]
        found += [(name, s) for s in described if s.get("status") == "ACTIVE"]
    if not found:
        where = f"cluster {cluster}" if cluster else "any cluster"
        raise LogTailError(f"no active service {service} in {where} in {region}")
    if len(found) > 1:
        names = ", ".join(c.split("/")[-1] for c, _ in found)
        raise LogTailError(f"service {service} runs in several clusters ({names}); name one with --cluster")
    cluster_arn, described = found[0]
    definition = ecs.describe_task_definition(taskDefinition=described["taskDefinition"])["taskDefinition"]
    for container in definition["containerDefinitions"]:
        configuration = container.get("logConfiguration") or {}
        options = configuration.get("options") or {}
        if configuration.get("logDriver") == "awslogs" and options.get("awslogs-group"):
            prefix = options.get("awslogs-stream-prefix")
            return LogSource(
                cluster=cluster_arn.split("/")[-1],
                service=service,
                region=options.get("awslogs-region") or region,
                group=options["awslogs-group"],
                stream_prefix=f"{prefix}/{container['name']}/" if prefix else "",
            )
    raise LogTailError(f"no container of {described['taskDefinition']} sends its output to CloudWatch Logs")


def _streams(logs, source: LogSource) -> list[str]:
    """The service's streams, the most recently written last (at most MAX_STREAMS of them)."""
    streams: list[dict] = []
    kwargs = {"logGroupName": source.group}
    if source.stream_prefix:
        kwargs["logStreamNamePrefix"] = source.stream_prefix
    for page in logs.get_paginator("describe_log_streams").paginate(**kwargs):
        streams += page.get("logStreams", [])
    streams.sort(key=lambda s: s.get("lastEventTimestamp") or s.get("creationTime") or 0)
    return [s["logStreamName"] for s in streams[-MAX_STREAMS:]]


def read_events(logs, source: LogSource, start_ms: int) -> list[dict]:
    """Every event of the service's streams at or after ``start_ms``, oldest first."""
    streams = _streams(logs, source)
    if not streams:
        return []
    events: list[dict] = []
    kwargs = {"logGroupName": source.group, "logStreamNames": streams, "startTime": start_ms}
    for page in logs.get_paginator("filter_log_events").paginate(**kwargs):
        events += page.get("events", [])
    events.sort(key=lambda e: (e["timestamp"], e.get("ingestionTime", 0)))
    return events


def format_event(event: dict, source: LogSource) -> str:
    stamp = datetime.datetime.fromtimestamp(event["timestamp"] / 1000, tz=datetime.UTC)
    stream = event.get("logStreamName", "")
    task = stream[len(source.stream_prefix) :] if stream.startswith(source.stream_prefix) else stream
    return f"{stamp.isoformat(timespec='milliseconds')} {task} {event['message'].rstrip()}"


def tail(
    logs,
    source: LogSource,
    *,
    since_seconds: float,
    follow: bool = False,
    interval: float = 1.0,
    follow_seconds: float | None = None,
    now: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[str]:
    """The service's lines from ``since_seconds`` ago, then (with ``follow``) those that arrive."""
    start_ms = int((now() - since_seconds) * 1000)
    seen: dict[str, int] = {}  # event id -> timestamp, for the events at or after start_ms
    deadline = None if follow_seconds is None else now() + follow_seconds
    while True:
        newest = start_ms
        for event in read_events(logs, source, start_ms):
            key = event.get("eventId") or f"{event.get('logStreamName')}/{event['timestamp']}/{event['message']}"
            newest = max(newest, event["timestamp"])
            if key in seen:
                continue
            seen[key] = event["timestamp"]
            yield format_event(event, source)
        if not follow or (deadline is not None and now() >= deadline):
            return
        # Ask again from a little before the newest timestamp seen, for lines another task's
        # stream shipped late; those read again are skipped by id, older ids forgotten.
        start_ms = max(start_ms, newest - LATE_MS)
        seen = {key: stamp for key, stamp in seen.items() if stamp >= start_ms}
        sleep(interval)
