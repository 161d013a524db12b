"""Items: their validation rules and their SQL. Every query is parameterised."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import class_row

NAME_MAX_LENGTH = 255
MAX_ID = 2**63 - 1  # PostgreSQL bigint
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# Large enough for a name written entirely as JSON \u escapes plus its surrounding whitespace,
# small enough to refuse anything else before reading it.
MAX_BODY_BYTES = 16 * 1024

# What "trimming" removes: the whitespace of JSON Schema (ECMA-262) regular expressions, spelled out
# so that Python and any OpenAPI tool read the pattern below the same way.
WHITESPACE = r"\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
MAX_PADDING = 1000
# A name: 1-255 characters once trimmed, at most MAX_PADDING whitespace characters either side, no
# NUL (PostgreSQL text cannot hold it) and no unpaired surrogates (not encodable as UTF-8). This
# exact pattern is in the OpenAPI document.
_CHAR = r"[^\x00\ud800-\udfff]"
_EDGE = rf"[^{WHITESPACE}\x00\ud800-\udfff]"
NAME_PATTERN = (
    f"^[{WHITESPACE}]{{0,{MAX_PADDING}}}"
    f"{_EDGE}(?:{_CHAR}{{0,{NAME_MAX_LENGTH - 2}}}{_EDGE})?"
    f"[{WHITESPACE}]{{0,{MAX_PADDING}}}$"
)
_NAME = re.compile(NAME_PATTERN)
_TRIM = re.compile(rf"^[{WHITESPACE}]+|[{WHITESPACE}]+\Z")


@dataclass(frozen=True)
class Item:
    id: int
    name: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        created = self.created_at.astimezone(UTC).isoformat(timespec="microseconds")
        return {"id": self.id, "name": self.name, "created_at": created.replace("+00:00", "Z")}


@dataclass(frozen=True)
class Page:
    items: list[Item]
    total: int
    next_after_id: int | None


def clean_name(raw: str) -> tuple[str | None, str | None]:
    """The trimmed name to store and None, or None and why ``raw`` is not acceptable."""
    if _NAME.fullmatch(raw):
        return _TRIM.sub("", raw), None
    trimmed = _TRIM.sub("", raw)
    if not 1 <= len(trimmed) <= NAME_MAX_LENGTH:
        return None, f"name must be 1 to {NAME_MAX_LENGTH} characters after trimming whitespace"
    if "\x00" in trimmed:
        return None, "name must not contain the NUL character"
    if any("\ud800" <= char <= "\udfff" for char in trimmed):
        return None, "name must be valid Unicode (no unpaired surrogates)"
    return None, f"name may have at most {MAX_PADDING} whitespace characters before and after it"


def encode_cursor(after_id: int) -> str:
    raw = json.dumps({"after": after_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    """The id a cursor continues after, or None if the cursor is not one of ours."""
    if not cursor or len(cursor) > 64:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        after = json.loads(raw)["after"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        return None
    if type(after) is not int or not 1 <= after <= MAX_ID:
        return None
    return after


def create(conn: psycopg.Connection, name: str) -> Item:
    with conn.cursor(row_factory=class_row(Item)) as cur:
        cur.execute("INSERT INTO items (name) VALUES (%s) RETURNING id, name, created_at", (name,))
        return cur.fetchone()


def get(conn: psycopg.Connection, item_id: int) -> Item | None:
    with conn.cursor(row_factory=class_row(Item)) as cur:
        cur.execute("SELECT id, name, created_at FROM items WHERE id = %s", (item_id,))
        return cur.fetchone()


def delete(conn: psycopg.Connection, item_id: int) -> bool:
    return conn.execute("DELETE FROM items WHERE id = %s", (item_id,)).rowcount == 1


def list_page(conn: psycopg.Connection, limit: int, offset: int = 0, after_id: int | None = None) -> Page:
    """Newest first: ``limit`` items after ``offset`` rows, or after the item ``after_id``."""
    total = conn.execute("SELECT count(*) FROM items").fetchone()[0]
    with conn.cursor(row_factory=class_row(Item)) as cur:
        # One row more than asked tells whether there is a next page.
        if after_id is None:
            cur.execute(
                "SELECT id, name, created_at FROM items ORDER BY id DESC LIMIT %s OFFSET %s",
                (limit + 1, offset),
            )
        else:
            cur.execute(
                "SELECT id, name, created_at FROM items WHERE id < %s ORDER BY id DESC LIMIT %s",
                (after_id, limit + 1),
            )
        rows = cur.fetchall()
    items = rows[:limit]
    next_after = items[-1].id if len(rows) > limit else None
    return Page(items=items, total=total, next_after_id=next_after)
