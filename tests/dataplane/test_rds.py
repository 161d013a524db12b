"""RDS instances become real PostgreSQL servers that tasks reach through the endpoint name the
RDS API reports, with the instance's master user and password, following the API's changes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from localcloud.cli import port_open
from localcloud.dataplane.hosts import HostsFile, parse_hosts, write_hosts

from .conftest import DP_MASTER_PASSWORD, DP_MASTER_USER, dp_wait_until

TASKENV = Path(__file__).resolve().parents[2] / "localcloud" / "dataplane" / "taskenv"

# -- the names tasks resolve ----------------------------------------------------------------------


def in_a_task(code: str, hosts_file: Path | None) -> subprocess.CompletedProcess:
    """Run Python as a task process runs: sitecustomize from taskenv, the data plane's hosts file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LOCALCLOUD"))}
    env["PYTHONPATH"] = str(TASKENV)
    if hosts_file is not None:
        env["LOCALCLOUD_HOSTS_FILE"] = str(hosts_file)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_hosts_file_round_trips_and_is_read_again_when_it_changes(tmp_path):
    path = tmp_path / "hosts"
    write_hosts(path, {"db.aaaaaaaaaa.us-east-1.rds.amazonaws.com": "127.0.5.1"})
    assert parse_hosts(path.read_text()) == {"db.aaaaaaaaaa.us-east-1.rds.amazonaws.com": "127.0.5.1"}
    hosts = HostsFile(path)
    assert hosts.lookup("DB.aaaaaaaaaa.us-east-1.rds.amazonaws.com.") == "127.0.5.1"  # case, trailing dot
    write_hosts(path, {"db.aaaaaaaaaa.us-east-1.rds.amazonaws.com": "127.0.5.22", "other.example": "127.0.5.3"})
    assert hosts.lookup("db.aaaaaaaaaa.us-east-1.rds.amazonaws.com") == "127.0.5.22"
    assert hosts.lookup("unknown.example") is None
    assert parse_hosts("# comment\n127.0.5.4 a b  # trailing\nnot-an-ip c\n\n") == {"a": "127.0.5.4", "b": "127.0.5.4"}


def test_a_task_resolves_the_mapped_names_and_leaves_the_others_to_the_system(tmp_path):
    hosts = tmp_path / "hosts"
    write_hosts(hosts, {"mydb.aaaaaaaaaa.us-east-1.rds.amazonaws.com": "127.0.5.9"})
    code = (
        "import socket, json\n"
        "name = 'mydb.aaaaaaaaaa.us-east-1.rds.amazonaws.com'\n"
        "mapped = sorted({a[4][0] for a in socket.getaddrinfo(name, 5432, type=socket.SOCK_STREAM)})\n"
        "local = socket.getaddrinfo('localhost', 80)[0][4][0]\n"
        "try:\n"
        "    socket.getaddrinfo('nothing.aaaaaaaaaa.us-east-1.rds.amazonaws.com', 5432)\n"
        "    missing = 'resolved'\n"
        "except socket.gaierror:\n"
        "    missing = 'gaierror'\n"
        "print(json.dumps([mapped, socket.gethostbyname(name), socket.gethostbyname_ex(name)[2], local, missing]))\n"
    )
    result = in_a_task(code, hosts)
    assert result.returncode == 0, result.stderr
    mapped, by_name, by_name_ex, local, missing = json.loads(result.stdout)
    assert (mapped, by_name, by_name_ex) == (["127.0.5.9"], "127.0.5.9", ["127.0.5.9"])
    assert local in ("127.0.0.1", "::1") and missing == "gaierror"
    assert in_a_task(code, None).returncode != 0  # without the data plane's file the name resolves nowhere


# -- the databases --------------------------------------------------------------------------------

CONNECT = (
    "import psycopg, sys, json\n"
    "host, port, user, password = sys.argv[1:5]\n"
    "settings = dict(host=host, port=int(port), user=user, password=password, dbname='app', connect_timeout=5)\n"
    "with psycopg.connect(**settings) as c:\n"
    "    print(json.dumps(c.execute('select current_user, current_database(), host(inet_server_addr())').fetchone()))\n"
)


def connect(cloud, endpoint: dict, user: str, password: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LOCALCLOUD"))}
    env.update(PYTHONPATH=str(TASKENV), LOCALCLOUD_HOSTS_FILE=str(cloud.plane.hosts_file))
    argv = [sys.executable, "-c", CONNECT, endpoint["Address"], str(endpoint["Port"]), user, password]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


def local(cloud, identifier: str) -> dict | None:
    return next((d for d in cloud.plane.rds.status() if d["identifier"] == identifier), None)


def listening(address: str) -> bool:
    host, _, port = address.rpartition(":")
    return port_open(host, int(port))


@pytest.fixture(scope="module")
def database(dp_cloud):
    return dp_cloud.create_database("rds-main")


def test_an_instance_is_a_postgres_reachable_by_its_endpoint_name_with_the_master_password(dp_cloud, database):
    assert database["Address"] == "rds-main.aaaaaaaaaa.us-east-1.rds.amazonaws.com" and database["Port"] == 5432
    server = local(dp_cloud, "rds-main")
    result = connect(dp_cloud, database, DP_MASTER_USER, DP_MASTER_PASSWORD)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [DP_MASTER_USER, "app", server["address"].split(":")[0]]
    assert (
        server["address"].startswith("127.0.5.")
        and server["endpoint"] == "rds-main.aaaaaaaaaa.us-east-1.rds.amazonaws.com:5432"
    )
    assert connect(dp_cloud, database, DP_MASTER_USER, "not-the-password").returncode != 0
    data = Path(server["data_dir"])
    assert (data / "PG_VERSION").read_text().strip() == "15"
    assert data.is_relative_to(dp_cloud.plane.state_dir)
    if os.geteuid() == 0:
        assert data.stat().st_uid != 0  # PostgreSQL runs as an unprivileged user


def test_a_master_password_changed_through_the_api_changes_in_postgres(dp_cloud, database):
    dp_cloud.rds.modify_db_instance(
        DBInstanceIdentifier="rds-main", MasterUserPassword="a-rotated-password-2", ApplyImmediately=True
    )
    dp_wait_until(
        lambda: connect(dp_cloud, database, DP_MASTER_USER, "a-rotated-password-2").returncode == 0,
        20,
        what="the new password accepted",
    )
    assert connect(dp_cloud, database, DP_MASTER_USER, DP_MASTER_PASSWORD).returncode != 0


def test_stopping_and_starting_the_instance_stops_and_starts_the_server(dp_cloud, database):  # noqa: ARG001
    address = local(dp_cloud, "rds-main")["address"]
    dp_cloud.rds.stop_db_instance(DBInstanceIdentifier="rds-main")
    dp_wait_until(lambda: local(dp_cloud, "rds-main")["state"] == "stopped", 30, what="stopped")
    assert not listening(address)
    dp_cloud.rds.start_db_instance(DBInstanceIdentifier="rds-main")
    dp_wait_until(lambda: local(dp_cloud, "rds-main")["state"] == "available", 30, what="started")
    assert listening(address)


def test_deleting_the_instance_stops_the_server_and_removes_its_data_and_name(dp_cloud):
    endpoint = dp_cloud.create_database("rds-gone")
    server = local(dp_cloud, "rds-gone")
    assert listening(server["address"])
    dp_cloud.rds.delete_db_instance(DBInstanceIdentifier="rds-gone", SkipFinalSnapshot=True)
    dp_wait_until(lambda: local(dp_cloud, "rds-gone") is None, 30, what="removed")
    assert not listening(server["address"])
    assert not Path(server["data_dir"]).exists()
    assert endpoint["Address"] not in dp_cloud.plane.hosts_file.read_text()
    assert server["address"].split(":")[0] not in dp_cloud.plane.rds.addresses.in_use()


def test_a_password_rds_manages_in_secrets_manager_is_read_from_the_secret(dp_cloud):
    instance = dp_cloud.rds.create_db_instance(
        DBInstanceIdentifier="rds-managed",
        Engine="postgres",
        DBInstanceClass="db.t4g.micro",
        MasterUsername="managed_admin",
        ManageMasterUserPassword=True,
        DBName="app",
        AllocatedStorage=20,
    )["DBInstance"]
    secret = dp_cloud.api.client("secretsmanager").get_secret_value(SecretId=instance["MasterUserSecret"]["SecretArn"])
    password = json.loads(secret["SecretString"])["password"]
    dp_wait_until(lambda: (local(dp_cloud, "rds-managed") or {}).get("state") == "available", 60, what="available")
    result = connect(dp_cloud, instance["Endpoint"], "managed_admin", password)
    assert result.returncode == 0, result.stderr
    dp_cloud.rds.delete_db_instance(DBInstanceIdentifier="rds-managed", SkipFinalSnapshot=True)
    dp_wait_until(lambda: local(dp_cloud, "rds-managed") is None, 30, what="removed")


# -- the supervisor: crashes and reboots ----------------------------------------------------------


class StatusWatch:
    """Every status the API reports for an instance, each change once, read every 20 ms in a thread."""

    def __init__(self, rds, identifier: str):
        self.rds, self.identifier, self.seen = rds, identifier, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            status = self.rds.describe_db_instances(DBInstanceIdentifier=self.identifier)["DBInstances"][0]
            if not self.seen or self.seen[-1] != status["DBInstanceStatus"]:
                self.seen.append(status["DBInstanceStatus"])

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join(5)
        return self.seen


def messages(cloud, identifier: str) -> list[str]:
    events = cloud.rds.describe_events(SourceIdentifier=identifier, SourceType="db-instance")["Events"]
    return [e["Message"] for e in events]


def rows(server: dict) -> psycopg.Connection:
    host, _, port = server["address"].rpartition(":")
    return psycopg.connect(
        host=host, port=int(port), user=DP_MASTER_USER, password=DP_MASTER_PASSWORD, dbname="app", autocommit=True
    )


@pytest.fixture(scope="module")
def supervised(dp_cloud):
    endpoint = dp_cloud.create_database("rds-supervised")
    with rows(local(dp_cloud, "rds-supervised")) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY)")
    return endpoint


def test_a_killed_postmaster_is_restarted_on_the_same_address_keeping_every_committed_row(dp_cloud, supervised):
    before = local(dp_cloud, "rds-supervised")
    with rows(before) as connection:
        start = connection.execute("SELECT coalesce(max(id), 0) FROM items").fetchone()[0]
        for i in range(start + 1, start + 201):  # 200 transactions, each committed (autocommit)
            connection.execute("INSERT INTO items VALUES (%s)", (i,))
    watch = StatusWatch(dp_cloud.rds, "rds-supervised")
    time.sleep(0.1)
    os.kill(before["pid"], signal.SIGKILL)
    killed = time.monotonic()
    dp_wait_until(lambda: "rebooting" in watch.seen, 5, interval=0.02, what=f"rebooting: {watch.seen}")
    dp_wait_until(lambda: watch.seen[-1] == "available", 30, interval=0.02, what=f"available again: {watch.seen}")
    back = time.monotonic() - killed
    assert watch.stop()[-3:] == ["available", "rebooting", "available"]

    after = local(dp_cloud, "rds-supervised")
    assert after["state"] == "available" and after["address"] == before["address"] and after["pid"] != before["pid"]
    assert after["restarts"] == before["restarts"] + 1
    result = connect(dp_cloud, supervised, DP_MASTER_USER, DP_MASTER_PASSWORD)  # by its endpoint name, as tasks do
    assert result.returncode == 0, result.stderr
    with rows(after) as connection:
        assert connection.execute("SELECT count(*), max(id) FROM items").fetchone() == (start + 200, start + 200)
    assert messages(dp_cloud, "rds-supervised")[-2:] == [
        "The database engine stopped unexpectedly and is being restarted",
        "DB instance restarted",
    ]
    print(f"\nkill -9 of the postmaster: available again after {back:.2f} s, statuses {watch.seen}")


def test_reboot_db_instance_restarts_the_server(dp_cloud, supervised):
    before = local(dp_cloud, "rds-supervised")
    answer = dp_cloud.rds.reboot_db_instance(DBInstanceIdentifier="rds-supervised")["DBInstance"]
    assert answer["DBInstanceStatus"] == "rebooting"
    dp_wait_until(
        lambda: (
            dp_cloud.rds.describe_db_instances(DBInstanceIdentifier="rds-supervised")["DBInstances"][0][
                "DBInstanceStatus"
            ]
            == "available"
        ),
        30,
        what="available after the reboot",
    )
    after = local(dp_cloud, "rds-supervised")
    assert after["state"] == "available" and after["pid"] not in (None, before["pid"])
    assert after["restarts"] == before["restarts"] + 1
    result = connect(dp_cloud, supervised, DP_MASTER_USER, DP_MASTER_PASSWORD)
    assert result.returncode == 0, result.stderr
    assert messages(dp_cloud, "rds-supervised")[-2:] == ["DB instance shutdown", "DB instance restarted"]


def test_a_stopped_instance_cannot_be_rebooted(dp_cloud, supervised):  # noqa: ARG001
    dp_cloud.rds.stop_db_instance(DBInstanceIdentifier="rds-supervised")
    try:
        dp_wait_until(lambda: local(dp_cloud, "rds-supervised")["state"] == "stopped", 30, what="stopped")
        with pytest.raises(dp_cloud.rds.exceptions.ClientError, match="InvalidDBInstanceState"):
            dp_cloud.rds.reboot_db_instance(DBInstanceIdentifier="rds-supervised")
    finally:
        dp_cloud.rds.start_db_instance(DBInstanceIdentifier="rds-supervised")
        dp_wait_until(lambda: local(dp_cloud, "rds-supervised")["state"] == "available", 30, what="started")
