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
        """SELECT id, inbox_id, contact_id, status, assignee_id, team_id, labels, priority,
                  snoozed_until, messages_count, last_message_at, last_activity_at
             FROM conversations WHERE id = ANY($1::text[])""",
        wanted,
    )
    counters = await inbox_counters(conn, {r["inbox_id"] for r in rows})
    return {
        r["id"]: orjson.dumps(
            {"conversation": dict(r), "inbox": counters[r["inbox_id"]]}, option=orjson.OPT_UTC_Z
        )
        for r in rows
    }
