"""The load balancer's health checks: what ALB does for each target group, on real HTTP.

Every target of the shared :class:`~localcloud.dataplane.registry.TargetRegistry` that is not
draining is checked on its own schedule with its target group's settings as the AWS API describes
them: ``GET <HealthCheckPath>`` on the target's address (or ``HealthCheckPort``), a timeout of
``HealthCheckTimeoutSeconds``, a check every ``HealthCheckIntervalSeconds`` (start to start), and the
``Matcher`` HTTP codes (``"200"``, ``"200,204"``, ``"200-299"`` or a mix). Each outcome goes to
``registry.record_check`` with the group's thresholds; the registry turns them into ALB's states.

As on ALB, a target is first checked as soon as it appears (the checker looks for new targets every
0.1 s), with ``User-Agent: ELB-HealthChecker/2.0`` on a connection of its own. The reasons recorded
are ALB's: ``Target.ResponseCodeMismatch``, ``Target.Timeout``, ``Target.FailedHealthChecks``.
A target whose group the AWS API does not (or no longer) describe keeps its state, unchecked.

``time_scale`` multiplies every interval and timeout: 1.0 is AWS's pace; the local cloud may run
checks faster (e.g. 0.2 turns a 15 s interval into 3 s) without rewriting the target groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from localcloud.dataplane.registry import Health, TargetKey, TargetRegistry

LOG = logging.getLogger(__name__)

USER_AGENT = "ELB-HealthChecker/2.0"
REASON_MISMATCH = "Target.ResponseCodeMismatch"
REASON_TIMEOUT = "Target.Timeout"
REASON_FAILED = "Target.FailedHealthChecks"
DISCOVERY_INTERVAL = 0.1  # how often the checker looks for new targets in the registry
MIN_INTERVAL = 0.05  # seconds: a floor under a scaled interval, so that a check never spins

_MATCHER_PART = re.compile(r"^\s*(\d{3})\s*(?:-\s*(\d{3})\s*)?$")


def parse_matcher(spec: str) -> Callable[[int], bool]:
    """The status codes a matcher accepts: ``"200"``, ``"200,204"``, ``"200-299"``, or a mix such as
    ``"200,300-399"``. Raises ValueError on anything else."""
    ranges: list[tuple[int, int]] = []
    for part in str(spec).split(","):
        match = _MATCHER_PART.match(part)
        if not match:
            raise ValueError(f"not a health check matcher: {spec!r}")
        low = int(match.group(1))
        high = int(match.group(2) or low)
        if low > high:
            raise ValueError(f"not a health check matcher: {spec!r}")
        ranges.append((low, high))
    return lambda status: any(low <= status <= high for low, high in ranges)


@dataclasses.dataclass(frozen=True)
class HealthCheckSettings:
    """A target group's health check, as DescribeTargetGroups gives it (AWS's defaults for HTTP)."""

    enabled: bool = True
    protocol: str = "HTTP"
    port: str = "traffic-port"
    path: str = "/"
    interval: float = 30.0
    timeout: float = 5.0
    healthy_threshold: int = 5
    unhealthy_threshold: int = 2
    matcher: str = "200"

    @classmethod
    def from_target_group(cls, group: Mapping[str, Any]) -> HealthCheckSettings:
        defaults = cls()
        return cls(
            enabled=bool(group.get("HealthCheckEnabled", True)),
            protocol=str(group.get("HealthCheckProtocol") or defaults.protocol).upper(),
            port=str(group.get("HealthCheckPort") or defaults.port),
            path=str(group.get("HealthCheckPath") or defaults.path),
            interval=float(group.get("HealthCheckIntervalSeconds") or defaults.interval),
            timeout=float(group.get("HealthCheckTimeoutSeconds") or defaults.timeout),
            healthy_threshold=int(group.get("HealthyThresholdCount") or defaults.healthy_threshold),
            unhealthy_threshold=int(group.get("UnhealthyThresholdCount") or defaults.unhealthy_threshold),
            matcher=str((group.get("Matcher") or {}).get("HttpCode") or defaults.matcher),
        )

    def summary(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "protocol": self.protocol,
            "port": self.port,
            "path": self.path,
            "interval_seconds": self.interval,
            "timeout_seconds": self.timeout,
            "healthy_threshold": self.healthy_threshold,
            "unhealthy_threshold": self.unhealthy_threshold,
            "matcher": self.matcher,
        }


class HealthChecker:
    """Checks every non-draining registry target of the configured target groups. Runs in the
    load balancer's event loop: ``configure`` and ``start``/``close`` are called from there."""

    def __init__(self, registry: TargetRegistry, *, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self._registry = registry
        self._time_scale = time_scale
        self._groups: dict[str, HealthCheckSettings] = {}
        self._matchers: dict[str, Callable[[int], bool]] = {}
        self._watchers: dict[TargetKey, asyncio.Task] = {}
        self._session: aiohttp.ClientSession | None = None
        self._discovery: asyncio.Task | None = None

    def configure(self, groups: Mapping[str, HealthCheckSettings]) -> None:
        """The target groups (ARN -> settings) as the AWS API describes them now."""
        matchers = {}
        for arn, settings in groups.items():
            try:
                matchers[arn] = parse_matcher(settings.matcher)
            except ValueError:
                LOG.warning("target group %s: unusable matcher %r, using 200", arn, settings.matcher)
                matchers[arn] = parse_matcher("200")
        self._groups, self._matchers = dict(groups), matchers

    async def start(self) -> None:
        # A connection per check, as ALB does: a target that stopped accepting is seen at once.
        connector = aiohttp.TCPConnector(force_close=True, limit=0)
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("Accept", "Accept-Encoding"),
            headers={"User-Agent": USER_AGENT},
        )
        self._discovery = asyncio.get_running_loop().create_task(self._discover())

    async def close(self) -> None:
        tasks = [t for t in (self._discovery, *self._watchers.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._watchers.clear()
        if self._session is not None:
            await self._session.close()

    async def _discover(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                wanted = {t.key for t in self._registry.targets() if t.health is not Health.DRAINING}
                for key, task in list(self._watchers.items()):
                    if key not in wanted or task.done():
                        task.cancel()
                        del self._watchers[key]
                for key in wanted - self._watchers.keys():
                    self._watchers[key] = loop.create_task(self._watch(key))
            except Exception:  # a bug here must not end health checking for good
                LOG.exception("health check discovery failed")
            await asyncio.sleep(DISCOVERY_INTERVAL)

    async def _watch(self, key: TargetKey) -> None:
        group_arn, ip, port = key
        loop = asyncio.get_running_loop()
        while True:
            settings = self._groups.get(group_arn)
            if settings is None:  # not (yet) described by the API: nothing to check against
                await asyncio.sleep(DISCOVERY_INTERVAL)
                continue
            started = loop.time()
            if settings.enabled:
                ok, reason = await self.check(ip, port, settings, self._matchers.get(group_arn))
            else:
                ok, reason = True, ""
            state = self._registry.record_check(
                group_arn,
                ip,
                port,
                ok=ok,
                reason=reason,
                healthy_threshold=settings.healthy_threshold,
                unhealthy_threshold=settings.unhealthy_threshold,
            )
            if state is None or state is Health.DRAINING:
                return
            interval = max(MIN_INTERVAL, settings.interval * self._time_scale)
            await asyncio.sleep(max(0.0, started + interval - loop.time()))

    async def check(
        self, ip: str, port: int, settings: HealthCheckSettings, matcher: Callable[[int], bool] | None = None
    ) -> tuple[bool, str]:
        """One health check: (passed, ALB's reason code when it did not)."""
        assert self._session is not None, "start() first"
        matcher = matcher or parse_matcher(settings.matcher)
        check_port = port if settings.port == "traffic-port" else int(settings.port)
        scheme = "https" if settings.protocol == "HTTPS" else "http"
        path = settings.path if settings.path.startswith("/") else "/" + settings.path
        url = f"{scheme}://{ip}:{check_port}{path}"
        timeout = aiohttp.ClientTimeout(total=max(MIN_INTERVAL, settings.timeout * self._time_scale))
        try:
            # ALB does not verify a target's certificate either.
            async with self._session.get(url, timeout=timeout, allow_redirects=False, ssl=False) as response:
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    await response.content.read(4096)
                return (True, "") if matcher(response.status) else (False, REASON_MISMATCH)
        except TimeoutError:
            return False, REASON_TIMEOUT
        except (aiohttp.ClientError, OSError, ValueError):
            return False, REASON_FAILED
