"""Contacts out as CSV or JSON, a page at a time, so an account of any size streams in bounded
memory. CSV cells that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return) are prefixed with ``'`` (OWASP's CSV injection advice)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable
from typing import Any

import msgspec

from hub.store.db import Conn
from hub.store.reads import CONTACT_COLUMNS

PAGE = 500
HEADER = ("id", "name", "company_id", "identities", "attributes", "created_at", "updated_at")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: str) -> str:
    return "'" + cell if cell.startswith(_FORMULA) else cell


def _row(contact: dict[str, Any]) -> list[str]:
    identities = ";".join(f"{i['channel']}:{i['address']}" for i in contact["identities"])
    cells = [
        contact["id"],
        contact["name"] or "",
        contact["company_id"] or "",
        identities,
        msgspec.json.encode(contact["attributes"]).decode() if contact["attributes"] else "",
        contact["created_at"].isoformat(),
        contact["updated_at"].isoformat(),
    ]
    return [neutralise(c) for c in cells]


def csv_lines(rows: Iterable[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode()


async def contact_pages(
    conn: Conn, account_id: str, scope: frozenset[str] | None
) -> AsyncIterator[list[dict[str, Any]]]:
    """The account's live contacts (survivors of merges), oldest first, ``PAGE`` at a time;
    ``scope`` as for the contact list. Keyset paging: no transaction held open while the client
    reads."""
    after = ""
    while True:
        rows = await conn.fetch(
            f"""SELECT {CONTACT_COLUMNS} FROM contacts c
                 WHERE c.account_id = $1 AND c.merged_into IS NULL AND c.id > $2
                   AND ($3::text[] IS NULL OR EXISTS (
                        SELECT 1 FROM conversations v
                         WHERE v.contact_id = c.id AND v.inbox_id = ANY($3::text[])))
                 ORDER BY c.id LIMIT $4""",
            account_id,
            after,
            None if scope is None else sorted(scope),
            PAGE,
        )
        if not rows:
            return
        yield [dict(r) for r in rows]
        if len(rows) < PAGE:
            return
        after = rows[-1]["id"]


def csv_chunk(page: list[dict[str, Any]], first: bool) -> bytes:
    return csv_lines(([list(HEADER)] if first else []) + [_row(c) for c in page])


def json_chunk(page: list[dict[str, Any]], first: bool) -> bytes:
    body = b",".join(msgspec.json.encode(c) for c in page)
    return (b"" if first else b",") + body
