"""RebootDBInstance reboots, and the instance's restarts are RDS events, as on AWS.

moto's ``RebootDBInstance`` returns the instance unchanged. On AWS the instance is ``rebooting``
until its database engine has restarted, then ``available``, and a stopped instance cannot be
rebooted (InvalidDBInstanceState). When a data plane runs the instances (``localcloud.dataplane.rds``
sets :data:`ENGINES_RUN` while it runs), the reboot sets ``rebooting`` and the data plane restarts
the engine and sets ``available`` again; the emulator alone has no engine to restart, so its
instance stays ``available``.

moto's events store knows only the creation, backup and snapshot events; this adds the
availability events of a restart (RDS-EVENT-0004 "DB instance shutdown", RDS-EVENT-0006 "DB
instance restarted") and one for an engine that stopped on its own, which the data plane records
(``DescribeEvents``).
"""

from __future__ import annotations

from moto.rds.exceptions import InvalidDBInstanceStateError
from moto.rds.models import Event, RDSBackend

ENGINES_RUN = {"planes": 0}  # how many data planes run engines in this process

EVENTS = {
    "DB_INSTANCE_SHUTDOWN": {"Categories": ["availability"], "Message": "DB instance shutdown"},
    "DB_INSTANCE_RESTARTED": {"Categories": ["availability"], "Message": "DB instance restarted"},
    "DB_INSTANCE_ENGINE_STOPPED": {
        "Categories": ["failure"],
        "Message": "The database engine stopped unexpectedly and is being restarted",
    },
}


def apply() -> None:
    Event.EVENT_MAP.update(EVENTS)

    def reboot_db_instance(self, db_instance_identifier: str):
        database = self.describe_db_instances(db_instance_identifier)[0]
        if database.status != "available":
            raise InvalidDBInstanceStateError(db_instance_identifier, "stop")  # "... is not in available state."
        if ENGINES_RUN["planes"] > 0:
            database.status = "rebooting"
        return database

    RDSBackend.reboot_db_instance = reboot_db_instance
