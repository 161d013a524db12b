# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Which process holds the environment lock, and whether it still runs.

A process is named by its host, its id and its start time (field 22 of ``/proc/<pid>/stat``, in clock ticks
after boot), so that a process id the kernel gave to another process since is not taken for the holder.
Used by the ``controller_process`` lookup (which names the ansible-playbook process) and by the
``environment_lock`` module (which decides whether a holder on its own host is gone).
"""

import os
import socket
from typing import Optional

ALIVE = "alive"
GONE = "gone"  # no such process, or the id now names a process started at another time
UNKNOWN = "unknown"  # another host, or not enough recorded to tell


def this_host() -> str:
    return socket.gethostname()


def start_time(pid: int) -> Optional[str]:
    """Field 22 (starttime) of /proc/<pid>/stat, or None when there is no such process or no /proc."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as stat:
            text = stat.read()
    except OSError:
        return None
    # Field 2 (comm) is in parentheses and may hold spaces or parentheses: split after the last ')'.
    fields = text[text.rfind(")") + 2 :].split()
    # fields[0] is field 3 (state), so field 22 is fields[19].
    return fields[19] if len(fields) > 19 else None


def exists(pid: int) -> bool:
    """Whether a process with this id exists on this host (signal 0: nothing is sent)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except OSError:
        return True
    return True


def holder_state(host: Optional[str], pid: Optional[int], started: Optional[str]) -> str:
    """ALIVE, GONE or UNKNOWN for the process recorded as the holder, seen from this host."""
    if not host or not pid or host != this_host():
        return UNKNOWN
    if not exists(pid):
        return GONE
    if started and os.path.isdir("/proc"):
        current = start_time(pid)
        if current is None:
            return GONE  # it ended between the two looks
        if current != str(started):
            return GONE  # the id was reused by a process started later
    return ALIVE
