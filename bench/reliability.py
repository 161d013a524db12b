"""Reliability figures: wrong inputs refused before any AWS call, security violations the audit
catches, and writes that survive a database crash and a teardown/restore round trip.

    python bench/reliability.py [--inputs 40] [--violations 6] [--writes-seconds 6] [--items 25]

What runs, all on loopback:

* **inputs**: a local AWS API of its own; ``--inputs`` cases of the input matrix
  (``localcloud.inputs``: one wrong value of every variable of every role's argument specs, and the
  operator's short ``-e`` names), evenly spread over the sorted list (``0``: all of them, about 170),
  two at a time. A case is refused when the run fails naming the variable before any task that calls
  AWS starts; the API's request count before and after says how many AWS calls they made in all.
* then a local cloud of its own (``provisioned_cloud()``: the AWS API, the data plane, the platform
  provisioned, v1 on blue), and on it:
* **audit**: ``playbooks/audit.yml`` on the fresh environment (its rules, and how many passed), then
  ``--violations`` of the injected violations (``localcloud.audit_cases``, one per rule first; ``0``: all
  15): each is injected through the API, the audit run, the violation undone; caught when the audit
  fails naming the rule and the resource;
* **database kill**: POST /items through the HTTPS listener at 10/s; ``kill -9`` of the database's
  postmaster; writes go on until the data plane has restarted it and the service acknowledges writes
  again, plus ``--writes-seconds``; then every acknowledged item is read back;
* **snapshot round trip**: ``--items`` items written through the listener, ``teardown.yml`` keeping the
  final snapshot, ``provision.yml -e rds_restore_from_snapshot=latest``, v1 published again; every
  item read back.

Figures only, no assertions. Prints a table and writes ``tests/output/reliability_figures.json``.
About 6 to 8 minutes on two shared cores with the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this repository's localcloud package

from localcloud.audit_cases import CASES, violation_problems  # noqa: E402 - after the path is set
from localcloud.awsapi import AwsApiProcess  # noqa: E402
from localcloud.harness import PREFIX, provisioned_cloud, request, serve_v1, wait_for  # noqa: E402
from localcloud.inputs import cases, refusal_problems  # noqa: E402

OUTPUT = REPO / "tests" / "output" / "reliability_figures.json"
WRITE_RATE = 10.0  # POST /items per second during the database kill


def spread(items: list, count: int) -> list:
    """``count`` items evenly spread over ``items`` (all of them for 0 or more than there are)."""
    if count <= 0 or count >= len(items):
        return list(items)
    return [items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)] if count > 1 else items[:1]


def inputs_figures(sample: int) -> dict:
    tried = spread(cases(), sample)
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        api = AwsApiProcess(Path(tmp) / "awsapi.log", start_timeout=180)  # a busy machine starts it slowly
        try:
            started, before = time.monotonic(), api.request_count()
            with ThreadPoolExecutor(max_workers=2) as pool:
                results = list(pool.map(lambda case: refusal_problems(api, *case), tried))
            requests = api.request_count() - before
        finally:
            api.stop()
    refused = sum(1 for problems in results if not problems)
    return {
        "inputs_in_the_matrix": len(cases()),
        "inputs_tried": len(tried),
        "inputs_refused_naming_the_variable": refused,
        "inputs_aws_requests": requests,
        "inputs_refused_with_zero_api_calls": refused if requests == 0 else None,
        "inputs_seconds": round(time.monotonic() - started, 1),
        "inputs_not_refused": [f"{c[0]} {json.dumps(c[1])}" for c, p in zip(tried, results, strict=True) if p],
    }


def audit_figures(cloud, sample: int) -> dict:
    started = time.monotonic()
    clean = cloud.playbook("audit")
    passed = next((line.strip() for line in clean.stdout.splitlines() if "rules passed" in line), "")
    first_per_rule = list({case[0]: case for case in CASES}.values())
    ordered = first_per_rule + [case for case in CASES if case not in first_per_rule]
    tried = ordered if sample <= 0 else ordered[:sample]
    missed = []
    for case in tried:
        problems = violation_problems(cloud, *case)
        if problems:
            missed.append(problems[0].splitlines()[0])
    return {
        "audit_rules": len({case[0] for case in CASES}),
        "audit_fresh_environment": passed or f"the audit failed (rc {clean.returncode})",
        "audit_violations_injected": len(tried),
        "audit_violations_caught": len(tried) - len(missed),
        "audit_violations_in_all": len(CASES),
        "audit_missed": missed,
        "audit_seconds": round(time.monotonic() - started, 1),
    }


class Writes:
    """POST /items at ``rate`` per second from two threads; each outcome (sent, status, item)."""

    def __init__(self, base_url: str, rate: float):
        self.base_url, self.period = base_url, 2 / rate
        self.outcomes: list[tuple[float, int | None, dict]] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(2)]

    def run(self, index: int) -> None:
        n = 0
        while not self.stop.wait(self.period):
            n += 1
            name = f"reliability {index}-{n} {time.time():.3f}"
            sent = time.monotonic()
            try:
                status, item, _ = request("POST", f"{self.base_url}/items", {"name": name}, timeout=5)
            except OSError:
                status, item = None, {}
            with self.lock:
                self.outcomes.append((sent, status, dict(item, name=name)))

    def __enter__(self) -> Writes:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(15)


def present(base_url: str, items: list[dict]) -> int:
    found = 0
    for item in items:
        status, body, _ = request("GET", f"{base_url}/items/{item['id']}")
        found += status == 200 and body.get("name") == item["name"]
    return found


def database_kill_figures(cloud, extra_seconds: float) -> dict:
    (database,) = cloud.status()["databases"]
    with Writes(cloud.https, WRITE_RATE) as writes:
        time.sleep(3)
        os.kill(database["pid"], signal.SIGKILL)  # the local cloud's own postmaster, by its pid
        killed = time.monotonic()

        def back() -> bool:
            found = next(iter(cloud.status()["databases"]), {})
            return found.get("state") == "available" and found.get("pid") not in (None, database["pid"])

        wait_for(back, timeout=60, interval=0.25, what="the database restarted")
        available = time.monotonic() - killed
        wait_for(
            lambda: any(s == 201 and sent > killed + available for sent, s, _ in list(writes.outcomes)),
            timeout=60,
            interval=0.2,
            what="a write acknowledged after the restart",
        )
        answering = time.monotonic() - killed
        time.sleep(extra_seconds)
    acknowledged = [item for _, status, item in writes.outcomes if status == 201]
    return {
        "db_kill_writes_sent": len(writes.outcomes),
        "db_kill_writes_acknowledged": len(acknowledged),
        "db_kill_writes_present": present(cloud.https, acknowledged),
        "db_kill_available_again_seconds": round(available, 2),
        "db_kill_service_answers_again_seconds": round(answering, 2),
    }


def snapshot_figures(cloud, count: int) -> dict:
    written = []
    for i in range(count):
        name = f"snapshot round trip {i} {time.time():.3f}"
        status, item, _ = request("POST", f"{cloud.https}/items", {"name": name})
        if status == 201:
            written.append(dict(item, name=name))
    started = time.monotonic()
    teardown = cloud.playbook("teardown", "-e", '{"rds_skip_final_snapshot": false}')
    torn_down = time.monotonic() - started
    provision = cloud.playbook("provision", "-e", "rds_restore_from_snapshot=latest")
    if teardown.returncode == 0 and provision.returncode == 0:
        serve_v1(cloud)
    restored = time.monotonic() - started
    snapshots = cloud.client("rds").describe_db_snapshots(DBInstanceIdentifier=f"{PREFIX}-db", SnapshotType="manual")
    return {
        "snapshot_items_acknowledged": len(written),
        "snapshot_items_present": present(cloud.https, written) if provision.returncode == 0 else 0,
        "snapshot_teardown_rc": teardown.returncode,
        "snapshot_provision_rc": provision.returncode,
        "snapshot_kept": [s["DBSnapshotIdentifier"] for s in snapshots["DBSnapshots"]],
        "snapshot_teardown_seconds": round(torn_down, 1),
        "snapshot_serving_again_seconds": round(restored, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=40, help="cases of the input matrix to try (0: all)")
    parser.add_argument("--violations", type=int, default=6, help="audit violations to inject (0: all 15)")
    parser.add_argument("--writes-seconds", type=float, default=6.0, help="writes after the service is back")
    parser.add_argument("--items", type=int, default=25, help="items through the snapshot round trip")
    args = parser.parse_args()

    started = time.monotonic()
    figures = inputs_figures(args.inputs)
    print(
        f"inputs: {figures['inputs_refused_naming_the_variable']} of {figures['inputs_tried']} refused, "
        f"{figures['inputs_aws_requests']} AWS requests",
        flush=True,
    )
    cloud = provisioned_cloud()
    try:
        figures.update(audit_figures(cloud, args.violations))
        print(
            f"audit: {figures['audit_violations_caught']} of {figures['audit_violations_injected']} caught", flush=True
        )
        figures.update(database_kill_figures(cloud, args.writes_seconds))
        figures.update(snapshot_figures(cloud, args.items))
    finally:
        cloud.down(remove=True)
    figures["bench_seconds"] = round(time.monotonic() - started, 1)

    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(figures, indent=2) + "\n")
    rows = [
        ("wrong inputs tried (of the matrix)", f"{figures['inputs_tried']} (of {figures['inputs_in_the_matrix']})"),
        ("  refused naming the variable", figures["inputs_refused_naming_the_variable"]),
        ("  AWS API calls they made", figures["inputs_aws_requests"]),
        ("audit rules", figures["audit_rules"]),
        ("  on a fresh provision", figures["audit_fresh_environment"]),
        (
            "  violations injected / caught",
            f"{figures['audit_violations_injected']} / {figures['audit_violations_caught']}",
        ),
        (
            "db kill -9: writes acknowledged / present",
            f"{figures['db_kill_writes_acknowledged']} / {figures['db_kill_writes_present']}",
        ),
        (
            "  available again / service answers (s)",
            f"{figures['db_kill_available_again_seconds']} / {figures['db_kill_service_answers_again_seconds']}",
        ),
        (
            "snapshot round trip: items acknowledged / present",
            f"{figures['snapshot_items_acknowledged']} / {figures['snapshot_items_present']}",
        ),
        (
            "  teardown / serving again (s)",
            f"{figures['snapshot_teardown_seconds']} / {figures['snapshot_serving_again_seconds']}",
        ),
        ("bench (s)", figures["bench_seconds"]),
    ]
    width = max(len(label) for label, _ in rows)
    print()
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    for name in ("inputs_not_refused", "audit_missed"):
        for line in figures[name]:
            print(f"{name}: {line}")
    print(f"\nwritten to {OUTPUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
