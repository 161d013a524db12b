"""Structured JSON logs: one object per line on stdout/stderr, which CloudWatch Logs ingests as is.

Application records carry the id of the request being served. gunicorn's access records are turned
into fields from its log atoms, with the request id taken from the response's ``X-Request-ID``
header (set by the app), so an access line and the app's lines for one request share an id.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

REQUEST_ID_HEADER = "X-Request-ID"

# Loggers that could print request or response bodies at DEBUG, and so the SSM password: they stay
# at WARNING whatever LOG_LEVEL says.
QUIET_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer")

_ACCESS_FIELDS = {
    "h": "remote_addr",
    "m": "method",
    "U": "path",
    "q": "query",
    "H": "protocol",
    "s": "status",
    "B": "bytes",
    "a": "user_agent",
    "{x-forwarded-for}i": "forwarded_for",
}


def current_request_id() -> str | None:
    """The id of the request being served by this thread, if any."""
    try:
        from flask import g, has_request_context
    except ImportError:  # pragma: no cover - flask is a dependency
        return None
    if has_request_context():
        return g.get("request_id")
    return None


class JsonFormatter(logging.Formatter):
    """Format records as single-line JSON objects."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if record.name == "gunicorn.access" and isinstance(record.args, dict):
            entry.update(self._access_fields(record.args))
        else:
            entry["message"] = record.getMessage()
            request_id = getattr(record, "request_id", None) or current_request_id()
            if request_id:
                entry["request_id"] = request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        entry["pid"] = record.process
        return json.dumps(entry, ensure_ascii=False, default=str)

    @staticmethod
    def _access_fields(atoms: dict[str, Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {"message": "request"}
        for atom, field in _ACCESS_FIELDS.items():
            value = atoms.get(atom)
            if value not in (None, "-", ""):
                fields[field] = value
        for field in ("status", "bytes"):
            if isinstance(fields.get(field), str) and fields[field].isdigit():
                fields[field] = int(fields[field])
        if isinstance(atoms.get("D"), int):
            fields["duration_ms"] = round(atoms["D"] / 1000, 3)
        request_id = atoms.get("{x-request-id}o")
        if request_id and request_id != "-":
            fields["request_id"] = request_id
        return fields


def logging_config(level: str = "info") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for gunicorn and the app: JSON errors on stderr, access on stdout."""
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "items_api.logs.JsonFormatter"}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
            "stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"},
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
            **{name: {"level": "WARNING"} for name in QUIET_LOGGERS},
        },
    }
