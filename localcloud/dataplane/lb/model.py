"""The listeners, rules and target groups as the AWS API describes them, parsed once per poll.

A listener's rules (conditions and the terminal action), ALB's redirect templates and the
weighted choice of a target group: what the server needs to route a request, as plain data and
pure functions.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from localcloud.dataplane.health import HealthCheckSettings

LOG = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT = 60.0  # ALB's idle_timeout.timeout_seconds default


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
    """The Location of an ALB redirect, its port translated to the local one: ``local_port_for`` gives the
    local port that serves a listener port (so 80 -> 443 answers ``https://host:8443/...`` locally)."""
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
        groups = [{"name": names.get(arn, name_from_arn(arn)), "arn": arn, "weight": w} for arn, w in action.groups]
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


def name_from_arn(arn: str) -> str:
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
