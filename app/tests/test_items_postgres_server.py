"""localcloud.postgres, the throwaway PostgreSQL controller the fixtures (and the local cloud) use."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil

import psycopg
import pytest
from items_support import free_port, postgres_server, temp_dir

from localcloud.postgres import PostgresError, PostgresServer


@pytest.fixture(scope="module")
def server():
    with postgres_server("items-pgctl-") as started:
        yield started


def test_runs_as_an_unprivileged_user(server):
    data_dir = server.data_dir
    owner = pwd.getpwuid(data_dir.stat().st_uid).pw_name
    if os.geteuid() == 0:
        assert owner == "postgres"
    with psycopg.connect(server.dsn()) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        # While the connection is open: its backend process exits when it closes.
        assert os.stat(f"/proc/{pid}").st_uid != 0


def test_tcp_needs_the_right_password(server):
    with psycopg.connect(server.dsn()) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(server.dsn(password=secrets.token_hex(8)))


def test_listens_on_its_own_address_only(server):
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(server.dsn().replace("host=127.0.0.1", "host=127.0.0.2"), connect_timeout=2)


def test_roles_databases_and_password_changes(server):
    password = 'it\'s "quoted" \\ and spaced ' + secrets.token_hex(4)
    server.create_role("ctl_user", password)
    server.create_database("ctl_db", owner="ctl_user")
    with psycopg.connect(server.dsn("ctl_user", password, "ctl_db")) as conn:
        assert conn.execute("SELECT current_database(), current_user").fetchone() == ("ctl_db", "ctl_user")
        server.set_password("ctl_user", "rotated")
        assert conn.execute("SELECT 1").fetchone() == (1,)  # existing sessions survive
    with psycopg.connect(server.dsn("ctl_user", "rotated", "ctl_db")) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert password not in server.log_file.read_text(errors="replace")


def test_failing_sql_is_reported(server):
    with pytest.raises(PostgresError, match="no_such_table"):
        server.psql("SELECT * FROM no_such_table")


def test_stop_start_and_status():
    with postgres_server("items-pgctl2-") as started:
        assert started.is_running()
        started.stop()
        assert not started.is_running()
        started.stop()  # idempotent
        started.start()
        assert started.is_running()


def test_init_creates_the_named_database_and_refuses_a_used_directory():
    root = temp_dir("items-pgctl3-")
    server = PostgresServer(root / "data", free_port(), password=secrets.token_hex(8), dbname="app_db")
    try:
        server.init()
        server.start()
        assert server.psql("SELECT current_database()").strip() == "app_db"
        with pytest.raises(PostgresError, match="not empty"):
            PostgresServer(root / "data", server.port).init()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
