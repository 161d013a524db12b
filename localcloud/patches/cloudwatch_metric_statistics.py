"""GetMetricStatistics and GetMetricData answer as CloudWatch does: exact dimensions, periods on
the clock, percentiles; PutMetricData with ``Values``/``Counts`` is stored as one datum.

What AWS does and what moto did:

- A metric is its namespace, name and *whole* set of dimensions: asking for ``RequestCount`` with
  the dimension ``LoadBalancer`` alone gets the load balancer's own metric, not the sum with the
  target groups' metrics that also carry ``LoadBalancer`` (moto matched any datum whose dimensions
  include the ones asked for, so it counted every request twice).
- GetMetricStatistics puts its datapoints on period boundaries (a 60 s period: whole minutes),
  each one stamped with the start of its period; moto started its first period at the first datum.
- ``ExtendedStatistics`` (percentiles such as ``p99``) are answered, from the values published
  with ``Value`` or ``Values``/``Counts``; from a statistic set only when its minimum equals its
  maximum, as CloudWatch documents ("Percentiles ... statistic sets"). moto ignored them, and
  GetMetricData's ``Stat: p99`` gave nothing.
- ``Values``/``Counts`` is one datum carrying a distribution (up to 150 values with their counts);
  moto stored one datum per count, so a load balancer's response times grew the store by one
  object per request.
- Dimensions sort by name and value (moto's comparison was not an order, so GetMetricData's
  dimension match depended on the order the dimensions were given in).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from moto.cloudwatch import models, responses
from moto.cloudwatch.exceptions import InvalidParameterCombination, InvalidParameterValue
from moto.core.responses import ActionResult

PERCENTILE = re.compile(r"^p(100|\d{1,2}(\.\d{1,10})?)$")


class DistributionDatum(models.MetricAggregatedDatum):
    """Values with their counts, as PutMetricData's ``Values``/``Counts`` publish them."""

    def __init__(self, namespace, name, *, values, counts, dimensions, timestamp, unit=None):
        pairs = [(float(v), float(c)) for v, c in zip(values, counts, strict=True) if float(c) > 0]
        super().__init__(
            namespace,
            name,
            min_stat=min((v for v, _ in pairs), default=0.0),
            max_stat=max((v for v, _ in pairs), default=0.0),
            sample_count=sum(c for _, c in pairs),
            sum_stat=sum(v * c for v, c in pairs),
            dimensions=dimensions,
            timestamp=timestamp,
            unit=unit,
        )
        self.pairs = pairs


def weighted_values(data: list[models.MetricDatumBase]) -> list[tuple[float, float]] | None:
    """(value, count) of every datum, or None when a statistic set hides its values."""
    pairs: list[tuple[float, float]] = []
    for datum in data:
        if isinstance(datum, DistributionDatum):
            pairs.extend(datum.pairs)
        elif isinstance(datum, models.MetricDatum):
            pairs.append((float(datum.value), 1.0))
        elif isinstance(datum, models.MetricAggregatedDatum):
            if datum.min != datum.max and datum.sample_count != 1:
                return None
            pairs.append((float(datum.min), float(datum.sample_count)))
    return pairs


def percentile(pairs: list[tuple[float, float]], stat: str) -> float | None:
    """The ``pNN`` of weighted values (nearest rank); None without values."""
    total = sum(count for _, count in pairs)
    if not pairs or total <= 0:
        return None
    rank = max(1.0, math.ceil(float(stat[1:]) / 100.0 * total))
    seen = 0.0
    for value, count in sorted(pairs):
        seen += count
        if seen >= rank:
            return value
    return max(value for value, _ in pairs)


def _same_dimensions(datum: models.MetricDatumBase, wanted: list[dict[str, str]]) -> bool:
    have = sorted((d.name, d.value) for d in datum.dimensions)
    return have == sorted((d["Name"], d.get("Value")) for d in wanted)


_ORIGINAL: dict[str, Any] = {}


def put_metric_data(self, namespace: str, metric_data: list[dict[str, Any]]) -> None:
    for number, metric in enumerate(metric_data, start=1):
        self._validate_parameters_put_metric_data(metric, number)
    plain = [metric for metric in metric_data if not metric.get("Values")]
    if plain:
        _ORIGINAL["put_metric_data"](self, namespace, plain)
    for metric in metric_data:
        if metric.get("Values"):
            values = metric["Values"]
            self.metric_data.append(
                DistributionDatum(
                    namespace,
                    metric["MetricName"],
                    values=values,
                    counts=metric.get("Counts") or [1] * len(values),
                    dimensions=metric.get("Dimensions", ()),
                    timestamp=metric.get("Timestamp"),
                    unit=metric.get("Unit"),
                )
            )


def get_statistics_for_type(self, stat: str):
    if PERCENTILE.match(stat or ""):
        pairs = weighted_values(self.metric_data)
        return None if pairs is None else percentile(pairs, stat)
    return _ORIGINAL["get_statistics_for_type"](self, stat)


def get_metric_statistics(  # noqa: PLR0917 - moto's signature, plus extended_statistics
    self,
    namespace: str,
    metric_name: str,
    start_time: datetime,
    end_time: datetime,
    period: int,
    stats: list[str],
    dimensions: list[dict[str, str]],
    unit: str | None = None,
    extended_statistics: list[str] | None = None,
) -> list[models.Statistics]:
    start_time = start_time.replace(microsecond=0)
    end_time = end_time.replace(microsecond=0)
    if start_time >= end_time:
        raise InvalidParameterValue("The parameter StartTime must be less than the parameter EndTime.")
    for stat in extended_statistics or ():
        if not PERCENTILE.match(stat):
            raise InvalidParameterValue(f"The value {stat} for parameter ExtendedStatistics is not supported.")
    bins: dict[int, list[models.MetricDatumBase]] = {}
    for datum in self.get_all_metrics():
        if datum.namespace != namespace or datum.name != metric_name:
            continue
        if not start_time <= datum.timestamp < end_time or not _same_dimensions(datum, dimensions or []):
            continue
        if unit and datum.unit != unit:
            continue
        epoch = int(datum.timestamp.timestamp())
        bins.setdefault(epoch - epoch % period, []).append(datum)
    answer = []
    for begin in sorted(bins):
        statistics = models.Statistics(stats, datetime.fromtimestamp(begin, UTC))
        statistics.metric_data = bins[begin]
        statistics.unit = bins[begin][-1].unit
        if extended_statistics:
            pairs = weighted_values(bins[begin])
            if pairs is not None:
                statistics.extended_statistics = {stat: percentile(pairs, stat) for stat in extended_statistics}
        answer.append(statistics)
    return answer


def get_metric_statistics_response(self) -> ActionResult:
    statistics = self._get_param("Statistics", [])
    extended = self._get_param("ExtendedStatistics", [])
    if not statistics and not extended:
        raise InvalidParameterCombination("Must specify either Statistics or ExtendedStatistics")
    metric_name = self._get_param("MetricName")
    datapoints = self.cloudwatch_backend.get_metric_statistics(
        self._get_param("Namespace"),
        metric_name,
        self._get_param("StartTime"),
        self._get_param("EndTime"),
        self._get_int_param("Period"),
        statistics,
        unit=self._get_param("Unit"),
        dimensions=self._get_param("Dimensions", []),
        extended_statistics=extended,
    )
    return ActionResult({"Label": metric_name, "Datapoints": datapoints})


def dimension_less_than(self, other) -> bool:
    return (self.name or "", self.value or "") < (other.name or "", other.value or "")


def apply() -> None:
    if _ORIGINAL:
        return
    _ORIGINAL["put_metric_data"] = models.CloudWatchBackend.put_metric_data
    _ORIGINAL["get_statistics_for_type"] = models.Statistics.get_statistics_for_type
    models.CloudWatchBackend.put_metric_data = put_metric_data
    models.CloudWatchBackend.get_metric_statistics = get_metric_statistics
    models.Statistics.get_statistics_for_type = get_statistics_for_type
    models.Dimension.__lt__ = dimension_less_than
    responses.CloudWatchResponse.get_metric_statistics = get_metric_statistics_response


__all__ = ["DistributionDatum", "apply", "percentile"]
