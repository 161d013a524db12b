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
        env = playbook_env(self, {"ANSIBLE_NOCOLOR": "1"})
        result = subprocess.run(
            [
                "ansible-playbook",
                str(REPO / "playbooks" / f"{name}.yml"),
                "-e",
                f"bluegreen_smoke_test_base_url={self.test_url}",
                *args,
            ],
            cwd=REPO,
            env=env,
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
