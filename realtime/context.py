"""The inbox-list context sent with each conversation event: the conversation's list row and its
inbox's counters, read in the transaction that logs the event.

Counters are as of logging, so a later event always carries newer ones: a console that applies the
context of each event it receives shows what a fresh REST load would show, without re-fetching.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from hub.store.db import Conn
from hub.store.reads import COUNTER_KEYS, INBOX_COUNTERS_SQL, no_counters

_CONTEXT = f"""
    WITH locked AS (
        SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) AS n FROM unnest($2::text[]) k
    ), found AS (
        SELECT c.id, c.inbox_id, c.contact_id, ct.name AS contact_name, c.status,
               c.assignee_id, c.team_id, c.labels, c.priority, c.snoozed_until,
               c.messages_count, c.last_message_at, c.last_activity_at
          FROM conversations c JOIN contacts ct ON ct.id = c.contact_id
         WHERE c.id = ANY($1::text[])
    ), counts AS (
        {INBOX_COUNTERS_SQL.format(inboxes="ARRAY(SELECT DISTINCT inbox_id FROM found)")}
    )
    SELECT found.*, counts.inbox_id AS counted, {", ".join(f"counts.{k}" for k in COUNTER_KEYS)}
      FROM locked LEFT JOIN found ON true LEFT JOIN counts ON counts.inbox_id = found.inbox_id"""


async def inbox_list_context(
    conn: Conn, conversation_ids: Iterable[str | None], lock_keys: Sequence[str] = ()
) -> dict[str, bytes]:
    """``conversation id -> {"conversation": row, "inbox": counters}`` as JSON. The same
    statement takes the transaction advisory locks ``lock_keys`` (the replay log's numbering
    locks, in the order given): one round trip for both in the log's transaction."""
    wanted = sorted({c for c in conversation_ids if c})
    if not wanted and not lock_keys:
        return {}
    rows = await conn.fetch(_CONTEXT, wanted, list(lock_keys))
    out: dict[str, bytes] = {}
    for r in rows:
        if r["id"] is None:  # the locks' row, when no conversation was found
            continue
        conversation = dict(r)
        counters = {k: conversation.pop(k) for k in COUNTER_KEYS}
        inbox: dict[str, Any] = no_counters(r["inbox_id"])
        if conversation.pop("counted") is not None:
            inbox.update(counters)
        out[r["id"]] = orjson.dumps(
            {"conversation": conversation, "inbox": inbox}, option=orjson.OPT_UTC_Z
        )
    return out
