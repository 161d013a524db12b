"""The load balancer of the local cloud: every ALB listener of the AWS API becomes a local port.

:class:`LoadBalancerPlane` reads the load balancers, listeners, rules and target groups from the
local AWS API every ``poll_interval`` (0.25 s by default, so a ``modify_listener`` takes effect
well within a second) and serves each listener on a loopback port, in an event loop of its own
thread (uvloop's when installed, else asyncio's), with aiohttp as the HTTP server and client.

Why aiohttp rather than HAProxy or Envoy driven from the API state: the routing decisions need the
shared :class:`~localcloud.dataplane.registry.TargetRegistry` on every request (which targets are
routable, ALB's fail-open, draining, in-flight counts for least outstanding requests), and ALB's own
behaviours (redirect templates with the local port, fixed responses, rule conditions, weights that
change at runtime, health states that the API sync mirrors) would each need translating into the
other proxy's configuration or runtime API and kept in step with the registry (HAProxy answers 503
when every server is down, so even ALB's fail-open would need a mirrored set of backup servers),
and either proxy is one more binary for every machine and CI to install. The price is
throughput: ``bench/localcloud.py`` (2 shared CPUs, 16 connections, GET /health on a tiny aiohttp
task) measured about 4,000 req/s through this load balancer (p50 3.4 ms, p99 14 ms, HTTPS or HTTP
alike) against 22,000 straight to the task and 15,000 through HAProxy 2.6; that is still more than
twice what one items-api task serves (``bench/app.py``: about 1,500 req/s for GET /health with 2
gunicorn workers), so the load balancer is not what limits the local cloud. A listener change
reaches the traffic in 0.2 s (median; at most poll_interval plus one poll).

Local ports
    A listener on port P gets the local port ``port_map[P]`` (default ``{80: 8080, 443: 8443}``);
    a port not in the map keeps its number when it is 1024 or more (e.g. a test listener on 9443
    gets 9443) and gets P + 8000 below 1024 (no privileged ports). When that port is taken
    (by another listener, e.g. a second load balancer's 443, or by another program) the listener
    gets the next free port above it, trying 100, then any free port. Listeners are placed in the
    order of their load balancer's creation time (then name, then listener port), so the first load
    balancer keeps 8080/8443 and a second one gets 8081/8444. A listener keeps its local port for
    as long as it exists; ``status()`` shows the mapping.

HTTPS listeners
    Served with one local self-signed certificate (``tls_cert``, or one made at start in a
    temporary directory; see :mod:`localcloud.dataplane.tls`), TLS 1.2+ (TLS 1.3 only for
    ``...TLS13-1-3...`` policies). HTTP/1.1 only: no HTTP/2, no WebSocket upgrade.

Routing
    The listener's rules by ascending priority (conditions ``path-pattern``, ``host-header``,
    ``http-header``, ``http-request-method``, ``query-string``, ``source-ip``; the values of one
    condition are alternatives, all conditions of a rule must match; an unknown condition never
    matches), then the default action. Of a rule's actions the terminal one counts (authenticate
    actions are not emulated).

    ``forward``: a target group by ``ForwardConfig`` weight (smooth weighted round-robin, so at
    90/10 exactly 1 request in 10 goes to the minority), then a target among
    ``registry.routable(group)`` (healthy ones, or all unhealthy ones when none is healthy: ALB's
    fail-open) by round-robin, or by least outstanding requests when the group's
    ``load_balancing.algorithm.type`` attribute says so. 503 when the chosen group has no routable
    target (or every weight is 0), 502 when the target's connection fails or breaks before the
    response, 504 when it does not connect within 10 s or is silent for longer than the idle
    timeout (the load balancer's ``idle_timeout.timeout_seconds``, 60 s by default, or
    ``idle_timeout`` given here). The request goes on with its Host header, ``X-Forwarded-For``
    (the client's address appended), ``X-Forwarded-Proto`` and ``X-Forwarded-Port`` (the
    *listener's* protocol and port, e.g. https and 443, not the local port) and an
    ``X-Amzn-Trace-Id``. Bodies stream both ways; clients and targets get keep-alive connections.

    ``redirect``: ALB's ``#{protocol}``, ``#{host}``, ``#{port}``, ``#{path}``, ``#{query}``
    templates, with one local translation: the port of the Location is the local port of the
    listener that serves that port on the same load balancer (else ``port_map``'s), so the
    platform's 80 -> 443 redirect answers ``301 https://host:8443/...`` locally.

    ``fixed-response``: the status, content type and body as configured.

Draining
    A draining target (the ECS runner called ``registry.begin_draining``) gets no new request,
    while the ones in flight finish; the runner decides when to stop the task (``status()`` gives
    each group's ``deregistration_delay``). Health checks: :mod:`localcloud.dataplane.health`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import errno
import functools
import ipaddress
import logging
import os
import random
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from localcloud.dataplane import tls
from localcloud.dataplane.health import HealthChecker, HealthCheckSettings
from localcloud.dataplane.registry import Target, TargetRegistry

LOG = logging.getLogger(__name__)

DEFAULT_PORT_MAP = {80: 8080, 443: 8443}
UNMAPPED_PORT_OFFSET = 8000  # for listener ports below 1024 that port_map does not name
PORT_SEARCH = 100
DEFAULT_IDLE_TIMEOUT = 60.0  # ALB's idle_timeout.timeout_seconds default
CONNECT_TIMEOUT = 10.0  # ALB gives up connecting to a target after 10 s (HTTP 504)
ATTRIBUTES_REFRESH = 2.0  # seconds between reads of target group and load balancer attributes
START_WAIT = 5.0  # start() waits this long at most for the first read of the API
UPSTREAM_KEEPALIVE = 15.0  # idle connections to targets are kept this long (less than gunicorn's)
LB_SERVER = "awselb/2.0"
MAX_HEADER_LINE = 16384  # ALB takes a 16 KB request line and 16 KB header lines

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
REASONS = {
    400: "Bad Request",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}


# ---- the state the AWS API describes, parsed once per poll ---------------------------------------


@dataclasses.dataclass(frozen=True)
class Forward:
    groups: tuple[tuple[str, int], ...]  # (target group ARN, weight)


@dataclasses.dataclass(frozen=True)
class Redirect:
    protocol: str
    port: str
    host: str
    path: str
    query: str
    status_code: str


@dataclasses.dataclass(frozen=True)
class FixedResponse:
    status_code: str
    content_type: str
    body: str


@dataclasses.dataclass(frozen=True)
class Unsupported:
    kind: str


Action = Forward | Redirect | FixedResponse | Unsupported


@dataclasses.dataclass(frozen=True)
class RequestFacts:
    """What rule conditions look at."""

    method: str
    path: str
    host: str  # lower case, without the port
    headers: Mapping[str, str]
    query: tuple[tuple[str, str], ...]
    client_ip: str


@dataclasses.dataclass(frozen=True)
class Condition:
    field: str
    values: tuple[Any, ...]
    matches: Callable[[RequestFacts], bool] = dataclasses.field(compare=False, repr=False)


@dataclasses.dataclass(frozen=True)
class Rule:
    arn: str
    priority: int
    conditions: tuple[Condition, ...]
    action: Action


@dataclasses.dataclass(frozen=True)
class ListenerConfig:
    arn: str
    load_balancer_arn: str
    load_balancer_name: str
    load_balancer_created: str
    dns_name: str
    port: int
    protocol: str
    ssl_policy: str | None
    rules: tuple[Rule, ...]  # without the default rule, by ascending priority
    default_action: Action
    default_rule_arn: str = ""


@dataclasses.dataclass(frozen=True)
class TargetGroupConfig:
    arn: str
    name: str
    protocol: str
    port: int
    health: HealthCheckSettings
    deregistration_delay: float = 300.0
    algorithm: str = "round_robin"


@dataclasses.dataclass(frozen=True)
class Snapshot:
    listeners: Mapping[str, ListenerConfig]
    target_groups: Mapping[str, TargetGroupConfig]
    idle_timeouts: Mapping[str, float]  # load balancer ARN -> seconds
    attributes_read: Mapping[str, float]  # ARN -> monotonic time its attributes were last read


EMPTY = Snapshot({}, {}, {}, {})


def _glob_any(patterns: Iterable[str], *, case_sensitive: bool) -> Callable[[str], bool]:
    compiled = []
    for pattern in patterns:
        escaped = "".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in str(pattern))
        compiled.append(re.compile(escaped, 0 if case_sensitive else re.IGNORECASE))
    return lambda value: any(regex.fullmatch(value) for regex in compiled)


def _values(condition: Mapping[str, Any], config_key: str) -> list[Any]:
    return list((condition.get(config_key) or {}).get("Values") or condition.get("Values") or [])


def _path_pattern(condition: Mapping[str, Any]) -> tuple[tuple, Callable[[RequestFacts], bool]]:
    values = _values(condition, "PathPatternConfig")
    match = _glob_any(values, case_sensitive=True)
    return tuple(values), lambda facts: match(facts.path)


def _host_header(condition: Mapping[str, Any]) -> tuple[tuple, Callable[[RequestFacts], bool]]:
    values = _values(condition, "HostHeaderConfig")
    match = _glob_any(values, case_sensitive=False)
    return tuple(values), lambda facts: match(facts.host)


def _request_method(condition: Mapping[str, Any]) -> tuple[tuple, Callable[[RequestFacts], bool]]:
    values = _values(condition, "HttpRequestMethodConfig")
    methods = frozenset(values)
    return tuple(values), lambda facts: facts.method in methods


def _http_header(condition: Mapping[str, Any]) -> tuple[tuple, Callable[[RequestFacts], bool]]:
    config = condition.get("HttpHeaderConfig") or {}
    name = str(config.get("HttpHeaderName", ""))
    values = list(config.get("Values") or [])
    match = _glob_any(values, case_sensitive=False)
    return (name, *values), lambda facts: any(match(value) for value in facts.headers.getall(name, ()))


def _query_string(condition: Mapping[str, Any]) -> tuple[tuple, Callable[[RequestFacts], bool]]:
    pairs = list((condition.get("QueryStringConfig") or {}).get("Values") or [])
    checks = [
        (
            _glob_any([pair["Key"]], case_sensitive=False) if pair.get("Key") else None,
            _glob_any([pair.get("Value", "")], case_sensitive=False),
        )
        for pair in pairs
    ]

    def matches(facts: RequestFacts) -> bool:
        return any(
            (key_match is None or key_match(key)) and value_match(value)
            for key, value in facts.query
            for key_match, value_match in checks
        )

    return tuple(f"{p.get('Key', '')}={p.get('Value', '')}" for p in pairs), matches


def _source_ip(condition: Mapping[str, Any]) -> tuple[tuple, Callable[[RequestFacts], bool]]:
    values = _values(condition, "SourceIpConfig")
    networks = [ipaddress.ip_network(value, strict=False) for value in values]

    def matches(facts: RequestFacts) -> bool:
        try:
            address = ipaddress.ip_address(facts.client_ip)
        except ValueError:
            return False
        return any(address in network for network in networks)

    return tuple(values), matches


CONDITIONS: dict[str, Callable[[Mapping[str, Any]], tuple[tuple, Callable[[RequestFacts], bool]]]] = {
    "path-pattern": _path_pattern,
    "host-header": _host_header,
    "http-request-method": _request_method,
    "http-header": _http_header,
    "query-string": _query_string,
    "source-ip": _source_ip,
}


def _never(_facts: RequestFacts) -> bool:
    return False


def parse_condition(condition: Mapping[str, Any]) -> Condition:
    """A rule condition as DescribeRules gives it (its ``...Config``, or the legacy ``Values``)."""
    field = str(condition.get("Field", ""))
    build = CONDITIONS.get(field)
    if build is None:
        LOG.warning("rule condition %r is not emulated: the rule never matches", field)
        return Condition(field or "unknown", (), _never)
    values, matches = build(condition)
    return Condition(field, values, matches)


def parse_actions(actions: Iterable[Mapping[str, Any]]) -> Action:
    """The terminal action of a listener's or rule's actions (authenticate-* are not emulated)."""
    ordered = sorted(actions, key=lambda action: action.get("Order", 0))
    for action in reversed(ordered):
        kind = action.get("Type")
        if kind == "forward":
            groups = (action.get("ForwardConfig") or {}).get("TargetGroups") or []
            if not groups and action.get("TargetGroupArn"):
                groups = [{"TargetGroupArn": action["TargetGroupArn"], "Weight": 1}]
            return Forward(
                tuple(
                    (group["TargetGroupArn"], int(group["Weight"] if group.get("Weight") is not None else 1))
                    for group in groups
                )
            )
        if kind == "redirect":
            config = action.get("RedirectConfig") or {}
            return Redirect(
                protocol=str(config.get("Protocol") or "#{protocol}"),
                port=str(config.get("Port") or "#{port}"),
                host=str(config.get("Host") or "#{host}"),
                path=str(config.get("Path") or "/#{path}"),
                query=str(config.get("Query") if config.get("Query") is not None else "#{query}"),
                status_code=str(config.get("StatusCode") or "HTTP_301"),
            )
        if kind == "fixed-response":
            config = action.get("FixedResponseConfig") or {}
            return FixedResponse(
                status_code=str(config.get("StatusCode") or "503"),
                content_type=str(config.get("ContentType") or "text/plain"),
                body=str(config.get("MessageBody") or ""),
            )
    return Unsupported(",".join(str(a.get("Type")) for a in ordered) or "none")


def parse_listener(
    load_balancer: Mapping[str, Any], listener: Mapping[str, Any], rules: list[Mapping]
) -> ListenerConfig:
    ordinary, default_action, default_rule_arn = [], parse_actions(listener.get("DefaultActions") or []), ""
    for rule in rules:
        if rule.get("IsDefault") or rule.get("Priority") == "default":
            default_rule_arn = rule.get("RuleArn", "")
            continue
        ordinary.append(
            Rule(
                arn=rule.get("RuleArn", ""),
                priority=int(rule["Priority"]),
                conditions=tuple(parse_condition(c) for c in rule.get("Conditions") or []),
                action=parse_actions(rule.get("Actions") or []),
            )
        )
    ordinary.sort(key=lambda rule: rule.priority)
    return ListenerConfig(
        arn=listener["ListenerArn"],
        load_balancer_arn=load_balancer["LoadBalancerArn"],
        load_balancer_name=load_balancer.get("LoadBalancerName", ""),
        load_balancer_created=str(load_balancer.get("CreatedTime", "")),
        dns_name=load_balancer.get("DNSName", ""),
        port=int(listener["Port"]),
        protocol=str(listener.get("Protocol", "HTTP")).upper(),
        ssl_policy=listener.get("SslPolicy"),
        rules=tuple(ordinary),
        default_action=default_action,
        default_rule_arn=default_rule_arn,
    )


def redirect_location(
    redirect: Redirect,
    *,
    protocol: str,
    host: str,
    port: int,
    raw_path: str,
    raw_query: str,
    local_port_for: Callable[[int], int],
) -> str:
    """The Location of an ALB redirect, its port translated to the local one (see the module doc)."""
    values = {
        "#{protocol}": protocol.lower(),
        "#{host}": host,
        "#{port}": str(port),
        "#{path}": raw_path[1:] if raw_path.startswith("/") else raw_path,
        "#{query}": raw_query,
    }

    def fill(template: str) -> str:
        for placeholder, value in values.items():
            template = template.replace(placeholder, value)
        return template

    scheme = fill(redirect.protocol).lower()
    target_port = int(fill(redirect.port))
    local = local_port_for(target_port)
    path = fill(redirect.path)
    path = path if path.startswith("/") else "/" + path
    query = fill(redirect.query)
    default_port = {"http": 80, "https": 443}.get(scheme)
    authority = fill(redirect.host) if local == default_port else f"{fill(redirect.host)}:{local}"
    return f"{scheme}://{authority}{path}" + (f"?{query}" if query else "")


def summarize_action(action: Action, names: Mapping[str, str], local_port_for: Callable[[int], int]) -> dict:
    """An action for status(): forward weights by target group name, redirect and its local port."""
    if isinstance(action, Forward):
        groups = [{"name": names.get(arn, _name_from_arn(arn)), "arn": arn, "weight": w} for arn, w in action.groups]
        return {"type": "forward", "weights": {g["name"]: g["weight"] for g in groups}, "target_groups": groups}
    if isinstance(action, Redirect):
        summary = {
            "type": "redirect",
            "status_code": action.status_code,
            "protocol": action.protocol,
            "port": action.port,
            "host": action.host,
            "path": action.path,
            "query": action.query,
        }
        if action.port.isdigit():
            summary["local_port"] = local_port_for(int(action.port))
        return summary
    if isinstance(action, FixedResponse):
        return {
            "type": "fixed-response",
            "status_code": action.status_code,
            "content_type": action.content_type,
            "message_body": action.body,
        }
    return {"type": "unsupported", "actions": action.kind}


def _name_from_arn(arn: str) -> str:
    parts = arn.rsplit(":", 1)[-1].split("/")
    return parts[1] if len(parts) >= 3 else arn


class SmoothWeighted:
    """Nginx's smooth weighted round-robin: every ``sum(weights)`` picks hold each choice exactly
    ``weight`` times, spread out rather than in runs."""

    def __init__(self, weights: Iterable[tuple[str, int]]) -> None:
        self._weights = [(choice, weight) for choice, weight in weights if weight > 0]
        self._total = sum(weight for _, weight in self._weights)
        self._current = [0] * len(self._weights)

    def pick(self) -> str | None:
        if not self._weights:
            return None
        best = 0
        for index, (_, weight) in enumerate(self._weights):
            self._current[index] += weight
            if self._current[index] > self._current[best]:
                best = index
        self._current[best] -= self._total
        return self._weights[best][0]


# ---- reading the AWS API ---------------------------------------------------------------------------


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _all_pages(call: Callable[..., dict], key: str, **params) -> list[dict]:
    items: list[dict] = []
    marker = None
    for _ in range(1000):  # bounded: 1000 pages is far more than any local account holds
        page = call(**params, **({"Marker": marker} if marker else {}))
        items.extend(page.get(key) or [])
        marker = page.get("NextMarker")
        if not marker:
            break
    return items


def read_api(
    client: Any, previous: Snapshot, *, now: float, attributes_refresh: float = ATTRIBUTES_REFRESH
) -> Snapshot:
    """The listeners and target groups as the API describes them now (blocking: boto3 calls).
    Attributes are re-read every ``attributes_refresh`` seconds, and at once for new resources."""
    attributes_read: dict[str, float] = {}

    def stale(arn: str) -> bool:
        return arn not in previous.attributes_read or now - previous.attributes_read[arn] >= attributes_refresh

    listeners, idle_timeouts = _read_listeners(client, previous, stale, attributes_read, now)
    groups = _read_target_groups(client, previous, stale, attributes_read, now)
    return Snapshot(listeners, groups, idle_timeouts, attributes_read)


def _read_listeners(client, previous: Snapshot, stale, attributes_read: dict, now: float):
    listeners: dict[str, ListenerConfig] = {}
    idle_timeouts: dict[str, float] = {}
    for lb in _all_pages(client.describe_load_balancers, "LoadBalancers"):
        if lb.get("Type", "application") != "application":
            continue
        lb_arn = lb["LoadBalancerArn"]
        try:
            found = _all_pages(client.describe_listeners, "Listeners", LoadBalancerArn=lb_arn)
            if stale(lb_arn) or lb_arn not in previous.idle_timeouts:
                attributes = client.describe_load_balancer_attributes(LoadBalancerArn=lb_arn)["Attributes"]
                values = {a["Key"]: a.get("Value") for a in attributes}
                idle_timeouts[lb_arn] = float(values.get("idle_timeout.timeout_seconds") or DEFAULT_IDLE_TIMEOUT)
                attributes_read[lb_arn] = now
            else:
                idle_timeouts[lb_arn] = previous.idle_timeouts[lb_arn]
                attributes_read[lb_arn] = previous.attributes_read[lb_arn]
        except Exception as exc:
            if _error_code(exc) == "LoadBalancerNotFound":  # deleted while we read
                continue
            raise
        for listener in found:
            try:
                rules = _all_pages(client.describe_rules, "Rules", ListenerArn=listener["ListenerArn"])
            except Exception as exc:
                if _error_code(exc) == "ListenerNotFound":
                    continue
                raise
            config = parse_listener(lb, listener, rules)
            listeners[config.arn] = config
    return listeners, idle_timeouts


def _read_target_groups(client, previous: Snapshot, stale, attributes_read: dict, now: float):
    groups: dict[str, TargetGroupConfig] = {}
    for group in _all_pages(client.describe_target_groups, "TargetGroups"):
        arn = group["TargetGroupArn"]
        known = previous.target_groups.get(arn)
        delay, algorithm = (known.deregistration_delay, known.algorithm) if known else (300.0, "round_robin")
        if known is None or stale(arn):
            try:
                attributes = client.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
            except Exception as exc:
                if _error_code(exc) == "TargetGroupNotFound":
                    continue
                raise
            values = {a["Key"]: a.get("Value") for a in attributes}
            delay = float(values.get("deregistration_delay.timeout_seconds") or 300)
            algorithm = str(values.get("load_balancing.algorithm.type") or "round_robin")
            attributes_read[arn] = now
        else:
            attributes_read[arn] = previous.attributes_read[arn]
        groups[arn] = TargetGroupConfig(
            arn=arn,
            name=group.get("TargetGroupName", _name_from_arn(arn)),
            protocol=str(group.get("Protocol", "HTTP")).upper(),
            port=int(group.get("Port") or 0),
            health=HealthCheckSettings.from_target_group(group),
            deregistration_delay=delay,
            algorithm=algorithm,
        )
    return groups


# ---- serving ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Site:
    listener_arn: str
    protocol: str
    ssl_policy: str | None
    local_port: int | None
    runner: web.ServerRunner | None = None
    site: web.SockSite | None = None
    error: str | None = None


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when it is installed (it is in requirements.txt; about twice the
    throughput on this workload, see bench/localcloud.py), else asyncio's. LOCALCLOUD_LB_UVLOOP=0
    chooses asyncio's."""
    if os.environ.get("LOCALCLOUD_LB_UVLOOP", "1") != "0":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class _ProxiedResponse(web.StreamResponse):
    """A streamed response whose headers leave with its first body bytes: one send, not two, for
    the usual small response (aiohttp's own Response does the same)."""

    _send_headers_immediately = False


def _lb_error(status: int) -> web.Response:
    reason = REASONS.get(status, "Error")
    title = f"{status} {reason}"
    body = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
    )
    return web.Response(
        status=status, reason=reason, text=body, content_type="text/html", headers={"Server": LB_SERVER}
    )


def _host_without_port(host: str) -> str:
    host = host.strip()
    if host.startswith("["):  # [::1]:8443
        return host[: host.find("]") + 1].lower() if "]" in host else host.lower()
    return host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()


class LoadBalancerPlane:
    """Every ALB listener of the local AWS API served on a loopback port (see the module doc).

    ``elbv2_factory()`` returns a boto3 elbv2 client for the local AWS API; it is called once, in
    the thread that polls. ``port_map`` maps listener ports to local ports (default
    ``{80: 8080, 443: 8443}``); ``host`` is the loopback address every port listens on;
    ``tls_cert`` is ``(certfile, keyfile)`` for HTTPS listeners (default: a self-signed one made at
    start). Beyond the orchestrator's interface: ``idle_timeout`` overrides the load balancers'
    idle timeout (504 after that many silent seconds from a target), ``health_time_scale``
    multiplies every health check interval and timeout (1.0: the target groups' own), and
    ``shutdown_grace`` is how long a closing port lets in-flight requests finish.
    """

    def __init__(
        self,
        elbv2_factory: Callable[[], Any],
        registry: TargetRegistry,
        *,
        port_map: dict[int, int] | None = None,
        host: str = "127.0.0.1",
        tls_cert: tuple[str, str] | None = None,
        poll_interval: float = 0.25,
        idle_timeout: float | None = None,
        health_time_scale: float = 1.0,
        shutdown_grace: float = 2.0,
    ) -> None:
        if not (host.startswith("127.") or host in ("localhost", "::1")):
            raise ValueError(f"the local load balancer listens on loopback addresses only, not {host!r}")
        self._factory = elbv2_factory
        self._registry = registry
        self._port_map = dict(DEFAULT_PORT_MAP if port_map is None else port_map)
        self._host = host
        self._tls_cert = tls_cert
        self._poll_interval = max(0.05, float(poll_interval))
        self._idle_timeout = idle_timeout
        self._health_time_scale = health_time_scale
        self._shutdown_grace = shutdown_grace

        self._snapshot = EMPTY
        self._sites: dict[str, _Site] = {}  # mutated in the loop thread; status() reads a copy
        self._sites_lock = threading.Lock()
        self._poll_state: dict[str, Any] = {"ok": None, "error": None, "at": None}
        self._pickers: dict[tuple, SmoothWeighted] = {}
        self._round_robin: dict[str, int] = {}
        self._closing: set[asyncio.Task] = set()

        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._stop_requested = False
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._tempdir: str | None = None
        self._certfile: str | None = None
        self._keyfile: str | None = None
        self._ssl_contexts: dict[str | None, Any] = {}
        self._session: aiohttp.ClientSession | None = None
        self._health: HealthChecker | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._loop_factory: Callable[[], asyncio.AbstractEventLoop] = new_event_loop

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the event loop thread; return after the first read of the API (at most ~5 s:
        when the API does not answer yet, the ports open once it does)."""
        if self._thread is not None:
            raise RuntimeError("LoadBalancerPlane.start() was called already")
        if self._tls_cert is None:
            self._tempdir = tempfile.mkdtemp(prefix="localcloud-lb-")
            self._certfile, self._keyfile = tls.self_signed(self._tempdir)
        else:
            self._certfile, self._keyfile = self._tls_cert
        self._thread = threading.Thread(target=self._run, name="localcloud-lb", daemon=True)
        self._thread.start()
        self._ready.wait(START_WAIT + 10)
        if self._startup_error is not None:
            self.stop()
            raise RuntimeError("the load balancer did not start") from self._startup_error

    def stop(self) -> None:
        """Close every local port (in-flight requests get ``shutdown_grace`` seconds to finish, then
        are aborted), stop health checking, and join the thread. Idempotent."""
        self._stop_requested = True
        thread, loop = self._thread, self._loop
        if thread is not None and thread.is_alive():
            if loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop closed in between
                    loop.call_soon_threadsafe(self._request_stop)
            thread.join(timeout=self._shutdown_grace + 30)
            if thread.is_alive():
                LOG.error("the load balancer thread did not stop within %.0f s", self._shutdown_grace + 30)
        if self._executor is not None:  # the poll thread ends after its current API call
            self._executor.shutdown(wait=True, cancel_futures=True)
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None

    def _request_stop(self) -> None:
        self._stop_requested = True
        if self._stop_event is not None:
            self._stop_event.set()

    def _run(self) -> None:
        loop = self._loop_factory()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # reported by start(); the thread must not die silently
            if not self._ready.is_set():
                self._startup_error = exc
            else:
                LOG.exception("the load balancer stopped on an error")
        finally:
            self._ready.set()
            with contextlib.suppress(Exception):
                pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
                for task in pending:  # e.g. a connection handler that outlived the grace
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _main(self) -> None:
        self._stop_event = asyncio.Event()
        if self._stop_requested:  # stop() came before the loop was up
            self._stop_event.set()
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="localcloud-lb-poll")
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=UPSTREAM_KEEPALIVE, use_dns_cache=False),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )
        self._health = HealthChecker(self._registry, time_scale=self._health_time_scale)
        await self._health.start()
        first_read = asyncio.Event()
        poller = asyncio.get_running_loop().create_task(self._poll_forever(first_read))
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(first_read.wait(), START_WAIT)
            self._ready.set()
            await self._stop_event.wait()
        finally:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
            await self._shutdown()

    async def _shutdown(self) -> None:
        with self._sites_lock:
            sites = list(self._sites.values())
            self._sites = {}
        for site in sites:  # stop accepting at once, everywhere
            if site.site is not None:
                with contextlib.suppress(Exception):
                    await site.site.stop()
        await asyncio.gather(*(self._drain(site) for site in sites), *self._closing, return_exceptions=True)
        if self._health is not None:
            await self._health.close()
        if self._session is not None:
            await self._session.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    # -- keeping up with the API ------------------------------------------------------------------

    async def _poll_forever(self, first_read: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        client = None
        while True:
            started = loop.time()
            try:
                if client is None:
                    client = await loop.run_in_executor(self._executor, self._factory)
                snapshot = await loop.run_in_executor(
                    self._executor, functools.partial(read_api, client, self._snapshot, now=time.monotonic())
                )
                await self._apply(snapshot)
                self._poll_state = {"ok": True, "error": None, "at": time.time()}
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}"
                if self._poll_state.get("error") != message:
                    LOG.warning("reading the load balancers from the AWS API failed: %s", message)
                self._poll_state = {"ok": False, "error": message, "at": time.time()}
            first_read.set()
            await asyncio.sleep(max(0.0, started + self._poll_interval - loop.time()))

    async def _apply(self, snapshot: Snapshot) -> None:
        previous, self._snapshot = self._snapshot, snapshot
        assert self._health is not None
        self._health.configure({arn: group.health for arn, group in snapshot.target_groups.items()})
        if previous.listeners != snapshot.listeners:
            self._pickers.clear()

        with self._sites_lock:
            sites = dict(self._sites)
        for arn in [arn for arn in sites if arn not in snapshot.listeners]:
            await self._close_site(sites.pop(arn), graceful=True)
        ordered = sorted(
            snapshot.listeners.values(),
            key=lambda listener: (listener.load_balancer_created, listener.load_balancer_name, listener.port),
        )
        for listener in ordered:
            site = sites.get(listener.arn)
            if site is not None and (site.protocol, site.ssl_policy) != (listener.protocol, listener.ssl_policy):
                # HTTP <-> HTTPS or another TLS policy: same local port, served anew.
                await self._close_site(site, graceful=True)
                sites[listener.arn] = await self._open_site(listener, sites, site.local_port)
            elif site is None or (site.site is None and site.error):
                sites[listener.arn] = await self._open_site(listener, sites, site.local_port if site else None)
        with self._sites_lock:
            self._sites = sites

    def _bind(self, listener: ListenerConfig, sites: Mapping[str, _Site], keep: int | None) -> socket.socket:
        taken = {site.local_port for site in sites.values() if site.listener_arn != listener.arn}
        if keep is not None:
            candidates = [keep]
        else:
            mapped = self._port_map.get(listener.port)
            if mapped is None:
                mapped = listener.port + UNMAPPED_PORT_OFFSET if listener.port < 1024 else listener.port
            candidates = [port for port in range(mapped, mapped + PORT_SEARCH) if port <= 65535]
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        last_error: OSError | None = None
        for port in [*candidates, 0]:
            if port in taken:
                continue
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((self._host, port))
                sock.listen(512)
                sock.setblocking(False)
                return sock
            except OSError as exc:
                sock.close()
                last_error = exc
                if exc.errno != errno.EADDRINUSE or keep is not None:
                    break
        raise last_error or OSError("no local port")

    async def _open_site(self, listener: ListenerConfig, sites: Mapping[str, _Site], keep: int | None) -> _Site:
        site = _Site(listener.arn, listener.protocol, listener.ssl_policy, keep)
        try:
            sock = self._bind(listener, sites, keep)
            site.local_port = sock.getsockname()[1]
            context = None
            if listener.protocol == "HTTPS":
                context = self._ssl_context(listener.ssl_policy)
            server = web.Server(
                functools.partial(self._handle, listener.arn),
                access_log=None,
                max_line_size=MAX_HEADER_LINE,
                max_field_size=MAX_HEADER_LINE,
            )
            site.runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=self._shutdown_grace)
            await site.runner.setup()
            site.site = web.SockSite(site.runner, sock, ssl_context=context)
            await site.site.start()
            LOG.info(
                "listener %s:%s %s -> %s",
                listener.load_balancer_name,
                listener.port,
                listener.protocol,
                self._local_url(listener.protocol, site.local_port),
            )
        except Exception as exc:  # reported in status(); tried again at the next poll
            message = f"{type(exc).__name__}: {exc}"
            if site.error != message:
                LOG.warning("cannot serve listener %s locally: %s", listener.arn, message)
            site.error = message
            if site.runner is not None:
                with contextlib.suppress(Exception):
                    await site.runner.cleanup()
            site.runner, site.site = None, None
        return site

    def _ssl_context(self, policy: str | None):
        if policy not in self._ssl_contexts:
            assert self._certfile and self._keyfile
            self._ssl_contexts[policy] = tls.server_context(self._certfile, self._keyfile, policy)
        return self._ssl_contexts[policy]

    async def _close_site(self, site: _Site, *, graceful: bool) -> None:
        """Stop accepting on the port now; let in-flight requests finish in the background."""
        if site.site is not None:
            with contextlib.suppress(Exception):
                await site.site.stop()
        if graceful:
            task = asyncio.get_running_loop().create_task(self._drain(site))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        else:
            await self._drain(site)

    @staticmethod
    async def _drain(site: _Site) -> None:
        if site.runner is not None:
            with contextlib.suppress(Exception):
                await site.runner.cleanup()
            site.runner = None

    # -- requests ----------------------------------------------------------------------------------

    def _local_port_for(self, listener: ListenerConfig, port: int) -> int:
        """The local port serving ``port`` on the listener's load balancer (else port_map's)."""
        with self._sites_lock:
            sites = dict(self._sites)
        for other in self._snapshot.listeners.values():
            if other.load_balancer_arn == listener.load_balancer_arn and other.port == port:
                site = sites.get(other.arn)
                if site is not None and site.local_port:
                    return site.local_port
        return self._port_map.get(port, port)

    async def _handle(self, listener_arn: str, request: web.BaseRequest) -> web.StreamResponse:
        snapshot = self._snapshot
        listener = snapshot.listeners.get(listener_arn)
        if listener is None:  # deleted: the port is closing
            return _lb_error(503)
        action, action_key = listener.default_action, (listener.arn, listener.default_rule_arn)
        if listener.rules:
            facts = RequestFacts(
                method=request.method,
                path=request.rel_url.path,
                host=_host_without_port(request.host),
                headers=request.headers,
                query=tuple(request.rel_url.query.items()),
                client_ip=request.remote or "",
            )
            for rule in listener.rules:
                if all(condition.matches(facts) for condition in rule.conditions):
                    action, action_key = rule.action, (listener.arn, rule.arn)
                    break
        if isinstance(action, Forward):
            return await self._forward(request, listener, action, action_key, snapshot)
        if isinstance(action, Redirect):
            location = redirect_location(
                action,
                protocol=listener.protocol,
                host=_host_without_port(request.host),
                port=listener.port,
                raw_path=request.rel_url.raw_path,
                raw_query=request.rel_url.raw_query_string,
                local_port_for=functools.partial(self._local_port_for, listener),
            )
            status = 302 if action.status_code == "HTTP_302" else 301
            return web.Response(status=status, headers={"Location": location, "Server": LB_SERVER})
        if isinstance(action, FixedResponse):
            return web.Response(
                status=int(action.status_code),
                body=action.body.encode(),
                headers={"Content-Type": action.content_type, "Server": LB_SERVER},
            )
        return _lb_error(503)

    def _pick_group(self, action_key: tuple, action: Forward) -> str | None:
        """A target group by weight; None when every weight is 0 (ALB answers 503)."""
        if len(action.groups) == 1:
            return action.groups[0][0] if action.groups[0][1] > 0 else None
        key = (*action_key, action.groups)
        picker = self._pickers.get(key)
        if picker is None:
            if len(self._pickers) > 1000:
                self._pickers.clear()
            picker = self._pickers[key] = SmoothWeighted(action.groups)
        return picker.pick()

    def _pick_target(self, group: TargetGroupConfig | None, group_arn: str, targets: list[Target]) -> Target:
        turn = self._round_robin.get(group_arn, 0)
        self._round_robin[group_arn] = turn + 1
        if group is not None and group.algorithm == "least_outstanding_requests":
            fewest = min(target.inflight for target in targets)
            targets = [target for target in targets if target.inflight == fewest]
        return targets[turn % len(targets)]

    async def _forward(
        self, request: web.BaseRequest, listener: ListenerConfig, action: Forward, action_key: tuple, snapshot: Snapshot
    ) -> web.StreamResponse:
        group_arn = self._pick_group(action_key, action)
        if group_arn is None:
            return _lb_error(503)
        targets = self._registry.routable(group_arn)
        if not targets:
            return _lb_error(503)
        target = self._pick_target(snapshot.target_groups.get(group_arn), group_arn, targets)
        idle = self._idle_timeout
        if idle is None:
            idle = snapshot.idle_timeouts.get(listener.load_balancer_arn, DEFAULT_IDLE_TIMEOUT)
        self._registry.begin_request(target.key)
        try:
            return await self._proxy(request, listener, target, idle)
        finally:
            self._registry.end_request(target.key)

    async def _proxy(
        self, request: web.BaseRequest, listener: ListenerConfig, target: Target, idle: float
    ) -> web.StreamResponse:
        assert self._session is not None
        headers = self._upstream_headers(request, listener)
        expects = request.headers.get("Expect", "").lower() == "100-continue" and request.version >= (1, 1)
        if expects and request.transport is not None:  # the body follows once asked for
            request.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        rel = request.rel_url
        url = URL.build(
            scheme="http",
            host=target.ip,
            port=target.port,
            path=rel.raw_path,
            query_string=rel.raw_query_string,
            encoded=True,
        )
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT, sock_read=idle)
        try:
            upstream = await self._session.request(
                request.method,
                url,
                headers=headers,
                data=request.content if request.body_exists else None,
                allow_redirects=False,
                timeout=timeout,
            )
        except TimeoutError:
            return _lb_error(504)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            LOG.debug("target %s failed: %s", target.address, exc)
            return _lb_error(502)

        response = _ProxiedResponse(status=upstream.status, reason=upstream.reason)
        connection_tokens = {t.strip().lower() for t in upstream.headers.get("Connection", "").split(",")}
        for name, value in upstream.headers.items():
            lower = name.lower()
            if lower not in HOP_BY_HOP and lower not in connection_tokens:
                response.headers.add(name, value)
        try:
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            # The status is sent already: all that is left is to cut the client's connection, so
            # that it sees a truncated response rather than a complete-looking one.
            LOG.debug("response from %s broke off: %s", target.address, exc)
            upstream.close()
            if request.transport is not None:
                request.transport.abort()
            return response
        upstream.release()
        return response

    @staticmethod
    def _upstream_headers(request: web.BaseRequest, listener: ListenerConfig) -> CIMultiDict:
        connection_tokens = {t.strip().lower() for t in request.headers.get("Connection", "").split(",")}
        headers: CIMultiDict = CIMultiDict()
        forwarded_for = []
        for name, value in request.headers.items():
            lower = name.lower()
            if lower in HOP_BY_HOP or lower in connection_tokens or lower == "expect":
                continue
            if lower == "x-forwarded-for":
                forwarded_for.append(value)
                continue
            if lower in ("x-forwarded-proto", "x-forwarded-port"):
                continue
            headers.add(name, value)
        forwarded_for.append(request.remote or "")
        headers["X-Forwarded-For"] = ", ".join(part for part in forwarded_for if part)
        headers["X-Forwarded-Proto"] = listener.protocol.lower()
        headers["X-Forwarded-Port"] = str(listener.port)
        if "X-Amzn-Trace-Id" not in headers:
            headers["X-Amzn-Trace-Id"] = f"Root=1-{int(time.time()):08x}-{random.getrandbits(96):024x}"  # noqa: S311
        return headers

    # -- status ------------------------------------------------------------------------------------

    def _local_url(self, protocol: str, port: int | None) -> str | None:
        if not port:
            return None
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{protocol.lower()}://{host}:{port}"

    def status(self) -> dict:
        """JSON-able, for ``localcloud status`` (and ``--json``)::

            {"listeners": [{"load_balancer", "load_balancer_arn", "dns_name", "listener_arn", "protocol",
                            "port", "local_port", "local_url", "error",
                            "default_action": {"type": "forward", "weights": {name: weight},
                                               "target_groups": [{"name", "arn", "weight"}]}
                                            | {"type": "redirect", "status_code", "protocol", "port",
                                               "host", "path", "query", "local_port"}
                                            | {"type": "fixed-response", "status_code", "content_type",
                                               "message_body"},
                            "rules": [{"priority", "conditions": [{"field", "values"}], "action": {...}}]}],
             "target_groups": [{"arn", "name", "port", "health_check": {...}, "deregistration_delay",
                                "algorithm", "targets": [{"ip", "port", "task_id", "health", "reason",
                                                          "inflight"}]}],
             "tls_certificate": "/path/lb-cert.pem",
             "api": {"ok", "error", "read_at"}}

        Listeners are sorted by load balancer name and port; ``local_port``/``local_url`` are None
        (and ``error`` says why) while a listener cannot be served."""
        snapshot = self._snapshot
        with self._sites_lock:
            sites = dict(self._sites)
        names = {arn: group.name for arn, group in snapshot.target_groups.items()}
        listeners = []
        for listener in sorted(snapshot.listeners.values(), key=lambda x: (x.load_balancer_name, x.port)):
            site = sites.get(listener.arn)
            local_port = site.local_port if site is not None and site.site is not None else None
            port_for = functools.partial(self._local_port_for, listener)
            listeners.append(
                {
                    "load_balancer": listener.load_balancer_name,
                    "load_balancer_arn": listener.load_balancer_arn,
                    "dns_name": listener.dns_name,
                    "listener_arn": listener.arn,
                    "protocol": listener.protocol,
                    "port": listener.port,
                    "local_port": local_port,
                    "local_url": self._local_url(listener.protocol, local_port),
                    "error": site.error if site is not None else None,
                    "default_action": summarize_action(listener.default_action, names, port_for),
                    "rules": [
                        {
                            "priority": rule.priority,
                            "conditions": [{"field": c.field, "values": list(c.values)} for c in rule.conditions],
                            "action": summarize_action(rule.action, names, port_for),
                        }
                        for rule in listener.rules
                    ],
                }
            )
        by_group: dict[str, list[Target]] = {}
        for target in self._registry.targets():
            by_group.setdefault(target.target_group_arn, []).append(target)
        target_groups = []
        for arn in sorted(set(snapshot.target_groups) | set(by_group), key=lambda a: names.get(a, _name_from_arn(a))):
            group = snapshot.target_groups.get(arn)
            target_groups.append(
                {
                    "arn": arn,
                    "name": group.name if group else _name_from_arn(arn),
                    "port": group.port if group else None,
                    "health_check": group.health.summary() if group else None,
                    "deregistration_delay": group.deregistration_delay if group else None,
                    "algorithm": group.algorithm if group else None,
                    "targets": [
                        {
                            "ip": t.ip,
                            "port": t.port,
                            "task_id": t.task_id,
                            "health": str(t.health),
                            "reason": t.reason,
                            "inflight": t.inflight,
                        }
                        for t in sorted(by_group.get(arn, []), key=lambda t: (t.ip, t.port))
                    ],
                }
            )
        poll = dict(self._poll_state)
        return {
            "listeners": listeners,
            "target_groups": target_groups,
            "tls_certificate": self._certfile,
            "api": {"ok": poll["ok"], "error": poll["error"], "read_at": poll["at"]},
        }

    def deregistration_delay(self, target_group_arn: str) -> float | None:
        """The group's ``deregistration_delay.timeout_seconds`` (None: unknown group), for the
        runner that decides when a draining task stops."""
        group = self._snapshot.target_groups.get(target_group_arn)
        return group.deregistration_delay if group else None
