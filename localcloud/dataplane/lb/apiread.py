"""Reading the load balancers, listeners, rules and target groups from the AWS API (boto3, blocking)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from localcloud.dataplane.health import HealthCheckSettings
from localcloud.dataplane.lb.model import (
    DEFAULT_IDLE_TIMEOUT,
    ListenerConfig,
    Snapshot,
    TargetGroupConfig,
    name_from_arn,
    parse_listener,
)

ATTRIBUTES_REFRESH = 2.0  # seconds between reads of target group and load balancer attributes


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
            name=group.get("TargetGroupName", name_from_arn(arn)),
            protocol=str(group.get("Protocol", "HTTP")).upper(),
            port=int(group.get("Port") or 0),
            health=HealthCheckSettings.from_target_group(group),
            deregistration_delay=delay,
            algorithm=algorithm,
        )
    return groups
