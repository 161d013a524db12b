"""Bad input: each case is a JSON error with the right status, never a 500, never a write."""

from __future__ import annotations

import json

import pytest

from items_api import items


@pytest.fixture
def rows(app_db):
    def count() -> int:
        return int(app_db.sql("SELECT count(*) FROM items").strip())

    return count


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.data[:500]
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert error["request_id"] == response.headers["X-Request-ID"]
    return error


JSON = "application/json"


@pytest.mark.parametrize(
    "case",
    [
        pytest.param((b'{"name": ', JSON, 400, "invalid_json"), id="truncated-json"),
        pytest.param((b"{'name': 'x'}", JSON, 400, "invalid_json"), id="single-quotes"),
        pytest.param((b"", JSON, 400, "invalid_json"), id="empty-body"),
        pytest.param((b'{"name": "\xff\xfe"}', JSON, 400, "invalid_json"), id="invalid-utf8"),
        pytest.param((b'{"name": "x", "n": NaN}', JSON, 400, "invalid_json"), id="nan-constant"),
        pytest.param((b"[" * 5000 + b"]" * 5000, JSON, 400, "invalid_json"), id="deep-nesting"),
        pytest.param((b'{"name": "x"}', "text/plain", 415, "unsupported_media_type"), id="text-plain"),
        pytest.param((b"name=x", "application/x-www-form-urlencoded", 415, "unsupported_media_type"), id="form"),
        pytest.param((b'{"name": "x"}', None, 415, "unsupported_media_type"), id="no-content-type"),
        pytest.param((b'["name"]', JSON, 422, "validation_error"), id="array-body"),
        pytest.param((b'"name"', JSON, 422, "validation_error"), id="string-body"),
        pytest.param((b"null", JSON, 422, "validation_error"), id="null-body"),
        pytest.param((b"{}", JSON, 422, "validation_error"), id="missing-name"),
        pytest.param((b'{"name": null}', JSON, 422, "validation_error"), id="null-name"),
        pytest.param((b'{"name": 42}', JSON, 422, "validation_error"), id="number-name"),
        pytest.param((b'{"name": ["x"]}', JSON, 422, "validation_error"), id="array-name"),
        pytest.param((b'{"name": {"x": 1}}', JSON, 422, "validation_error"), id="object-name"),
        pytest.param((b'{"name": true}', JSON, 422, "validation_error"), id="bool-name"),
        pytest.param((b'{"name": ""}', JSON, 422, "validation_error"), id="empty-name"),
        pytest.param((b'{"name": " \\t\\n\\u3000 "}', JSON, 422, "validation_error"), id="blank-name"),
        pytest.param((json.dumps({"name": "x" * 256}).encode(), JSON, 422, "validation_error"), id="256-chars"),
        pytest.param((b'{"name": "a\\u0000b"}', JSON, 422, "validation_error"), id="nul-char"),
        pytest.param((b'{"name": "a\\ud800b"}', JSON, 422, "validation_error"), id="lone-surrogate"),
        pytest.param((b'{"name": "x", "colour": "red"}', JSON, 422, "validation_error"), id="unknown-field"),
        pytest.param((b"x" * (items.MAX_BODY_BYTES + 1), JSON, 413, "payload_too_large"), id="oversize"),
    ],
)
def test_bad_bodies_are_rejected_without_writing(client, rows, case):
    body, content_type, status, code = case
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/items", data=body, headers=headers)
    assert_error(response, status, code)
    assert rows() == 0


def test_validation_errors_name_the_field(client):
    error = assert_error(client.post("/items", json={"name": 7}), 422, "validation_error")
    assert error["field"] == "name"
    assert "string" in error["message"]


def test_body_at_the_size_limit_is_accepted(client, rows):
    body = b'{"name": "limit"}'
    body += b" " * (items.MAX_BODY_BYTES - len(body))
    assert client.post("/items", data=body, content_type=JSON).status_code == 201
    assert rows() == 1


def test_content_type_with_charset_is_accepted(client, rows):
    response = client.post("/items", data=b'{"name": "x"}', headers={"Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 201
    assert rows() == 1


def test_name_at_the_length_limit_after_trimming_is_accepted(client):
    response = client.post("/items", json={"name": "\t" + "y" * 255 + "  "})
    assert response.status_code == 201
    assert response.get_json()["name"] == "y" * 255


@pytest.mark.parametrize("item_id", ["abc", "1.5", "-1", "1e3", "0x10", "%20", "١٢", "1;DROP TABLE items"])
@pytest.mark.parametrize("method", ["get", "delete"])
def test_non_integer_ids_are_400(client, method, item_id):
    assert_error(getattr(client, method)(f"/items/{item_id}"), 400, "invalid_id")


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=-1", "limit=abc", "limit=1.5", "limit=", "offset=-1", "offset=x",
     "offset=99999999999999999999", "cursor=not-a-cursor", "cursor=", "cursor=eyJhZnRlciI6LTF9",
     "offset=0&cursor=eyJhZnRlciI6MX0"],
)  # fmt: skip
def test_bad_list_parameters_are_400(client, query):
    error = assert_error(client.get(f"/items?{query}"), 400, "invalid_parameter")
    assert error["parameter"] in query


@pytest.mark.parametrize("path", ["/nope", "/items/1/extra", "/items/", "/health/"])
def test_unknown_routes_are_json_404(client, path):
    assert_error(client.get(path), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("put", "/items", {"GET", "POST"}),
        ("patch", "/items/1", {"GET", "DELETE"}),
        ("post", "/items/1", {"GET", "DELETE"}),
        ("delete", "/items", {"GET", "POST"}),
        ("post", "/health", {"GET"}),
        ("delete", "/", {"GET"}),
    ],
)
def test_wrong_methods_are_json_405_with_allow(client, rows, method, path, allowed):
    response = getattr(client, method)(path, json={"name": "x"})
    assert_error(response, 405, "method_not_allowed")
    assert allowed <= set(response.headers["Allow"].split(", "))
    assert rows() == 0
