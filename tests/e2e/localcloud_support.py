"""A whole local cloud for end-to-end tests: the AWS API and the data plane on free ports, the
platform provisioned on it with the same playbook users run, v1 published and serving."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from localcloud.awsapi import free_port
from tests.e2e.platform_support import REPO, Run, playbook_env

UNVERIFIED = ssl._create_unverified_context()  # noqa: S323 - the local load balancer's own certificate


def playbook_command(cloud: LocalCloud, name: str, args: tuple[str, ...] | list[str]) -> list[str]:
    """ansible-playbook for playbooks/<name>.yml, smoke-testing through this cloud's test listener."""
    return [
        "ansible-playbook",
        str(REPO / "playbooks" / f"{name}.yml"),
        "-e",
        f"bluegreen_smoke_test_base_url={cloud.test_url}",
        *args,
    ]


@dataclass
class LocalCloud:
    """``bin/localcloud`` with its own state dir and ports; ``.https`` is the ALB's 443 listener."""

    state_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="lc-e2e-", dir="/tmp")))
    api_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    https_port: int = field(default_factory=free_port)
    test_port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.state_dir.chmod(0o711)  # PostgreSQL runs as an unprivileged user when we are root

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def test_url(self) -> str:
        return f"https://127.0.0.1:{self.test_port}"

    def cli(self, *args: str, timeout: int = 300, check: bool = True) -> subprocess.CompletedProcess:
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        result = subprocess.run(
            [str(REPO / "bin" / "localcloud"), "--state-dir", str(self.state_dir), *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"localcloud {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def up(self) -> None:
        self.cli(
            "up",
            "--port",
            str(self.api_port),
            "--listener-port",
            f"80={self.http_port}",
            "--listener-port",
            f"443={self.https_port}",
            "--listener-port",
            f"9443={self.test_port}",
        )

    def down(self) -> None:
        self.cli("down", timeout=180, check=False)

    def status(self) -> dict:
        return json.loads(self.cli("status", "--json", check=False).stdout)

    def playbook(self, name: str, *args: str, timeout: int = 900) -> Run:
        result = subprocess.run(
            playbook_command(self, name, args),
            cwd=REPO,
            env=playbook_env(self, {"ANSIBLE_NOCOLOR": "1"}),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Run(result.returncode, result.stdout, result.stderr)

    def client(self, service: str):
        import boto3

        return boto3.client(
            service,
            region_name="us-east-1",
            endpoint_url=self.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - the emulator takes any credentials
        )


def request(method: str, url: str, body: dict | None = None, timeout: float = 10) -> tuple[int, dict, dict]:
    """(status, JSON body, headers); connection errors raise OSError."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=UNVERIFIED) as response:
            raw = response.read()
            return response.status, (json.loads(raw) if raw else {}), dict(response.headers)
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {"raw": raw.decode(errors="replace")}
        return error.code, parsed, dict(error.headers)


def wait_for(predicate, timeout: float, interval: float = 1.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def healthy_targets(cloud: LocalCloud, color: str) -> int:
    elbv2 = cloud.client("elbv2")
    arn = elbv2.describe_target_groups(Names=[f"ecs-prod-local-{color}"])["TargetGroups"][0]["TargetGroupArn"]
    return sum(
        1
        for d in elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        if d["TargetHealth"]["State"] == "healthy"
    )


def provisioned_cloud() -> LocalCloud:
    """Up, provisioned, v1 published and blue serving through the load balancer (the caller downs it)."""
    cloud = LocalCloud()
    cloud.up()
    try:
        run = cloud.playbook("provision")
        assert run.returncode == 0, run.tail()
        cloud.cli("publish", "v1", "--redeploy")
        wait_for(lambda: healthy_targets(cloud, "blue") >= 2, timeout=300, what="blue's 2 healthy targets")
        wait_for(lambda: request("GET", f"{cloud.https}/health")[0] == 200, timeout=60, what="/health through the ALB")
    except BaseException:
        cloud.down()
        raise
    return cloud


# -- helpers for tests/e2e/test_local_cloud.py -----------------------------------------------------


class Client:
    """One keep-alive connection to a listener (``https://...`` or ``http://...``), reconnecting
    after an error: cheap enough for a thousand requests without a TLS handshake each."""

    def __init__(self, base_url: str, timeout: float = 10):
        import urllib.parse

        parts = urllib.parse.urlsplit(base_url)
        self.scheme, self.host, self.port, self.timeout = parts.scheme, parts.hostname, parts.port, timeout
        self._connection = None

    def request(self, method: str, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
        """(status, headers with lower-case names, body); connection errors raise OSError or
        http.client.HTTPException (after which the next request opens a new connection)."""
        import http.client

        if self._connection is None:
            if self.scheme == "https":
                self._connection = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout, context=UNVERIFIED
                )
            else:
                self._connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self._connection.request(method, path, headers=headers or {})
            response = self._connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if response.will_close:
            self.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body

    def get(self, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
        return self.request("GET", path, headers)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def processes_of(state_dir: Path) -> list[int]:
    """Live processes that belong to the local cloud of ``state_dir``: ``LOCALCLOUD_OWNER=<state
    dir>`` in their environment, or the state dir on their command line (zombies excluded)."""
    from localcloud.dataplane.ecs import OWNER_ENV

    marker = f"{OWNER_ENV}={state_dir}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                if stat.read().rsplit(")", 1)[-1].split()[0] == "Z":
                    continue
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if marker in environ or str(state_dir).encode() in cmdline:
            found.append(int(entry))
    return found


def refuses(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when nothing accepts a TCP connection on host:port."""
    from localcloud.cli import port_open

    return not port_open(host, port, timeout)


def listening_pids(host: str, port: int) -> set[int]:
    """Processes holding a listening TCP socket on host:port (IPv4), from /proc/net/tcp."""
    import socket
    import struct

    wanted = f"{struct.unpack('<I', socket.inet_aton(host))[0]:08X}:{port:04X}"
    inodes = set()
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[1] == wanted and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    pids = set()
    for entry in os.listdir("/proc") if inodes else ():
        if not entry.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{entry}/fd"):
                if os.readlink(f"/proc/{entry}/fd/{fd}") in inodes:
                    pids.add(int(entry))
                    break
        except OSError:
            continue
    return pids


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[-1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields[19]  # field 22 of stat: the start time


def process_tree(pids: list[int]) -> dict[int, str]:
    """``pids`` and all their descendants, as {pid: start time}: PostgreSQL's children rewrite their
    environment (the process title), so they carry no visible owner marker of their own."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[-1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found: dict[int, str] = {}
    todo = list(pids)
    while todo:
        pid = todo.pop()
        started = _start_time(pid)
        if pid in found or started is None:
            continue
        found[pid] = started
        todo += children.get(pid, [])
    return found


def still_running(tree: dict[int, str]) -> list[int]:
    """The processes of a :func:`process_tree` snapshot that still run (same pid, same start time)."""
    return sorted(pid for pid, started in tree.items() if _start_time(pid) == started)


# -- blue/green helpers (tests/e2e/test_bluegreen.py, bench/bluegreen.py) ------------------------


def bg_provisioned_cloud() -> LocalCloud:
    """:func:`provisioned_cloud` whose AWS API can record requests (moto's recorder) into a file of
    its own, ``cloud.bg_recording`` (never the repository: the API runs in it). The caller downs it."""
    recording_dir = Path(tempfile.mkdtemp(prefix="lc-bg-rec-", dir="/tmp"))
    saved = os.environ.get("MOTO_RECORDER_FILEPATH")
    os.environ["MOTO_RECORDER_FILEPATH"] = str(recording_dir / "moto_recording")
    try:
        cloud = provisioned_cloud()
    finally:
        if saved is None:
            os.environ.pop("MOTO_RECORDER_FILEPATH", None)
        else:
            os.environ["MOTO_RECORDER_FILEPATH"] = saved
    cloud.bg_recording = recording_dir / "moto_recording"
    return cloud


def _bg_moto_api(cloud: LocalCloud, action: str) -> bytes:
    if getattr(cloud, "bg_recording", None) is None:
        raise RuntimeError("this cloud records nowhere of its own: start it with bg_provisioned_cloud()")
    method = "GET" if action == "download-recording" else "POST"
    req = urllib.request.Request(f"{cloud.endpoint_url}/moto-api/recorder/{action}", data=None, method=method)
    with urllib.request.urlopen(req, timeout=30) as response:
        return response.read()


def bg_start_recording(cloud: LocalCloud) -> None:
    """Record every request the AWS API receives from now on (an empty recording first)."""
    _bg_moto_api(cloud, "reset-recording")
    _bg_moto_api(cloud, "start-recording")


def _bg_action(entry: dict) -> tuple[str, dict]:
    """(Action, parameters) of one recorded request, whatever the protocol: JSON (X-Amz-Target),
    query (Action= in the form body), or RPC v2 CBOR (/service/.../operation/<Action>)."""
    import base64
    import urllib.parse

    headers = {k.lower(): v for k, v in (entry.get("headers") or {}).items()}
    raw = entry.get("body") or ""
    body = base64.b64decode(raw) if entry.get("body_encoded") else raw.encode()
    target = headers.get("x-amz-target")
    if target:
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            params = {}
        return target.rsplit(".", 1)[-1], params if isinstance(params, dict) else {}
    path = urllib.parse.urlsplit(entry.get("url", "")).path
    if "/operation/" in path:
        return path.rsplit("/", 1)[-1], {}
    form = urllib.parse.parse_qs(body.decode(errors="replace")) if body else {}
    form.update(urllib.parse.parse_qs(urllib.parse.urlsplit(entry.get("url", "")).query))
    if "Action" in form:
        return form["Action"][0], {k: v[0] for k, v in form.items()}
    return f"{entry.get('method')} {path}", {}


def bg_stop_recording(cloud: LocalCloud) -> list[dict]:
    """Stop recording; the requests the playbooks' modules made (botocore's user agent says
    Ansible), each as {"action", "params"}, in order."""
    _bg_moto_api(cloud, "stop-recording")
    calls = []
    for line in _bg_moto_api(cloud, "download-recording").decode().splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        agent = {k.lower(): v for k, v in (entry.get("headers") or {}).items()}.get("user-agent", "")
        if "Ansible/" not in agent:
            continue  # the data plane's and the test's own calls
        action, params = _bg_action(entry)
        calls.append({"action": action, "params": params})
    return calls


BG_READ_ACTIONS = ("Describe", "List", "Get", "BatchGet", "Lookup")


def bg_writes(calls: list[dict], ignore_lock: bool = True) -> list[str]:
    """The recorded calls that may change something; with ``ignore_lock``, not the environment
    lock's own parameter (taken and released by every operation)."""
    writes = []
    for call in calls:
        if call["action"].startswith(BG_READ_ACTIONS):
            continue
        name = str(call["params"].get("Name", ""))
        if (
            ignore_lock
            and call["action"] in ("PutParameter", "DeleteParameter", "AddTagsToResource")
            and (
                name.endswith("/lock")
                or "/lock.claim-" in name
                or str(call["params"].get("ResourceId", "")).endswith("/lock")
            )
        ):
            continue
        writes.append(f"{call['action']} {json.dumps(call['params'], sort_keys=True, default=str)[:300]}")
    return writes


def bg_snapshot(cloud: LocalCloud) -> dict:
    """What a blue/green operation could change, read through the API: every listener's default
    actions and tags (the swap's record), the services' task definitions, desired counts and
    deployments, the registered task definitions, the cluster's tags, the alarms' states, the SSM
    parameters (with their versions) and the images. Counts of running tasks and events are left
    out (the data plane moves them)."""
    from tests.e2e.platform_support import ENVIRONMENT, PREFIX, PROJECT

    prefix = PREFIX
    elbv2, ecs, cw, ssm, ecr = (cloud.client(s) for s in ("elbv2", "ecs", "cloudwatch", "ssm", "ecr"))
    lb = elbv2.describe_load_balancers(Names=[f"{prefix}-alb"])["LoadBalancers"][0]
    described = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    listeners = {li["Port"]: li["DefaultActions"] for li in described}
    listener_tags = {
        d["ResourceArn"]: sorted((t["Key"], t["Value"]) for t in d["Tags"])
        for d in elbv2.describe_tags(ResourceArns=[li["ListenerArn"] for li in described])["TagDescriptions"]
    }
    services = {
        s["serviceName"]: {
            "taskDefinition": s["taskDefinition"],
            "desiredCount": s["desiredCount"],
            "deployments": sorted(d["id"] for d in s.get("deployments", [])),
        }
        for s in ecs.describe_services(cluster=prefix, services=[f"{prefix}-blue", f"{prefix}-green"])["services"]
    }
    cluster = ecs.describe_clusters(clusters=[prefix])["clusters"][0]
    parameters = {}
    for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=f"/{PROJECT}/{ENVIRONMENT}", Recursive=True):
        parameters.update({p["Name"]: p["Version"] for p in page["Parameters"]})
    return {
        "listeners": listeners,
        "listener_tags": {li["Port"]: listener_tags.get(li["ListenerArn"], []) for li in described},
        "services": services,
        "task_definitions": sorted(ecs.list_task_definitions()["taskDefinitionArns"]),
        "cluster_tags": sorted(
            (t["key"], t["value"]) for t in ecs.list_tags_for_resource(resourceArn=cluster["clusterArn"])["tags"]
        ),
        "alarms": {a["AlarmName"]: a["StateValue"] for a in cw.describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]},
        "parameters": parameters,
        "images": sorted(i.get("imageTag", "") for i in ecr.list_images(repositoryName=prefix)["imageIds"]),
    }


def bg_weights(cloud: LocalCloud, port: int = 443) -> dict[str, int]:
    """{colour: weight} of a listener's forward action (443, or the test listener 9443)."""
    from tests.e2e.platform_support import PREFIX

    elbv2 = cloud.client("elbv2")
    lb = elbv2.describe_load_balancers(Names=[f"{PREFIX}-alb"])["LoadBalancers"][0]
    listener = next(
        li for li in elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"] if li["Port"] == port
    )
    forward = next(a for a in listener["DefaultActions"] if a["Type"] == "forward")
    return {
        g["TargetGroupArn"].split("/")[1].rsplit("-", 1)[1]: g["Weight"]
        for g in forward["ForwardConfig"]["TargetGroups"]
    }


def bg_header(headers: dict, name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


# The load generator: a process of its own, so that its timing does not depend on the test's.

BG_LOAD_SNIPPET = "import sys; from tests.e2e.localcloud_support import bg_load_main; bg_load_main(sys.argv[1:])"


def bg_load_main(argv: list[str]) -> None:
    """``URL OUT [--rate 100] [--connections 4] [--paths /,/items?limit=5] [--timeout 30]``: GET the
    paths in turn through keep-alive connections at a fixed total rate until SIGTERM, one JSON line
    per request in OUT: ``t`` (wall time sent), ``t_end``, ``path``, ``status``, ``color`` and
    ``version`` (X-Deployment-Color, X-App-Version), ``error`` (a connection error), ``latency``."""
    import argparse
    import http.client
    import signal
    import threading
    import urllib.parse

    parser = argparse.ArgumentParser(prog="bg-load")
    parser.add_argument("url")
    parser.add_argument("out")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--paths", default="/,/items?limit=5")
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    rate = min(max(args.rate, 1.0), 200.0)  # bounded: loopback, a shared machine
    connections = min(max(args.connections, 1), 16)
    paths = [p for p in args.paths.split(",") if p]
    parts = urllib.parse.urlsplit(args.url)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    lock = threading.Lock()
    out = open(args.out, "a", buffering=1)  # noqa: SIM115 - closed below, after the workers

    def connect():
        if parts.scheme == "https":
            return http.client.HTTPSConnection(parts.hostname, parts.port, timeout=args.timeout, context=UNVERIFIED)
        return http.client.HTTPConnection(parts.hostname, parts.port, timeout=args.timeout)

    def worker(index: int) -> None:
        interval = connections / rate
        next_at = time.monotonic() + index / rate
        connection, turn = None, index
        while not stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0 and stop.wait(delay):
                break
            if delay < -1.0:  # fell behind (a slow answer): no burst to catch up
                next_at = time.monotonic()
            next_at += interval
            path = paths[turn % len(paths)]
            turn += 1
            record = {"t": time.time(), "path": path, "status": None, "color": None, "version": None, "error": None}
            started = time.perf_counter()
            try:
                if connection is None:
                    connection = connect()
                connection.request("GET", path)
                response = connection.getresponse()
                response.read()
                record.update(
                    status=response.status,
                    color=response.getheader("X-Deployment-Color"),
                    version=response.getheader("X-App-Version"),
                )
                if response.will_close:
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as error:
                record["error"] = f"{type(error).__name__}: {error}"
                if connection is not None:
                    connection.close()
                connection = None
            record["latency"] = round(time.perf_counter() - started, 6)
            record["t_end"] = time.time()
            with lock:
                out.write(json.dumps(record) + "\n")
        if connection is not None:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(connections)]
    for thread in threads:
        thread.start()
    while not stop.is_set():
        stop.wait(0.5)
    for thread in threads:
        thread.join(timeout=args.timeout + 5)
    out.close()


@dataclass
class BgLoad:
    """A running load generator (:func:`bg_start_load`); ``stop()`` ends it and returns its records."""

    process: subprocess.Popen
    path: Path

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        lines = self.path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip().endswith("}")]

    def stop(self) -> list[dict]:
        import signal

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.records()


def bg_start_load(
    url: str, out: Path, rate: float = 100, connections: int = 4, paths: str = "/,/items?limit=5"
) -> BgLoad:
    """Start the load generator against ``url`` (loopback), writing to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("")
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            BG_LOAD_SNIPPET,
            url,
            str(out),
            "--rate",
            str(rate),
            "--connections",
            str(connections),
            "--paths",
            paths,
        ],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    load = BgLoad(process, out)
    wait_for(
        lambda: len(load.records()) > 0 or process.poll() is not None,
        timeout=30,
        interval=0.2,
        what="the load's first request",
    )
    if process.poll() is not None:
        raise AssertionError(f"the load generator exited with {process.returncode}")
    return load


def bg_percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) by the nearest-rank method; None when there is no value."""
    if not values:
        return None
    import math

    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1]


def bg_down(cloud: LocalCloud) -> None:
    """Down the cloud and remove its recording, and its state dir once nothing of it runs."""
    import shutil

    try:
        down = cloud.cli("down", timeout=180, check=False)
        if down.returncode == 0:
            shutil.rmtree(cloud.state_dir, ignore_errors=True)
        else:
            print(f"localcloud down failed ({down.returncode}), state kept in {cloud.state_dir}:\n{down.stderr}")
    finally:
        recording = getattr(cloud, "bg_recording", None)
        if recording is not None:
            shutil.rmtree(recording.parent, ignore_errors=True)


@dataclass
class BgPlaybook:
    """A playbook running in the background (:func:`bg_start_playbook`), its output in a file."""

    process: subprocess.Popen
    log: Path
    started: float  # wall time

    def wait(self, timeout: float = 900) -> Run:
        import signal

        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # our own playbook, by its process group
            self.process.wait()
        output = self.log.read_text(errors="replace")
        return Run(self.process.returncode, output, "")


def bg_start_playbook(cloud: LocalCloud, name: str, *args: str, log: Path) -> BgPlaybook:
    """``cloud.playbook(name, *args)`` without waiting for it."""
    with log.open("w") as out:
        process = subprocess.Popen(
            playbook_command(cloud, name, args),
            cwd=REPO,
            env=playbook_env(cloud, {"ANSIBLE_NOCOLOR": "1"}),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return BgPlaybook(process, log, time.time())
