"""A load generator for the local cloud, in a process of its own so that its timing does not depend on
its caller's: GETs at a fixed rate through keep-alive connections, one JSON record per request (when
it was sent, the status, which colour and version answered, a connection error, the latency).

    load = start_load(cloud.https, Path("load.jsonl"), rate=100)
    ...                                   # swap, roll back, kill tasks
    records = load.stop()                 # every request, in the order they ended
    percentile([r["latency"] for r in records], 0.99)

or from a shell: ``python -m localcloud.loadgen URL OUT [--rate 100] [--connections 4]`` until SIGTERM.
Used by the end-to-end tests and the benchmarks. Loopback only; the rate is capped at 200/s.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from localcloud.harness import REPO, wait_for

UNVERIFIED = ssl._create_unverified_context()  # noqa: S323 - the local load balancer's own certificate


class Generator:
    """``connections`` workers sharing a fixed total ``rate`` of GETs over ``paths`` (in turn), each on
    one keep-alive connection reopened after an error, until ``stop`` is set."""

    def __init__(self, url: str, out, *, rate: float, connections: int, paths: list[str], timeout: float):
        self.parts = urllib.parse.urlsplit(url)
        self.out, self.paths, self.timeout = out, paths, timeout
        self.rate = min(max(rate, 1.0), 200.0)  # bounded: loopback, a shared machine
        self.connections = min(max(connections, 1), 16)
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def connect(self) -> http.client.HTTPConnection:
        host, port = self.parts.hostname, self.parts.port
        if self.parts.scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=self.timeout, context=UNVERIFIED)
        return http.client.HTTPConnection(host, port, timeout=self.timeout)

    def one(self, connection, path: str) -> tuple[dict, http.client.HTTPConnection | None]:
        """One GET: its record, and the connection to use next (None: open a new one)."""
        record = {
            "t": time.time(),
            "path": path,
            "status": None,
            "color": None,
            "version": None,
            "release": None,
            "error": None,
        }
        started = time.perf_counter()
        try:
            if connection is None:
                connection = self.connect()
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            record.update(
                status=response.status,
                color=response.getheader("X-Deployment-Color"),
                version=response.getheader("X-App-Version"),
                release=response.getheader("X-App-Release"),
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
        return record, connection

    def worker(self, index: int) -> None:
        interval = self.connections / self.rate
        next_at = time.monotonic() + index / self.rate
        connection, turn = None, index
        while not self.stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0 and self.stop.wait(delay):
                break
            if delay < -1.0:  # fell behind (a slow answer): no burst to catch up
                next_at = time.monotonic()
            next_at += interval
            record, connection = self.one(connection, self.paths[turn % len(self.paths)])
            turn += 1
            with self.lock:
                self.out.write(json.dumps(record) + "\n")
        if connection is not None:
            connection.close()

    def run(self) -> None:
        threads = [threading.Thread(target=self.worker, args=(i,), daemon=True) for i in range(self.connections)]
        for thread in threads:
            thread.start()
        while not self.stop.is_set():
            self.stop.wait(0.5)
        for thread in threads:
            thread.join(timeout=self.timeout + 5)


def main(argv: list[str]) -> None:
    """``URL OUT [--rate 100] [--connections 4] [--paths /,/items?limit=5] [--timeout 30]``: GET the
    paths in turn through keep-alive connections at a fixed total rate until SIGTERM, one JSON line
    per request in OUT: ``t`` (wall time sent), ``t_end``, ``path``, ``status``, ``color`` and
    ``version`` (X-Deployment-Color, X-App-Version), ``release`` (X-App-Release: an image built by
    ``localcloud.harness.release_context`` sends it, the checkout's app does not), ``error`` (a
    connection error), ``latency``."""
    parser = argparse.ArgumentParser(prog="python -m localcloud.loadgen")
    parser.add_argument("url")
    parser.add_argument("out")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--paths", default="/,/items?limit=5")
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    paths = [p for p in args.paths.split(",") if p]
    with open(args.out, "a", buffering=1) as out:
        generator = Generator(
            args.url, out, rate=args.rate, connections=args.connections, paths=paths, timeout=args.timeout
        )
        signal.signal(signal.SIGTERM, lambda *_: generator.stop.set())
        signal.signal(signal.SIGINT, lambda *_: generator.stop.set())
        generator.run()


@dataclass
class Load:
    """A running load generator (:func:`start_load`); ``stop()`` ends it and returns its records."""

    process: subprocess.Popen
    path: Path

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        lines = self.path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip().endswith("}")]

    def stop(self) -> list[dict]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.records()


def start_load(url: str, out: Path, rate: float = 100, connections: int = 4, paths: str = "/,/items?limit=5") -> Load:
    """Start the load generator against ``url`` (loopback), writing to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "localcloud.loadgen",
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
    load = Load(process, out)
    wait_for(
        lambda: len(load.records()) > 0 or process.poll() is not None,
        timeout=30,
        interval=0.2,
        what="the load's first request",
    )
    if process.poll() is not None:
        raise AssertionError(f"the load generator exited with {process.returncode}")
    return load


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) by the nearest-rank method; None when there is no value."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1]


if __name__ == "__main__":
    main(sys.argv[1:])
