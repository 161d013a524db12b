"""Container health check: ``python -m items_api.healthcheck`` exits 0 if liveness answers 200.

Used by the Dockerfile ``HEALTHCHECK`` and the ECS task definition. It asks ``/live``, which never
touches the database, on APP_HOST:APP_PORT (0.0.0.0 means this host: 127.0.0.1). Standard library
only, so it starts fast and cannot fail on an import.
"""

from __future__ import annotations

import http.client
import os
import sys

LIVENESS_PATH = "/live"
DEFAULT_TIMEOUT = 3.0  # below the Dockerfile HEALTHCHECK --timeout, so a hung app reads as unhealthy
_ANY_ADDRESS = {"", "0.0.0.0", "::", "[::]"}  # noqa: S104 - recognised, not bound


def target(env: dict[str, str] | os._Environ = os.environ) -> tuple[str, int]:
    host = env.get("APP_HOST", "").strip()
    host = "127.0.0.1" if host in _ANY_ADDRESS else host.strip("[]")
    return host, int(env.get("APP_PORT", "").strip() or 8000)


def check(host: str, port: int, timeout: float) -> bool:
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", LIVENESS_PATH, headers={"User-Agent": "items-api-healthcheck"})
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def main() -> int:
    try:
        host, port = target()
        timeout = float(os.environ.get("HEALTHCHECK_TIMEOUT", DEFAULT_TIMEOUT))
    except ValueError:
        print("healthcheck: APP_PORT or HEALTHCHECK_TIMEOUT is not a number", file=sys.stderr)
        return 1
    healthy = check(host, port, timeout)
    if not healthy:
        print(f"healthcheck: GET http://{host}:{port}{LIVENESS_PATH} did not answer 200", file=sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
