"""items-api: a JSON API over PostgreSQL, served by gunicorn (``items_api:create_app()``).

The factory is imported lazily so that ``python -m items_api.healthcheck``, which runs every few
seconds in the container, starts without loading Flask, psycopg or boto3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["create_app"]


def create_app(*args: Any, **kwargs: Any) -> Flask:
    """Build the WSGI application; see :func:`items_api.app.create_app`."""
    from .app import create_app as _create_app

    return _create_app(*args, **kwargs)
