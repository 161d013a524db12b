"""RDS made real: every PostgreSQL DB instance of the local AWS API is a real PostgreSQL server.

Each instance is a cluster initdb'd under ``<state>/rds/<region>/<identifier>/data`` and run by
``localcloud.postgres.PostgresServer`` (as the unprivileged ``postgres`` user when we are root),
with the instance's master user (a superuser of the cluster), master password and database name.
It listens on a loopback address of its own (``127.0.5.N``) and the instance's port, and the
instance's endpoint address (``NAME.aaaaaaaaaa.REGION.rds.amazonaws.com``) maps to that address in
the hosts file tasks resolve through (see ``hosts.py``): tasks keep using ``DB_HOST``/``DB_PORT``
exactly as the RDS API reports them.

The instance follows the API: a master password changed with ``ModifyDBInstance`` is changed in
PostgreSQL (``ALTER ROLE``; open sessions stay connected, as on RDS); ``StopDBInstance`` stops the
server and ``StartDBInstance`` starts it again; deleting the instance stops the server and removes
its data. The instance's status in the API is what the emulator reports ("available" at once): as
on RDS, "available" does not promise that the server accepts connections yet, which is why the app
retries its first connection; ``localcloud status`` shows the server's own state.

The plane supervises the servers, as RDS does its engines: a postmaster that dies (a crash,
``kill -9``) is noticed within a reconcile round and started again on the same data, address,
port and credentials, PostgreSQL's crash recovery replaying the WAL (every committed transaction
is kept). ``RebootDBInstance`` restarts the server for real (stop, start). Meanwhile the
instance's status in the API is ``rebooting``, then ``available`` again, and the restart is
recorded as RDS events (``DescribeEvents``): see :class:`MotoRdsMirror`.

Snapshots are real copies: ``CreateDBSnapshot`` and the final snapshot of ``DeleteDBInstance``
copy the cluster, ``RestoreDBInstanceFromDBSnapshot`` starts the new instance's server on a copy of
it, ``DeleteDBSnapshot`` removes the copy (see ``rds_snapshots.py``).

TLS, as RDS serves it: with the local cloud's CA (``ca``, see ``tls.py``) each server serves TLS with
a certificate issued by that CA for the instance's endpoint name and address, so a client that
trusts the CA connects with ``sslmode=verify-full``. ``rds.force_ssl`` of the instance's DB
parameter group is followed: 1 accepts TCP connections over TLS only (``hostssl`` in
``pg_hba.conf``; a plaintext one is refused, "no pg_hba.conf entry ... no encryption", as on RDS),
0 accepts both; a change applies without a restart (the parameter is dynamic on RDS too). A group
that does not set it has the engine's default: 1 from PostgreSQL 15, 0 before, as AWS documents.
Without a CA the servers serve no TLS and accept plaintext connections.

The master password: RDS never returns it (``DescribeDBInstances`` has no such field), and
neither does the emulator. When the instance manages it in Secrets Manager
(``ManageMasterUserPassword``), it is read from the secret through the API, as on AWS. Otherwise
the data plane, which runs in the same process as the emulator, reads it from the emulator's RDS
backend (the password given to ``CreateDBInstance`` or ``ModifyDBInstance``): see
:func:`moto_master_password`. It is kept only in the server (as a SCRAM verifier) and in memory.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from localcloud.dataplane.hosts import DATABASE_NETWORK, AddressPool, port_is_free, write_hosts
from localcloud.dataplane.rds_snapshots import SnapshotStore
from localcloud.postgres import PostgresServer

log = logging.getLogger(__name__)

POSTGRES_ENGINES = ("postgres",)
STOPPED_STATES = ("stopped", "stopping")
RESTART_TIMEOUT = 60.0  # how long a restart is retried before the instance is failed
PasswordSource = Callable[[str, str], "str | None"]  # (region, identifier) -> master password
RestoreSource = Callable[[str, str], "str | None"]  # (region, identifier) -> the snapshot it was restored from
FORCE_SSL_DEFAULT_FROM = 15  # rds.force_ssl's engine default is 1 from PostgreSQL 15 on
PARAMETERS_TTL = 2.0  # seconds a parameter group's rds.force_ssl is reused before it is read again


def moto_master_password(account_id: str) -> PasswordSource:
    """The master password as the in-process emulator keeps it.

    moto stores the ``MasterUserPassword`` of ``CreateDBInstance``/``ModifyDBInstance`` on its
    DBInstance object, whose public property raises "Password is not retrievable" (as the API
    does). Only the local cloud's own data plane, which runs the emulator in its process, reads the
    private attribute: no API client can.
    """

    def read(region: str, identifier: str) -> str | None:
        from moto.rds.models import rds_backends

        database = rds_backends[account_id][region].databases.get(identifier)
        return getattr(database, "_master_user_password", None) if database is not None else None

    return read


def moto_restore_source(account_id: str) -> RestoreSource:
    """The snapshot an instance was restored from, as the patch ``rds_snapshots`` records it (the API
    does not say, on AWS neither)."""

    def read(region: str, identifier: str) -> str | None:
        from localcloud.patches.rds_snapshots import RESTORED

        return RESTORED.get((account_id, region, identifier))

    return read


def no_restore(region: str, identifier: str) -> None:  # noqa: ARG001 - the RestoreSource signature
    return None


class MotoRdsMirror:
    """Reflects the engines' restarts into the in-process RDS backend: the instance's status and events.

    The API has no call for what RDS itself reports (an instance's status, its events), so this
    writes moto's own objects. While it is open, ``RebootDBInstance`` sets an instance
    ``rebooting`` (the patch ``rds_reboot_db_instance``) and the plane does the reboot.
    """

    def __init__(self, account_id: str):
        from localcloud.patches import rds_reboot_db_instance

        self.account_id = account_id
        self._engines_run = rds_reboot_db_instance.ENGINES_RUN
        self._engines_run["planes"] += 1
        self._open = True

    def _database(self, region: str, identifier: str):
        from moto.rds.models import rds_backends

        return rds_backends[self.account_id][region].databases.get(identifier)

    def set_status(self, region: str, identifier: str, status: str, *, was: Iterable[str]) -> None:
        """Set the instance's status if it is one of ``was`` (an instance deleted meanwhile is left alone)."""
        database = self._database(region, identifier)
        if database is not None and database.status in tuple(was):
            database.status = status

    def event(self, region: str, identifier: str, event_type: str) -> None:
        database = self._database(region, identifier)
        if database is not None:
            database.add_event(event_type)

    def snapshot_status(self, region: str, snapshot: str, status: str) -> None:
        """A snapshot ``creating`` becomes ``status`` (available, or failed) once its copy is made."""
        from moto.rds.models import rds_backends

        found = rds_backends[self.account_id][region].database_snapshots.get(snapshot)
        if found is not None and found.status == "creating":
            found.status = status

    def close(self) -> None:
        if self._open:
            self._open = False
            self._engines_run["planes"] -= 1


def _digest(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


@dataclasses.dataclass(eq=False)
class LocalDatabase:
    region: str
    identifier: str
    endpoint: str
    port: int
    ip: str
    db_name: str | None
    master_username: str
    directory: Path
    engine_version: str = ""
    state: str = "creating"  # creating, available, rebooting, stopped, failed, deleting
    error: str = ""
    restarts: int = 0  # engine restarts: crashes recovered and reboots
    settled_at: float = 0.0  # monotonic time of the last restart's end
    password_digest: str | None = None
    force_ssl: bool = False  # what pg_hba.conf enforces now
    source: str = ""  # a read replica's source instance (ReadReplicaSourceDBInstanceIdentifier)
    server: PostgresServer | None = None
    job: concurrent.futures.Future | None = None

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def busy(self) -> bool:
        return self.job is not None and not self.job.done()

    def pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def status(self) -> dict:
        return {
            "identifier": self.identifier,
            "region": self.region,
            "endpoint": f"{self.endpoint}:{self.port}",
            "address": f"{self.ip}:{self.port}",
            "state": self.state,
            "engine_version": self.engine_version,
            "db_name": self.db_name,
            "master_username": self.master_username,
            "pid": self.pid() if self.state == "available" else None,
            "restarts": self.restarts,
            "force_ssl": self.force_ssl,
            "replica_of": self.source or None,
            "data_dir": str(self.data_dir),
            "log": str(self.data_dir.with_name("data.log")),
            "error": self.error or None,
        }


class RdsPlane:
    """Runs a PostgreSQL server per DB instance of the API; call :meth:`reconcile` often.

    Slow work (initdb, start, stop) runs in a small pool of threads, one job per instance at a time,
    so the reconcile round never waits for it.
    """

    def __init__(
        self,
        clients: Callable[[str, str], object],
        state_dir: Path,
        *,
        regions: Callable[[], Iterable[str]],
        password_source: PasswordSource,
        hosts_file: Path,
        mirror: MotoRdsMirror | None = None,
        restore_source: RestoreSource = no_restore,
        addresses: AddressPool | None = None,
        settings: dict[str, str] | None = None,
        os_user: str = "postgres",
        ca: tuple[str, str] | None = None,
    ):
        self.clients = clients
        self.root = Path(state_dir) / "rds"
        self.regions = regions
        self.password_source = password_source
        self.hosts_file = Path(hosts_file)
        self.mirror = mirror
        self.restore_source = restore_source
        self.settings = settings or {}
        self.os_user = os_user
        self.ca = ca  # (certfile, keyfile) of the local cloud's CA; None: no TLS
        self._force_ssl_read: dict[tuple[str, str], tuple[float, bool | None]] = {}
        self.databases: dict[tuple[str, str], LocalDatabase] = {}
        self.addresses = addresses or AddressPool(DATABASE_NETWORK)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="rds")
        self._hosts: dict[str, str] | None = None
        self.root.mkdir(parents=True, exist_ok=True)
        _traversable(self.root)
        self.snapshots = SnapshotStore(self.root)

    # ---- reading the API

    def _read_instances(self, region: str) -> list[dict] | None:
        try:
            rds = self.clients("rds", region)
            return [i for page in rds.get_paginator("describe_db_instances").paginate() for i in page["DBInstances"]]
        except Exception as exc:  # noqa: BLE001 - a failed read changes nothing this round
            log.warning("reading the DB instances of %s failed: %s", region, exc)
            return None

    def _password(self, region: str, instance: dict) -> str | None:
        secret = (instance.get("MasterUserSecret") or {}).get("SecretArn")
        if secret:
            value = self.clients("secretsmanager", region).get_secret_value(SecretId=secret)["SecretString"]
            return json.loads(value).get("password")
        return self.password_source(region, instance["DBInstanceIdentifier"])

    # ---- the reconcile round

    def reconcile(self) -> None:
        seen: set[tuple[str, str]] = set()
        for region in list(self.regions()):
            # The snapshots are read before the instances: a final snapshot (DeleteDBInstance) in this
            # read has its instance already gone from the next one, so it is never copied as a running
            # instance's snapshot (pg_basebackup) but by _delete, from the stopped cluster.
            snapshots = self._read_region_snapshots(region)
            read_at = time.monotonic()
            instances = self._read_instances(region)
            if instances is None:
                seen.update(k for k in self.databases if k[0] == region)
                continue
            for instance in instances:
                if instance.get("Engine") not in POSTGRES_ENGINES:
                    continue
                key = (region, instance["DBInstanceIdentifier"])
                seen.add(key)
                self._follow(region, instance, read_at)
            self._follow_snapshots(region, {key[1] for key in seen if key[0] == region}, snapshots)
        for key, database in list(self.databases.items()):
            if key in seen or database.busy:
                continue
            if database.state == "deleting":
                del self.databases[key]  # its removal has finished
            else:
                database.state = "deleting"
                database.job = self._pool.submit(self._delete, database)
        self._write_hosts()

    def _follow(self, region: str, instance: dict, read_at: float = 0.0) -> None:
        key = (region, instance["DBInstanceIdentifier"])
        database = self.databases.get(key)
        if database is not None and database.state == "deleting":
            if database.busy:
                return  # an instance of the same name is back: once the old one is gone
            del self.databases[key]
            database = None
        if database is None:
            database = self._allocate(region, instance)
            if database is None:
                return
            self.databases[key] = database
        if database.busy or database.state == "failed":
            return
        wanted_status = (instance.get("DBInstanceStatus") or "").lower()
        if self._supervise(database, wanted_status, read_at):
            return
        try:
            password = self._password(region, instance)
        except Exception as exc:  # noqa: BLE001
            log.warning("the master password of %s is unreadable: %s", database.identifier, exc)
            return
        wanted_stopped = wanted_status in STOPPED_STATES
        force_ssl = self._force_ssl(region, instance)
        if database.state == "creating":
            self._begin(database, password, not wanted_stopped, bool(force_ssl))
        elif wanted_stopped and database.state == "available":
            database.job = self._pool.submit(self._stop, database)
        elif not wanted_stopped and database.state == "stopped":
            database.job = self._pool.submit(self._start, database)
        elif (
            database.state == "available"
            and not database.source  # a replica's passwords are its source's, replicated
            and password
            and _digest(password) != database.password_digest
        ):
            database.job = self._pool.submit(self._rotate, database, password)
        elif database.state == "available" and force_ssl is not None and force_ssl != database.force_ssl:
            database.job = self._pool.submit(self._set_force_ssl, database, force_ssl)

    def _begin(self, database: LocalDatabase, password: str | None, start: bool, force_ssl: bool) -> None:
        """A new instance's server: a streaming replica of its source once that runs, a copy of the snapshot
        it is restored from, or an empty cluster."""
        if database.source:
            source = self.databases.get((database.region, database.source))
            if source is not None and not source.busy and source.state == "available":
                database.job = self._pool.submit(self._replicate, database, source, force_ssl)
            return
        snapshot = self.restore_source(database.region, database.identifier)  # None: an empty database
        create = (self._restore, database, snapshot) if snapshot else (self._create, database)
        database.job = self._pool.submit(*create, password, start, force_ssl)

    def _force_ssl(self, region: str, instance: dict) -> bool | None:
        """What the instance's parameter group asks of ``rds.force_ssl``; None when it cannot be read
        this round (nothing changes) or there is no CA to serve TLS with (never forced)."""
        if self.ca is None:
            return False
        groups = [g.get("DBParameterGroupName") for g in instance.get("DBParameterGroups") or []]
        major = (instance.get("EngineVersion") or "0").split(".")[0]
        default = major.isdigit() and int(major) >= FORCE_SSL_DEFAULT_FROM
        if not groups or not groups[0] or groups[0].startswith("default."):
            return default
        key = (region, groups[0])
        read_at, value = self._force_ssl_read.get(key, (0.0, None))
        if time.monotonic() - read_at < PARAMETERS_TTL:
            return value
        try:
            rds = self.clients("rds", region)
            pages = rds.get_paginator("describe_db_parameters").paginate(DBParameterGroupName=groups[0], Source="user")
            values = {p["ParameterName"]: p.get("ParameterValue") for page in pages for p in page["Parameters"]}
            setting = values.get("rds.force_ssl")
            value = default if setting is None else setting.strip() in ("1", "true", "on")
        except Exception as exc:  # noqa: BLE001 - read again next round
            log.warning("reading the parameter group %s failed: %s", groups[0], exc)
            value = None
        self._force_ssl_read[key] = (time.monotonic(), value)
        return value

    def _read_snapshots(self, region: str, identifier: str | None = None) -> list[dict] | None:
        try:
            rds = self.clients("rds", region)
            args = {"DBInstanceIdentifier": identifier} if identifier else {}
            pages = rds.get_paginator("describe_db_snapshots").paginate(**args)
            return [s for page in pages for s in page["DBSnapshots"]]
        except Exception as exc:  # noqa: BLE001 - a failed read changes nothing this round
            log.warning("reading the DB snapshots of %s failed: %s", region, exc)
            return None

    def _pending(self, region: str, snapshots: list[dict], identifier: str) -> list[str]:
        """The manual snapshots of ``identifier`` whose copy is still to make."""
        return [
            s["DBSnapshotIdentifier"]
            for s in snapshots
            if s.get("DBInstanceIdentifier") == identifier
            and s.get("SnapshotType") == "manual"
            and (s.get("Status") == "creating" or self.mirror is None)
            and not self.snapshots.complete(region, s["DBSnapshotIdentifier"])
        ]

    def _read_region_snapshots(self, region: str) -> list[dict] | None:
        """The snapshots of ``region``; None without a database or a copy there, or when the read failed."""
        has_local = any(key[0] == region for key in self.databases) or (self.snapshots.root / region).is_dir()
        return self._read_snapshots(region) if has_local else None

    def _follow_snapshots(self, region: str, live: set[str], snapshots: list[dict] | None) -> None:
        """Copy the snapshots of running or stopped instances (a deleted one's final snapshot: see
        :meth:`_delete`); remove the copies of deleted snapshots. ``snapshots``: read before ``live``."""
        if snapshots is None:
            return
        self.snapshots.prune(region, {s["DBSnapshotIdentifier"] for s in snapshots})
        for (db_region, identifier), database in self.databases.items():
            if db_region != region or identifier not in live or database.busy:
                continue
            if database.state not in ("available", "stopped"):
                continue
            pending = self._pending(region, snapshots, identifier)
            if pending:
                database.job = self._pool.submit(self._snapshot, database, pending, database.state == "available")

    def _allocate(self, region: str, instance: dict) -> LocalDatabase | None:
        endpoint = instance.get("Endpoint") or {}
        port = int(endpoint.get("Port") or instance.get("DbInstancePort") or 5432)
        if not endpoint.get("Address"):
            return None
        try:
            ip = self.addresses.allocate(lambda candidate: port_is_free(candidate, port))
        except RuntimeError as exc:
            log.error("no address for %s: %s", instance["DBInstanceIdentifier"], exc)
            return None
        directory = self.root / region / instance["DBInstanceIdentifier"]
        return LocalDatabase(
            region=region,
            identifier=instance["DBInstanceIdentifier"],
            endpoint=endpoint["Address"],
            port=port,
            ip=ip,
            db_name=instance.get("DBName"),
            master_username=instance.get("MasterUsername") or "postgres",
            directory=directory,
            engine_version=instance.get("EngineVersion", ""),
            source=instance.get("ReadReplicaSourceDBInstanceIdentifier") or "",
        )

    def _supervise(self, database: LocalDatabase, wanted_status: str, read_at: float) -> bool:
        """Restart a running server whose postmaster died, or that the API asks to reboot; True if so."""
        if database.state != "available" or wanted_status in STOPPED_STATES:
            return False
        if not database.server.postmaster_alive():
            self._restart_soon(database, crashed=True)
            return True
        # A read older than the last restart's end may still show that restart's "rebooting".
        if wanted_status == "rebooting" and read_at > database.settled_at:
            self._restart_soon(database, crashed=False)
            return True
        return False

    def _restart_soon(self, database: LocalDatabase, *, crashed: bool) -> None:
        database.state = "rebooting"
        if crashed:
            log.warning("the PostgreSQL server of %s stopped unexpectedly: restarting it", database.identifier)
            self._reflect(database, "rebooting", was=("available",), event="DB_INSTANCE_ENGINE_STOPPED")
        else:
            log.info("rebooting %s", database.identifier)
        database.job = self._pool.submit(self._restart, database, crashed)

    def _reflect(self, database: LocalDatabase, status: str | None = None, *, was=(), event: str = "") -> None:
        if self.mirror is None:
            return
        try:
            if status:
                self.mirror.set_status(database.region, database.identifier, status, was=was)
            if event:
                self.mirror.event(database.region, database.identifier, event)
        except Exception:  # noqa: BLE001 - the API's view lags; the server's state is what counts
            log.exception("reflecting %s of %s failed", status or event, database.identifier)

    def _write_hosts(self) -> None:
        mapping = {d.endpoint: d.ip for d in self.databases.values() if d.state != "deleting"}
        if mapping != self._hosts:
            write_hosts(self.hosts_file, mapping)
            self._hosts = mapping

    # ---- jobs (pool threads)

    def _new_server(self, database: LocalDatabase, password: str | None) -> PostgresServer:
        """The instance's server on an emptied directory of its own (its cluster not made yet)."""
        if database.directory.exists():
            shutil.rmtree(database.directory)
        database.directory.mkdir(parents=True)
        for path in (database.directory.parent, database.directory):
            _traversable(path)
        return PostgresServer(
            database.data_dir,
            database.port,
            host=database.ip,
            superuser=database.master_username,
            password=password,
            dbname=database.db_name,
            settings=self.settings,
            os_user=self.os_user,
        )

    def _secure(self, database: LocalDatabase, force_ssl: bool) -> None:
        """TLS with a certificate of the local cloud's CA for the endpoint and the address; plaintext
        refused when ``force_ssl``. Before the server starts."""
        if self.ca is None:
            return
        from localcloud.dataplane import tls

        cert, key = tls.issue(*self.ca, [database.endpoint, database.ip])
        database.server.enable_tls(cert, key)
        database.server.require_tls(force_ssl)
        database.force_ssl = force_ssl

    def _set_force_ssl(self, database: LocalDatabase, force_ssl: bool) -> None:
        try:
            database.server.require_tls(force_ssl)
            database.force_ssl = force_ssl
            log.info("%s accepts %s", database.identifier, "TLS connections only" if force_ssl else "TLS and plaintext")
        except Exception as exc:  # noqa: BLE001 - tried again next round
            log.warning("applying rds.force_ssl to %s failed: %s", database.identifier, exc)

    def _create(self, database: LocalDatabase, password: str | None, start: bool, force_ssl: bool = False) -> None:
        if not password:
            database.state, database.error = "failed", "the master password is unknown"
            return
        try:
            database.server = self._new_server(database, password)
            database.server.init()
            self._secure(database, force_ssl)
            database.password_digest = _digest(password)
            if start:
                database.server.start()
            database.state = "available" if start else "stopped"
        except Exception as exc:  # noqa: BLE001 - shown by status; the instance stays failed
            log.exception("creating the server of %s failed", database.identifier)
            database.state, database.error = "failed", str(exc)[-2000:]

    def _restore(
        self, database: LocalDatabase, snapshot: str, password: str | None, start: bool, force_ssl: bool = False
    ) -> None:
        """The new instance's server on a copy of the snapshot's cluster (its rows, roles, passwords)."""
        try:
            if not self.snapshots.complete(database.region, snapshot):
                raise RuntimeError(f"the snapshot {snapshot} has no copy of its data (taken with no data plane?)")
            # The copy's master password; moto gives the restored instance the snapshot's too.
            known = self.snapshots.password(database.region, snapshot) or password
            database.server = self._new_server(database, known)
            database.server.init_from_copy(self.snapshots.data(database.region, snapshot))
            self._secure(database, force_ssl)
            database.password_digest = _digest(known) if known else None
            if start:
                _bring_up(database.server)
            database.state = "available" if start else "stopped"
            log.info("%s restored from the snapshot %s", database.identifier, snapshot)
        except Exception as exc:  # noqa: BLE001 - shown by status; the instance stays failed
            log.exception("restoring %s from %s failed", database.identifier, snapshot)
            database.state, database.error = "failed", str(exc)[-2000:]

    def _replicate(self, database: LocalDatabase, source: LocalDatabase, force_ssl: bool = False) -> None:
        """A read replica: a real streaming standby of the source's server (pg_basebackup -R), read-only,
        with the source's roles and passwords; TLS with its own certificate."""
        try:
            database.server = self._new_server(database, source.server.password)
            database.server.init_standby(source.server)
            self._secure(database, force_ssl)
            database.password_digest = source.password_digest
            _bring_up(database.server)
            database.state = "available"
            log.info("%s streams from %s", database.identifier, source.identifier)
        except Exception as exc:  # noqa: BLE001 - shown by status; the instance stays failed
            log.exception("replicating %s from %s failed", database.identifier, source.identifier)
            database.state, database.error = "failed", str(exc)[-2000:]

    def _snapshot(self, database: LocalDatabase, snapshots: list[str], running: bool) -> None:
        for snapshot in snapshots:
            try:
                self.snapshots.take(database.region, snapshot, database, running=running)
                status = "available"
            except Exception:  # noqa: BLE001 - the snapshot fails, the instance goes on
                log.exception("copying %s for the snapshot %s failed", database.identifier, snapshot)
                status = "failed"
            if self.mirror is not None:
                self.mirror.snapshot_status(database.region, snapshot, status)

    def _start(self, database: LocalDatabase) -> None:
        try:
            _bring_up(database.server)
            database.state, database.error = "available", ""
        except Exception as exc:  # noqa: BLE001
            database.state, database.error = "failed", str(exc)[-2000:]

    def _stop(self, database: LocalDatabase) -> None:
        try:
            if database.server.postmaster_alive():  # else it has crashed: its next start recovers
                database.server.stop()
            database.state = "stopped"
        except Exception as exc:  # noqa: BLE001
            database.state, database.error = "failed", str(exc)[-2000:]

    def _restart(self, database: LocalDatabase, crashed: bool) -> None:
        started = time.monotonic()
        if not crashed:
            self._reflect(database, event="DB_INSTANCE_SHUTDOWN")
        while True:
            try:
                if not crashed and database.server.postmaster_alive():
                    database.server.stop(mode="fast")
                _bring_up(database.server, timeout=max(5.0, RESTART_TIMEOUT - (time.monotonic() - started)))
                break
            except Exception as exc:  # noqa: BLE001 - tried again until RESTART_TIMEOUT
                if time.monotonic() - started > RESTART_TIMEOUT:
                    log.error("restarting the server of %s failed: %s", database.identifier, exc)
                    database.state, database.error = "failed", str(exc)[-2000:]
                    self._reflect(database, "failed", was=("rebooting",))
                    return
                log.warning("restarting the server of %s failed, trying again: %s", database.identifier, exc)
                time.sleep(1.0)
        database.restarts += 1
        self._reflect(database, "available", was=("rebooting",), event="DB_INSTANCE_RESTARTED")
        database.settled_at = time.monotonic()  # after the API says available: see _follow
        database.state, database.error = "available", ""
        log.info("the server of %s is up again after %.1f s", database.identifier, time.monotonic() - started)

    def _rotate(self, database: LocalDatabase, password: str) -> None:
        try:
            database.server.set_password(database.master_username, password)
            database.password_digest = _digest(password)
            log.info("master password of %s changed", database.identifier)
        except Exception as exc:  # noqa: BLE001 - tried again next round
            log.warning("changing the master password of %s failed: %s", database.identifier, exc)

    def _delete(self, database: LocalDatabase) -> None:
        if database.server is not None:
            _stop_quietly(database.server)
        # The final snapshot (DeleteDBInstance): a copy of the stopped cluster, before it goes.
        pending = self._pending(
            database.region, self._read_snapshots(database.region, database.identifier) or [], database.identifier
        )
        if pending:
            self._snapshot(database, pending, running=False)
        shutil.rmtree(database.directory, ignore_errors=True)
        self.addresses.release(database.ip)

    # ---- the whole plane

    def status(self) -> list[dict]:
        return [d.status() for d in sorted(self.databases.values(), key=lambda d: d.identifier)]

    def snapshot_status(self) -> list[dict]:
        """The snapshots' copies (``localcloud status``)."""
        return self.snapshots.copies()

    def shutdown(self, timeout: float = 60.0) -> None:
        """Stop every server (their data is removed with the state dir's next start)."""
        for database in self.databases.values():
            if database.job is not None:
                try:
                    database.job.result(timeout=timeout)
                except Exception:  # noqa: BLE001
                    log.exception("a job of %s failed", database.identifier)
        jobs = [self._pool.submit(_stop_quietly, d.server) for d in self.databases.values() if d.server is not None]
        concurrent.futures.wait(jobs, timeout=timeout)
        self._pool.shutdown(wait=True)
        if self.mirror is not None:
            self.mirror.close()


def _bring_up(server: PostgresServer, timeout: float = 30.0) -> None:
    """Start the server; one whose postmaster died without a shutdown is recovered first."""
    if server.postmaster_pid() is not None and not server.postmaster_alive():
        server.recover(timeout=timeout)
    else:
        server.start(timeout=timeout)


def _stop_quietly(server: PostgresServer) -> None:
    try:
        server.stop(mode="fast")
    except Exception:  # noqa: BLE001
        log.exception("stopping %s failed; stopping it the hard way", server.data_dir)
        try:
            server.stop(mode="immediate")
        except Exception:  # noqa: BLE001
            log.exception("%s would not stop", server.data_dir)


def _traversable(path: Path) -> None:
    """As root, PostgreSQL runs as another user, who must be able to pass through our directories."""
    if os.geteuid() == 0:
        path.chmod(path.stat().st_mode | 0o111)
