"""The local AWS API: a moto server with the emulator fixes of ``localcloud.moto_patches`` applied.

Run in the foreground with ``python -m localcloud.awsapi --port 4566``; ``localcloud up`` starts it
in the background. Running moto in-process (rather than the ``moto_server`` script) is what lets
the local cloud correct the emulator where it deviates from AWS, in one documented place.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

# Must be set before moto is imported: attaching AWS managed policies (such as
# AmazonECSTaskExecutionRolePolicy) fails with NoSuchEntity otherwise.
os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
# ACM issues a DNS-validated certificate after this many seconds (AWS: once the record resolves).
os.environ.setdefault("MOTO_ACM_VALIDATION_WAIT", "2")


AWS_REQUEST_LINE = re.compile(r'"(GET|POST|PUT|DELETE|HEAD|PATCH) (?!/moto-api)\S* HTTP/1\.[01]" \d{3} ')
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ApiEndpoint:
    """A local AWS API at ``endpoint_url``: empty it, get a client of it (dummy credentials)."""

    def __init__(self, endpoint_url: str):
        self.endpoint_url = endpoint_url

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def client(self, service: str, region: str = "us-east-1"):
        import boto3

        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - the emulator takes any credentials
        )


class AwsApiProcess(ApiEndpoint):
    """A local AWS API in a child process on a free loopback port (tests and benchmarks)."""

    def __init__(self, log_path: Path, extra_env: dict | None = None, start_timeout: float = 30.0):
        self.log_path = log_path
        self.port = free_port()
        super().__init__(f"http://127.0.0.1:{self.port}")
        env = dict(os.environ, MOTO_IAM_LOAD_MANAGED_POLICIES="true", PYTHONPATH=str(REPO), **(extra_env or {}))
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "localcloud.awsapi", "--port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"local AWS API exited early; see {log_path}")
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"local AWS API did not start; see {log_path}")

    def request_count(self) -> int:
        """AWS API requests answered so far (the server logs one line per request; its own
        /moto-api/ control calls do not count)."""
        with open(self.log_path, errors="replace") as log:
            return sum(1 for line in log if AWS_REQUEST_LINE.search(line))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


DATA_PLANE_AGENT = "localcloud-dataplane"  # localcloud.dataplane.controller's user agent


def make_server(host: str, port: int):
    """The emulator as a threaded WSGI server on ``host:port``, with the local cloud's fixes applied."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server as make_wsgi_server

    from localcloud import moto_patches

    class RequestHandler(MotoRequestHandler):
        """Logs a line per request, except the data plane's own reads (several a second)."""

        def log_request(self, code="-", size="-"):
            if DATA_PLANE_AGENT not in (self.headers.get("User-Agent") or ""):
                super().log_request(code, size)

    moto_patches.apply()
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    return make_wsgi_server(host, port, app, threaded=True, request_handler=RequestHandler)


class ApiServerThread(ApiEndpoint):
    """The local AWS API served from a thread of this process (the data plane's tests use it: the
    data plane needs the emulator in its own process)."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None):
        self.port = port or free_port()
        super().__init__(f"http://{host}:{self.port}")
        self.server = make_server(host, self.port)
        self.thread = threading.Thread(target=self.server.serve_forever, name="awsapi", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def serve(host: str, port: int, data_plane: dict | None = None) -> int:
    """Serve until SIGTERM or SIGINT. With ``data_plane`` (DataPlane keyword arguments), the data
    plane runs beside the emulator and is stopped first."""
    server = make_server(host, port)
    stopping = threading.Event()

    def stop(signum, frame):  # noqa: ARG001 - signal handler signature
        if data_plane is None:
            raise SystemExit(0)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"localcloud AWS API listening on http://{host}:{port}", flush=True)
    if data_plane is None:
        try:
            server.serve_forever()
        finally:
            server.server_close()
        return 0

    import logging

    from localcloud.dataplane.controller import DataPlane

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    thread = threading.Thread(target=server.serve_forever, name="awsapi", daemon=True)
    thread.start()
    plane = DataPlane(f"http://{host}:{port}", **data_plane)
    try:
        plane.start()
    except Exception as exc:  # noqa: BLE001 - reported, then everything started is stopped
        print(f"localcloud: the data plane did not start: {exc}", flush=True)
        plane.stop()
        server.shutdown()
        server.server_close()
        return 1
    print(f"localcloud data plane running, state in {plane.state_dir}", flush=True)
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        print("localcloud: stopping the data plane", flush=True)
        plane.stop()
        server.shutdown()
        server.server_close()
        print("localcloud: stopped", flush=True)
    return 0


def parse_port_map(values: list[str]) -> dict[int, int]:
    """``["80=8080", "443=8443"]`` -> {80: 8080, 443: 8443}: listener port -> local port."""
    mapping = {}
    for value in values:
        listener, _, local = value.partition("=")
        if not (listener.isdigit() and local.isdigit()):
            raise ValueError(f"--listener-port takes LISTENER=LOCAL, e.g. 443=8443 (got {value!r})")
        mapping[int(listener)] = int(local)
    return mapping


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcloud.awsapi")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    parser.add_argument("--data-plane", action="store_true", help="also run the data plane (tasks, databases, LB)")
    parser.add_argument("--state-dir", type=Path, help="the data plane's state directory")
    parser.add_argument("--listener-port", action="append", default=[], help="LISTENER=LOCAL, e.g. 80=8080")
    parser.add_argument("--region", action="append", default=[], help="a region the data plane watches (repeatable)")
    args = parser.parse_args(argv)
    if not args.host.startswith("127.") and args.host != "localhost":
        parser.error("the local AWS API only listens on loopback addresses")
    if not args.data_plane:
        return serve(args.host, args.port)
    if args.state_dir is None:
        parser.error("--data-plane needs --state-dir")
    try:
        port_map = parse_port_map(args.listener_port) if args.listener_port else None
    except ValueError as exc:
        parser.error(str(exc))
    regions = args.region or [os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"]
    return serve(args.host, args.port, {"state_dir": args.state_dir, "port_map": port_map, "regions": regions})


if __name__ == "__main__":
    sys.exit(main())
