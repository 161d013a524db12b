# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The environment lock as it is stored: an SSM String parameter whose JSON value names the holder.

Written and released by the ``environment_lock`` module; read by it and by ``bluegreen_info`` (which shows
who holds the lock). Reading needs only ``ssm:GetParameter``.
"""

import json
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import Dict
from typing import Optional

from ansible_collections.ecs_production.platform.plugins.module_utils.common import UTC
from ansible_collections.ecs_production.platform.plugins.module_utils.ssm import get_parameter

UNKNOWN_OWNER = "unknown (the lock value was not written by environment_lock)"


class Lock:
    """A lock as found in (or written to) the parameter."""

    def __init__(
        self,
        *,
        raw: str,
        owner: str,
        operation: str,
        acquired_at: datetime,
        expires_at: datetime,
        token: Optional[str],
        host: Optional[str] = None,
        pid: Optional[int] = None,
        started: Optional[str] = None,
    ) -> None:
        self.raw = raw
        self.owner = owner
        self.operation = operation
        self.acquired_at = acquired_at
        self.expires_at = expires_at
        self.token = token
        # The process holding the lock (the ansible-playbook process), when the run recorded it.
        self.host = host
        self.pid = pid
        self.started = started

    def is_stale(self, now: datetime) -> bool:
        return now >= self.expires_at

    def summary(self) -> Dict[str, Any]:
        """The lock without its token: what diff mode shows."""
        summary: Dict[str, Any] = {
            "owner": self.owner,
            "operation": self.operation,
            "acquired_at": isoformat(self.acquired_at),
            "expires_at": isoformat(self.expires_at),
        }
        if self.pid is not None:
            summary.update(host=self.host, pid=self.pid, started=self.started)
        return summary

    def process(self) -> str:
        """The holder's process as a person reads it, for example 'process 4242 on deploy-host'."""
        if self.pid is None:
            return "an unrecorded process"
        return f"process {self.pid} on {self.host or 'an unknown host'}"

    def describe(self, now: datetime) -> Dict[str, Any]:
        """The holder as returned to the caller."""
        return dict(self.summary(), age_seconds=age_seconds(self, now), stale=self.is_stale(now))


# ---- lock values ----


def isoformat(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def parse_time(text: Any) -> Optional[datetime]:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def age_seconds(lock: Lock, now: datetime) -> int:
    return max(0, round((now - lock.acquired_at).total_seconds()))


def human_duration(seconds: float) -> str:
    seconds = round(max(0, seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def parse_lock(parameter: Dict[str, Any], stale_after: int) -> Lock:
    """A lock from the parameter GetParameter returned. A value this module did not write is a lock of an
    unknown owner, stale `stale_after` seconds after the parameter was last modified."""
    raw = parameter.get("Value", "")
    modified = parameter.get("LastModifiedDate")
    modified = modified.astimezone(UTC) if isinstance(modified, datetime) else datetime.now(UTC)
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict) or not isinstance(value.get("token"), str):
        expires_at = modified + timedelta(seconds=stale_after)
        return Lock(raw=raw, owner=UNKNOWN_OWNER, operation="", acquired_at=modified, expires_at=expires_at, token=None)
    acquired_at = parse_time(value.get("acquired_at")) or modified
    expires_at = parse_time(value.get("expires_at")) or acquired_at + timedelta(seconds=stale_after)
    pid = value.get("pid")
    pid = pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None
    host = value.get("host")
    started = value.get("started")
    return Lock(
        raw=raw,
        owner=str(value.get("owner") or "unknown"),
        operation=str(value.get("operation") or ""),
        acquired_at=acquired_at,
        expires_at=expires_at,
        token=value["token"],
        host=host if isinstance(host, str) and host and pid else None,
        pid=pid,
        started=str(started) if started is not None and pid else None,
    )


# ---- reading it ----


def read_lock(client, name: str, stale_after: int) -> Optional[Lock]:
    parameter = get_parameter(client, name)
    return None if parameter is None else parse_lock(parameter, stale_after)
