"""Helpers for the items-api tests: throwaway PostgreSQL servers, app databases with their password
in SSM, the app's environment, and gunicorn processes. Fixtures built on them are in conftest.py."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from localcloud.awsapi import free_port  # also used by the tests
from localcloud.postgres import PostgresServer

APP_DIR = Path(__file__).resolve().parents[1]

# This interpreter's gunicorn, as the image's is its Python's.
GUNICORN = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or shutil.which("gunicorn") or "gunicorn"
REGION = "us-east-1"
FAST_TEST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def temp_dir(prefix: str) -> Path:
    """A private temp dir the unprivileged PostgreSQL user can traverse (pytest's tmp_path is 0700 root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o711)
    return path


@contextlib.contextmanager
def postgres_server(prefix: str = "items-pg-") -> Iterator[PostgresServer]:
    """A fresh, started PostgreSQL server, stopped and deleted afterwards."""
    root = temp_dir(prefix)
    server = PostgresServer(
        root / "data",
        free_port(),
        password=secrets.token_urlsafe(16),
        settings=FAST_TEST_SETTINGS,
    )
    try:
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop(mode="immediate")
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class AppDatabase:
    """A database and login role for the app on ``server``, with the password in SSM."""

    server: PostgresServer
    name: str
    user: str
    password: str
    ssm_param: str

    def env(self) -> dict[str, str]:
        return {
            "DB_HOST": self.server.host,
            "DB_PORT": str(self.server.port),
            "DB_NAME": self.name,
            "DB_USER": self.user,
            "DB_PASSWORD_SSM_PARAM": self.ssm_param,
        }

    def sql(self, statement: str) -> str:
        return self.server.psql(statement, dbname=self.name)

    def rotate_password(self, ssm, password: str) -> None:
        """What a rotation does: the role's password and the SSM value change; sessions stay."""
        self.server.set_password(self.user, password)
        ssm.put_parameter(Name=self.ssm_param, Value=password, Type="SecureString", Overwrite=True)
        self.password = password


def make_app_database(server: PostgresServer, ssm, suffix: str) -> AppDatabase:
    db = AppDatabase(
        server=server,
        name=f"items_{suffix}",
        user=f"items_app_{suffix}",
        password=secrets.token_urlsafe(16) + "'\"$;",  # quoting trouble on purpose
        ssm_param=f"/items-api/test/{suffix}/db-password",
    )
    server.create_role(db.user, db.password)
    server.create_database(db.name, owner=db.user)
    ssm.put_parameter(Name=db.ssm_param, Value=db.password, Type="SecureString", Overwrite=True)
    return db


def app_env(db: AppDatabase, aws: dict[str, str], **overrides: str) -> dict[str, str]:
    """The complete environment of an app process (what the task definition provides)."""
    return {
        "APP_VERSION": "1.2.3",
        "DEPLOYMENT_COLOR": "blue",
        **aws,
        **db.env(),
        "DB_STARTUP_TIMEOUT": "20",
        "DB_POOL_TIMEOUT": "3",
        **overrides,
    }


@contextlib.contextmanager
def running_app(db: AppDatabase, aws: dict[str, str], **overrides: str):
    """The app built in-process from ``db``'s environment; its pool is closed afterwards."""
    from items_api.app import create_app
    from items_api.config import load_settings

    app = create_app(load_settings(app_env(db, aws, **overrides)))
    try:
        yield app
    finally:
        app.extensions["items_api.database"].close()


@dataclass
class Gunicorn:
    process: subprocess.Popen
    base_url: str
    stdout_path: Path
    stderr_path: Path
    env: dict[str, str] = field(repr=False)

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def get(self, path: str, timeout: float = 5) -> tuple[int, bytes, dict[str, str]]:
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=timeout) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_gunicorn(env: dict[str, str], log_dir: Path, command: list[str] | None = None, wait: bool = True) -> Gunicorn:
    """Start the app as the platform does, from app/, with exactly ``env`` (plus PATH)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    env.setdefault("APP_HOST", "127.0.0.1")
    env.setdefault("APP_PORT", str(free_port()))
    command = command or [GUNICORN, "-c", "gunicorn.conf.py", "items_api:create_app()"]
    log_dir.mkdir(parents=True, exist_ok=True)
    stdout_path, stderr_path = log_dir / "gunicorn.out", log_dir / "gunicorn.err"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(command, cwd=APP_DIR, env=env, stdout=out, stderr=err)
    server = Gunicorn(process, f"http://{env['APP_HOST']}:{env['APP_PORT']}", stdout_path, stderr_path, env)
    if wait:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {process.returncode}: {server.stderr()[-3000:]}")
            try:
                if server.get("/live", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"gunicorn did not become live: {server.stderr()[-3000:]}")
            time.sleep(0.1)
    return server
