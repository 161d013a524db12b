"""Database behaviour against real PostgreSQL servers: start-up waiting, migrations under
concurrency, password rotation through SSM, and a database outage seen by readiness and liveness."""

from __future__ import annotations

import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from items_support import app_env, free_port, make_app_database, postgres_server, running_app

from items_api.app import create_app
from items_api.config import load_settings
from items_api.credentials import Credentials, CredentialsError, ssm_password_reader
from items_api.db import Database, DatabaseUnavailable, open_connection
from items_api.migrator import Migration, MigrationError, load_migrations, migrate


def fresh_database(pg, ssm) -> object:
    return make_app_database(pg, ssm, secrets.token_hex(4))


def database_for(db, aws_env, **overrides) -> Database:
    settings = load_settings(app_env(db, aws_env, **overrides))
    reader = ssm_password_reader(settings.database.password_ssm_param, settings.aws_region)
    return Database(settings.database, Credentials(reader))


# -- SSM -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("aws_env")
def test_password_is_read_from_ssm_at_the_endpoint_from_the_environment(app_db):
    assert ssm_password_reader(app_db.ssm_param, "us-east-1")() == app_db.password


@pytest.mark.usefixtures("aws_env")
def test_missing_parameter_is_a_clear_error():
    with pytest.raises(CredentialsError, match=r"/items-api/test/absent.*ParameterNotFound"):
        ssm_password_reader("/items-api/test/absent", "us-east-1")()


@pytest.mark.usefixtures("aws_env")
def test_unreachable_ssm_is_a_clear_error_without_the_value(app_db, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    with pytest.raises(CredentialsError, match="cannot read SSM parameter") as caught:
        ssm_password_reader(app_db.ssm_param, "us-east-1")()
    assert app_db.password not in str(caught.value)


# -- start-up --------------------------------------------------------------------------------


def test_start_up_waits_for_a_database_that_comes_up_late(ssm, aws_env):
    with postgres_server() as server:
        db = make_app_database(server, ssm, "late")
        server.stop()
        starter = threading.Timer(2.0, server.start)
        starter.start()
        try:
            started = time.monotonic()
            with running_app(db, aws_env, DB_STARTUP_TIMEOUT="30") as app:
                assert time.monotonic() - started >= 1.5
                assert app.test_client().get("/health").status_code == 200
        finally:
            starter.join()


def test_start_up_gives_up_after_the_startup_timeout(app_db, aws_env):
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable, match=r"not ready after 2s"):
        create_app(load_settings(app_env(app_db, aws_env, DB_PORT=str(free_port()), DB_STARTUP_TIMEOUT="2")))
    assert time.monotonic() - started < 10


# -- migrations ------------------------------------------------------------------------------


def test_migrations_are_applied_once_when_instances_start_together(pg, ssm, aws_env):
    db = fresh_database(pg, ssm)
    database = database_for(db, aws_env)
    # Not idempotent and slow: without the lock, concurrent runners would collide on CREATE TABLE.
    migrations = [
        Migration(1, "slow_table", "SELECT pg_sleep(0.5); CREATE TABLE slow_one (id int);"),
        Migration(2, "second", "CREATE TABLE slow_two (id int);"),
        *[Migration(m.version + 2, m.name, m.sql) for m in load_migrations()],
    ]

    def run() -> list[int]:
        with database.connect() as conn:
            return migrate(conn, migrations)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: run(), range(4)))

    assert sorted(results, key=len) == [[], [], [], [m.version for m in migrations]]
    versions = db.sql("SELECT version FROM schema_migrations ORDER BY version").split()
    assert versions == [str(m.version) for m in migrations]


def test_app_start_up_migrates_and_a_second_start_finds_nothing_to_do(pg, ssm, aws_env):
    db = fresh_database(pg, ssm)
    with running_app(db, aws_env), running_app(db, aws_env, DEPLOYMENT_COLOR="green"):
        pass
    assert db.sql("SELECT count(*) FROM schema_migrations").strip() == str(len(load_migrations()))
    assert db.sql("SELECT to_regclass('items') IS NOT NULL").strip() == "t"


def test_a_failing_migration_leaves_nothing_behind(pg, ssm, aws_env):
    db = fresh_database(pg, ssm)
    database = database_for(db, aws_env)
    broken = [Migration(1, "broken", "CREATE TABLE half_done (id int); SELECT * FROM no_such_table;")]
    with database.connect() as conn, pytest.raises(psycopg.errors.UndefinedTable):
        migrate(conn, broken)
    assert db.sql("SELECT count(*) FROM schema_migrations").strip() == "0"
    assert db.sql("SELECT to_regclass('half_done') IS NULL").strip() == "t"
    # The lock was released: the next run goes ahead.
    with database.connect() as conn:
        assert migrate(conn, [Migration(1, "fixed", "CREATE TABLE half_done (id int);")]) == [1]


def test_a_changed_migration_stops_start_up(pg, ssm, aws_env):
    db = fresh_database(pg, ssm)
    database = database_for(db, aws_env)
    with database.connect() as conn:
        migrate(conn, [Migration(1, "one", "CREATE TABLE one (id int);")])
    with database.connect() as conn, pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(conn, [Migration(1, "one", "CREATE TABLE one (id bigint);")])


def test_a_held_lock_times_out_with_a_clear_error(pg, ssm, aws_env):
    from items_api.migrator import LOCK_KEY

    db = fresh_database(pg, ssm)
    database = database_for(db, aws_env)
    with database.connect(autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        with database.connect() as conn, pytest.raises(MigrationError, match="held the migration lock"):
            migrate(conn, load_migrations(), lock_timeout=0.5)


# -- password rotation -----------------------------------------------------------------------


def terminate_sessions(db) -> None:
    db.sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{db.user}'")  # noqa: S608


def test_rotated_password_is_picked_up_without_a_restart(pg, ssm, aws_env):
    db = fresh_database(pg, ssm)
    with running_app(db, aws_env) as app:
        client = app.test_client()
        assert client.post("/items", json={"name": "before"}).status_code == 201
        credentials = app.extensions["items_api.database"].credentials
        fetches = credentials.fetches

        db.rotate_password(ssm, secrets.token_urlsafe(16))
        # Existing sessions survive a rotation; losing them (failover, max lifetime) forces new ones.
        terminate_sessions(db)

        response = client.post("/items", json={"name": "after"})
        assert response.status_code == 201, response.get_json()
        assert client.get("/health").status_code == 200
        assert credentials.fetches == fetches + 1


def test_password_is_re_read_once_per_rejected_connection(pg, ssm, aws_env):
    db = fresh_database(pg, ssm)
    database = database_for(db, aws_env)
    reads = []
    credentials = Credentials(lambda: reads.append(1) or db.password)
    old_password = db.password
    db.server.set_password(db.user, "changed-" + secrets.token_hex(4))  # SSM not updated (yet)

    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        open_connection(database.settings, credentials)
    assert len(reads) == 2  # start-up read + exactly one re-read

    db.server.set_password(db.user, old_password)
    with open_connection(database.settings, credentials) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert len(reads) == 2


def test_concurrent_rejections_share_one_re_read(pg, ssm, aws_env):
    db = fresh_database(pg, ssm)
    database = database_for(db, aws_env)
    reads = []
    new_password = secrets.token_urlsafe(12)
    current = {"value": db.password}
    credentials = Credentials(lambda: reads.append(1) or current["value"])
    db.server.set_password(db.user, new_password)
    current["value"] = new_password

    def connect_once() -> int:
        with open_connection(database.settings, credentials) as conn:
            return conn.execute("SELECT 1").fetchone()[0]

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(lambda _: connect_once(), range(4))) == [1, 1, 1, 1]
    assert len(reads) == 2


# -- outage ----------------------------------------------------------------------------------


def wait_for_status(client, path: str, status: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(path)
        if response.status_code == status:
            return
        assert time.monotonic() < deadline, f"{path} stayed {response.status_code}, wanted {status}"
        time.sleep(0.2)


def test_database_outage_fails_readiness_but_not_liveness(ssm, aws_env):
    with postgres_server() as server:
        db = make_app_database(server, ssm, "outage")
        with running_app(db, aws_env, DB_POOL_TIMEOUT="1") as app:
            client = app.test_client()
            health = client.get("/health")
            assert health.status_code == 200
            assert health.get_json()["checks"]["database"]["status"] == "ok"
            assert health.get_json()["deployment"] == "blue"

            server.stop()

            health = client.get("/health")
            assert health.status_code == 503
            assert health.get_json()["status"] == "unavailable"
            assert health.get_json()["version"] == "1.2.3"
            assert client.get("/live").status_code == 200
            created = client.post("/items", json={"name": "during outage"})
            assert created.status_code == 503
            assert created.get_json()["error"]["code"] == "database_unavailable"
            assert created.headers["Retry-After"]
            assert client.get("/items").status_code == 503

            server.start()

            wait_for_status(client, "/health", 200)
            assert client.get("/live").status_code == 200
            assert client.post("/items", json={"name": "after outage"}).status_code == 201
            assert client.get("/items").get_json()["total"] == 1
