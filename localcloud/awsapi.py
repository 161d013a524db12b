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


class AwsApiProcess:
    """A local AWS API in a child process on a free loopback port (tests and benchmarks)."""

    def __init__(self, log_path: Path, extra_env: dict | None = None):
        self.log_path = log_path
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, MOTO_IAM_LOAD_MANAGED_POLICIES="true", PYTHONPATH=str(REPO), **(extra_env or {}))
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "localcloud.awsapi", "--port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
        deadline = time.monotonic() + 30
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

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def serve(host: str, port: int) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    from localcloud import moto_patches

    moto_patches.apply()
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)

    def stop(signum, frame):  # noqa: ARG001 - signal handler signature
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"localcloud AWS API listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcloud.awsapi")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    args = parser.parse_args(argv)
    if not args.host.startswith("127.") and args.host != "localhost":
        parser.error("the local AWS API only listens on loopback addresses")
    serve(args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
