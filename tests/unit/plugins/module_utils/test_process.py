"""Unit tests for module_utils/process.py: naming a process by host, id and start time, and telling whether
the holder of a lock is gone."""

from __future__ import annotations

import os
import subprocess
import sys

from ansible_collections.ecs_production.platform.plugins.module_utils import process


def a_dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_start_time_is_field_22_of_proc_stat():
    with open(f"/proc/{os.getpid()}/stat", encoding="utf-8") as stat:
        expected = stat.read().rsplit(")", 1)[1].split()[19]
    assert process.start_time(os.getpid()) == expected


def test_start_time_survives_a_command_name_with_spaces_and_parentheses(tmp_path):
    odd = tmp_path / "a (b) c"
    odd.symlink_to(sys.executable)
    child = subprocess.Popen([str(odd), "-c", "import time; time.sleep(5)"])
    try:
        started = process.start_time(child.pid)
        assert started is not None and started.isdigit()
        assert int(started) >= int(process.start_time(os.getpid()))
    finally:
        child.kill()
        child.wait()


def test_no_start_time_for_a_process_that_is_gone():
    assert process.start_time(a_dead_pid()) is None


def test_a_running_process_on_this_host_is_alive():
    me = os.getpid()
    assert process.holder_state(process.this_host(), me, process.start_time(me)) == process.ALIVE
    assert process.holder_state(process.this_host(), me, None) == process.ALIVE  # no start time recorded


def test_a_process_that_ended_is_gone():
    assert process.holder_state(process.this_host(), a_dead_pid(), "12345") == process.GONE


def test_a_reused_process_id_is_gone():
    me = os.getpid()
    earlier = str(int(process.start_time(me)) - 1)
    assert process.holder_state(process.this_host(), me, earlier) == process.GONE


def test_another_hosts_process_or_none_recorded_is_unknown():
    assert process.holder_state("some-other-host", a_dead_pid(), "1") == process.UNKNOWN
    assert process.holder_state(None, a_dead_pid(), "1") == process.UNKNOWN
    assert process.holder_state(process.this_host(), None, None) == process.UNKNOWN


def test_someone_elses_process_exists():
    assert process.exists(1)  # init: signal 0 to it is refused (or allowed as root), but it exists
    assert not process.exists(0) and not process.exists(-1)
