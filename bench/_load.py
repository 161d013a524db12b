"""The load generators the benchmarks share: wrk's output read into a Result, and a bounded Python
keep-alive client for machines without wrk. Loopback only; every run ends at its deadline."""

from __future__ import annotations

import http.client
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Result:
    name: str
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float


_WRK_LATENCY = re.compile(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk_result(name: str, output: str) -> Result:
    """A Result from the output of ``wrk --latency``: non-2xx/3xx responses and socket errors count as errors."""
    latencies = {pct: float(value) * _UNITS[unit] for pct, value, unit in _WRK_LATENCY.findall(output)}
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return Result(name, requests, errors, rps, latencies["50"], latencies["99"])


def python_load(
    name: str,
    url: str,
    connections: int,
    duration: float,
    *,
    ok: Callable[[int], bool],
    method: str = "GET",
    body: bytes | None = None,
    headers: dict | None = None,
) -> Result:
    """``connections`` keep-alive clients, each sending ``method url`` back to back for ``duration``
    seconds (HTTPS without certificate checks: the local load balancer's own certificate). A
    response whose status ``ok`` refuses, or a broken connection, counts as an error."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    deadline = time.monotonic() + duration

    def client() -> None:
        nonlocal errors
        if parts.scheme == "https":
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            connection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=10, context=context)
        else:
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        mine, failed = [], 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                connection.request(method, path, body=body, headers=headers or {})
                response = connection.getresponse()
                response.read()
                good = ok(response.status)
            except (OSError, http.client.HTTPException):
                connection.close()
                good = False
            mine.append((time.perf_counter() - started) * 1000)
            failed += not good
        connection.close()
        with lock:
            latencies.extend(mine)
            errors += failed

    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] if latencies else 0.0

    return Result(name, len(latencies), errors, len(latencies) / seconds, pct(0.50), pct(0.99))
