"""Benchmark blue/green on the local cloud: how long the playbooks take, how soon a listener change
reaches the traffic, and what a swap costs the requests in flight.

    python bench/bluegreen.py [--rate 100] [--window 20] [--switches 6] [--bake 5]

What runs, all on loopback: a local cloud of its own (``provisioned_cloud()``: the AWS API, the data
plane, the platform provisioned, v1 on blue), v2 published and deployed to green. A load generator in
a process of its own (``localcloud.loadgen``) sends ``--rate`` GETs per second (``/`` and
``/items?limit=5`` in turn) through the HTTPS listener for the whole run, one record per request.
Then, under that load:

* ``--window`` seconds before anything moves, ``swap.yml -e color=green`` (one step), a window after
  it, ``rollback.yml``, a window, ``swap.yml -e color=green -e canary=10,50,100 -e bake_seconds=--bake``,
  a window: the wall time of each playbook, and per phase the requests, the failed ones (connection
  errors or non-2xx), p50/p99 latency and the colours that answered;
* ``--switches`` times, the listener change itself, made directly with boto3 ``modify_listener`` (what
  the traffic_switch module calls): the time from the call to the first response from the new colour
  (the records of the load, so the resolution is 1/rate).

Figures only, no assertions. Prints a table and writes ``tests/output/bluegreen_figures.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this repository's localcloud package

from localcloud.harness import (  # noqa: E402 - after the path is set
    healthy_targets,
    listener_weights,
    provisioned_cloud,
    set_listener_weights,
    wait_for,
)
from localcloud.loadgen import percentile, start_load  # noqa: E402

OUTPUT = REPO / "tests" / "output" / "bluegreen_figures.json"


def phase_figures(name: str, records: list[dict], start: float, end: float) -> dict:
    window = [r for r in records if start <= r["t"] < end]
    latencies = [r["latency"] for r in window if not r["error"]]
    failed = [r for r in window if r["error"] or not (200 <= (r["status"] or 0) < 300)]
    colours: dict[str, int] = {}
    for r in window:
        colours[r["color"] or "-"] = colours.get(r["color"] or "-", 0) + 1
    return {
        "phase": name,
        "seconds": round(end - start, 1),
        "requests": len(window),
        "rate": round(len(window) / (end - start), 1) if end > start else None,
        "failed": len(failed),
        "failed_examples": failed[:3],
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1) if latencies else None,
        "colours": colours,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100, help="requests per second of the load (at most 200)")
    parser.add_argument("--window", type=float, default=20, help="seconds of steady traffic before/after each change")
    parser.add_argument("--switches", type=int, default=6, help="direct listener changes timed (at most 20)")
    parser.add_argument("--bake", type=int, default=5, help="bake seconds of the canary swap")
    args = parser.parse_args(argv)
    args.switches = max(1, min(args.switches, 20))
    args.window = max(3.0, min(args.window, 120.0))

    figures: dict = {"machine": {"cpus": os.cpu_count()}, "rate": args.rate, "playbooks": {}, "phases": []}
    started = time.monotonic()
    print("bench/bluegreen.py: provisioning a local cloud (about 2 minutes) ...", flush=True)
    cloud = provisioned_cloud()
    load = None
    load_dir = Path(tempfile.mkdtemp(prefix="bg-bench-", dir="/tmp"))
    try:
        figures["provision_s"] = round(time.monotonic() - started, 1)
        cloud.cli("publish", "v2")
        load = start_load(cloud.https, load_dir / "load.jsonl", rate=args.rate)
        marks: list[tuple[str, float, float]] = []  # (phase, start, end), wall times

        def playbook(name: str, label: str, *extra: str) -> None:
            start = time.time()
            run = cloud.playbook(name, *extra)
            end = time.time()
            if run.returncode != 0:
                raise SystemExit(f"{label} failed:\n{run.tail()}")
            figures["playbooks"][label] = round(end - start, 1)
            marks.append((label, start, end))
            print(f"  {label:<40} {end - start:6.1f} s", flush=True)

        def steady(label: str) -> None:
            start = time.time()
            time.sleep(args.window)
            marks.append((label, start, time.time()))

        playbook("deploy", "deploy.yml -e version=v2 (to green)", "-e", "version=v2")
        steady("before the swap (blue)")
        playbook("swap", "swap.yml -e color=green", "-e", "color=green")
        steady("after the swap (green)")
        playbook("rollback", "rollback.yml")
        steady("after the rollback (blue)")
        playbook(
            "swap",
            f"swap.yml canary=10,50,100 bake={args.bake}",
            "-e",
            "color=green",
            "-e",
            "canary=10,50,100",
            "-e",
            f"bake_seconds={args.bake}",
        )
        steady("after the canary swap (green)")

        # The listener change alone, as traffic_switch makes it.
        wait_for(lambda: healthy_targets(cloud, "blue") >= 2, timeout=60, what="blue healthy")
        switches = []
        switch_start = time.time()
        for i in range(args.switches):
            new = "blue" if listener_weights(cloud)["green"] == 100 else "green"
            old = "green" if new == "blue" else "blue"
            called = time.time()
            set_listener_weights(cloud, {new: 100, old: 0})
            returned = time.time()
            first = wait_for(
                lambda new=new, called=called: next(
                    (r for r in load.records() if r["t"] >= called and r["color"] == new), None
                ),
                timeout=15,
                interval=0.05,
                what=f"the first answer from {new} (switch {i + 1})",
            )
            # Every answer sent later than 1 s after the call comes from the new colour?
            time.sleep(2.0)
            late_old = [r for r in load.records() if called + 1.0 <= r["t"] <= called + 2.0 and r["color"] == old]
            switches.append(
                {
                    "to": new,
                    "api_call_ms": round((returned - called) * 1000, 1),
                    "first_new_response_ms": round((first["t_end"] - called) * 1000, 1),
                    "first_new_request_sent_ms": round((first["t"] - called) * 1000, 1),
                    "old_colour_answers_after_1s": len(late_old),
                }
            )
        marks.append(("direct listener switches", switch_start, time.time()))
        firsts = [s["first_new_response_ms"] for s in switches]
        figures["switch"] = {
            "count": len(switches),
            "first_new_response_ms_median": round(statistics.median(firsts), 1),
            "first_new_response_ms_min": min(firsts),
            "first_new_response_ms_max": max(firsts),
            "api_call_ms_median": round(statistics.median(s["api_call_ms"] for s in switches), 1),
            "each": switches,
        }
    finally:
        records = load.stop() if load is not None else []
        shutil.rmtree(load_dir, ignore_errors=True)
        print("bench/bluegreen.py: bringing the local cloud down ...", flush=True)
        cloud.down(remove=True)

    for label, start, end in marks:
        figures["phases"].append(phase_figures(label, records, start, end))
    figures["total"] = phase_figures(
        "whole run", records, min(r["t"] for r in records), max(r["t"] for r in records) + 1e-3
    )
    figures["wall_s"] = round(time.monotonic() - started, 1)

    print(f"\nLoad: {args.rate:g} req/s through the local ALB (HTTPS, keep-alive), GET / and /items?limit=5")
    print(f"{'phase':<40} {'s':>6} {'req':>6} {'req/s':>6} {'failed':>6} {'p50 ms':>7} {'p99 ms':>7}  colours")
    for p in [*figures["phases"], figures["total"]]:
        colours = ", ".join(f"{c} {n}" for c, n in sorted(p["colours"].items()))
        p50, p99 = ("-" if v is None else v for v in (p["p50_ms"], p["p99_ms"]))
        print(
            f"{p['phase']:<40} {p['seconds']:>6} {p['requests']:>6} {p['rate'] or 0:>6} {p['failed']:>6} "
            f"{p50:>7} {p99:>7}  {colours}"
        )
    s = figures["switch"]
    print(
        f"\nListener change (modify_listener) -> first response from the new colour: median "
        f"{s['first_new_response_ms_median']} ms (min {s['first_new_response_ms_min']}, max "
        f"{s['first_new_response_ms_max']}, {s['count']} switches; the call itself {s['api_call_ms_median']} ms; "
        f"resolution {1000 / args.rate:.0f} ms)"
    )
    print(f"Wall: provision {figures['provision_s']} s, whole bench {figures['wall_s']} s")
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print(f"Figures: {OUTPUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
