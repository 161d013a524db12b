"""Fixtures for the items-api tests: a real PostgreSQL server (run as an unprivileged user when we
are root), SSM served by the local AWS API (moto), the app in-process, and the app under gunicorn.

Every process started here is stopped in a finaliser, whatever the tests' outcome.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcloud.awsapi import AwsApiProcess as AwsApi

# Imported before app/ joins sys.path: app/tests would otherwise join the ``tests`` namespace.
from localcloud.postgres import PostgresServer

# The app is imported as the platform runs it, from app/ (appended, so it shadows nothing).
APP_DIR = Path(__file__).resolve().parents[1]
if str(APP_DIR) not in sys.path:
    sys.path.append(str(APP_DIR))

from items_support import (  # noqa: E402
    REGION,
    AppDatabase,
    Gunicorn,
    app_env,
    make_app_database,
    postgres_server,
    running_app,
    start_gunicorn,
)


@pytest.fixture(scope="session")
def aws_api(tmp_path_factory) -> Iterator[AwsApi]:
    api = AwsApi(tmp_path_factory.mktemp("awsapi") / "awsapi.log")
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture(scope="session")
def aws_env(aws_api) -> Iterator[dict[str, str]]:
    """boto3 pointed at the local AWS API, through the same variables a task gets."""
    env = {
        "AWS_ENDPOINT_URL": aws_api.endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        yield env


@pytest.fixture(scope="session")
def ssm(aws_api):
    return aws_api.client("ssm", region=REGION)


@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def app_db(pg, ssm) -> AppDatabase:
    return make_app_database(pg, ssm, "main")


@pytest.fixture
def env(app_db, aws_env, monkeypatch) -> dict[str, str]:
    """The app's environment variables set in this process."""
    values = app_env(app_db, aws_env)
    for name in ("DB_PASSWORD", "GUNICORN_WORKERS", "WEB_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture(scope="session")
def shared_app(app_db, aws_env):
    """One in-process app for the session (start-up costs an SSM read and a migration check)."""
    with running_app(app_db, aws_env) as app:
        yield app


@pytest.fixture
def client(shared_app, app_db):
    """A test client over an empty items table."""
    app_db.sql("TRUNCATE items")
    return shared_app.test_client()


# -- gunicorn ---------------------------------------------------------------------------------


@pytest.fixture
def gunicorn_factory(tmp_path) -> Iterator:
    """Start gunicorns; every one is stopped at teardown."""
    started: list[Gunicorn] = []

    def start(env: dict[str, str], **kwargs) -> Gunicorn:
        server = start_gunicorn(env, tmp_path / f"gunicorn{len(started)}", **kwargs)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
