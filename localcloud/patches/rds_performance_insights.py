"""RDS instances report Performance Insights as asked (``PerformanceInsightsEnabled``,
``PerformanceInsightsRetentionPeriod``, 7 days when enabled without a period, as AWS's free tier),
on CreateDBInstance and ModifyDBInstance. moto takes ``EnablePerformanceInsights`` and reports
nothing, so amazon.aws.rds_instance modifies the instance again on every run."""

from __future__ import annotations

from moto.rds.models import DBInstance

DEFAULT_RETENTION_DAYS = 7


def _follow(instance: DBInstance, enabled, retention) -> None:
    if enabled is not None:
        instance.performance_insights_enabled = str(enabled).lower() == "true"
    if not getattr(instance, "performance_insights_enabled", False):
        instance.performance_insights_retention_period = None
        return
    if retention is not None:
        instance.performance_insights_retention_period = int(retention)
    elif getattr(instance, "performance_insights_retention_period", None) is None:
        instance.performance_insights_retention_period = DEFAULT_RETENTION_DAYS


def apply() -> None:
    init = DBInstance.__init__
    update = DBInstance.update

    def init_with_insights(self, *args, **kwargs):
        enabled = kwargs.pop("enable_performance_insights", None)
        retention = kwargs.pop("performance_insights_retention_period", None)
        init(self, *args, **kwargs)
        self.performance_insights_enabled = False
        self.performance_insights_retention_period = None
        _follow(self, enabled, retention)

    def update_with_insights(self, *args, **kwargs):
        enabled = kwargs.pop("enable_performance_insights", None)
        retention = kwargs.pop("performance_insights_retention_period", None)
        update(self, *args, **kwargs)
        _follow(self, enabled, retention)

    DBInstance.__init__ = init_with_insights
    DBInstance.update = update_with_insights
