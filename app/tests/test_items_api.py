"""The API against a real PostgreSQL: CRUD, pagination, identity headers."""

from __future__ import annotations

import pytest


def create(client, name: str) -> dict:
    response = client.post("/items", json={"name": name})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_index_describes_the_service(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.get_json() == {
        "service": "items-api",
        "version": "1.2.3",
        "deployment": "blue",
        "openapi": "/openapi.json",
    }


def test_create_get_delete_round_trip(client):
    response = client.post("/items", json={"name": "  first item  "})
    assert response.status_code == 201
    item = response.get_json()
    assert item["name"] == "first item"
    assert isinstance(item["id"], int)
    assert item["created_at"].endswith("Z")
    assert response.headers["Location"] == f"/items/{item['id']}"

    fetched = client.get(response.headers["Location"])
    assert fetched.status_code == 200
    assert fetched.get_json() == item

    deleted = client.delete(f"/items/{item['id']}")
    assert deleted.status_code == 204
    assert deleted.data == b""
    assert client.get(f"/items/{item['id']}").status_code == 404
    assert client.delete(f"/items/{item['id']}").status_code == 404


@pytest.mark.parametrize("path", ["/items/999999", "/items/9223372036854775807", "/items/99999999999999999999"])
@pytest.mark.parametrize("method", ["get", "delete"])
def test_unknown_ids_are_404(client, method, path):
    response = getattr(client, method)(path)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "name",
    [
        "Robert'); DROP TABLE items;--",
        "%s %(name)s $1 \\x00 \\' \" ; -- /* */",
        "日本語のアイテム",
        "emoji 🧪🚀 and combining é",
        "right-to-left עברית العربية",
        "\u200b zero width inside",
        "x" * 255,
        "😀" * 255,
    ],
)
def test_names_are_stored_and_returned_verbatim(client, app_db, name):
    item = create(client, name)
    assert item["name"] == name
    assert client.get(f"/items/{item['id']}").get_json()["name"] == name
    # Stored as such too, not merely echoed back.
    stored = app_db.sql(f"SELECT name = {_literal(name)} FROM items WHERE id = {item['id']}")  # noqa: S608
    assert stored.strip() == "t"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def test_list_is_newest_first_with_total(client):
    ids = [create(client, f"item {n}")["id"] for n in range(5)]
    response = client.get("/items")
    assert response.status_code == 200
    body = response.get_json()
    assert [item["id"] for item in body["items"]] == ids[::-1]
    assert body["total"] == 5
    assert body["limit"] == 20
    assert body["offset"] == 0
    assert body["next_cursor"] is None


def test_offset_pagination(client):
    ids = [create(client, f"item {n}")["id"] for n in range(7)][::-1]
    first = client.get("/items?limit=3").get_json()
    second = client.get("/items?limit=3&offset=3").get_json()
    last = client.get("/items?limit=3&offset=6").get_json()
    beyond = client.get("/items?limit=3&offset=100").get_json()
    assert [i["id"] for i in first["items"]] == ids[0:3]
    assert [i["id"] for i in second["items"]] == ids[3:6]
    assert [i["id"] for i in last["items"]] == ids[6:]
    assert beyond["items"] == []
    assert {page["total"] for page in (first, second, last, beyond)} == {7}
    assert first["next_cursor"] is not None
    assert last["next_cursor"] is None


def test_cursor_pagination_walks_everything_once_despite_inserts(client):
    ids = [create(client, f"item {n}")["id"] for n in range(10)][::-1]
    seen, cursor = [], None
    while True:
        response = client.get("/items", query_string={"limit": 4, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200
        page = response.get_json()
        seen += [item["id"] for item in page["items"]]
        if cursor:
            assert page["offset"] is None
        create(client, "inserted while paging")  # newer than every page: must not shift the walk
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids


def test_page_size_is_capped(client):
    for n in range(3):
        create(client, f"item {n}")
    assert client.get("/items?limit=100").status_code == 200
    response = client.get("/items?limit=101")
    assert response.status_code == 400
    assert response.get_json()["error"]["parameter"] == "limit"


def test_identity_headers_on_item_responses(client):
    item = create(client, "headers")
    for response in (
        client.get("/items"),
        client.get(f"/items/{item['id']}"),
        client.post("/items", json={"name": "another"}),
        client.delete(f"/items/{item['id']}"),
        client.get("/items/0"),
    ):
        assert response.headers["X-App-Version"] == "1.2.3"
        assert response.headers["X-Deployment-Color"] == "blue"
        assert len(response.headers["X-Request-ID"]) == 32


def test_request_id_is_propagated_when_well_formed(client):
    assert client.get("/items", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    replaced = client.get("/items", headers={"X-Request-ID": "bad id <script>"}).headers["X-Request-ID"]
    assert replaced != "bad id <script>"
    assert len(replaced) == 32


def test_errors_carry_the_request_id(client):
    response = client.get("/items/abc", headers={"X-Request-ID": "trace-me"})
    assert response.get_json()["error"]["request_id"] == "trace-me"


def test_head_and_options_are_not_errors(client):
    assert client.head("/items").status_code == 200
    options = client.options("/items")
    assert options.status_code == 200
    assert {"GET", "POST"} <= set(options.headers["Allow"].split(", "))


def test_unexpected_errors_are_json_500_without_internals(shared_app, caplog):
    from items_api.app import build_app

    app = build_app(shared_app.extensions["items_api.settings"], shared_app.extensions["items_api.database"])

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internal detail")

    response = app.test_client().get("/boom", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    assert response.get_json() == {
        "error": {"code": "internal_error", "message": "An unexpected error occurred.", "request_id": "boom-1"}
    }
    assert response.headers["X-Deployment-Color"] == "blue"
    assert "secret internal detail" in caplog.text  # logged for us, not shown to the client
