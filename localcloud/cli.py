"""``localcloud up|down|status|reset|publish``: start, stop, inspect and empty the local cloud.

``up`` starts one background process: the local AWS API (the moto server, patched) with the data
plane beside it (ECS tasks, RDS databases, the load balancer, logs; see docs/local-cloud.md).
All state lives in one directory (``--state-dir``, env ``LOCALCLOUD_STATE_DIR``, default
``.state/localcloud`` under the current directory): pid file, logs, settings, the status the data
plane rewrites every second, the tasks' logs and the databases' data. ``down`` stops everything it
started, by pid, and checks that no process of ours and no port is left. Works as root and as a
normal user (as root, PostgreSQL runs as the ``postgres`` user).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from localcloud.awsapi import ApiEndpoint, parse_port_map
from localcloud.dataplane.ecs import OWNER_ENV
from localcloud.procs import live_processes

DEFAULT_PORT = 4566
DEFAULT_LISTENER_PORTS = {"80": 8080, "443": 8443}
START_TIMEOUT = 60.0
STOP_TIMEOUT = 90.0  # tasks get their stop timeout (30 s by default), then the databases stop
RESET_TIMEOUT = 120.0


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    data_plane: bool = True
    listener_ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_LISTENER_PORTS))
    regions: list[str] = field(default_factory=lambda: ["us-east-1"])

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"


class StateDir:
    def __init__(self, path: Path):
        self.path = path

    @property
    def settings_file(self) -> Path:
        return self.path / "localcloud.json"

    @property
    def status_file(self) -> Path:
        return self.path / "status.json"

    def pid_file(self, name: str) -> Path:
        return self.path / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.path / f"{name}.log"

    def read_settings(self) -> Settings | None:
        try:
            values = json.loads(self.settings_file.read_text())
            known = {f.name for f in dataclasses.fields(Settings)}
            return Settings(**{k: v for k, v in values.items() if k in known})
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

    def read_status(self, pid: int | None = None) -> dict | None:
        """The data plane's last status; only that of process ``pid`` when given."""
        try:
            status = json.loads(self.status_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        if pid is not None and status.get("pid") != pid:
            return None
        return status


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


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def owned_processes(state: StateDir) -> list[int]:
    """Processes whose environment says they belong to this local cloud (tasks, their health
    checks, PostgreSQL, the API itself): ``LOCALCLOUD_OWNER=<state dir>``."""
    marker = f"{OWNER_ENV}={state.path}".encode()
    return live_processes(lambda variables, _command: marker in variables)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def start_awsapi(state: StateDir, settings: Settings) -> int:
    log = open(state.log_file("awsapi"), "ab")  # noqa: SIM115 - handed to the child process
    env = dict(os.environ, MOTO_IAM_LOAD_MANAGED_POLICIES="true", PYTHONUNBUFFERED="1")
    env[OWNER_ENV] = str(state.path)
    repo = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "localcloud.awsapi", "--host", settings.host, "--port", str(settings.port)]
    if settings.data_plane:
        command += ["--data-plane", "--state-dir", str(state.path)]
        command += [f"--listener-port={listener}={local}" for listener, local in settings.listener_ports.items()]
        command += [f"--region={region}" for region in settings.regions]
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
    )
    log.close()
    state.pid_file("awsapi").write_text(str(process.pid))
    log_path = state.log_file("awsapi")
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(
                f"localcloud: the AWS API exited with {process.returncode}; see {log_path}:\n{_tail(log_path)}"
            )
        status = state.read_status(process.pid)
        plane_ready = not settings.data_plane or (status is not None and status.get("state") == "running")
        if plane_ready and api_ready(settings, timeout=0.5):
            return process.pid
        time.sleep(0.1)
    stop_pid(process.pid)
    raise SystemExit(f"localcloud: the local cloud did not start within {START_TIMEOUT:.0f} s; see {log_path}")


def stop_pid(pid: int, timeout: float = STOP_TIMEOUT) -> bool:
    """SIGTERM the process group of ``pid``, SIGKILL after ``timeout``; True when it stopped in time."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    except PermissionError:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return False


def sweep(state: StateDir, grace: float = 3.0) -> list[int]:
    """Stop what a crashed run left behind: its PostgreSQL servers (``pg_ctl stop``), then any
    process marked as ours. Returns the pids that had to be signalled."""
    for pid_file in sorted(state.path.glob("rds/*/*/data/postmaster.pid")):
        with contextlib.suppress(Exception):
            from localcloud.postgres import PostgresServer

            PostgresServer(pid_file.parent, 0).stop(mode="immediate", timeout=10)
    leftovers = owned_processes(state)
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_alive(p) for p in leftovers):
        time.sleep(0.05)
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return leftovers


def addresses_of(status: dict | None, settings: Settings) -> list[tuple[str, int]]:
    """Every address the local cloud listened on: the API, the listeners, the tasks, the databases."""
    found = [(settings.host, settings.port)]
    found += [("127.0.0.1", int(port)) for port in settings.listener_ports.values()]
    for item in (status or {}).get("tasks", []) + (status or {}).get("databases", []):
        if item.get("last_status") == "STOPPED":
            continue  # its address went back to the pool: another local cloud may listen there now
        address = item.get("address") or ""
        host, _, port = address.rpartition(":")
        if host and port.isdigit():
            found.append((host, int(port)))
    return list(dict.fromkeys(found))


# -- commands ------------------------------------------------------------------------------------


def cmd_up(state: StateDir, args: argparse.Namespace) -> int:
    state.path.mkdir(parents=True, exist_ok=True)
    running = state.read_pid("awsapi")
    if running:
        current = state.read_settings() or Settings()
        print(f"localcloud: already up (pid {running}) at {current.endpoint_url}")
        return 0
    try:
        given = parse_port_map(args.listener_port)
    except ValueError as exc:
        raise SystemExit(f"localcloud: {exc}") from exc
    listener_ports = dict(DEFAULT_LISTENER_PORTS) | {str(listener): local for listener, local in given.items()}
    settings = Settings(
        host=args.host,
        port=args.port,
        data_plane=not args.api_only,
        listener_ports=listener_ports,
        regions=args.region or [os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"],
    )
    if port_open(settings.host, settings.port):
        raise SystemExit(f"localcloud: {settings.host}:{settings.port} is taken by another process; pick --port")
    left = sweep(state)
    if left:
        print(f"localcloud: stopped {len(left)} process(es) a previous run left behind")
    state.status_file.unlink(missing_ok=True)
    from localcloud.dataplane.images import ImageStore

    store = ImageStore(state.path)
    with store.lock():
        removed = store.collect(set(), tasks=False)  # the API starts empty: no image, no task uses them
    if removed:
        print(f"localcloud: removed {len(removed)} image snapshot(s) of a previous run")
    pid = start_awsapi(state, settings)
    state.write_settings(settings)
    print(f"localcloud: up (pid {pid}) at {settings.endpoint_url}, state in {state.path}")
    status = state.read_status(pid) or {}
    for listener in (status.get("load_balancer") or {}).get("listeners", []):
        if listener.get("error"):
            print(f"localcloud: listener {listener.get('port')} is not served: {listener['error']}", file=sys.stderr)
    if settings.data_plane:
        ports = ", ".join(f"{listener} -> 127.0.0.1:{local}" for listener, local in settings.listener_ports.items())
        print(f"localcloud: load balancer listener ports {ports}")
    print(f"export AWS_ENDPOINT_URL={settings.endpoint_url}")
    return 0


def cmd_down(state: StateDir, args: argparse.Namespace) -> int:  # noqa: ARG001
    pid = state.read_pid("awsapi")
    settings = state.read_settings() or Settings()
    status = state.read_status()
    if pid:
        in_time = stop_pid(pid)
        print(f"localcloud: stopped (pid {pid})" + ("" if in_time else ", killed after the stop timeout"))
    else:
        print("localcloud: already down")
    state.pid_file("awsapi").unlink(missing_ok=True)
    left = sweep(state)
    if left:
        print(f"localcloud: stopped {len(left)} leftover process(es): {' '.join(map(str, left))}")
    still = owned_processes(state)
    open_ports = [f"{host}:{port}" for host, port in addresses_of(status, settings) if port_open(host, port, 0.2)]
    if still or (pid and open_ports):
        print(f"localcloud: still running: pids {still or '-'}; ports still open: {open_ports or '-'}", file=sys.stderr)
        return 1
    return 0


def cmd_status(state: StateDir, args: argparse.Namespace) -> int:
    pid = state.read_pid("awsapi")
    settings = state.read_settings() or Settings()
    ready = bool(pid) and api_ready(settings)
    plane = state.read_status(pid) if pid else None
    balancer = (plane or {}).get("load_balancer") or {}
    status = {
        "state_dir": str(state.path),
        "awsapi": {"pid": pid, "endpoint_url": settings.endpoint_url, "ready": ready},
        "data_plane": {
            "enabled": settings.data_plane,
            "state": (plane or {}).get("state", "down" if not pid else "starting"),
            "updated_at": (plane or {}).get("updated_at"),
            "load_balancer_error": balancer.get("error"),
        },
        "listeners": balancer.get("listeners", []),
        "target_groups": balancer.get("target_groups", []),
        "tls_certificate": (plane or {}).get("tls_certificate"),
        "services": (plane or {}).get("services", []),
        "tasks": (plane or {}).get("tasks", []),
        "databases": (plane or {}).get("databases", []),
        "db_snapshots": (plane or {}).get("db_snapshots", []),
        "scaling": (plane or {}).get("scaling", {"enabled": False, "targets": {}}),
    }
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print_status(status, pid)
    return 0 if ready else 3


def print_status(status: dict, pid: int | None) -> None:
    api = status["awsapi"]
    word = "up" if api["ready"] else ("starting" if pid else "down")
    print(f"AWS API     {word:9} {api['endpoint_url']}  pid {pid or '-'}")
    plane = status["data_plane"]
    if plane["enabled"]:
        age = _age(plane["updated_at"])
        print(f"data plane  {plane['state']:9} {('updated ' + age + ' ago') if age else ''}")
        if plane.get("load_balancer_error"):
            print(f"            load balancer: {plane['load_balancer_error']}")
    print(f"state       {status['state_dir']}")
    if pid:
        for section in (_listener_lines, _service_lines, _scaling_lines, _task_lines, _database_lines):
            lines = section(status)
            if lines:
                print("\n" + "\n".join(lines))


def _listener_lines(status: dict) -> list[str]:
    lines = []
    for listener in status["listeners"]:
        where = listener.get("local_url") or f"not served ({listener.get('error') or 'no local port'})"
        action = _action(listener.get("default_action") or {})
        name = f"{listener.get('load_balancer')}  {listener.get('protocol')}:{listener.get('port')}"
        lines.append(f"  {name} -> {where}  {action}")
    return ["listeners", *lines] if lines else []


def _service_lines(status: dict) -> list[str]:
    lines = []
    for service in status["services"]:
        rollout = ", ".join(f"{d['task_definition']} {d['rollout']}" for d in service["deployments"])
        lines.append(
            f"  {service['cluster']}/{service['service']}  desired {service['desired']}  "
            f"running {service['running']}  pending {service['pending']}  [{rollout}]"
        )
        lines += [f"    {service['events'][0]}"] if service["events"] else []
    return ["services", *lines] if lines else []


def _scaling_lines(status: dict) -> list[str]:
    """Each scalable target: its bounds and state, and its last activity with the reason."""
    lines = []
    for resource_id, target in sorted((status.get("scaling") or {}).get("targets", {}).items()):
        state = "suspended" if target.get("suspended") else "scaling"
        bounds = f"min {target.get('min')}  max {target.get('max')}"
        lines.append(f"  {resource_id}  {state}  {bounds}  desired {target.get('desired')}")
        for activity in (target.get("activities") or [])[-1:]:
            lines.append(f"    {activity['time']}  {activity['from']} -> {activity['to']}: {activity['reason']}")
        lines += [f"    {target['problem']}"] if target.get("problem") else []
    return ["autoscaling", *lines] if lines else []


def _task_lines(status: dict) -> list[str]:
    lines = []
    for task in status["tasks"]:
        if task["last_status"] == "STOPPED":
            continue
        targets = ", ".join(sorted(set(task["targets"].values()))) or "-"
        lines.append(
            f"  {task['task_id'][:12]}  {task['service']}  {task['last_status']}  {task['health_status']}  "
            f"{task['address'] or '-'}  {task['version'] or '-'}  target {targets}  pid {task['pid'] or '-'}"
        )
    stopped = [t for t in status["tasks"] if t["last_status"] == "STOPPED"]
    lines += [f"  {t['task_id'][:12]}  {t['service']}  STOPPED  {t['stopped_reason']}" for t in stopped[-5:]]
    return ["tasks", *lines] if lines else []


def _database_lines(status: dict) -> list[str]:
    lines = []
    for database in status["databases"]:
        lines.append(
            f"  {database['identifier']}  {database['state']}  {database['endpoint']} -> {database['address']}  "
            f"db {database['db_name'] or '-'}  user {database['master_username']}"
        )
        lines += [f"    {database['error'].splitlines()[0]}"] if database.get("error") else []
    for copy in status.get("db_snapshots", []):
        lines.append(f"  snapshot {copy['snapshot']} of {copy['instance']}  {copy['method']}  {copy['copied_at']}")
    return ["databases", *lines] if lines else []


def _age(stamp: str | None) -> str:
    if not stamp:
        return ""
    seconds = (datetime.datetime.now(datetime.UTC) - datetime.datetime.fromisoformat(stamp)).total_seconds()
    return f"{max(0, int(seconds))} s"


def _action(action: dict) -> str:
    if action.get("type") == "forward":
        return "forward " + ", ".join(f"{name} {weight}" for name, weight in (action.get("weights") or {}).items())
    if action.get("type") == "redirect":
        local = f" (local {action['local_port']})" if action.get("local_port") else ""
        return f"redirect {action.get('status_code')} to {action.get('protocol')}:{action.get('port')}{local}"
    return action.get("type", "")


def cmd_reset(state: StateDir, args: argparse.Namespace) -> int:  # noqa: ARG001
    settings = state.read_settings()
    pid = state.read_pid("awsapi")
    if not settings or not pid:
        print("localcloud: not up; nothing to reset", file=sys.stderr)
        return 3
    ApiEndpoint(settings.endpoint_url).reset()
    print("localcloud: AWS API state emptied")
    if not settings.data_plane:
        return 0
    after = datetime.datetime.now(datetime.UTC)
    deadline = time.monotonic() + RESET_TIMEOUT
    while time.monotonic() < deadline:
        status = state.read_status(pid) or {}
        fresh = status.get("updated_at") and datetime.datetime.fromisoformat(status["updated_at"]) > after
        if fresh and not status.get("tasks") and not status.get("databases"):
            print("localcloud: the data plane runs nothing any more")
            return 0
        time.sleep(0.5)
    print(f"localcloud: the data plane still runs something after {RESET_TIMEOUT:.0f} s; see status", file=sys.stderr)
    return 1


def running_settings(state: StateDir) -> Settings | None:
    """The settings of the local cloud when its AWS API runs; None after saying it is not up."""
    settings = state.read_settings()
    if not settings or not state.read_pid("awsapi"):
        print("localcloud: not up", file=sys.stderr)
        return None
    return settings


def cmd_publish(state: StateDir, args: argparse.Namespace) -> int:
    from botocore.exceptions import ClientError

    from localcloud.dataplane import ecr, images

    settings = running_settings(state)
    if settings is None:
        return 3
    try:
        ecr.check_tag(args.tag)
    except images.ImageError as exc:
        print(f"localcloud: {exc}; nothing was published", file=sys.stderr)
        return 2
    region = args.region or settings.regions[0]
    api = ApiEndpoint(settings.endpoint_url)
    client = api.client("ecr", region)
    repository = _publish_repository(client, args.repository, region)
    if repository is None:
        return 2
    context = Path(args.context).resolve()
    others = [(r, api.client("ecr", r)) for r in settings.regions if r != region]
    started = time.monotonic()
    try:
        published = ecr.publish(client, images.ImageStore(state.path), repository, args.tag, context, regions=others)
    except images.ImageError as exc:
        print(f"localcloud: {exc}; nothing was published", file=sys.stderr)
        return 2
    except ClientError as exc:
        print(f"localcloud: ECR refused the image: {exc}; nothing was published", file=sys.stderr)
        return 1
    uri = client.describe_repositories(repositoryNames=[repository])["repositories"][0]["repositoryUri"]
    word = "published" if published.new else "already published"
    print(
        f"localcloud: {word} {uri}:{args.tag} ({published.digest}) from {context} in {time.monotonic() - started:.2f} s"
    )
    if published.removed:
        print(f"localcloud: removed {len(published.removed)} snapshot(s) no image or task uses any more")
    if args.redeploy:
        for cluster, service in redeploy_failed(api.client("ecs", region), f"{uri}:{args.tag}"):
            print(f"localcloud: new deployment of {cluster}/{service} (its last one failed for want of the image)")
    return 0


def cmd_logs(state: StateDir, args: argparse.Namespace) -> int:
    from botocore.exceptions import ClientError

    from localcloud import logtail

    settings = running_settings(state)
    if settings is None:
        return 3
    region = args.region or settings.regions[0]
    api = ApiEndpoint(settings.endpoint_url)
    try:
        source = logtail.find_source(api.client("ecs", region), args.service, region, args.cluster)
        lines = logtail.tail(
            api.client("logs", source.region),
            source,
            since_seconds=args.since,
            follow=args.follow,
            follow_seconds=args.follow_seconds,
        )
        for line in lines:
            print(line, flush=True)
    except logtail.LogTailError as exc:
        print(f"localcloud: {exc}", file=sys.stderr)
        return 2
    except ClientError as exc:
        print(f"localcloud: CloudWatch Logs refused: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


def cmd_console(state: StateDir, args: argparse.Namespace) -> int:
    from localcloud import console

    settings = running_settings(state)
    if settings is None:
        return 3
    api = ApiEndpoint(settings.endpoint_url)
    data = console.ConsoleData(api.client, args.region or settings.regions[0])
    if args.once:
        print(json.dumps(data.snapshot(), indent=2))
        return 0
    try:
        server = console.make_server(data, settings.host, args.port)
    except OSError as exc:
        print(f"localcloud: cannot serve the console on {settings.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    host, port = server.server_address[:2]
    print(f"localcloud: console on http://{host}:{port}/ (data: /api/state); Ctrl-C stops it", flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _publish_repository(client, repository: str | None, region: str) -> str | None:
    """The repository to publish into (the only one, when not named); None after saying why not."""
    repositories = [r["repositoryName"] for r in client.describe_repositories()["repositories"]]
    if repository is None:
        if len(repositories) == 1:
            return repositories[0]
        found = ", ".join(repositories) or "none"
        print(f"localcloud: name the repository with --repository (repositories: {found})", file=sys.stderr)
        return None
    if repository not in repositories:
        print(
            f"localcloud: no repository {repository} in {region} (provision creates it); nothing was published",
            file=sys.stderr,
        )
        return None
    return repository


def redeploy_failed(ecs, image: str) -> list[tuple[str, str]]:
    """Start a new deployment of every service whose task definition runs ``image`` and whose
    deployment failed (the circuit breaker stops launching tasks then) or is failing (tasks failed
    already: those being launched while the image was pushed fail too, and the breaker would stop
    the deployment after this call): what one does on AWS after pushing the image a deployment was
    missing."""
    restarted = []
    for cluster in ecs.list_clusters()["clusterArns"]:
        arns = ecs.list_services(cluster=cluster)["serviceArns"]
        for first in range(0, len(arns), 10):
            for service in ecs.describe_services(cluster=cluster, services=arns[first : first + 10])["services"]:
                primary = next((d for d in service.get("deployments", []) if d.get("status") == "PRIMARY"), {})
                failing = primary.get("rolloutState") == "FAILED" or (
                    primary.get("rolloutState") == "IN_PROGRESS" and primary.get("failedTasks", 0) > 0
                )
                if service.get("status") != "ACTIVE" or not failing:
                    continue
                definition = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
                if any(c.get("image") == image for c in definition["containerDefinitions"]):
                    ecs.update_service(cluster=cluster, service=service["serviceName"], forceNewDeployment=True)
                    restarted.append((cluster.split("/")[-1], service["serviceName"]))
    return restarted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="localcloud", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("LOCALCLOUD_STATE_DIR", ".state/localcloud")),
        help="directory for pid file, logs, settings, tasks and databases (env LOCALCLOUD_STATE_DIR)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the local cloud and wait until it answers")
    up.add_argument("--host", default="127.0.0.1", help="loopback address for the AWS API")
    up.add_argument("--port", type=int, default=int(os.environ.get("LOCALCLOUD_PORT", DEFAULT_PORT)))
    up.add_argument(
        "--listener-port",
        action="append",
        default=[],
        metavar="LISTENER=LOCAL",
        help="where a load balancer listener port is served locally (default 80=8080 and 443=8443)",
    )
    up.add_argument("--region", action="append", default=[], help="a region the data plane watches (repeatable)")
    up.add_argument("--api-only", action="store_true", help="the AWS API alone, without the data plane")
    sub.add_parser("down", help="stop everything the local cloud started")
    status = sub.add_parser("status", help="what runs, where (exit 3 when down)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_parser("reset", help="empty the AWS API's state and stop what the data plane runs")
    publish = sub.add_parser(
        "publish", help="snapshot a build context as an image in the local ECR (the local docker build and push)"
    )
    publish.add_argument("tag")
    publish.add_argument(
        "--context",
        default=str(Path(__file__).resolve().parent.parent / "app"),
        help="the build context: a directory with a Dockerfile (default: the checkout's app/)",
    )
    publish.add_argument("--repository", help="the ECR repository (default: the only one)")
    publish.add_argument("--region", help="the repository's region (default: the first watched region)")
    publish.add_argument(
        "--redeploy",
        action="store_true",
        help="then start a new deployment of the services whose deployment failed (or is failing) on this image",
    )
    logs = sub.add_parser("logs", help="the log lines of a service's tasks, from the local CloudWatch Logs")
    logs.add_argument("service", help="the ECS service (e.g. ecs-prod-local-blue)")
    logs.add_argument("--cluster", help="its cluster (default: the one that has it)")
    logs.add_argument("--region", help="the service's region (default: the first watched region)")
    logs.add_argument("--since", type=float, default=600.0, metavar="SECONDS", help="from how long ago (default 600)")
    logs.add_argument("--follow", "-f", action="store_true", help="then print new lines as they come, until Ctrl-C")
    logs.add_argument("--follow-seconds", type=float, metavar="SECONDS", help="with --follow: stop after this long")
    console = sub.add_parser("console", help="a live page of listeners, weights, targets, traffic, tasks and alarms")
    console.add_argument("--port", type=int, default=8090, help="where to serve it on the API's loopback address")
    console.add_argument("--region", help="the region shown (default: the first watched region)")
    console.add_argument("--once", action="store_true", help="print the page's data (JSON) once and exit")
    args = parser.parse_args(argv)
    if getattr(args, "host", "127.0.0.1").split(".")[0] != "127":
        parser.error("--host must be a loopback address (127.x.y.z)")
    state = StateDir(args.state_dir.resolve())
    handler = {
        "up": cmd_up,
        "down": cmd_down,
        "status": cmd_status,
        "reset": cmd_reset,
        "publish": cmd_publish,
        "logs": cmd_logs,
        "console": cmd_console,
    }
    return handler[args.command](state, args)
