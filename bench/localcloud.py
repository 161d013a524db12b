"""Benchmark the local cloud's load balancer: throughput and latency through it versus straight to
one task, and how soon a listener change made through the AWS API reaches the traffic.

    python bench/localcloud.py [--duration 10] [--connections 16] [--switches 5] [--haproxy auto|yes|no]
                               [--metrics both|on|off]

What runs, all on loopback and bounded in time:

* the local AWS API (a moto server child process) holding the platform's load balancer: target
  groups blue and green (/health checks, matcher 200), an HTTP:80 listener redirecting to HTTPS:443,
  an HTTPS:443 listener forwarding blue 100 / green 0, plus a bench-only HTTP:8000 listener
  forwarding to blue, which shows the proxy's cost without TLS;
* two tasks, one per colour: a tiny aiohttp app in a child process of its own (this file with
  ``--serve-backend``) that answers ``GET /health`` with ``{"deployment": colour}``; the real
  items-api needs PostgreSQL and is measured by ``bench/app.py``;
* the load balancer (``LoadBalancerPlane``) in a child process of its own (``--serve-lb``), as the
  local cloud runs it, with the two tasks registered in its target registry; with ``--metrics
  both`` (the default) two of them, one publishing its AWS/ApplicationELB metrics to the local
  CloudWatch as the local cloud does and one not, measured in turns, so that the cost of
  publishing shows in the same run;
* optionally, for comparison, HAProxy (when installed: ``apt-get install -y haproxy``) with a
  static configuration doing the same forward (TLS with the same certificate, keep-alive to the task).

Load comes from wrk when installed (``apt-get install -y wrk``), else from a Python keep-alive
client (which competes for the CPU, so its figures are lower): GET /health at a fixed number of
connections, after an unreported warm-up. Then ``--switches`` times: modify_listener moves all the
weight to the other colour, and a client polling every 5 ms records the time until the first
response from the new colour.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._load import Result, python_load, wrk_result  # noqa: E402

HOST = "127.0.0.1"
TASK_IPS = {"blue": "127.0.90.1", "green": "127.0.90.2"}
MAX_DURATION = 60
MAX_CONNECTIONS = 256
MAX_SWITCHES = 20


def free_port(host: str = HOST) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for(check, process: subprocess.Popen | None, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
            if check():
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} was not ready within {timeout}s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def get(port: int, path: str = "/health", *, https: bool = False, host: str = HOST, timeout: float = 5):
    if https:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# -- child processes -----------------------------------------------------------------------------


def serve_backend(colour: str, host: str, port: int) -> None:
    from aiohttp import web

    body = json.dumps({"deployment": colour}).encode()

    async def handle(request: web.Request) -> web.Response:  # noqa: ARG001 - aiohttp's handler signature
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, host=host, port=port, print=None, access_log=None)


def serve_lb(spec: dict) -> None:
    """The load balancer as the local cloud runs it, with the bench's tasks registered; ends on
    SIGTERM or after spec["lifetime"] seconds."""
    import boto3

    from localcloud.dataplane.lb import LoadBalancerPlane
    from localcloud.dataplane.lb.metrics import LbMetrics
    from localcloud.dataplane.registry import TargetRegistry

    def factory(service: str = "elbv2"):
        return boto3.client(
            service,
            region_name="us-east-1",
            endpoint_url=spec["endpoint"],
            aws_access_key_id="bench",
            aws_secret_access_key="bench",  # noqa: S106 - the local AWS API takes any credentials
        )

    registry = TargetRegistry()
    metrics = LbMetrics(lambda: factory("cloudwatch"), registry) if spec["metrics"] else None
    for group, ip, port in spec["targets"]:
        registry.register(group, ip, port, f"task-{ip}")
    # The platform checks every 15 s; a tenth of that gets the tasks healthy in ~1.5 s.
    plane = LoadBalancerPlane(
        factory,
        registry,
        port_map={int(k): v for k, v in spec["port_map"].items()},
        tls_cert=tuple(spec["tls_cert"]),
        health_time_scale=0.1,
        metrics=metrics,
    )
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    status_file = Path(spec["status_file"])
    plane.start()
    try:
        deadline = time.monotonic() + spec["lifetime"]
        while time.monotonic() < deadline and not stopping.is_set():
            status = plane.status()
            status["metrics_published"] = metrics.published if metrics else None
            status["cpu_seconds"] = sum(os.times()[:2])  # this process's, user + system
            temporary = status_file.with_suffix(".tmp")  # replaced at once: a reader never sees half of it
            temporary.write_text(json.dumps(status))
            os.replace(temporary, status_file)
            stopping.wait(0.5)
    finally:
        plane.stop()


# -- the stack -----------------------------------------------------------------------------------


@dataclass
class Stack:
    endpoint: str
    elbv2: object
    https_listener: str
    groups: dict[str, str]
    tasks: dict[str, tuple[str, int]]
    ports: dict[int, int]
    status_file: Path
    certfile: str | None = None
    keyfile: str | None = None
    publishing_ports: dict[int, int] | None = None  # the load balancer that publishes metrics
    publishing_status: Path | None = None


def platform(api) -> tuple[dict, dict[str, str]]:
    """The alb role's resources, as the platform creates them (plus the bench-only listener)."""
    ec2, elbv2 = api.client("ec2"), api.client("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{n}.0/24", AvailabilityZone=f"us-east-1{az}")["Subnet"][
            "SubnetId"
        ]
        for n, az in ((1, "a"), (2, "b"))
    ]
    cert = api.client("acm").request_certificate(DomainName="bench.example.com", ValidationMethod="DNS")
    groups = {
        colour: elbv2.create_target_group(
            Name=f"bench-{colour}",
            Protocol="HTTP",
            Port=8000,
            VpcId=vpc,
            TargetType="ip",
            HealthCheckPath="/health",
            HealthCheckIntervalSeconds=15,
            HealthCheckTimeoutSeconds=5,
            HealthyThresholdCount=2,
            UnhealthyThresholdCount=3,
            Matcher={"HttpCode": "200"},
        )["TargetGroups"][0]["TargetGroupArn"]
        for colour in ("blue", "green")
    }
    lb = elbv2.create_load_balancer(Name="bench", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
    redirect = {
        "Type": "redirect",
        "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"},
    }
    elbv2.create_listener(LoadBalancerArn=lb, Port=80, Protocol="HTTP", DefaultActions=[redirect])
    https = elbv2.create_listener(
        LoadBalancerArn=lb,
        Port=443,
        Protocol="HTTPS",
        Certificates=[{"CertificateArn": cert["CertificateArn"]}],
        SslPolicy="ELBSecurityPolicy-TLS13-1-2-2021-06",
        DefaultActions=forward(groups, "blue"),
    )["Listeners"][0]["ListenerArn"]
    elbv2.create_listener(LoadBalancerArn=lb, Port=8000, Protocol="HTTP", DefaultActions=forward(groups, "blue"))
    return {"https": https}, groups


def forward(groups: dict[str, str], colour: str) -> list[dict]:
    weights = [{"TargetGroupArn": arn, "Weight": 100 if c == colour else 0} for c, arn in groups.items()]
    return [{"Type": "forward", "ForwardConfig": {"TargetGroups": weights}}]


@contextlib.contextmanager
def stack(workdir: Path, lifetime: float, metrics: str = "off") -> Iterator[Stack]:
    from localcloud.awsapi import AwsApiProcess
    from localcloud.dataplane import tls

    processes: list[subprocess.Popen] = []
    api = AwsApiProcess(workdir / "awsapi.log")
    try:
        listeners, groups = platform(api)
        tasks = {}
        for colour, ip in TASK_IPS.items():
            port = free_port(ip)
            log = (workdir / f"{colour}.log").open("wb")
            processes.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--serve-backend", colour, ip, str(port)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            tasks[colour] = (ip, port)
            wait_for(lambda ip=ip, port=port: get(port, host=ip)[0] == 200, processes[-1], f"{colour} task")
        certfile, keyfile = tls.self_signed(workdir / "tls")

        def load_balancer(name: str, publish: bool) -> tuple[dict[int, int], Path]:
            ports = {80: free_port(), 443: free_port(), 8000: free_port()}
            status_file = workdir / f"{name}-status.json"
            spec = {
                "endpoint": api.endpoint_url,
                "port_map": ports,
                "tls_cert": [certfile, keyfile],
                "targets": [[groups[c], ip, port] for c, (ip, port) in tasks.items()],
                "status_file": str(status_file),
                "lifetime": lifetime,
                "metrics": publish,
            }
            processes.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--serve-lb", json.dumps(spec)],
                    stdout=(workdir / f"{name}.log").open("wb"),
                    stderr=subprocess.STDOUT,
                )
            )

            def healthy() -> bool:
                status = json.loads(status_file.read_text())
                states = [t["health"] for g in status["target_groups"] for t in g["targets"]]
                return states == ["healthy", "healthy"] and get(ports[443], https=True)[0] == 200

            wait_for(healthy, processes[-1], f"load balancer ({name})", timeout=30)
            return ports, status_file

        ports, status_file = load_balancer("lb", metrics == "on")
        publishing_ports, publishing_status = load_balancer("lb-metrics", True) if metrics == "both" else (None, None)
        yield Stack(
            api.endpoint_url,
            api.client("elbv2"),
            listeners["https"],
            groups,
            tasks,
            ports,
            status_file,
            certfile,
            keyfile,
            publishing_ports,
            publishing_status,
        )
    finally:
        for process in reversed(processes):
            stop(process)
        api.stop()


@contextlib.contextmanager
def haproxy(workdir: Path, task: tuple[str, int], certfile: str, keyfile: str) -> Iterator[dict[str, int]]:
    """HAProxy doing the same forward: HTTPS (same certificate) and HTTP, keep-alive to the task."""
    pem = workdir / "haproxy.pem"
    pem.write_text(Path(certfile).read_text() + Path(keyfile).read_text())
    ports = {"https": free_port(), "http": free_port()}
    config = workdir / "haproxy.cfg"
    config.write_text(
        "\n".join(
            [
                "global",
                "  nbthread 1",
                "  maxconn 1024",
                "defaults",
                "  mode http",
                "  timeout connect 10s",
                "  timeout client 60s",
                "  timeout server 60s",
                "  option forwardfor",
                "  http-reuse always",
                "frontend https_in",
                f"  bind {HOST}:{ports['https']} ssl crt {pem}",
                "  http-request set-header X-Forwarded-Proto https",
                "  default_backend task",
                "frontend http_in",
                f"  bind {HOST}:{ports['http']}",
                "  default_backend task",
                "backend task",
                f"  server blue {task[0]}:{task[1]}",
                "",
            ]
        )
    )
    process = subprocess.Popen(
        ["haproxy", "-db", "-f", str(config)], stdout=(workdir / "haproxy.log").open("wb"), stderr=subprocess.STDOUT
    )
    try:
        wait_for(lambda: get(ports["http"])[0] == 200, process, "haproxy")
        yield ports
    finally:
        stop(process)


# -- load ----------------------------------------------------------------------------------------


def run_wrk(name: str, url: str, args: argparse.Namespace, duration: int) -> Result:
    command = [
        "wrk",
        f"--threads={min(2, args.connections)}",
        f"--connections={args.connections}",
        f"--duration={duration}s",
        "--timeout=10s",
        "--latency",
        url,
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=duration + 30).stdout
    return wrk_result(name, output)


def run_python(name: str, url: str, args: argparse.Namespace, duration: int) -> Result:
    return python_load(name, url, args.connections, duration, ok=lambda status: status == 200)


def measure(generator: str, name: str, url: str, args: argparse.Namespace) -> Result:
    run = run_wrk if generator == "wrk" else run_python
    run(name, url, args, 2)  # warm-up: connections open, code paths hot
    return run(name, url, args, args.duration)


def switch_latencies(s: Stack, count: int) -> list[float]:
    """modify_listener to the other colour, then the time until a response comes from it."""
    context = ssl.create_default_context(cafile=s.certfile)
    connection = http.client.HTTPSConnection(HOST, s.ports[443], timeout=10, context=context)

    def colour() -> str:
        connection.request("GET", "/health")
        return json.loads(connection.getresponse().read())["deployment"]

    figures = []
    current = "blue"
    try:
        for _ in range(count):
            new = "green" if current == "blue" else "blue"
            s.elbv2.modify_listener(ListenerArn=s.https_listener, DefaultActions=forward(s.groups, new))
            changed = time.perf_counter()
            while colour() != new:
                if time.perf_counter() - changed > 10:
                    raise RuntimeError("the listener change did not take effect within 10 s")
                time.sleep(0.005)
            figures.append(time.perf_counter() - changed)
            current = new
            time.sleep(0.3)  # a random phase against the poll for the next switch
    finally:
        connection.close()
    return figures


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve-backend"]:
        serve_backend(argv[1], argv[2], int(argv[3]))
        return 0
    if argv[:1] == ["--serve-lb"]:
        serve_lb(json.loads(argv[1]))
        return 0
    parser = argparse.ArgumentParser(prog="python bench/localcloud.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help=f"seconds per scenario (at most {MAX_DURATION})")
    parser.add_argument("--connections", type=int, default=16, help=f"concurrency (at most {MAX_CONNECTIONS})")
    parser.add_argument("--switches", type=int, default=5, help=f"listener switches to time (at most {MAX_SWITCHES})")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--haproxy", choices=("auto", "yes", "no"), default="auto", help="compare with HAProxy")
    parser.add_argument(
        "--rounds", type=int, default=3, help="with --metrics both: rounds of off/on measurements (at most 10)"
    )
    parser.add_argument(
        "--metrics",
        choices=("both", "on", "off"),
        default="both",
        help="the load balancer publishes its metrics (on), not (off), or both measured in turns (default)",
    )
    args = parser.parse_args(argv)
    args.duration = max(1, min(args.duration, MAX_DURATION))
    args.connections = max(1, min(args.connections, MAX_CONNECTIONS))
    args.switches = max(1, min(args.switches, MAX_SWITCHES))
    args.rounds = max(1, min(args.rounds, 10))
    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "python"
    if generator == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install -y wrk)")
    use_haproxy = args.haproxy == "yes" or (args.haproxy == "auto" and shutil.which("haproxy"))
    if args.haproxy == "yes" and not shutil.which("haproxy"):
        parser.error("haproxy is not installed (apt-get install -y haproxy)")

    workdir = Path(tempfile.mkdtemp(prefix="localcloud-bench-"))
    results: list[Result] = []
    lifetime = (5 + 4 * args.rounds) * (args.duration + 2) + 11 * args.switches + 120  # the LB processes' bound
    try:
        with stack(workdir, lifetime, args.metrics) as s:
            blue_ip, blue_port = s.tasks["blue"]
            print(
                f"backend: tiny aiohttp app per task (bench/localcloud.py --serve-backend), GET /health -> "
                f'{{"deployment": colour}}; load: {generator}, {args.connections} connections, '
                f"{args.duration}s per scenario; {os.cpu_count()} CPUs",
                flush=True,
            )
            direct = f"http://{blue_ip}:{blue_port}/health"
            results.append(measure(generator, "direct to one task (HTTP)", direct, args))
            report(results[-1])
            results.extend(measure_load_balancers(s, generator, args))
            if s.publishing_ports and s.publishing_status:
                compare_publishing(results, json.loads(s.publishing_status.read_text()))
            if use_haproxy:
                with haproxy(workdir, s.tasks["blue"], s.certfile, s.keyfile) as ports:
                    for name, url in (
                        ("HAProxy 2.x HTTPS -> task", f"https://{HOST}:{ports['https']}/health"),
                        ("HAProxy 2.x HTTP -> task", f"http://{HOST}:{ports['http']}/health"),
                    ):
                        results.append(measure(generator, name, url, args))
                        report(results[-1])
            figures = switch_latencies(s, args.switches)
            print(
                f"  modify_listener -> first response from the new colour ({len(figures)} switches): "
                f"min {min(figures) * 1000:.0f} ms, median {statistics.median(figures) * 1000:.0f} ms, "
                f"max {max(figures) * 1000:.0f} ms (poll interval 250 ms)",
                flush=True,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if any(result.errors for result in results) else 0


def measure_load_balancers(s: Stack, generator: str, args: argparse.Namespace) -> list[Result]:
    """Each listener through the load balancer; with --metrics both, publishing on and off measured
    in turns (off-on, on-off, ...) --rounds times, so that the load of the rest of the machine
    weighs on both alike."""
    label = {"both": " (metrics off)", "on": " (metrics on)", "off": ""}[args.metrics]
    pairs = []
    for listener, scheme in ((443, "https"), (8000, "http")):
        name = f"local ALB {scheme.upper()}:{listener} -> task"
        variants = [(name + label, f"{scheme}://{HOST}:{s.ports[listener]}/health", s.status_file)]
        if s.publishing_ports:
            url = f"{scheme}://{HOST}:{s.publishing_ports[listener]}/health"
            variants.append((name + " (metrics on)", url, s.publishing_status))
        pairs.append(variants)
    results = []
    run = run_wrk if generator == "wrk" else run_python
    for turn in range(args.rounds if s.publishing_ports else 1):
        for variants in pairs:
            for name, url, status_file in variants if turn % 2 == 0 else variants[::-1]:
                run(name, url, args, 2)  # warm-up
                before = cpu_seconds(status_file)
                results.append(run(name, url, args, args.duration))
                time.sleep(0.7)  # the load balancer writes its status every 0.5 s
                spent = cpu_seconds(status_file) - before
                CPU_PER_REQUEST[id(results[-1])] = spent / max(1, results[-1].requests)
                report(results[-1])
    return results


CPU_PER_REQUEST: dict[int, float] = {}  # id(Result) -> the load balancer's CPU seconds per request


def cpu_seconds(status_file) -> float:
    return float(json.loads(Path(status_file).read_text()).get("cpu_seconds") or 0.0)


def compare_publishing(results: list[Result], status: dict) -> None:
    """Publishing on against off, for each listener measured both ways: the mean throughput of the
    rounds, and the median of their p50 and p99 latencies."""
    by_name: dict[str, list[Result]] = {}
    for result in results:
        by_name.setdefault(result.name, []).append(result)
    for name, offs in by_name.items():
        ons = by_name.get(name.replace("(metrics off)", "(metrics on)"))
        if "(metrics off)" not in name or not ons:
            continue
        off_rps, on_rps = statistics.mean(r.rps for r in offs), statistics.mean(r.rps for r in ons)
        p50 = [statistics.median(r.p50_ms for r in runs) for runs in (offs, ons)]
        p99 = [statistics.median(r.p99_ms for r in runs) for runs in (offs, ons)]
        cpu = [1e6 * statistics.median(CPU_PER_REQUEST.get(id(r), 0.0) for r in runs) for runs in (offs, ons)]
        cpu_text = f"{cpu[0]:.0f} -> {cpu[1]:.0f} us ({cpu[1] / cpu[0] - 1:+.1%})" if cpu[0] else "unknown"
        print(
            f"  publishing metrics, {name.replace(' (metrics off)', '')}, {len(ons)} rounds: "
            f"{off_rps:.0f} req/s off, {on_rps:.0f} req/s on: throughput {on_rps / off_rps - 1:+.1%}; "
            f"p50 {p50[0]:.2f} -> {p50[1]:.2f} ms, p99 {p99[0]:.2f} -> {p99[1]:.2f} ms; "
            f"the load balancer's CPU per request {cpu_text}",
            flush=True,
        )
    print(f"  metrics published by the load balancer during the run: {status.get('metrics_published')} datums")


def report(result: Result) -> None:
    print(
        f"  {result.name:<30} {result.rps:>9.1f} req/s   p50 {result.p50_ms:>7.2f} ms   "
        f"p99 {result.p99_ms:>7.2f} ms   errors {result.errors}",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
