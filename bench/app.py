"""Benchmark items-api as it runs in a task: gunicorn (gunicorn.conf.py) on loopback, a real
PostgreSQL server and the password in SSM (the local AWS API), under a bounded load.

    python bench/app.py [--workers 2] [--threads 4] [--duration 10] [--connections 16]

Scenarios: GET /health, GET /items?limit=20 (over --seed items) and POST /items. The load comes from
wrk when it is installed (``apt-get install -y wrk``), else from a Python keep-alive client (which
competes with the server for CPU, so its figures are lower). Prints requests per second and p50/p99
latency for each, with the worker count. Everything started is stopped at the end; only loopback
addresses are used, and every run is bounded in time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APP_DIR = REPO / "app"
sys.path.insert(0, str(REPO))

from bench._load import Result, python_load, wrk_result  # noqa: E402
from localcloud.postgres import PostgresServer  # noqa: E402

HOST = "127.0.0.1"
MAX_DURATION = 60
MAX_CONNECTIONS = 256


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    method: str = "GET"
    body: bytes | None = None


SCENARIOS = (
    Scenario("GET /health", "/health"),
    Scenario("GET /items?limit=20", "/items?limit=20"),
    Scenario("POST /items", "/items", "POST", json.dumps({"name": "bench item ✓"}).encode()),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up in {timeout}s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def stack(workdir: Path, args: argparse.Namespace) -> Iterator[str]:
    """PostgreSQL + local AWS API + gunicorn; yields the app's base URL."""
    processes: list[subprocess.Popen] = []
    settings = {"fsync": "off", "synchronous_commit": "off"} if args.fast_db else {}
    pg = PostgresServer(workdir / "pg", free_port(), password=secrets.token_urlsafe(16), settings=settings)
    try:
        pg.init()
        pg.start()
        password = secrets.token_urlsafe(16)
        pg.create_role("items_app", password)
        pg.create_database("items", owner="items_app")

        aws_port = free_port()
        aws = subprocess.Popen(
            [sys.executable, "-m", "localcloud.awsapi", "--port", str(aws_port)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=(workdir / "awsapi.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        processes.append(aws)
        endpoint = f"http://{HOST}:{aws_port}"
        wait_for(f"{endpoint}/moto-api/", aws, "local AWS API")
        aws_env = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": "us-east-1",
        }
        put_parameter(endpoint, "/items-api/bench/db-password", password)

        app_port = free_port()
        env = {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            **aws_env,
            "APP_VERSION": "bench",
            "DEPLOYMENT_COLOR": "blue",
            "APP_HOST": HOST,
            "APP_PORT": str(app_port),
            "GUNICORN_WORKERS": str(args.workers),
            "GUNICORN_THREADS": str(args.threads),
            "DB_HOST": HOST,
            "DB_PORT": str(pg.port),
            "DB_NAME": "items",
            "DB_USER": "items_app",
            "DB_PASSWORD_SSM_PARAM": "/items-api/bench/db-password",
            "DB_POOL_MAX_SIZE": str(args.threads),
            # Access logs cost CPU in the server; keep them, as production does, but off the terminal.
            "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "warning"),
        }
        app = subprocess.Popen(
            ["gunicorn", "-c", "gunicorn.conf.py", "items_api:create_app()"],
            cwd=APP_DIR,
            env=env,
            stdout=(workdir / "access.log").open("wb"),
            stderr=(workdir / "gunicorn.log").open("wb"),
        )
        processes.append(app)
        base_url = f"http://{HOST}:{app_port}"
        wait_for(f"{base_url}/health", app, "gunicorn")
        rows = int(args.seed)
        seed = f"INSERT INTO items (name) SELECT 'seed ' || n FROM generate_series(1, {rows}) AS n"  # noqa: S608
        pg.psql(seed, dbname="items")
        yield base_url
    finally:
        for process in reversed(processes):
            stop(process)
        with contextlib.suppress(Exception):
            pg.stop()


def put_parameter(endpoint: str, name: str, value: str) -> None:
    import boto3

    boto3.client(
        "ssm",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # noqa: S106 - the local AWS API takes any credentials
    ).put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)


# -- load generators -----------------------------------------------------------------------------


def run_wrk(scenario: Scenario, base_url: str, args: argparse.Namespace, workdir: Path) -> Result:
    script = workdir / f"{re.sub(r'[^a-z]+', '_', scenario.name.lower())}.lua"
    lines = [f'wrk.method = "{scenario.method}"']
    if scenario.body is not None:
        body = json.dumps(scenario.body.decode())
        lines += [f"wrk.body = {body}", 'wrk.headers["Content-Type"] = "application/json"']
    script.write_text("\n".join(lines) + "\n")
    command = [
        "wrk",
        f"--threads={min(2, args.connections)}",
        f"--connections={args.connections}",
        f"--duration={args.duration}s",
        "--timeout=10s",
        "--latency",
        f"--script={script}",
        base_url + scenario.path,
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=args.duration + 30).stdout
    return wrk_result(scenario.name, output)


def run_python(scenario: Scenario, base_url: str, args: argparse.Namespace) -> Result:
    return python_load(
        scenario.name,
        base_url + scenario.path,
        args.connections,
        args.duration,
        ok=lambda status: 200 <= status < 400,
        method=scenario.method,
        body=scenario.body,
        headers={"Content-Type": "application/json"} if scenario.body is not None else {},
    )


def run(generator: str, scenario: Scenario, base_url: str, args: argparse.Namespace, workdir: Path) -> Result:
    if generator == "wrk":
        return run_wrk(scenario, base_url, args, workdir)
    return run_python(scenario, base_url, args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/app.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=int(os.environ.get("GUNICORN_WORKERS", "2")))
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker (and DB pool size)")
    parser.add_argument("--duration", type=int, default=10, help=f"seconds per scenario (at most {MAX_DURATION})")
    parser.add_argument(
        "--connections", type=int, default=16, help=f"concurrent connections (at most {MAX_CONNECTIONS})"
    )
    parser.add_argument("--seed", type=int, default=1000, help="items in the table before the run")
    parser.add_argument("--fast-db", action="store_true", help="PostgreSQL without fsync (not production-like)")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    args = parser.parse_args(argv)
    args.duration = max(1, min(args.duration, MAX_DURATION))
    args.connections = max(1, min(args.connections, MAX_CONNECTIONS))
    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "python"
    if generator == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install -y wrk)")

    workdir = Path(tempfile.mkdtemp(prefix="items-bench-"))
    workdir.chmod(0o711)  # PostgreSQL runs as an unprivileged user when we are root
    results = []
    try:
        with stack(workdir, args) as base_url:
            print(
                f"items-api on {base_url}: {args.workers} gunicorn workers x {args.threads} threads (gthread); "
                f"load: {generator}, {args.connections} connections, {args.duration}s per scenario; "
                f"PostgreSQL fsync {'off' if args.fast_db else 'on'}, {args.seed} seeded items",
                flush=True,
            )
            # Unreported warm-up: every worker opens its pool and every code path is hot.
            warmup = argparse.Namespace(**{**vars(args), "duration": 2})
            for scenario in SCENARIOS:
                run(generator, scenario, base_url, warmup, workdir)
            for scenario in SCENARIOS:
                result = run(generator, scenario, base_url, args, workdir)
                results.append(result)
                print(
                    f"  {scenario.name:<22} {result.rps:>9.1f} req/s   p50 {result.p50_ms:>7.2f} ms   "
                    f"p99 {result.p99_ms:>7.2f} ms   errors {result.errors}",
                    flush=True,
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"workers: {args.workers}")
    return 1 if any(result.errors for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
