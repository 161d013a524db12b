"""The WSGI application: start-up sequence and HTTP routes."""

from __future__ import annotations

import logging
import re
import uuid

from flask import Flask, Response, g, request

from . import items
from .config import Settings, StartupError, load_settings
from .credentials import Credentials, ssm_password_reader
from .db import Database, DatabaseUnavailable
from .errors import register_error_handlers
from .logs import REQUEST_ID_HEADER
from .migrator import migrate
from .views import item_routes, service_routes

log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> Flask:
    """Build the service: read settings, fetch the password, wait for and migrate the database.

    Raises ``ConfigError``, ``CredentialsError``, ``DatabaseUnavailable`` or ``MigrationError``
    with a message that says what to fix; under gunicorn (``preload_app``) that stops start-up.
    """
    try:
        settings = settings or load_settings()
        if database is None:
            reader = ssm_password_reader(settings.database.password_ssm_param, settings.aws_region)
            database = Database(settings.database, Credentials(reader))
        database.wait_until_ready()
        with database.connect() as conn:
            migrate(conn)
    except (StartupError, DatabaseUnavailable) as exc:
        log.critical("start-up failed: %s", exc)
        raise
    log.info(
        "items-api %s (%s) ready: database %s:%s/%s",
        settings.version,
        settings.deployment_color,
        settings.database.host,
        settings.database.port,
        settings.database.name,
    )
    return build_app(settings, database)


def build_app(settings: Settings, database: Database) -> Flask:
    """The Flask application over an already prepared ``database``."""
    app = Flask("items_api")
    app.config.update(MAX_CONTENT_LENGTH=items.MAX_BODY_BYTES + 1)  # see views._read_body
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["items_api.database"] = database
    app.extensions["items_api.settings"] = settings

    @app.before_request
    def assign_request_id() -> None:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex

    @app.after_request
    def identify(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
        response.headers["X-App-Version"] = settings.version
        response.headers["X-Deployment-Color"] = settings.deployment_color
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    register_error_handlers(app)
    app.register_blueprint(service_routes(settings, database))
    app.register_blueprint(item_routes(database))
    return app
