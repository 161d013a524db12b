# Copyright: Contributors to the ecs_production.platform collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: timeline
type: aggregate
short_description: A per-task timeline of a playbook run - when each task started, how long it took
version_added: 0.1.0
description:
  - Records, for every task of the run, when it started (seconds after the playbook started), how long it took,
    its action, its role and how it ended (ok, changed, skipped, failed). An asynchronous task
    (C(async)/C(poll 0)) shows as started and returned at once; the C(async_status) task that waits for it
    shows the wait.
  - Writes the timeline as JSON to O(path) at the end of the run, and with O(show) prints it as a text chart
    of the tasks that took longest, so that what runs in parallel and what the run waits for can be seen.
  - Enable it with C(callbacks_enabled = ecs_production.platform.timeline) or
    C(ANSIBLE_CALLBACKS_ENABLED=ecs_production.platform.timeline); it adds no output unless O(show) is set.
requirements:
  - enabled in callbacks_enabled
options:
  path:
    description:
      - File to write the timeline to, as JSON - C(started) (epoch seconds), C(duration) and C(tasks), each with
        C(name), C(action), C(role), C(start), C(duration), C(status) and C(async).
    type: path
    env:
      - name: ECS_PLATFORM_TIMELINE_PATH
    ini:
      - section: callback_timeline
        key: path
  show:
    description: Print the timeline's longest tasks as a chart at the end of the run.
    type: bool
    default: false
    env:
      - name: ECS_PLATFORM_TIMELINE_SHOW
    ini:
      - section: callback_timeline
        key: show
  rows:
    description: How many tasks the chart shows (the longest ones, in the order they ran).
    type: int
    default: 25
    env:
      - name: ECS_PLATFORM_TIMELINE_ROWS
    ini:
      - section: callback_timeline
        key: rows
"""

import json
import time

from ansible.plugins.callback import CallbackBase

CHART_WIDTH = 50


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "ecs_production.platform.timeline"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._start = time.time()
        self._open = {}  # task uuid -> row
        self.rows = []

    def v2_playbook_on_start(self, playbook):  # noqa: ARG002 - the callback's signature
        self._start = time.time()

    def v2_playbook_on_task_start(self, task, is_conditional):  # noqa: ARG002 - the callback's signature
        name = task.get_name()  # "<role> : <name>" in a role: the role has its own column
        row = {
            "name": name.split(" : ", 1)[1] if task._role and " : " in name else name,
            "action": task.action,
            "role": task._role.get_name() if task._role else "",
            "start": round(time.time() - self._start, 3),
            "duration": None,
            "status": "running",
            "async": bool(getattr(task, "async_val", 0)) and not getattr(task, "poll", 1),
        }
        self._open[task._uuid] = row
        self.rows.append(row)

    def _finish(self, result, status):
        row = self._open.get(result._task._uuid)
        if row is None:
            return
        row["duration"] = round(time.time() - self._start - row["start"], 3)
        # A loop's items report one by one: the task ends with its last item, worst status kept.
        order = ["running", "skipped", "ok", "changed", "failed"]
        if order.index(status) >= order.index(row["status"]) or row["status"] == "running":
            row["status"] = status

    def v2_runner_on_ok(self, result):
        self._finish(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._finish(result, "ok" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result):
        self._finish(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._finish(result, "failed")

    def v2_playbook_on_stats(self, stats):  # noqa: ARG002 - the callback's signature
        duration = round(time.time() - self._start, 3)
        path = self.get_option("path")
        if path:
            with open(path, "w") as out:
                json.dump({"started": self._start, "duration": duration, "tasks": self.rows}, out, indent=1)
        if self.get_option("show"):
            self._display.display(self.chart(duration))

    def chart(self, duration):
        return "\n".join(chart_lines(self.rows, duration, self.get_option("rows")))


def chart_lines(tasks, duration, rows=25):
    """The longest ``rows`` tasks of a timeline, in the order they ran, each as a bar on the run's time axis."""
    done = [task for task in tasks if task["duration"] is not None]
    longest = sorted(done, key=lambda task: task["duration"], reverse=True)[:rows]
    scale = CHART_WIDTH / max(duration, 0.001)
    run = sum(1 for task in done if task["status"] != "skipped")
    lines = [f"TIMELINE {duration:.1f} s, {len(done)} tasks ({run} run)"]
    for task in sorted(longest, key=lambda task: task["start"]):
        offset = int(task["start"] * scale)
        width = max(1, int(task["duration"] * scale))
        chart_bar = " " * offset + "#" * width
        label = f"{task['role'].split('.')[-1] + ' : ' if task['role'] else ''}{task['name']}"[:60]
        lines.append(f"{task['start']:7.1f} {task['duration']:6.1f}  {chart_bar:<{CHART_WIDTH + 1}} {label}")
    return lines
