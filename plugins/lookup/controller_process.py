# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
name: controller_process
version_added: 0.1.0
short_description: The ansible-playbook process running this play - host, process id and start time
description:
  - Returns the host name, the process id and the start time of the ansible-playbook (or ansible) process that
    runs the play, as one dictionary.
  - Lookups run on the controller, in a worker process that ansible-playbook forks for the task; the process
    returned is the one that started the worker (the ansible-playbook process itself), which lives as long as
    the run, not the worker, which ends with the task.
  - The start time is field 22 of C(/proc/<pid>/stat) (clock ticks after boot), so that a process id given
    later to another process is not taken for this one. It is V(null) where there is no C(/proc).
  - M(ecs_production.platform.environment_lock) records these in the lock it takes
    (O(ecs_production.platform.environment_lock#module:holder_host),
    O(ecs_production.platform.environment_lock#module:holder_pid),
    O(ecs_production.platform.environment_lock#module:holder_started)), so that a run on the same host can
    tell that the holder is gone and take the lock over at once.
  - Takes no terms and no options.
author:
  - ecs_production.platform contributors (@ecs-production)
seealso:
  - module: ecs_production.platform.environment_lock
"""

EXAMPLES = r"""
- name: Take the lock, naming this run's process
  ecs_production.platform.environment_lock:
    name: /myapp/prod/lock
    holder_host: "{{ controller.host }}"
    holder_pid: "{{ controller.pid }}"
    holder_started: "{{ controller.started }}"
  vars:
    controller: "{{ lookup('ecs_production.platform.controller_process') }}"
"""

RETURN = r"""
_raw:
  description: One dictionary describing the ansible-playbook process.
  type: list
  elements: dict
  contains:
    host:
      description: The controller's host name (C(socket.gethostname())).
      type: str
      sample: deploy-host
    pid:
      description: The process id of the ansible-playbook process.
      type: int
      sample: 41234
    started:
      description: Its start time, field 22 of C(/proc/<pid>/stat) in clock ticks after boot; V(null) without C(/proc).
      type: str
      sample: "8812345"
"""

import multiprocessing
import os

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

from ansible_collections.ecs_production.platform.plugins.module_utils.process import start_time
from ansible_collections.ecs_production.platform.plugins.module_utils.process import this_host


def controller_pid() -> int:
    """The ansible-playbook process: this process's parent when running in a forked task worker."""
    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None and parent.pid else os.getpid()


def controller_process() -> dict:
    pid = controller_pid()
    return {"host": this_host(), "pid": pid, "started": start_time(pid)}


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        if terms:
            raise AnsibleError("lookup('ecs_production.platform.controller_process') takes no terms")
        self.set_options(var_options=variables, direct=kwargs)
        return [controller_process()]
