"""A whole local cloud driven from Python: the AWS API and the data plane on free loopback ports, the
collection's playbooks run against it, its requests recorded. Shared by the end-to-end tests and the
benchmarks (``tests/e2e``, ``bench/``), which import it as ``localcloud.harness``.

    cloud = LocalCloud(record=True)
    cloud.up()
    run = cloud.playbook("provision")          # a Run: returncode, stdout, stderr, changed
    cloud.cli("publish", "v1", "--redeploy")
    cloud.recorder.start(); cloud.playbook("swap", "-e", "color=green"); calls = cloud.recorder.stop()
    cloud.down()
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
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
from localcloud.recorder import ApiRecorder

REPO = Path(__file__).resolve().parent.parent
RECAP = re.compile(r"^localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
UNVERIFIED = ssl._create_unverified_context()  # noqa: S323 - the local load balancer's own certificate

PROJECT, ENVIRONMENT = "ecs-prod", "local"  # inventories/local
PREFIX = f"{PROJECT}-{ENVIRONMENT}"


@dataclass
class Run:
    """What a playbook run printed and how it ended."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float = 0.0

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def changed(self) -> int:
        found = RECAP.findall(self.stdout)
        assert found, f"no play recap in the output:\n{self.output[-5000:]}"
        return int(found[-1][1])

    def tail(self, chars: int = 6000) -> str:
        return self.output[-chars:]


def playbook_env(api, extra: dict | None = None) -> dict:
    """The environment of an ansible-playbook run against the AWS API at ``api.endpoint_url``, with this
    repository's ansible.cfg and the interpreter's own bin directory first on the PATH."""
    env = dict(
        os.environ,
        # The local inventories find the local cloud's CA in its state dir (ecs_db_ssl_root_cert).
        **({"LOCALCLOUD_STATE_DIR": str(api.state_dir)} if getattr(api, "state_dir", None) else {}),
        AWS_ENDPOINT_URL=api.endpoint_url,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    env.update(extra or {})
    return env


def playbook_command(name: str, *args: str) -> list[str]:
    """``ansible-playbook playbooks/<name>.yml ARGS``."""
    return ["ansible-playbook", str(REPO / "playbooks" / f"{name}.yml"), *args]


def run_playbook(api, name: str, *args: str, env: dict | None = None, timeout: int = 900) -> Run:
    """``ansible-playbook playbooks/<name>.yml ARGS`` against ``api`` (anything with an endpoint_url)."""
    started = time.monotonic()
    result = subprocess.run(
        playbook_command(name, *args),
        cwd=REPO,
        env=playbook_env(api, env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(result.returncode, result.stdout, result.stderr, time.monotonic() - started)


@dataclass
class LocalCloud:
    """``bin/localcloud`` with its own state dir and ports; ``.https`` is the ALB's 443 listener. With
    ``record``, its AWS API can record requests (``.recorder``) into a file of its own."""

    state_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="lc-", dir="/tmp")))
    api_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    https_port: int = field(default_factory=free_port)
    test_port: int = field(default_factory=free_port)
    record: bool = False

    def __post_init__(self) -> None:
        self.state_dir.chmod(0o711)  # PostgreSQL runs as an unprivileged user when we are root
        self.recorder = ApiRecorder(self.endpoint_url) if self.record else None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def test_url(self) -> str:
        return f"https://127.0.0.1:{self.test_port}"

    def cli(self, *args: str, timeout: int = 300, check: bool = True, env: dict | None = None):
        full_env = dict(
            os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **(env or {})
        )
        result = subprocess.run(
            [str(REPO / "bin" / "localcloud"), "--state-dir", str(self.state_dir), *args],
            cwd=REPO,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"localcloud {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def up(self) -> None:
        # moto's recorder writes where its process is told to: a file of this cloud's, never the repository.
        env = {"MOTO_RECORDER_FILEPATH": str(self.state_dir / "moto_recording")} if self.record else None
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
            env=env,
        )

    def down(self, remove: bool = False) -> bool:
        """Stop everything of this cloud; with ``remove``, delete its state dir (and the recording in
        it) once ``down`` succeeded, else keep it for inspection and say where. True when it stopped."""
        result = self.cli("down", timeout=180, check=False)
        if result.returncode != 0:
            print(f"localcloud down failed ({result.returncode}), state kept in {self.state_dir}:\n{result.stderr}")
        elif remove:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        return result.returncode == 0

    def status(self) -> dict:
        return json.loads(self.cli("status", "--json", check=False).stdout)

    def playbook(self, name: str, *args: str, timeout: int = 900, env: dict | None = None) -> Run:
        """A playbook against this cloud, its smoke test going through this cloud's test listener."""
        extra = {"ANSIBLE_NOCOLOR": "1", **(env or {})}
        return run_playbook(
            self, name, "-e", f"bluegreen_smoke_test_base_url={self.test_url}", *args, env=extra, timeout=timeout
        )

    def start_playbook(self, name: str, *args: str, log: Path) -> Background:
        """:meth:`playbook` without waiting for it: its output goes to ``log``."""
        with log.open("w") as out:
            process = subprocess.Popen(
                playbook_command(name, "-e", f"bluegreen_smoke_test_base_url={self.test_url}", *args),
                cwd=REPO,
                env=playbook_env(self, {"ANSIBLE_NOCOLOR": "1"}),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return Background(process, log, time.time())

    def client(self, service: str):
        import boto3

        return boto3.client(
            service,
            region_name="us-east-1",
            endpoint_url=self.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - the emulator takes any credentials
        )


@dataclass
class Background:
    """A playbook running in the background (:meth:`LocalCloud.start_playbook`), its output in a file."""

    process: subprocess.Popen
    log: Path
    started: float  # wall time

    def wait(self, timeout: float = 900) -> Run:
        """Its Run once it ends; killed (its whole process group) after ``timeout`` seconds."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # our own playbook, by its process group
            self.process.wait()
        return Run(self.process.returncode, self.log.read_text(errors="replace"), "", time.time() - self.started)


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
    """The predicate's first truthy value, polled every ``interval`` seconds for up to ``timeout``."""
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
    arn = elbv2.describe_target_groups(Names=[f"{PREFIX}-{color}"])["TargetGroups"][0]["TargetGroupArn"]
    return sum(
        1
        for d in elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        if d["TargetHealth"]["State"] == "healthy"
    )


def listener_weights(cloud: LocalCloud, port: int = 443) -> dict[str, int]:
    """{colour: weight} of a listener's forward action (443, or the test listener 9443)."""
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


def set_listener_weights(cloud, weights: dict[str, int], port: int = 443) -> None:
    """Give a listener's forward action these {colour: weight}, as ``aws elbv2 modify-listener`` would
    (behind the playbooks' back: drift, or a state a test starts from)."""
    elbv2 = cloud.client("elbv2")
    lb = elbv2.describe_load_balancers(Names=[f"{PREFIX}-alb"])["LoadBalancers"][0]
    listener = next(
        li for li in elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"] if li["Port"] == port
    )
    arns = {
        tg["TargetGroupName"].rsplit("-", 1)[1]: tg["TargetGroupArn"]
        for tg in elbv2.describe_target_groups(Names=[f"{PREFIX}-{c}" for c in weights])["TargetGroups"]
    }
    elbv2.modify_listener(
        ListenerArn=listener["ListenerArn"],
        DefaultActions=[
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [{"TargetGroupArn": arns[c], "Weight": w} for c, w in weights.items()]
                },
            }
        ],
    )


def desired_counts(cloud) -> dict[str, int]:
    """{colour: desired count} of the two services."""
    services = cloud.client("ecs").describe_services(cluster=PREFIX, services=[f"{PREFIX}-blue", f"{PREFIX}-green"])
    return {s["serviceName"].rsplit("-", 1)[1]: s["desiredCount"] for s in services["services"]}


RELEASE_HEADER = "X-App-Release"


def release_context(directory: Path, marker: str, *, broken: str | None = None, fail_every: int = 0) -> Path:
    """A build context for ``localcloud publish --context``: a copy of ``app/`` whose code is another
    release: ``GET /`` answers ``"release": marker`` and every response carries ``X-App-Release: marker``
    (the checkout's app sends neither). ``broken``: the release cannot start at all, gunicorn exits
    with that message (exit code 1) before it listens, as a release with a fatal start-up bug does.
    ``fail_every``: a release with a bug that fails a share of requests - each worker answers every
    ``fail_every``-th ``GET /`` with a 500 (its health check still passes)."""
    import shutil

    context = Path(directory)
    if context.exists():
        shutil.rmtree(context)
    shutil.copytree(REPO / "app", context, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", "tests"))
    index = f'return jsonify(service="items-api", **identity, release={marker!r}, openapi="/openapi.json")'
    if fail_every:
        index = (
            f"if next(failing) % {int(fail_every)} == 0:\n"
            f'            return jsonify(error="internal", message={marker!r}), 500\n'
            f"        {index}"
        )
    edits = [
        ("items_api/views.py", 'return jsonify(service="items-api", **identity, openapi="/openapi.json")', index),
        (
            "items_api/app.py",
            'response.headers["X-App-Version"] = settings.version',
            'response.headers["X-App-Version"] = settings.version\n'
            f'        response.headers["{RELEASE_HEADER}"] = {marker!r}',
        ),
    ]
    if fail_every:
        edits.append(
            (
                "items_api/views.py",
                '    identity = {"version"',
                '    failing = __import__("itertools").count(1)\n    identity = {"version"',
            )
        )
    if broken:
        edits.append(
            (
                "gunicorn.conf.py",
                "try:\n    _settings = load_server_settings()",
                f"sys.exit({broken!r})\n\ntry:\n    _settings = load_server_settings()",
            )
        )
    for name, old, new in edits:
        path = context / name
        text = path.read_text()
        if old not in text:
            raise AssertionError(f"release_context: {name} no longer has {old!r}: update localcloud/harness.py")
        path.write_text(text.replace(old, new, 1))
    return context


def serve_v1(cloud: LocalCloud) -> None:
    """Publish v1, restart the deployment waiting for it, and wait until blue serves through the ALB."""
    cloud.cli("publish", "v1", "--redeploy")
    wait_for(lambda: healthy_targets(cloud, "blue") >= 2, timeout=300, what="blue's 2 healthy targets")
    wait_for(lambda: request("GET", f"{cloud.https}/health")[0] == 200, timeout=60, what="/health through the ALB")


def provisioned_cloud(record: bool = False) -> LocalCloud:
    """Up, provisioned, v1 published and blue serving through the load balancer (the caller downs it)."""
    cloud = LocalCloud(record=record)
    cloud.up()
    try:
        run = cloud.playbook("provision")
        assert run.returncode == 0, run.tail()
        serve_v1(cloud)
    except BaseException:
        cloud.down()
        raise
    return cloud
