"""localcloud.crashpoints without a cloud: segments from task banners, where a chain decides to kill, and how
a run that does not end after its Ctrl-C is ended."""

from __future__ import annotations

import random
import signal
import subprocess
import sys

from localcloud.crashpoints import Chain, CrashPoint, after_ctrl_c, processes_with, segment_of

RUN = [
    "TASK [ecs_production.platform.platform : Validating arguments against arg spec 'lock' - Take the lock] ***",
    "TASK [ecs_production.platform.platform : Take the environment's lock] **********",
    "ok: [localhost]",
    "TASK [ecs_production.platform.platform : Hand on the lock's token] ***",
    "TASK [ecs_production.platform.network : Build the network] *********************",
    "TASK [ecs_production.platform.network : VPC, subnets, routes and layered security groups] ***",
    "TASK [ecs_production.platform.secrets : Create the environment's key] ***",
    "TASK [Deploy identity - GitHub Actions' OIDC provider and the deploy role (cicd_enabled)] ***",
]


def test_segments_are_the_roles_short_names_or_the_task_outside_a_role():
    assert segment_of(RUN[1]) == "platform" and segment_of(RUN[4]) == "network"
    assert segment_of(RUN[7]) == "Deploy identity - GitHub Actions' OIDC provider and the deploy role (cicd_enabled)"
    assert segment_of("ok: [localhost]") is None


def draw(chain: Chain) -> list[CrashPoint]:
    """The points of a chain over RUN: runs (each a fresh decider) until one is not killed."""
    points = []
    for _ in range(10):
        point = next((p for p in map(chain.decider(), RUN) if p is not None), None)
        if point is None:
            return points
        points.append(point)
    raise AssertionError(f"still killed after 10 runs: {[p.describe() for p in points]}")


def test_a_chain_kills_once_in_each_segment_from_the_lock_on_then_lets_a_run_complete():
    points = draw(Chain("provision", random.Random(1), within=0.5))  # noqa: S311 - reproducible draws
    # Nothing before the lock is a target; then each segment once, in order, signals alternating.
    assert [p.segment for p in points][:3] == ["platform#1", "network#1", "secrets#1"]
    assert [p.signal for p in points[:2]] in (["SIGKILL", "SIGINT"], ["SIGINT", "SIGKILL"])
    assert all(0 <= p.delay <= 0.6 for p in points)
    # A kill after a segment's last task lands on the next segment's first banner.
    assert all(segment_of(f"TASK [x.y.{p.task}] ***") != p.segment.split("#")[0] for p in points if p.after_last)


def test_a_chain_with_the_same_seed_draws_the_same_points():
    def described(seed):
        return [p.describe() for p in draw(Chain("provision", random.Random(seed)))]  # noqa: S311 - reproducible

    assert described(7) == described(7)


def test_a_run_that_ignores_its_first_ctrl_c_gets_a_second_and_its_output_is_kept():
    # A child that prints, ignores the first SIGINT (as a hung ansible-playbook did in CI) and ends on the second.
    code = (
        "import signal, sys, time\n"
        "count = []\n"
        "def handler(*_):\n"
        "    count.append(1)\n"
        "    if len(count) == 2:\n"
        "        print('second', flush=True); sys.exit(99)\n"
        "signal.signal(signal.SIGINT, handler)\n"
        "print('started', flush=True)\n"
        "while True: time.sleep(0.05)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert process.stdout.readline() == "started\n"
    process.send_signal(signal.SIGINT)
    point = CrashPoint("provision", "network#1", "network : Build the network", 1, False, "SIGINT", 0.0)
    printed = after_ctrl_c(process, point, patience=1.0)
    assert process.returncode == 99 and "second" in printed
    assert point.note == "second Ctrl-C"


def test_a_run_that_ends_on_its_ctrl_c_needs_nothing_else():
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; print('x', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout.readline() == "x\n"
    process.send_signal(signal.SIGINT)
    point = CrashPoint("provision", "network#1", "network : Build the network", 1, False, "SIGINT", 0.0)
    after_ctrl_c(process, point, patience=10.0)
    assert process.returncode != 0 and point.note == ""


def test_processes_with_a_marker_are_found_in_another_session_and_not_once_dead():
    """A task worker of ansible-core leaves the run's process group (setsid): it is found by the marker in its
    environment, which the chain's runs set, so that a SIGKILL of the run can stop it too."""
    import os
    import signal
    import subprocess
    import sys
    import uuid

    marker = f"LOCALCLOUD_CHAIN_RUN={uuid.uuid4().hex}"
    name, value = marker.split("=", 1)
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)"], env={**os.environ, name: value}, start_new_session=True
    )
    try:
        assert processes_with(marker) == [child.pid]
        assert child.pid in processes_with(f"{name}=")
        assert processes_with(f"{name}={uuid.uuid4().hex}") == []
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert processes_with(marker) == []
