"""Read queries for the gateway: inboxes, tokens, conversations and messages, scoped by account."""

from __future__ import annotations

import base64
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from channels._base import InboxContext
from hub.authz import Principal
from hub.secrets import SecretBox
from hub.store.db import Conn


async def load_inbox(
    conn: Conn | asyncpg.Pool[Any], box: SecretBox, inbox_id: str
) -> InboxContext | None:
    row = await conn.fetchrow(
        """SELECT id, account_id, channel, name, reopen_policy, settings, secrets
             FROM inboxes WHERE id = $1""",
        inbox_id,
    )
    if row is None:
        return None
    return InboxContext(
        id=row["id"],
        account_id=row["account_id"],
        channel=row["channel"],
        name=row["name"],
        reopen_policy=row["reopen_policy"],
        settings=row["settings"],
        secrets=box.open(row["secrets"]) if row["secrets"] else {},
    )


class BadCursor(ValueError):
    pass


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values, default=str)).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = orjson.loads(raw)
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise BadCursor("cursor is not valid") from exc
    if not isinstance(values, list) or len(values) != size:
        raise BadCursor("cursor is not valid")
    return values


CONVERSATION_COLUMNS = """c.id, c.inbox_id, c.contact_id, ct.name AS contact_name, c.status,
    c.assignee_id, c.team_id, c.labels, c.priority, c.snoozed_until, c.messages_count,
    c.last_message_at, c.last_activity_at, c.created_at"""


async def account_inbox_ids(pool: asyncpg.Pool[Any], account_id: str) -> list[str]:
    rows = await pool.fetch("SELECT id FROM inboxes WHERE account_id = $1 ORDER BY id", account_id)
    return [r["id"] for r in rows]


async def list_conversations(
    pool: asyncpg.Pool[Any],
    account_id: str,
    *,
    agent_id: str,
    inboxes: frozenset[str] | None,
    status: str | None,
    inbox_id: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest activity first; the cursor is the (last_activity_at, id) of the last row served.
    ``unread_count``: the contact's messages after ``agent_id``'s read position."""
    after_ts: datetime | None = None
    after_id: str | None = None
    if cursor:
        ts, after_id = decode_cursor(cursor, 2)
        try:
            after_ts = datetime.fromisoformat(ts)
        except (TypeError, ValueError) as exc:
            raise BadCursor("cursor is not valid") from exc
    rows = await pool.fetch(
        f"""SELECT {CONVERSATION_COLUMNS},
                   (SELECT count(*) FROM messages m
                     WHERE m.conversation_id = c.id AND m.direction = 'inbound'
                       AND m.id > coalesce((SELECT r.last_read_message_id
                                              FROM conversation_reads r
                                             WHERE r.agent_id = $7 AND r.conversation_id = c.id),
                                           '')) AS unread_count
              FROM conversations c JOIN contacts ct ON ct.id = c.contact_id
             WHERE c.account_id = $1
               AND ($2::text IS NULL OR c.status = $2)
               AND ($3::text IS NULL OR c.inbox_id = $3)
               AND ($4::timestamptz IS NULL OR (c.last_activity_at, c.id) < ($4, $5::text))
               AND ($8::text[] IS NULL OR c.inbox_id = ANY($8::text[]))
             ORDER BY c.last_activity_at DESC, c.id DESC
             LIMIT $6""",
        account_id,
        status,
        inbox_id,
        after_ts,
        after_id,
        limit + 1,
        agent_id,
        None if inboxes is None else sorted(inboxes),
    )
    items = [dict(r) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor([last["last_activity_at"].isoformat(), last["id"]])
    return items, next_cursor


async def conversation_exists(
    pool: asyncpg.Pool[Any], principal: Principal, conversation_id: str
) -> bool:
    """Whether the conversation exists and the caller may see it."""
    inbox_id: str | None = await pool.fetchval(
        "SELECT inbox_id FROM conversations WHERE id = $1 AND account_id = $2",
        conversation_id,
        principal.account_id,
    )
    return inbox_id is not None and principal.sees(inbox_id)


async def list_messages(
    pool: asyncpg.Pool[Any],
    account_id: str,
    conversation_id: str,
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Oldest first (timeline order); the cursor is the id of the last message served."""
    after_id = decode_cursor(cursor, 1)[0] if cursor else None
    rows = await pool.fetch(
        """SELECT id, conversation_id, inbox_id, direction, private, sender_type, sender_id,
                  content, content_type, attachments, provider_message_id, status, error_code,
                  error_message, sent_at, created_at
             FROM messages
            WHERE conversation_id = $1 AND account_id = $2
              AND ($3::text IS NULL OR id > $3)
            ORDER BY id
            LIMIT $4""",
        conversation_id,
        account_id,
        after_id,
        limit + 1,
    )
    items = [dict(r) for r in rows[:limit]]
    next_cursor = encode_cursor([items[-1]["id"]]) if len(rows) > limit else None
    return items, next_cursor


async def inbox_counters(
    conn: Conn | asyncpg.Pool[Any], inbox_ids: Iterable[str]
) -> dict[str, Any]:
    """Unresolved conversations per inbox by status, and open ones unassigned and per assignee."""
    inboxes = sorted(set(inbox_ids))
    if not inboxes:
        return {}
    counts = await conn.fetch(
        """SELECT inbox_id, status, assignee_id, count(*) AS n FROM conversations
            WHERE inbox_id = ANY($1::text[]) AND status <> 'resolved'
            GROUP BY inbox_id, status, assignee_id""",
        inboxes,
    )
    counters: dict[str, dict[str, Any]] = {
        inbox: {
            "inbox_id": inbox,
            "open": 0,
            "pending": 0,
            "snoozed": 0,
            "unassigned": 0,
            "assigned": defaultdict(int),
        }
        for inbox in inboxes
    }
    for c in counts:
        entry = counters[c["inbox_id"]]
        entry[c["status"]] += c["n"]
        if c["status"] == "open":
            if c["assignee_id"] is None:
                entry["unassigned"] += c["n"]
            else:
                entry["assigned"][c["assignee_id"]] += c["n"]
    return counters
