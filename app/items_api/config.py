"""Settings from environment variables, validated once at start-up.

Every problem is collected and reported together, so a broken task definition is fixed in one
round trip rather than one variable at a time. Nothing here reads a secret: the database password
lives in SSM and only its parameter name is configuration.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9._:-]{1,253}$")
_SSM_NAME = re.compile(r"^(arn:[^\s]+|/?[A-Za-z0-9_.\-/]{1,2048})$")


class StartupError(RuntimeError):
    """The service cannot start; the message says what to fix.

    A RuntimeError so that gunicorn, which loads the app before forking (``preload_app``), prints
    the message and exits 1 instead of dumping a traceback.
    """


class ConfigError(StartupError):
    """One or more settings are missing or malformed; the message lists each of them."""


@dataclass(frozen=True)
class DatabaseSettings:
    host: str
    port: int
    name: str
    user: str
    password_ssm_param: str
    sslmode: str = "prefer"
    sslrootcert: str | None = None
    pool_min_size: int = 1
    pool_max_size: int = 4
    pool_timeout: float = 5.0
    connect_timeout: int = 5
    startup_timeout: float = 60.0
    statement_timeout_ms: int = 5000


@dataclass(frozen=True)
class Settings:
    version: str
    deployment_color: str
    aws_region: str
    database: DatabaseSettings


@dataclass(frozen=True)
class ServerSettings:
    """What gunicorn needs; read by ``gunicorn.conf.py`` and the health check."""

    host: str = "0.0.0.0"  # noqa: S104 - a container listens on all its interfaces
    port: int = 8000
    workers: int = 2
    threads: int = 4
    timeout: int = 30
    graceful_timeout: int = 20
    keepalive: int = 75
    log_level: str = "info"


class _Reader:
    """Reads typed values from an environment mapping, collecting errors instead of raising."""

    def __init__(self, env: Mapping[str, str]):
        self.env = env
        self.errors: list[str] = []

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None or not value.strip():
            return None
        return value.strip()

    def string(self, name: str, default: str | None = None, pattern: re.Pattern[str] | None = None) -> str:
        value = self.raw(name)
        if value is None:
            if default is None:
                self.errors.append(f"{name} is required")
            return default or ""
        if pattern is not None and not pattern.match(value):
            self.errors.append(f"{name} is malformed: {value!r}")
        return value

    def number(self, name: str, default: T, convert: Callable[[str], T], low: float, high: float) -> T:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = convert(value)
        except ValueError:
            self.errors.append(f"{name} must be a number, got {value!r}")
            return default
        if not low <= number <= high:  # type: ignore[operator]
            self.errors.append(f"{name} must be between {low:g} and {high:g}, got {value!r}")
            return default
        return number

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.raw(name)
        if value is None:
            return default
        if value not in choices:
            self.errors.append(f"{name} must be one of {', '.join(choices)}, got {value!r}")
            return default
        return value

    def check(self) -> None:
        if self.errors:
            raise ConfigError("invalid configuration: " + "; ".join(self.errors))


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the service's settings; raise :class:`ConfigError` naming every bad variable."""
    env = os.environ if env is None else env
    read = _Reader(env)
    if "DB_PASSWORD" in env:
        read.errors.append(
            "DB_PASSWORD is not supported: store the password in SSM (SecureString) and set DB_PASSWORD_SSM_PARAM"
        )
    pool_max = read.number("DB_POOL_MAX_SIZE", 4, int, 1, 100)
    database = DatabaseSettings(
        host=read.string("DB_HOST", pattern=_HOSTNAME),
        port=read.number("DB_PORT", 5432, int, 1, 65535),
        name=read.string("DB_NAME", pattern=_TOKEN),
        user=read.string("DB_USER", pattern=_TOKEN),
        password_ssm_param=read.string("DB_PASSWORD_SSM_PARAM", pattern=_SSM_NAME),
        sslmode=read.choice("DB_SSLMODE", "prefer", SSLMODES),
        sslrootcert=read.raw("DB_SSLROOTCERT"),
        pool_min_size=read.number("DB_POOL_MIN_SIZE", min(1, pool_max), int, 0, pool_max),
        pool_max_size=pool_max,
        pool_timeout=read.number("DB_POOL_TIMEOUT", 5.0, float, 0.1, 60),
        connect_timeout=read.number("DB_CONNECT_TIMEOUT", 5, int, 1, 60),
        startup_timeout=read.number("DB_STARTUP_TIMEOUT", 60.0, float, 0, 900),
        statement_timeout_ms=read.number("DB_STATEMENT_TIMEOUT_MS", 5000, int, 0, 600_000),
    )
    if database.sslrootcert is not None and not os.path.isfile(database.sslrootcert):
        read.errors.append(
            f"DB_SSLROOTCERT names no readable file: {database.sslrootcert!r} (the CA bundle the database's "
            "certificate is verified against; the image carries the RDS one, see README.md)"
        )
    region = read.raw("AWS_REGION") or read.raw("AWS_DEFAULT_REGION")
    if region is None:
        read.errors.append("AWS_REGION (or AWS_DEFAULT_REGION) is required to read the password from SSM")
    settings = Settings(
        version=read.string("APP_VERSION", pattern=_TOKEN),
        deployment_color=read.string("DEPLOYMENT_COLOR", pattern=_TOKEN),
        aws_region=region or "",
        database=database,
    )
    read.check()
    return settings


def load_server_settings(env: Mapping[str, str] | None = None) -> ServerSettings:
    """Read gunicorn's settings; raise :class:`ConfigError` naming every bad variable."""
    env = os.environ if env is None else env
    read = _Reader(env)
    workers_var = "GUNICORN_WORKERS" if read.raw("GUNICORN_WORKERS") else "WEB_CONCURRENCY"
    settings = ServerSettings(
        host=read.string("APP_HOST", "0.0.0.0", pattern=_HOSTNAME),  # noqa: S104 - see ServerSettings
        port=read.number("APP_PORT", 8000, int, 1, 65535),
        workers=read.number(workers_var, 2, int, 1, 64),
        threads=read.number("GUNICORN_THREADS", 4, int, 1, 64),
        timeout=read.number("GUNICORN_TIMEOUT", 30, int, 1, 3600),
        graceful_timeout=read.number("GUNICORN_GRACEFUL_TIMEOUT", 20, int, 0, 3600),
        keepalive=read.number("GUNICORN_KEEPALIVE", 75, int, 0, 3600),
        log_level=read.choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error", "critical")),
    )
    read.check()
    return settings
