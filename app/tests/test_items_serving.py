"""The app as the platform runs it: gunicorn started from app/ with the task's environment."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from items_support import APP_DIR, app_env, free_port, make_app_database

pytestmark = pytest.mark.slow


@pytest.fixture
def task_env(app_db, aws_env) -> dict[str, str]:
    return app_env(app_db, aws_env, GUNICORN_WORKERS="2", GUNICORN_THREADS="2", GUNICORN_GRACEFUL_TIMEOUT="10")


def request(base_url: str, method: str, path: str, body: dict | None = None, headers: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base_url + path, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "items_api.healthcheck"],
        cwd=APP_DIR,
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_serves_on_its_own_loopback_address_with_the_configured_workers(gunicorn_factory, task_env, app_db):
    server = gunicorn_factory({**task_env, "APP_HOST": "127.0.0.7", "DEPLOYMENT_COLOR": "green"})
    deadline = time.monotonic() + 10
    while len(children(server.process.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # and no more than that
    assert len(children(server.process.pid)) == 2

    status, body, headers = request(server.base_url, "POST", "/items", {"name": "via gunicorn"})
    assert status == 201
    assert headers["Location"].startswith("/items/")
    assert headers["X-Deployment-Color"] == "green"
    assert headers["X-App-Version"] == "1.2.3"
    status, body, _ = request(server.base_url, "GET", headers["Location"])
    assert (status, json.loads(body)["name"]) == (200, "via gunicorn")

    status, body, _ = server.get("/health")
    assert status == 200
    assert json.loads(body) | {"checks": None} == {
        "status": "ok",
        "version": "1.2.3",
        "deployment": "green",
        "checks": None,
    }
    assert json.loads(server.get("/")[1])["deployment"] == "green"
    app_db.sql("TRUNCATE items")


def test_logs_are_json_lines_with_request_ids_and_never_the_password(gunicorn_factory, task_env, app_db):
    server = gunicorn_factory({**task_env, "LOG_LEVEL": "debug"})
    status, body, headers = request(server.base_url, "POST", "/items", {"name": "logged"}, {"X-Request-ID": "req-42"})
    assert status == 201
    assert headers["X-Request-ID"] == "req-42"
    assert request(server.base_url, "GET", "/items/abc")[0] == 400
    assert server.stop() == 0

    lines = [line for line in (server.stdout() + server.stderr()).splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is JSON
    access = [r for r in records if r["logger"] == "gunicorn.access"]
    created = next(r for r in access if r.get("method") == "POST")
    assert created | {"duration_ms": 0, "time": "", "pid": 0} == {
        "time": "",
        "level": "info",
        "logger": "gunicorn.access",
        "message": "request",
        "remote_addr": "127.0.0.1",
        "method": "POST",
        "path": "/items",
        "protocol": "HTTP/1.1",
        "status": 201,
        "bytes": created["bytes"],
        "user_agent": created["user_agent"],
        "duration_ms": 0,
        "request_id": "req-42",
        "pid": 0,
    }
    app_lines = [r for r in records if r["logger"] == "items_api.views" and r.get("request_id") == "req-42"]
    assert any(r["message"].startswith("created item") for r in app_lines)
    assert any(r.get("status") == 400 and len(r.get("request_id", "")) == 32 for r in access)
    assert any(r["logger"] == "gunicorn.error" for r in records)

    everything = server.stdout() + server.stderr()
    assert app_db.password not in everything
    assert json.dumps(app_db.password)[1:-1] not in everything
    app_db.sql("TRUNCATE items")


def test_sigterm_lets_in_flight_requests_finish(gunicorn_factory, task_env, app_db):
    server = gunicorn_factory(task_env)
    host, port = server.env["APP_HOST"], int(server.env["APP_PORT"])
    body = json.dumps({"name": "in flight during shutdown"}).encode()
    with socket.create_connection((host, port), timeout=15) as sock:
        sock.sendall(
            b"POST /items HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:10]
        )
        time.sleep(1.0)  # the request is now being read by a worker
        server.process.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert server.process.poll() is None, "gunicorn exited with a request in flight"
        sock.sendall(body[10:])
        response = sock.recv(65536).decode()
    assert response.startswith("HTTP/1.1 201"), response
    assert server.process.wait(timeout=15) == 0
    assert app_db.sql("SELECT count(*) FROM items WHERE name = 'in flight during shutdown'").strip() == "1"
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=2).close()
    app_db.sql("TRUNCATE items")


def test_chunked_bodies_are_held_to_the_size_limit(gunicorn_factory, task_env, app_db):
    from items_api.items import MAX_BODY_BYTES

    server = gunicorn_factory(task_env)

    def post_chunked(padding: int) -> tuple[int, dict]:
        # Valid JSON whatever its length: truncating it would still parse.
        body = b'{"name": "chunked"}' + b" " * padding
        chunks = (body[i : i + 1000] for i in range(0, len(body), 1000))
        connection = http.client.HTTPConnection(server.env["APP_HOST"], int(server.env["APP_PORT"]), timeout=10)
        try:
            connection.request(
                "POST", "/items", body=chunks, headers={"Content-Type": "application/json"}, encode_chunked=True
            )
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    status, body = post_chunked(MAX_BODY_BYTES)
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    assert app_db.sql("SELECT count(*) FROM items").strip() == "0"
    status, body = post_chunked(MAX_BODY_BYTES - len(b'{"name": "chunked"}'))
    assert (status, body["name"]) == (201, "chunked")
    app_db.sql("TRUNCATE items")


def test_healthcheck_command_follows_liveness(gunicorn_factory, task_env):
    # 0.0.0.0 -> 127.0.0.1 is covered by test_items_config; tests only ever bind loopback.
    env = {**task_env, "APP_HOST": "127.0.0.9", "APP_PORT": str(free_port())}
    server = gunicorn_factory(env, wait=False)
    deadline = time.monotonic() + 60
    while healthcheck(env).returncode != 0:
        assert server.process.poll() is None, server.stderr()
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert healthcheck({**env, "APP_HOST": "127.0.0.10"}).returncode == 1  # nothing there
    server.stop()
    result = healthcheck(env)
    assert result.returncode == 1
    assert "did not answer 200" in result.stderr


def test_blue_and_green_starting_together_migrate_once(gunicorn_factory, pg, ssm, aws_env):
    db = make_app_database(pg, ssm, "bluegreen")
    blue = gunicorn_factory(app_env(db, aws_env, DEPLOYMENT_COLOR="blue", GUNICORN_WORKERS="1"), wait=False)
    green = gunicorn_factory(app_env(db, aws_env, DEPLOYMENT_COLOR="green", GUNICORN_WORKERS="1"), wait=False)
    colours = {}
    for server in (blue, green):
        deadline = time.monotonic() + 60
        while True:
            assert server.process.poll() is None, server.stderr()
            try:
                status, body, _ = server.get("/health", timeout=2)
            except OSError:
                status = 0
            if status == 200:
                colours[json.loads(body)["deployment"]] = server
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert set(colours) == {"blue", "green"}
    assert db.sql("SELECT version FROM schema_migrations").split() == ["1"]
    assert "applied migration" in blue.stderr() + green.stderr()


@pytest.mark.parametrize(
    ("overrides", "messages"),
    [
        ({"DB_HOST": "", "DB_PORT": "eighty"}, ["DB_HOST is required", "DB_PORT must be a number"]),
        ({"DB_PASSWORD": "plain-text-secret"}, ["DB_PASSWORD is not supported"]),
        ({"DB_SSLMODE": "sometimes"}, ["DB_SSLMODE must be one of"]),
        ({"GUNICORN_WORKERS": "many"}, ["GUNICORN_WORKERS must be a number"]),
        ({"DB_PASSWORD_SSM_PARAM": "/items-api/test/missing"}, ["/items-api/test/missing", "ParameterNotFound"]),
        ({"DB_PORT": "1", "DB_STARTUP_TIMEOUT": "1"}, ["not ready after 1s"]),
    ],
)
def test_bad_settings_stop_start_up_with_a_clear_message(gunicorn_factory, task_env, overrides, messages):
    server = gunicorn_factory({**task_env, **overrides}, wait=False)
    assert server.process.wait(timeout=60) != 0
    stderr = server.stderr()
    for message in messages:
        assert message in stderr
    assert "Traceback" not in stderr
    assert "plain-text-secret" not in stderr


def test_rotated_password_reaches_gunicorn_workers(gunicorn_factory, pg, ssm, aws_env):
    """A rotated password reaches gunicorn workers too (the in-process test covers the details)."""
    db = make_app_database(pg, ssm, "gunirotate")
    server = gunicorn_factory(app_env(db, aws_env, GUNICORN_WORKERS="1"))
    assert request(server.base_url, "POST", "/items", {"name": "before"})[0] == 201
    db.rotate_password(ssm, secrets.token_urlsafe(12))
    db.sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{db.user}'")  # noqa: S608
    results = []

    def post() -> None:
        results.append(request(server.base_url, "POST", "/items", {"name": "after"})[0])

    threads = [threading.Thread(target=post) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [201, 201, 201]
    assert db.password not in server.stdout() + server.stderr()
