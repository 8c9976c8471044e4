"""The inbox-list context sent with each conversation event: the conversation's list row and its
inbox's counters, read in the transaction that logs the event.

Counters are as of logging, so a later event always carries newer ones: a console that applies the
context of each event it receives shows what a fresh REST load would show, without re-fetching.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from hub.store.db import Conn
from hub.store.reads import inbox_counters


async def inbox_list_context(
    conn: Conn, conversation_ids: Iterable[str | None]
) -> dict[str, bytes]:
    """``conversation id -> {"conversation": row, "inbox": counters}`` as JSON."""
    wanted = sorted({c for c in conversation_ids if c})
    if not wanted:
        return {}
    rows = await conn.fetch(
        """SELECT c.id, c.inbox_id, c.contact_id, ct.name AS contact_name, c.status,
                  c.assignee_id, c.team_id, c.labels, c.priority, c.snoozed_until,
                  c.messages_count, c.last_message_at, c.last_activity_at
             FROM conversations c JOIN contacts ct ON ct.id = c.contact_id
            WHERE c.id = ANY($1::text[])""",
        wanted,
    )
    counters = await inbox_counters(conn, {r["inbox_id"] for r in rows})
    return {
        r["id"]: orjson.dumps(
            {"conversation": dict(r), "inbox": counters[r["inbox_id"]]}, option=orjson.OPT_UTC_Z
        )
        for r in rows
    }
