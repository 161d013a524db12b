"""RDS gp3 storage reports its baseline throughput (125 MiB/s) and IOPS (3000) when none were asked
for, as AWS does. moto reports none, and amazon.aws.rds_instance fails on the next run reading
StorageThroughput (KeyError)."""

from __future__ import annotations

from moto.rds.models import DBInstance

GP3_BASELINE_THROUGHPUT = 125
GP3_BASELINE_IOPS = 3000


def apply() -> None:
    throughput = DBInstance.storage_throughput

    def set_storage_throughput(self, value):
        if not value and self.storage_type == "gp3":
            value = GP3_BASELINE_THROUGHPUT
        throughput.fset(self, value)

    DBInstance.storage_throughput = property(throughput.fget, set_storage_throughput)

    init = DBInstance.__init__

    def init_with_gp3_baseline(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if self.storage_type == "gp3":
            if not self.storage_throughput:
                self.storage_throughput = GP3_BASELINE_THROUGHPUT
            if not getattr(self, "iops", None):
                self.iops = GP3_BASELINE_IOPS

    DBInstance.__init__ = init_with_gp3_baseline
