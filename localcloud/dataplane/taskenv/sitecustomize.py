"""Loaded by every task process of the local cloud (its PYTHONPATH starts with this directory).

What a container gets from its own ``/etc/hosts``: the names in the file that
``LOCALCLOUD_HOSTS_FILE`` points to (the RDS endpoints) resolve to the local servers; every other
name goes to the system resolver. See ``localcloud/dataplane/hosts.py``, loaded here by path so
that the task needs nothing of the ``localcloud`` package on its path.
"""

import importlib.util
import os

_hosts_file = os.environ.get("LOCALCLOUD_HOSTS_FILE")
if _hosts_file:
    _spec = importlib.util.spec_from_file_location(
        "_localcloud_hosts", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hosts.py")
    )
    _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
    _module.install(_hosts_file)
