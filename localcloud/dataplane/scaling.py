"""Application Auto Scaling for ECS services: target tracking policies that change desiredCount.

On AWS, a scalable target (``ServiceNamespace: ecs``, ``ResourceId: service/CLUSTER/SERVICE``,
``ScalableDimension: ecs:service:DesiredCount``) bounds a service's desired count between
``MinCapacity`` and ``MaxCapacity``, and each of its ``TargetTrackingScaling`` policies keeps one
metric near ``TargetValue`` through two CloudWatch alarms: a high one (3 one-minute datapoints above
the target) that scales out, and a low one (15 one-minute datapoints below 90 % of the target) that
scales in. The emulator stores targets and policies (and creates the ``TargetTracking-...`` alarms,
which are left alone here: nothing acts on them) but never scales. This module does, as AWS would:

- :func:`decide` is the decision, a pure function of the current count, the target's bounds and
  suspended state, each policy's metric values and the last scaling times;
- :class:`ServiceScaler` runs it for every scalable target every ``interval`` seconds from the data
  plane's loop: it reads targets, policies, services and metrics through the local API and applies a
  decision with ``ecs.UpdateService(desiredCount=...)``; the ECS plane then starts or stops tasks.

The rules (Application Auto Scaling's, for target tracking):

- a policy proposes ``ceil(current * value / target)`` tasks (1 when the service has none and the
  metric is above zero);
- scale OUT when any policy's value over the short window is above its target: to the largest
  proposal of those policies, at most ``MaxCapacity``; not when ``DynamicScalingOutSuspended``, and
  a policy within its ``ScaleOutCooldown`` of the last scale-out proposes nothing;
- scale IN when every policy that has data is below 90 % of its target over the long window and no
  policy has ``DisableScaleIn``: to the largest proposal (the least reduction), at least
  ``MinCapacity``; not when ``DynamicScalingInSuspended``, nor within the ``ScaleInCooldown`` of the
  last scaling activity in either direction; any policy above its target blocks scale-in;
- a policy whose metric has no datapoint in the short window abstains from scaling out; scale-in needs
  every policy's datapoints over the whole long window (AWS scales in only when every policy's low
  alarm is in ALARM, which needs all its datapoints: a target group without traffic, or with traffic for
  only part of the window, has missing ones), so a colour that has just been sent the traffic, or one
  with no traffic at all, is not scaled in;
- with dynamic scaling not suspended, a desired count outside ``[MinCapacity, MaxCapacity]`` is
  brought inside at once (AWS does this when the target is registered again with other bounds), in
  a direction that is not suspended; that adjustment starts no cooldown. A target whose scale-in and
  scale-out are both suspended is never touched: the blue/green playbooks suspend the idle colour and
  set its count themselves.

The metrics, read with GetMetricStatistics (``Period: 1``, the data plane publishes one datapoint a
second or every few seconds with ``StorageResolution: 1``):

======================================  ===========================================================
policy metric                           CloudWatch metric
======================================  ===========================================================
``ALBRequestCountPerTarget``            AWS/ApplicationELB ``RequestCountPerTarget``, dimension
                                        ``TargetGroup`` (the ``targetgroup/...`` part of the
                                        ``ResourceLabel``), ``Sum`` over the window as requests per
                                        target per minute (``sum * 60 / window``): the policy's
                                        ``TargetValue`` is per minute, as on AWS
``ECSServiceAverageCPUUtilization``     AWS/ECS ``CPUUtilization``, ``ClusterName``/``ServiceName``,
                                        the average over the window
``ECSServiceAverageMemoryUtilization``  AWS/ECS ``MemoryUtilization``, likewise
======================================  ===========================================================

A ``CustomizedMetricSpecification`` (and a ``StepScaling`` policy) is not followed: said once in the
log and in the status.

Time is compressed, on purpose: AWS's alarms look at 3 (out) and 15 (in) one-minute datapoints;
here the short window is ``LOCALCLOUD_SCALING_OUT_WINDOW`` seconds (default 10) and the long one
``LOCALCLOUD_SCALING_IN_WINDOW`` seconds (default 30), each ending ``lag`` seconds ago (the load
balancer publishes the seconds that have ended every couple of seconds), and a window is judged on
its value as a whole rather than datapoint by datapoint. Cooldowns are the policies' own, in seconds
(300 when a policy gives none, ECS's default). ``LOCALCLOUD_SCALING=0`` switches it all off.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

ENV_SWITCH = "LOCALCLOUD_SCALING"
ENV_INTERVAL = "LOCALCLOUD_SCALING_INTERVAL"
ENV_OUT_WINDOW = "LOCALCLOUD_SCALING_OUT_WINDOW"
ENV_IN_WINDOW = "LOCALCLOUD_SCALING_IN_WINDOW"
DEFAULT_INTERVAL = 2.0
DEFAULT_OUT_WINDOW = 10.0
DEFAULT_IN_WINDOW = 30.0
DEFAULT_LAG = 3.0
DEFAULT_COOLDOWN = 300.0  # ECS's default ScaleOutCooldown and ScaleInCooldown
SCALE_IN_SHARE = 0.9  # scale in below 90 % of the target
COVERAGE_MARGIN = 0.2  # share of the scale-in window its datapoints may leave uncovered at each end
ACTIVITIES_KEPT = 10
NAMESPACE = "ecs"
DIMENSION = "ecs:service:DesiredCount"

REQUESTS = "ALBRequestCountPerTarget"
CPU = "ECSServiceAverageCPUUtilization"
MEMORY = "ECSServiceAverageMemoryUtilization"


def enabled_by_env(environ: Mapping[str, str] = os.environ) -> bool:
    """Scaling is on unless ``LOCALCLOUD_SCALING=0`` (or false/off/no)."""
    return environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "off", "no")


def _seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        log.warning("%s=%r is not a number of seconds: %g used", name, raw, default)
        return default
    return value if value > 0 else default


# ---- the decision ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Policy:
    """A target tracking policy, as far as the decision needs it."""

    name: str
    metric_type: str
    target: float
    scale_out_cooldown: float = DEFAULT_COOLDOWN
    scale_in_cooldown: float = DEFAULT_COOLDOWN
    disable_scale_in: bool = False
    resource_label: str = ""


@dataclasses.dataclass(frozen=True)
class Reading:
    """A policy's metric over the short (scale-out) and long (scale-in) window; None: no datapoint."""

    policy: Policy
    short: float | None
    long: float | None


@dataclasses.dataclass(frozen=True)
class Decision:
    """Set desiredCount from ``from_count`` to ``to_count`` (``direction``: out, in), and why;
    ``bounds``: it brings the count into ``[MinCapacity, MaxCapacity]`` (no cooldown follows)."""

    from_count: int
    to_count: int
    direction: str
    reason: str
    bounds: bool = False


def proposal(current: int, value: float, target: float) -> int:
    """The count a policy asks for: ``ceil(current * value / target)``; 1 for a service at 0 whose
    metric is above zero."""
    if current <= 0:
        return 1 if value > 0 else 0
    return max(0, math.ceil(current * value / target - 1e-9))  # 1e-9: 300/100*1 is 3, not 3.0000000004


def _number(value: float) -> str:
    return f"{value:.1f}"


def decide(
    current: int,
    minimum: int,
    maximum: int,
    suspended_state: Mapping[str, Any] | None,
    readings: Sequence[Reading],
    *,
    last_scale_out: float | None = None,
    last_scale_in: float | None = None,
    now: float,
) -> Decision | None:
    """What Application Auto Scaling does with a service at ``current`` tasks ``now``: bring it into
    its bounds, else scale out, else scale in, else nothing (None); the rules: module docstring."""
    suspended = suspended_state or {}
    out_suspended = bool(suspended.get("DynamicScalingOutSuspended"))
    in_suspended = bool(suspended.get("DynamicScalingInSuspended"))
    if out_suspended and in_suspended:
        return None  # the playbooks own this service's count
    if current < minimum and not out_suspended:
        return Decision(current, minimum, "out", f"desired count {current} below MinCapacity {minimum}", True)
    if current > maximum and not in_suspended:
        return Decision(current, maximum, "in", f"desired count {current} above MaxCapacity {maximum}", True)
    above = [r for r in readings if r.short is not None and r.short > r.policy.target]
    if above:  # a policy that wants more blocks any scale-in
        return None if out_suspended else _scale_out(current, maximum, above, last_scale_out, now)
    if in_suspended or any(r.policy.disable_scale_in for r in readings):
        return None
    last = max((t for t in (last_scale_out, last_scale_in) if t is not None), default=None)
    return _scale_in(current, minimum, list(readings), last, now)


def _scale_out(
    current: int, maximum: int, above: list[Reading], last_scale_out: float | None, now: float
) -> Decision | None:
    ready = [r for r in above if last_scale_out is None or now - last_scale_out >= r.policy.scale_out_cooldown]
    if not ready:
        return None  # every policy that wants more is within its cooldown
    wanted = max(proposal(current, r.short, r.policy.target) for r in ready)
    new = min(maximum, wanted)
    if new <= current:
        return None
    reason = "; ".join(f"{r.policy.metric_type} {_number(r.short)} > target {_number(r.policy.target)}" for r in ready)
    return Decision(current, new, "out", reason + (f" (capped at MaxCapacity {maximum})" if wanted > new else ""))


def _scale_in(current: int, minimum: int, voting: list[Reading], last: float | None, now: float) -> Decision | None:
    if not voting or any(r.long is None or r.long >= SCALE_IN_SHARE * r.policy.target for r in voting):
        return None  # no policy, a policy without data over the whole window, or one not low enough
    if last is not None and now - last < max(r.policy.scale_in_cooldown for r in voting):
        return None
    wanted = max(proposal(current, r.long, r.policy.target) for r in voting)
    new = max(minimum, wanted)
    if new >= current:
        return None
    share = f"{SCALE_IN_SHARE * 100:.0f} %"
    reason = "; ".join(
        f"{r.policy.metric_type} {_number(r.long)} < {share} of target {_number(r.policy.target)}" for r in voting
    )
    return Decision(current, new, "in", reason + (f" (kept at MinCapacity {minimum})" if wanted < new else ""))


# ---- reading the API --------------------------------------------------------------------------------


class NotFollowed(ValueError):
    """A policy this scaler does not follow (the reason is logged once and shown in the status)."""


def parse_policy(described: Mapping[str, Any]) -> Policy:
    """A policy as DescribeScalingPolicies lists it."""
    name = described.get("PolicyName", "?")
    if described.get("PolicyType") != "TargetTrackingScaling":
        raise NotFollowed(f"policy {name}: {described.get('PolicyType')} policies are not followed locally")
    configuration = described.get("TargetTrackingScalingPolicyConfiguration") or {}
    if configuration.get("CustomizedMetricSpecification"):
        raise NotFollowed(f"policy {name}: CustomizedMetricSpecification is not followed locally")
    specification = configuration.get("PredefinedMetricSpecification") or {}
    metric_type = specification.get("PredefinedMetricType", "")
    if metric_type not in (REQUESTS, CPU, MEMORY):
        raise NotFollowed(f"policy {name}: metric type {metric_type!r} is not followed locally")
    label = specification.get("ResourceLabel") or ""
    if metric_type == REQUESTS and "targetgroup/" not in label:
        raise NotFollowed(f"policy {name}: ResourceLabel {label!r} names no target group")
    target = float(configuration.get("TargetValue") or 0)
    if target <= 0:
        raise NotFollowed(f"policy {name}: TargetValue {target} is not above zero")
    return Policy(
        name=name,
        metric_type=metric_type,
        target=target,
        scale_out_cooldown=float(configuration.get("ScaleOutCooldown", DEFAULT_COOLDOWN)),
        scale_in_cooldown=float(configuration.get("ScaleInCooldown", DEFAULT_COOLDOWN)),
        disable_scale_in=bool(configuration.get("DisableScaleIn")),
        resource_label=label,
    )


@dataclasses.dataclass(frozen=True)
class MetricSource:
    """Where a policy's metric is read: ``per_minute`` sums into requests per minute, else averages."""

    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    per_minute: bool


def metric_source(policy: Policy, resource_id: str) -> MetricSource:
    if policy.metric_type == REQUESTS:
        group = policy.resource_label[policy.resource_label.index("targetgroup/") :]
        return MetricSource("AWS/ApplicationELB", "RequestCountPerTarget", (("TargetGroup", group),), True)
    _, cluster, service = resource_id.split("/", 2)
    name = "CPUUtilization" if policy.metric_type == CPU else "MemoryUtilization"
    return MetricSource("AWS/ECS", name, (("ClusterName", cluster), ("ServiceName", service)), False)


def window_value(
    source: MetricSource,
    points: Iterable[tuple[float, float, float]],
    start: float,
    seconds: float,
    *,
    covered: bool = False,
) -> float | None:
    """The metric over ``[start, start + seconds)`` from (timestamp, sum, sample count) datapoints;
    None without a datapoint there, and with ``covered`` also None unless datapoints reach both ends of
    the window (within ``COVERAGE_MARGIN`` of the window, at least 6 s: the tasks' usage comes every 5 s).
    Scale-in reads its window ``covered``: AWS's low alarm needs every one of its 15 datapoints, and a
    target group that had no traffic for part of the window (a colour that has just been sent traffic)
    has missing ones, so it does not scale in yet."""
    stamps = [stamp for stamp, _, _ in points if start <= stamp < start + seconds]
    inside = [(total, count) for stamp, total, count in points if start <= stamp < start + seconds]
    if not inside:
        return None
    if covered:
        margin = max(6.0, COVERAGE_MARGIN * seconds)
        if min(stamps) > start + margin or max(stamps) < start + seconds - margin:
            return None
    total = sum(t for t, _ in inside)
    if source.per_minute:
        return round(total * 60.0 / seconds, 3)
    count = sum(c for _, c in inside)
    return round(total / count, 3) if count else None


# ---- the scaler -------------------------------------------------------------------------------------


@dataclasses.dataclass
class TargetState:
    """What the scaler remembers of one scalable target."""

    region: str
    resource_id: str
    minimum: int | None = None
    maximum: int | None = None
    suspended_state: dict = dataclasses.field(default_factory=dict)
    desired: int | None = None
    last_scale_out: float | None = None
    last_scale_in: float | None = None
    last_decision: Decision | None = None
    activities: collections.deque = dataclasses.field(default_factory=lambda: collections.deque(maxlen=ACTIVITIES_KEPT))
    metrics: dict = dataclasses.field(default_factory=dict)
    not_followed: list[str] = dataclasses.field(default_factory=list)
    problem: str | None = None

    @property
    def suspended(self) -> bool:
        state = self.suspended_state
        return bool(state.get("DynamicScalingInSuspended") and state.get("DynamicScalingOutSuspended"))

    def status(self) -> dict:
        return {
            "region": self.region,
            "min": self.minimum,
            "max": self.maximum,
            "suspended": self.suspended,
            "suspended_state": dict(self.suspended_state),
            "desired": self.desired,
            "activities": list(self.activities),
            "metrics": dict(self.metrics),
            "not_followed": list(self.not_followed),
            "problem": self.problem,
        }


Clients = Callable[[str, str], Any]  # (service, region) -> boto3 client


class ServiceScaler:
    """Runs the ECS services' target tracking policies; call :meth:`run` every ``interval`` seconds.

    ``clients(service, region)`` gives boto3 clients of the local API, ``regions()`` the regions to
    look at. ``interval``, ``out_window`` and ``in_window`` default to the environment's
    ``LOCALCLOUD_SCALING_INTERVAL`` (2 s), ``LOCALCLOUD_SCALING_OUT_WINDOW`` (10 s) and
    ``LOCALCLOUD_SCALING_IN_WINDOW`` (30 s); the windows end ``lag`` seconds before ``clock()``.
    """

    def __init__(
        self,
        clients: Clients,
        regions: Callable[[], Iterable[str]],
        *,
        interval: float | None = None,
        out_window: float | None = None,
        in_window: float | None = None,
        lag: float = DEFAULT_LAG,
        clock: Callable[[], float] = time.time,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        self.clients = clients
        self.regions = regions
        self.interval = interval if interval is not None else _seconds(environ, ENV_INTERVAL, DEFAULT_INTERVAL)
        self.out_window = int(
            out_window if out_window is not None else _seconds(environ, ENV_OUT_WINDOW, DEFAULT_OUT_WINDOW)
        )
        self.in_window = int(
            in_window if in_window is not None else _seconds(environ, ENV_IN_WINDOW, DEFAULT_IN_WINDOW)
        )
        self.out_window, self.in_window = max(1, self.out_window), max(1, self.in_window)
        self.lag = lag
        self.clock = clock
        self.targets: dict[tuple[str, str], TargetState] = {}
        self.activities = 0  # desired counts changed so far
        self._said: set[str] = set()  # problems logged once
        self._errors: dict[str, str] = {}  # region -> the last API error

    # -- the round

    def run(self) -> list[Decision]:
        """One round over every region; API errors are logged, never raised."""
        applied: list[Decision] = []
        for region in list(self.regions()):
            try:
                applied.extend(self.scale_region(region))
                self._errors.pop(region, None)
            except Exception as exc:  # noqa: BLE001 - scaling must never stop the data plane
                message = f"{type(exc).__name__}: {exc}"
                if self._errors.get(region) != message:
                    log.warning("scaling the ECS services of %s failed: %s", region, message)
                self._errors[region] = message
        return applied

    def scale_region(self, region: str) -> list[Decision]:
        targets = self._scalable_targets(region)
        ids = {t["ResourceId"] for t in targets}
        for key in [k for k in self.targets if k[0] == region and k[1] not in ids]:
            log.info("scalable target %s deregistered: forgotten", key[1])
            del self.targets[key]
        if not targets:
            return []
        policies: dict[str, list[dict]] = {}
        for policy in self._paginate(region, "describe_scaling_policies", "ScalingPolicies"):
            if policy.get("ScalableDimension", DIMENSION) == DIMENSION:
                policies.setdefault(policy.get("ResourceId", ""), []).append(policy)
        services = self._services(region, ids)
        applied = []
        for target in targets:
            resource_id = target["ResourceId"]
            state = self.targets.setdefault((region, resource_id), TargetState(region, resource_id))
            decision = self._scale_target(state, target, policies.get(resource_id, []), services.get(resource_id))
            if decision is not None:
                applied.append(decision)
        return applied

    def _scale_target(
        self, state: TargetState, target: dict, described_policies: list[dict], service: dict | None
    ) -> Decision | None:
        region = state.region
        state.minimum = _count(target.get("MinCapacity"))
        state.maximum = _count(target.get("MaxCapacity"))
        state.suspended_state = dict(target.get("SuspendedState") or {})
        state.problem = None
        if service is None:
            state.desired, state.problem = None, "no such active ECS service"
            return None
        state.desired = int(service.get("desiredCount") or 0)
        if state.minimum is None or state.maximum is None:
            state.problem = "no MinCapacity or MaxCapacity"
            return None
        policies, state.not_followed = [], []
        for described in described_policies:
            try:
                policies.append(parse_policy(described))
            except NotFollowed as exc:
                state.not_followed.append(str(exc))
                self._say_once(f"{region} {state.resource_id}: {exc}")
        now = self.clock()
        cloudwatch = self.clients("cloudwatch", region)
        readings = [self._reading(cloudwatch, policy, state.resource_id, now) for policy in policies]
        state.metrics = {
            r.policy.name: {"metric": r.policy.metric_type, "target": r.policy.target, "short": r.short, "long": r.long}
            for r in readings
        }
        decision = decide(
            state.desired,
            state.minimum,
            state.maximum,
            state.suspended_state,
            readings,
            last_scale_out=state.last_scale_out,
            last_scale_in=state.last_scale_in,
            now=now,
        )
        if decision is None:
            return None
        _, cluster, name = state.resource_id.split("/", 2)
        try:
            self.clients("ecs", region).update_service(cluster=cluster, service=name, desiredCount=decision.to_count)
        except Exception as exc:  # noqa: BLE001 - tried again next round
            state.problem = f"UpdateService failed: {type(exc).__name__}: {exc}"
            log.warning(
                "scaling %s from %d to %d failed: %s", state.resource_id, decision.from_count, decision.to_count, exc
            )
            return None
        if not decision.bounds:  # bringing the count into its bounds starts no cooldown
            if decision.direction == "out":
                state.last_scale_out = now
            else:
                state.last_scale_in = now
        state.desired, state.last_decision = decision.to_count, decision
        state.activities.append(
            {
                "time": datetime.datetime.fromtimestamp(now, datetime.UTC).isoformat(timespec="seconds"),
                "from": decision.from_count,
                "to": decision.to_count,
                "reason": decision.reason,
            }
        )
        self.activities += 1
        log.info(
            "scaling %s %s from %d to %d: %s",
            state.resource_id,
            decision.direction,
            decision.from_count,
            decision.to_count,
            decision.reason,
        )
        return decision

    def _say_once(self, message: str) -> None:
        if message not in self._said:
            self._said.add(message)
            log.warning("%s", message)

    # -- the API

    def _paginate(self, region: str, operation: str, key: str) -> list[dict]:
        """Every item of an Application Auto Scaling listing (a repeated token ends it: the
        emulator's tokens are not always fresh)."""
        client = self.clients("application-autoscaling", region)
        items, token, seen = [], None, set()
        while True:
            params = {"ServiceNamespace": NAMESPACE, **({"NextToken": token} if token else {})}
            page = getattr(client, operation)(**params)
            items.extend(page.get(key) or [])
            token = page.get("NextToken")
            if not token or token in seen:
                return items
            seen.add(token)

    def _scalable_targets(self, region: str) -> list[dict]:
        """The region's ECS desired count targets, one per resource id. When the emulator fails to
        list them (it may, before the account has any), the error goes up to :meth:`run`, which
        logs it once; nothing is forgotten then."""
        targets = self._paginate(region, "describe_scalable_targets", "ScalableTargets")
        unique = {}
        for target in targets:
            if target.get("ScalableDimension") == DIMENSION and str(target.get("ResourceId", "")).count("/") == 2:
                unique.setdefault(target["ResourceId"], target)
        return list(unique.values())

    def _services(self, region: str, resource_ids: Iterable[str]) -> dict[str, dict]:
        """resource id -> the ACTIVE service DescribeServices gives."""
        by_cluster: dict[str, list[str]] = {}
        for resource_id in resource_ids:
            _, cluster, name = resource_id.split("/", 2)
            by_cluster.setdefault(cluster, []).append(name)
        ecs = self.clients("ecs", region)
        found = {}
        for cluster, names in by_cluster.items():
            for first in range(0, len(names), 10):
                try:
                    described = ecs.describe_services(cluster=cluster, services=names[first : first + 10])
                except Exception as exc:  # noqa: BLE001 - a cluster that is gone
                    log.info("describing services of cluster %s in %s failed: %s", cluster, region, exc)
                    continue
                for service in described.get("services") or []:
                    if service.get("status") == "ACTIVE":
                        found[f"service/{cluster}/{service['serviceName']}"] = service
        return found

    def _reading(self, cloudwatch, policy: Policy, resource_id: str, now: float) -> Reading:
        source = metric_source(policy, resource_id)
        end = int(now - self.lag)
        span = max(self.out_window, self.in_window)
        try:
            answer = cloudwatch.get_metric_statistics(
                Namespace=source.namespace,
                MetricName=source.name,
                Dimensions=[{"Name": n, "Value": v} for n, v in source.dimensions],
                StartTime=datetime.datetime.fromtimestamp(end - span, datetime.UTC),
                EndTime=datetime.datetime.fromtimestamp(end, datetime.UTC),
                Period=1,
                Statistics=["Sum", "SampleCount"],
            )
        except Exception as exc:  # noqa: BLE001 - no data: the policy abstains
            log.info("reading %s for %s failed: %s", source.name, resource_id, exc)
            return Reading(policy, None, None)
        points = [
            (p["Timestamp"].timestamp(), p.get("Sum", 0.0), p.get("SampleCount", 0.0)) for p in answer["Datapoints"]
        ]
        return Reading(
            policy,
            window_value(source, points, end - self.out_window, self.out_window),
            window_value(source, points, end - self.in_window, self.in_window, covered=True),
        )

    # -- status

    def status(self) -> dict:
        """The ``scaling`` section of status.json: each target by resource id (``REGION:id`` when
        the same id is scaled in another region too)."""
        ids = collections.Counter(resource_id for _, resource_id in self.targets)
        return {
            "enabled": True,
            "interval": self.interval,
            "out_window": self.out_window,
            "in_window": self.in_window,
            "activities": self.activities,
            "errors": dict(self._errors),
            "targets": {
                (resource_id if ids[resource_id] == 1 else f"{region}:{resource_id}"): state.status()
                for (region, resource_id), state in sorted(self.targets.items())
            },
        }


def _count(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
