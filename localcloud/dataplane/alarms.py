"""Metric alarms that evaluate, as CloudWatch evaluates them (the emulator only stores them).

CloudWatch evaluates a metric alarm at the end of each of its periods: it takes the alarm's
metric (a statistic such as ``Sum``, or an extended statistic such as ``p99``) or its metric math
expression over the last ``EvaluationPeriods`` periods, classes each datapoint as breaching, not
breaching or missing (``TreatMissingData``), and goes to ALARM when at least
``DatapointsToAlarm`` of them breach. A state change carries a reason that cites the datapoints
(``StateReason``) and the same as JSON (``StateReasonData``). This module does the same:

- :func:`parse_alarm` reads an alarm as DescribeAlarms gives it;
- :func:`alarm_values` computes the datapoints of the alarm's window from the metrics' values,
  metric math included (``+ - * /``, parentheses, numbers, the metric ids and ``FILL(id, number)``);
- :func:`decide` turns datapoints into a state and a reason: pure functions, no API;
- :class:`AlarmEvaluator` runs them every ``interval`` seconds in a thread of the data plane: it
  reads the alarms and the metrics through the local API (DescribeAlarms, GetMetricData) and sets
  a changed state with SetAlarmState.

Where it differs from CloudWatch, on purpose: an alarm is evaluated once each of its periods has
ended *and* ``lag`` seconds have passed (the load balancer publishes every couple of seconds), and
a state that someone else set (SetAlarmState, as a test or an operator does) is kept for at least
one period before the next evaluation may change it (CloudWatch keeps it until its next
evaluation, which may come sooner). With data missing in part of the window, the ``missing`` and
``ignore`` treatments evaluate the datapoints that are there; when fewer than
``DatapointsToAlarm`` are there, the alarm goes to ALARM only if all of them breach.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

LOG = logging.getLogger(__name__)

OK, ALARM, INSUFFICIENT = "OK", "ALARM", "INSUFFICIENT_DATA"
COMPARISONS: dict[str, tuple[str, Callable[[float, float], bool]]] = {
    "GreaterThanThreshold": ("greater than", lambda v, t: v > t),
    "GreaterThanOrEqualToThreshold": ("greater than or equal to", lambda v, t: v >= t),
    "LessThanThreshold": ("less than", lambda v, t: v < t),
    "LessThanOrEqualToThreshold": ("less than or equal to", lambda v, t: v <= t),
}
TREATMENTS = ("missing", "ignore", "breaching", "notBreaching")


class AlarmError(ValueError):
    """An alarm this evaluator cannot evaluate (it is left as it is, and the reason logged)."""


@dataclasses.dataclass(frozen=True)
class MetricQuery:
    id: str
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    period: int
    stat: str
    unit: str | None = None


@dataclasses.dataclass(frozen=True)
class AlarmSpec:
    name: str
    period: int
    evaluation_periods: int
    datapoints_to_alarm: int
    comparison: str
    threshold: float
    treat_missing_data: str
    queries: tuple[MetricQuery, ...]
    expression: str  # a query id for a plain alarm, else the metric math of the returned query
    statistic: str  # for the reason data: "Sum", "p99", or the expression


def parse_alarm(alarm: Mapping[str, Any]) -> AlarmSpec:
    """An alarm as DescribeAlarms' ``MetricAlarms`` lists it."""
    name = alarm.get("AlarmName", "?")
    comparison = alarm.get("ComparisonOperator", "")
    if comparison not in COMPARISONS:
        raise AlarmError(f"alarm {name}: comparison {comparison!r} is not evaluated locally")
    treat = alarm.get("TreatMissingData") or "missing"
    if treat not in TREATMENTS:
        raise AlarmError(f"alarm {name}: TreatMissingData {treat!r} is not one of {', '.join(TREATMENTS)}")
    if alarm.get("ThresholdMetricId"):
        raise AlarmError(f"alarm {name}: anomaly detection bands are not evaluated locally")
    evaluation_periods = int(alarm.get("EvaluationPeriods") or 1)
    datapoints = int(alarm.get("DatapointsToAlarm") or evaluation_periods)
    metrics = alarm.get("Metrics") or []
    if metrics:
        queries, expression, returned = [], None, []
        for metric in metrics:
            if metric.get("MetricStat"):
                queries.append(_query(metric["Id"], metric["MetricStat"]))
            if metric.get("ReturnData", True) in (True, None):
                returned.append(metric)
        if len(returned) != 1:
            raise AlarmError(f"alarm {name}: exactly one of its metrics must return data")
        expression = returned[0].get("Expression") or returned[0]["Id"]
        if not queries:
            raise AlarmError(f"alarm {name}: no metric to read")
        periods = {query.period for query in queries}
        if len(periods) != 1:
            raise AlarmError(f"alarm {name}: its metrics have different periods {sorted(periods)}")
        period = periods.pop()
        statistic = returned[0].get("Expression") or queries[0].stat
    else:
        statistic = alarm.get("ExtendedStatistic") or alarm.get("Statistic")
        if not statistic or not alarm.get("MetricName"):
            raise AlarmError(f"alarm {name}: no metric, statistic or metrics")
        period = int(alarm.get("Period") or 60)
        query = _query(
            "m1",
            {
                "Metric": {
                    "Namespace": alarm.get("Namespace", ""),
                    "MetricName": alarm["MetricName"],
                    "Dimensions": alarm.get("Dimensions") or [],
                },
                "Period": period,
                "Stat": statistic,
                "Unit": alarm.get("Unit"),
            },
        )
        queries, expression = [query], "m1"
    parse_expression(expression)  # refuses what it cannot evaluate, now rather than at every round
    return AlarmSpec(
        name=name,
        period=period,
        evaluation_periods=evaluation_periods,
        datapoints_to_alarm=datapoints,
        comparison=comparison,
        threshold=float(alarm.get("Threshold", 0.0)),
        treat_missing_data=treat,
        queries=tuple(queries),
        expression=expression,
        statistic=statistic,
    )


def _query(query_id: str, stat: Mapping[str, Any]) -> MetricQuery:
    metric = stat.get("Metric") or {}
    return MetricQuery(
        id=query_id,
        namespace=metric.get("Namespace", ""),
        name=metric.get("MetricName", ""),
        dimensions=tuple((d["Name"], d["Value"]) for d in metric.get("Dimensions") or []),
        period=int(stat.get("Period") or 60),
        stat=str(stat.get("Stat", "")),
        unit=stat.get("Unit"),
    )


# -- metric math ---------------------------------------------------------------------------------

TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+)|([A-Za-z_][A-Za-z0-9_]*)|(.))")
Node = tuple  # ("num", x) | ("id", name) | ("neg", node) | (op, left, right) | ("fill", node, number)


def parse_expression(text: str) -> Node:
    """A metric math expression of ``+ - * /``, parentheses, numbers, ids and ``FILL(x, number)``."""
    tokens: list[tuple[str, str]] = []
    for number, word, other in TOKEN.findall(text):
        if number:
            tokens.append(("num", number))
        elif word:
            tokens.append(("word", word))
        elif other.strip():
            tokens.append(("op", other))
    position = 0

    def peek() -> tuple[str, str] | None:
        return tokens[position] if position < len(tokens) else None

    def take(kind: str | None = None, value: str | None = None) -> tuple[str, str]:
        nonlocal position
        token = peek()
        if token is None or (kind and token[0] != kind) or (value and token[1] != value):
            raise AlarmError(f"metric math {text!r}: expected {value or kind} at token {position + 1}")
        position += 1
        return token

    def expression() -> Node:
        node = term()
        while peek() in (("op", "+"), ("op", "-")):
            node = (take()[1], node, term())
        return node

    def term() -> Node:
        node = factor()
        while peek() in (("op", "*"), ("op", "/")):
            node = (take()[1], node, factor())
        return node

    def factor() -> Node:
        token = peek()
        if token == ("op", "-"):
            take()
            return ("neg", factor())
        if token == ("op", "("):
            take()
            node = expression()
            take("op", ")")
            return node
        if token is not None and token[0] == "num":
            return ("num", float(take()[1]))
        if token is not None and token[0] == "word":
            word = take()[1]
            if peek() == ("op", "("):
                if word.upper() != "FILL":
                    raise AlarmError(f"metric math {text!r}: function {word} is not evaluated locally")
                take()
                inner = expression()
                take("op", ",")
                sign = -1.0 if peek() == ("op", "-") and take() else 1.0
                value = sign * float(take("num")[1])
                take("op", ")")
                return ("fill", inner, value)
            return ("id", word)
        raise AlarmError(f"metric math {text!r}: unexpected {token[1] if token else 'end'}")

    node = expression()
    if position != len(tokens):
        raise AlarmError(f"metric math {text!r}: unexpected {tokens[position][1]}")
    return node


def evaluate_expression(node: Node, values: Mapping[str, float | None]) -> float | None:
    """The expression's value at one timestamp; None (no datapoint) where an input has none, or on
    a division by zero, as metric math leaves such timestamps out."""
    kind = node[0]
    if kind == "num":
        return node[1]
    if kind == "id":
        if node[1] not in values:
            raise AlarmError(f"metric math: unknown id {node[1]}")
        return values[node[1]]
    if kind in ("neg", "fill"):
        inner = evaluate_expression(node[1], values)
        if kind == "fill":
            return node[2] if inner is None else inner
        return None if inner is None else -inner
    left, right = evaluate_expression(node[1], values), evaluate_expression(node[2], values)
    if left is None or right is None or (kind == "/" and right == 0):
        return None
    return ARITHMETIC[kind](left, right)


ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
}


def alarm_values(
    spec: AlarmSpec, series: Mapping[str, Mapping[int, float]], starts: Sequence[int]
) -> list[tuple[int, float | None]]:
    """The alarm's datapoint for each period start (oldest first): the expression over the metrics'
    values (``series``: query id -> {period start epoch: value})."""
    node = parse_expression(spec.expression)
    return [
        (start, evaluate_expression(node, {query.id: series.get(query.id, {}).get(start) for query in spec.queries}))
        for start in starts
    ]


# -- the decision ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Decision:
    state: str
    reason: str
    reason_data: dict


def _stamp(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%d/%m/%y %H:%M:%S")


def _iso(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def decide(spec: AlarmSpec, values: Sequence[tuple[int, float | None]], current: str, now: float) -> Decision | None:
    """The state of the alarm from its window's datapoints (oldest first), with CloudWatch's
    reason; None when the alarm keeps its state whatever it is (``ignore`` with no data)."""
    wording, breaches = COMPARISONS[spec.comparison]
    present = [(start, value) for start, value in values if value is not None]
    missing = len(values) - len(present)
    needed = spec.datapoints_to_alarm
    data = {
        "version": "1.0",
        "queryDate": _iso(now),
        "startDate": _iso(values[0][0]) if values else _iso(now),
        "statistic": spec.statistic,
        "period": spec.period,
        "recentDatapoints": [value for _, value in present],
        "threshold": spec.threshold,
        "evaluatedDatapoints": [{"timestamp": _iso(start), "value": value} for start, value in reversed(present)],
    }
    treat = spec.treat_missing_data
    if not present:
        if treat == "ignore":
            return None
        if treat == "missing":
            reason = f"Insufficient Data: {_plural(missing, 'datapoint')} {'was' if missing == 1 else 'were'} unknown."
            return Decision(INSUFFICIENT, reason, data)
        state = ALARM if treat == "breaching" else OK
        label = "Breaching" if treat == "breaching" else "NonBreaching"
        reason = (
            f"Threshold Crossed: no datapoints were received for {_plural(missing, 'period')} and "
            f"{_plural(missing, 'missing datapoint')} {'was' if missing == 1 else 'were'} treated as [{label}]."
        )
        return Decision(state, reason, data)

    breaching = [(s, v) for s, v in present if breaches(v, spec.threshold)]
    calm = [(s, v) for s, v in present if not breaches(v, spec.threshold)]
    counted = len(breaching) + (missing if treat == "breaching" else 0)
    if treat in ("breaching", "notBreaching"):
        alarm = counted >= needed
    else:  # missing, ignore: what is there is judged; fewer than needed fire only if all breach
        alarm = counted >= needed or (len(present) < needed and len(breaching) == len(present))
    state = ALARM if alarm else OK
    cited = breaching if alarm else calm
    shown = ", ".join(f"{value!r} ({_stamp(start)})" for start, value in reversed(cited))
    verb = ("was" if len(cited) == 1 else "were") + ("" if alarm else " not")
    extra = ""
    if missing and treat in ("breaching", "notBreaching"):
        label = "Breaching" if treat == "breaching" else "NonBreaching"
        extra = f" and {_plural(missing, 'missing datapoint')} treated as [{label}]"
    reason = (
        f"Threshold Crossed: {len(cited)} out of the last {len(present)} datapoints [{shown}]{extra} {verb} "
        f"{wording} the threshold ({spec.threshold!r}) (minimum {_plural(needed, 'datapoint')} for "
        f"{current if current != state else (OK if alarm else ALARM)} -> {state} transition)."
    )
    return Decision(state, reason, data)


def window(spec: AlarmSpec, now: float, lag: float) -> list[int]:
    """The starts of the alarm's last ``evaluation_periods`` periods that ended ``lag`` s ago."""
    end = int(now - lag) // spec.period * spec.period
    return [end - spec.period * k for k in range(spec.evaluation_periods, 0, -1)]


# -- the evaluator thread ----------------------------------------------------------------------------


class AlarmEvaluator:
    """Evaluates every metric alarm of the local API's regions every ``interval`` seconds (each alarm
    once per period). ``clients(service, region)`` gives boto3 clients; ``regions()`` the regions."""

    def __init__(
        self,
        clients: Callable[[str, str], Any],
        regions: Callable[[], Iterable[str]],
        *,
        interval: float = 2.0,
        lag: float = 3.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clients = clients
        self._regions = regions
        self._interval = interval
        self._lag = lag
        self._clock = clock
        self._evaluated: dict[tuple[str, str], int] = {}  # -> the end of the last window evaluated
        self._stamps: dict[tuple[str, str], tuple[Any, float]] = {}  # -> (StateUpdatedTimestamp, held since)
        self._ours: set[tuple[str, str]] = set()  # alarms whose last state change this evaluator made
        self._errors: dict[tuple[str, str], str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.changes = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="localcloud-alarms", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            for region in list(self._regions()):
                try:
                    self.evaluate_region(region)
                except Exception as exc:  # noqa: BLE001 - the next round tries again
                    LOG.warning("evaluating the alarms of %s failed: %s: %s", region, type(exc).__name__, exc)

    def evaluate_region(self, region: str) -> None:
        cloudwatch = self._clients("cloudwatch", region)
        alarms = [
            a
            for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm"])
            for a in page.get("MetricAlarms", [])
        ]
        for alarm in alarms:
            key = (region, alarm["AlarmName"])
            try:
                spec = parse_alarm(alarm)
            except AlarmError as exc:
                if self._errors.get(key) != str(exc):
                    LOG.warning("%s", exc)
                self._errors[key] = str(exc)
                continue
            now = self._clock()
            starts = window(spec, now, self._lag)
            end = starts[-1] + spec.period
            if now < self._held_until(key, alarm, spec, now) or end <= self._evaluated.get(key, 0):
                continue  # set by someone else a moment ago, or this period was evaluated
            series = self.fetch(cloudwatch, spec, starts[0], end)
            decision = decide(spec, alarm_values(spec, series, starts), alarm.get("StateValue", OK), now)
            self._evaluated[key] = end
            fresh = str(alarm.get("StateReason", "")).startswith("Unchecked")  # never evaluated yet
            if decision is None or (decision.state == alarm.get("StateValue") and not fresh):
                continue  # CloudWatch records a state change only
            cloudwatch.set_alarm_state(
                AlarmName=spec.name,
                StateValue=decision.state,
                StateReason=decision.reason[:1023],
                StateReasonData=json.dumps(decision.reason_data),
            )
            self._ours.add(key)
            self.changes += 1
            LOG.info("alarm %s: %s -> %s: %s", spec.name, alarm.get("StateValue"), decision.state, decision.reason)

    def _held_until(self, key: tuple[str, str], alarm: Mapping[str, Any], spec: AlarmSpec, now: float) -> float:
        """A state that someone else set (SetAlarmState) holds for one period from when it was first
        seen here; 0 when the last change was this evaluator's, or the alarm's creation."""
        stamp = alarm.get("StateUpdatedTimestamp")
        seen = self._stamps.get(key)
        if seen is None or seen[0] != stamp:
            ours = key in self._ours or str(alarm.get("StateReason", "")).startswith("Unchecked")
            self._ours.discard(key)
            seen = self._stamps[key] = (stamp, 0.0 if ours else now)
        return seen[1] + spec.period if seen[1] else 0.0

    @staticmethod
    def fetch(cloudwatch: Any, spec: AlarmSpec, start: int, end: int) -> dict[str, dict[int, float]]:
        """query id -> {period start: value}, through GetMetricData."""
        queries = []
        for query in spec.queries:
            stat: dict[str, Any] = {
                "Metric": {
                    "Namespace": query.namespace,
                    "MetricName": query.name,
                    "Dimensions": [{"Name": n, "Value": v} for n, v in query.dimensions],
                },
                "Period": query.period,
                "Stat": query.stat,
            }
            if query.unit:
                stat["Unit"] = query.unit
            queries.append({"Id": query.id, "MetricStat": stat, "ReturnData": True})
        answer = cloudwatch.get_metric_data(
            MetricDataQueries=queries,
            StartTime=datetime.datetime.fromtimestamp(start, datetime.UTC),
            EndTime=datetime.datetime.fromtimestamp(end, datetime.UTC),
            ScanBy="TimestampAscending",
        )
        series: dict[str, dict[int, float]] = {}
        for result in answer.get("MetricDataResults", []):
            points = series.setdefault(result["Id"], {})
            for stamp, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=False):
                if value is not None:
                    points[int(stamp.timestamp()) // spec.period * spec.period] = float(value)
        return series
