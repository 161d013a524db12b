"""The HTTP routes: the service's own endpoints (description, health, OpenAPI) and the items API."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from . import items
from .config import Settings
from .db import Database, DatabaseUnavailable
from .errors import ApiError
from .openapi import openapi_document

log = logging.getLogger(__name__)

HEALTH_DB_TIMEOUT = 2.0
_DIGITS = re.compile(r"^[0-9]{1,30}$")


def service_routes(settings: Settings, database: Database) -> Blueprint:
    blueprint = Blueprint("service", __name__)
    identity = {"version": settings.version, "deployment": settings.deployment_color}

    @blueprint.get("/")
    def index() -> Response:
        return jsonify(service="items-api", **identity, openapi="/openapi.json")

    @blueprint.get("/live")
    def live() -> Response:
        # Liveness: the process answers. Never touches the database, so a database outage takes
        # tasks out of the load balancer (readiness) without ECS replacing every one of them.
        return jsonify(status="ok", **identity)

    @blueprint.get("/health")
    def health() -> tuple[Response, int]:
        try:
            latency = database.ping(timeout=HEALTH_DB_TIMEOUT)
        except DatabaseUnavailable as exc:
            log.warning("readiness check failed: %s", exc)
            check: dict[str, Any] = {"status": "unavailable"}
            status = 503
        else:
            check = {"status": "ok", "latency_ms": round(latency, 2)}
            status = 200
        body = {"status": "ok" if status == 200 else "unavailable", **identity, "checks": {"database": check}}
        return jsonify(body), status

    @blueprint.get("/openapi.json")
    def openapi() -> Response:
        return jsonify(openapi_document(settings.version))

    return blueprint


def item_routes(database: Database) -> Blueprint:
    blueprint = Blueprint("items", __name__)

    @blueprint.get("/items")
    def list_items() -> Response:
        limit = _int_param("limit", items.DEFAULT_PAGE_SIZE, 1, items.MAX_PAGE_SIZE)
        cursor = request.args.get("cursor")
        if cursor is not None and "offset" in request.args:
            raise ApiError(400, "invalid_parameter", "use either offset or cursor, not both", parameter="cursor")
        after_id = None
        if cursor is not None:
            after_id = items.decode_cursor(cursor)
            if after_id is None:
                raise ApiError(400, "invalid_parameter", "cursor is not valid", parameter="cursor")
        offset = _int_param("offset", 0, 0, items.MAX_ID)
        with database.connection() as conn:
            page = items.list_page(conn, limit, offset=offset, after_id=after_id)
        next_cursor = items.encode_cursor(page.next_after_id) if page.next_after_id else None
        return jsonify(
            items=[item.to_json() for item in page.items],
            total=page.total,
            limit=limit,
            offset=None if after_id is not None else offset,
            next_cursor=next_cursor,
        )

    @blueprint.post("/items")
    def create_item() -> tuple[Response, int, dict[str, str]]:
        name = _name_from_body()
        with database.connection() as conn:
            item = items.create(conn, name)
        log.info("created item %d", item.id)
        return jsonify(item.to_json()), 201, {"Location": f"/items/{item.id}"}

    @blueprint.get("/items/<item_id>")
    def get_item(item_id: str) -> Response:
        number = _item_id(item_id)
        item = None
        if number is not None:
            with database.connection() as conn:
                item = items.get(conn, number)
        if item is None:
            raise ApiError(404, "not_found", f"item {item_id} does not exist")
        return jsonify(item.to_json())

    @blueprint.delete("/items/<item_id>")
    def delete_item(item_id: str) -> tuple[str, int]:
        number = _item_id(item_id)
        deleted = False
        if number is not None:
            with database.connection() as conn:
                deleted = items.delete(conn, number)
        if not deleted:
            raise ApiError(404, "not_found", f"item {item_id} does not exist")
        log.info("deleted item %d", number)
        return "", 204

    return blueprint


def _int_param(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not _DIGITS.match(raw) or not low <= int(raw) <= high:
        raise ApiError(400, "invalid_parameter", f"{name} must be an integer from {low} to {high}", parameter=name)
    return int(raw)


def _item_id(raw: str) -> int | None:
    """The numeric id in a path, or None for a well-formed id that cannot exist."""
    if not _DIGITS.match(raw):
        raise ApiError(400, "invalid_id", "item id must be a positive integer")
    number = int(raw)
    return number if 1 <= number <= items.MAX_ID else None


def _read_body() -> bytes:
    """The request body, refusing more than MAX_BODY_BYTES with a 413.

    MAX_CONTENT_LENGTH is one byte above the limit: Werkzeug refuses a larger Content-Length before
    reading, but silently truncates a body without one (chunked) at MAX_CONTENT_LENGTH, so the
    extra byte is what shows such a body is too large.
    """
    raw = request.get_data(cache=False)
    if len(raw) > items.MAX_BODY_BYTES:
        raise RequestEntityTooLarge()
    return raw


def _reject_constant(constant: str) -> None:
    raise ValueError(f"{constant} is not valid JSON")


def _name_from_body() -> str:
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the item as application/json")
    raw = _read_body()
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        # ValueError covers bad UTF-8 and bad JSON; RecursionError very deep nesting.
        raise ApiError(400, "invalid_json", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(422, "validation_error", "the request body must be a JSON object", field="body")
    unknown = sorted(set(body) - {"name"})
    if unknown:
        raise ApiError(422, "validation_error", f"unknown field(s): {', '.join(unknown)}", field=unknown[0])
    if "name" not in body:
        raise ApiError(422, "validation_error", "name is required", field="name")
    name = body["name"]
    if not isinstance(name, str):
        raise ApiError(422, "validation_error", "name must be a string", field="name")
    cleaned, problem = items.clean_name(name)
    if cleaned is None:
        raise ApiError(422, "validation_error", problem, field="name")
    return cleaned
