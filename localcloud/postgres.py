"""A throwaway real PostgreSQL server: ``initdb``, ``pg_ctl start``/``stop`` and a few admin statements.

Used by the app's test fixtures and bench, and by the local cloud, which turns each RDS instance into
one of these under its state dir. It listens on one loopback TCP address with password (SCRAM) auth,
and keeps its unix socket inside the data directory, so it never touches ``/var/run/postgresql``.

PostgreSQL refuses to run as root. When we are root, every server command runs as an unprivileged
user (``postgres`` by default) and the data directory and log are chowned to it. That user must be
able to reach ``data_dir`` (every parent directory needs ``o+x``): a directory made by
``tempfile.mkdtemp()`` under ``/tmp`` works, pytest's ``tmp_path`` (under a 0700 root-owned
directory) does not. The server log is ``<data_dir>.log`` beside the data directory.

Admin statements go through ``psql`` so that this module needs no database driver. Passwords are
passed in environment variables or on stdin, never on a command line.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Mapping, Optional

__all__ = ["PostgresError", "PostgresServer", "find_bin_dir"]

# A unix socket path is limited to 107 bytes; ".s.PGSQL.<port>" takes up to 15 of them.
_MAX_SOCKET_DIR = 90


class PostgresError(RuntimeError):
    """A server command failed; the message carries the tail of its output or log."""


def find_bin_dir() -> Path:
    """The directory of the PostgreSQL server binaries: on PATH, else the newest /usr/lib/postgresql/*/bin."""
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda path: int(Path(path).parent.parent.name) if Path(path).parent.parent.name.isdigit() else 0,
    )
    if not candidates:
        raise PostgresError("PostgreSQL server binaries not found (no pg_ctl on PATH or in /usr/lib/postgresql/*/bin)")
    return Path(candidates[-1]).parent


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    # standard_conforming_strings is on (the default since 9.1): only quotes need doubling.
    return "'" + value.replace("'", "''") + "'"


class PostgresServer:
    """One PostgreSQL server with its data in ``data_dir``, listening on ``host:port``.

    ``password`` is the superuser's; without one, TCP connections are trusted (only sensible for a
    server nobody else can reach). ``dbname``, if given, is created by :meth:`init`. ``settings``
    are extra ``postgresql.conf`` lines written as given (quote string values), e.g. ``{"fsync": "off"}``
    for a fast test server.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int,
        *,
        host: str = "127.0.0.1",
        superuser: str = "postgres",
        password: Optional[str] = None,
        dbname: Optional[str] = None,
        settings: Optional[Mapping[str, str]] = None,
        os_user: str = "postgres",
    ):
        self.data_dir = Path(data_dir).absolute()
        self.port = port
        self.host = host
        self.superuser = superuser
        self.password = password
        self.dbname = dbname
        self.settings = dict(settings or {})
        self.log_file = self.data_dir.with_name(self.data_dir.name + ".log")
        self.bin_dir = find_bin_dir()
        self._os_user = pwd.getpwnam(os_user) if os.geteuid() == 0 else None

    # -- lifecycle -----------------------------------------------------------------------------

    def _prepare_data_dir(self) -> None:
        """An empty data directory (0700) and log file owned by the server's user, on a reachable address."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if any(self.data_dir.iterdir()):
            raise PostgresError(f"{self.data_dir} is not empty")
        self.data_dir.chmod(0o700)
        self.log_file.touch()
        self._chown(self.data_dir, self.log_file)
        self._check_reachable()

    def init(self) -> None:
        """Create the cluster (``initdb``), configure it for ``host:port`` and create ``dbname``.

        The server is started and stopped again if ``dbname`` must be created.
        """
        self._prepare_data_dir()

        auth = "scram-sha-256" if self.password else "trust"
        args = [
            str(self.bin_dir / "initdb"),
            "--pgdata",
            str(self.data_dir),
            "--username",
            self.superuser,
            "--encoding",
            "UTF8",
            "--no-locale",
            "--auth-host",
            auth,
            "--auth-local",
            auth,
        ]
        with tempfile.TemporaryDirectory(prefix="pg-init-") as tmp:
            if self.password:
                pwfile = Path(tmp) / "pwfile"
                pwfile.write_text(self.password + "\n")
                pwfile.chmod(0o600)
                self._chown(Path(tmp), pwfile)
                args += ["--pwfile", str(pwfile)]
            self._run(args, what="initdb")

        socket_dir = str(self.data_dir) if len(str(self.data_dir)) <= _MAX_SOCKET_DIR else ""
        conf = {
            "listen_addresses": quote_literal(self.host),
            "port": str(self.port),
            # Empty disables the unix socket when the path would be too long for one.
            "unix_socket_directories": quote_literal(socket_dir),
            "password_encryption": "'scram-sha-256'",
            **self.settings,
        }
        with (self.data_dir / "postgresql.conf").open("a") as handle:
            handle.write("\n# localcloud.postgres\n")
            handle.writelines(f"{key} = {value}\n" for key, value in conf.items())

        if self.dbname and self.dbname != "postgres":
            self.start()
            try:
                self.psql(f"CREATE DATABASE {quote_ident(self.dbname)}", dbname="postgres")
            finally:
                self.stop()

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and return once it accepts TCP connections."""
        if self.is_running():
            return
        self._run(
            [
                str(self.bin_dir / "pg_ctl"),
                "start",
                "--pgdata",
                str(self.data_dir),
                "--log",
                str(self.log_file),
                "--wait",
                "--timeout",
                str(max(1, int(timeout))),
            ],
            what="pg_ctl start",
            timeout=timeout + 5,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    return
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise PostgresError(f"PostgreSQL did not accept connections on {self.host}:{self.port}") from exc
                time.sleep(0.05)

    def stop(self, mode: str = "fast", timeout: float = 30.0) -> None:
        """Stop the server (``fast`` rolls back open transactions; ``immediate`` is a crash stop)."""
        if not self.is_running():
            return
        self._run(
            [
                str(self.bin_dir / "pg_ctl"),
                "stop",
                "--pgdata",
                str(self.data_dir),
                "--mode",
                mode,
                "--wait",
                "--timeout",
                str(max(1, int(timeout))),
            ],
            what="pg_ctl stop",
            timeout=timeout + 5,
        )

    def reload(self) -> None:
        """Re-read ``postgresql.conf`` and ``pg_hba.conf`` (``pg_ctl reload``); open sessions stay."""
        if self.is_running():
            self._run([str(self.bin_dir / "pg_ctl"), "reload", "--pgdata", str(self.data_dir)], what="pg_ctl reload")

    # -- TLS -----------------------------------------------------------------------------------

    def enable_tls(self, cert_pem: bytes, key_pem: bytes) -> None:
        """Serve TLS with this certificate and key (written into the data directory, the key 0600 and
        owned by the server's user, as PostgreSQL requires). Takes effect at the next start or
        :meth:`reload`; plaintext connections are still accepted until :meth:`require_tls`."""
        for name, data, mode in (("server.crt", cert_pem, 0o644), ("server.key", key_pem, 0o600)):
            path = self.data_dir / name
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(descriptor, "wb") as out:
                out.write(data)
            path.chmod(mode)
            self._chown(path)
        with (self.data_dir / "postgresql.conf").open("a") as handle:  # later lines win
            handle.write("\n# localcloud.postgres: TLS\nssl = on\n")
            handle.write("ssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")

    def require_tls(self, required: bool) -> None:
        """Accept TCP connections over TLS only (``hostssl`` lines in ``pg_hba.conf``: a plaintext one
        finds no entry and is refused), or over either (``host``). Reloads a running server."""
        hba = self.data_dir / "pg_hba.conf"
        kind = "hostssl" if required else "host"
        text = re.sub(r"^(?:host|hostssl)(?=\s)", kind, hba.read_text(), flags=re.MULTILINE)
        hba.write_text(text)
        self.reload()

    def tls_required(self) -> bool:
        """Whether ``pg_hba.conf`` accepts TCP connections over TLS only."""
        lines = [line.split() for line in (self.data_dir / "pg_hba.conf").read_text().splitlines()]
        kinds = {fields[0] for fields in lines if fields and fields[0] in ("host", "hostssl", "hostnossl")}
        return kinds == {"hostssl"}

    # -- copies (the local cloud's DB snapshots) -----------------------------------------------

    def backup(self, target: Path, timeout: float = 300.0) -> None:
        """Copy the running cluster into ``target`` (a directory that does not exist yet) with
        ``pg_basebackup``: a consistent copy taken while the server runs, with the WAL it needs to start."""
        target = Path(target).absolute()
        self._own_parent(target)
        self._run(
            [
                str(self.bin_dir / "pg_basebackup"),
                "--pgdata",
                str(target),
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--username",
                self.superuser,
                "--wal-method",
                "stream",
                "--checkpoint",
                "fast",
                "--no-password",
            ],
            what="pg_basebackup",
            timeout=timeout,
            env={"PGPASSWORD": self.password or "", "PGCONNECT_TIMEOUT": "10"},
        )

    def copy_stopped(self, target: Path, timeout: float = 300.0) -> None:
        """Copy the cluster of a stopped server into ``target`` (a directory that does not exist yet)."""
        if self.is_running():
            raise PostgresError(f"the server of {self.data_dir} runs: stop it, or use backup()")
        target = Path(target).absolute()
        self._own_parent(target)
        self._run(["cp", "-a", str(self.data_dir), str(target)], what="copying the cluster", timeout=timeout)

    def init_from_copy(self, source: Path, timeout: float = 300.0) -> None:
        """Create the cluster as a copy of ``source`` (made by :meth:`backup` or :meth:`copy_stopped`),
        listening on this server's host and port. Its roles, passwords and databases are the copy's:
        ``password`` must be the superuser's password in the copy."""
        self._prepare_data_dir()
        self._run(["cp", "-a", f"{Path(source).absolute()}/.", str(self.data_dir)], what="copying", timeout=timeout)
        self._listen_here("restored from a copy")

    def _listen_here(self, origin: str) -> None:
        """A cluster copied from another server's: drop that server's lock files (its unix socket lives in
        its data directory) and make this one listen on its own host and port (later lines win)."""
        for stale in [self.data_dir / "postmaster.pid", *self.data_dir.glob(".s.PGSQL.*")]:
            stale.unlink(missing_ok=True)
        socket_dir = str(self.data_dir) if len(str(self.data_dir)) <= _MAX_SOCKET_DIR else ""
        conf = {
            "listen_addresses": quote_literal(self.host),
            "port": str(self.port),
            "unix_socket_directories": quote_literal(socket_dir),
        }
        with (self.data_dir / "postgresql.conf").open("a") as handle:
            handle.write(f"\n# localcloud.postgres: {origin}\n")
            handle.writelines(f"{key} = {value}\n" for key, value in conf.items())

    def init_standby(self, source: PostgresServer, timeout: float = 300.0) -> None:
        """Create the cluster as a streaming replica of the running ``source``: ``pg_basebackup
        --write-recovery-conf`` (``standby.signal`` and ``primary_conninfo``), listening on this server's
        host and port. It starts read-only, replays what the source writes, and its roles and passwords
        are the source's (replicated with everything else)."""
        self._prepare_data_dir()
        self._run(
            [
                str(self.bin_dir / "pg_basebackup"),
                "--pgdata",
                str(self.data_dir),
                "--host",
                source.host,
                "--port",
                str(source.port),
                "--username",
                source.superuser,
                "--wal-method",
                "stream",
                "--checkpoint",
                "fast",
                "--write-recovery-conf",
                "--no-password",
            ],
            what="pg_basebackup of the primary",
            timeout=timeout,
            env={
                "PGPASSWORD": source.password or "",
                "PGCONNECT_TIMEOUT": "10",
                # No client certificate: libpq would look in the home of whoever started the local cloud
                # (root's, unreadable to the server's user); a path that does not exist means none.
                "PGSSLCERT": str(self.data_dir.with_name("no-client.crt")),
                "PGSSLKEY": str(self.data_dir.with_name("no-client.key")),
            },
        )
        self._listen_here("a streaming replica")

    def _own_parent(self, target: Path) -> None:
        if target.exists():
            raise PostgresError(f"{target} exists")
        target.parent.mkdir(parents=True, exist_ok=True)
        self._chown(target.parent)

    def postmaster_pid(self) -> Optional[int]:
        """The PID in ``postmaster.pid`` (the server's lock file), if there is one."""
        try:
            return int(self._lock_file_lines()[0])
        except (IndexError, ValueError):
            return None

    def postmaster_alive(self) -> bool:
        """Whether the lock file's postmaster runs: cheap enough to ask twice a second.

        A zombie is dead: a postmaster killed after ``pg_ctl`` exited is an orphan, and where
        nothing reaps orphans (PID 1 of some containers) its PID stays taken, so ``kill(pid, 0)``
        and ``pg_ctl status`` still find it.
        """
        pid = self.postmaster_pid()
        process = _process(pid) if pid is not None else None
        return process is not None and process[0] == "postgres" and process[1] not in ("Z", "X")

    def recover(self, timeout: float = 60.0) -> None:
        """Start the server again after its postmaster died without a shutdown (crash, ``kill -9``).

        PostgreSQL's own interlock refuses to start while a process of the dead server is still
        attached to its shared memory (orphaned backends notice the postmaster's death and exit
        within moments): wait for them. A dead postmaster that is a zombie looks alive to
        PostgreSQL and ``pg_ctl``, so its lock file is removed once nothing is attached any more.
        The start replays the WAL (crash recovery): every committed transaction is kept.
        """
        if self.postmaster_alive():
            raise PostgresError(f"the postmaster of {self.data_dir} is running")
        deadline = time.monotonic() + timeout
        while self._shared_memory_attached():
            if time.monotonic() > deadline:
                raise PostgresError(f"processes of the dead server of {self.data_dir} still hold its shared memory")
            time.sleep(0.1)
        pid = self.postmaster_pid()
        if pid is not None and _process(pid) is not None:  # a zombie, or the PID is someone else's now
            lines = self._lock_file_lines()
            if len(lines) > 4 and lines[4]:  # the unix socket's lock file holds the same PID
                Path(lines[4], f".s.PGSQL.{self.port}.lock").unlink(missing_ok=True)
            (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
        self.start(timeout=max(1.0, deadline - time.monotonic()))

    def is_running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        result = subprocess.run(
            [str(self.bin_dir / "pg_ctl"), "status", "--pgdata", str(self.data_dir)],
            capture_output=True,
            check=False,
            timeout=30,
            **self._user_kwargs(),
        )
        return result.returncode == 0

    # -- administration ------------------------------------------------------------------------

    def psql(self, sql: str, dbname: Optional[str] = None) -> str:
        """Run SQL as the superuser (stops at the first error) and return psql's unaligned output.

        The SQL goes on stdin, so secrets in it never appear in a process listing; failing
        statements are kept out of the server log for the same reason.
        """
        env = dict(os.environ, PGPASSWORD=self.password or "", PGCONNECT_TIMEOUT="10")
        env.pop("PGSERVICE", None)
        script = "SET log_min_error_statement = panic;\n" + sql + "\n"
        result = subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "--no-psqlrc",
                "--quiet",
                "--tuples-only",
                "--no-align",
                "--set",
                "ON_ERROR_STOP=1",
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--username",
                self.superuser,
                "--dbname",
                dbname or self.dbname or "postgres",
            ],
            input=script,
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=60,
        )
        if result.returncode != 0:
            raise PostgresError(f"psql failed: {result.stderr.strip()[-2000:]}")
        return result.stdout

    def set_password(self, user: str, password: str) -> None:
        """Set (or rotate) a role's password; existing sessions of that role stay connected."""
        self.psql(f"ALTER ROLE {quote_ident(user)} WITH PASSWORD {quote_literal(password)}")
        if user == self.superuser:
            self.password = password

    def create_role(self, user: str, password: str, *, createdb: bool = False) -> None:
        """Create a login role with a password."""
        extra = " CREATEDB" if createdb else ""
        self.psql(f"CREATE ROLE {quote_ident(user)} WITH LOGIN{extra} PASSWORD {quote_literal(password)}")

    def create_database(self, name: str, owner: Optional[str] = None) -> None:
        owner_sql = f" OWNER {quote_ident(owner)}" if owner else ""
        self.psql(f"CREATE DATABASE {quote_ident(name)}{owner_sql}")

    def dsn(self, user: Optional[str] = None, password: Optional[str] = None, dbname: Optional[str] = None) -> str:
        """A libpq connection string; the superuser's credentials unless ``user`` is given."""
        if user is None:
            user, password = self.superuser, self.password if password is None else password
        parts = {
            "host": self.host,
            "port": str(self.port),
            "user": user,
            "dbname": dbname or self.dbname or "postgres",
        }
        if password:
            parts["password"] = password
        return " ".join(f"{key}={_conninfo_value(value)}" for key, value in parts.items())

    # -- helpers -------------------------------------------------------------------------------

    def _check_reachable(self) -> None:
        if self._os_user is None:
            return
        probe = subprocess.run(["test", "-w", str(self.data_dir)], check=False, cwd="/", **self._user_kwargs())
        if probe.returncode != 0:
            raise PostgresError(
                f"user {self._os_user.pw_name} cannot reach {self.data_dir}: every parent directory needs o+x "
                "(a tempfile.mkdtemp() directory needs chmod 0o711)"
            )

    def _user_kwargs(self) -> dict:
        if self._os_user is None:
            return {}
        return {"user": self._os_user.pw_uid, "group": self._os_user.pw_gid, "extra_groups": []}

    def _chown(self, *paths: Path) -> None:
        if self._os_user is not None:
            for path in paths:
                os.chown(path, self._os_user.pw_uid, self._os_user.pw_gid)

    def _run(self, args: list, what: str, timeout: float = 120, env: Optional[Mapping[str, str]] = None) -> None:
        # Run from a directory the unprivileged user can read: initdb and pg_ctl check their cwd.
        result = subprocess.run(
            args,
            capture_output=True,
            text=True,
            check=False,
            cwd="/",
            timeout=timeout,
            env=dict(os.environ, LC_ALL="C", **(env or {})),
            **self._user_kwargs(),
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()[-2000:]
            raise PostgresError(f"{what} failed (exit {result.returncode}): {output}\n{self._log_tail()}")

    def _lock_file_lines(self) -> list[str]:
        try:
            return (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return []

    def _shared_memory_attached(self) -> bool:
        """Whether a process is attached to the System V segment the lock file names (line 7)."""
        lines = self._lock_file_lines()
        try:
            shmid = int(lines[6].split()[1])
        except (IndexError, ValueError):
            return False
        try:
            table = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
        except OSError:
            return False
        for row in table:
            fields = row.split()
            if len(fields) > 6 and fields[1] == str(shmid):
                return int(fields[6]) > 0
        return False

    def _log_tail(self, lines: int = 20) -> str:
        try:
            tail = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return f"server log {self.log_file}:\n" + "\n".join(tail) if tail else ""


def _conninfo_value(value: str) -> str:
    if value and not any(ch in value for ch in " '\\"):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _process(pid: int) -> Optional[tuple[str, str]]:
    """A process's name and state letter (``R``, ``S``, ``Z``...) from ``/proc``; None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name, _, rest = stat.partition("(")[2].rpartition(")")
    return name, rest.split()[0]
