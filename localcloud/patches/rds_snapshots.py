"""A manual DB snapshot is ``creating`` until its data is copied, and only an available one restores.

On AWS, ``CreateDBSnapshot`` (and the final snapshot of ``DeleteDBInstance``) returns a snapshot in
``creating``; it becomes ``available`` once RDS has copied the instance's storage, and
``RestoreDBInstanceFromDBSnapshot`` refuses a snapshot that is not available
(InvalidDBSnapshotState). moto makes every snapshot ``available`` at once and holds no data. When a
data plane runs the instances (:data:`rds_reboot_db_instance.ENGINES_RUN`), a new manual snapshot
of a PostgreSQL instance starts ``creating``, the data plane copies the database
(``localcloud.dataplane.rds_snapshots``) and sets it ``available``; the emulator alone has no data
to copy, so its snapshots stay ``available`` at once. Automated snapshots (moto takes one when an
instance is created) are left as moto makes them.

moto restores an instance as a copy of the snapshot's instance record; which snapshot it came from
is not in the API (nor is it on AWS). :data:`RESTORED` keeps it, for the data plane only, so that it
starts the new instance's PostgreSQL from the snapshot's copy instead of an empty one.
"""

from __future__ import annotations

from moto.rds.exceptions import RDSClientError
from moto.rds.models import RDSBackend

from localcloud.patches.rds_reboot_db_instance import ENGINES_RUN

# (account, region, instance identifier) -> the snapshot identifier it was restored from.
RESTORED: dict[tuple[str, str, str], str] = {}


def apply() -> None:
    create_db_snapshot = RDSBackend.create_db_snapshot
    create_db_instance = RDSBackend.create_db_instance
    restore = RDSBackend.restore_db_instance_from_db_snapshot

    def create_snapshot(self, db_instance_identifier: str, db_snapshot_identifier: str, *args, **kwargs):
        snapshot = create_db_snapshot(self, db_instance_identifier, db_snapshot_identifier, *args, **kwargs)
        manual = snapshot.snapshot_type == "manual"
        if manual and snapshot.engine == "postgres" and ENGINES_RUN["planes"] > 0:
            snapshot.status = "creating"
        return snapshot

    def create_instance(self, db_kwargs: dict):
        database = create_db_instance(self, db_kwargs)
        RESTORED.pop((self.account_id, self.region_name, database.db_instance_identifier), None)
        return database

    def restore_from_snapshot(self, from_snapshot_id: str, overrides: dict):
        name = from_snapshot_id.rsplit(":", 1)[-1] if from_snapshot_id.startswith("arn:") else from_snapshot_id
        snapshot = self.describe_db_snapshots(db_instance_identifier=None, db_snapshot_identifier=name)[0]
        if snapshot.status != "available":
            raise RDSClientError(
                "InvalidDBSnapshotState", f"Snapshot {snapshot.db_snapshot_identifier} is not in available state."
            )
        database = restore(self, from_snapshot_id, overrides)
        RESTORED[(self.account_id, self.region_name, database.db_instance_identifier)] = snapshot.db_snapshot_identifier
        return database

    RDSBackend.create_db_snapshot = create_snapshot
    RDSBackend.create_db_instance = create_instance
    RDSBackend.restore_db_instance_from_db_snapshot = restore_from_snapshot
