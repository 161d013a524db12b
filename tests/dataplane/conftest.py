"""Fixtures of the data plane tests. Each part's fixtures carry its prefix (``lb_``: the load balancer)."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import itertools
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# ---- load balancer (lb_*) --------------------------------------------------------------------------

LB_VPC_CIDR = "10.0.0.0/16"
_lb_ip_counter = itertools.count(1)


def lb_free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def lb_wait_until(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02) -> object:
    """:func:`dp_wait_until` with the load balancer tests' shorter timeout and interval."""
    return dp_wait_until(predicate, timeout, interval)


@dataclass
class LbResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


class LbClient:
    """A keep-alive HTTP(S) client on one local port (the test's side of the load balancer)."""

    def __init__(self, port: int, *, https: bool = False, cafile: str | None = None, timeout: float = 10.0):
        if https:
            context = ssl.create_default_context(cafile=cafile)
            self._connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=context)
        else:
            self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> LbResponse:
        try:
            self._connection.request(method, path, body=body, headers=headers or {})
            response = self._connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self._connection.close()
            raise
        if response.getheader("Connection", "").lower() == "close":
            self._connection.close()
        return LbResponse(response.status, {k.lower(): v for k, v in response.getheaders()}, data)

    def get(self, path: str, headers: dict | None = None) -> LbResponse:
        return self.request("GET", path, headers=headers)

    def close(self) -> None:
        self._connection.close()


@dataclass
class LbBackend:
    """A task's stand-in: an aiohttp server on its own loopback address.

    ``GET /health`` answers ``health_status`` (after ``health_delay`` seconds); ``/slow?s=N`` answers
    after N seconds; ``/status/NNN`` answers status NNN; ``/echo`` answers the request it got
    (method, path, headers, body length); anything else ``{"deployment": name, "path": ...}``.
    ``broken=True``: every path but /health gets its connection closed without a response."""

    name: str
    ip: str
    port: int
    health_status: int = 200
    health_delay: float = 0.0
    broken: bool = False
    hits: dict[str, int] = field(default_factory=dict)

    @property
    def address(self) -> tuple[str, int]:
        return self.ip, self.port


class LbBackendPool:
    """Runs backends in an event loop thread of its own; closes them all at the end."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="lb-test-backends", daemon=True)
        self._thread.start()
        self._runners: list = []

    def _run(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self, name: str, **settings) -> LbBackend:
        n = next(_lb_ip_counter)
        ip = f"127.0.{100 + n // 250}.{1 + n % 250}"
        backend = LbBackend(name=name, ip=ip, port=lb_free_port(ip), **settings)
        self._run(self._serve(backend))
        return backend

    async def _serve(self, backend: LbBackend) -> None:
        from aiohttp import web

        if backend.broken:
            await self._serve_broken(backend)
            return

        async def handle(request: web.Request) -> web.StreamResponse:
            path = request.path
            backend.hits[path] = backend.hits.get(path, 0) + 1
            if path == "/health":
                if backend.health_delay:
                    await asyncio.sleep(backend.health_delay)
                return web.json_response({"deployment": backend.name}, status=backend.health_status)
            if path == "/slow":
                await asyncio.sleep(float(request.query.get("s", "1")))
            if path.startswith("/status/"):
                return web.json_response({"deployment": backend.name}, status=int(path.rsplit("/", 1)[1]))
            if path == "/echo":
                body = await request.read()
                return web.json_response(
                    {
                        "deployment": backend.name,
                        "method": request.method,
                        "path_qs": request.path_qs,
                        "headers": [[k, v] for k, v in request.headers.items()],
                        "body_length": len(body),
                    }
                )
            return web.json_response({"deployment": backend.name, "path": request.path_qs})

        server = web.Server(handle, access_log=None)
        runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, backend.ip, backend.port).start()
        self._runners.append((backend, runner))

    async def _serve_broken(self, backend: LbBackend) -> None:
        """Raw HTTP: /health answers 200, any other request has its connection closed unanswered."""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    path = head.split(b" ", 2)[1].decode()
                    backend.hits[path] = backend.hits.get(path, 0) + 1
                    if path != "/health":
                        break
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, backend.ip, backend.port)

        class _Closer:
            async def cleanup(self) -> None:
                server.close()

        self._runners.append((backend, _Closer()))

    @staticmethod
    async def _cancel_the_rest() -> None:
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self, backend: LbBackend) -> None:
        for item in list(self._runners):
            if item[0] is backend:
                self._runners.remove(item)
                self._run(item[1].cleanup())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            for _, runner in self._runners:
                self._run(runner.cleanup())
        with contextlib.suppress(Exception):
            self._run(self._cancel_the_rest())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture
def lb_backends() -> Iterator[LbBackendPool]:
    pool = LbBackendPool()
    try:
        yield pool
    finally:
        pool.close()


class LbAccount:
    """A fresh AWS account for one test module: a VPC, two subnets and a certificate (EC2 calls
    are slow in the emulator, so they are made once per module, not per test)."""

    def __init__(self, api) -> None:
        api.reset()
        ec2 = api.client("ec2")
        self.vpc_id = ec2.create_vpc(CidrBlock=LB_VPC_CIDR)["Vpc"]["VpcId"]
        self.subnets = [
            ec2.create_subnet(VpcId=self.vpc_id, CidrBlock=f"10.0.{n}.0/24", AvailabilityZone=f"us-east-1{az}")[
                "Subnet"
            ]["SubnetId"]
            for n, az in ((1, "a"), (2, "b"))
        ]
        self.certificate_arn = api.client("acm").request_certificate(
            DomainName="app.example.com", ValidationMethod="DNS"
        )["CertificateArn"]


class LbCloud:
    """The AWS side of a load balancer test: the module's account with no load balancer and no
    target group, and helpers to create them."""

    def __init__(self, api, account: LbAccount) -> None:
        import boto3
        from botocore.config import Config

        self.api = api
        # Parameter validation off: tests use health check intervals below AWS's 5 s minimum.
        self.elbv2 = boto3.client(
            "elbv2",
            region_name="us-east-1",
            endpoint_url=api.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(parameter_validation=False),
        )
        self.vpc_id, self.subnets, self.certificate_arn = account.vpc_id, account.subnets, account.certificate_arn
        for lb in self.elbv2.describe_load_balancers()["LoadBalancers"]:
            self.elbv2.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
        for group in self.elbv2.describe_target_groups()["TargetGroups"]:
            self.elbv2.delete_target_group(TargetGroupArn=group["TargetGroupArn"])

    def elbv2_factory(self):
        return self.api.client("elbv2")

    def target_group(self, name: str, **health) -> str:
        settings = {
            "HealthCheckPath": "/health",
            "HealthCheckIntervalSeconds": 5,
            "HealthCheckTimeoutSeconds": 2,
            "HealthyThresholdCount": 2,
            "UnhealthyThresholdCount": 2,
            "Matcher": {"HttpCode": "200"},
            **health,
        }
        group = self.elbv2.create_target_group(
            Name=name, Protocol="HTTP", Port=8000, VpcId=self.vpc_id, TargetType="ip", **settings
        )["TargetGroups"][0]
        return group["TargetGroupArn"]

    def load_balancer(self, name: str) -> str:
        return self.elbv2.create_load_balancer(Name=name, Subnets=self.subnets)["LoadBalancers"][0]["LoadBalancerArn"]

    def listener(self, lb_arn: str, port: int, actions: list[dict], protocol: str | None = None) -> str:
        protocol = protocol or ("HTTPS" if port == 443 else "HTTP")
        params = {"LoadBalancerArn": lb_arn, "Port": port, "Protocol": protocol, "DefaultActions": actions}
        if protocol == "HTTPS":
            params["Certificates"] = [{"CertificateArn": self.certificate_arn}]
            params["SslPolicy"] = "ELBSecurityPolicy-TLS13-1-2-2021-06"
        return self.elbv2.create_listener(**params)["Listeners"][0]["ListenerArn"]


def lb_forward(*weighted: tuple[str, int]) -> list[dict]:
    """A forward default action: ForwardConfig with (target group ARN, weight) pairs."""
    return [
        {
            "Type": "forward",
            "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": arn, "Weight": weight} for arn, weight in weighted]},
        }
    ]


LB_REDIRECT_TO_HTTPS = [
    {
        "Type": "redirect",
        "RedirectConfig": {
            "Protocol": "HTTPS",
            "Port": "443",
            "Host": "#{host}",
            "Path": "/#{path}",
            "Query": "#{query}",
            "StatusCode": "HTTP_301",
        },
    }
]


@pytest.fixture(scope="module")
def lb_account(aws_api) -> LbAccount:
    return LbAccount(aws_api)


@pytest.fixture
def lb_cloud(aws_api, lb_account) -> LbCloud:
    return LbCloud(aws_api, lb_account)


@pytest.fixture
def lb_planes(lb_cloud) -> Iterator[Callable[..., object]]:
    """Start LoadBalancerPlanes on free local ports (``.ports``: listener port -> local port); all
    are stopped at the end, even when the test failed."""
    from localcloud.dataplane.lb import LoadBalancerPlane
    from localcloud.dataplane.registry import TargetRegistry

    started = []

    def start(registry: TargetRegistry | None = None, **options) -> LoadBalancerPlane:
        ports = options.pop("port_map", None) or {80: lb_free_port(), 443: lb_free_port()}
        options.setdefault("health_time_scale", 0.05)  # the groups' 5 s interval -> 0.25 s
        options.setdefault("shutdown_grace", 0.5)
        registry = registry or TargetRegistry()
        plane = LoadBalancerPlane(lb_cloud.elbv2_factory, registry, port_map=ports, **options)
        plane.ports, plane.registry = ports, registry
        started.append(plane)
        plane.start()
        return plane

    try:
        yield start
    finally:
        for plane in started:
            plane.stop()


# ---- tasks, databases, the controller and the command (dp_*) ----------------------------------------
# The task runner and the databases read moto's internals (the master password, the ECS reflection),
# so these tests run the emulator in this process (dp_api), one for the session, emptied per module.

DP_REGION = "us-east-1"
DP_ACCOUNT = "123456789012"
DP_MASTER_USER = "app_admin"
DP_MASTER_PASSWORD = "dp-test-master-password-1"


def dp_wait_until(
    predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.1, what: str = ""
) -> object:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:g} s: {what or predicate}")
        time.sleep(interval)


def dp_state_dir() -> str:
    """A state directory PostgreSQL's user can reach when we are root (pytest's tmp_path cannot be)."""
    import os
    import tempfile

    path = tempfile.mkdtemp(prefix="localcloud-test-")
    os.chmod(path, 0o711)  # noqa: S103 - traversable, not readable, by the postgres user
    return path


class DpHealthChecker:
    """Stands in for the load balancer's health checker: GETs each registered target's group
    health check path and records the outcome, every ``interval`` seconds (thresholds 2 and 2)."""

    def __init__(self, registry, elbv2, interval: float = 0.3):
        self.registry, self.elbv2, self.interval = registry, elbv2, interval
        self._paths: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dp-health-checker", daemon=True)
        self._thread.start()

    def _path(self, arn: str) -> str:
        if arn not in self._paths:
            try:
                group = self.elbv2.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"][0]
                self._paths[arn] = group.get("HealthCheckPath") or "/"
            except Exception:  # noqa: BLE001 - a group that is gone
                return "/"
        return self._paths[arn]

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for target in self.registry.targets():
                try:
                    connection = http.client.HTTPConnection(target.ip, target.port, timeout=1)
                    connection.request("GET", self._path(target.target_group_arn))
                    ok = connection.getresponse().status == 200
                    connection.close()
                except (OSError, http.client.HTTPException):
                    ok = False
                self.registry.record_check(
                    target.target_group_arn,
                    target.ip,
                    target.port,
                    ok=ok,
                    reason="Target.ResponseCodeMismatch" if not ok else "",
                    healthy_threshold=2,
                    unhealthy_threshold=2,
                )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class DpCloud:
    """A module's local cloud: the in-process API, a data plane without the load balancer (the
    checker above decides target health), and the account's base: a VPC, a subnet, a security
    group, a cluster, an ECR repository, a log group."""

    def __init__(self, api, state_dir: str, **plane_options):
        from localcloud.dataplane.controller import DataPlane

        self.api = api
        self.state_dir = state_dir
        api.reset()
        plane_options.setdefault("load_balancer", False)
        plane_options.setdefault("tick", 0.25)
        plane_options.setdefault("backoff", (0.3, 2.0))
        self.plane = DataPlane(api.endpoint_url, state_dir, **plane_options)
        self.plane.start()
        self.ecs, self.elbv2, self.rds = api.client("ecs"), api.client("elbv2"), api.client("rds")
        self.checker = None
        if not plane_options["load_balancer"]:
            self.checker = DpHealthChecker(self.plane.registry, self.elbv2)
        ec2 = api.client("ec2")
        self.vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        self.subnet = ec2.create_subnet(VpcId=self.vpc_id, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        self.security_group = ec2.create_security_group(GroupName="tasks", Description="tasks", VpcId=self.vpc_id)[
            "GroupId"
        ]
        self.cluster = self.ecs.create_cluster(clusterName="dp")["cluster"]["clusterArn"]
        self.repository = api.client("ecr").create_repository(repositoryName="items")["repository"]["repositoryUri"]
        self.log_group = "/ecs/dp"
        api.client("logs").create_log_group(logGroupName=self.log_group)
        self.database: dict | None = None

    def close(self) -> None:
        if self.checker is not None:
            self.checker.stop()
        self.plane.stop()

    # -- the account

    def publish(self, tag: str, context: Path | None = None):
        """``localcloud publish TAG --context CONTEXT`` (default: the checkout's app/) into ``items``."""
        from localcloud.dataplane import ecr
        from localcloud.dataplane.images import ImageStore

        return ecr.publish(
            self.api.client("ecr"), ImageStore(Path(self.state_dir)), "items", tag, context or REPO / "app"
        )

    def create_database(self, identifier: str = "dp-db", timeout: float = 90) -> dict:
        """An RDS instance (a real PostgreSQL once the plane has made it) and its password in SSM."""
        self.rds.create_db_instance(
            DBInstanceIdentifier=identifier,
            Engine="postgres",
            DBInstanceClass="db.t4g.micro",
            MasterUsername=DP_MASTER_USER,
            MasterUserPassword=DP_MASTER_PASSWORD,
            DBName="app",
            AllocatedStorage=20,
        )
        self.api.client("ssm").put_parameter(
            Name=f"/dp/{identifier}/password", Value=DP_MASTER_PASSWORD, Type="SecureString", Overwrite=True
        )
        dp_wait_until(
            lambda: any(d["identifier"] == identifier and d["state"] == "available" for d in self.plane.rds.status()),
            timeout,
            what=f"database {identifier} available: {self.plane.rds.status()}",
        )
        endpoint = self.rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]["Endpoint"]
        self.database = {"identifier": identifier, **endpoint, "parameter": f"/dp/{identifier}/password"}
        return self.database

    def target_group(self, name: str, *, delay: int = 0, path: str = "/health") -> str:
        arn = self.elbv2.create_target_group(
            Name=name, Protocol="HTTP", Port=8000, VpcId=self.vpc_id, TargetType="ip", HealthCheckPath=path
        )["TargetGroups"][0]["TargetGroupArn"]
        self.elbv2.modify_target_group_attributes(
            TargetGroupArn=arn, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": str(delay)}]
        )
        return arn

    def task_definition(
        self,
        family: str,
        tag: str,
        *,
        health_check: list[str] | None = ("CMD", "python", "-m", "items_api.healthcheck"),
        interval: int = 1,
        retries: int = 2,
        start_period: int = 0,
        stop_timeout: int = 5,
        environment: dict | None = None,
        color: str = "blue",
    ) -> str:
        database = self.database or {"Address": "db.invalid", "Port": 5432, "parameter": "/dp/none"}
        env = {
            "APP_VERSION": tag,
            "DEPLOYMENT_COLOR": color,
            "APP_PORT": "8000",
            "GUNICORN_WORKERS": "1",
            "AWS_REGION": DP_REGION,
            "DB_HOST": database["Address"],
            "DB_PORT": str(database["Port"]),
            "DB_NAME": "app",
            "DB_USER": DP_MASTER_USER,
            "DB_PASSWORD_SSM_PARAM": database["parameter"],
            "DB_STARTUP_TIMEOUT": "20",
            **(environment or {}),
        }
        container = {
            "name": "app",
            "image": f"{self.repository}:{tag}",
            "essential": True,
            "portMappings": [{"containerPort": 8000, "protocol": "tcp"}],
            "environment": [{"name": k, "value": v} for k, v in sorted(env.items())],
            "stopTimeout": stop_timeout,
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": self.log_group,
                    "awslogs-region": DP_REGION,
                    "awslogs-stream-prefix": color,
                },
            },
        }
        if health_check:
            container["healthCheck"] = {
                "command": list(health_check),
                "interval": interval,
                "timeout": 2,
                "retries": retries,
                "startPeriod": start_period,
            }
        return self.ecs.register_task_definition(
            family=family,
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            containerDefinitions=[container],
        )["taskDefinition"]["taskDefinitionArn"]

    def service(
        self,
        name: str,
        task_definition: str,
        desired: int,
        target_group: str | None = None,
        *,
        grace: int = 30,
        minimum: int = 100,
        maximum: int = 200,
        circuit_breaker: bool = False,
    ) -> str:
        configuration = {"minimumHealthyPercent": minimum, "maximumPercent": maximum}
        if circuit_breaker:
            configuration["deploymentCircuitBreaker"] = {"enable": True, "rollback": True}
        extra = {}
        if target_group:
            extra["loadBalancers"] = [{"targetGroupArn": target_group, "containerName": "app", "containerPort": 8000}]
            extra["healthCheckGracePeriodSeconds"] = grace
        self.ecs.create_service(
            cluster=self.cluster,
            serviceName=name,
            taskDefinition=task_definition,
            desiredCount=desired,
            launchType="FARGATE",
            networkConfiguration={
                "awsvpcConfiguration": {
                    "subnets": [self.subnet],
                    "securityGroups": [self.security_group],
                    "assignPublicIp": "ENABLED",
                }
            },
            deploymentConfiguration=configuration,
            **extra,
        )
        return name

    # -- reading back

    def tasks(self, service: str, *, running: bool | None = None) -> list:
        """The plane's tasks of a service (LocalTask objects); running=True: not stopped ones only."""
        found = [t for t in list(self.plane.ecs.tasks.values()) if t.service_name == service]
        if running is not None:
            found = [t for t in found if (t.last_status != "STOPPED") == running]
        return found

    def healthy_tasks(self, service: str) -> list:
        return [t for t in self.tasks(service, running=True) if self.plane.ecs.healthy(t)]

    def described(self, service: str) -> dict:
        return self.ecs.describe_services(cluster=self.cluster, services=[service])["services"][0]

    def events(self, service: str) -> list[str]:
        return [e["message"] for e in self.described(service)["events"]]

    def remove_service(self, service: str, timeout: float = 40) -> None:
        """Scale to 0, wait until every task has stopped, delete the service."""
        self.ecs.update_service(cluster=self.cluster, service=service, desiredCount=0)
        dp_wait_until(lambda: not self.tasks(service, running=True), timeout, what=f"{service} scaled in")
        self.ecs.delete_service(cluster=self.cluster, service=service, force=True)


@pytest.fixture(scope="session")
def dp_api():
    """The local AWS API served from a thread of the test process."""
    from localcloud.awsapi import ApiServerThread

    api = ApiServerThread()
    yield api
    api.stop()


@pytest.fixture(scope="module")
def dp_cloud(dp_api):
    import shutil

    state_dir = dp_state_dir()
    cloud = DpCloud(dp_api, state_dir)
    try:
        yield cloud
    finally:
        cloud.close()
        shutil.rmtree(state_dir, ignore_errors=True)
