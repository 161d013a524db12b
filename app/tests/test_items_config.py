"""Configuration from the environment: defaults, and a clear refusal of anything missing or malformed."""

from __future__ import annotations

import pytest

from items_api.config import ConfigError, load_server_settings, load_settings
from items_api.healthcheck import target

VALID = {
    "APP_VERSION": "2026.11.1-abc123",
    "DEPLOYMENT_COLOR": "green",
    "DB_HOST": "items.cluster-abc.eu-west-1.rds.amazonaws.com",
    "DB_NAME": "items",
    "DB_USER": "items_app",
    "DB_PASSWORD_SSM_PARAM": "/items-api/prod/db-password",
    "AWS_REGION": "eu-west-1",
}


def test_minimal_environment_gets_documented_defaults():
    settings = load_settings(VALID)
    assert (settings.version, settings.deployment_color, settings.aws_region) == (
        "2026.11.1-abc123",
        "green",
        "eu-west-1",
    )
    db = settings.database
    assert (db.port, db.sslmode, db.pool_min_size, db.pool_max_size) == (5432, "prefer", 1, 4)
    assert (db.pool_timeout, db.connect_timeout, db.startup_timeout) == (5.0, 5, 60.0)


def test_region_falls_back_to_aws_default_region():
    env = {k: v for k, v in VALID.items() if k != "AWS_REGION"} | {"AWS_DEFAULT_REGION": "us-west-2"}
    assert load_settings(env).aws_region == "us-west-2"


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        load_settings({})
    message = str(caught.value)
    for name in ("APP_VERSION", "DEPLOYMENT_COLOR", "DB_HOST", "DB_NAME", "DB_USER", "DB_PASSWORD_SSM_PARAM"):
        assert f"{name} is required" in message
    assert "AWS_REGION" in message


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("DB_PORT", "abc", "DB_PORT must be a number"),
        ("DB_PORT", "70000", "DB_PORT must be between 1 and 65535"),
        ("DB_SSLMODE", "maybe", "DB_SSLMODE must be one of"),
        ("DB_POOL_MAX_SIZE", "0", "DB_POOL_MAX_SIZE must be between"),
        ("DB_POOL_MIN_SIZE", "9", "DB_POOL_MIN_SIZE must be between 0 and 4"),
        ("DB_POOL_TIMEOUT", "nan", "DB_POOL_TIMEOUT must be between"),
        ("DB_STARTUP_TIMEOUT", "-1", "DB_STARTUP_TIMEOUT must be between"),
        ("DEPLOYMENT_COLOR", "blue green", "DEPLOYMENT_COLOR is malformed"),
        ("DB_HOST", "host/with/slashes", "DB_HOST is malformed"),
        ("DB_PASSWORD_SSM_PARAM", "has spaces", "DB_PASSWORD_SSM_PARAM is malformed"),
    ],
)
def test_malformed_values_are_refused(name, value, expected):
    with pytest.raises(ConfigError, match=expected):
        load_settings(VALID | {name: value})


def test_a_plaintext_password_variable_is_refused_and_not_echoed():
    with pytest.raises(ConfigError, match="DB_PASSWORD is not supported") as caught:
        load_settings(VALID | {"DB_PASSWORD": "s3cret-value"})
    assert "s3cret-value" not in str(caught.value)


def test_server_defaults_suit_fargate():
    server = load_server_settings({})
    assert (server.host, server.port, server.workers, server.threads) == ("0.0.0.0", 8000, 2, 4)  # noqa: S104
    assert server.graceful_timeout < 30  # ECS sends SIGKILL 30 s after SIGTERM by default


def test_workers_come_from_gunicorn_workers_then_web_concurrency():
    assert load_server_settings({"WEB_CONCURRENCY": "3"}).workers == 3
    assert load_server_settings({"WEB_CONCURRENCY": "3", "GUNICORN_WORKERS": "5"}).workers == 5
    with pytest.raises(ConfigError, match="WEB_CONCURRENCY must be between 1 and 64"):
        load_server_settings({"WEB_CONCURRENCY": "0"})


def test_server_address_comes_from_the_environment():
    server = load_server_settings({"APP_HOST": "127.3.4.5", "APP_PORT": "8001"})
    assert (server.host, server.port) == ("127.3.4.5", 8001)
    with pytest.raises(ConfigError, match="APP_PORT"):
        load_server_settings({"APP_PORT": "http"})


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, ("127.0.0.1", 8000)),
        ({"APP_HOST": "0.0.0.0", "APP_PORT": "8000"}, ("127.0.0.1", 8000)),  # noqa: S104
        ({"APP_HOST": "127.0.2.9", "APP_PORT": "8000"}, ("127.0.2.9", 8000)),
        ({"APP_HOST": "::", "APP_PORT": "9000"}, ("127.0.0.1", 9000)),
        ({"APP_HOST": "[::1]", "APP_PORT": "9000"}, ("::1", 9000)),
    ],
)
def test_healthcheck_targets_the_configured_address(env, expected):
    assert target(env) == expected


def test_the_ca_bundle_is_handed_to_libpq_and_a_missing_one_refused(tmp_path):
    from items_api.db import connect_kwargs

    bundle = tmp_path / "rds-global-bundle.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    env = VALID | {"DB_SSLMODE": "verify-full", "DB_SSLROOTCERT": str(bundle)}
    kwargs = connect_kwargs(load_settings(env).database)
    assert (kwargs["sslmode"], kwargs["sslrootcert"]) == ("verify-full", str(bundle))
    assert "sslrootcert" not in connect_kwargs(load_settings(VALID).database)  # libpq's own default then
    with pytest.raises(ConfigError, match="DB_SSLROOTCERT names no readable file: '/nonexistent/ca.pem'"):
        load_settings(env | {"DB_SSLROOTCERT": "/nonexistent/ca.pem"})
