"""``localcloud up|down|status|reset``: start, stop, inspect and empty the local cloud.

All state lives in one directory (``--state-dir``, env ``LOCALCLOUD_STATE_DIR``, default
``.state/localcloud`` under the current directory): pid files, logs and the settings of the
running instance. Everything started is stopped by pid.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_PORT = 4566
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"


class StateDir:
    def __init__(self, path: Path):
        self.path = path

    @property
    def settings_file(self) -> Path:
        return self.path / "localcloud.json"

    def pid_file(self, name: str) -> Path:
        return self.path / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.path / f"{name}.log"

    def read_settings(self) -> Settings | None:
        try:
            return Settings(**json.loads(self.settings_file.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def write_settings(self, settings: Settings) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.settings_file.write_text(json.dumps(asdict(settings)))

    def read_pid(self, name: str) -> int | None:
        try:
            pid = int(self.pid_file(name).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid_alive(pid) else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); it is not running.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def api_ready(settings: Settings, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{settings.endpoint_url}/moto-api/", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_awsapi(state: StateDir, settings: Settings) -> int:
    log = open(state.log_file("awsapi"), "ab")  # noqa: SIM115 - handed to the child process
    env = dict(os.environ, MOTO_IAM_LOAD_MANAGED_POLICIES="true")
    repo = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, "-m", "localcloud.awsapi", "--host", settings.host, "--port", str(settings.port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    state.pid_file("awsapi").write_text(str(process.pid))
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log_path = state.log_file("awsapi")
            raise SystemExit(f"localcloud: the AWS API exited with {process.returncode}; see {log_path}")
        if api_ready(settings, timeout=0.5):
            return process.pid
        time.sleep(0.1)
    stop_pid(process.pid)
    log_path = state.log_file("awsapi")
    raise SystemExit(f"localcloud: the AWS API did not answer within {START_TIMEOUT:.0f} s; see {log_path}")


def stop_pid(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def cmd_up(state: StateDir, args: argparse.Namespace) -> int:
    state.path.mkdir(parents=True, exist_ok=True)
    running = state.read_pid("awsapi")
    settings = Settings(host=args.host, port=args.port)
    if running:
        current = state.read_settings() or settings
        print(f"localcloud: already up (pid {running}) at {current.endpoint_url}")
        return 0
    pid = start_awsapi(state, settings)
    state.write_settings(settings)
    print(f"localcloud: AWS API up (pid {pid}) at {settings.endpoint_url}")
    print(f"export AWS_ENDPOINT_URL={settings.endpoint_url}")
    return 0


def cmd_down(state: StateDir, args: argparse.Namespace) -> int:  # noqa: ARG001
    pid = state.read_pid("awsapi")
    if pid:
        stop_pid(pid)
        print(f"localcloud: AWS API stopped (pid {pid})")
    else:
        print("localcloud: already down")
    state.pid_file("awsapi").unlink(missing_ok=True)
    return 0


def cmd_status(state: StateDir, args: argparse.Namespace) -> int:
    pid = state.read_pid("awsapi")
    settings = state.read_settings() or Settings()
    status = {
        "state_dir": str(state.path),
        "awsapi": {
            "pid": pid,
            "endpoint_url": settings.endpoint_url,
            "ready": bool(pid) and api_ready(settings),
        },
    }
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        api = status["awsapi"]
        state_word = "up" if api["ready"] else ("starting" if pid else "down")
        print(f"AWS API  {state_word:8} {api['endpoint_url']}  pid={pid or '-'}")
        print(f"state    {state.path}")
    return 0 if status["awsapi"]["ready"] else 3


def cmd_reset(state: StateDir, args: argparse.Namespace) -> int:  # noqa: ARG001
    settings = state.read_settings()
    if not settings or not state.read_pid("awsapi"):
        print("localcloud: not up; nothing to reset", file=sys.stderr)
        return 3
    request = urllib.request.Request(f"{settings.endpoint_url}/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
    print("localcloud: AWS API state emptied")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="localcloud", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("LOCALCLOUD_STATE_DIR", ".state/localcloud")),
        help="directory for pid files, logs and settings (env LOCALCLOUD_STATE_DIR)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the local cloud and wait until it answers")
    up.add_argument("--host", default="127.0.0.1", help="loopback address for the AWS API")
    up.add_argument("--port", type=int, default=int(os.environ.get("LOCALCLOUD_PORT", DEFAULT_PORT)))
    sub.add_parser("down", help="stop everything the local cloud started")
    status = sub.add_parser("status", help="what runs, where (exit 3 when down)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_parser("reset", help="empty the AWS API's state without restarting it")
    args = parser.parse_args(argv)
    if getattr(args, "host", "127.0.0.1").split(".")[0] != "127":
        parser.error("--host must be a loopback address (127.x.y.z)")
    state = StateDir(args.state_dir.resolve())
    handler = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "reset": cmd_reset}[args.command]
    return handler(state, args)
