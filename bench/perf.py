"""Operations benchmark: how long each playbook an operator runs takes on the local cloud, how many AWS API
calls it makes and how many tasks it runs - provision from empty, the no-op re-run, --check --diff on a
provisioned account, deploy (its waits for healthy targets apart), swap (and how soon the listener changed
after the switch step started), rollback and teardown.

    python bench/perf.py [--linear] [--show-calls]

One whole local cloud on free loopback ports (the AWS API, the data plane: app processes, load balancer,
PostgreSQL), the playbooks run against it as an operator runs them, with the project's ansible.cfg (the
Mitogen strategy where it is installed). ``--linear`` runs the same cycle again, after ``localcloud reset``,
with the plain ``ansible.builtin.linear`` strategy, and prints both tables. ``--show-calls`` prints the API
calls of each phase by action.

API calls are those the playbooks' modules made (moto's request recorder; botocore's user agent tells
them from the data plane's own). Tasks: every task the run went through / those not skipped (the
``ecs_production.platform.timeline`` callback). Figures, not assertions: the machine is shared, so compare
the rows of one run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / ".collections")]  # this repository's localcloud and collection

from ansible_collections.ecs_production.platform.plugins.callback.timeline import chart_lines  # noqa: E402

from localcloud.harness import LocalCloud, healthy_targets, listener_weights, serve_v1, wait_for  # noqa: E402
from localcloud.recorder import action_counts, ansible_calls  # noqa: E402


class ListenerWatch:
    """Polls the 443 listener's weights every ``interval`` seconds; ``changed_at`` is the wall time the
    weights were first seen to differ from what they were when the watch started."""

    def __init__(self, cloud: LocalCloud, interval: float = 0.05):
        self.cloud, self.interval = cloud, interval
        self.initial = listener_weights(cloud)
        self.changed_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and self.changed_at is None:
            if listener_weights(self.cloud) != self.initial:
                self.changed_at = time.time()
            self._stop.wait(self.interval)

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.changed_at


def run_phase(cloud: LocalCloud, playbook: str, *args: str, env: dict, watch: bool = False) -> dict:
    timeline = Path(tempfile.mkstemp(prefix="timeline-", suffix=".json")[1])
    callbacks = "ecs_production.platform.timeline,ecs_production.platform.lock_release"
    phase_env = dict(env, ANSIBLE_CALLBACKS_ENABLED=callbacks, ECS_PLATFORM_TIMELINE_PATH=str(timeline))
    watcher = ListenerWatch(cloud) if watch else None
    cloud.recorder.start()
    run = cloud.playbook(playbook, *args, env=phase_env)
    calls = ansible_calls(cloud.recorder.stop())
    changed_at = watcher.stop() if watcher else None
    if run.returncode != 0:
        sys.exit(f"{playbook} {' '.join(args)} failed:\n{run.tail(4000)}")
    recorded = json.loads(timeline.read_text())
    timeline.unlink()
    tasks = recorded["tasks"]
    result = {
        "wall": run.seconds,
        "calls": len(calls),
        "by_action": action_counts(calls),
        "tasks": len(tasks),
        "tasks_run": sum(1 for task in tasks if task["status"] != "skipped"),
        "changed": run.changed,
        "timeline": recorded,
    }
    waits = [t for t in tasks if t["action"].endswith("bluegreen_info") and t["name"].startswith("Wait until")]
    result["waits"] = sum(t["duration"] or 0 for t in waits)
    switch = next((t for t in tasks if t["action"].endswith("traffic_switch") and t["name"].startswith("Send ")), None)
    if changed_at and switch:
        result["switch_latency"] = changed_at - (recorded["started"] + switch["start"])
    return result


def cycle(cloud: LocalCloud, env: dict) -> list[tuple[str, dict]]:
    rows = [("provision from empty", run_phase(cloud, "provision", env=env))]
    rows.append(("provision no-op re-run", run_phase(cloud, "provision", env=env)))
    rows.append(("--check --diff, provisioned", run_phase(cloud, "provision", "--check", "--diff", env=env)))
    serve_v1(cloud)
    cloud.cli("publish", "v2")
    rows.append(("deploy v2", run_phase(cloud, "deploy", "-e", "version=v2", env=env)))
    wait_for(lambda: healthy_targets(cloud, "green") >= 2, timeout=120, what="green healthy")
    rows.append(("swap -e color=green", run_phase(cloud, "swap", "-e", "color=green", env=env, watch=True)))
    rows.append(("rollback", run_phase(cloud, "rollback", env=env, watch=True)))
    rows.append(("teardown", run_phase(cloud, "teardown", env=env)))
    return rows


def print_table(title: str, rows: list[tuple[str, dict]], show_calls: bool) -> None:
    print(f"\n{title}")
    print(f"{'operation':<28} {'wall s':>7} {'API calls':>9} {'tasks':>11} {'changed':>7}  notes")
    for label, r in rows:
        notes = []
        if r["waits"]:
            notes.append(f"waits {r['waits']:.1f} s, the rest {r['wall'] - r['waits']:.1f} s")
        if "switch_latency" in r:
            notes.append(f"listener changed {r['switch_latency']:.2f} s after the switch step started")
        tasks = f"{r['tasks_run']}/{r['tasks']}"
        print(f"{label:<28} {r['wall']:>7.1f} {r['calls']:>9} {tasks:>11} {r['changed']:>7}  {'; '.join(notes)}")
        if show_calls:
            print("    " + ", ".join(f"{action} {n}" for action, n in r["by_action"].most_common()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--linear", action="store_true", help="also run the cycle with the plain linear strategy")
    parser.add_argument("--show-calls", action="store_true", help="print each phase's API calls by action")
    parser.add_argument("--json", type=Path, help="also write the figures (and timelines) to this file")
    parser.add_argument("--timeline", action="store_true", help="print provision-from-empty's timeline (longest tasks)")
    args = parser.parse_args()
    cloud = LocalCloud(record=True)
    cloud.up()
    results = {}
    try:
        print(f"local cloud {cloud.endpoint_url}, state {cloud.state_dir}")
        results["default"] = cycle(cloud, {})
        print_table(
            "project default (ansible.cfg: ecs_production.platform.fast_linear)", results["default"], args.show_calls
        )
        if args.timeline:
            recorded = results["default"][0][1]["timeline"]
            print("\nprovision from empty, its 25 longest tasks:")
            print("\n".join(chart_lines(recorded["tasks"], recorded["duration"])))
        if args.linear:
            cloud.cli("reset")
            results["linear"] = cycle(cloud, {"ANSIBLE_STRATEGY": "ansible.builtin.linear"})
            print_table("ANSIBLE_STRATEGY=ansible.builtin.linear", results["linear"], args.show_calls)
    finally:
        cloud.down()
    if args.json:
        args.json.write_text(
            json.dumps(
                {k: [(label, {**r, "by_action": dict(r["by_action"])}) for label, r in v] for k, v in results.items()},
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
