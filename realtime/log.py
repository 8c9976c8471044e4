"""The realtime replay log (table ``realtime_events``).

Each account's events get consecutive sequence numbers in commit order: the writer takes a
per-account transaction advisory lock before it reads the head and holds it until commit, so a
reader that sees sequence N also sees everything below N. Readers can therefore resume any stream
with "everything after N", in order, with nothing skipped.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import asyncpg

from hub.events.envelope import Head
from hub.store.db import Conn

_LOCK_PREFIX = "hub:realtime:"


@dataclasses.dataclass(frozen=True, slots=True)
class LoggedEvent:
    seq: int
    event_id: str
    inbox_id: str | None
    type: str
    event: str  # the event's JSON, as stored
    context: str | None  # the inbox-list context (realtime/context.py), as stored


#: what one commit of the log added (or one notice carried): account -> its events, by sequence
Logged = dict[str, list[LoggedEvent]]


def lock_keys(account_ids: Sequence[str]) -> list[str]:
    """The numbering locks' keys of these accounts, in the order they must be taken (sorted, so
    two writers never wait on each other crosswise), for a caller that takes them itself."""
    return [_LOCK_PREFIX + a for a in sorted(set(account_ids))]


async def append(
    conn: Conn,
    heads: Sequence[Head],
    raws: Sequence[bytes],
    inbox_ids: Sequence[str | None],
    contexts: Sequence[bytes | None],
    *,
    locked: bool = False,
) -> Logged:
    """Append events not logged yet (inside the caller's transaction); return what was logged,
    per account in sequence order, exactly as :func:`read_after` would read it back. ``locked``:
    the caller's transaction already holds every account's lock (:func:`lock_keys`)."""
    by_account: dict[str, list[int]] = defaultdict(list)
    for i, head in enumerate(heads):
        by_account[head.account_id].append(i)
    logged: Logged = {}
    for account_id in sorted(by_account):
        rows = by_account[account_id]
        if not locked:
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", _LOCK_PREFIX + account_id
            )
        inserted = await conn.fetch(
            """INSERT INTO realtime_events (account_id, seq, event_id, inbox_id, conversation_id,
                                            type, event, context)
               SELECT $1, head.seq + row_number() OVER (ORDER BY x.ord), x.event_id, x.inbox_id,
                      x.conversation_id, x.type, convert_from(x.raw, 'UTF8')::json,
                      convert_from(x.ctx, 'UTF8')::json
                 FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[],
                             $7::bytea[])
                      WITH ORDINALITY AS x(event_id, inbox_id, conversation_id, type, raw, ctx, ord)
                 CROSS JOIN (SELECT coalesce(max(seq), 0) AS seq FROM realtime_events
                              WHERE account_id = $1) AS head
                WHERE NOT EXISTS (SELECT 1 FROM realtime_events r WHERE r.event_id = x.event_id)
            RETURNING seq, event_id""",
            account_id,
            [heads[i].id for i in rows],
            [inbox_ids[i] for i in rows],
            [heads[i].conversation_id for i in rows],
            [heads[i].type for i in rows],
            [raws[i] for i in rows],
            [contexts[i] for i in rows],
        )
        if inserted:
            index = {heads[i].id: i for i in rows}
            logged[account_id] = [
                LoggedEvent(
                    r["seq"],
                    r["event_id"],
                    inbox_ids[i := index[r["event_id"]]],
                    heads[i].type,
                    raws[i].decode(),
                    None if (context := contexts[i]) is None else context.decode(),
                )
                for r in sorted(inserted, key=lambda r: r["seq"])
            ]
    return logged


async def bounds(pool: asyncpg.Pool[Any], account_id: str) -> tuple[int, int]:
    """(oldest kept sequence, newest sequence) of an account; (0, 0) when the log is empty."""
    row = await pool.fetchrow(
        """SELECT coalesce(min(seq), 0) AS low, coalesce(max(seq), 0) AS high
             FROM realtime_events WHERE account_id = $1""",
        account_id,
    )
    assert row is not None
    return row["low"], row["high"]


async def read_after(
    pool: asyncpg.Pool[Any], account_id: str, seq: int, limit: int
) -> list[LoggedEvent]:
    rows = await pool.fetch(
        """SELECT seq, event_id, inbox_id, type, event::text AS event, context::text AS context
             FROM realtime_events
            WHERE account_id = $1 AND seq > $2 ORDER BY seq LIMIT $3""",
        account_id,
        seq,
        limit,
    )
    return [
        LoggedEvent(r["seq"], r["event_id"], r["inbox_id"], r["type"], r["event"], r["context"])
        for r in rows
    ]


#: rows deleted per statement when trimming: short transactions, and WAL in small steps
TRIM_CHUNK = 5000


async def trim(pool: asyncpg.Pool[Any], keep: int, chunk: int = TRIM_CHUNK) -> int:
    """Keep the newest ``keep`` events per account; return how many were removed.

    Each account's ends come from the primary key (no scan of the table, whose size is what
    this bounds), and the old end is deleted in ranges of ``chunk`` sequence numbers, each its
    own short statement, so a trim never holds locks or writes WAL in one long burst."""
    ends = await pool.fetch(
        """SELECT a.id,
                  (SELECT min(seq) FROM realtime_events e WHERE e.account_id = a.id) AS low,
                  (SELECT max(seq) FROM realtime_events e WHERE e.account_id = a.id) AS high
             FROM accounts a"""
    )
    removed = 0
    for account_id, low, high in ends:
        if high is None:
            continue
        cut = high - keep
        while low <= cut:
            upto = min(cut, low + chunk - 1)
            status: str = await pool.execute(
                "DELETE FROM realtime_events WHERE account_id = $1 AND seq BETWEEN $2 AND $3",
                account_id,
                low,
                upto,
            )
            removed += int(status.split()[-1])
            low = upto + 1
    return removed
