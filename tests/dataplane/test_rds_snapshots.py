"""DB snapshots are real copies of the database: a restored instance holds exactly the rows that
were committed when the snapshot was taken, with the snapshot's master password until
ModifyDBInstance changes it; a deleted snapshot's copy goes."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from .conftest import DP_MASTER_PASSWORD, DP_MASTER_USER, dp_wait_until
from .test_rds import connect, local

NEW_PASSWORD = "a-password-set-after-the-restore"


def snapshot_status(cloud, snapshot: str) -> str:
    return cloud.rds.describe_db_snapshots(DBSnapshotIdentifier=snapshot)["DBSnapshots"][0]["Status"]


def copy_of(cloud, snapshot: str) -> dict | None:
    return next((c for c in cloud.plane.rds.snapshot_status() if c["snapshot"] == snapshot), None)


def session(cloud, identifier: str, password: str = DP_MASTER_PASSWORD) -> psycopg.Connection:
    host, _, port = local(cloud, identifier)["address"].rpartition(":")
    return psycopg.connect(
        host=host, port=int(port), user=DP_MASTER_USER, password=password, dbname="app", autocommit=True
    )


def write(cloud, identifier: str, ids: range) -> None:
    with session(cloud, identifier) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY, name text)")
        for i in ids:  # each its own committed transaction
            connection.execute("INSERT INTO items VALUES (%s, %s)", (i, f"item {i}"))


def ids_in(cloud, identifier: str, password: str = DP_MASTER_PASSWORD) -> list[int]:
    with session(cloud, identifier, password) as connection:
        return [row[0] for row in connection.execute("SELECT id FROM items ORDER BY id")]


def restore(cloud, identifier: str, snapshot: str) -> dict:
    instance = cloud.rds.restore_db_instance_from_db_snapshot(
        DBInstanceIdentifier=identifier, DBSnapshotIdentifier=snapshot, DBInstanceClass="db.t4g.micro"
    )["DBInstance"]
    dp_wait_until(
        lambda: (local(cloud, identifier) or {}).get("state") in ("available", "failed"),
        60,
        what=f"{identifier} restored: {cloud.plane.rds.status()}",
    )
    return instance


def test_a_snapshot_of_a_running_instance_restores_exactly_the_rows_committed_before_it(dp_cloud):
    dp_cloud.create_database("snap-source")
    write(dp_cloud, "snap-source", range(1, 301))
    answer = dp_cloud.rds.create_db_snapshot(DBInstanceIdentifier="snap-source", DBSnapshotIdentifier="snap-manual")
    assert answer["DBSnapshot"]["Status"] == "creating"  # until the data plane has copied the database
    dp_wait_until(lambda: snapshot_status(dp_cloud, "snap-manual") == "available", 60, what="the snapshot available")
    copy = copy_of(dp_cloud, "snap-manual")
    assert copy["instance"] == "snap-source" and copy["method"] == "pg_basebackup"
    assert (Path(copy["data_dir"]) / "PG_VERSION").read_text().strip() == "15"
    write(dp_cloud, "snap-source", range(301, 351))  # after the snapshot: not in it

    instance = restore(dp_cloud, "snap-restored", "snap-manual")
    restored = local(dp_cloud, "snap-restored")
    assert restored["state"] == "available", restored["error"]
    assert restored["address"] != local(dp_cloud, "snap-source")["address"]
    assert ids_in(dp_cloud, "snap-restored") == list(range(1, 301))
    assert ids_in(dp_cloud, "snap-source") == list(range(1, 351))  # the source goes on unchanged
    # Tasks reach it by the endpoint name the API reports, with the snapshot's password.
    assert connect(dp_cloud, instance["Endpoint"], DP_MASTER_USER, DP_MASTER_PASSWORD).returncode == 0

    dp_cloud.rds.modify_db_instance(
        DBInstanceIdentifier="snap-restored", MasterUserPassword=NEW_PASSWORD, ApplyImmediately=True
    )
    dp_wait_until(
        lambda: connect(dp_cloud, instance["Endpoint"], DP_MASTER_USER, NEW_PASSWORD).returncode == 0,
        20,
        what="the password set after the restore accepted",
    )
    assert connect(dp_cloud, instance["Endpoint"], DP_MASTER_USER, DP_MASTER_PASSWORD).returncode != 0
    assert ids_in(dp_cloud, "snap-restored", NEW_PASSWORD) == list(range(1, 301))

    dp_cloud.rds.delete_db_snapshot(DBSnapshotIdentifier="snap-manual")
    dp_wait_until(lambda: not Path(copy["data_dir"]).exists(), 10, what="the deleted snapshot's copy removed")
    for identifier in ("snap-source", "snap-restored"):
        dp_cloud.rds.delete_db_instance(DBInstanceIdentifier=identifier, SkipFinalSnapshot=True)
    dp_wait_until(lambda: not local(dp_cloud, "snap-source") and not local(dp_cloud, "snap-restored"), 30)


def test_the_final_snapshot_of_a_deleted_instance_brings_back_every_row_under_the_same_name(dp_cloud):
    dp_cloud.create_database("snap-final")
    write(dp_cloud, "snap-final", range(1, 201))
    data_dir = Path(local(dp_cloud, "snap-final")["data_dir"])
    dp_cloud.rds.delete_db_instance(DBInstanceIdentifier="snap-final", FinalDBSnapshotIdentifier="snap-final-last")
    dp_wait_until(lambda: local(dp_cloud, "snap-final") is None, 30, what="the instance removed")
    assert not data_dir.exists()  # the data is gone with the instance; the snapshot holds a copy
    dp_wait_until(lambda: snapshot_status(dp_cloud, "snap-final-last") == "available", 30, what="available")
    assert copy_of(dp_cloud, "snap-final-last")["method"] == "copy of the stopped cluster"

    restore(dp_cloud, "snap-final", "snap-final-last")
    assert local(dp_cloud, "snap-final")["state"] == "available", local(dp_cloud, "snap-final")["error"]
    assert ids_in(dp_cloud, "snap-final") == list(range(1, 201))
    dp_cloud.rds.delete_db_instance(DBInstanceIdentifier="snap-final", SkipFinalSnapshot=True)
    dp_cloud.rds.delete_db_snapshot(DBSnapshotIdentifier="snap-final-last")
    dp_wait_until(lambda: local(dp_cloud, "snap-final") is None and copy_of(dp_cloud, "snap-final-last") is None, 30)


def test_a_snapshot_without_a_copy_of_its_data_does_not_restore_an_empty_database(dp_cloud):
    dp_cloud.create_database("snap-auto")
    automated = dp_cloud.rds.describe_db_snapshots(DBInstanceIdentifier="snap-auto", SnapshotType="automated")
    snapshot = automated["DBSnapshots"][0]["DBSnapshotIdentifier"]  # moto's, taken at creation: no copy
    restore(dp_cloud, "snap-auto-restored", snapshot)
    restored = local(dp_cloud, "snap-auto-restored")
    assert restored["state"] == "failed" and "has no copy of its data" in restored["error"]
    for identifier in ("snap-auto", "snap-auto-restored"):
        dp_cloud.rds.delete_db_instance(DBInstanceIdentifier=identifier, SkipFinalSnapshot=True)


def test_a_snapshot_still_being_copied_cannot_be_restored(dp_cloud):
    from moto.rds.models import rds_backends

    dp_cloud.create_database("snap-busy")
    dp_cloud.rds.create_db_snapshot(DBInstanceIdentifier="snap-busy", DBSnapshotIdentifier="snap-busy-1")
    dp_wait_until(lambda: snapshot_status(dp_cloud, "snap-busy-1") == "available", 60, what="available")
    # As while a copy is being made (a large database): the API refuses the restore, as AWS does.
    rds_backends[dp_cloud.plane.account_id]["us-east-1"].database_snapshots["snap-busy-1"].status = "creating"
    with pytest.raises(dp_cloud.rds.exceptions.ClientError, match="InvalidDBSnapshotState"):
        dp_cloud.rds.restore_db_instance_from_db_snapshot(
            DBInstanceIdentifier="snap-busy-restored", DBSnapshotIdentifier="snap-busy-1"
        )
    dp_cloud.rds.delete_db_instance(DBInstanceIdentifier="snap-busy", SkipFinalSnapshot=True)
    dp_cloud.rds.delete_db_snapshot(DBSnapshotIdentifier="snap-busy-1")
