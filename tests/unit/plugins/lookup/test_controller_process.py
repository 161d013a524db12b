"""Unit tests for the controller_process lookup: the ansible-playbook process, not the task's worker."""

from __future__ import annotations

import multiprocessing
import os

import pytest
from ansible.errors import AnsibleError
from ansible_collections.ecs_production.platform.plugins.lookup import controller_process as cp
from ansible_collections.ecs_production.platform.plugins.module_utils import process


def lookup():
    return cp.LookupModule()


def test_in_the_main_process_it_is_this_process():
    (found,) = lookup().run([], variables={})
    assert found == {"host": process.this_host(), "pid": os.getpid(), "started": process.start_time(os.getpid())}


def report_from_worker(queue):
    queue.put(cp.controller_process())


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_in_a_forked_worker_it_is_the_process_that_started_the_worker(method):
    # ansible-playbook runs each task (and its lookups) in a worker process it starts.
    context = multiprocessing.get_context(method)
    queue = context.Queue()
    worker = context.Process(target=report_from_worker, args=(queue,))
    worker.start()
    found = queue.get(timeout=30)
    worker.join()
    assert found["pid"] == os.getpid() != worker.pid
    assert found["started"] == process.start_time(os.getpid())
    assert found["host"] == process.this_host()


def test_it_takes_no_terms():
    with pytest.raises(AnsibleError, match="takes no terms"):
        lookup().run(["something"], variables={})
