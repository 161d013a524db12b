"""A small versioned-migration runner: numbered SQL files applied in order, once, under a lock.

Files in ``migrations/`` are named ``NNNN_description.sql``. Each pending one runs in its own
transaction together with its row in ``schema_migrations``, so a failure leaves no half-applied
version. The whole run holds a PostgreSQL advisory lock: when blue and green tasks (or several
tasks of one deployment) start together, one applies the migrations and the others wait, then find
nothing to do. Applied files must not change: a checksum mismatch stops start-up.

Migrations must stay compatible with the previous release, which keeps serving during a
blue/green deployment: add columns and tables, drop them a release later.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from .config import StartupError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# One bigint key for this service's migrations: the first 8 bytes of sha256("items_api.migrations").
LOCK_KEY = int.from_bytes(hashlib.sha256(b"items_api.migrations").digest()[:8], "big", signed=True)
_FILENAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(StartupError):
    """The migrations cannot be applied (bad files, changed history, or the lock never came)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations in ``directory``, ordered by version."""
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILENAME.match(path.name)
        if not match:
            raise MigrationError(f"migration file name {path.name!r} is not NNNN_description.sql")
        version = int(match.group(1))
        if version in migrations:
            raise MigrationError(f"two migrations have version {version}")
        migrations[version] = Migration(version, match.group(2), path.read_text())
    return [migrations[version] for version in sorted(migrations)]


def migrate(
    conn: psycopg.Connection, migrations: list[Migration] | None = None, lock_timeout: float = 300
) -> list[int]:
    """Apply the pending ``migrations`` on ``conn``; return the versions applied by this call."""
    migrations = load_migrations() if migrations is None else migrations
    conn.autocommit = True
    # Migrations may legitimately run longer than the service's per-statement limit.
    conn.execute("SET statement_timeout = 0")
    _acquire_lock(conn, lock_timeout)
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY,"
            " name text NOT NULL,"
            " checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        applied = dict(conn.execute("SELECT version, checksum FROM schema_migrations").fetchall())
        known = {migration.version for migration in migrations}
        for migration in migrations:
            if migration.version in applied and applied[migration.version] != migration.checksum:
                raise MigrationError(f"migration {migration.version} ({migration.name}) changed after it was applied")
        if set(applied) - known:
            # A newer release has migrated already; this one keeps running on the newer schema.
            log.info("database has migrations newer than this release: %s", sorted(set(applied) - known))
        done = []
        for migration in migrations:
            if migration.version in applied:
                continue
            started = time.monotonic()
            with conn.transaction():
                conn.execute(migration.sql.encode())
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
            log.info(
                "applied migration %04d_%s in %.0f ms",
                migration.version,
                migration.name,
                (time.monotonic() - started) * 1000,
            )
            done.append(migration.version)
        return done
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


def _acquire_lock(conn: psycopg.Connection, timeout: float) -> None:
    # Polling rather than a blocking pg_advisory_lock keeps the wait bounded and visible in the logs.
    deadline = time.monotonic() + timeout
    waiting_logged = False
    while not conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]:
        if time.monotonic() > deadline:
            raise MigrationError(f"another instance held the migration lock for more than {timeout:g}s")
        if not waiting_logged:
            log.info("waiting for another instance to finish migrating")
            waiting_logged = True
        time.sleep(0.2)
