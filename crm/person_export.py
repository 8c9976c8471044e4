"""Everything the hub holds about one person, as a zip written while it is read (a data-subject
access request): the contact with its identities, attributes and company, the contacts merged
into it, its notes, its conversations, every message of them (JSON Lines, a page at a time), its
calls and every stored file (the media store's bytes, streamed in chunks).

``zipfile`` writes to an unseekable sink with data descriptors, so nothing is buffered beyond
one chunk: :class:`Sink` collects what the zip writer produced and :func:`person_zip` hands it
on after each piece.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson

from hub.media import MediaNotFound, MediaStore
from hub.store.db import Conn
from hub.store.reads import CONTACT_COLUMNS

PAGE = 1000
#: files larger than this get ZIP64 headers (their size is not known to the writer beforehand)
_ZIP64_FROM = 1 << 30
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class Sink:
    """A write-only, unseekable file that keeps what was written until :meth:`take`."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes, /) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_UTC_Z, default=str)


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=datetime.now(UTC).timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def media_name(key: str, filename: str) -> str:
    """The file's name in the zip: its key (unique) and its name, without path separators."""
    safe = _UNSAFE.sub("_", filename).strip("._")[:100] or "file"
    return f"media/{key}-{safe}"


async def contact_ids(conn: Conn, contact_id: str) -> list[str]:
    """The contact and every contact merged into it (their conversations moved to it, their
    rows stay as redirects)."""
    rows = await conn.fetch(
        "SELECT id FROM contacts WHERE id = $1 OR merged_into = $1 ORDER BY id", contact_id
    )
    return [r["id"] for r in rows]


async def _profile(conn: Conn, account_id: str, contact_id: str) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"SELECT {CONTACT_COLUMNS} FROM contacts c WHERE c.id = $1 AND c.account_id = $2",
        contact_id,
        account_id,
    )
    profile: dict[str, Any] = dict(row or {})
    company = None
    if profile.get("company_id"):
        found = await conn.fetchrow(
            "SELECT id, name, domain, attributes FROM companies WHERE id = $1",
            profile["company_id"],
        )
        company = dict(found) if found else None
    merged = await conn.fetch(
        """SELECT id, name, attributes, created_at FROM contacts
            WHERE merged_into = $1 ORDER BY id""",
        contact_id,
    )
    profile["company"] = company
    profile["merged_contacts"] = [dict(r) for r in merged]
    return profile


async def person_zip(
    conn: Conn, store: MediaStore, account_id: str, contact_id: str
) -> AsyncIterator[bytes]:
    """The zip's bytes, piece by piece. ``contact_id`` must be a live (not merged) contact of the
    account; the caller checked that."""
    sink = Sink()
    archive = zipfile.ZipFile(sink, "w")  # closed at the end, after the last entry
    ids = await contact_ids(conn, contact_id)
    profile = await _profile(conn, account_id, contact_id)
    archive.writestr(_entry("contact.json"), _json(profile))
    yield sink.take()

    notes = await conn.fetch(
        """SELECT id, contact_id, author_type, author_id, content, created_at FROM contact_notes
            WHERE contact_id = ANY($1::text[]) ORDER BY id""",
        ids,
    )
    archive.writestr(_entry("notes.json"), _json([dict(r) for r in notes]))
    conversations = await conn.fetch(
        """SELECT c.id, c.inbox_id, i.name AS inbox_name, i.channel, c.status, c.labels,
                  c.priority, c.messages_count, c.created_at, c.last_activity_at, c.attributes
             FROM conversations c JOIN inboxes i ON i.id = c.inbox_id
            WHERE c.contact_id = $1 AND c.account_id = $2 ORDER BY c.id""",
        contact_id,
        account_id,
    )
    conversation_ids = [r["id"] for r in conversations]
    archive.writestr(_entry("conversations.json"), _json([dict(r) for r in conversations]))
    calls = await conn.fetch(
        """SELECT id, conversation_id, inbox_id, direction, number, state, answered_at, ended_at,
                  duration_ms, created_at
             FROM calls WHERE conversation_id = ANY($1::text[]) ORDER BY id""",
        conversation_ids,
    )
    archive.writestr(_entry("calls.json"), _json([dict(r) for r in calls]))
    yield sink.take()

    # messages: JSON Lines, keyset pages, so a long history never sits in memory
    with archive.open(_entry("messages.jsonl"), "w", force_zip64=True) as out:
        after = ""
        while True:
            rows = await conn.fetch(
                """SELECT id, conversation_id, inbox_id, direction, private, sender_type,
                          sender_id, content, content_type, attachments, template, status,
                          sent_at, created_at, edited_at, edits
                     FROM messages
                    WHERE conversation_id = ANY($1::text[]) AND id > $2
                    ORDER BY id LIMIT $3""",
                conversation_ids,
                after,
                PAGE,
            )
            for r in rows:
                out.write(orjson.dumps(dict(r), option=orjson.OPT_UTC_Z, default=str) + b"\n")
            yield sink.take()
            if len(rows) < PAGE:
                break
            after = rows[-1]["id"]

    files = await conn.fetch(
        """SELECT m.key, m.message_id, m.filename, m.content_type, m.size, m.sha256
             FROM media m JOIN messages msg ON msg.id = m.message_id
            WHERE msg.conversation_id = ANY($1::text[]) ORDER BY m.key""",
        conversation_ids,
    )
    listed: list[dict[str, Any]] = []
    for f in files:
        name = media_name(f["key"], f["filename"])
        entry = {**dict(f), "path": name}
        try:
            chunks = store.open(f["key"])
            first = await anext(chunks, b"")
        except MediaNotFound:
            listed.append({**entry, "path": None, "missing": True})
            continue
        listed.append(entry)
        info = _entry(name)
        info.compress_type = zipfile.ZIP_STORED  # media is compressed already, as a rule
        with archive.open(info, "w", force_zip64=f["size"] >= _ZIP64_FROM) as out:
            out.write(first)
            yield sink.take()
            async for chunk in chunks:
                out.write(chunk)
                yield sink.take()
        yield sink.take()
    archive.writestr(_entry("media.json"), _json(listed))
    archive.close()
    yield sink.take()
