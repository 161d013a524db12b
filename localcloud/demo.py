"""Show the platform working on the local cloud: the URL, the service answering through the local
load balancer, items written and read back, and which colour served each request.

    python -m localcloud.demo [--timeout 300]     (make up runs it)
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from localcloud.cli import StateDir

# The local load balancer serves HTTPS with a self-signed certificate of its own.
UNVERIFIED = ssl._create_unverified_context()  # noqa: S323 - a loopback demo against our own certificate


def https_url(state: StateDir) -> str | None:
    status = state.read_status(state.read_pid("awsapi")) or {}
    for listener in (status.get("load_balancer") or {}).get("listeners", []):
        if listener.get("port") == 443 and listener.get("local_url"):
            return listener["local_url"].rstrip("/")
    return None


def call(method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10, context=UNVERIFIED) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, {}


def wait_ready(state: StateDir, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    url, last = None, "no HTTPS listener served yet"
    while time.monotonic() < deadline:
        url = https_url(state)
        if url:
            try:
                code, body = call("GET", f"{url}/health")
                if code == 200:
                    return url
                last = f"/health answered {code} {body}"
            except OSError as error:
                last = str(error)
        time.sleep(2)
    raise SystemExit(
        f"demo: the service did not answer through the local load balancer in {timeout:.0f} s ({last}).\n"
        "      `bin/localcloud status` shows the tasks, their health and the service events."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument(
        "--state-dir", type=Path, default=Path(os.environ.get("LOCALCLOUD_STATE_DIR", ".state/localcloud"))
    )
    args = parser.parse_args(argv)
    state = StateDir(args.state_dir.resolve())

    print("waiting for the service to answer through the local load balancer ...", flush=True)
    url = wait_ready(state, args.timeout)
    _, about = call("GET", f"{url}/")
    print(f"\nURL        {url}/   (the ALB's HTTPS:443 listener; HTTP:80 redirects there)")
    print(f"service    version {about.get('version')}, colour {about.get('deployment')}")
    for name in ("first item", "second item"):
        code, item = call("POST", f"{url}/items", {"name": f"{name} ({time.strftime('%H:%M:%S')})"})
        print(f"POST       /items -> {code} id {item.get('id')} {item.get('name')!r}")
    _, items = call("GET", f"{url}/items?limit=5")
    print(f"GET        /items -> {items.get('total', items.get('count'))} item(s) in PostgreSQL")
    colours = collections.Counter()
    for _ in range(20):
        _, health = call("GET", f"{url}/health")
        colours[f"{health.get('deployment')} {health.get('version')}"] += 1
    print("colours    " + ", ".join(f"{served}: {count}/20" for served, count in colours.items()))
    print("\nnext: ansible-playbook playbooks/status.yml | bin/localcloud status | make down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
