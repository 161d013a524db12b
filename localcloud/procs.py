"""The live processes of this machine whose environment or command line says whose they are.

Everything the local cloud starts carries ``LOCALCLOUD_OWNER=<state dir>`` in its environment, and each run of
a crash chain ``LOCALCLOUD_CHAIN_RUN=<id>``, which a process's children inherit even when they leave its
process group (ansible-core's task workers call ``setsid``). ``/proc`` is read as text; a process that ends
while it is read, or a zombie, is left out.
"""

from __future__ import annotations

import os
from collections.abc import Callable


def live_processes(matches: Callable[[list[bytes], bytes], bool]) -> list[int]:
    """Pids of the live processes (this one and zombies excluded) for which ``matches(environment entries,
    command line)`` is true."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                if stat.read().rsplit(")", 1)[-1].split()[0] == "Z":
                    continue
            with open(f"/proc/{entry}/environ", "rb") as environ:
                variables = environ.read().split(b"\0")
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read()
        except OSError:
            continue
        if matches(variables, command):
            found.append(int(entry))
    return found


def with_environment(entry: str) -> list[int]:
    """Live processes with ``NAME=value`` in their environment (``NAME=`` for any value)."""
    wanted = entry.encode()
    return live_processes(lambda variables, _command: any(v.startswith(wanted) for v in variables))
