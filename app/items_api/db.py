"""PostgreSQL access: one connection pool per process, and start-up waiting.

Connections are made by :func:`open_connection`, which, when the server rejects the password, re-reads it
from SSM once and tries again: after a rotation the next new connection picks up the new password
without a redeploy. Pooled connections are checked before they are handed out, so after a database
restart or failover the dead ones are replaced instead of failing a request.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from .config import DatabaseSettings
from .credentials import Credentials

log = logging.getLogger(__name__)

# Class 28 (invalid authorization): the server sends the SQLSTATE, but libpq reports a failed
# connection attempt without one, so the message is the reliable signal.
_AUTH_FAILURE_MESSAGES = ("password authentication failed", "no password supplied")


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached in time; the request may be retried later."""


def is_auth_failure(exc: psycopg.OperationalError) -> bool:
    if exc.sqlstate in ("28P01", "28000"):
        return True
    message = str(exc)
    return any(text in message for text in _AUTH_FAILURE_MESSAGES)


def connect_kwargs(settings: DatabaseSettings) -> dict[str, Any]:
    """libpq parameters for ``settings``, without the password."""
    kwargs: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "dbname": settings.name,
        "user": settings.user,
        "sslmode": settings.sslmode,
        "connect_timeout": settings.connect_timeout,
        "application_name": "items-api",
        # Notice a dead server (failover, network partition) instead of waiting on TCP for minutes.
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
    }
    if settings.sslrootcert:
        # The CA bundle the server's certificate is verified against (verify-ca, verify-full).
        kwargs["sslrootcert"] = settings.sslrootcert
    if settings.statement_timeout_ms:
        kwargs["options"] = f"-c statement_timeout={settings.statement_timeout_ms}"
    return kwargs


def open_connection(settings: DatabaseSettings, credentials: Credentials, **overrides: Any) -> psycopg.Connection:
    """Open one connection; on an authentication failure re-read the password once and retry."""
    kwargs = connect_kwargs(settings) | overrides
    password, generation = credentials.current()
    try:
        return psycopg.Connection.connect(password=password, **kwargs)
    except psycopg.OperationalError as exc:
        if not is_auth_failure(exc):
            raise
        log.warning("database rejected the password; re-reading it from SSM")
        if not credentials.refresh(generation):
            raise
    password, _ = credentials.current()
    return psycopg.Connection.connect(password=password, **kwargs)


def _pool_connection_class(settings: DatabaseSettings, credentials: Credentials) -> type[psycopg.Connection]:
    """A connection class whose ``connect`` is :func:`open_connection`, for the pool to use."""

    class RotatingPasswordConnection(psycopg.Connection):
        @classmethod
        def connect(cls, conninfo: str = "", **kwargs: Any) -> psycopg.Connection:  # noqa: ARG003 - pool API
            return open_connection(settings, credentials, **kwargs)

    return RotatingPasswordConnection


class Database:
    """The service's database: a lazily opened, per-process connection pool plus start-up helpers."""

    def __init__(self, settings: DatabaseSettings, credentials: Credentials):
        self.settings = settings
        self.credentials = credentials
        self._pool: ConnectionPool | None = None
        self._pool_pid: int | None = None
        self._lock = threading.Lock()

    def connect(self, **overrides: Any) -> psycopg.Connection:
        """A new connection outside the pool (start-up and migrations)."""
        return open_connection(self.settings, self.credentials, **overrides)

    def wait_until_ready(self, timeout: float | None = None) -> None:
        """Retry connecting with capped exponential backoff until it works or ``timeout`` runs out.

        An RDS instance reported "available" may still refuse connections for a while, and a new
        task may start before DNS or security groups settle.
        """
        timeout = self.settings.startup_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        delay = 0.25
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - time.monotonic()
            try:
                per_attempt = max(1, min(self.settings.connect_timeout, int(remaining) or 1))
                with self.connect(connect_timeout=per_attempt) as conn:
                    conn.execute("SELECT 1")
                if attempt > 1:
                    log.info("database is ready after %d attempts", attempt)
                return
            except psycopg.OperationalError as exc:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DatabaseUnavailable(
                        f"database {self.settings.host}:{self.settings.port} not ready after {timeout:g}s "
                        f"({attempt} attempts): {_first_line(exc)}"
                    ) from None
                log.warning("database not ready (attempt %d): %s", attempt, _first_line(exc))
                time.sleep(min(delay * random.uniform(0.5, 1.0), remaining))  # noqa: S311 - jitter
                delay = min(delay * 2, 5.0)

    @property
    def pool(self) -> ConnectionPool:
        """This process's pool, opened on first use (gunicorn forks workers after start-up)."""
        pid = os.getpid()
        if self._pool is not None and self._pool_pid == pid:
            return self._pool
        with self._lock:
            if self._pool is None or self._pool_pid != pid:
                self._pool = ConnectionPool(
                    connection_class=_pool_connection_class(self.settings, self.credentials),
                    min_size=self.settings.pool_min_size,
                    max_size=self.settings.pool_max_size,
                    timeout=self.settings.pool_timeout,
                    check=ConnectionPool.check_connection,
                    max_idle=300,
                    max_lifetime=1800,
                    reconnect_timeout=60,
                    name=f"items-api-{pid}",
                    open=False,
                )
                self._pool.open(wait=False)
                self._pool_pid = pid
        return self._pool

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection]:
        """A pooled connection inside a transaction, committed on success, rolled back on error.

        Raises :class:`DatabaseUnavailable` when no working connection is available in time or
        the connection breaks.
        """
        try:
            with self.pool.connection(timeout=timeout) as conn:
                yield conn
        except PoolTimeout as exc:
            raise DatabaseUnavailable(f"no database connection available: {exc}") from None
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(f"database error: {_first_line(exc)}") from None

    def ping(self, timeout: float) -> float:
        """Round-trip a trivial query through the pool; return the latency in milliseconds."""
        start = time.perf_counter()
        with self.connection(timeout=timeout) as conn:
            conn.execute("SELECT 1")
        return (time.perf_counter() - start) * 1000

    def close(self) -> None:
        with self._lock:
            if self._pool is not None and self._pool_pid == os.getpid():
                self._pool.close(timeout=5)
            self._pool = None
            self._pool_pid = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
