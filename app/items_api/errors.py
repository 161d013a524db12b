"""JSON error responses: every failure, expected or not, is an ``{"error": {...}}`` body.

The body carries a stable machine-readable ``code``, a human ``message`` and the request id, so a
user's report can be matched to the logs. Unexpected exceptions are logged with their traceback
and answered with a generic message: internals never leak to clients.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, jsonify
from werkzeug.exceptions import HTTPException

from .db import DatabaseUnavailable

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    431: "request_header_fields_too_large",
}


class ApiError(Exception):
    """An error the client can act on."""

    def __init__(self, status: int, code: str, message: str, **details: Any):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def error_response(status: int, code: str, message: str, **details: Any) -> Response:
    body: dict[str, Any] = {"code": code, "message": message, **details}
    request_id = g.get("request_id")
    if request_id:
        body["request_id"] = request_id
    response = jsonify(error=body)
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, **exc.details)

    @app.errorhandler(DatabaseUnavailable)
    def database_unavailable(exc: DatabaseUnavailable) -> Response:
        log.warning("database unavailable: %s", exc)
        response = error_response(503, "database_unavailable", "The database is unavailable; retry later.")
        response.headers["Retry-After"] = "5"
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = _HTTP_CODES.get(status, "http_error")
        response = error_response(status, code, exc.description or exc.name)
        # Keep headers the protocol asks for, such as Allow on a 405.
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception) -> Response:
        log.exception("unhandled error: %s", type(exc).__name__)
        return error_response(500, "internal_error", "An unexpected error occurred.")
