"""TLS to the local databases, as RDS serves it: each server's certificate is issued by the local cloud's
CA for the instance's endpoint name, so ``sslmode=verify-full`` against that one file passes; the instance's
DB parameter group's ``rds.force_ssl`` decides whether a plaintext connection is refused, and a change of it
applies without a restart. The app, given ``DB_SSLMODE=verify-full`` and the CA as ``DB_SSLROOTCERT``,
connects over TLS: the code path it takes against RDS with the RDS CA bundle."""

from __future__ import annotations

import urllib.request

import psycopg
import pytest

from .conftest import DP_MASTER_PASSWORD, DP_MASTER_USER, dp_wait_until

IDENTIFIER = "tls-db"
GROUP = "tls-db-postgres15"


def set_force_ssl(cloud, value: str) -> None:
    cloud.rds.modify_db_parameter_group(
        DBParameterGroupName=GROUP,
        Parameters=[{"ParameterName": "rds.force_ssl", "ParameterValue": value, "ApplyMethod": "immediate"}],
    )


@pytest.fixture(scope="module")
def cloud(dp_cloud):
    dp_cloud.rds.create_db_parameter_group(
        DBParameterGroupName=GROUP, DBParameterGroupFamily="postgres15", Description="TLS only"
    )
    set_force_ssl(dp_cloud, "1")
    dp_cloud.rds.create_db_instance(
        DBInstanceIdentifier=IDENTIFIER,
        Engine="postgres",
        EngineVersion="15",
        DBInstanceClass="db.t4g.micro",
        MasterUsername=DP_MASTER_USER,
        MasterUserPassword=DP_MASTER_PASSWORD,
        DBName="app",
        AllocatedStorage=20,
        DBParameterGroupName=GROUP,
    )
    dp_cloud.api.client("ssm").put_parameter(
        Name=f"/dp/{IDENTIFIER}/password", Value=DP_MASTER_PASSWORD, Type="SecureString", Overwrite=True
    )
    dp_wait_until(lambda: (server(dp_cloud) or {}).get("state") == "available", 90, what="the database available")
    endpoint = dp_cloud.rds.describe_db_instances(DBInstanceIdentifier=IDENTIFIER)["DBInstances"][0]["Endpoint"]
    dp_cloud.database = {"identifier": IDENTIFIER, **endpoint, "parameter": f"/dp/{IDENTIFIER}/password"}
    return dp_cloud


def server(cloud) -> dict | None:
    return next((d for d in cloud.plane.rds.status() if d["identifier"] == IDENTIFIER), None)


def ca_file(cloud) -> str:
    return cloud.plane.tls_cert[0]


def connect(cloud, **tls):
    """A connection to the instance by its endpoint name (``hostaddr``: the name resolves only in a task)."""
    ip = server(cloud)["address"].split(":")[0]
    return psycopg.connect(
        host=cloud.database["Address"],
        hostaddr=ip,
        port=cloud.database["Port"],
        user=DP_MASTER_USER,
        password=DP_MASTER_PASSWORD,
        dbname="app",
        connect_timeout=5,
        **tls,
    )


def test_force_ssl_refuses_plaintext_and_verify_full_with_the_local_ca_passes(cloud):
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        connect(cloud, sslmode="disable")
    with connect(cloud, sslmode="verify-full", sslrootcert=ca_file(cloud)) as connection:
        assert connection.pgconn.ssl_in_use
        assert connection.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()").fetchone() == (True,)
    # The certificate names the endpoint: verified against another name, it fails.
    ip = server(cloud)["address"].split(":")[0]
    with pytest.raises(psycopg.OperationalError, match="does not match host name"):
        psycopg.connect(
            host="other.aaaaaaaaaa.us-east-1.rds.amazonaws.com",
            hostaddr=ip,
            port=cloud.database["Port"],
            user=DP_MASTER_USER,
            password=DP_MASTER_PASSWORD,
            dbname="app",
            connect_timeout=5,
            sslmode="verify-full",
            sslrootcert=ca_file(cloud),
        )
    assert server(cloud)["force_ssl"] is True


def test_turning_force_ssl_off_in_the_parameter_group_admits_plaintext_without_a_restart(cloud):
    pid = server(cloud)["pid"]
    set_force_ssl(cloud, "0")
    try:

        def plaintext_admitted() -> bool:
            try:
                with connect(cloud, sslmode="disable") as connection:
                    return not connection.pgconn.ssl_in_use
            except psycopg.OperationalError:
                return False

        dp_wait_until(plaintext_admitted, 20, interval=0.5, what="a plaintext connection admitted")
        assert server(cloud)["pid"] == pid  # reloaded, not restarted
    finally:
        set_force_ssl(cloud, "1")
    dp_wait_until(lambda: server(cloud)["force_ssl"], 20, what="TLS required again")
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        connect(cloud, sslmode="disable")


def test_the_app_connects_with_verify_full_against_the_ca_it_is_given(cloud):
    cloud.publish("tls1")
    definition = cloud.task_definition(
        "tls", "tls1", environment={"DB_SSLMODE": "verify-full", "DB_SSLROOTCERT": ca_file(cloud)}
    )
    cloud.service("tls", definition, 1)
    try:
        dp_wait_until(lambda: len(cloud.healthy_tasks("tls")) == 1, 60, what="a healthy task")
        task = cloud.tasks("tls", running=True)[0]
        with urllib.request.urlopen(f"http://{task.ip}:8000/health", timeout=5) as response:
            assert response.status == 200
        with urllib.request.urlopen(f"http://{task.ip}:8000/items", timeout=5) as response:
            assert response.status == 200
        with connect(cloud, sslmode="verify-full", sslrootcert=ca_file(cloud)) as connection:
            sessions = connection.execute(
                "select s.ssl from pg_stat_ssl s join pg_stat_activity a using (pid)"
                " where a.application_name = 'items-api'"
            ).fetchall()
        assert sessions and all(ssl for (ssl,) in sessions)
    finally:
        cloud.remove_service("tls")
