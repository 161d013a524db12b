"""The OpenAPI 3.1 document served at ``/openapi.json``.

Written by hand next to the routes and kept honest by the tests: one checks that every route is
documented and every documented path exists, another generates requests from this document
(schemathesis) and checks the responses against it. The item name rule is one regular expression
shared with the validation code (:data:`items.NAME_PATTERN`), so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from . import items

_IDENTITY_HEADERS = {
    "X-Request-ID": {"$ref": "#/components/headers/RequestId"},
    "X-App-Version": {"$ref": "#/components/headers/AppVersion"},
    "X-Deployment-Color": {"$ref": "#/components/headers/DeploymentColor"},
}


def _json(schema: str, description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {**_IDENTITY_HEADERS, **(headers or {})},
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _error(description: str) -> dict[str, Any]:
    return _json("Error", description)


_UNAVAILABLE = _error("The database is unavailable; retry later (see Retry-After).")
_ITEM_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "The item's id. Anything but digits is a 400; an id that does not exist is a 404.",
    "schema": {"type": "integer", "format": "int64", "minimum": 1, "maximum": items.MAX_ID},
}


def openapi_document(version: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "items-api",
            "version": version,
            "description": "A small JSON API over a PostgreSQL table of named items.",
        },
        "servers": [{"url": "/"}],
        "paths": {
            "/": {
                "get": {
                    "operationId": "describeService",
                    "summary": "Describe the service: its version and deployment colour.",
                    "responses": {"200": _json("Service", "The service.")},
                }
            },
            "/health": {
                "get": {
                    "operationId": "readiness",
                    "summary": "Readiness, for the load balancer: checks the database.",
                    "responses": {
                        "200": _json("Health", "Ready to serve."),
                        "503": _json("Health", "Not ready: the database is unreachable."),
                    },
                }
            },
            "/live": {
                "get": {
                    "operationId": "liveness",
                    "summary": "Liveness, for the container health check: never touches the database.",
                    "responses": {"200": _json("Live", "The process is serving requests.")},
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document.",
                    "responses": {
                        "200": {
                            "description": "The OpenAPI document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
            "/items": {
                "get": {
                    "operationId": "listItems",
                    "summary": "List items, newest first.",
                    "description": (
                        "Page with `limit` and either `offset` or the `next_cursor` of the previous page "
                        "(cursor pages stay stable while items are added)."
                    ),
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": items.MAX_PAGE_SIZE,
                                "default": items.DEFAULT_PAGE_SIZE,
                            },
                        },
                        {
                            "name": "offset",
                            "in": "query",
                            "description": "Rows to skip; not together with `cursor`.",
                            "schema": {"type": "integer", "minimum": 0, "maximum": items.MAX_ID, "default": 0},
                        },
                        {
                            "name": "cursor",
                            "in": "query",
                            "description": "`next_cursor` from the previous page; not together with `offset`.",
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": _json("ItemPage", "A page of items."),
                        "400": _error("A parameter is malformed or out of range, or the cursor is not valid."),
                        "503": _UNAVAILABLE,
                    },
                },
                "post": {
                    "operationId": "createItem",
                    "summary": "Create an item.",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewItem"}}},
                    },
                    "responses": {
                        "201": _json(
                            "Item",
                            "Created.",
                            {"Location": {"description": "The new item's URL.", "schema": {"type": "string"}}},
                        ),
                        "400": _error("The body is not valid JSON."),
                        "413": _error(f"The body is larger than {items.MAX_BODY_BYTES} bytes."),
                        "415": _error("The body is not application/json."),
                        "422": _error("The body is not a valid item."),
                        "503": _UNAVAILABLE,
                    },
                },
            },
            "/items/{id}": {
                "parameters": [_ITEM_ID],
                "get": {
                    "operationId": "getItem",
                    "summary": "Get one item.",
                    "responses": {
                        "200": _json("Item", "The item."),
                        "400": _error("The id is not an integer."),
                        "404": _error("No such item."),
                        "503": _UNAVAILABLE,
                    },
                },
                "delete": {
                    "operationId": "deleteItem",
                    "summary": "Delete one item.",
                    "responses": {
                        "204": {"description": "Deleted.", "headers": _IDENTITY_HEADERS},
                        "400": _error("The id is not an integer."),
                        "404": _error("No such item."),
                        "503": _UNAVAILABLE,
                    },
                },
            },
        },
        "components": {
            "headers": {
                "RequestId": {
                    "description": "The request's id (the caller's X-Request-ID if well-formed); also in the logs.",
                    "schema": {"type": "string"},
                },
                "AppVersion": {"description": "The version serving the request.", "schema": {"type": "string"}},
                "DeploymentColor": {
                    "description": "The deployment (blue/green) serving the request.",
                    "schema": {"type": "string"},
                },
            },
            "schemas": _schemas(),
        },
    }


def _schemas() -> dict[str, Any]:
    identity = {"version": {"type": "string"}, "deployment": {"type": "string"}}
    return {
        "NewItem": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": {
                    "type": "string",
                    "pattern": items.NAME_PATTERN,
                    "description": (
                        f"1 to {items.NAME_MAX_LENGTH} characters once surrounding whitespace is trimmed "
                        "(the trimmed name is stored). Any Unicode except NUL."
                    ),
                }
            },
        },
        "Item": {
            "type": "object",
            "required": ["id", "name", "created_at"],
            "additionalProperties": False,
            "properties": {
                "id": {"type": "integer", "format": "int64", "minimum": 1},
                "name": {"type": "string", "minLength": 1, "maxLength": items.NAME_MAX_LENGTH},
                "created_at": {"type": "string", "format": "date-time"},
            },
        },
        "ItemPage": {
            "type": "object",
            "required": ["items", "total", "limit", "offset", "next_cursor"],
            "additionalProperties": False,
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
                "total": {"type": "integer", "minimum": 0, "description": "All items, not just this page."},
                "limit": {"type": "integer", "minimum": 1, "maximum": items.MAX_PAGE_SIZE},
                "offset": {"type": ["integer", "null"], "minimum": 0, "description": "Null on cursor pages."},
                "next_cursor": {"type": ["string", "null"], "description": "Null on the last page."},
            },
        },
        "Service": {
            "type": "object",
            "required": ["service", "version", "deployment", "openapi"],
            "properties": {"service": {"type": "string"}, **identity, "openapi": {"type": "string"}},
        },
        "Live": {
            "type": "object",
            "required": ["status", "version", "deployment"],
            "properties": {"status": {"const": "ok"}, **identity},
        },
        "Health": {
            "type": "object",
            "required": ["status", "version", "deployment", "checks"],
            "properties": {
                "status": {"enum": ["ok", "unavailable"]},
                **identity,
                "checks": {
                    "type": "object",
                    "required": ["database"],
                    "properties": {
                        "database": {
                            "type": "object",
                            "required": ["status"],
                            "properties": {
                                "status": {"enum": ["ok", "unavailable"]},
                                "latency_ms": {"type": "number", "minimum": 0},
                            },
                        }
                    },
                },
            },
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "request_id": {"type": "string"},
                        "field": {"type": "string", "description": "The body field at fault."},
                        "parameter": {"type": "string", "description": "The query parameter at fault."},
                    },
                }
            },
        },
    }
