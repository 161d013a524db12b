"""gunicorn settings for items-api, all taken from the environment (see README.md).

Start from this directory: ``gunicorn -c gunicorn.conf.py "items_api:create_app()"``.

The app is preloaded: the master reads the settings, fetches the password, waits for the database
and applies migrations once, then forks the workers (each opens its own connection pool). A failure
there stops gunicorn with a non-zero exit before it accepts any traffic.

On SIGTERM (how ECS stops a task) the master stops accepting, lets each worker finish its
in-flight requests for up to ``graceful_timeout`` seconds, then exits. Keep GUNICORN_GRACEFUL_TIMEOUT
below the container's stopTimeout (30 s by default), after which ECS sends SIGKILL.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from items_api.config import ConfigError, load_server_settings  # noqa: E402 - needs the path above
from items_api.logs import logging_config  # noqa: E402

try:
    _settings = load_server_settings()
except ConfigError as exc:
    sys.exit(f"items-api: {exc}")

_host = f"[{_settings.host}]" if ":" in _settings.host else _settings.host
bind = [f"{_host}:{_settings.port}"]
workers = _settings.workers
worker_class = "gthread"
threads = _settings.threads
timeout = _settings.timeout
graceful_timeout = _settings.graceful_timeout
# Longer than the ALB's idle timeout (60 s): the load balancer, not gunicorn, closes idle
# connections, which avoids 502s from a request racing a server-side close.
keepalive = _settings.keepalive
preload_app = True
# Several gunicorns share one host in the local cloud; none needs the runtime control socket.
control_socket_disable = True
# Worker heartbeats on tmpfs: a container's /tmp can be a slow overlay filesystem.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - tmpfs, not a shared temp file

loglevel = _settings.log_level
errorlog = "-"
logconfig_dict = logging_config(_settings.log_level)
proc_name = "items-api"


def worker_exit(server, worker):  # noqa: ARG001 - gunicorn hook signature
    """Close this worker's database pool so PostgreSQL sees clean disconnects."""
    app = getattr(worker, "wsgi", None)
    database = getattr(app, "extensions", {}).get("items_api.database")
    if database is not None:
        database.close()
