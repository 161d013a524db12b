"""A read replica (CreateDBInstanceReadReplica) on the local cloud is a real streaming standby of its source's
server: it starts from a base backup of the running source, is read-only, and a row the source commits shows on
it within seconds; its passwords are the source's, replicated, so a rotation on the source reaches it too."""

from __future__ import annotations

import time

import psycopg
import pytest

from .conftest import DP_MASTER_PASSWORD, DP_MASTER_USER, dp_wait_until

PRIMARY = "rep-db"
REPLICA = "rep-db-replica"


@pytest.fixture(scope="module")
def cloud(dp_cloud):
    dp_cloud.rds.create_db_instance(
        DBInstanceIdentifier=PRIMARY,
        Engine="postgres",
        EngineVersion="15",
        DBInstanceClass="db.t4g.micro",
        MasterUsername=DP_MASTER_USER,
        MasterUserPassword=DP_MASTER_PASSWORD,
        DBName="app",
        AllocatedStorage=20,
        BackupRetentionPeriod=1,
    )
    dp_wait_until(lambda: state(dp_cloud, PRIMARY) == "available", 90, what="the source available")
    with connect(dp_cloud, PRIMARY) as connection:
        connection.execute("CREATE TABLE notes (body text)")
        connection.execute("INSERT INTO notes VALUES ('before the replica')")
    dp_cloud.rds.create_db_instance_read_replica(
        DBInstanceIdentifier=REPLICA, SourceDBInstanceIdentifier=PRIMARY, DBInstanceClass="db.t4g.micro"
    )
    dp_wait_until(lambda: state(dp_cloud, REPLICA) == "available", 90, what="the replica available")
    return dp_cloud


def server(cloud, identifier: str) -> dict:
    return next((d for d in cloud.plane.rds.status() if d["identifier"] == identifier), {})


def state(cloud, identifier: str) -> str | None:
    return server(cloud, identifier).get("state")


def connect(cloud, identifier: str, password: str = DP_MASTER_PASSWORD):
    ip, port = server(cloud, identifier)["address"].split(":")
    return psycopg.connect(
        host=ip, port=int(port), user=DP_MASTER_USER, password=password, dbname="app", connect_timeout=5
    )


def notes(cloud, identifier: str) -> list[str]:
    with connect(cloud, identifier) as connection:
        return [row[0] for row in connection.execute("SELECT body FROM notes ORDER BY body")]


def test_the_replica_is_a_read_only_standby_of_its_source_with_its_rows(cloud):
    assert server(cloud, REPLICA)["replica_of"] == PRIMARY and server(cloud, PRIMARY)["replica_of"] is None
    with connect(cloud, REPLICA) as connection:
        assert connection.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            connection.execute("INSERT INTO notes VALUES ('on the replica')")
    assert notes(cloud, REPLICA) == ["before the replica"]
    # a separate server: its own address, its own process
    assert server(cloud, REPLICA)["address"] != server(cloud, PRIMARY)["address"]
    assert server(cloud, REPLICA)["pid"] not in (None, server(cloud, PRIMARY)["pid"])


def test_a_row_committed_on_the_source_streams_to_the_replica(cloud):
    with connect(cloud, PRIMARY) as connection:
        connection.execute("INSERT INTO notes VALUES ('streamed')")
    started = time.monotonic()
    dp_wait_until(lambda: "streamed" in notes(cloud, REPLICA), 15, what="the row on the replica")
    print(f"\na committed row reached the replica in {time.monotonic() - started:.2f} s")


def test_a_password_rotated_on_the_source_reaches_the_replica(cloud):
    rotated = DP_MASTER_PASSWORD + "-rotated"
    cloud.rds.modify_db_instance(DBInstanceIdentifier=PRIMARY, MasterUserPassword=rotated, ApplyImmediately=True)

    def replica_takes_the_new_one() -> bool:
        try:
            connect(cloud, REPLICA, rotated).close()
            return True
        except psycopg.OperationalError:
            return False

    dp_wait_until(replica_takes_the_new_one, 30, what="the rotated password on the replica")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(cloud, REPLICA).close()
    assert state(cloud, REPLICA) == "available"


def test_deleting_the_replica_stops_its_server_and_leaves_the_source(cloud):
    data_dir = server(cloud, REPLICA)["data_dir"]
    cloud.rds.delete_db_instance(DBInstanceIdentifier=REPLICA, SkipFinalSnapshot=True)
    dp_wait_until(lambda: not server(cloud, REPLICA), 60, what="the replica's server gone")
    import os

    assert not os.path.exists(data_dir)
    assert state(cloud, PRIMARY) == "available"
